"""Contacts (offers made or held out) and the responses to them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upsell.domain.contacts import Contact, Response
from upsell.domain.decisions import Refusal
from upsell.domain.events import RESPONSE_EVENTS
from upsell.domain.history import History, PastContact, PastResponse
from upsell.domain.money import Money
from upsell.store.db import IN_CHUNK
from upsell.store.schema import contacts as contacts_table
from upsell.store.schema import events as events_table
from upsell.store.schema import refusals as refusals_table
from upsell.store.schema import responses as responses_table

_FIELDS = (
    "account_id",
    "user_id",
    "as_of",
    "kind",
    "offer_id",
    "item_id",
    "channel",
    "placement",
    "playbook",
    "experiment",
    "variant",
    "held_out",
    "status",
    "promotion",
    "detail",
    "attempts",
    "delivered_at",
    "decision",
    "shown_at",
    "clicked_at",
    "dismissed_at",
    "converted_at",
    "trigger",
)


def record_contact(*, conn: sa.Connection, contact: Contact) -> tuple[int, bool]:
    """Record a contact once; returns (contact_id, created).

    A contact with the same (account_id, offer_id, channel, as_of) as a stored one is that contact:
    its id comes back with created False and the stored row is left as it is. `created_at` defaults
    to now.
    """
    c = contacts_table.c
    account_id, offer_id, channel, as_of = contact.key
    existing = conn.execute(
        sa.select(c.contact_id).where(
            c.account_id == account_id,
            c.offer_id == offer_id,
            c.channel == channel,
            c.as_of == as_of,
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    delta = contact.expected_mrr_delta
    values: dict[str, Any] = {name: getattr(contact, name) for name in _FIELDS}
    values.update(
        message=dict(contact.message),
        expected_mrr_delta=None if delta is None else delta.amount,
        currency=None if delta is None else delta.currency,
        created_at=contact.created_at or datetime.now(UTC),
    )
    result = conn.execute(sa.insert(contacts_table).values(values))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0]), True


def contact_from_row(row: sa.Row[Any]) -> Contact:
    m = row._mapping
    delta = m["expected_mrr_delta"]
    return Contact(
        **{name: m[name] for name in _FIELDS},
        message=m["message"],
        expected_mrr_delta=None if delta is None else Money(delta, m["currency"]),
        created_at=m["created_at"],
        contact_id=m["contact_id"],
    )


def contacts_for(*, conn: sa.Connection, account_id: str) -> list[Contact]:
    """An account's contacts, oldest `as_of` first (ties in the order they were recorded)."""
    query = (
        sa.select(contacts_table)
        .where(contacts_table.c.account_id == account_id)
        .order_by(contacts_table.c.as_of, contacts_table.c.contact_id)
    )
    return [contact_from_row(row) for row in conn.execute(query)]


