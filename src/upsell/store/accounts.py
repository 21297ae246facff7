"""Accounts and their users."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upsell.domain.accounts import Account, User
from upsell.store.db import IN_CHUNK, in_chunks
from upsell.store.schema import accounts as accounts_table
from upsell.store.schema import users as users_table

_FIELDS = (
    "account_id",
    "created_at",
    "name",
    "industry",
    "employees",
    "country",
    "currency",
    "language",
    "email",
)


def _json(value: Mapping[str, Any]) -> Any:
    """The value as it comes back from a JSON column (tuples become lists, keys strings)."""
    return json.loads(json.dumps(dict(value), allow_nan=False))


def _values(account: Account) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(account, name) for name in _FIELDS}
    values["traits"] = _json(account.traits)
    return values


def _account(row: sa.Row[Any]) -> Account:
    m = row._mapping
    return Account(**{name: m[name] for name in _FIELDS}, traits=m["traits"])


def upsert_accounts(*, conn: sa.Connection, accounts: Sequence[Account]) -> tuple[int, int]:
    """Insert new accounts and update known ones in place; returns (new, updated).

    `updated` counts only accounts whose stored values changed, so re-importing a file reports
    (0, 0). When an id appears twice in `accounts`, the last one wins.
    """
    latest = {account.account_id: account for account in accounts}
    stored: dict[str, dict[str, Any]] = {}
    for chunk in in_chunks(latest):
        rows = conn.execute(sa.select(accounts_table).where(accounts_table.c.account_id.in_(chunk)))
        for row in rows:
            stored[row.account_id] = _values(_account(row))
    now = datetime.now(UTC)
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for account_id, account in latest.items():
        values = _values(account)
        if account_id not in stored:
            new.append({**values, "updated_at": now})
        elif stored[account_id] != values:
            values["key"] = values.pop("account_id")
            changed.append({**values, "updated_at": now})
    if new:
        conn.execute(sa.insert(accounts_table), new)
    if changed:
        conn.execute(
            sa.update(accounts_table).where(accounts_table.c.account_id == sa.bindparam("key")),
            changed,
        )
    return len(new), len(changed)


def existing_account_ids(*, conn: sa.Connection, ids: Iterable[str]) -> set[str]:
    """The subset of `ids` that the store holds."""
    found: set[str] = set()
    for chunk in in_chunks(set(ids)):
        query = sa.select(accounts_table.c.account_id).where(accounts_table.c.account_id.in_(chunk))
        found.update(conn.execute(query).scalars())
    return found


def account_currencies(*, conn: sa.Connection, ids: Iterable[str]) -> dict[str, str | None]:
    """The currency of each known account in `ids` (None when the account has none of its own).

    Unknown ids are absent from the result.
    """
    currencies: dict[str, str | None] = {}
    for chunk in in_chunks(set(ids)):
        query = sa.select(accounts_table.c.account_id, accounts_table.c.currency).where(
            accounts_table.c.account_id.in_(chunk)
        )
        currencies.update((row.account_id, row.currency) for row in conn.execute(query))
    return currencies


def get_account(*, conn: sa.Connection, account_id: str) -> Account | None:
    row = conn.execute(
        sa.select(accounts_table).where(accounts_table.c.account_id == account_id)
    ).first()
    return None if row is None else _account(row)


def count_accounts(*, conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(accounts_table)).scalar_one()


def upsert_users(*, conn: sa.Connection, users: Sequence[User]) -> int:
    """Record users, widening each stored user's [first_seen, last_seen] to cover the new sighting.

    Users repeated in the batch are merged the same way. Returns the number of new users.
    """
    merged: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for user in users:
        key = (user.account_id, user.user_id)
        first, last = user.first_seen, user.last_seen
        if key in merged:
            first, last = min(first, merged[key][0]), max(last, merged[key][1])
        merged[key] = (first, last)
    stored: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    # A row-value IN: one primary-key probe per pair. (Two separate IN lists would make SQLite probe
    # every account x user combination: 37 % of an events import, measured in bench/.) Each chunk binds
    # two parameters per pair, so it asks for at most IN_CHUNK / 2 pairs.
    pair = sa.tuple_(users_table.c.account_id, users_table.c.user_id)
    for chunk in in_chunks(merged, size=IN_CHUNK // 2):
        query = sa.select(users_table).where(pair.in_(chunk))
        for row in conn.execute(query):
            key = (row.account_id, row.user_id)
            if key in merged:
                stored[key] = (row.first_seen, row.last_seen)
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    # In key order: two transactions writing users in one order wait for each other, never
    # deadlock (each holds the row the other wants next).
    for (account_id, user_id), (first, last) in sorted(merged.items()):
        old = stored.get((account_id, user_id))
        if old is None:
            new.append(
                {
                    "account_id": account_id,
                    "user_id": user_id,
                    "first_seen": first,
                    "last_seen": last,
                }
            )
        elif first < old[0] or last > old[1]:
            changed.append(
                {
                    "key_account": account_id,
                    "key_user": user_id,
                    "first_seen": min(first, old[0]),
                    "last_seen": max(last, old[1]),
                }
            )
    if new:
        conn.execute(sa.insert(users_table), new)
    if changed:
        conn.execute(
            sa.update(users_table).where(
                users_table.c.account_id == sa.bindparam("key_account"),
                users_table.c.user_id == sa.bindparam("key_user"),
            ),
            changed,
        )
    return len(new)


def names_and_emails(
    *, conn: sa.Connection, account_ids: Collection[str] | None = None
) -> dict[str, tuple[str | None, str | None]]:
    """Every account's (name, email), or those of `account_ids`: who a message greets and where
    an email goes."""
    a = accounts_table.c
    query = sa.select(a.account_id, a.name, a.email)
    if account_ids is None:
        return {row.account_id: (row.name, row.email) for row in conn.execute(query)}
    out: dict[str, tuple[str | None, str | None]] = {}
    for chunk in in_chunks(account_ids):
        for row in conn.execute(query.where(a.account_id.in_(chunk))):
            out[row.account_id] = (row.name, row.email)
    return out


def owners(
    *, conn: sa.Connection, trait: str, account_ids: Collection[str] | None = None
) -> dict[str, str]:
    """The accounts whose trait `trait` is set (not empty) with its value: who owns each account
    (playbooks.yaml's `guardrails.csm_owner_trait`), or of `account_ids` only."""
    a = accounts_table.c
    query = sa.select(a.account_id, a.traits)
    chunks: Iterable[Sequence[str] | None] = (
        [None] if account_ids is None else in_chunks(account_ids)
    )
    out: dict[str, str] = {}
    for chunk in chunks:
        q = query if chunk is None else query.where(a.account_id.in_(chunk))
        for row in conn.execute(q):
            value = row.traits.get(trait) if isinstance(row.traits, dict) else None
            if value is not None and value != "":
                out[row.account_id] = str(value)
    return out
