"""The report as one self-contained HTML page (issue 6): charts, the numbers under them, no network.

`render_html` turns the report's JSON form (a mapping computed elsewhere: money as decimal strings in
the base currency, ratios as fractions, ``None`` where a number does not exist) into a page that works
offline: the charts are Plotly figures serialised with ``fig.to_json()`` and drawn by ``Plotly.newPlot``
from the plotly.js code of the installed ``plotly`` package, inlined once. Nothing on the page points
outside it (no CDN, no web fonts, no MathJax). Every chart has a table of its numbers under it, money
and percentages formatted for the report's locale with CLDR (Babel). A section whose data is empty
(a workspace that never ran ``upsell run``) says so in a sentence instead of drawing an empty chart.

The page is filled from the Jinja2 template ``defaults/report.html.j2`` (autoescape on: account ids and
sentences come from the workspace's data and are never trusted as HTML).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from babel import Locale
from babel.numbers import format_decimal, format_percent, get_decimal_symbol, get_group_symbol
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from upsell.domain.money import Money, format_money, to_decimal

__all__ = ["render_html", "write_html"]

DEFAULTS = Path(__file__).parent / "defaults"
TEMPLATE = "report.html.j2"
DASH = "—"
PLOTLY_CONFIG: Mapping[str, Any] = {"displaylogo": False, "responsive": True}

# The order and names of things on the page; keys the report has beyond these follow, title-cased.
CAUSES = {
    "upsell": "Upsell",
    "add_on": "Add-on",
    "cross_sell": "Cross-sell",
    "quantity": "Quantity",
    "price": "Price",
}
STAGES = ("Eligible", "Contacted", "Opened or clicked", "Converted")
COLOURS = {
    "new": "#2e7d32",
    "reactivation": "#66bb6a",
    "expansion": "#1e88e5",
    "contraction": "#fb8c00",
    "churn": "#e53935",
    "net": "#212121",
    "ndr": "#1e88e5",
    "grr": "#8e24aa",
    "treated": "#1e88e5",
    "holdout": "#9e9e9e",
    "incremental": "#2e7d32",
}
CAUSE_COLOURS = ("#1e88e5", "#43a047", "#8e24aa", "#fb8c00", "#00897b", "#6d4c41", "#546e7a")
STAGE_COLOURS = ("#bbdefb", "#64b5f6", "#1e88e5", "#0d47a1")


@dataclass
class Table:
    """A table of the numbers under a chart; `numeric[i]` right-aligns column i."""

    caption: str
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]


@dataclass
class Section:
    id: str
    title: str
    reading: str
    charts: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)


class _Format:
    """Numbers for people in the report's locale."""

    def __init__(self, currency: str, locale: str) -> None:
        self.currency = currency
        self.locale = locale.replace("-", "_")
        parsed = Locale.parse(self.locale)
        # The locale's percent pattern with up to one decimal: 104 %, 9,4 %, 3.1%.
        pattern = parsed.percent_formats[None].pattern
        self._percent = ";".join(_one_optional_decimal(part) for part in pattern.split(";"))

    def money(self, value: Any, currency: str | None = None) -> str:
        if value is None or value == "":
            return DASH
        return format_money(Money.of(_decimal(value), currency or self.currency), self.locale)

    def percent(self, value: Any) -> str:
        if value is None:
            return DASH
        return str(format_percent(_decimal(value), self._percent, locale=self.locale))

    def number(self, value: Any, digits: int = 2) -> str:
        if value is None:
            return DASH
        amount = _decimal(value)
        return str(format_decimal(round(amount, digits), locale=self.locale))

    def count(self, value: Any) -> str:
        if value is None:
            return DASH
        return str(format_decimal(int(value), locale=self.locale))

    def separators(self) -> str:
        """Plotly's ``layout.separators``: the decimal then the group symbol of the locale."""
        return f"{get_decimal_symbol(self.locale)}{get_group_symbol(self.locale)}"


