"""The offer sections of the page: the funnel, the revenue over the holdout, the top opportunities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from upsell.domain.report import Funnel, Incremental, Offers, TopOpportunity
from upsell.report.charts import COLOURS, STAGE_COLOURS, STAGES, Section, Table, label, layout
from upsell.report.numbers import DASH, Numbers


def _dismissed(f: Funnel, numbers: Numbers) -> str:
    """The dismissed offers and their share of the contacted ones: ``12 (8.5%)``."""
    share = f.dismissal
    count = numbers.count(f.dismissed)
    return count if share is None else f"{count} ({numbers.percent(share)})"


def _funnel_table(caption: str, what: str, rows: Mapping[str, Funnel], numbers: Numbers) -> Table:
    """The funnel's stages, then the dismissed offers beside them (no stage: a dismissed offer
    may still convert)."""
    return Table(
        caption,
        [
            what,
            "Eligible",
            "Contacted",
            "Opened",
            "Clicked",
            "Converted",
            "Conversion",
            "Dismissed",
        ],
        [
            [
                name,
                numbers.count(f.eligible),
                numbers.count(f.contacted),
                numbers.count(f.opened),
                numbers.count(f.clicked),
                numbers.count(f.converted),
                numbers.percent(f.conversion),
                _dismissed(f, numbers),
            ]
            for name, f in rows.items()
        ],
        [False] + [True] * 7,
    )


def _funnel_figure(rows: Mapping[str, Funnel], numbers: Numbers) -> go.Figure:
    """Four bars per row: eligible, contacted, opened or clicked (`Funnel.opened` counts both),
    converted."""
    names = list(rows)
    values = [
        [f.eligible for f in rows.values()],
        [f.contacted for f in rows.values()],
        [f.opened for f in rows.values()],
        [f.converted for f in rows.values()],
    ]
    fig = go.Figure()
    for stage, ys, colour in zip(STAGES, values, STAGE_COLOURS, strict=True):
        fig.add_trace(go.Bar(name=stage, x=names, y=ys, marker_color=colour))
    fig.update_layout(
        **layout(
            numbers,
            barmode="group",
            xaxis={"type": "category"},
            yaxis={"title": {"text": "Offers"}},
        )
    )
    return fig


def funnel(offers: Offers, numbers: Numbers) -> tuple[Section, dict[str, go.Figure]]:
    section = Section(
        "funnel",
        "Offer funnel",
        "For each playbook and each channel, the four bars are the offers that were eligible, "
        "contacted, opened or clicked, and converted; each bar is at most the one before it. "
        "The tables add the offers dismissed (closed by the customer) and their share of those "
        "contacted: no step of the funnel, since a dismissed offer may still convert.",
    )
    figures: dict[str, go.Figure] = {}
    if not offers:
        section.empty.append(
            "No offers yet: the funnel fills in once `upsell run` has made and sent offers."
        )
        return section, figures
    for key, rows in (("playbook", offers.by_playbook), ("channel", offers.by_channel)):
        if rows:
            figures[f"chart-funnel-{key}"] = _funnel_figure(rows, numbers)
            section.charts.append(f"chart-funnel-{key}")
            section.tables.append(_funnel_table(f"Offers by {key}", label(key), rows, numbers))
        else:
            section.empty.append(f"No offers by {key} to show.")
    for key, rows in (("kind", offers.by_kind), ("variant", offers.by_variant)):
        if rows:
            section.tables.append(_funnel_table(f"Offers by {key}", label(key), rows, numbers))
    return section, figures


def incremental(inc: Incremental | None, numbers: Numbers) -> tuple[Section, go.Figure | None]:
    confidence = numbers.percent(inc.confidence if inc is not None else 0.95)
    section = Section(
        "incremental",
        "Incremental revenue vs holdout",
        "Left: expansion MRR per account for accounts that could get offers (treated) and for the "
        "holdout that never did. Right: the expansion MRR the offers added, with its "
        f"{confidence} confidence interval as the error bar; an interval that crosses zero is not "
        "yet proof.",
    )
    if inc is None:
        section.empty.append(
            "No holdout comparison yet: it needs a run of `upsell run` with a holdout group "
            "and time for the accounts to convert."
        )
        return section, None
    estimate = float(inc.expansion_mrr)
    low = None if inc.ci_low is None else float(inc.ci_low)
    high = None if inc.ci_high is None else float(inc.ci_high)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Expansion MRR per account", "Incremental expansion MRR"),
    )
    fig.add_trace(
        go.Bar(
            x=["Treated", "Holdout"],
            y=[float(inc.per_account_treated), float(inc.per_account_holdout)],
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
    fig.update_layout(**layout(numbers, showlegend=False, hovermode="closest"))
    fig.update_yaxes(title_text=numbers.currency, row=1, col=1)
    fig.update_yaxes(title_text=numbers.currency, row=1, col=2)
    section.charts.append("chart-incremental")
    interval = (
        f"{numbers.money(inc.ci_low)} to {numbers.money(inc.ci_high)}"
        if low is not None and high is not None
        else DASH
    )
    section.tables.append(
        Table(
            "Incremental revenue",
            ["Measure", "Value"],
            [
                ["Incremental expansion MRR", numbers.money(inc.expansion_mrr)],
                [f"{confidence} confidence interval", interval],
                ["Treated accounts", numbers.count(inc.treated_accounts)],
                ["Holdout accounts", numbers.count(inc.holdout_accounts)],
                ["Expansion MRR per treated account", numbers.money(inc.per_account_treated)],
                ["Expansion MRR per holdout account", numbers.money(inc.per_account_holdout)],
            ],
            [False, True],
        )
    )
    return section, fig


def opportunities(top: Sequence[TopOpportunity], numbers: Numbers) -> Section:
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
                    o.account_id,
                    label(o.kind),
                    o.offer_id,
                    numbers.money(o.expected_mrr_delta, o.currency or None),
                    numbers.number(o.score),
                    o.sentence,
                ]
                for o in top
            ],
            [False, False, False, True, True, False],
        )
    )
    return section
