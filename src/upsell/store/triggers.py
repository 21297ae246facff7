"""The real-time trigger queue (docs/in-app.md, "Real-time triggers"): accounts to decide for now.

`enqueue` runs in the transaction that stores the events or traits that triggered, so that an
event acknowledged is never a trigger lost. One row per account: a second trigger while the first
waits changes nothing (the earliest time is kept, for the latency), one that arrives while a worker
is deciding the account (`requeued_at`) makes it pending again once that decision is recorded, and
one within the cooldown after a decision waits for the end of it (`cool_until`, so that an account
hitting its limit every second is not decided every second).

A worker takes pending rows with `claim`: a lease (`claimed_by` until `claimed_until`) that
another worker, in this process or another server on the same database, does not take while it
holds; on PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``, so that two servers claiming at
once take different rows. `finish` ends a claim in the transaction that records its decisions, and
only where the lease still holds (`held`); `release` gives a claim back after a failure, due again
later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upsell.store import bulk
from upsell.store.db import in_chunks
from upsell.store.schema import trigger_queue as queue

#: How long a claim holds without being finished; a worker that died loses its claims after it.
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Entry:
    """A claimed trigger: the account, why it was queued, since when, and when it became due."""

    account_id: str
    reason: str
    enqueued_at: datetime
    due_at: datetime
    attempts: int


_ENQUEUE_COLUMNS = ("account_id", "reason", "enqueued_at", "due_at")


def enqueue(*, conn: sa.Connection, triggered: Mapping[str, tuple[str, datetime]]) -> None:
    """Queue each account of `triggered` (account id → (reason, instant)) on `conn`'s transaction;
    see the module docstring for what a row already there keeps. One statement, run through the
    driver's executemany with values in its form (`store.bulk`): it is part of every ingestion
    request that triggers."""
    if not triggered:
        return
    instant = bulk.instants(conn)
    rows = [
        (account_id, reason, instant(at), instant(at))
        for account_id, (reason, at) in sorted(triggered.items())
    ]
    bulk.execute_many(conn, "trigger_queue", _enqueue_statement, _ENQUEUE_COLUMNS, rows)


def _enqueue_statement(conn: sa.Connection) -> Any:
    q = queue.c
    insert = bulk.upsert(conn, queue)
    new = insert.excluded
    claimed = q.claimed_by.is_not(None)
    idle = q.due_at.is_(None) & ~claimed
    return insert.on_conflict_do_update(
        index_elements=["account_id"],
        set_={
            "reason": sa.case((idle, new.reason), else_=q.reason),
            "enqueued_at": sa.case((idle, new.enqueued_at), else_=q.enqueued_at),
            "due_at": sa.case(
                (
                    idle,
                    sa.case((q.cool_until > new.enqueued_at, q.cool_until), else_=new.enqueued_at),
                ),
                else_=q.due_at,
            ),
            "requeued_at": sa.case(
                (claimed, sa.func.coalesce(q.requeued_at, new.enqueued_at)),
                else_=q.requeued_at,
            ),
        },
    )


def any_due(*, conn: sa.Connection, now: datetime) -> bool:
    """Whether a row is due and unclaimed (or its claim's lease is over): a read, so that an idle
    worker never takes the write lock (on SQLite, a transaction that read and then writes fails at
    once while another holds that lock)."""
    q = queue.c
    query = (
        sa.select(q.account_id)
        .where(q.due_at <= now, q.claimed_by.is_(None) | (q.claimed_until < now))
        .limit(1)
    )
    return conn.execute(query).first() is not None


def claim(*, conn: sa.Connection, holder: str, now: datetime, limit: int) -> list[Entry]:
    """Claim up to `limit` rows due at `now` (the oldest due first) for `holder`, on `conn`'s
    transaction (IMMEDIATE on SQLite)."""
    q = queue.c
    query = (
        sa.select(q.account_id, q.reason, q.enqueued_at, q.due_at, q.attempts)
        .where(q.due_at <= now, q.claimed_by.is_(None) | (q.claimed_until < now))
        .order_by(q.due_at, q.account_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    if not rows:
        return []
    ids = [r.account_id for r in rows]
    for chunk in in_chunks(ids):
        conn.execute(
            sa.update(queue)
            .where(q.account_id.in_(chunk))
            .values(claimed_by=holder, claimed_until=now + LEASE, attempts=q.attempts + 1)
        )
    return [
        Entry(r.account_id, r.reason, r.enqueued_at or r.due_at, r.due_at, r.attempts + 1)
        for r in rows
    ]


def held(*, conn: sa.Connection, holder: str, account_ids: Sequence[str]) -> set[str]:
    """The accounts among `account_ids` whose claim `holder` still holds, locked on PostgreSQL
    until `conn`'s transaction ends (so that no one takes them over meanwhile)."""
    q = queue.c
    out: set[str] = set()
    for chunk in in_chunks(account_ids):
        query = sa.select(q.account_id).where(q.account_id.in_(chunk), q.claimed_by == holder)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        out.update(conn.execute(query).scalars())
    return out


def finish(
    *,
    conn: sa.Connection,
    holder: str,
    account_ids: Sequence[str],
    now: datetime,
    cooldown: timedelta,
) -> None:
    """End `holder`'s claims of `account_ids`, decided at `now`: idle until the next trigger, or
    due again (after the cooldown) when one came while they were being decided."""
    q = queue.c
    cool = sa.literal(now + cooldown, type_=q.cool_until.type)
    for chunk in in_chunks(account_ids):
        mine = q.account_id.in_(chunk) & (q.claimed_by == holder)
        conn.execute(
            sa.update(queue)
            .where(mine)
            .values(
                enqueued_at=q.requeued_at,
                due_at=sa.case(
                    (q.requeued_at.is_(None), sa.null()),
                    (q.requeued_at > cool, q.requeued_at),
                    else_=cool,
                ),
                requeued_at=None,
                claimed_by=None,
                claimed_until=None,
                attempts=0,
                decided_at=now,
                cool_until=cool,
            )
        )


def release(
    *,
    conn: sa.Connection,
    holder: str,
    account_ids: Sequence[str],
    due: datetime | None,
) -> None:
    """Give back `holder`'s claims of `account_ids` without a decision: due again at `due`, or
    dropped (no longer pending) when `due` is None."""
    q = queue.c
    for chunk in in_chunks(account_ids):
        values: dict[str, Any] = {"claimed_by": None, "claimed_until": None, "due_at": due}
        if due is None:
            values.update(enqueued_at=None, requeued_at=None, attempts=0)
        conn.execute(
            sa.update(queue).where(q.account_id.in_(chunk), q.claimed_by == holder).values(**values)
        )


def depth(*, conn: sa.Connection) -> int:
    """How many accounts wait on the queue (being decided, or due later, included)."""
    n: int = conn.execute(
        sa.select(sa.func.count()).select_from(queue).where(queue.c.due_at.is_not(None))
    ).scalar_one()
    return n


def oldest_due(*, conn: sa.Connection) -> datetime | None:
    """The earliest due time of a pending account; None when none waits."""
    found: datetime | None = conn.execute(sa.select(sa.func.min(queue.c.due_at))).scalar_one()
    return found