def _one_optional_decimal(pattern: str) -> str:
    head, zero, tail = pattern.rpartition("0")
    return f"{head}0.#{tail}" if zero else pattern


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        return Decimal(repr(value))
    return to_decimal(value)


def _float(value: Any) -> float | None:
    """A chart coordinate (charts draw floats; the tables show the exact amounts)."""
    return None if value is None or value == "" else float(_decimal(value))


def _magnitude(value: Any) -> Decimal:
    return abs(_decimal(value)) if value not in (None, "") else Decimal(0)


def _label(key: str) -> str:
    return CAUSES.get(key) or key.replace("_", " ").capitalize()


def _layout(fmt: _Format, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "separators": fmt.separators(),
        "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        "font": {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12},
        "hovermode": "x unified",
    }
    layout.update(extra)
    return layout


# -- the sections ---------------------------------------------------------------------------------


def _movements(
    months: Sequence[Mapping[str, Any]], fmt: _Format
) -> tuple[Section, go.Figure | None]:
    section = Section(
        "movements",
        "MRR movements per month",
        "Bars above zero add MRR (new, reactivation, expansion), bars below take it away "
        "(contraction, churn); the black line is the month's net change.",
    )
    if not months:
        section.empty.append("There are no months in this period to show.")
        return section, None
    x = [m["month"] for m in months]
    rows: list[list[str]] = []
    nets: list[float] = []
    for m in months:
        gained = sum(
            (_magnitude(m.get(k)) for k in ("new", "reactivation", "expansion")), Decimal(0)
        )
        lost = _magnitude(m.get("contraction")) + _magnitude(m.get("churn"))
        net = gained - lost
        nets.append(float(net))
        rows.append(
            [
                m["month"],
                fmt.money(m.get("mrr_start")),
                fmt.money(_magnitude(m.get("new"))),
                fmt.money(_magnitude(m.get("reactivation"))),
                fmt.money(_magnitude(m.get("expansion"))),
                fmt.money(-_magnitude(m.get("contraction"))),
                fmt.money(-_magnitude(m.get("churn"))),
                fmt.money(net),
                fmt.money(m.get("mrr_end")),
            ]
        )
    fig = go.Figure()
    for key, sign in (
        ("new", 1),
        ("reactivation", 1),
        ("expansion", 1),
        ("contraction", -1),
        ("churn", -1),
    ):
        fig.add_trace(
            go.Bar(
                name=key.capitalize(),
                x=x,
                y=[sign * float(_magnitude(m.get(key))) for m in months],
                marker_color=COLOURS[key],
            )
        )
    fig.add_trace(
        go.Scatter(
            name="Net",
            x=x,
            y=nets,
            mode="lines+markers",
            line={"color": COLOURS["net"], "width": 2},
        )
    )
    fig.update_layout(
        **_layout(
            fmt,
            barmode="relative",
            xaxis={"type": "category"},
            yaxis={"title": {"text": f"MRR ({fmt.currency})"}, "zeroline": True},
        )
    )
    section.charts.append("chart-movements")
    section.tables.append(
        Table(
            "MRR movements per month",
            [
                "Month",
                "MRR at start",
                "New",
                "Reactivation",
                "Expansion",
                "Contraction",
                "Churn",
                "Net",
                "MRR at end",
            ],
            rows,
            [False] + [True] * 8,
        )
    )
    return section, fig


