"""Storing live messages (Segment, PostHog, a Segment-shaped file) and deciding each event's
account (docs/service.md, "Identity").

An event's account is, in this order: the account it names (``context.groupId``, PostHog's
``$groups``); else the account of its user's latest group call, the user being its userId, else
its anonymousId, following aliases (``alias`` calls, and identify calls that carry both ids). An
event whose account is not known yet waits in `pending_events`; the group or alias call that
makes it known moves it into `events`, in the same transaction. Events de-duplicate on their
message id across both tables.

`store_messages` does it all for one list of messages on one connection (the caller's
transaction); `ingest` wraps it in a transaction of its own, `ingest_together` several requests'
lists in one (the service's group commit). The queries are per request, not per
message: one for the aliases and one for the identities of all the batch's users, one INSERT for
all its events.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upsell.columns import Column
from upsell.domain.accounts import Account
from upsell.domain.events import Event
from upsell.domain.triggers import TriggerRules, trait_reason
from upsell.ingest import rows
from upsell.ingest.messages import Message
from upsell.store import accounts as account_store
from upsell.store import events as event_store
from upsell.store import identities as store
from upsell.store import triggers as trigger_store
from upsell.store.db import sqlite_writer
from upsell.store.identities import MAX_ALIAS_HOPS, Identity, Pending


@dataclass
class Stored:
    """What storing a list of messages did, in events: `new` ones stored in `events`, `duplicates`
    already stored (or repeated in the list), `pending` ones kept until their account is known,
    and `attributed` ones that had been waiting and are in `events` now; `triggered` accounts were
    put on the real-time trigger queue. `accounts` are the account ids the transaction made sure
    exist (not compared)."""

    new: int = 0
    duplicates: int = 0
    pending: int = 0
    attributed: int = 0
    triggered: int = 0
    accounts: set[str] = field(default_factory=set, repr=False, compare=False)

    def add(self, other: Stored) -> None:
        self.new += other.new
        self.duplicates += other.duplicates
        self.pending += other.pending
        self.attributed += other.attributed
        self.triggered += other.triggered


# Account traits read into the accounts table's own columns; the others stay in `traits`.
_ACCOUNT_COLUMNS: dict[str, tuple[Column, Callable[[Mapping[str, Any], Column], Any]]] = {
    "name": (Column("name", "string"), rows.text),
    "industry": (Column("industry", "string"), rows.text),
    "employees": (Column("employees", "integer"), rows.integer),
    "email": (Column("email", "string"), rows.email),
    "currency": (Column("currency", "string"), rows.currency),
    "language": (Column("language", "string"), rows.language),
    "country": (Column("country", "string"), rows.country),
}
_CREATED = ("createdAt", "created_at")
_EMAIL, _LANGUAGE = Column("email", "string"), Column("language", "string")


def _column(traits: dict[str, Any], name: str) -> Any:
    """The trait `name` as its column holds it; None when absent or invalid (it then stays in the
    traits only, as given)."""
    if name not in traits:
        return None
    column, parse = _ACCOUNT_COLUMNS[name]
    try:
        return parse(traits, column)
    except (rows.RowError, ValueError, TypeError):
        return None


def _created_at(traits: dict[str, Any]) -> datetime | None:
    for name in _CREATED:
        try:
            at = rows.timestamp(traits, Column(name, "timestamp"))
        except (rows.RowError, ValueError, TypeError):
            continue
        if at is not None:
            return at
    return None


def _merge_account(account: Account, traits: dict[str, Any]) -> Account:
    columns = {name: _column(traits, name) for name in _ACCOUNT_COLUMNS if name in traits}
    kept = {k: v for k, v in traits.items() if columns.get(k) is None and k not in _CREATED}
    return replace(
        account,
        **{k: v for k, v in columns.items() if v is not None},
        created_at=_created_at(traits) or account.created_at,
        traits={**account.traits, **kept},
    )


class _Graph:
    """The identities and aliases of a batch's users, loaded once and changed in memory."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.aliases: dict[str, str] = {}
        self.identities: dict[str, Identity | None] = {}
        self.new_aliases: dict[str, str] = {}
        self.dirty: set[str] = set()
        self.moved: set[str] = set()  # ids whose account may have become known

    def load(self, ids: Iterable[str]) -> None:
        missing = {i for i in ids if i not in self.identities}
        if not missing:
            return
        self.aliases.update(store.alias_targets(conn=self.conn, ids=missing))
        missing |= {u for u in self.aliases.values() if u not in self.identities}
        found = store.get_identities(conn=self.conn, user_ids=missing)
        for user_id in missing:
            self.identities[user_id] = found.get(user_id)

    def chain(self, who: str) -> list[str]:
        ids = [who]
        for _ in range(MAX_ALIAS_HOPS):
            target = self.aliases.get(ids[-1])
            if target is None or target in ids:
                break
            ids.append(target)
        return ids

    def resolve(
        self, user_id: str | None, anonymous_id: str | None
    ) -> tuple[str | None, str | None]:
        """(account, user) of a message: its user is the end of its user id's alias chain (or of
        its anonymous id's, when that leads to another id); its account the account of the last
        id on the chain that has one."""
        user = self.chain(user_id)[-1] if user_id else None
        for who in (user_id, anonymous_id):
            if who is None:
                continue
            chain = self.chain(who)
            if user is None and len(chain) > 1:
                user = chain[-1]
            for link in reversed(chain):
                identity = self.identities.get(link)
                if identity is not None and identity.account_id is not None:
                    return identity.account_id, user
        return None, user

    def identity(self, user_id: str) -> Identity:
        found = self.identities.get(user_id)
        if found is None:
            found = self.identities[user_id] = Identity(user_id)
        self.dirty.add(user_id)
        return found

    def alias(self, previous: str, user: str) -> None:
        if previous == user or self.aliases.get(previous) == user:
            return
        self.aliases[previous] = self.new_aliases[previous] = user
        self.moved.add(previous)


