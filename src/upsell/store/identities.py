"""Who a user is: identities (user → account, email, language, traits), aliases, the events that
wait for their account (`pending_events`), and accounts created or updated by group calls.

Every writer here is an INSERT … ON CONFLICT, so two servers writing the same rows at once never
fail on a unique key; rows are written in key order so that two PostgreSQL transactions updating the
same rows cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from upsell.domain.accounts import Account
from upsell.store import bulk
from upsell.store.bulk import upsert
from upsell.store.db import in_chunks
from upsell.store.schema import accounts as accounts_table
from upsell.store.schema import aliases as aliases_table
from upsell.store.schema import identities as identities_table
from upsell.store.schema import pending_events as pending_table
from upsell.store.schema import users as users_table

#: How many alias hops are followed (a → b → c …); a longer chain, or a cycle, stops there.
MAX_ALIAS_HOPS = 10


@dataclass
class Identity:
    user_id: str
    account_id: str | None = None
    email: str | None = None
    language: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    """An event whose account is not known yet."""

    message_id: str
    user_id: str | None
    anonymous_id: str | None
    event: str
    timestamp: datetime
    properties: Mapping[str, Any]


def get_identities(*, conn: sa.Connection, user_ids: Iterable[str]) -> dict[str, Identity]:
    found: dict[str, Identity] = {}
    t = identities_table.c
    for chunk in in_chunks(set(user_ids)):
        query = sa.select(t.user_id, t.account_id, t.email, t.language, t.traits).where(
            t.user_id.in_(chunk)
        )
        for row in conn.execute(query):
            found[row.user_id] = Identity(
                row.user_id, row.account_id, row.email, row.language, dict(row.traits)
            )
    return found


def save_identities(*, conn: sa.Connection, identities: Iterable[Identity], now: datetime) -> None:
    """Insert or replace these identities."""
    rows = [
        {
            "user_id": i.user_id,
            "account_id": i.account_id,
            "email": i.email,
            "language": i.language,
            "traits": i.traits,
            "updated_at": now,
        }
        for i in sorted(identities, key=lambda i: i.user_id)
    ]
    if not rows:
        return
    insert = upsert(conn, identities_table)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                name: insert.excluded[name]
                for name in ("account_id", "email", "language", "traits", "updated_at")
            },
        ),
        rows,
    )


def alias_targets(*, conn: sa.Connection, ids: Iterable[str]) -> dict[str, str]:
    """alias → user_id for `ids` and, hop by hop, the ids they lead to."""
    found: dict[str, str] = {}
    frontier = set(ids)
    t = aliases_table.c
    for _ in range(MAX_ALIAS_HOPS):
        if not frontier:
            break
        step: dict[str, str] = {}
        for chunk in in_chunks(frontier):
            query = sa.select(t.alias, t.user_id).where(t.alias.in_(chunk))
            step.update((row.alias, row.user_id) for row in conn.execute(query))
        found.update(step)
        frontier = {user for user in step.values() if user not in found}
    return found


def aliases_of(*, conn: sa.Connection, user_ids: Iterable[str]) -> dict[str, str]:
    """alias → user_id for every alias that leads (hop by hop) to one of `user_ids`."""
    found: dict[str, str] = {}
    frontier = set(user_ids)
    t = aliases_table.c
    for _ in range(MAX_ALIAS_HOPS):
        if not frontier:
            break
        step: dict[str, str] = {}
        for chunk in in_chunks(frontier):
            query = sa.select(t.alias, t.user_id).where(t.user_id.in_(chunk))
            step.update((row.alias, row.user_id) for row in conn.execute(query))
        frontier = {alias for alias in step if alias not in found}
        found.update(step)
    return found


def save_aliases(*, conn: sa.Connection, aliases: Mapping[str, str], now: datetime) -> None:
    """Record that each alias now means its user (a later alias of the same id replaces it)."""
    if not aliases:
        return
    insert = upsert(conn, aliases_table)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["alias"], set_={"user_id": insert.excluded.user_id}
        ),
        [
            {"alias": alias, "user_id": user, "created_at": now}
            for alias, user in sorted(aliases.items())
        ],
    )


def ensure_accounts(*, conn: sa.Connection, created: Mapping[str, datetime], now: datetime) -> None:
    """Create the accounts of `created` (id → created_at) that the store does not hold yet: one
    INSERT … ON CONFLICT DO NOTHING (`bulk.execute_many`), in key order."""
    instant = bulk.instants(conn)
    updated = instant(now)
    rows = [(a, instant(at), "{}", updated) for a, at in sorted(created.items())]
    bulk.execute_many(conn, "accounts", _accounts_insert, _ACCOUNT_COLUMNS, rows)


_ACCOUNT_COLUMNS = ("account_id", "created_at", "traits", "updated_at")


def _accounts_insert(conn: sa.Connection) -> Any:
    return upsert(conn, accounts_table).on_conflict_do_nothing()


def get_accounts(*, conn: sa.Connection, ids: Collection[str]) -> dict[str, Account]:
    found: dict[str, Account] = {}
    for chunk in in_chunks(set(ids)):
        query = sa.select(accounts_table).where(accounts_table.c.account_id.in_(chunk))
        for row in conn.execute(query):
            m = row._mapping
            found[row.account_id] = Account(
                **{name: m[name] for name in Account.__dataclass_fields__}
            )
    return found


def record_users(
    *, conn: sa.Connection, seen: Mapping[tuple[str, str], tuple[datetime, datetime]]
) -> None:
    """Widen each (account_id, user_id)'s [first_seen, last_seen] to cover `seen`, creating the
    users not stored yet: the rule of `store.accounts.upsert_users`, as one upsert whose WHERE
    leaves the rows that need no change alone."""
    instant = bulk.instants(conn)
    rows = [(a, u, instant(first), instant(last)) for (a, u), (first, last) in sorted(seen.items())]
    bulk.execute_many(
        conn, "users", _users_upsert, ("account_id", "user_id", "first_seen", "last_seen"), rows
    )


def _users_upsert(conn: sa.Connection) -> Any:
    insert = upsert(conn, users_table)
    new, old = insert.excluded, users_table.c
    return insert.on_conflict_do_update(
        index_elements=["account_id", "user_id"],
        set_={
            "first_seen": sa.case(
                (new.first_seen < old.first_seen, new.first_seen), else_=old.first_seen
            ),
            "last_seen": sa.case(
                (new.last_seen > old.last_seen, new.last_seen), else_=old.last_seen
            ),
        },
        where=(new.first_seen < old.first_seen) | (new.last_seen > old.last_seen),
    )


def add_pending(*, conn: sa.Connection, events: Sequence[Pending], now: datetime) -> int:
    """Keep events whose account is not known yet; returns how many were new."""
    if not events:
        return 0
    result = conn.execute(
        upsert(conn, pending_table)
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True),
        [
            {
                "message_id": e.message_id,
                "user_id": e.user_id,
                "anonymous_id": e.anonymous_id,
                "event": e.event,
                "timestamp": e.timestamp,
                "properties": e.properties,
                "received_at": now,
            }
            for e in events
        ],
    )
    return max(result.rowcount, 0)


def pending_of(*, conn: sa.Connection, ids: Collection[str]) -> list[Pending]:
    """The waiting events of users known by one of `ids` (user id or anonymous id), oldest first."""
    found: dict[str, Pending] = {}
    t = pending_table.c
    for chunk in in_chunks(set(ids), size=450):
        query = (
            sa.select(t.message_id, t.user_id, t.anonymous_id, t.event, t.timestamp, t.properties)
            .where(t.user_id.in_(chunk) | t.anonymous_id.in_(chunk))
            .order_by(t.seq)
        )
        for row in conn.execute(query):
            found[row.message_id] = Pending(*row)
    return sorted(found.values(), key=lambda p: (p.timestamp, p.message_id))


def drop_pending(*, conn: sa.Connection, message_ids: Iterable[str]) -> int:
    """Remove these waiting events (they are in `events` now); returns how many there were."""
    dropped = 0
    for chunk in in_chunks(message_ids):
        result = conn.execute(sa.delete(pending_table).where(pending_table.c.message_id.in_(chunk)))
        dropped += max(result.rowcount, 0)
    return dropped


def has_pending(*, conn: sa.Connection) -> bool:
    """Whether any event waits (a static query: it runs for every ingestion request)."""
    return conn.exec_driver_sql("SELECT 1 FROM pending_events LIMIT 1").first() is not None


def count_pending(*, conn: sa.Connection) -> int:
    """How many events wait for their account."""
    return conn.execute(sa.select(sa.func.count()).select_from(pending_table)).scalar_one()
