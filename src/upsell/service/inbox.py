"""The messages API's read model: the `AccountView` of every account with a live in-app message,
kept in the server's memory, so that ``GET /v1/messages`` reads no database.

Every browser of a customer's web app polls the messages API, and most of them have nothing to
see. The store stays the source of truth; the server keeps a copy of the little the API needs:
for each account whose newest in-app contact is unanswered, that contact, its recent showings, the
plan rows its upgrade would replace, and its users. A user none of whose accounts is there gets
204 from a dictionary lookup; one with a message gets it chosen by the same rules as
`upsell.flows.messages.messages_for` (`choose`), at the request's instant.

How the copy follows the store (docs/in-app.md, "How fresh the messages API is"):

- what the widget reports through this server (shown, clicked, dismissed, converted) updates the
  account's view before the answer returns: a dismissed message is never served again;
- contacts and answers stored by other processes (``upsell run``, the trigger worker, another
  server) are found by their ids every ``UPSELL_SERVICE_MESSAGES_REFRESH_SECONDS`` (0.25 s), and
  their accounts read again;
- every view is read again once it is `MAX_AGE` seconds old: a user who joins an account (a
  ``group`` call) sees its message within that time, and a plan change reaches the amount due
  today within it (the checkout handshake computes its own from the store).

A thread of the server does the looking, in batches of `BATCH` accounts, so that a request never
waits on the store nor long on the GIL; with a refresh of 0, each request looks itself instead.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import zlib
from collections.abc import Collection, Sequence
from datetime import datetime

from upsell.domain.playbooks import Cap
from upsell.flows.messages import AccountView, Served, account_views, choose, shown_window
from upsell.store.messages import newest_ids, newest_in_app_of, stored_after
from upsell.workspace import Workspace

#: Seconds after which a view is read again whatever happened.
MAX_AGE = 30.0
#: Accounts read per batch (each holds the GIL for about a millisecond), and the seconds between
#: two batches, when the requests have it.
BATCH = 25
PAUSE = 0.005
#: On PostgreSQL, ids are taken before their transactions commit, in any order: each look goes
#: back this many contact and response ids for rows that committed late.
LAG = 512

log = logging.getLogger(__name__)


class _Copy:
    """The views, and the indexes over them. Readers take no lock: an entry is replaced whole,
    never changed in place, and a new copy replaces the old one whole."""

    def __init__(self, since: datetime) -> None:
        self.since = since
        self.views: dict[str, AccountView] = {}
        self.by_user: dict[str, frozenset[str]] = {}
        self.account_of: dict[int, str] = {}
        self.loaded_at: dict[str, float] = {}
        self.ages: collections.deque[tuple[float, str]] = collections.deque()

    def put(
        self,
        views: dict[str, AccountView],
        accounts: Collection[str],
        clock: float,
        *,
        spread: float = 0.0,
    ) -> None:
        """Replace the views of `accounts` with `views` (an account without one has nothing to
        show now), read at `clock`; with a `spread`, each counts as read up to that many seconds
        earlier (fixed by the account), so that views read together do not all age at once."""
        for account in sorted(accounts):
            old, new = self.views.get(account), views.get(account)
            before = old.users if old else frozenset()
            after = new.users if new else frozenset()
            for user in after - before:
                self.by_user[user] = self.by_user.get(user, frozenset()) | {account}
            if old is not None:
                self.account_of.pop(old.contact.contact_id or 0, None)
            if new is None:
                self.views.pop(account, None)
                self.loaded_at.pop(account, None)
            else:
                self.account_of[new.contact.contact_id or 0] = account
                self.views[account] = new
                at = clock - spread * zlib.crc32(account.encode()) / 2**32
                self.loaded_at[account] = at
                self.ages.append((at, account))
            for user in before - after:
                left = self.by_user.get(user, frozenset()) - {account}
                if left:
                    self.by_user[user] = left
                else:
                    self.by_user.pop(user, None)
        if spread:  # oldest first again (later reads come after every one of these)
            self.ages = collections.deque(sorted(self.ages))

    def aged(self, before: float, most: int) -> set[str]:
        """At most `most` of the accounts whose views were read before `before`, oldest first."""
        out: set[str] = set()
        while self.ages and len(out) < most and self.ages[0][0] < before:
            at, account = self.ages.popleft()
            if self.loaded_at.get(account) == at:
                out.add(account)
        return out


class Inbox:
    """The views of the accounts with a live in-app message, and who may see them. Reads may
    come from any thread; one thread at a time reads the store for it."""

    def __init__(
        self, ws: Workspace, *, refresh: float | None = None, max_age: float = MAX_AGE
    ) -> None:
        """`refresh`: seconds between two looks at the store (the workspace's
        ``service_messages_refresh_seconds`` by default; 0: at every request); `max_age`:
        seconds after which a view is read again."""
        self.ws = ws
        self.refresh = ws.settings.service_messages_refresh_seconds if refresh is None else refresh
        self.max_age = max_age
        self._reading = threading.Lock()
        self._copy: _Copy | None = None
        self._marks = (0, 0)
        self._seen: tuple[set[int], set[int]] = (set(), set())
        self._lag = LAG if ws.db.dialect.name == "postgresql" else 0
        self._looked = time.monotonic()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def messages(
        self, *, user_id: str, account_id: str | None, now: datetime, caps: Sequence[Cap]
    ) -> list[Served]:
        """What `user_id` should see at `now` (only `account_id`'s, when given)."""
        copy = self._copy
        if copy is None or shown_window(caps, now) < copy.since:
            self.load(now, caps)  # the first request, or caps with a longer window
        elif self.refresh == 0:
            self.look()
        copy = self._copy
        assert copy is not None
        accounts = copy.by_user.get(user_id)
        if not accounts:
            return []
        views = copy.views
        found = [views[a] for a in accounts if a in views and account_id in (None, a)]
        return choose(found, user_id=user_id, now=now, caps=caps) if found else []

    def load(self, now: datetime, caps: Sequence[Cap]) -> None:
        """Read every view (at the server's start)."""
        since = shown_window(caps, now)
        with self._reading:
            with self.ws.db.connect() as conn:
                marks = newest_ids(conn=conn)  # first: what commits meanwhile is read again
                contacts = newest_in_app_of(conn=conn, accounts=None)
                views = account_views(conn, contacts, since=since, users=True)
            copy = _Copy(since)
            copy.put(views, set(views), time.monotonic(), spread=self.max_age)
            self._copy, self._marks, self._seen = copy, marks, (set(), set())

    def answered(self, contact_id: int) -> None:
        """Read the view of the account whose message `contact_id` is again, now: this process
        stored an answer to it. (An answer to a message no view holds changes no view's message;
        its showing reaches the caps with the next look.)"""
        copy = self._copy
        account = None if copy is None else copy.account_of.get(contact_id)
        if account is not None:
            with self._reading:
                self._read({account})

    def look(self) -> None:
        """One look at the store: read again the accounts with contacts or answers stored since
        the last look, and those whose views are `max_age` old, `BATCH` at a time."""
        if self._copy is None:
            return
        clock = time.monotonic()
        # Their share of the views aged since the last look, and half as many again.
        most = int(len(self._copy.views) * (clock - self._looked) / self.max_age * 1.5) + 1
        self._looked = clock
        with self._reading:
            accounts = self._stored_since() | self._copy.aged(clock - self.max_age, most)
        ordered = sorted(accounts)
        for start in range(0, len(ordered), BATCH):
            if start:
                time.sleep(PAUSE)  # the requests waiting for the GIL go first
            with self._reading:
                self._read(set(ordered[start : start + BATCH]))

    def start(self) -> None:
        """Look every `refresh` seconds in a thread of its own (none with a refresh of 0)."""
        if self.refresh > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="upsell-inbox", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stopping.wait(self.refresh):
            try:
                self.look()
            except Exception:  # the store is away: keep serving the copy, look again next time
                log.exception("the messages API could not look at the store")

    def _stored_since(self) -> set[str]:
        """The accounts with in-app contacts or responses stored since the last look."""
        marks = self._marks
        with self.ws.db.connect() as conn:
            found = stored_after(
                conn=conn,
                contact_id=max(0, marks[0] - self._lag),
                response_id=max(0, marks[1] - self._lag),
            )
        changed: set[str] = set()
        new_marks = list(marks)
        for k, rows in enumerate(found):
            seen = self._seen[k]
            for row_id, account in rows:
                if row_id > marks[k] or (self._lag and row_id not in seen):
                    changed.add(account)
                new_marks[k] = max(new_marks[k], row_id)
            if self._lag:  # the ids of the lag window, read: a late commit is the one not there
                floor = new_marks[k] - self._lag
                seen.update(i for i, _ in rows)
                seen.difference_update([i for i in seen if i <= floor])
        self._marks = (new_marks[0], new_marks[1])
        return changed

    def _read(self, accounts: set[str]) -> None:
        copy = self._copy
        assert copy is not None
        with self.ws.db.connect() as conn:
            contacts = newest_in_app_of(conn=conn, accounts=accounts)
            views = account_views(conn, contacts, since=copy.since, users=True)
        copy.put(views, accounts, time.monotonic())
