"""`upsell demo`: the main job on the demo company, which is simulated on first use."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from upsell.cli.console import err, errors, fail
from upsell.cli.opportunities import print_summary
from upsell.cli.options import json_option
from upsell.cli.output import write_report
from upsell.cli.report import print_report
from upsell.cli.run import print_message, print_run
from upsell.domain.metrics import arr
from upsell.domain.money import Money, format_money

if TYPE_CHECKING:
    from upsell.flows.summary import DataSummary

DEMO_WORKSPACE = Path("demo-workspace")
#: The demo company's last weeks are replayed through weekly runs, so that its report has offers.
DEMO_WEEKS = 8


def demo(
    workspace: Annotated[
        Path,
        typer.Option("--workspace", "-w", metavar="DIR", help="The demo workspace folder."),
    ] = DEMO_WORKSPACE,
    as_json: Annotated[bool, json_option("Print the summary as JSON on stdout.")] = False,
) -> None:
    """Run the main job on the demo company, building the demo workspace first if it is missing.

    The demo company is the simulator's default SaaS company (5,000 accounts, 12 months, seed 0);
    use `upsell init DIR --demo` for another size, model or seed and pass its folder with -w. Today
    the main job imports the data, summarises it (accounts, MRR, plan mix, top usage), finds the
    opportunities the day after its last event (the top ten by expected value) and decides the
    offers the playbooks would make that day (a dry run: nothing is recorded or sent), and writes
    the revenue report (report.html in the workspace folder) with its headline numbers.
    """
    from upsell.flows.offers import run_offers
    from upsell.flows.opportunities import find_all
    from upsell.flows.report import build_report
    from upsell.flows.summary import summarize
    from upsell.settings import Settings
    from upsell.workspace import Workspace

    settings = Settings()
    with errors():
        if not Workspace.exists(workspace, settings):
            from upsell.cli.simulate import build_demo
            from upsell.simulator.world import SimConfig

            build_demo(workspace, SimConfig(), settings, DEMO_WEEKS)
        with Workspace.open(workspace, settings) as ws:
            if ws.loaded_catalog() is None:
                raise fail(f"{workspace} has no catalog; import one or rebuild the demo")
            with err.status("Summarising the workspace"):
                summary = summarize(ws)
            day = summary.as_of.date() + timedelta(days=1)
            with err.status("Computing signals and opportunities"):
                run = find_all(ws, day)
            with err.status("Deciding offers (dry run)"):
                decided = run_offers(ws, day, channels=None)
            best = sorted(
                (o for o in run.opportunities if o.qualified),
                key=lambda o: (-o.priority, o.account_id, o.offer_id),
            )[:10]
            with err.status("Computing the report"):
                data = build_report(ws, top=[o.to_json() for o in best])
            report_file = workspace / "report.html"
            write_report(data, report_file)
    _print_summary(workspace, summary)
    print_summary(err, run, top=10)
    print_run(err, decided)
    customer = [x for x in decided.lines if x["channel"] in ("in_app", "email")]
    if customer or decided.lines:
        print_message(err, (customer or decided.lines)[0])
    print_report(err, data)
    err.print(f"\nThe report: {report_file.resolve()}", highlight=False)
    if as_json:
        typer.echo(json.dumps(_summary_dict(summary), indent=2))


def _summary_dict(s: DataSummary) -> dict[str, object]:
    return {
        "as_of": s.as_of.isoformat(),
        "accounts": s.accounts,
        "paying_accounts": s.paying_accounts,
        "mrr": str(s.mrr.rounded().amount),
        "currency": s.mrr.currency,
        "plans": [
            {"plan_id": p.plan_id, "accounts": p.accounts, "mrr": str(p.mrr.rounded().amount)}
            for p in s.plans
        ],
        "no_plan": s.no_plan,
        "events": s.events,
        "top_events_30d": [{"event": e, "count": n} for e, n in s.top_events],
    }


def _print_summary(workspace: Path, s: DataSummary) -> None:
    def money(m: Money) -> str:
        return format_money(m.rounded(), "en")

    err.print(
        f"\n[bold]{workspace}[/] as of {s.as_of:%Y-%m-%d %H:%M} UTC: {s.accounts:,} accounts, "
        f"{s.paying_accounts:,} paying, MRR {money(s.mrr)} (ARR {money(Money(arr(s.mrr.rounded().amount), s.mrr.currency))}), "
        f"{s.events:,} events.",
        highlight=False,
        soft_wrap=True,
    )
    plans = Table(title="Plan mix", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("plan", "accounts", "share", "MRR"):
        plans.add_column(name, justify="left" if name == "plan" else "right", no_wrap=True)
    with_plan = sum(p.accounts for p in s.plans) or 1
    for p in s.plans:
        plans.add_row(p.plan_id, f"{p.accounts:,}", f"{p.accounts / with_plan:.0%}", money(p.mrr))
    plans.add_row("(none: cancelled)", f"{s.no_plan:,}", "", "")
    err.print(plans)
    usage = Table(
        title="Top usage, last 30 days", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    usage.add_column("event", no_wrap=True)
    usage.add_column("count", justify="right", no_wrap=True)
    for name, n in s.top_events:
        usage.add_row(name, f"{n:,}")
    err.print(usage)
