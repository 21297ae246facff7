"""The in-app messages of a user, and the widget's answers (docs/in-app.md).

`messages_for` is what ``GET /v1/messages`` (and ``upsell messages``) serve: the newest live in-app
contact of each of the user's accounts that the display-time guardrails let through
(`upsell.domain.in_app.servable`). It reads an `AccountView` of each of the user's accounts and
`choose`s from them; the service keeps the views of every account in memory instead
(`upsell.service.inbox`), and chooses the same way. `record_event` stores what the widget reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upsell.domain.contacts import Contact
from upsell.domain.in_app import IN_APP, WIDGET_EVENTS, Queued, Shown, longest_window, servable
from upsell.domain.money import Money
from upsell.domain.playbooks import Cap
from upsell.domain.proration import PlanRow, holding, upgrade_due
from upsell.errors import UpsellError
from upsell.store.messages import (
    accounts_of_user,
    contact_by_id,
    members_of,
    newest_in_app,
    plan_rows_of,
    record_answer,
    shown_since,
)
from upsell.workspace import Workspace


class MessageNotFound(UpsellError):
    """No in-app message of that id for that user (it may exist for another user)."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"no in-app message {message_id} for this user")
        self.message_id = message_id


def caps_of(ws: Workspace) -> tuple[Cap, ...]:
    """playbooks.yaml's caps (the built-in ones without the file); they do not need the catalog."""
    return ws.load_playbooks(None).playbooks.guardrails.caps


@dataclass(frozen=True)
class Served:
    """An in-app message to show: its contact, and what a mid-period upgrade costs today."""

    contact: Contact
    due_today: Money | None = None


@dataclass(frozen=True)
class AccountView:
    """What the messages API needs of one account: its newest in-app contact (the one that
    supersedes the others; never an answered one), its showings since the longest cap's window,
    the subscription rows an upgrade offer replaces (with their ends), and its users (when read)."""

    contact: Contact
    shown: tuple[Shown, ...] = ()
    plan_rows: tuple[tuple[datetime | None, PlanRow], ...] = ()
    users: frozenset[str] = frozenset()


def account_views(
    conn: sa.Connection, contacts: Iterable[Contact], *, since: datetime, users: bool = False
) -> dict[str, AccountView]:
    """The views of the accounts of `contacts` (each account's newest in-app contact), with the
    showings since `since` and, when `users`, their users. An answered contact (dismissed,
    clicked, converted) is never served again and supersedes the older ones: no view."""
    live = [c for c in contacts if not (c.dismissed_at or c.clicked_at or c.converted_at)]
    accounts = {c.account_id for c in live}
    shown: dict[str, list[Shown]] = {}
    for s in shown_since(conn=conn, accounts=accounts, since=since) if accounts else ():
        shown.setdefault(s.account_id, []).append(s)
    rows = _plan_rows(conn, live)
    members = members_of(conn=conn, accounts=accounts) if users and accounts else {}
    return {
        c.account_id: AccountView(
            contact=c,
            shown=tuple(shown.get(c.account_id, ())),
            plan_rows=rows.get(c.account_id, ()),
            users=frozenset(members.get(c.account_id, ())),
        )
        for c in live
    }


def choose(
    views: Iterable[AccountView], *, user_id: str, now: datetime, caps: Sequence[Cap]
) -> list[Served]:
    """The messages to show `user_id` at `now` from the views of the user's accounts, newest
    first (`upsell.domain.in_app.servable`), each with what an upgrade costs today."""
    by_id = {v.contact.contact_id: v for v in views}
    shown = [s for v in by_id.values() for s in v.shown]
    queued = [_queued(v.contact) for v in by_id.values()]
    return [
        Served(v.contact, _due(v, now))
        for v in (
            by_id[q.contact_id] for q in servable(queued, shown, caps, user_id=user_id, now=now)
        )
    ]


def messages_for(
    ws: Workspace,
    *,
    user_id: str,
    now: datetime,
    account_id: str | None = None,
    caps: Sequence[Cap] | None = None,
) -> list[Served]:
    """The messages to show `user_id` now, newest first: one per account of the user (only
    `account_id` when given, and nothing when the user does not belong to it). `caps` default to
    playbooks.yaml's. One connection, two to four queries."""
    caps = caps_of(ws) if caps is None else caps
    with ws.db.connect() as conn:
        live = newest_in_app(conn=conn, user_id=user_id)
        if account_id is not None:
            live = [c for c in live if c.account_id == account_id]
        views = account_views(conn, live, since=shown_window(caps, now))
    return choose(views.values(), user_id=user_id, now=now, caps=caps)