def _identify(graph: _Graph, m: Message) -> None:
    who = m.who
    assert who is not None
    identity = graph.identity(who)
    traits = m.traits
    if m.set_once:
        traits = {k: v for k, v in traits.items() if k not in identity.traits}
    if "email" in traits:
        with contextlib.suppress(rows.RowError):
            identity.email = rows.email(traits, _EMAIL) or identity.email
    if "language" in traits:
        with contextlib.suppress(rows.RowError):
            identity.language = rows.language(traits, _LANGUAGE) or identity.language
    identity.traits = {**identity.traits, **traits}
    if m.user_id and m.anonymous_id:
        graph.alias(m.anonymous_id, m.user_id)


def _ids(messages: Sequence[Message]) -> set[str]:
    """The ids whose identities the batch needs: every id but those of events naming their account."""
    ids: set[str] = set()
    for m in messages:
        if m.kind == "track" and m.group_id is not None:
            continue
        ids.update(i for i in (m.user_id, m.anonymous_id, m.previous_id) if i)
    return ids


def store_messages(
    *,
    conn: sa.Connection,
    messages: Sequence[Message],
    triggers: TriggerRules | None = None,
    known: Collection[str] = frozenset(),
) -> Stored:
    """Store `messages` in order on `conn` (the caller's transaction); see the module docstring.
    With `triggers`, the accounts whose events or gauge traits may have made a playbook trigger
    true are queued in the same transaction (`upsell.store.triggers`). `known` are account ids
    that are stored already (no INSERT for them)."""
    now = datetime.now(UTC)
    graph = _Graph(conn)
    graph.load(_ids(messages))
    events: dict[str, Event] = {}
    waiting: dict[str, Pending] = {}
    accounts: dict[str, datetime] = {}  # account id → the earliest instant seen in this batch
    traits: dict[str, dict[str, Any]] = {}
    repeated = 0
    for m in messages:
        if m.kind == "track":
            if m.message_id in events or m.message_id in waiting:
                repeated += 1
                continue
            account, user = graph.resolve(m.user_id, m.anonymous_id)
            assert m.event is not None
            if m.group_id is not None:
                account = m.group_id
            if account is None:
                waiting[m.message_id] = Pending(
                    m.message_id, m.user_id, m.anonymous_id, m.event, m.timestamp, m.properties
                )
                continue
            events[m.message_id] = Event(
                m.message_id, account, m.event, m.timestamp, user, m.properties
            )
            if account not in accounts or m.timestamp < accounts[account]:
                accounts[account] = m.timestamp
        elif m.kind == "identify":
            _identify(graph, m)
        elif m.kind == "group":
            assert m.group_id is not None and m.who is not None
            graph.identity(m.who).account_id = m.group_id
            graph.moved.add(m.who)
            traits.setdefault(m.group_id, {}).update(m.traits)
            if m.group_id not in accounts or m.timestamp < accounts[m.group_id]:
                accounts[m.group_id] = m.timestamp
        else:
            assert m.previous_id is not None and m.user_id is not None
            graph.alias(m.previous_id, m.user_id)

    stored = Stored(duplicates=repeated)
    moved: list[Pending] = []
    if graph.moved:
        # The events waiting for a user whose account this batch made known: theirs, and those
        # of every id that is an alias of theirs.
        reached = set(graph.moved)
        reached |= set(store.aliases_of(conn=conn, user_ids=reached))
        reached |= {a for a, u in graph.aliases.items() if u in reached}
        candidates = [p for p in waiting.values()]
        candidates += store.pending_of(conn=conn, ids=reached)
        graph.load(i for p in candidates for i in (p.user_id, p.anonymous_id) if i)
        for p in candidates:
            account, user = graph.resolve(p.user_id, p.anonymous_id)
            if account is None:
                continue
            if p.message_id in waiting:
                del waiting[p.message_id]
            else:
                moved.append(p)
            events.setdefault(
                p.message_id,
                Event(p.message_id, account, p.event, p.timestamp, user, p.properties),
            )
            if account not in accounts or p.timestamp < accounts[account]:
                accounts[account] = p.timestamp

    risen = _save_accounts(conn, accounts, traits, now, triggers, known)
    stored.accounts = set(accounts)
    store.save_identities(
        conn=conn,
        identities=[i for i in map(graph.identities.get, graph.dirty) if i is not None],
        now=now,
    )
    store.save_aliases(conn=conn, aliases=graph.new_aliases, now=now)

    # Events: every one in one INSERT; a waiting copy of the same message goes. A message of this
    # request that was waiting already counts as attributed, not new.
    inserted = event_store.add_events(conn=conn, events=list(events.values()), now=now)
    dropped = 0
    if moved or store.has_pending(conn=conn):
        dropped = store.drop_pending(conn=conn, message_ids=list(events))
    stored.attributed = dropped
    stored.new = max(inserted - dropped, 0)
    stored.duplicates += max(len(events) - len(moved) - stored.new - (dropped - len(moved)), 0)
    if waiting:
        known = event_store.stored_event_ids(conn=conn, ids=list(waiting))
        fresh = [p for p in waiting.values() if p.message_id not in known]
        stored.pending = store.add_pending(conn=conn, events=fresh, now=now)
        stored.duplicates += len(waiting) - stored.pending
    store.record_users(conn=conn, seen=_users(events.values()))
    if triggers is not None:
        due = _triggered(triggers, events.values(), risen, now)
        trigger_store.enqueue(conn=conn, triggered=due)
        stored.triggered = len(due)
    return stored


