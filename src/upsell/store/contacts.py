"""Contacts (offers made or held out) and the responses to them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upsell.domain.contacts import Contact, Response
from upsell.domain.money import Money
from upsell.store.schema import contacts as contacts_table
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


def _contact(row: sa.Row[Any]) -> Contact:
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
    return [_contact(row) for row in conn.execute(query)]


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
