"""`upsell run`: decide, record and deliver the offers of a day; the tables on the terminal."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
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

if TYPE_CHECKING:
    from upsell.flows.offers import RunResult


def run(
    as_of_text: Annotated[
        str,
        as_of_option(
            "The date to decide at (YYYY-MM-DD): the signals see the whole days before it."
        ),
    ],
    workspace: WorkspaceOption = None,
    out: Annotated[
        Path | None, out_option("Write the decision lines (.jsonl, .csv or .parquet).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Decide and write --out, but record and send nothing."),
    ] = False,
    engine: EngineOption = "duckdb",
    rebuild: RebuildOption = False,
    as_json: Annotated[bool, json_option("Print the decision lines (JSONL) on stdout.")] = False,
) -> None:
    """Decide the one offer worth making to each account now, record it and deliver it
    (docs/decisions.md).

    Opportunities go through the workspace's playbooks.yaml (or the built-in playbooks) and its
    guardrails; each offer gets its message in the account's language and goes out through its
    channel (in-app queue, email over SMTP, CSM task or webhook, set up with UPSELL_* variables).
    Running the same --as-of again sends nothing twice and retries failed deliveries. A summary
    (offers by kind, channel and playbook; refusals by guardrail) goes to stderr. Every run is
    recorded (see the admin API's runs); while another run is in progress (a server's scheduler),
    the command stops with exit status 2. Exit status 1 when a delivery failed (the run itself
    completed; running the same --as-of again retries the failed ones).
    """
    from upsell.flows.runs import run_job

    day = as_of(as_of_text)
    with errors():
        with open_workspace(workspace, engine) as ws, err.status("Deciding offers"):
            # Recorded as a run (trigger cli), under the lock that keeps servers from running too.
            _, result = run_job(ws, day, trigger="cli", dry_run=dry_run, rebuild=rebuild)
        if out is not None:
            n = write_lines(out, result.lines)
            err.print(f"Wrote {n:,} decisions to {out}", highlight=False)
    print_run(err, result)
    if as_json:
        for line in result.lines:
            typer.echo(json.dumps(line, ensure_ascii=False))
    if result.failures:
        raise typer.Exit(1)  # for cron and monitoring: the run ended, but not every offer went out


def _counts(console: Console, title: str, header: str, counts: Iterable[tuple[str, int]]) -> None:
    rows = list(counts)
    if not rows:
        return
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    t.add_column(header, no_wrap=True)
    t.add_column("count", justify="right", no_wrap=True)
    for name, n in rows:
        t.add_row(name, f"{n:,}")
    console.print(t)


def print_run(console: Console, r: RunResult) -> None:
    lines = r.lines
    what = "decided (dry run: nothing recorded or sent)" if r.dry_run else "decided"
    value = sum(float(line.get("expected_value") or 0) for line in lines)
    console.print(
        f"\nAs of {r.as_of}: {len(lines):,} offers {what}, "
        f"{len(r.held_out) + r.held_out_reused:,} held out, "
        f"{r.opportunities.accounts:,} accounts; expected value {value:,.2f} (base currency)"
        + (f"; {r.reused:,} accounts kept the decision of an earlier run" if r.reused else "")
        + ".",
        highlight=False,
        soft_wrap=True,
    )
    _counts(console, "Offers by kind", "kind", Counter(x["kind"] for x in lines).most_common())
    _counts(
        console,
        "Offers by channel",
        "channel",
        Counter(f"{x['channel']} {x['placement']}" for x in lines).most_common(),
    )
    _counts(
        console,
        "Offers by playbook",
        "playbook",
        Counter(
            x["playbook"] + (f" ({x['variant']})" if x.get("variant") else "") for x in lines
        ).most_common(),
    )
    _counts(
        console,
        "Refusals by guardrail",
        "guardrail",
        Counter(x.guardrail for x in r.refusals).most_common(),
    )
    _counts(console, "Accounts stopped by an opportunity gate", "gate", r.gates.most_common())
    if r.delivered:
        _counts(
            console,
            "Deliveries",
            "channel: status",
            sorted((f"{c}: {s}", n) for (c, s), n in r.delivered.items()),
        )
    if r.elsewhere:
        console.print(
            f"{r.elsewhere:,} deliveries were claimed by another process, which sends them.",
            highlight=False,
        )
    for account_id, channel, detail in r.failures[:10]:
        console.print(
            f"[yellow]failed:[/] {account_id} by {channel}: {detail}",
            highlight=False,
            soft_wrap=True,
        )
    if len(r.failures) > 10:
        console.print(f"[yellow]…and {len(r.failures) - 10:,} more[/]", highlight=False)
    if r.failures:
        console.print(
            f"{len(r.failures):,} deliveries failed; run the same --as-of again to retry them.",
            highlight=False,
        )


def print_message(console: Console, line: dict[str, object]) -> None:
    """One decision's message in full, as the customer would read it."""
    m = line["message"]
    assert isinstance(m, dict)
    console.print(
        f"\nFor example, {line['account_id']} ({line['playbook']}, {line['channel']} "
        f"{line['placement']}, {m['locale']}):",
        highlight=False,
    )
    console.print(f"  [bold]{m['subject']}[/]", highlight=False, soft_wrap=True)
    for paragraph in str(m["body"]).split("\n\n"):
        console.print(f"  {paragraph}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"  [{m['cta']}] {m['cta_url']}", highlight=False, soft_wrap=True, markup=False)
