"""The in-app messages of a user, and the widget's answers (docs/in-app.md).

`messages_for` is what ``GET /v1/messages`` (and ``upsell messages``) serve: the newest live in-app
contact of each of the user's accounts that the display-time guardrails let through
(`upsell.domain.in_app.servable`). `record_event` stores what the widget reports about one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upsell.domain.contacts import Contact
from upsell.domain.in_app import IN_APP, WIDGET_EVENTS, Queued, longest_window, servable
from upsell.domain.money import Money
from upsell.domain.playbooks import Cap
from upsell.domain.proration import upgrade_due
from upsell.errors import UpsellError
from upsell.store.messages import (
    accounts_of_user,
    contact_by_id,
    newest_in_app,
    plan_row,
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
    playbooks.yaml's. One connection, two or three queries."""
    caps = caps_of(ws) if caps is None else caps
    window = timedelta(days=longest_window(caps))
    with ws.db.connect() as conn:
        live = newest_in_app(conn=conn, user_id=user_id)
        if account_id is not None:
            live = [c for c in live if c.account_id == account_id]
        queued = [_queued(c) for c in live]
        unshown = {q.account_id for q in queued if q.shown_at is None}
        shown = shown_since(conn=conn, accounts=unshown, since=now - window) if caps else []
        chosen = {q.contact_id for q in servable(queued, shown, caps, user_id=user_id, now=now)}
        found = [c for c in sorted(live, key=_newest, reverse=True) if c.contact_id in chosen]
        dues = _dues(conn, found, now)
    return [Served(c, dues.get(c.contact_id or 0)) for c in found]


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


def _dues(conn: sa.Connection, contacts: Sequence[Contact], at: datetime) -> dict[int, Money]:
    """The prorated amount due at `at` for each upgrade offer with a current plan row
    (`upsell.domain.proration.upgrade_due`); one small query per upgrade."""
    out: dict[int, Money] = {}
    for c in contacts:
        decision = c.decision or {}
        if c.kind != "upsell" or not decision.get("from_item_id") or c.contact_id is None:
            continue
        row = plan_row(conn=conn, account_id=c.account_id, item_id=decision["from_item_id"], at=at)
        due = upgrade_due(decision, row, at)
        if due is not None:
            out[c.contact_id] = due
    return out


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
        due = _dues(conn, [contact], at).get(message_id)
    return contact, due


def _newest(c: Contact) -> tuple[datetime, int]:
    return (c.as_of, c.contact_id or 0)


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