def _trends(
    months: Sequence[Mapping[str, Any]], fmt: _Format
) -> tuple[Section, go.Figure | None, go.Figure | None]:
    section = Section(
        "trends",
        "MRR, NDR and GRR",
        "The first chart is MRR at the end of each month. The second is net and gross dollar "
        "retention: the month's figure (thin line) and the trailing twelve months (thick line); "
        "NDR above 100 % means existing customers grow.",
    )
    if not months:
        section.empty.append("There are no months in this period to show.")
        return section, None, None
    x = [m["month"] for m in months]
    mrr = go.Figure(
        go.Scatter(
            name="MRR",
            x=x,
            y=[_float(m.get("mrr_end")) for m in months],
            mode="lines+markers",
            line={"color": COLOURS["expansion"], "width": 3},
            fill="tozeroy",
            fillcolor="rgba(30,136,229,0.1)",
        )
    )
    mrr.update_layout(
        **_layout(
            fmt,
            xaxis={"type": "category"},
            yaxis={"title": {"text": f"MRR ({fmt.currency})"}, "rangemode": "tozero"},
            showlegend=False,
        )
    )
    retention = go.Figure()
    for key, name, width, dash in (
        ("ndr", "NDR (month)", 1.5, "dot"),
        ("ndr_ttm", "NDR (TTM)", 3, "solid"),
        ("grr", "GRR (month)", 1.5, "dot"),
        ("grr_ttm", "GRR (TTM)", 3, "solid"),
    ):
        retention.add_trace(
            go.Scatter(
                name=name,
                x=x,
                y=[_float(m.get(key)) for m in months],
                mode="lines+markers",
                line={"color": COLOURS[key[:3]], "width": width, "dash": dash},
                hovertemplate="%{y:.1%}",
            )
        )
    retention.update_layout(
        **_layout(
            fmt,
            xaxis={"type": "category"},
            yaxis={"title": {"text": "Retention"}, "tickformat": ".0%"},
        )
    )
    section.charts += ["chart-mrr", "chart-retention"]
    section.tables.append(
        Table(
            "MRR and retention per month",
            [
                "Month",
                "MRR",
                "ARR",
                "Paying accounts",
                "ARPA",
                "NDR",
                "GRR",
                "NDR (TTM)",
                "GRR (TTM)",
                "Quick ratio",
                "Upsell conversion",
            ],
            [
                [
                    m["month"],
                    fmt.money(m.get("mrr_end")),
                    fmt.money(m.get("arr")),
                    fmt.count(m.get("paying_accounts")),
                    fmt.money(m.get("arpa")),
                    fmt.percent(m.get("ndr")),
                    fmt.percent(m.get("grr")),
                    fmt.percent(m.get("ndr_ttm")),
                    fmt.percent(m.get("grr_ttm")),
                    fmt.number(m.get("quick_ratio")),
                    fmt.percent(m.get("upsell_conversion")),
                ]
                for m in months
            ],
            [False] + [True] * 10,
        )
    )
    return section, mrr, retention


def _ordered(keys: Iterable[str], known: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(keys))
    first = [k for k in known if k in seen]
    return first + [k for k in seen if k not in first]


def _causes(months: Sequence[Mapping[str, Any]], fmt: _Format) -> tuple[Section, go.Figure | None]:
    section = Section(
        "causes",
        "Expansion by cause",
        "Each bar is a month's expansion MRR, split by what caused it: a plan upgrade (upsell), "
        "an add-on, a cross-sell, more units (quantity) or a price change.",
    )
    causes = _ordered(
        (k for m in months for k in (m.get("expansion_by_cause") or {})), CAUSES.keys()
    )
    if not months or not causes:
        section.empty.append("No expansion was recorded in this period.")
        return section, None
    x = [m["month"] for m in months]
    fig = go.Figure()
    for i, cause in enumerate(causes):
        fig.add_trace(
            go.Bar(
                name=_label(cause),
                x=x,
                y=[_float((m.get("expansion_by_cause") or {}).get(cause)) or 0.0 for m in months],
                marker_color=CAUSE_COLOURS[i % len(CAUSE_COLOURS)],
            )
        )
    fig.update_layout(
        **_layout(
            fmt,
            barmode="stack",
            legend={"orientation": "h", "y": -0.2, "traceorder": "normal"},
            xaxis={"type": "category"},
            yaxis={"title": {"text": f"Expansion MRR ({fmt.currency})"}},
        )
    )
    rows = []
    for m in months:
        by_cause = m.get("expansion_by_cause") or {}
        amounts = [_decimal(by_cause.get(c) or 0) for c in causes]
        rows.append(
            [m["month"], *(fmt.money(a) for a in amounts), fmt.money(sum(amounts, Decimal(0)))]
        )
    section.charts.append("chart-causes")
    section.tables.append(
        Table(
            "Expansion MRR by cause",
            ["Month", *(_label(c) for c in causes), "Total"],
            rows,
            [False] + [True] * (len(causes) + 1),
        )
    )
    return section, fig


