"""Subscription items, keyed across imports by (account_id, item_id, started_at)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upsell.domain.money import Money
from upsell.domain.subscriptions import SubscriptionItem
from upsell.store.db import in_chunks
from upsell.store.schema import subscription_items as items_table


def row_values(item: SubscriptionItem) -> dict[str, Any]:
    """A subscription row's column values (all but its id and `updated_at`)."""
    return {
        "account_id": item.account_id,
        "item_id": item.item_id,
        "started_at": item.started_at,
        "ended_at": item.ended_at,
        "quantity": item.quantity,
        "interval": item.interval,
        "unit_price": item.unit_price.amount,
        "currency": item.unit_price.currency,
        "status": item.status,
    }


def item_from_row(row: sa.Row[Any]) -> SubscriptionItem:
    return SubscriptionItem(
        account_id=row.account_id,
        item_id=row.item_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        quantity=row.quantity,
        interval=row.interval,
        unit_price=Money(row.unit_price, row.currency),
        status=row.status,
    )


def upsert_subscription_items(
    *, conn: sa.Connection, items: Sequence[SubscriptionItem]
) -> tuple[int, int, int]:
    """Store items; returns (new, updated, unchanged).

    A row whose key is stored already replaces the stored values (typically setting `ended_at`);
    equal values (instants compared as instants, amounts as numbers) count as unchanged and are not
    written. When a key appears twice in `items`, the last one wins and the three counts add up to
    the number of distinct keys, not of rows.
    """
    latest = {item.key: item for item in items}
    stored: dict[tuple[str, str, datetime], tuple[int, SubscriptionItem]] = {}
    for chunk in in_chunks({key[0] for key in latest}):
        rows = conn.execute(sa.select(items_table).where(items_table.c.account_id.in_(chunk)))
        for row in rows:
            item = item_from_row(row)
            if item.key in latest:
                stored[item.key] = (row.id, item)
    now = datetime.now(UTC)
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for key, item in latest.items():
        if key not in stored:
            new.append({**row_values(item), "updated_at": now})
        else:
            row_id, old = stored[key]
            if old != item:
                changed.append({**row_values(item), "key": row_id, "updated_at": now})
    if new:
        conn.execute(sa.insert(items_table), new)
    if changed:
        conn.execute(sa.update(items_table).where(items_table.c.id == sa.bindparam("key")), changed)
    return len(new), len(changed), len(latest) - len(new) - len(changed)


def subscription_items(
    *, conn: sa.Connection, account_id: str | None = None
) -> list[SubscriptionItem]:
    """Stored items, of one account or of all, ordered by account_id, started_at, item_id.

    Sorted in Python, by code point, because PostgreSQL's ORDER BY on text follows the database's
    collation (``en_US`` puts ``a-10`` after ``A-2``) while SQLite compares bytes.
    """
    query = sa.select(items_table)
    if account_id is not None:
        query = query.where(items_table.c.account_id == account_id)
    items = [item_from_row(row) for row in conn.execute(query)]
    items.sort(key=lambda item: (item.account_id, item.started_at, item.item_id))
    return items
