"""The in-app queue as the widget reads it: a user's accounts, each account's newest in-app
contact, the messages shown lately, and the widget's answers (docs/in-app.md)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from upsell.domain.contacts import Contact, Response
from upsell.domain.events import OFFER_CLICKED, OFFER_DISMISSED, OFFER_VIEWED, Event
from upsell.domain.in_app import IN_APP, WIDGET_EVENTS, Shown
from upsell.domain.money import Money
from upsell.domain.proration import PlanRow
from upsell.store.contacts import contact_from_row, record_response
from upsell.store.db import IN_CHUNK
from upsell.store.events import add_events
from upsell.store.schema import contacts as contacts_table
from upsell.store.schema import identities as identities_table
from upsell.store.schema import responses as responses_table
from upsell.store.schema import subscription_items
from upsell.store.schema import users as users_table

#: The response event each widget answer is also stored as, so that the report's funnel
#: (engine/funnel.py) counts it like any other; a conversion is measured from the subscriptions.
_EVENT_OF: dict[str, str] = {
    "shown": OFFER_VIEWED,
    "clicked": OFFER_CLICKED,
    "dismissed": OFFER_DISMISSED,
}


def accounts_of_user(*, conn: sa.Connection, user_id: str) -> set[str]:
    """The accounts a user belongs to: those whose events name it, and its `group` account."""
    found = set(
        conn.execute(
            sa.select(users_table.c.account_id).where(users_table.c.user_id == user_id)
        ).scalars()
    )
    grouped = conn.execute(
        sa.select(identities_table.c.account_id).where(identities_table.c.user_id == user_id)
    ).scalar_one_or_none()
    if grouped is not None:
        found.add(grouped)
    return found


_c = contacts_table.c
_u, _i = users_table.c, identities_table.c
# The statements of GET /v1/messages, built once (only their values change per request).
_MINE = sa.union(
    sa.select(_u.account_id).where(_u.user_id == sa.bindparam("user_id")),
    sa.select(_i.account_id).where(
        _i.user_id == sa.bindparam("user_id"), _i.account_id.is_not(None)
    ),
).subquery()


def _ranked(accounts: sa.ColumnElement[bool] | None) -> sa.Subquery:
    """The in-app contacts (not held out, not failed) of the accounts `accounts` selects (of all
    without it), ranked newest first within each account."""
    query = sa.select(
        contacts_table,
        sa.func.row_number()
        .over(partition_by=_c.account_id, order_by=(_c.as_of.desc(), _c.contact_id.desc()))
        .label("rank"),
    ).where(_c.channel == IN_APP, _c.held_out.is_(False), _c.status != "failed")
    return (query if accounts is None else query.where(accounts)).subquery()


_RANKED = _ranked(_c.account_id.in_(sa.select(_MINE.c.account_id)))
_NEWEST = sa.select(_RANKED).where(_RANKED.c.rank == 1)
_IN_APP_RANKED = _ranked(None)
_SHOWN = sa.select(_c.contact_id, _c.account_id, _c.channel, _c.placement, _c.shown_at).where(
    _c.account_id.in_(sa.bindparam("accounts", expanding=True)),
    _c.shown_at >= sa.bindparam("since"),
)


def newest_in_app(*, conn: sa.Connection, user_id: str) -> list[Contact]:
    """The newest in-app contact (not held out, not failed) of each account of the user, answered
    or not: the one that supersedes the others. One query."""
    return [contact_from_row(row) for row in conn.execute(_NEWEST, {"user_id": user_id})]


def newest_in_app_of(*, conn: sa.Connection, accounts: Collection[str] | None) -> list[Contact]:
    """The newest in-app contact (not held out, not failed) of each of `accounts` (of every
    account when None): `newest_in_app` for many accounts at once."""
    if accounts is None:
        rows = conn.execute(sa.select(_IN_APP_RANKED).where(_IN_APP_RANKED.c.rank == 1))
        return [contact_from_row(row) for row in rows]
    out: list[Contact] = []
    for chunk in _chunks(accounts):
        ranked = _ranked(_c.account_id.in_(chunk))
        out.extend(
            contact_from_row(r) for r in conn.execute(sa.select(ranked).where(ranked.c.rank == 1))
        )
    return out


def members_of(*, conn: sa.Connection, accounts: Collection[str]) -> dict[str, set[str]]:
    """The users of each of `accounts` (those whose events name it, and those `group` put in
    it), by account id; accounts without users are left out."""
    found: dict[str, set[str]] = {}
    for chunk in _chunks(accounts):
        rows = conn.execute(
            sa.union(
                sa.select(_u.account_id, _u.user_id).where(_u.account_id.in_(chunk)),
                sa.select(_i.account_id, _i.user_id).where(_i.account_id.in_(chunk)),
            )
        )
        for account_id, user_id in rows:
            found.setdefault(account_id, set()).add(user_id)
    return found


def newest_ids(*, conn: sa.Connection) -> tuple[int, int]:
    """The newest contact id and the newest response id (0 without any)."""
    return (
        conn.execute(sa.select(sa.func.coalesce(sa.func.max(_c.contact_id), 0))).scalar_one(),
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(responses_table.c.id), 0))
        ).scalar_one(),
    )


def stored_after(
    *, conn: sa.Connection, contact_id: int, response_id: int
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The in-app contacts stored after `contact_id` and the responses after `response_id`, as
    (id, account id)."""
    r = responses_table.c
    contacts = conn.execute(
        sa.select(_c.contact_id, _c.account_id).where(
            _c.contact_id > contact_id, _c.channel == IN_APP
        )
    )
    responses = conn.execute(sa.select(r.id, r.account_id).where(r.id > response_id))
    return [(i, a) for i, a in contacts], [(i, a) for i, a in responses]