def _opened_or_clicked(row: Mapping[str, Any]) -> int:
    if row.get("opened_or_clicked") is not None:
        return int(row["opened_or_clicked"])
    # Without the distinct count, the larger of the two is the most that can be claimed.
    return max(int(row.get("opened") or 0), int(row.get("clicked") or 0))


def _funnel_table(
    caption: str, what: str, rows: Mapping[str, Mapping[str, Any]], fmt: _Format
) -> Table:
    return Table(
        caption,
        [what, "Eligible", "Contacted", "Opened", "Clicked", "Converted", "Conversion"],
        [
            [
                name,
                fmt.count(r.get("eligible")),
                fmt.count(r.get("contacted")),
                fmt.count(r.get("opened")),
                fmt.count(r.get("clicked")),
                fmt.count(r.get("converted")),
                fmt.percent(r.get("conversion")),
            ]
            for name, r in rows.items()
        ],
        [False] + [True] * 6,
    )


def _funnel_figure(rows: Mapping[str, Mapping[str, Any]], fmt: _Format) -> go.Figure:
    names = list(rows)
    values = [
        [int(r.get("eligible") or 0) for r in rows.values()],
        [int(r.get("contacted") or 0) for r in rows.values()],
        [_opened_or_clicked(r) for r in rows.values()],
        [int(r.get("converted") or 0) for r in rows.values()],
    ]
    fig = go.Figure()
    for stage, ys, colour in zip(STAGES, values, STAGE_COLOURS, strict=True):
        fig.add_trace(go.Bar(name=stage, x=names, y=ys, marker_color=colour))
    fig.update_layout(
        **_layout(
            fmt,
            barmode="group",
            xaxis={"type": "category"},
            yaxis={"title": {"text": "Offers"}},
        )
    )
    return fig


def _offers(offers: Mapping[str, Any] | None, fmt: _Format) -> tuple[Section, dict[str, go.Figure]]:
    section = Section(
        "funnel",
        "Offer funnel",
        "For each playbook and each channel, the four bars are the offers that were eligible, "
        "contacted, opened or clicked, and converted; each bar is at most the one before it.",
    )
    offers = offers or {}
    figures: dict[str, go.Figure] = {}
    by_playbook = offers.get("by_playbook") or {}
    by_channel = offers.get("by_channel") or {}
    if not any(offers.get(k) for k in ("by_playbook", "by_channel", "by_kind", "by_variant")):
        section.empty.append(
            "No offers yet: the funnel fills in once `upsell run` has made and sent offers."
        )
        return section, figures
    for key, what, rows in (
        ("playbook", "Playbook", by_playbook),
        ("channel", "Channel", by_channel),
    ):
        if rows:
            figures[f"chart-funnel-{key}"] = _funnel_figure(rows, fmt)
            section.charts.append(f"chart-funnel-{key}")
            section.tables.append(_funnel_table(f"Offers by {key}", what, rows, fmt))
        else:
            section.empty.append(f"No offers by {key} to show.")
    for key, what in (("kind", "Kind"), ("variant", "Variant")):
        rows = offers.get(f"by_{key}") or {}
        if rows:
            section.tables.append(_funnel_table(f"Offers by {key}", what, rows, fmt))
    return section, figures


