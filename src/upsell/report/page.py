"""The report as one self-contained HTML page (issue 6): charts, the numbers under them, no network.

`render_html` turns a `Report` into a page that works offline: the charts are Plotly figures
serialised with ``fig.to_json()`` and drawn by ``Plotly.newPlot`` from the plotly.js code of the
installed ``plotly`` package, inlined once. Nothing on the page points outside it (no CDN, no web
fonts, no MathJax). Every chart has a table of its numbers under it, money and percentages
formatted for the report's locale with CLDR (Babel). A section with nothing to draw (a workspace
that never ran ``upsell run``) says so in a sentence instead of drawing an empty chart.

The page is filled from the Jinja2 template ``defaults/report.html.j2`` (autoescape on: account ids and
sentences come from the workspace's data and are never trusted as HTML).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from plotly.offline import get_plotlyjs

from upsell.domain.calendar import iso
from upsell.domain.metrics import MetricSettings
from upsell.domain.money import Money
from upsell.domain.report import Report, Summary
from upsell.report import offers, revenue
from upsell.report.charts import Section
from upsell.report.numbers import DASH, Numbers

DEFAULTS = Path(__file__).parent.parent / "defaults"
TEMPLATE = "report.html.j2"
PLOTLY_CONFIG: Mapping[str, Any] = {"displaylogo": False, "responsive": True}


def _settings_sentence(settings: MetricSettings, numbers: Numbers) -> str:
    window = settings.reactivation_window_days
    parts = [
        f"churn at {settings.churn_at.replace('_', ' ')}",
        "reactivation any time"
        if window is None
        else f"reactivation within {numbers.count(window)} days",
        "usage in MRR" if settings.usage_in_mrr else "usage not in MRR",
        f"gross margin {numbers.percent(settings.gross_margin)}",
        f"attribution {numbers.count(settings.attribution_days)} days",
    ]
    return f"Settings: {', '.join(parts)}."


def _headline(summary: Summary, numbers: Numbers) -> list[tuple[str, str, str]]:
    """The header's cards: (label, value, a detail line or "")."""
    time = summary.time_to_upsell_days
    details = []
    if time.p25 is not None and time.p75 is not None:
        details.append(f"middle half {numbers.count(time.p25)} to {numbers.count(time.p75)} days")
    details.append(f"{numbers.count(time.upsells)} upsells")
    median = f"{numbers.count(time.median)} days" if time.median is not None else DASH
    cards = [
        ("MRR", numbers.money(summary.mrr)),
        ("ARR", numbers.money(summary.arr)),
        ("Paying accounts", numbers.count(summary.paying_accounts)),
        ("ARPA", numbers.money(summary.arpa)),
        ("NDR (TTM)", numbers.percent(summary.ndr_ttm)),
        ("GRR (TTM)", numbers.percent(summary.grr_ttm)),
        ("Quick ratio", numbers.number(summary.quick_ratio)),
        ("LTV", numbers.money(summary.ltv)),
        ("LTV uplift", numbers.money(summary.ltv_uplift)),
        ("Upsell conversion", numbers.percent(summary.upsell_conversion)),
        ("Average upgrade", numbers.money(summary.average_upgrade_value)),
    ]
    return [
        *((label, value, "") for label, value in cards),
        ("Time to upsell (median)", median, ", ".join(details)),
        ("Reach", numbers.percent(summary.reach), ""),
    ]


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


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (a string); pure."""
    Money.zero(report.currency)  # an unknown currency fails here, with CurrencyError
    numbers = Numbers(report.currency, report.locale)
    figures: dict[str, go.Figure] = {}
    sections: list[Section] = []

    def add(section: Section, *drawn: go.Figure | None) -> None:
        sections.append(section)
        for chart, figure in zip(section.charts, drawn, strict=False):
            if figure is not None:
                figures[chart] = figure

    add(*revenue.movements(report.months, numbers))
    add(*revenue.trends(report.months, numbers))
    add(*revenue.causes(report.months, numbers))
    funnel, funnel_figures = offers.funnel(report.offers, numbers)
    sections.append(funnel)
    figures.update(funnel_figures)
    add(*offers.incremental(report.incremental, numbers))
    add(*revenue.cohorts(report.cohorts, numbers))
    sections.append(offers.opportunities(report.top_opportunities, numbers))

    drawn = {chart for s in sections for chart in s.charts}
    assert drawn == set(figures), f"charts without figures: {drawn ^ set(figures)}"
    template = _environment().get_template(TEMPLATE)
    return template.render(
        title=f"Upsell report: {report.workspace or 'workspace'}",
        lang=numbers.locale.replace("_", "-"),
        workspace=report.workspace,
        period_from=report.first.isoformat(),
        period_to=report.last.isoformat(),
        generated_at=iso(report.generated_at.replace(microsecond=0)),
        currency=report.currency,
        headline=_headline(report.summary, numbers),
        settings=_settings_sentence(report.settings, numbers),
        sections=sections,
        plotly_js=get_plotlyjs(),
        figures=_script_json({k: json.loads(f.to_json()) for k, f in figures.items()}),
        config=_script_json(PLOTLY_CONFIG),
    )


def write_html(report: Report, path: Path) -> None:
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
