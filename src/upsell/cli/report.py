"""`upsell report`: revenue and expansion for a period, as JSON or a page; the headline numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from upsell.cli.console import err, errors, fail
from upsell.cli.options import (
    EngineOption,
    WorkspaceOption,
    as_of,
    json_option,
    open_workspace,
    out_option,
)
from upsell.cli.output import REPORT_FORMATS, write_report
from upsell.domain.messages import known_locale
from upsell.domain.money import Money, format_money

if TYPE_CHECKING:
    from upsell.domain.report import Report


def report(
    workspace: WorkspaceOption = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="DATE", help="First month (YYYY-MM-DD; default: the first data)."
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="DATE", help="Last month (default: the last data)."),
    ] = None,
    out: Annotated[
        Path | None,
        out_option("Write the report: .html (a self-contained page with charts) or .json."),
    ] = None,
    locale: Annotated[
        str | None,
        typer.Option(
            "--locale",
            metavar="L",
            help="Locale for money and numbers (en, de, nl_BE, ...; default: config.yaml's "
            "report: locale, else en).",
        ),
    ] = None,
    engine: EngineOption = "duckdb",
    as_json: Annotated[bool, json_option("Print the report as JSON on stdout.")] = False,
) -> None:
    """Report revenue and expansion (docs/metrics.md): MRR movements by month with expansion by
    cause, NDR/GRR, quick ratio, ARPA, LTV, upsell conversion, the offer funnel, incremental revenue
    against the holdout, cohorts, and the top offers of the latest run.

    The settings of config.yaml's metrics: section are used and stated in the report. The
    headline numbers and the offer funnel by channel (with the dismissed offers) go to stderr.
    """
    from upsell.flows.report import build_report

    if out is not None and out.suffix.lower() not in REPORT_FORMATS:
        raise fail(f"--out must end in .html or .json, got {out.name!r}")
    if locale is not None and not known_locale(locale):
        raise fail(f"--locale {locale!r} is not a locale such as en, de or nl_BE")
    first = as_of(from_) if from_ else None
    last = as_of(to) if to else None
    if first and last and last < first:
        raise fail(f"--to {last} is before --from {first}")
    with errors():
        with open_workspace(workspace, engine) as ws, err.status("Computing the report"):
            data = build_report(ws, first=first, last=last, locale=locale)
        if out is not None:
            write_report(data, out)
            err.print(f"Wrote the report to {out}", highlight=False)
    print_report(err, data)
    if as_json:
        typer.echo(json.dumps(data.to_json(), indent=2, ensure_ascii=False))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def print_report(console: Console, report: Report) -> None:
    """The period, its settings, the headline numbers, the last six months, the offer funnel by
    channel (with the dismissed offers) and the holdout."""
    currency, locale = report.currency, report.locale

    def money(x: Decimal | None) -> str:
        return "—" if x is None else format_money(Money(x, currency), locale)

    s, settings = report.summary, report.settings
    window = settings.reactivation_window_days
    console.print(
        f"\nRevenue from {report.first} to {report.last} ({currency}; churn at "
        f"{settings.churn_at}, reactivation "
        f"{'any time' if window is None else f'within {window} days'}, gross margin "
        f"{settings.gross_margin:.0%}, attribution {settings.attribution_days} days):",
        highlight=False,
        soft_wrap=True,
    )
    t = Table(box=box.SIMPLE_HEAD, show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("metric")
    t.add_column("value", justify="right")
    median = s.time_to_upsell_days.median
    pairs = [
        ("MRR", money(s.mrr)), ("ARR", money(s.arr)),
        ("paying accounts", f"{s.paying_accounts:,}"), ("ARPA", money(s.arpa)),
        ("NDR (TTM)", _pct(s.ndr_ttm)), ("GRR (TTM)", _pct(s.grr_ttm)),
        ("quick ratio", "—" if s.quick_ratio is None else f"{s.quick_ratio:.2f}"),
        ("upsell conversion", _pct(s.upsell_conversion)),
        ("average upgrade", money(s.average_upgrade_value)),
        ("time to upsell", "—" if median is None else f"{median} days"),
        ("LTV", money(s.ltv)), ("LTV uplift", money(s.ltv_uplift)),
        ("reach", _pct(s.reach)), ("", ""),
    ]  # fmt: skip
    for k in range(0, len(pairs), 2):
        t.add_row(*pairs[k], *pairs[k + 1])
    console.print(t)
    months = Table(
        title=f"MRR movements by month ({currency}, whole units)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("month", "new", "react.", "expansion", "contraction", "churn", "MRR", "NDR"):
        months.add_column(name, justify="left" if name == "month" else "right", no_wrap=True)
    for m in report.months[-6:]:
        amounts = (m.new, m.reactivation, m.expansion, m.contraction, m.churn, m.mrr_end)
        months.add_row(m.month, *(f"{x:,.0f}" for x in amounts), _pct(m.ndr))
    console.print(months)
    channels = report.offers.by_channel
    if channels:
        funnel = Table(
            title="Offer funnel by channel (dismissed: share of contacted)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        names = ("channel", "contacted", "opened", "clicked", "converted", "conversion")
        for name in names:
            funnel.add_column(name, justify="left" if name == "channel" else "right", no_wrap=True)
        funnel.add_column("dismissed", justify="right")  # wraps before its share when narrow
        for channel, f in channels.items():
            counts = (f.contacted, f.opened, f.clicked, f.converted)
            dismissed = f"{f.dismissed:,}"
            if f.dismissal is not None:
                dismissed += f" ({_pct(f.dismissal)})"
            funnel.add_row(channel, *(f"{n:,}" for n in counts), _pct(f.conversion), dismissed)
        console.print(funnel)
    inc = report.incremental
    if inc is not None:
        console.print(
            f"Offers earned {money(inc.expansion_mrr)} of expansion MRR over the holdout "
            f"({inc.confidence:.0%} interval {money(inc.ci_low)} to {money(inc.ci_high)}; "
            f"{inc.treated_accounts:,} treated, {inc.holdout_accounts:,} held out).",
            highlight=False,
            soft_wrap=True,
        )
    elif channels:
        console.print(
            "No account was held out in the period, so what the offers earned cannot be measured: "
            "the holdout is the comparison (playbooks.yaml settings.holdout).",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print("No offers recorded in the period: run `upsell run` to make some.")