def _incremental(inc: Mapping[str, Any] | None, fmt: _Format) -> tuple[Section, go.Figure | None]:
    confidence = fmt.percent((inc or {}).get("confidence") or 0.95)
    section = Section(
        "incremental",
        "Incremental revenue vs holdout",
        "Left: expansion MRR per account for accounts that could get offers (treated) and for the "
        "holdout that never did. Right: the expansion MRR the offers added, with its "
        f"{confidence} confidence interval as the error bar; an interval that crosses zero is not "
        "yet proof.",
    )
    if not inc or inc.get("expansion_mrr") is None:
        section.empty.append(
            "No holdout comparison yet: it needs a run of `upsell run` with a holdout group "
            "and time for the accounts to convert."
        )
        return section, None
    estimate = _float(inc["expansion_mrr"]) or 0.0
    low, high = _float(inc.get("ci_low")), _float(inc.get("ci_high"))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Expansion MRR per account", "Incremental expansion MRR"),
    )
    fig.add_trace(
        go.Bar(
            x=["Treated", "Holdout"],
            y=[_float(inc.get("per_account_treated")), _float(inc.get("per_account_holdout"))],
            marker_color=[COLOURS["treated"], COLOURS["holdout"]],
            name="Per account",
        ),
        row=1,
        col=1,
    )
    error: dict[str, Any] = {"visible": False}
    if low is not None and high is not None:
        error = {
            "type": "data",
            "symmetric": False,
            "array": [max(high - estimate, 0.0)],
            "arrayminus": [max(estimate - low, 0.0)],
            "color": COLOURS["net"],
            "thickness": 2,
            "width": 10,
        }
    fig.add_trace(
        go.Bar(
            x=["Incremental"],
            y=[estimate],
            error_y=error,
            marker_color=COLOURS["incremental"],
            name="Incremental",
        ),
        row=1,
        col=2,
    )
    fig.update_layout(**_layout(fmt, showlegend=False, hovermode="closest"))
    fig.update_yaxes(title_text=fmt.currency, row=1, col=1)
    fig.update_yaxes(title_text=fmt.currency, row=1, col=2)
    section.charts.append("chart-incremental")
    interval = (
        f"{fmt.money(inc.get('ci_low'))} to {fmt.money(inc.get('ci_high'))}"
        if low is not None and high is not None
        else DASH
    )
    section.tables.append(
        Table(
            "Incremental revenue",
            ["Measure", "Value"],
            [
                ["Incremental expansion MRR", fmt.money(inc.get("expansion_mrr"))],
                [f"{confidence} confidence interval", interval],
                ["Treated accounts", fmt.count(inc.get("treated_accounts"))],
                ["Holdout accounts", fmt.count(inc.get("holdout_accounts"))],
                ["Expansion MRR per treated account", fmt.money(inc.get("per_account_treated"))],
                ["Expansion MRR per holdout account", fmt.money(inc.get("per_account_holdout"))],
            ],
            [False, True],
        )
    )
    return section, fig


