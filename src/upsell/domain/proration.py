"""Proration, as Stripe does it: when a subscription changes price mid-period, the unused time on
the old price is credited and the remaining time on the new price is charged, to the second.

    due today = (new - old) x remaining seconds / period seconds

rounded half-to-even to the currency's minor unit (`Money.rounded`). $10 -> $20 a month, halfway
through the month, is +$5.00 today; a downgrade is negative (a credit). The billing period is the
anniversary of the subscription's start containing the instant: a monthly plan started on Jan 31
renews on Feb 28 (29), Mar 31, Apr 30, ... (`upsell.domain.calendar.add_months`, always counted
from the start, as Stripe anchors the billing cycle).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from upsell.domain.calendar import add_months
from upsell.domain.money import MONTHS_IN_INTERVAL, Interval, Money


@dataclass(frozen=True)
class Period:
    """One billing period: `start` included, `end` excluded."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def remaining_seconds(self, at: datetime) -> int:
        """Whole seconds from `at` to the period's end, 0 to `seconds`."""
        left = int((self.end - at).total_seconds())
        return max(0, min(left, self.seconds))


def billing_period(started_at: datetime, interval: Interval, at: datetime) -> Period:
    """The period of a subscription started at `started_at`, billed every `interval`, that
    contains `at` (the first period when `at` is before the start)."""
    months = MONTHS_IN_INTERVAL[interval]
    # The number of whole periods before `at`, estimated from the calendar and then corrected.
    n = max(0, ((at.year - started_at.year) * 12 + at.month - started_at.month) // months)
    while n > 0 and add_months(started_at, n * months) > at:
        n -= 1
    while add_months(started_at, (n + 1) * months) <= at:
        n += 1
    return Period(add_months(started_at, n * months), add_months(started_at, (n + 1) * months))


def prorate(old: Money, new: Money, period: Period, at: datetime) -> Money:
    """The amount due at `at` for moving from `old` to `new` (each the price of the whole
    `period`): the difference times the share of the period left, to the second, rounded to the
    currency's minor unit. Negative for a downgrade (a credit)."""
    if period.seconds <= 0:
        raise ValueError(f"an empty billing period: {period.start} to {period.end}")
    share = Decimal(period.remaining_seconds(at)) / Decimal(period.seconds)
    return ((new - old) * share).rounded()


@dataclass(frozen=True)
class PlanRow:
    """The subscription row an upgrade replaces: its start (the billing anchor), interval, unit
    price (per interval) and quantity."""

    started_at: datetime
    interval: Interval
    unit_price: Money
    quantity: int


def holding(rows: Iterable[tuple[datetime | None, PlanRow]], at: datetime) -> PlanRow | None:
    """Of subscription rows with their ends (None while open), the one that holds at `at`: started
    by then and not ended, the newest if several."""
    held = [row for ended, row in rows if row.started_at <= at and (ended is None or ended > at)]
    return max(held, key=lambda row: row.started_at, default=None)


def upgrade_due(decision: Mapping[str, Any], row: PlanRow | None, at: datetime) -> Money | None:
    """What an in-app upgrade offer costs today, mid-period: the decision line's monthly `price`
    of the new plan (over the row's interval, at the row's quantity) against the row's price,
    prorated over the row's current billing period. None when not computable: not an upgrade
    (kind ``upsell`` from a plan), no price, no current plan row, or another currency."""
    if decision.get("kind") != "upsell" or not decision.get("from_item_id") or row is None:
        return None
    price, currency = decision.get("price"), decision.get("price_currency")
    if not isinstance(price, str) or currency != row.unit_price.currency:
        return None
    try:
        monthly_price = Money.of(price, row.unit_price.currency)
    except ValueError:
        return None
    quantity = max(row.quantity, 1)
    new = monthly_price * MONTHS_IN_INTERVAL[row.interval] * quantity
    old = row.unit_price * quantity
    return prorate(old, new, billing_period(row.started_at, row.interval, at), at)