def _triggered(
    rules: TriggerRules, events: Iterable[Event], risen: Mapping[str, str], now: datetime
) -> dict[str, tuple[str, datetime]]:
    """Account → (reason, now) for the accounts to decide for now: a gauge trait went up
    (`risen`), or a recent event names a trigger (the earliest event of the batch gives the
    reason). The instant is the server's: event timestamps are the client's."""
    out: dict[str, tuple[str, datetime]] = {}
    first: dict[str, datetime] = {}
    for e in events:
        if rules.fires(e.event, e.timestamp, now) and (
            e.account_id not in first or e.timestamp < first[e.account_id]
        ):
            first[e.account_id] = e.timestamp
            out[e.account_id] = (e.event, now)
    for account_id, reason in risen.items():
        out.setdefault(account_id, (reason, now))
    return out


def _save_accounts(
    conn: sa.Connection,
    first_seen: dict[str, datetime],
    traits: dict[str, dict[str, Any]],
    now: datetime,
    triggers: TriggerRules | None,
    known: Collection[str],
) -> dict[str, str]:
    """Create the accounts this batch names (but those `known` to be stored), then apply the group
    calls' traits; returns the accounts whose gauge trait went up (`triggers`), with the reason."""
    created = {a: at for a, at in first_seen.items() if a not in known}
    for account_id, given in traits.items():
        if account_id in created:
            created[account_id] = _created_at(given) or created[account_id]
    store.ensure_accounts(conn=conn, created=created, now=now)
    risen: dict[str, str] = {}
    if traits:
        stored = store.get_accounts(conn=conn, ids=list(traits))
        merged = [_merge_account(stored[a], t) for a, t in sorted(traits.items())]
        account_store.upsert_accounts(conn=conn, accounts=merged)
        if triggers is not None and triggers.traits:
            for account in merged:
                up = triggers.risen(dict(stored[account.account_id].traits), dict(account.traits))
                if up:
                    risen[account.account_id] = trait_reason(up[0])
    return risen


