"""What every signal table is computed from: the inputs as they stood at `as_of` (`AsOf`), and the
two expression idioms the signal modules share (`attach`, `float64`).

The signals see the whole days before `as_of`: accounts created and subscription rows started before
its first instant, rollup rows of the days before it. "30d" is the 30 days before it (`WINDOW`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import ibis
import ibis.expr.types as ir

from upsell.domain.calendar import day_start
from upsell.domain.catalog import Catalog
from upsell.engine.backends import Backend
from upsell.engine.catalog_tables import catalog_items, catalog_limits

WINDOW = 30


@dataclass(frozen=True)
class AsOf:
    """The store's accounts and subscriptions, the daily rollups and the catalog's tables as seen at
    `as_of`, with the instant and the day literals the signal tables compare against."""

    backend: Backend
    catalog: Catalog
    as_of: date
    instant: ir.TimestampScalar  # the first instant of the as-of day
    day: ir.DateScalar
    d30: ir.DateScalar
    d60: ir.DateScalar
    d7: ir.DateScalar
    accounts: ir.Table  # created before `instant`
    subscriptions: ir.Table  # started before `instant` (ended or not)
    usage: ir.Table  # rollup rows of the days before `day`
    all_usage: ir.Table  # every rollup row: trait moves after as_of are needed too
    users: ir.Table  # user rollup rows of the days before `day`
    items: ir.Table  # catalog_tables.catalog_items
    limits: ir.Table  # catalog_tables.catalog_limits

    @classmethod
    def at(
        cls,
        backend: Backend,
        *,
        accounts: ir.Table,
        subscriptions: ir.Table,
        usage: ir.Table,
        users: ir.Table,
        catalog: Catalog,
        as_of: date,
    ) -> AsOf:
        instant = ibis.literal(day_start(as_of))
        day = ibis.literal(as_of)
        return cls(
            backend=backend,
            catalog=catalog,
            as_of=as_of,
            instant=instant,
            day=day,
            d30=ibis.literal(as_of - timedelta(days=WINDOW)),
            d60=ibis.literal(as_of - timedelta(days=2 * WINDOW)),
            d7=ibis.literal(as_of - timedelta(days=7)),
            accounts=accounts.filter(accounts.created_at < instant),
            subscriptions=subscriptions.filter(subscriptions.started_at < instant),
            usage=usage.filter(usage.day < day),
            all_usage=usage,
            users=users.filter(users.day < day),
            items=catalog_items(backend, catalog),
            limits=catalog_limits(backend, catalog),
        )

    def events(self, event: str, key: str | None = None) -> ir.Table:
        """The usage rows of `event` (with that `key` when given) before as_of."""
        u = self.usage.filter(self.usage.event == event)
        return u if key is None else u.filter(u.key == key)


def window(table: ir.Table, start: ir.DateValue) -> ir.Table:
    """The rows of `table` whose ``day`` is on or after `start`."""
    return table.filter(table.day >= start)


def float64(x: float) -> ir.FloatingScalar:
    """A float64 literal (a bare Python float is a DECIMAL literal on Spark)."""
    return ibis.literal(float(x), "float64")


def attach(base: ir.Table, *others: ir.Table) -> ir.Table:
    """`base` with the columns of each of `others` left-joined on account_id."""
    for other in others:
        j = base.left_join(other, base.account_id == other.account_id)
        base = j.select(
            *(base[c] for c in base.columns),
            *(other[c] for c in other.columns if c != "account_id"),
        )
    return base
