"""Stripe's state in the store: customers to accounts, subscription items to their current row, the
latest event applied per Stripe object, and every event received with its outcome.

The functions run inside the caller's transaction (one per Stripe event, `upsell.ingest.stripe`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upsell.domain.money import Money
from upsell.domain.subscriptions import SubscriptionItem
from upsell.store.schema import STRIPE_OUTCOMES, stripe_customers, stripe_events, stripe_items
from upsell.store.schema import stripe_objects as objects_table
from upsell.store.schema import subscription_items as rows_table
from upsell.store.subscriptions import row_values


def lock(*, conn: sa.Connection, keys: list[str]) -> None:
    """Serialise the transactions that touch the same Stripe objects: a transaction-scoped advisory
    lock per key on PostgreSQL, in sorted order (no deadlock). SQLite needs none: its writers take
    the database lock up front (``sqlite_begin="IMMEDIATE"``)."""
    if conn.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


# -- events and objects --------------------------------------------------------------------------


def recorded_outcome(*, conn: sa.Connection, event_id: str) -> str | None:
    """What became of the event the first time it came, or None for a new event."""
    query = sa.select(stripe_events.c.outcome).where(stripe_events.c.event_id == event_id)
    outcome: str | None = conn.execute(query).scalar_one_or_none()
    return outcome


def record_event(
    *,
    conn: sa.Connection,
    event_id: str,
    type: str,
    object_id: str | None,
    customer_id: str | None,
    created: datetime,
    outcome: str,
    detail: str | None,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Store (or, for an event applied again, update) what became of an event; `payload` is kept
    for an event to apply later (None forgets it)."""
    if outcome not in STRIPE_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    values: dict[str, Any] = {
        "type": type,
        "object_id": object_id,
        "customer_id": customer_id,
        "created": created,
        "outcome": outcome,
        "detail": detail,
        "payload": sa.null() if payload is None else dict(payload),
        "received_at": datetime.now(UTC),
    }
    done = conn.execute(
        sa.update(stripe_events).where(stripe_events.c.event_id == event_id).values(values)
    )
    if done.rowcount == 0:
        conn.execute(sa.insert(stripe_events).values(event_id=event_id, **values))


def set_aside(*, conn: sa.Connection, event_id: str, detail: str) -> None:
    """A kept event that cannot be applied after all: ignored, with the reason, payload dropped."""
    conn.execute(
        sa.update(stripe_events)
        .where(stripe_events.c.event_id == event_id)
        .values(outcome="ignored", detail=detail, payload=sa.null())
    )


def waiting_for_customer(*, conn: sa.Connection, customer_id: str) -> list[Mapping[str, Any]]:
    """The payloads kept of a customer's events that waited for its account, oldest first."""
    e = stripe_events.c
    query = (
        sa.select(e.payload)
        .where(e.customer_id == customer_id, e.outcome == "unmapped")
        .order_by(e.created, e.received_at)
    )
    return [row.payload for row in conn.execute(query) if row.payload is not None]


def event_counts(*, conn: sa.Connection) -> dict[str, int]:
    """The number of Stripe events received, by outcome."""
    query = sa.select(stripe_events.c.outcome, sa.func.count()).group_by(stripe_events.c.outcome)
    return {outcome: int(n) for outcome, n in conn.execute(query).all()}


@dataclass(frozen=True)
class Applied:
    """The latest event applied to a Stripe object."""

    event_id: str
    event_type: str
    created: datetime


def last_applied(*, conn: sa.Connection, object_id: str) -> Applied | None:
    row = conn.execute(
        sa.select(objects_table).where(objects_table.c.object_id == object_id)
    ).first()
    return None if row is None else Applied(row.event_id, row.event_type, row.event_created)


def set_last_applied(*, conn: sa.Connection, object_id: str, applied: Applied) -> None:
    values = {
        "event_id": applied.event_id,
        "event_type": applied.event_type,
        "event_created": applied.created,
    }
    done = conn.execute(
        sa.update(objects_table).where(objects_table.c.object_id == object_id).values(values)
    )
    if done.rowcount == 0:
        conn.execute(sa.insert(objects_table).values(object_id=object_id, **values))


