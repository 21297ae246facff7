"""Runs of the daily job (`upsell run`, the scheduler, the admin API): one row a run, from queued to
succeeded or failed, with a JSON summary of what it did (docs/service.md, "Runs")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, cast

import sqlalchemy as sa

from upsell.domain.calendar import day_start, iso
from upsell.store.schema import RUN_STATUSES, RUN_TRIGGERS
from upsell.store.schema import runs as runs_table

RunStatus = Literal["queued", "running", "succeeded", "failed"]
RunTrigger = Literal["schedule", "api", "cli"]


@dataclass(frozen=True)
class Run:
    """One run of the daily job at `as_of` (a day). `summary` is None until it finished; `error`
    says why a failed run failed. Times are aware UTC."""

    run_id: int
    as_of: date
    trigger: RunTrigger
    status: RunStatus
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    summary: Mapping[str, Any] | None = None
    error: str | None = None

    @property
    def dry_run(self) -> bool:
        return bool(self.summary and self.summary.get("dry_run"))

    def to_json(self) -> dict[str, Any]:
        def when(at: datetime | None) -> str | None:
            return None if at is None else iso(at)

        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "trigger": self.trigger,
            "status": self.status,
            "requested_at": iso(self.requested_at),
            "started_at": when(self.started_at),
            "finished_at": when(self.finished_at),
            "summary": None if self.summary is None else dict(self.summary),
            "error": self.error,
        }


def _run(row: sa.Row[Any]) -> Run:
    return Run(
        run_id=row.run_id,
        as_of=row.as_of.date(),
        trigger=cast(RunTrigger, row.trigger),
        status=cast(RunStatus, row.status),
        requested_at=row.requested_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        summary=row.summary,
        error=row.error,
    )


def create_run(
    *,
    conn: sa.Connection,
    as_of: date,
    trigger: str,
    at: datetime,
    summary: Mapping[str, Any] | None = None,
) -> Run:
    """Record a queued run; `summary` may carry what was asked (``{"dry_run": true}``)."""
    if trigger not in RUN_TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(RUN_TRIGGERS)}, got {trigger!r}")
    result = conn.execute(
        sa.insert(runs_table).values(
            as_of=day_start(as_of),
            trigger=trigger,
            status="queued",
            requested_at=at,
            summary=None if summary is None else dict(summary),
        )
    )
    assert result.inserted_primary_key is not None
    run = get_run(conn=conn, run_id=int(result.inserted_primary_key[0]))
    assert run is not None
    return run


def set_run_status(
    *,
    conn: sa.Connection,
    run_id: int,
    status: str,
    at: datetime,
    summary: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Move a run on: ``running`` sets `started_at`, ``succeeded`` and ``failed`` `finished_at`
    (with the summary, or the error)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
    values: dict[str, Any] = {"status": status}
    if status == "running":
        values["started_at"] = at
    else:
        values["finished_at"] = at
    if summary is not None:
        values["summary"] = dict(summary)
    if error is not None:
        values["error"] = error
    conn.execute(sa.update(runs_table).where(runs_table.c.run_id == run_id).values(values))


def get_run(*, conn: sa.Connection, run_id: int) -> Run | None:
    row = conn.execute(sa.select(runs_table).where(runs_table.c.run_id == run_id)).first()
    return None if row is None else _run(row)


def list_runs(
    *, conn: sa.Connection, limit: int = 50, before: int | None = None, as_of: date | None = None
) -> list[Run]:
    """The newest runs first; `before` (a run id) pages on, `as_of` keeps one day's."""
    c = runs_table.c
    query = sa.select(runs_table).order_by(c.run_id.desc()).limit(limit)
    if before is not None:
        query = query.where(c.run_id < before)
    if as_of is not None:
        query = query.where(c.as_of == day_start(as_of))
    return [_run(row) for row in conn.execute(query)]


def unfinished_runs(*, conn: sa.Connection) -> list[Run]:
    """Runs still queued or running, oldest first."""
    c = runs_table.c
    query = sa.select(runs_table).where(c.status.in_(("queued", "running"))).order_by(c.run_id)
    return [_run(row) for row in conn.execute(query)]