def shown_window(caps: Sequence[Cap], now: datetime) -> datetime:
    """Since when the showings matter to `caps` at `now`."""
    return now - timedelta(days=longest_window(caps))


def record_event(
    ws: Workspace,
    *,
    message_id: str,
    user_id: str,
    event: str,
    at: datetime,
    properties: dict[str, Any] | None = None,
) -> bool:
    """Record the widget's `event` (shown, clicked, dismissed, converted) on an in-app message of
    `user_id`'s; True the first time, False when it was already recorded. MessageNotFound when the
    message is not one of this user's in-app messages."""
    if event not in WIDGET_EVENTS:
        raise ValueError(f"event must be one of {', '.join(WIDGET_EVENTS)}, got {event!r}")
    contact_id = int(message_id) if message_id.isdigit() and len(message_id) < 19 else None
    if contact_id is None:
        raise MessageNotFound(message_id)
    # Reads, then writes: IMMEDIATE takes SQLite's write lock up front (store/db.py).
    with ws.db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        contact = contact_by_id(conn=conn, contact_id=contact_id)
        if (
            contact is None
            or contact.channel != IN_APP
            or contact.held_out
            or (contact.user_id is not None and contact.user_id != user_id)
            or contact.account_id not in accounts_of_user(conn=conn, user_id=user_id)
        ):
            raise MessageNotFound(message_id)
        return record_answer(
            conn=conn,
            contact=contact,
            event=event,
            user_id=user_id,
            at=at,
            properties=dict(properties or {}),
        )


def _plan_rows(
    conn: sa.Connection, contacts: Iterable[Contact]
) -> dict[str, tuple[tuple[datetime | None, PlanRow], ...]]:
    """The subscription rows of the plan each upgrade offer among `contacts` replaces, by
    account."""
    wanted = {
        c.account_id: str((c.decision or {})["from_item_id"]) for c in contacts if _upgrade(c)
    }
    if not wanted:
        return {}
    rows = plan_rows_of(conn=conn, wanted=set(wanted.items()))
    return {account: tuple(rows.get((account, item), ())) for account, item in wanted.items()}


def _upgrade(c: Contact) -> bool:
    return c.kind == "upsell" and bool((c.decision or {}).get("from_item_id"))


def _due(view: AccountView, at: datetime) -> Money | None:
    """What the view's upgrade offer costs at `at` (`upsell.domain.proration.upgrade_due`)."""
    c = view.contact
    if not _upgrade(c):
        return None
    return upgrade_due(c.decision or {}, holding(view.plan_rows, at), at)


def accept_offer(
    ws: Workspace, *, message_id: int, user_id: str, offer_id: str, at: datetime
) -> tuple[Contact, Money | None]:
    """The click on an in-app message's call to action (``GET /v1/offers/{offer_id}/accept``):
    records ``clicked`` once (`record_event`) and returns the contact with the amount due today.
    MessageNotFound when the message is not `user_id`'s or not an offer of `offer_id`."""
    with ws.db.connect() as conn:
        contact = contact_by_id(conn=conn, contact_id=message_id)
    if contact is None or contact.offer_id != offer_id:
        raise MessageNotFound(str(message_id))
    record_event(
        ws,
        message_id=str(message_id),
        user_id=user_id,
        event="clicked",
        at=at,
        properties={"source": "checkout"},
    )
    with ws.db.connect() as conn:
        rows = _plan_rows(conn, [contact]).get(contact.account_id, ())
    return contact, _due(AccountView(contact, plan_rows=rows), at)


def _queued(c: Contact) -> Queued:
    assert c.contact_id is not None
    expires = c.message.get("expires_at") if c.message else None
    return Queued(
        contact_id=c.contact_id,
        account_id=c.account_id,
        as_of=c.as_of,
        placement=c.placement or "banner",
        user_id=c.user_id,
        expires_at=datetime.fromisoformat(expires) if isinstance(expires, str) else None,
        shown_at=c.shown_at,
        clicked_at=c.clicked_at,
        dismissed_at=c.dismissed_at,
        converted_at=c.converted_at,
    )