# -- customers ------------------------------------------------------------------------------------


def account_of_customer(*, conn: sa.Connection, customer_id: str) -> str | None:
    query = sa.select(stripe_customers.c.account_id).where(
        stripe_customers.c.customer_id == customer_id
    )
    account_id: str | None = conn.execute(query).scalar_one_or_none()
    return account_id


def map_customer(*, conn: sa.Connection, customer_id: str, account_id: str) -> None:
    """Remember that `customer_id` is `account_id`, unless the customer is mapped already."""
    if account_of_customer(conn=conn, customer_id=customer_id) is None:
        conn.execute(
            sa.insert(stripe_customers).values(
                customer_id=customer_id, account_id=account_id, created_at=datetime.now(UTC)
            )
        )


# -- subscription items ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StripeItem:
    """A Stripe subscription item as stored, with the row that holds it now (if any)."""

    stripe_item_id: str
    subscription_id: str
    account_id: str
    price_id: str
    cancel_at_period_end: bool
    current_period_start: datetime | None
    current_period_end: datetime | None
    row_id: int | None
    row: SubscriptionItem | None


def items_of_subscription(*, conn: sa.Connection, subscription_id: str) -> dict[str, StripeItem]:
    """The stored items of one Stripe subscription by Stripe item id, each with its current row."""
    s, r = stripe_items.c, rows_table
    query = (
        sa.select(stripe_items, *[c.label(f"r_{c.name}") for c in r.c])
        .select_from(stripe_items.outerjoin(r, r.c.id == s.row_id))
        .where(s.subscription_id == subscription_id)
    )
    out: dict[str, StripeItem] = {}
    for row in conn.execute(query):
        m = row._mapping
        current = None
        if m["r_id"] is not None:
            current = SubscriptionItem(
                account_id=m["r_account_id"],
                item_id=m["r_item_id"],
                started_at=m["r_started_at"],
                ended_at=m["r_ended_at"],
                quantity=m["r_quantity"],
                interval=m["r_interval"],
                unit_price=Money(m["r_unit_price"], m["r_currency"]),
                status=m["r_status"],
            )
        out[row.stripe_item_id] = StripeItem(
            stripe_item_id=row.stripe_item_id,
            subscription_id=row.subscription_id,
            account_id=row.account_id,
            price_id=row.price_id,
            cancel_at_period_end=row.cancel_at_period_end,
            current_period_start=row.current_period_start,
            current_period_end=row.current_period_end,
            row_id=m["r_id"],
            row=current,
        )
    return out


def save_item(*, conn: sa.Connection, item: StripeItem) -> None:
    values = {
        "subscription_id": item.subscription_id,
        "account_id": item.account_id,
        "row_id": item.row_id,
        "price_id": item.price_id,
        "cancel_at_period_end": item.cancel_at_period_end,
        "current_period_start": item.current_period_start,
        "current_period_end": item.current_period_end,
        "updated_at": datetime.now(UTC),
    }
    key = stripe_items.c.stripe_item_id == item.stripe_item_id
    if conn.execute(sa.update(stripe_items).where(key).values(values)).rowcount == 0:
        conn.execute(sa.insert(stripe_items).values(stripe_item_id=item.stripe_item_id, **values))


def row_taken(*, conn: sa.Connection, item: SubscriptionItem) -> bool:
    """Whether a subscription row with `item`'s key (account, item, started_at) is stored."""
    c = rows_table.c
    query = sa.select(c.id).where(
        c.account_id == item.account_id, c.item_id == item.item_id, c.started_at == item.started_at
    )
    return conn.execute(query).first() is not None


def start_row(*, conn: sa.Connection, item: SubscriptionItem) -> int:
    """Store a new subscription row; returns its id."""
    result = conn.execute(
        sa.insert(rows_table).values(**row_values(item), updated_at=datetime.now(UTC))
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def replace_row(*, conn: sa.Connection, row_id: int, item: SubscriptionItem) -> None:
    """Overwrite a stored row's values (its end, its status, or all of them)."""
    conn.execute(
        sa.update(rows_table)
        .where(rows_table.c.id == row_id)
        .values(**row_values(item), updated_at=datetime.now(UTC))
    )