def _chunks(values: Collection[str]) -> Iterable[list[str]]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), IN_CHUNK):
        yield ordered[start : start + IN_CHUNK]


def shown_since(*, conn: sa.Connection, accounts: Collection[str], since: datetime) -> list[Shown]:
    """The contacts of `accounts` shown at or after `since`."""
    return [
        Shown(
            contact_id=r.contact_id,
            account_id=r.account_id,
            channel=r.channel,
            placement=r.placement,
            at=r.shown_at,
        )
        for chunk in _chunks(accounts)
        for r in conn.execute(_SHOWN, {"accounts": chunk, "since": since})
    ]


def contact_by_id(*, conn: sa.Connection, contact_id: int) -> Contact | None:
    row = conn.execute(
        sa.select(contacts_table).where(contacts_table.c.contact_id == contact_id)
    ).first()
    return None if row is None else contact_from_row(row)


def record_answer(
    *,
    conn: sa.Connection,
    contact: Contact,
    event: str,
    user_id: str | None,
    at: datetime,
    properties: dict[str, Any],
) -> bool:
    """Record the widget's `event` (`WIDGET_EVENTS`) on the contact, once: its ``<event>_at``
    column, a response, and the response event the funnel reads. Returns False, changing
    nothing, when that event was already recorded for the contact. A contact first shown becomes
    ``sent`` (delivered)."""
    assert contact.contact_id is not None
    c = contacts_table.c
    column = c[f"{event}_at"]
    values: dict[str, Any] = {column.name: at}
    done = conn.execute(
        sa.update(contacts_table)
        .where(c.contact_id == contact.contact_id, column.is_(None))
        .values(values)
    )
    if done.rowcount != 1:
        return False
    if event == "shown":
        conn.execute(
            sa.update(contacts_table)
            .where(c.contact_id == contact.contact_id, c.status == "queued")
            .values(status="sent", delivered_at=at)
        )
    props = {"offer_id": contact.offer_id, "contact_id": contact.contact_id, **properties}
    record_response(
        conn=conn,
        response=Response(
            contact_id=contact.contact_id,
            account_id=contact.account_id,
            response=WIDGET_EVENTS[event],  # type: ignore[arg-type]
            at=at,
            properties=props,
        ),
    )
    name = _EVENT_OF.get(event)
    if name is not None:
        add_events(
            conn=conn,
            events=[
                Event(
                    message_id=f"upsell:contact:{contact.contact_id}:{event}",
                    account_id=contact.account_id,
                    user_id=user_id,
                    event=name,
                    timestamp=at,
                    properties=props,
                )
            ],
            now=at,
        )
    return True


def plan_rows_of(
    *, conn: sa.Connection, wanted: Collection[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[datetime | None, PlanRow]]]:
    """Every subscription row of each (account, item) in `wanted`, with its end (None while it
    holds), for `upsell.domain.proration.holding` to pick from at any instant."""
    s = subscription_items.c
    found: dict[tuple[str, str], list[tuple[datetime | None, PlanRow]]] = {}
    for chunk in _chunks({account for account, _ in wanted}):
        rows = conn.execute(
            sa.select(
                s.account_id, s.item_id, s.started_at, s.ended_at, s.interval, s.unit_price,
                s.currency, s.quantity,
            ).where(s.account_id.in_(chunk))
        )  # fmt: skip
        for r in rows:
            if (r.account_id, r.item_id) in wanted:
                found.setdefault((r.account_id, r.item_id), []).append((r.ended_at, _plan_row(r)))
    return found


def _plan_row(row: Any) -> PlanRow:
    return PlanRow(
        started_at=row.started_at,
        interval=row.interval,
        unit_price=Money.of(row.unit_price, row.currency),
        quantity=row.quantity,
    )


def unanswered_in_app(*, conn: sa.Connection, limit: int) -> list[Contact]:
    """At most `limit` in-app contacts that are neither held out, failed, nor answered (dismissed,
    clicked, converted), newest first: the demo page's candidates (service/demo.py)."""
    c = contacts_table.c
    rows = conn.execute(
        sa.select(contacts_table)
        .where(c.channel == IN_APP, c.held_out.is_(False), c.status != "failed")
        .where(c.dismissed_at.is_(None), c.clicked_at.is_(None), c.converted_at.is_(None))
        .order_by(c.as_of.desc(), c.contact_id.desc())
        .limit(limit)
    )
    return [contact_from_row(row) for row in rows]


def a_user_of(*, conn: sa.Connection, account_ids: Collection[str]) -> dict[str, str]:
    """One user of each of the accounts that has any (the first by id), by account id."""
    u = users_table.c
    found: dict[str, str] = {}
    ids = sorted(set(account_ids))
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            sa.select(u.account_id, sa.func.min(u.user_id))
            .where(u.account_id.in_(ids[start : start + 500]))
            .group_by(u.account_id)
        )
        found.update({account: user for account, user in rows})
    return found
