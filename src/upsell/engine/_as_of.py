"""What every signal table is computed from: the inputs as they stood at `as_of` (`AsOf`), and the
two expression idioms the signal modules share (`attach`, `float64`).

The signals see the whole days before `as_of`: accounts created and subscription rows started before
its first instant, rollup rows of the days before it. "30d" is the 30 days before it (`WINDOW`).

A real-time trigger (flows/triggers.py) asks for the signals at an instant instead (`AsOf.at`'s
`instant`, on the day `as_of`): they then see what the daily run of the next day would see if it
ran at that instant — the rollup rows of `as_of` itself count (today's events, up to the instant),
"30d" is the 30 days ending today — while accounts, subscription rows and holdings are those of the
instant, and tenure and the billing period are counted from `as_of` (`today`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

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
    as_of: date  # rollup rows of the days before it count (the next day, for an instant)
    instant: ir.TimestampValue  # the first instant of the as-of day (or the trigger's instant)
    day: ir.DateScalar  # rollup rows of the days before it count
    today: ir.DateScalar  # the day of tenure and billing periods: as_of
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
    # The fewest events of a power user, from everyone's (engagement.power_user_floor), when the
    # accounts are a few: None, they are ranked among the users of `users`.
    power_floor: ir.NumericValue | None = None

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
        instant: datetime | ir.TimestampValue | None = None,
        power_floor: ir.NumericValue | None = None,
    ) -> AsOf:
        """The inputs as of the first instant of `as_of`, or as of `instant` (a trigger's, on the
        day `as_of`: that day's rollup rows count too; the module docstring). `instant` may be an
        expression (a scalar read from a table), so that one compiled query serves many instants
        of the day."""
        if isinstance(instant, datetime) and instant.astimezone(UTC).date() != as_of:
            raise ValueError(f"the instant {instant} is not on the day {as_of}")
        today = as_of
        if instant is not None:
            as_of = as_of + timedelta(days=1)  # the days before it include today
        at: ir.TimestampValue
        if isinstance(instant, ir.Expr):
            at = instant
        else:
            at = ibis.literal(instant if instant is not None else day_start(as_of))
        day = ibis.literal(as_of)
        return cls(
            backend=backend,
            catalog=catalog,
            as_of=as_of,
            instant=at,
            day=day,
            today=day if instant is None else ibis.literal(today),
            d30=ibis.literal(as_of - timedelta(days=WINDOW)),
            d60=ibis.literal(as_of - timedelta(days=2 * WINDOW)),
            d7=ibis.literal(as_of - timedelta(days=7)),
            accounts=accounts.filter(accounts.created_at < at),
            subscriptions=subscriptions.filter(subscriptions.started_at < at),
            usage=usage.filter(usage.day < day),
            all_usage=usage,
            users=users.filter(users.day < day),
            items=catalog_items(backend, catalog),
            limits=catalog_limits(backend, catalog),
            power_floor=power_floor,
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
