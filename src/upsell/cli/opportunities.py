"""`upsell opportunities`: every account's candidates as of a date, the tables on the terminal."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from upsell.cli.console import err, errors
from upsell.cli.options import (
    EngineOption,
    RebuildOption,
    WorkspaceOption,
    as_of,
    as_of_option,
    json_option,
    open_workspace,
    out_option,
)
from upsell.cli.output import write_lines
from upsell.domain.money import format_money

if TYPE_CHECKING:
    from upsell.domain.opportunities import Opportunity
    from upsell.domain.signals import AccountSignals
    from upsell.flows.opportunities import OpportunityRun


def opportunities(
    as_of_text: Annotated[
        str,
        as_of_option(
            "The date to look from (YYYY-MM-DD): the signals see the whole days before it."
        ),
    ],
    workspace: WorkspaceOption = None,
    out: Annotated[
        Path | None,
        out_option("Write every candidate, qualified or not (.jsonl, .csv or .parquet)."),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account", metavar="ID", help="Explain one account: its signals and every candidate."
        ),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", metavar="N", min=0, help="Rows in the terminal table.")
    ] = 20,
    engine: EngineOption = "duckdb",
    rebuild: RebuildOption = False,
    as_json: Annotated[bool, json_option("Print the candidate lines (JSONL) on stdout.")] = False,
) -> None:
    """Find every account's expansion and retention opportunities as of a date, qualify them and
    explain them (docs/opportunities.md).

    The daily usage rollups are brought up to date first (only events stored since the last run
    are read). A table of the top qualified candidates by expected value goes to stderr.
    """
    from upsell.flows.opportunities import find_all

    day = as_of(as_of_text)
    with errors():
        with (
            open_workspace(workspace, engine) as ws,
            err.status("Computing signals and opportunities"),
        ):
            run = find_all(ws, day, rebuild=rebuild, account_id=account)
        lines = [o.to_json() for o in run.opportunities]
        if out is not None:
            n = write_lines(out, lines)
            err.print(f"Wrote {n:,} candidates to {out}", highlight=False)
    if account is not None:
        print_account(err, run, account)
    else:
        print_summary(err, run, top)
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line, ensure_ascii=False))


def _money(o: Opportunity) -> str:
    return format_money(o.expected_mrr_delta.rounded(), "en")


def print_summary(console: Console, run: OpportunityRun, top: int) -> None:
    found = run.opportunities
    qualified = [o for o in found if o.qualified]
    r = run.refresh
    console.print(
        f"\nAs of {run.as_of}: {run.accounts:,} accounts, {len(found):,} candidates, "
        f"{len(qualified):,} qualified ({r.events_read:,} new events rolled up"
        f"{', rollups rebuilt' if r.rebuilt else ''}).",
        highlight=False,
        soft_wrap=True,
    )
    kinds = Table(title="Candidates by kind", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("kind", "qualified", "disqualified", "expected MRR (qualified, base)"):
        kinds.add_column(name, justify="left" if name == "kind" else "right", no_wrap=True)
    for kind in ("upsell", "add_on", "cross_sell", "save"):
        mine = [o for o in found if o.kind == kind]
        good = [o for o in mine if o.qualified]
        total = sum((o.expected_mrr_delta_base.amount for o in good), start=0)
        kinds.add_row(kind, f"{len(good):,}", f"{len(mine) - len(good):,}", f"{total:,.2f}")
    console.print(kinds)
    gates = Counter(g for o in found for g in o.gates)
    if gates:
        t = Table(title="Disqualified by gate", title_justify="left", box=box.SIMPLE_HEAD)
        t.add_column("gate", no_wrap=True)
        t.add_column("candidates", justify="right", no_wrap=True)
        for gate, n in gates.most_common():
            t.add_row(gate, f"{n:,}")
        console.print(t)
    best = sorted(qualified, key=lambda o: (-o.priority, o.account_id, o.offer_id))[:top]
    t = Table(
        title=f"Top {len(best)} qualified by expected value",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("account", "kind", "offer", "MRR delta", "score", "why"):
        t.add_column(name, justify="right" if name in ("MRR delta", "score") else "left")
    for o in best:
        t.add_row(o.account_id, o.kind, o.offer_id, _money(o), f"{o.score:.2f}", o.sentence)
    console.print(t)


def print_account(console: Console, run: OpportunityRun, account_id: str) -> None:
    s = run.signals[account_id]
    console.print(f"\n[bold]{account_id}[/] as of {run.as_of}", highlight=False)
    for line in _facts(s):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    if not run.opportunities:
        console.print("  No candidate: no limit near, no blocked feature, no risk signal.")
    for o in run.opportunities:
        verdict = "qualified" if o.qualified else "stopped by " + ", ".join(o.gates)
        if o.route == "csm":
            verdict += ", through a customer-success manager"
        console.print(
            f"\n  {o.offer_id}: {_money(o)} a month, score {o.score:.2f}, {verdict}",
            highlight=False,
            soft_wrap=True,
        )
        for r in o.reasons:
            console.print(f"    - {r.text}", highlight=False, soft_wrap=True, markup=False)


def _facts(s: AccountSignals) -> list[str]:
    plan = s.plan_id or "no plan"
    if s.trialing:
        plan += " (trial)"
    lines = [
        f"plan {plan}, MRR {format_money(s.mrr.rounded(), 'en')}, tenure {s.tenure_days} days, "
        + (f"activated on {s.activated_on}" if s.activated else "not activated"),
        f"{s.industry or 'industry unknown'}, {s.employees or '?'} employees, "
        f"{s.country or '?'}, {s.currency}, {s.language or 'en'}",
        f"engagement: {s.engagement.active_users_30d} active users, "
        f"{s.engagement.active_days_30d} active days and {s.engagement.events_30d:,} events in 30 "
        f"days ({s.engagement.trend})",
    ]
    for m in s.metrics.values():
        if m.limit is None and not m.value:
            continue
        limit = "unlimited" if m.limit is None else f"{m.limit:g}"
        pace = ""
        if m.days_to_limit == 0:
            pace = ", at the limit"
        elif m.days_to_limit is not None:
            pace = f", limit in {m.days_to_limit:.0f} days at this pace"
        lines.append(f"{m.metric}: {m.value:g} of {limit}{pace}")
    blocked = [f"{f.feature} x{f.blocked_30d}" for f in s.features.values() if f.blocked_30d]
    if blocked:
        lines.append("blocked in 30 days: " + ", ".join(blocked))
    r = s.risk
    risks = [
        *(["cancel requested"] if r.cancel_requested else []),
        *(
            [f"downgrade to {r.downgrade_requested_to} requested"]
            if r.downgrade_requested_to
            else []
        ),
        *([f"{r.payment_failures_30d} failed payments"] if r.payment_failures_30d else []),
        *([f"{r.open_tickets} open tickets"] if r.open_tickets else []),
        *([f"NPS {r.nps_score}"] if r.nps_score is not None else []),
    ]
    if risks:
        lines.append("risk: " + ", ".join(risks))
    return lines