def _cohorts(
    cohorts: Sequence[Mapping[str, Any]] | None, fmt: _Format
) -> tuple[Section, go.Figure | None]:
    section = Section(
        "cohorts",
        "Cohorts",
        "Each row is the accounts that signed up in a month; each column is months since signup. "
        "The colour is net dollar retention against the cohort's first month: green above "
        "100 %, red below. The tables give NDR and logo retention (the share of accounts still "
        "paying).",
    )
    cohorts = cohorts or []
    ages = sorted({int(a["age"]) for c in cohorts for a in c.get("ages") or []})
    if not cohorts or not ages:
        section.empty.append("No cohorts to show: there are no paying accounts in this period yet.")
        return section, None
    grid: dict[tuple[str, int], Mapping[str, Any]] = {
        (c["cohort"], int(a["age"])): a for c in cohorts for a in c.get("ages") or []
    }
    names = [c["cohort"] for c in cohorts]
    z = [[_float(grid.get((n, age), {}).get("ndr")) for age in ages] for n in names]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(a) for a in ages],
            y=names,
            colorscale="RdYlGn",
            zmid=1.0,
            texttemplate="%{z:.0%}",
            hovertemplate="Cohort %{y}, month %{x}: NDR %{z:.1%}<extra></extra>",
            colorbar={"tickformat": ".0%", "title": {"text": "NDR"}},
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        **_layout(
            fmt,
            hovermode="closest",
            xaxis={"type": "category", "title": {"text": "Months since signup"}},
            yaxis={"type": "category", "autorange": "reversed", "title": {"text": "Signup month"}},
        )
    )
    section.charts.append("chart-cohorts")
    headers = ["Cohort", "Accounts", *(str(a) for a in ages)]
    numeric = [False] + [True] * (len(ages) + 1)
    for key, caption in (
        ("ndr", "Net dollar retention by months since signup"),
        ("logo_retention", "Logo retention by months since signup"),
        ("feature_adoption", "Feature adoption by months since signup"),
    ):
        if key == "feature_adoption" and not any(a.get(key) is not None for a in grid.values()):
            continue
        rows = [
            [
                c["cohort"],
                fmt.count(c.get("accounts")),
                *(
                    fmt.percent(grid[(c["cohort"], age)].get(key))
                    if (c["cohort"], age) in grid
                    else ""
                    for age in ages
                ),
            ]
            for c in cohorts
        ]
        section.tables.append(Table(caption, headers, rows, numeric))
    return section, fig


def _opportunities(top: Sequence[Mapping[str, Any]] | None, fmt: _Format) -> Section:
    section = Section(
        "opportunities",
        "Top opportunities of the latest run",
        "The accounts with the most expected MRR from an offer, best first, and why.",
    )
    if not top:
        section.empty.append(
            "No opportunities yet: `upsell run` finds them; this workspace has no run."
        )
        return section
    section.tables.append(
        Table(
            "Top opportunities",
            ["Account", "Kind", "Offer", "Expected MRR", "Score", "Why"],
            [
                [
                    str(o.get("account_id", "")),
                    _label(str(o.get("kind", ""))),
                    str(o.get("offer_id", "")),
                    fmt.money(o.get("expected_mrr_delta"), o.get("currency") or None),
                    fmt.number(o.get("score")),
                    str(o.get("sentence", "")),
                ]
                for o in top
            ],
            [False, False, False, True, True, False],
        )
    )
    return section


# -- the header -----------------------------------------------------------------------------------


def _settings_sentence(settings: Mapping[str, Any], fmt: _Format) -> str:
    parts: list[str] = []
    if settings.get("churn_at"):
        parts.append(f"churn at {str(settings['churn_at']).replace('_', ' ')}")
    if "reactivation_window_days" in settings:
        window = settings["reactivation_window_days"]
        parts.append(
            "reactivation any time"
            if window is None
            else f"reactivation within {fmt.count(window)} days"
        )
    if "usage_in_mrr" in settings:
        parts.append("usage in MRR" if settings["usage_in_mrr"] else "usage not in MRR")
    if settings.get("gross_margin") is not None:
        parts.append(f"gross margin {fmt.percent(settings['gross_margin'])}")
    if settings.get("attribution_days") is not None:
        parts.append(f"attribution {fmt.count(settings['attribution_days'])} days")
    return f"Settings: {', '.join(parts)}." if parts else "Settings: defaults."


