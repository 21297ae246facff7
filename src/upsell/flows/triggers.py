"""Real-time triggers: deciding now for the accounts on the trigger queue (docs/in-app.md,
"Real-time triggers").

Ingestion queues an account when an event or a trait change may have made a playbook trigger true
(`upsell.domain.triggers`, in the transaction that stores them: `upsell.store.triggers`). The
service's worker calls `TriggerDecider.tick` again and again: it claims a batch of due accounts
with a lease, computes their signals and opportunities at the claim's instant (`SignalsAt`: their
rows only, today's events included), decides through `flows.offers.Decider` — the daily run's
code path: every guardrail, the holdout and the experiment assignment, the same messages — and,
in one transaction and only for the claims it still holds, records the contacts and refusals and
ends the claims; then it hands the contacts to their channels.

The decision's instant (`as_of` of its contact and refusals) is the claim's: the guardrails read
the account's history up to then. The daily run's as-of is the start of its day instead, so the
two never share an instant; `already_offered` keeps them from both making one offer to one
account (domain/decisions.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upsell.channels.base import Channel, channel_for
from upsell.config.catalog import parse_catalog
from upsell.config.playbooks import PLAYBOOKS_FILE
from upsell.domain.calendar import iso
from upsell.domain.catalog import Catalog
from upsell.domain.contacts import Contact
from upsell.domain.decisions import Refusal
from upsell.domain.history import History
from upsell.engine.backends import Backend
from upsell.flows.offers import HISTORY_DAYS, Decided, Decider, deliver
from upsell.flows.opportunities import SignalsAt
from upsell.store import triggers as queue
from upsell.store.accounts import names_and_emails, owners
from upsell.store.catalogs import latest_catalog, latest_version
from upsell.store.contacts import add_refusals, histories, record_contact
from upsell.store.db import sqlite_writer
from upsell.workspace import Workspace

log = logging.getLogger("upsell.flows.triggers")

#: Accounts claimed (and decided) at once: a batch of 100 takes about half a second on the demo
#: company, so the latency stays bounded when many accounts trigger at once.
BATCH = 100
#: A batch that failed is tried again after this many seconds x its attempts, at most this often.
RETRY_SECONDS = 5.0
MAX_ATTEMPTS = 5


@contextmanager
def writing(db: sa.Engine) -> Iterator[sa.Connection]:
    """A short write transaction: on SQLite IMMEDIATE (it reads, then writes: it waits for the
    write lock up front, through the busy timeout, instead of failing), and behind the process's
    writer lock, which live ingestion takes too when it runs in the same process."""
    if db.dialect.name != "sqlite":
        with db.begin() as conn:
            yield conn
        return
    with (
        sqlite_writer(db),
        db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
        conn.begin(),
    ):
        yield conn


@dataclass
class Batch:
    """What one tick did: the claimed entries, the decisions recorded (their contacts), the
    refusals, the accounts whose claim was lost to another worker, and the latency of each
    decided entry (seconds from when it was due to when its decision was committed)."""

    at: datetime
    entries: list[queue.Entry]
    contacts: list[Contact] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def outcomes(self) -> dict[str, int]:
        """How many decided accounts ended in an offer, held out, or with no offer."""
        held_out = sum(1 for c in self.contacts if c.held_out)
        offers = len(self.contacts) - held_out
        decided = len(self.entries) - len(self.lost)
        return {"offer": offers, "held_out": held_out, "none": max(decided - offers - held_out, 0)}


class NoCatalog(Exception):
    """The workspace has no catalog yet: nothing can be decided."""


class TriggerDecider:
    """Decides the trigger queue's accounts, a batch per `tick` (module docstring). One per worker
    (the server's worker process, service/triggers.py): it keeps an analytics back end, compiled
    queries and the workspace's parsed files of its own, read again when the catalog or
    playbooks.yaml changes. `holder` names its claims; `cooldown` is how long an account it
    decided waits before a new trigger is decided."""

    def __init__(
        self,
        ws: Workspace,
        *,
        holder: str,
        cooldown: timedelta,
        backend: Backend | None = None,
        batch: int = BATCH,
    ) -> None:
        self.ws = ws
        self.holder = holder
        self.cooldown = cooldown
        self.batch = batch
        self.signals = SignalsAt(ws, backend)
        self._version: tuple[int, int | None] | None = None  # the catalog's, playbooks.yaml's
        self._catalog: Catalog | None = None
        self._decider: Decider | None = None
        self._channels: dict[str, Channel] = {}

    # -- the workspace's files, read once per catalog ------------------------------------------

    def _current(self) -> tuple[Catalog, Decider]:
        """The catalog and the decision step, read again when the catalog or playbooks.yaml
        changed (an invalid playbooks.yaml raises: the batch is tried again later)."""
        path = self.ws.folder / PLAYBOOKS_FILE
        edited = path.stat().st_mtime_ns if path.exists() else None
        with self.ws.db.connect() as conn:
            version = latest_version(conn=conn)
            fresh = None
            if version is not None and (version, edited) != self._version:
                fresh = latest_catalog(conn=conn)
        if version is None:
            raise NoCatalog("the workspace has no catalog: import one to decide triggers")
        if fresh is not None:
            version, text, source = fresh
            catalog = self._catalog
            if catalog is None or self._version is None or self._version[0] != version:
                catalog = parse_catalog(text, source).catalog  # a new one: queries compiled anew
            decider = Decider.of(self.ws, catalog)
            self._channels = self._ready_channels(decider)
            self._catalog, self._decider, self._version = catalog, decider, (version, edited)
        assert self._catalog is not None and self._decider is not None
        return self._catalog, self._decider

    def _ready_channels(self, decider: Decider) -> dict[str, Channel]:
        """The channels the playbooks use that can deliver; an offer for another one is recorded
        as failed, with the reason."""
        out: dict[str, Channel] = {}
        for name in sorted({p.channel for p in decider.playbooks.playbooks}):
            channel = channel_for(name, self.ws.settings)
            problems = channel.problems()
            if problems:
                log.warning(
                    "triggered offers on channel %s will fail: %s", name, "; ".join(problems)
                )
                continue
            out[name] = channel
        return out

    def warm(self, now: datetime) -> None:
        """Read the workspace's files and compile the day's queries ahead of the first trigger
        (seconds the first time and on a new day or catalog; nothing otherwise)."""
        catalog, _ = self._current()
        self.signals.prepare(catalog, now.astimezone(UTC).date())

    # -- one batch -------------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> Batch | None:
        """Claim up to a batch of due accounts and decide them; None when none is due."""
        at = now or datetime.now(UTC)
        with self.ws.db.connect() as conn:
            if not queue.any_due(conn=conn, now=at):
                return None
        with writing(self.ws.db) as conn:
            entries = queue.claim(conn=conn, holder=self.holder, now=at, limit=self.batch)
        if not entries:
            return None
        try:
            return self._decide(entries, at)
        except BaseException as exc:
            self._give_back(entries, exc)
            raise

    def _give_back(self, entries: Sequence[queue.Entry], exc: BaseException) -> None:
        """After a failure: each claim due again later, or dropped after `MAX_ATTEMPTS`."""
        now = datetime.now(UTC)
        retry = [e.account_id for e in entries if e.attempts < MAX_ATTEMPTS]
        drop = [e.account_id for e in entries if e.attempts >= MAX_ATTEMPTS]
        attempts = max(e.attempts for e in entries)
        try:
            with writing(self.ws.db) as conn:
                due = now + timedelta(seconds=RETRY_SECONDS * attempts)
                queue.release(conn=conn, holder=self.holder, account_ids=retry, due=due)
                queue.release(conn=conn, holder=self.holder, account_ids=drop, due=None)
        except Exception:
            log.exception("could not give back %d trigger claims", len(entries))
        if drop:
            log.error(
                "dropped the triggers of %d account(s) after %d failed attempts (%s): %s",
                len(drop),
                MAX_ATTEMPTS,
                exc,
                ", ".join(drop[:10]),
            )

    def _decide(self, entries: list[queue.Entry], at: datetime) -> Batch:
        clock = time.perf_counter()
        batch = Batch(at=at, entries=entries)
        catalog, decider = self._current()
        ids = [e.account_id for e in entries]
        found = self.signals(ids, at, catalog=catalog, policy=decider.policy)
        batch.seconds["signals"] = time.perf_counter() - clock
        with self.ws.db.connect() as conn:
            past = histories(
                conn=conn, before=at, since=at - timedelta(days=HISTORY_DAYS), account_ids=ids
            )
            people = names_and_emails(conn=conn, account_ids=ids)
            trait = decider.playbooks.guardrails.csm_owner_trait
            owned = owners(conn=conn, trait=trait, account_ids=ids)
        mine = replace(decider, people=people, owners=owned)
        decided: dict[str, Decided] = {}
        for e in entries:
            signals = found.signals.get(e.account_id)
            opportunities = found.opportunities.get(e.account_id, [])
            if signals is None or not any(o.qualified for o in opportunities):
                continue
            trigger: dict[str, Any] = {"reason": e.reason, "enqueued_at": iso(e.enqueued_at)}
            decided[e.account_id] = mine.decide(
                signals, opportunities, past.get(e.account_id) or History(), at, trigger=trigger
            )
        batch.seconds["decide"] = time.perf_counter() - clock

        with writing(self.ws.db) as conn:
            held = queue.held(conn=conn, holder=self.holder, account_ids=ids)
            batch.lost = set(ids) - held
            for account_id in sorted(held & decided.keys()):
                d = decided[account_id]
                batch.refusals.extend(d.choice.refusals)
                if d.contact is not None:
                    contact_id, created = record_contact(conn=conn, contact=d.contact)
                    if created:
                        batch.contacts.append(replace(d.contact, contact_id=contact_id))
            add_refusals(conn=conn, as_of=at, refusals=batch.refusals)
            # decided_at: when the decision is committed (its offer servable), within a few ms.
            queue.finish(
                conn=conn,
                holder=self.holder,
                account_ids=sorted(held),
                now=datetime.now(UTC),
                cooldown=self.cooldown,
            )
        committed = datetime.now(UTC)
        batch.seconds["record"] = time.perf_counter() - clock
        if batch.lost:
            log.warning(
                "%d trigger claim(s) were taken over by another worker before their decision "
                "was recorded; that worker decides them",
                len(batch.lost),
            )
        batch.latencies = [
            max(0.0, (committed - e.due_at).total_seconds())
            for e in entries
            if e.account_id not in batch.lost
        ]
        due = [c for c in batch.contacts if not c.held_out]  # a held-out one is sent nothing
        deliver(self.ws.db, self._channels, due, people, begin=lambda: writing(self.ws.db))
        batch.seconds["deliver"] = time.perf_counter() - clock
        return batch

    def close(self) -> None:
        if self.signals.backend is not self.ws.backend:
            self.signals.backend.close()
