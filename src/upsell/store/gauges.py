"""What the service's ``/metrics`` reads from the store when it is scraped: one cheap query each
(an aggregate over a small table, or the newest row by primary key)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from upsell.store.schema import contacts, events, pending_events, runs


def pending_count(*, conn: sa.Connection) -> int:
    """How many events wait for their user's account (`pending_events`)."""
    count: int = conn.execute(sa.select(sa.func.count()).select_from(pending_events)).scalar_one()
    return count


def last_received_at(*, conn: sa.Connection) -> datetime | None:
    """When the newest event was received, attributed or waiting; None before the first one.

    Read from the row with the highest `seq` of each table (the primary key), not a max() over
    `received_at`, which has no index."""
    newest = [
        conn.execute(sa.select(t.c.received_at).order_by(t.c.seq.desc()).limit(1)).scalar()
        for t in (events, pending_events)
    ]
    return max((at for at in newest if at is not None), default=None)


def runs_by_status(*, conn: sa.Connection) -> dict[str, int]:
    """The number of runs of the daily job in each status."""
    rows = conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status))
    return {status: n for status, n in rows}


def last_succeeded_run(*, conn: sa.Connection) -> datetime | None:
    """When the latest successful run finished; None before the first."""
    finished: datetime | None = conn.execute(
        sa.select(sa.func.max(runs.c.finished_at)).where(runs.c.status == "succeeded")
    ).scalar_one()
    return finished


def contacts_by_channel(*, conn: sa.Connection) -> dict[tuple[str, str], int]:
    """The number of contacts (offers decided) by (channel, status): ``sent`` is delivered."""
    c = contacts.c
    rows = conn.execute(
        sa.select(c.channel, c.status, sa.func.count()).group_by(c.channel, c.status)
    )
    return {(channel, status): n for channel, status, n in rows}
