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
- every view is read again once it is `MAX_AGE` seconds old, in small batches: a user who joins an
  account (a ``group`` call) sees its message within that time, and a plan change reaches the
  amount due today within it (the checkout handshake computes its own from the store).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from datetime import datetime

from upsell.domain.playbooks import Cap
from upsell.flows.messages import AccountView, Served, account_views, choose, shown_window
from upsell.store.messages import newest_ids, newest_in_app_of, stored_after
from upsell.workspace import Workspace

#: Seconds after which a view is read again whatever happened.
MAX_AGE = 30.0
#: Views read again per look because of their age: at least their share of the views, and up to
#: this many more (spreads the work).
SWEEP = 200
#: On PostgreSQL, ids are taken before their transactions commit, in any order: each look goes
#: back this many contact and response ids for rows that committed late.
LAG = 512


class Inbox:
    """The views of the accounts with a live in-app message, and who may see them. Reads may
    come from any thread; one thread at a time reads the store for it."""

    def __init__(
        self, ws: Workspace, *, refresh: float | None = None, max_age: float = MAX_AGE
    ) -> None:
        """`refresh`: seconds between two looks at the store (the workspace's
        ``service_messages_refresh_seconds`` by default); `max_age`: seconds a view is kept."""
        self.ws = ws
        self._reading = threading.Lock()
        self._views: dict[str, AccountView] = {}
        self._by_user: dict[str, frozenset[str]] = {}
        self._ages: collections.deque[tuple[float, str]] = collections.deque()
        self._loaded_at: dict[str, float] = {}
        self._account_of: dict[int, str] = {}
        self._since: datetime | None = None
        self._polled = 0.0
        self._marks = (0, 0)
        self._seen: tuple[set[int], set[int]] = (set(), set())
        self._lag = LAG if ws.db.dialect.name == "postgresql" else 0
        self._poll_every = (
            ws.settings.service_messages_refresh_seconds if refresh is None else refresh
        )
        self._max_age = max_age

    def messages(
        self, *, user_id: str, account_id: str | None, now: datetime, caps: Sequence[Cap]
    ) -> list[Served]:
        """What `user_id` should see at `now` (only `account_id`'s, when given)."""
        self._fresh(now, caps)
        accounts = self._by_user.get(user_id)
        if not accounts:
            return []
        views = self._views
        found = [views[a] for a in accounts if a in views and account_id in (None, a)]
        return choose(found, user_id=user_id, now=now, caps=caps) if found else []

    def load(self, now: datetime, caps: Sequence[Cap]) -> None:
        """Read every view (at the server's start)."""
        with self._reading:
            self._load_all(now, caps)

    def answered(self, contact_id: int, now: datetime) -> None:
        """Read the view of the account whose message `contact_id` is again, now: this process
        stored an answer to it. (An answer to a message no view holds changes no view's message;
        its showing reaches the caps with the next poll.)"""
        account = self._account_of.get(contact_id)
        if account is None:
            return
        with self._reading:
            if self._since is not None:
                self._read({account}, now)

    def _fresh(self, now: datetime, caps: Sequence[Cap]) -> None:
        since = shown_window(caps, now)
        if self._since is not None and since >= self._since:
            if time.monotonic() - self._polled < self._poll_every:
                return
            if not self._reading.acquire(blocking=False):
                return  # another thread is reading: serve what is there meanwhile
        else:
            self._reading.acquire()  # the first request, or caps with a longer window
        try:
            if self._since is None or since < self._since:
                self._load_all(now, caps)
            elif time.monotonic() - self._polled >= self._poll_every:
                self._poll(now)
        finally:
            self._reading.release()

    def _load_all(self, now: datetime, caps: Sequence[Cap]) -> None:
        since = shown_window(caps, now)
        with self.ws.db.connect() as conn:
            marks = newest_ids(conn=conn)  # first: what commits meanwhile is read again
            contacts = newest_in_app_of(conn=conn, accounts=None)
            views = account_views(conn, contacts, since=since, users=True)
        self._views, self._by_user, self._ages = {}, {}, collections.deque()
        self._loaded_at, self._account_of = {}, {}
        self._since, self._marks, self._seen = since, marks, (set(), set())
        self._put(views, set(views), time.monotonic())
        self._polled = time.monotonic()

    def _poll(self, now: datetime) -> None:
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
        clock = time.monotonic()
        # At least the share of the views that aged since the last look, so that none waits long.
        budget = max(SWEEP, int(len(self._views) * (clock - self._polled) / self._max_age) + 1)
        while self._ages and len(changed) < budget and self._ages[0][0] < clock - self._max_age:
            at, account = self._ages.popleft()
            if self._loaded_at.get(account) == at:
                changed.add(account)
        if changed:
            self._read(changed, now)
        self._polled = time.monotonic()

    def _read(self, accounts: set[str], now: datetime) -> None:
        assert self._since is not None
        with self.ws.db.connect() as conn:
            contacts = newest_in_app_of(conn=conn, accounts=accounts)
            views = account_views(conn, contacts, since=self._since, users=True)
        self._put(views, accounts, time.monotonic())

    def _put(self, views: dict[str, AccountView], accounts: set[str], clock: float) -> None:
        """Replace the views of `accounts` with `views` (an account without one has nothing to
        show now). Readers do not lock: each entry is replaced whole, never changed in place."""
        for account in accounts:
            old, new = self._views.get(account), views.get(account)
            before = old.users if old else frozenset()
            after = new.users if new else frozenset()
            for user in after - before:
                self._by_user[user] = self._by_user.get(user, frozenset()) | {account}
            if old is not None:
                self._account_of.pop(old.contact.contact_id or 0, None)
            if new is None:
                self._views.pop(account, None)
                self._loaded_at.pop(account, None)
            else:
                self._account_of[new.contact.contact_id or 0] = account
                self._views[account] = new
                self._loaded_at[account] = clock
                self._ages.append((clock, account))
            for user in before - after:
                left = self._by_user.get(user, frozenset()) - {account}
                if left:
                    self._by_user[user] = left
                else:
                    self._by_user.pop(user, None)
