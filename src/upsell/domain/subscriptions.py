"""Subscription items: one row per period an account held a plan, add-on or product.

The MRR rules are metrics.md's: an item's MRR is ``unit_price x quantity / months_in_interval``
converted to the base currency; trialing items count 0; a row holds its item from `started_at`
inclusive to `ended_at` exclusive. Pay-as-you-go usage is not a subscription item and never MRR
here. `row_mrr` is the one per-row definition; the engine's table-scale MRR (`upsell.engine.
movements.mrr_rows`) calls it once per distinct price, and a test holds the two equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from upsell.domain.money import FxRates, Interval, Money, monthly

Status = Literal["trialing", "active", "past_due", "canceled"]
STATUSES: tuple[Status, ...] = ("trialing", "active", "past_due", "canceled")


@dataclass(frozen=True)
class SubscriptionItem:
    """A period during which an account held `quantity` units of a catalog item.

    `unit_price` is what is charged per `interval` after discounts, in its own currency.
    Timestamps are timezone-aware UTC; `ended_at` None means still held.
    """

    account_id: str
    item_id: str
    started_at: datetime
    unit_price: Money
    ended_at: datetime | None = None
    quantity: int = 1
    interval: Interval = "month"
    status: Status = "active"

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise ValueError(f"quantity must be at least 1, got {self.quantity}")
        if self.unit_price.amount < 0:
            raise ValueError(f"unit_price must not be negative, got {self.unit_price}")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")

    @property
    def key(self) -> tuple[str, str, datetime]:
        """The identity of a row across imports: (account_id, item_id, started_at)."""
        return (self.account_id, self.item_id, self.started_at)

    def held_at(self, at: datetime) -> bool:
        return self.started_at <= at and (self.ended_at is None or at < self.ended_at)

    def mrr(self, fx: FxRates, currency: str | None = None) -> Money:
        """Monthly recurring revenue of this item while held, in `currency` (default the base
        currency; exact, not rounded)."""
        return row_mrr(self.unit_price, self.quantity, self.interval, self.status, fx, currency)


def row_mrr(
    unit_price: Money,
    quantity: int,
    interval: Interval,
    status: str,
    fx: FxRates,
    currency: str | None = None,
) -> Money:
    """metrics.md's MRR of one subscription row: what `quantity` units cost per `interval`,
    converted into `currency` (default: the base currency) at `fx`'s rates, over the months of the
    interval (a year is 12). Trialing rows count 0. Exact: rounding is the caller's."""
    to = currency or fx.base
    if status == "trialing":
        return Money.zero(to)
    return monthly(fx.convert(unit_price * quantity, to), interval)


def mrr_at(items: Iterable[SubscriptionItem], at: datetime, fx: FxRates) -> Money:
    """An account's MRR at an instant: the sum over the items held then."""
    total = Money.zero(fx.base)
    for item in items:
        if item.held_at(at):
            total = total + item.mrr(fx)
    return total


@dataclass(frozen=True)
class Purchase:
    """The account bought `item_id` at `at`: a plan, more of one, an add-on or a product."""

    item_id: str
    at: datetime


def last_purchase(
    rows: Iterable[SubscriptionItem], tiers: Mapping[str, int], at: datetime
) -> Purchase | None:
    """The latest purchase among an account's subscription rows started by `at`, or None.

    A purchase is a paid row (not trialing, a price above 0) that adds to what the account held:
    a new item, a plan of a higher tier, more units, or a trial converted. A row that replaces
    one ending at its start is no purchase when the replaced row was paid and not trialing and
    either both are plans and the old one's tier was higher, or equal with at least as many
    units, or it is the same item with at least as many units: a downgrade, a renewal, a price
    change or fewer seats. `tiers` are the catalog's plans with their tier.
    """
    mine = [r for r in rows if r.started_at <= at]

    def paid(r: SubscriptionItem) -> bool:
        return r.status != "trialing" and r.unit_price.amount > 0

    def replaces(old: SubscriptionItem, new: SubscriptionItem) -> bool:
        """`new` is no more than `old` was."""
        if old.item_id in tiers and new.item_id in tiers:
            a, b = tiers[old.item_id], tiers[new.item_id]
            return a > b or (a == b and old.quantity >= new.quantity)
        return old.item_id == new.item_id and old.quantity >= new.quantity

    best: Purchase | None = None
    for r in mine:
        if not paid(r) or (best is not None and r.started_at <= best.at):
            continue
        if any(o.ended_at == r.started_at and paid(o) and replaces(o, r) for o in mine):
            continue
        best = Purchase(r.item_id, r.started_at)
    return best