def record_response(*, conn: sa.Connection, response: Response) -> int:
    """Record a response to a stored contact; returns its id.

    A `contact_id` the store does not hold violates the foreign key (sqlalchemy IntegrityError).
    """
    result = conn.execute(
        sa.insert(responses_table).values(
            contact_id=response.contact_id,
            account_id=response.account_id,
            response=response.response,
            at=response.at,
            properties=dict(response.properties),
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def responses_for(*, conn: sa.Connection, account_id: str) -> list[Response]:
    """An account's responses, in the order they happened (ties in the order they were recorded)."""
    query = (
        sa.select(responses_table)
        .where(responses_table.c.account_id == account_id)
        .order_by(responses_table.c.at, responses_table.c.id)
    )
    return [
        Response(
            contact_id=row.contact_id,
            account_id=row.account_id,
            response=row.response,
            at=row.at,
            properties=row.properties,
            response_id=row.id,
        )
        for row in conn.execute(query)
    ]


def _deliverable() -> sa.ColumnElement[bool]:
    """A contact to deliver: never tried (``queued``, no attempt yet) or ``failed``."""
    c = contacts_table.c
    return sa.or_(c.status == "failed", sa.and_(c.status == "queued", c.attempts == 0))


def claim_delivery(
    *,
    conn: sa.Connection,
    contact_id: int,
    claimer: str,
    now: datetime,
    lease: timedelta,
    gone: Callable[[str], bool],
) -> bool:
    """Claim a contact for delivery by `claimer` until `now` + `lease`: True when this call took
    it, False when it is not to be delivered (sent, or tried and left ``queued`` for the widget)
    or another claimer's claim holds. A claim holds until its lease ends or `gone` says its
    claimer has ended (a process that died while it delivered).

    A compare-and-set: the update succeeds only if the claim is still the one read, so of two
    processes claiming at once exactly one gets the contact, on every database."""
    c = contacts_table.c
    row = conn.execute(
        sa.select(c.claimed_by, c.lease_until).where(c.contact_id == contact_id, _deliverable())
    ).first()
    if row is None:
        return False
    held = row.claimed_by is not None and row.lease_until is not None and row.lease_until > now
    if held and row.claimed_by != claimer and not gone(row.claimed_by):
        return False
    same = c.claimed_by.is_(None) if row.claimed_by is None else c.claimed_by == row.claimed_by
    taken = conn.execute(
        sa.update(contacts_table)
        .where(c.contact_id == contact_id, _deliverable(), same)
        .values(claimed_by=claimer, lease_until=now + lease)
    ).rowcount
    return bool(taken)


def set_delivery(
    *,
    conn: sa.Connection,
    contact_id: int,
    status: str,
    attempts: int,
    detail: str | None,
    at: datetime,
) -> None:
    """Record how a delivery went, and end its claim: ``sent``, ``queued`` (in-app: waiting for
    the widget) or ``failed`` (a later run for the same as-of retries it)."""
    c = contacts_table.c
    conn.execute(
        sa.update(contacts_table)
        .where(c.contact_id == contact_id)
        .values(
            status=status,
            attempts=c.attempts + attempts,
            detail=detail,
            delivered_at=at,
            claimed_by=None,
            lease_until=None,
        )
    )


def contacts_at(*, conn: sa.Connection, as_of: datetime) -> list[Contact]:
    """Every contact of a run at `as_of` (held out included), by account then offer."""
    c = contacts_table.c
    query = sa.select(contacts_table).where(c.as_of == as_of).order_by(c.account_id, c.contact_id)
    return [contact_from_row(row) for row in conn.execute(query)]


def _past(row: sa.Row[Any]) -> PastContact:
    return PastContact(
        as_of=row.as_of,
        offer_id=row.offer_id,
        channel=row.channel,
        placement=row.placement,
        promotion=row.promotion,
        held_out=row.held_out,
        failed=row.status == "failed",
        trigger=row.trigger is not None,
    )


def _past_columns() -> tuple[sa.ColumnElement[Any], ...]:
    c = contacts_table.c
    return (
        c.account_id, c.as_of, c.offer_id, c.channel, c.placement, c.promotion, c.held_out,
        c.status, c.trigger,
    )  # fmt: skip


def histories(
    *,
    conn: sa.Connection,
    before: datetime,
    since: datetime,
    account_ids: Sequence[str] | None = None,
) -> dict[str, History]:
    """What upsell did with each account in [since, before) and how it answered: its contacts,
    the responses recorded for them and the response events (`RESPONSE_EVENTS`) with an
    ``offer_id``. Accounts with nothing are left out; only those of `account_ids` when given
    (a trigger's few, at most `IN_CHUNK`)."""
    c = contacts_table.c
    r = responses_table.c
    e = events_table.c
    ids = None if account_ids is None else list(account_ids)
    if ids is not None and len(ids) > IN_CHUNK:
        raise ValueError(f"at most {IN_CHUNK} accounts at a time, not {len(ids)}")
    contacts: dict[str, list[PastContact]] = {}
    query = (
        sa.select(*_past_columns())
        .where(c.as_of >= since, c.as_of < before)
        .order_by(c.account_id, c.as_of, c.contact_id)
    )
    if ids is not None:
        query = query.where(c.account_id.in_(ids))
    for row in conn.execute(query):
        contacts.setdefault(row.account_id, []).append(_past(row))
    responses: dict[str, list[PastResponse]] = {}
    recorded_query = (
        sa.select(r.account_id, r.at, r.response, c.offer_id)
        .join(contacts_table, c.contact_id == r.contact_id)
        .where(r.at >= since, r.at < before)
    )
    if ids is not None:
        recorded_query = recorded_query.where(r.account_id.in_(ids))
    for rrow in conn.execute(recorded_query):
        responses.setdefault(rrow.account_id, []).append(
            PastResponse(at=rrow.at, offer_id=rrow.offer_id, response=rrow.response)
        )
    answered_query = sa.select(e.account_id, e.timestamp, e.event, e.properties).where(
        e.event.in_(list(RESPONSE_EVENTS)), e.timestamp >= since, e.timestamp < before
    )
    if ids is not None:
        answered_query = answered_query.where(e.account_id.in_(ids))
    for erow in conn.execute(answered_query):
        props = erow.properties if isinstance(erow.properties, dict) else {}
        offer_id = props.get("offer_id")
        if isinstance(offer_id, str):
            responses.setdefault(erow.account_id, []).append(
                PastResponse(
                    at=erow.timestamp, offer_id=offer_id, response=RESPONSE_EVENTS[erow.event]
                )
            )
    out: dict[str, History] = {}
    for account_id in sorted(contacts.keys() | responses.keys()):
        out[account_id] = History(
            contacts=tuple(contacts.get(account_id, ())),
            responses=tuple(sorted(responses.get(account_id, ()), key=lambda x: x.at)),
        )
    return out


def trigger_contacts(
    *, conn: sa.Connection, since: datetime, until: datetime
) -> dict[str, tuple[PastContact, ...]]:
    """The contacts real-time triggers made in [since, until), by account: those the daily run at
    `since` must honour although they come after its as-of instant (`History.later`)."""
    c = contacts_table.c
    out: dict[str, list[PastContact]] = {}
    query = (
        sa.select(*_past_columns())
        .where(c.trigger.is_not(None), c.as_of >= since, c.as_of < until)
        .order_by(c.account_id, c.as_of, c.contact_id)
    )
    for row in conn.execute(query):
        out.setdefault(row.account_id, []).append(_past(row))
    return {account_id: tuple(found) for account_id, found in out.items()}


def add_refusals(*, conn: sa.Connection, as_of: datetime, refusals: Sequence[Refusal]) -> None:
    """Store refusals at `as_of`, keeping those stored already (a trigger's: each decision has
    an instant of its own)."""
    if refusals:
        conn.execute(sa.insert(refusals_table), [_refusal_row(as_of, x) for x in refusals])


def _refusal_row(as_of: datetime, x: Refusal) -> dict[str, Any]:
    return {
        "as_of": as_of,
        "account_id": x.account_id,
        "offer_id": x.offer_id,
        "playbook": x.playbook,
        "guardrail": x.guardrail,
        "detail": x.detail,
    }


def replace_refusals(*, conn: sa.Connection, as_of: datetime, refusals: list[Refusal]) -> None:
    """Store the refusals of the run at `as_of`, replacing those of an earlier run at that
    instant (a repeated run records what it decided this time, once)."""
    conn.execute(sa.delete(refusals_table).where(refusals_table.c.as_of == as_of))
    add_refusals(conn=conn, as_of=as_of, refusals=refusals)


def refusals_at(*, conn: sa.Connection, as_of: datetime) -> list[Refusal]:
    t = refusals_table.c
    query = sa.select(refusals_table).where(t.as_of == as_of).order_by(t.account_id, t.id)
    return [
        Refusal(
            account_id=row.account_id,
            offer_id=row.offer_id,
            guardrail=row.guardrail,
            detail=row.detail,
            playbook=row.playbook,
        )
        for row in conn.execute(query)
    ]


def find_contacts(
    *,
    conn: sa.Connection,
    account_id: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    as_of: datetime | None = None,
    triggered: bool | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[Contact]:
    """Contacts matching every filter given, by contact id, from just after the id `after`; at
    most `limit` (the admin API's pages). `triggered`: only real-time triggers' contacts (True)
    or only the daily run's (False)."""
    c = contacts_table.c
    query = sa.select(contacts_table).order_by(c.contact_id).limit(limit)
    for column, value in (
        (c.account_id, account_id),
        (c.status, status),
        (c.channel, channel),
        (c.as_of, as_of),
    ):
        if value is not None:
            query = query.where(column == value)
    if triggered is not None:
        query = query.where(c.trigger.is_not(None) if triggered else c.trigger.is_(None))
    if after is not None:
        query = query.where(c.contact_id > after)
    return [contact_from_row(row) for row in conn.execute(query)]
