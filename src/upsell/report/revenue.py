"""The revenue sections of the page: MRR movements, MRR and retention, expansion by cause, cohorts.

Each builder returns its `Section` and the Plotly figures it draws (None when there is nothing to
draw: the section then says so in a sentence).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import plotly.graph_objects as go

from upsell.domain.metrics import CAUSES
from upsell.domain.report import Cohort, CohortAge, Month
from upsell.report.charts import CAUSE_COLOURS, COLOURS, Section, Table, label, layout
from upsell.report.numbers import Numbers

NO_MONTHS = "There are no months in this period to show."
#: The movements in the order the chart stacks them, and whether each adds or takes away MRR.
MOVEMENTS = (
    ("new", 1),
    ("reactivation", 1),
    ("expansion", 1),
    ("contraction", -1),
    ("churn", -1),
)


def movements(months: Sequence[Month], numbers: Numbers) -> tuple[Section, go.Figure | None]:
    section = Section(
        "movements",
        "MRR movements per month",
        "Bars above zero add MRR (new, reactivation, expansion), bars below take it away "
        "(contraction, churn); the black line is the month's net change.",
    )
    if not months:
        section.empty.append(NO_MONTHS)
        return section, None
    x = [m.month for m in months]
    rows: list[list[str]] = []
    nets: list[float] = []
    for m in months:
        gained = abs(m.new) + abs(m.reactivation) + abs(m.expansion)
        net = gained - abs(m.contraction) - abs(m.churn)
        nets.append(float(net))
        rows.append(
            [
                m.month,
                numbers.money(m.mrr_start),
                numbers.money(abs(m.new)),
                numbers.money(abs(m.reactivation)),
                numbers.money(abs(m.expansion)),
                numbers.money(-abs(m.contraction)),
                numbers.money(-abs(m.churn)),
                numbers.money(net),
                numbers.money(m.mrr_end),
            ]
        )
    fig = go.Figure()
    for key, sign in MOVEMENTS:
        fig.add_trace(
            go.Bar(
                name=key.capitalize(),
                x=x,
                y=[sign * float(abs(getattr(m, key))) for m in months],
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
        **layout(
            numbers,
            barmode="relative",
            xaxis={"type": "category"},
            yaxis={"title": {"text": f"MRR ({numbers.currency})"}, "zeroline": True},
        )
    )
    section.charts.append("chart-movements")
    headers = [
        "Month", "MRR at start", "New", "Reactivation", "Expansion", "Contraction", "Churn",
        "Net", "MRR at end",
    ]  # fmt: skip
    section.tables.append(Table("MRR movements per month", headers, rows, [False] + [True] * 8))
    return section, fig


def trends(
    months: Sequence[Month], numbers: Numbers
) -> tuple[Section, go.Figure | None, go.Figure | None]:
    section = Section(
        "trends",
        "MRR, NDR and GRR",
        "The first chart is MRR at the end of each month. The second is net and gross dollar "
        "retention: the month's figure (thin line) and the trailing twelve months (thick line); "
        "NDR above 100 % means existing customers grow.",
    )
    if not months:
        section.empty.append(NO_MONTHS)
        return section, None, None
    x = [m.month for m in months]
    mrr = go.Figure(
        go.Scatter(
            name="MRR",
            x=x,
            y=[float(m.mrr_end) for m in months],
            mode="lines+markers",
            line={"color": COLOURS["expansion"], "width": 3},
            fill="tozeroy",
            fillcolor="rgba(30,136,229,0.1)",
        )
    )
    mrr.update_layout(
        **layout(
            numbers,
            xaxis={"type": "category"},
            yaxis={"title": {"text": f"MRR ({numbers.currency})"}, "rangemode": "tozero"},
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
                y=[getattr(m, key) for m in months],
                mode="lines+markers",
                line={"color": COLOURS[key[:3]], "width": width, "dash": dash},
                hovertemplate="%{y:.1%}",
            )
        )
    retention.update_layout(
        **layout(
            numbers,
            xaxis={"type": "category"},
            yaxis={"title": {"text": "Retention"}, "tickformat": ".0%"},
        )
    )
    section.charts += ["chart-mrr", "chart-retention"]
    headers = [
        "Month", "MRR", "ARR", "Paying accounts", "ARPA", "NDR", "GRR", "NDR (TTM)", "GRR (TTM)",
        "Quick ratio", "Upsell conversion",
    ]  # fmt: skip
    rows = [
        [
            m.month,
            numbers.money(m.mrr_end),
            numbers.money(m.arr),
            numbers.count(m.paying_accounts),
            numbers.money(m.arpa),
            numbers.percent(m.ndr),
            numbers.percent(m.grr),
            numbers.percent(m.ndr_ttm),
            numbers.percent(m.grr_ttm),
            numbers.number(m.quick_ratio),
            numbers.percent(m.upsell_conversion),
        ]
        for m in months
    ]
    section.tables.append(
        Table("MRR and retention per month", headers, rows, [False] + [True] * 10)
    )
    return section, mrr, retention


def causes(months: Sequence[Month], numbers: Numbers) -> tuple[Section, go.Figure | None]:
    section = Section(
        "causes",
        "Expansion by cause",
        "Each bar is a month's expansion MRR, split by what caused it: a plan upgrade (upsell), "
        "an add-on, a cross-sell, more units (quantity) or a price change.",
    )
    shown = [c for c in CAUSES if any(c in m.expansion_by_cause for m in months)]
    if not months or not shown:
        section.empty.append("No expansion was recorded in this period.")
        return section, None
    x = [m.month for m in months]
    fig = go.Figure()
    for i, cause in enumerate(shown):
        fig.add_trace(
            go.Bar(
                name=label(cause),
                x=x,
                y=[float(m.expansion_by_cause.get(cause) or 0) for m in months],
                marker_color=CAUSE_COLOURS[i % len(CAUSE_COLOURS)],
            )
        )
    fig.update_layout(
        **layout(
            numbers,
            barmode="stack",
            legend={"orientation": "h", "y": -0.2, "traceorder": "normal"},
            xaxis={"type": "category"},
            yaxis={"title": {"text": f"Expansion MRR ({numbers.currency})"}},
        )
    )
    rows = []
    for m in months:
        amounts = [m.expansion_by_cause.get(c) or Decimal(0) for c in shown]
        rows.append(
            [m.month, *(numbers.money(a) for a in amounts), numbers.money(sum(amounts, Decimal(0)))]
        )
    section.charts.append("chart-causes")
    section.tables.append(
        Table(
            "Expansion MRR by cause",
            ["Month", *(label(c) for c in shown), "Total"],
            rows,
            [False] + [True] * (len(shown) + 1),
        )
    )
    return section, fig


def cohorts(cohorts: Sequence[Cohort], numbers: Numbers) -> tuple[Section, go.Figure | None]:
    section = Section(
        "cohorts",
        "Cohorts",
        "Each row is the accounts that signed up in a month; each column is months since signup. "
        "The colour is net dollar retention against the cohort's first month: green above "
        "100 %, red below. The tables give NDR and logo retention (the share of accounts still "
        "paying).",
    )
    ages = sorted({a.age for c in cohorts for a in c.ages})
    if not cohorts or not ages:
        section.empty.append("No cohorts to show: there are no paying accounts in this period yet.")
        return section, None
    grid: dict[tuple[str, int], CohortAge] = {(c.cohort, a.age): a for c in cohorts for a in c.ages}
    names = [c.cohort for c in cohorts]
    z = [[a.ndr if (a := grid.get((n, age))) else None for age in ages] for n in names]
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
        **layout(
            numbers,
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
        if key == "feature_adoption" and all(a.feature_adoption is None for a in grid.values()):
            continue
        rows = [
            [
                c.cohort,
                numbers.count(c.accounts),
                *(
                    numbers.percent(getattr(grid[(c.cohort, age)], key))
                    if (c.cohort, age) in grid
                    else ""
                    for age in ages
                ),
            ]
            for c in cohorts
        ]
        section.tables.append(Table(caption, headers, rows, numeric))
    return section, fig