def _users(events: Iterable[Event]) -> dict[tuple[str, str], tuple[datetime, datetime]]:
    seen: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for e in events:
        if e.user_id is None:
            continue
        key = (e.account_id, e.user_id)
        at = e.timestamp
        old = seen.get(key)
        seen[key] = (at, at) if old is None else (min(old[0], at), max(old[1], at))
    return seen


#: Per database, account ids that live ingestion saw committed. Accounts are never deleted, so an
#: account found here needs no INSERT … ON CONFLICT DO NOTHING (on PostgreSQL, often a statement
#: fewer per request). Emptied when it reaches `KNOWN_MAX` ids.
_KNOWN: weakref.WeakKeyDictionary[sa.Engine, set[str]] = weakref.WeakKeyDictionary()
KNOWN_MAX = 200_000


def ingest(
    *, db: sa.Engine, messages: Sequence[Message], triggers: TriggerRules | None = None
) -> Stored:
    """Store `messages` in a transaction of their own, committed when this returns (with the
    accounts they trigger queued, when `triggers` is given)."""
    known = _KNOWN.get(db)
    if known is None or len(known) >= KNOWN_MAX:
        known = _KNOWN[db] = set()
    if db.dialect.name != "sqlite":
        with db.begin() as conn:
            stored = store_messages(conn=conn, messages=messages, triggers=triggers, known=known)
    else:
        with (
            sqlite_writer(db),
            db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
            conn.begin(),
        ):
            stored = store_messages(conn=conn, messages=messages, triggers=triggers, known=known)
    known.update(stored.accounts)  # committed
    return stored


def ingest_together(
    *,
    db: sa.Engine,
    batches: Sequence[Sequence[Message]],
    triggers: TriggerRules | None = None,
) -> list[Stored | Exception]:
    """Store several concurrent requests' `batches` (the service's group commit): those of
    `track` calls only, whose message ids no other of them repeats, in one transaction; the others,
    and all of them when that transaction fails, each in a transaction of its own (so that one
    that cannot be stored fails alone). Returns each batch's outcome: the `Stored` of the
    transaction that stored it (the same object for the batches of one transaction), or the
    exception that refused it.

    Storing such batches together is storing them one after the other (in some order: they are
    concurrent): tracks change no identity, so each resolves its account as it would alone. An
    identify, group or alias call, or a message id repeated across batches, is stored on its own:
    within one list the first copy of a message wins even when it waits for its account, and a
    later group call would resolve the earlier requests' waiting events."""
    together: list[int] = []
    seen: set[str] = set()
    for i, batch in enumerate(batches):
        ids = {m.message_id for m in batch}
        if all(m.kind == "track" for m in batch) and seen.isdisjoint(ids):
            together.append(i)
            seen |= ids
    outcomes: list[Stored | Exception | None] = [None] * len(batches)
    if len(together) > 1:
        try:
            stored = ingest(
                db=db, messages=[m for i in together for m in batches[i]], triggers=triggers
            )
        except Exception:  # stored again one by one below, each failing alone
            pass
        else:
            for i in together:
                outcomes[i] = stored
    total = Stored()
    for i, batch in enumerate(batches):
        if outcomes[i] is not None:
            continue
        try:
            total.add(ingest(db=db, messages=batch, triggers=triggers))
        except Exception as exc:  # the batch's own failure, handed back
            outcomes[i] = exc
        else:
            outcomes[i] = total
    return [o for o in outcomes if o is not None]