def _headline(summary: Mapping[str, Any], fmt: _Format) -> list[tuple[str, str, str]]:
    """The header's cards: (label, value, a detail line or "")."""
    time = summary.get("time_to_upsell_days") or {}
    details = []
    if time.get("p25") is not None and time.get("p75") is not None:
        details.append(f"middle half {fmt.count(time['p25'])} to {fmt.count(time['p75'])} days")
    if time.get("upsells") is not None:
        details.append(f"{fmt.count(time['upsells'])} upsells")
    median = f"{fmt.count(time['median'])} days" if time.get("median") is not None else DASH
    cards = [
        ("MRR", fmt.money(summary.get("mrr"))),
        ("ARR", fmt.money(summary.get("arr"))),
        ("Paying accounts", fmt.count(summary.get("paying_accounts"))),
        ("ARPA", fmt.money(summary.get("arpa"))),
        ("NDR (TTM)", fmt.percent(summary.get("ndr_ttm"))),
        ("GRR (TTM)", fmt.percent(summary.get("grr_ttm"))),
        ("Quick ratio", fmt.number(summary.get("quick_ratio"))),
        ("LTV", fmt.money(summary.get("ltv"))),
        ("LTV uplift", fmt.money(summary.get("ltv_uplift"))),
        ("Upsell conversion", fmt.percent(summary.get("upsell_conversion"))),
        ("Average upgrade", fmt.money(summary.get("average_upgrade_value"))),
    ]
    return [
        *((label, value, "") for label, value in cards),
        ("Time to upsell (median)", median, ", ".join(details)),
        ("Reach", fmt.percent(summary.get("reach")), ""),
    ]


# -- the page -------------------------------------------------------------------------------------


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (the template marks it ``safe``): no ``</script>``,
    no ``<!--``, nothing the HTML parser would read as markup."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(DEFAULTS),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (a string); pure."""
    currency = str(report["currency"])
    fmt = _Format(currency, str(report.get("locale") or "en"))
    Money.zero(currency)  # an unknown currency fails here, with CurrencyError
    months: Sequence[Mapping[str, Any]] = report.get("months") or []

    figures: dict[str, go.Figure] = {}
    sections: list[Section] = []

    movements, fig = _movements(months, fmt)
    sections.append(movements)
    if fig is not None:
        figures["chart-movements"] = fig
    trends, mrr, retention = _trends(months, fmt)
    sections.append(trends)
    if mrr is not None and retention is not None:
        figures["chart-mrr"], figures["chart-retention"] = mrr, retention
    causes, fig = _causes(months, fmt)
    sections.append(causes)
    if fig is not None:
        figures["chart-causes"] = fig
    funnel, funnel_figures = _offers(report.get("offers"), fmt)
    sections.append(funnel)
    figures.update(funnel_figures)
    incremental, fig = _incremental(report.get("incremental"), fmt)
    sections.append(incremental)
    if fig is not None:
        figures["chart-incremental"] = fig
    cohorts, fig = _cohorts(report.get("cohorts"), fmt)
    sections.append(cohorts)
    if fig is not None:
        figures["chart-cohorts"] = fig
    sections.append(_opportunities(report.get("top_opportunities"), fmt))

    drawn = {chart for s in sections for chart in s.charts}
    assert drawn == set(figures), f"charts without figures: {drawn ^ set(figures)}"
    template = _environment().get_template(TEMPLATE)
    return template.render(
        title=f"Upsell report: {report.get('workspace') or 'workspace'}",
        lang=fmt.locale.replace("_", "-"),
        workspace=report.get("workspace") or "",
        period_from=report.get("from") or "",
        period_to=report.get("to") or "",
        generated_at=report.get("generated_at") or "",
        currency=currency,
        headline=_headline(report.get("summary") or {}, fmt),
        settings=_settings_sentence(report.get("settings") or {}, fmt),
        sections=sections,
        plotly_js=get_plotlyjs(),
        figures=_script_json({k: json.loads(f.to_json()) for k, f in figures.items()}),
        config=_script_json(PLOTLY_CONFIG),
    )


def write_html(report: Mapping[str, Any], path: Path) -> None:
    """Render the report and write it to `path` atomically (a temporary file, then a rename)."""
    page = render_html(report)
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
