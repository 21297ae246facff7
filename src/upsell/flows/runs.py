"""The daily job as a recorded run: `upsell run`, the scheduler and the admin API all run
`flows.offers.run_offers` through here (docs/service.md, "Runs" and "Scheduler").

A run is first *claimed*: the job's lock is taken (`store.locks`; so two servers, or a server and
the command line, never run the job at once) and a ``queued`` row is recorded. It is then
*executed*: ``running``, then ``succeeded`` with a summary of what it did, or ``failed`` with the
reason; the lock is freed either way. A run left ``queued`` or ``running`` by a process that died is
marked failed by the next claim (whoever holds the lock knows no one else is running).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from upsell.errors import UpsellError
from upsell.store.locks import HeldLock, try_lock
from upsell.store.runs import Run, create_run, get_run, list_runs, set_run_status, unfinished_runs
from upsell.workspace import Workspace

if TYPE_CHECKING:
    # The decision step (scipy, the engine) loads when a run executes, not with the service.
    from upsell.flows.offers import RunResult

log = logging.getLogger("upsell.flows.runs")

#: The name of the daily job's lock.
JOB_LOCK = "daily-run"
INTERRUPTED = "interrupted: the process running it stopped before it finished"


class RunBusy(UpsellError):
    """Another run of the daily job holds its lock; `running` is that run when it is recorded."""

    def __init__(self, running: Run | None) -> None:
        self.running = running
        if running is None:
            what = "another run of the daily job is in progress"
        else:
            what = (
                f"run {running.run_id} of the daily job (as of {running.as_of}, "
                f"from {running.trigger}) is in progress"
            )
        super().__init__(f"{what}; try again when it has finished")


@dataclass
class Claim:
    """A run recorded as queued, with the job's lock held for it."""

    run: Run
    lock: HeldLock
    dry_run: bool


def claim_run(
    ws: Workspace,
    as_of: date,
    *,
    trigger: str,
    dry_run: bool = False,
    unless: Callable[[Sequence[Run]], bool] | None = None,
) -> Claim | None:
    """Take the job's lock and record a queued run at `as_of`; RunBusy when another run holds the
    lock. `unless` is asked, under the lock, about the runs already recorded at `as_of` (newest
    first): when it says so, nothing is recorded and None comes back."""
    lock = try_lock(ws.db, JOB_LOCK)
    if lock is None:
        with ws.db.connect() as conn:
            running = unfinished_runs(conn=conn)
        raise RunBusy(running[-1] if running else None)
    try:
        now = datetime.now(UTC)
        # Reads, then writes: IMMEDIATE takes SQLite's write lock up front (store/db.py).
        immediate = ws.db.connect().execution_options(sqlite_begin="IMMEDIATE")
        with immediate as conn, conn.begin():
            for stale in unfinished_runs(conn=conn):
                set_run_status(
                    conn=conn, run_id=stale.run_id, status="failed", at=now, error=INTERRUPTED
                )
            if unless is not None and unless(list_runs(conn=conn, as_of=as_of)):
                lock.release()
                return None
            run = create_run(
                conn=conn, as_of=as_of, trigger=trigger, at=now, summary={"dry_run": dry_run}
            )
    except BaseException:
        lock.release()
        raise
    return Claim(run, lock, dry_run)


def execute_run(ws: Workspace, claim: Claim, *, rebuild: bool = False) -> RunResult:
    """Run a claimed run: the workspace's playbooks, templates and channels (none on a dry run),
    then `run_offers`. Records how it ended, frees the lock, and re-raises a failure."""
    db, run_id = ws.db, claim.run.run_id
    try:
        with db.begin() as conn:
            set_run_status(conn=conn, run_id=run_id, status="running", at=datetime.now(UTC))
        playbooks = ws.playbooks(ws.catalog())
        ws.templates.require(playbooks.templates)
        channels = None if claim.dry_run else ws.channels(playbooks)
        from upsell.flows.offers import run_offers

        result = run_offers(ws, claim.run.as_of, channels=channels, rebuild=rebuild)
        with db.begin() as conn:
            set_run_status(
                conn=conn,
                run_id=run_id,
                status="succeeded",
                at=datetime.now(UTC),
                summary=summarize(result),
            )
        return result
    except BaseException as exc:
        _record_failure(ws, run_id, exc)
        raise
    finally:
        claim.lock.release()


def _record_failure(ws: Workspace, run_id: int, exc: BaseException) -> None:
    reason = str(exc) if isinstance(exc, UpsellError) else f"{type(exc).__name__}: {exc}"
    try:
        with ws.db.begin() as conn:
            set_run_status(
                conn=conn, run_id=run_id, status="failed", at=datetime.now(UTC), error=reason
            )
    except Exception:
        log.exception("could not record that run %s failed", run_id)


def run_job(
    ws: Workspace, as_of: date, *, trigger: str, dry_run: bool = False, rebuild: bool = False
) -> tuple[Run, RunResult]:
    """Claim and execute a run at once (the command line's); the run as recorded at the end."""
    claim = claim_run(ws, as_of, trigger=trigger, dry_run=dry_run)
    assert claim is not None
    result = execute_run(ws, claim, rebuild=rebuild)
    with ws.db.connect() as conn:
        run = get_run(conn=conn, run_id=claim.run.run_id)
    assert run is not None
    return run, result


def summarize(r: RunResult) -> dict[str, Any]:
    """What a run did, as the JSON kept with it: the numbers `upsell run` prints."""
    lines = r.lines
    return {
        "dry_run": r.dry_run,
        "accounts": r.opportunities.accounts,
        "events_rolled_up": r.opportunities.refresh.events_read,
        "offers": len(lines),
        "held_out": len(r.held_out) + r.held_out_reused,
        "reused": r.reused,
        "expected_value": f"{sum(float(x.get('expected_value') or 0) for x in lines):.2f}",
        "by_kind": dict(Counter(x["kind"] for x in lines).most_common()),
        "by_channel": dict(Counter(x["channel"] for x in lines).most_common()),
        "by_playbook": dict(Counter(x["playbook"] for x in lines).most_common()),
        "refusals": dict(Counter(x.guardrail for x in r.refusals).most_common()),
        "gates": dict(r.gates.most_common()),
        "delivered": {f"{c}: {s}": n for (c, s), n in sorted(r.delivered.items())},
        "failed_deliveries": len(r.failures),
        "left_to_another_process": r.elsewhere,
    }
