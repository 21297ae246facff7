"""The catalog: what a company sells, as frozen values (data-contract.md, "catalog.yaml").

Plans are tiers of one product (S1), ordered from lowest to highest; add-ons work only with a base
plan or another add-on (S2); products are standalone complementary items for cross-sell (S2, S12);
usage-priced items are pay-as-you-go (S13). Base prices are in the catalog currency, price-book
prices in the book's currency (S17).

`Catalog.check` returns the semantic problems (a limit on an unknown metric, a cycle in
`requires`, a price that goes down as tiers go up, ...); the rules themselves are in
`upsell.domain._catalog_checks`. They know nothing about files: each `Problem` carries a dotted key
in catalog.yaml's own vocabulary (``plans[2].price.month``) that the loader maps to a line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeAlias

from upsell.domain.money import FxRates, Interval, Money, monthly
from upsell.errors import Problem

BusinessModel = Literal["saas", "freemium", "game", "software"]
BUSINESS_MODELS: tuple[BusinessModel, ...] = ("saas", "freemium", "game", "software")
MetricKind = Literal["gauge", "counter"]
METRIC_KINDS: tuple[MetricKind, ...] = ("gauge", "counter")
Window: TypeAlias = Literal["billing_period"] | int | None


@dataclass(frozen=True)
class Metric:
    """What a usage limit is measured in.

    A gauge is the latest value of an account trait (``source_trait``) or of an event property
    (``source_event`` + ``source_property``); a counter counts ``source_event`` events over `window`
    (``"billing_period"``, a number of days, or None for all time). A trait gauge may name the events
    that move it by one (``up_event``, ``down_event``: ``User Invited``, ``User Removed``), so that its
    value at an earlier date and its trend can be read off the events.
    """

    id: str
    kind: MetricKind
    source_trait: str | None = None
    source_event: str | None = None
    source_property: str | None = None
    window: Window = None
    up_event: str | None = None
    down_event: str | None = None


@dataclass(frozen=True)
class UsageSignal:
    """A named usage pattern: at least `at_least` `event` events matching `where` in `window_days`.

    `where` maps event property names to the value they must equal.
    """

    id: str
    event: str
    where: Mapping[str, Any] = field(default_factory=dict)
    at_least: int = 1
    window_days: int = 30


@dataclass(frozen=True)
class Condition:
    """One activation step: `event` seen at least `at_least` times (matching `where`).

    `within_days` limits the count to the first that many days after signup; None means ever.
    """

    event: str
    at_least: int = 1
    where: Mapping[str, Any] = field(default_factory=dict)
    within_days: int | None = None


@dataclass(frozen=True)
class ActivationRule:
    """The 'aha moment' (S5): no upsell before it is reached.

    Met when every `all_of` part holds and, if `any_of` is not empty, at least one `any_of` part
    holds. Parts are conditions or nested rules.
    """

    all_of: tuple[Condition | ActivationRule, ...] = ()
    any_of: tuple[Condition | ActivationRule, ...] = ()

    def is_met(self, holds: Callable[[Condition], bool]) -> bool:
        """Evaluate the rule, asking `holds` about each condition (the caller counts events)."""

        def part(p: Condition | ActivationRule) -> bool:
            return p.is_met(holds) if isinstance(p, ActivationRule) else holds(p)

        return all(part(p) for p in self.all_of) and (
            not self.any_of or any(part(p) for p in self.any_of)
        )

    def conditions(self) -> Iterator[Condition]:
        """Every condition in the rule, nested ones included, in document order."""
        for p in (*self.all_of, *self.any_of):
            if isinstance(p, ActivationRule):
                yield from p.conditions()
            else:
                yield p


@dataclass(frozen=True)
class ItemValue:
    """What an item is worth to a customer, where the company knows it (S6): hours of work saved a
    month, and revenue it brings a month (base currency). Messages quote them as time saved and
    ROI ('$39 a month that brings $400')."""

    hours_saved_per_month: Decimal | None = None
    revenue_per_month: Money | None = None


@dataclass(frozen=True)
class Plan:
    """One tier (S1). `tier` is its 0-based position; a metric absent from `limits` is unlimited."""

    id: str
    name: str
    tier: int
    prices: Mapping[Interval, Money]
    limits: Mapping[str, int] = field(default_factory=dict)
    features: frozenset[str] = frozenset()
    sales_assisted: bool = False
    value: ItemValue | None = None
    stripe_prices: tuple[str, ...] = ()

    def limit(self, metric: str) -> int | None:
        """The limit on `metric`, or None for unlimited."""
        return self.limits.get(metric)


@dataclass(frozen=True)
class AddOn:
    """An extra usable only with one of `requires` (plans or add-ons; empty means any plan).

    `grants` raises limits: ``{"seats": 5}`` adds 5 seats per unit held.
    """

    id: str
    name: str
    prices: Mapping[Interval, Money]
    requires: tuple[str, ...] = ()
    grants: Mapping[str, int] = field(default_factory=dict)
    features: frozenset[str] = frozenset()
    goals: frozenset[str] = frozenset()
    value: ItemValue | None = None
    stripe_prices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Product:
    """A standalone complementary product (cross-sell, S12).

    `goals` are the buyer motivations it serves; `fits_signals` name usage signals that make it
    relevant to an account.
    """

    id: str
    name: str
    prices: Mapping[Interval, Money]
    goals: frozenset[str] = frozenset()
    fits_signals: tuple[str, ...] = ()
    features: frozenset[str] = frozenset()
    value: ItemValue | None = None
    stripe_prices: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsagePricedItem:
    """Pay-as-you-go: spend in a period = `metric` in the period x `unit_price` (S13)."""

    id: str
    name: str
    unit_price: Money
    metric: str


@dataclass(frozen=True)
class CaseStudy:
    """Social proof (S6), matched to accounts by `industry`."""

    industry: str
    customer: str
    result: str


Item: TypeAlias = Plan | AddOn | Product | UsagePricedItem
#: What kind of thing an item is: a tier, an extra for a plan, a standalone product, pay-as-you-go.
ItemKind = Literal["plan", "add_on", "product", "usage"]
PriceBooks: TypeAlias = Mapping[str, Mapping[str, Mapping[Interval, Money]]]


@dataclass(frozen=True, kw_only=True)
class Catalog:
    """Everything a company sells. Build it, then call `check` before trusting it.

    `plans` are in tier order; `fx` converts into `currency`; `price_books` maps a currency to item
    id to interval to a local price in that currency.
    """

    currency: str
    business_model: BusinessModel = "saas"
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    signals: Mapping[str, UsageSignal] = field(default_factory=dict)
    activation: ActivationRule | None = None
    plans: tuple[Plan, ...] = ()
    add_ons: tuple[AddOn, ...] = ()
    products: tuple[Product, ...] = ()
    usage_pricing: tuple[UsagePricedItem, ...] = ()
    fx: FxRates
    price_books: PriceBooks = field(default_factory=dict)
    case_studies: tuple[CaseStudy, ...] = ()
    _index: Mapping[str, Item] = field(init=False, repr=False, compare=False)
    _stripe: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Item] = {}
        stripe: dict[str, str] = {}
        for item in self._items():
            index.setdefault(item.id, item)
            for price in getattr(item, "stripe_prices", ()):
                stripe.setdefault(price, item.id)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_stripe", stripe)

    def _items(self) -> Iterator[Item]:
        yield from self.plans
        yield from self.add_ons
        yield from self.products
        yield from self.usage_pricing

    def item(self, item_id: str) -> Item | None:
        """The plan, add-on, product or usage-priced item with this id, or None."""
        return self._index.get(item_id)

    def item_for_stripe_price(self, price_id: str, lookup_key: str | None = None) -> str | None:
        """The id of the item whose ``stripe.prices`` lists this Stripe price id (first) or its
        lookup key; None when neither is listed."""
        found = self._stripe.get(price_id)
        if found is None and lookup_key:
            found = self._stripe.get(lookup_key)
        return found

    @property
    def item_ids(self) -> frozenset[str]:
        return frozenset(self._index)

    def plan(self, plan_id: str) -> Plan | None:
        item = self._index.get(plan_id)
        return item if isinstance(item, Plan) else None

    def kind_of(self, item_id: str) -> ItemKind | None:
        """Whether `item_id` is a plan, an add-on, a product or usage-priced; None when unknown."""
        item = self._index.get(item_id)
        if isinstance(item, Plan):
            return "plan"
        if isinstance(item, AddOn):
            return "add_on"
        if isinstance(item, Product):
            return "product"
        return "usage" if isinstance(item, UsagePricedItem) else None

    def highest_plan(self, item_ids: Iterable[str]) -> Plan | None:
        """The plan of the highest tier among `item_ids`: an account's plan is the highest tier it
        holds. None when they hold no plan."""
        plans = [p for i in item_ids if (p := self.plan(i)) is not None]
        return max(plans, key=lambda p: p.tier, default=None)

    def next_plan(self, plan_id: str) -> Plan | None:
        """The tier right above `plan_id`, or None at the top. Raises KeyError for a non-plan."""
        plan = self.plan(plan_id)
        if plan is None:
            raise KeyError(f"no plan {plan_id!r} in the catalog")
        position = self.plans.index(plan)
        return self.plans[position + 1] if position + 1 < len(self.plans) else None

    def price(self, item_id: str, interval: Interval, currency: str) -> Money | None:
        """The list price of one unit per `interval` in `currency`, exact (not rounded).

        The price book's price when ``price_books[currency]`` has one; otherwise the base price
        converted with `fx` (CurrencyError when `currency` has no rate). None when the item has no
        price for `interval` (usage-priced items never do). Raises KeyError for an unknown item.
        """
        item = self._index.get(item_id)
        if item is None:
            raise KeyError(f"no item {item_id!r} in the catalog")
        if isinstance(item, UsagePricedItem):
            return None
        local = self.price_books.get(currency, {}).get(item_id, {}).get(interval)
        if local is not None:
            return local
        base = item.prices.get(interval)
        if base is None:
            return None
        return self.fx.convert(base, currency)

    def monthly_price(
        self, item_id: str, currency: str, interval: Interval = "month", quantity: int = 1
    ) -> Money | None:
        """The list price a month of `quantity` units of `item_id` for an account paying in
        `currency` every `interval` (metrics.md's monthly normalisation): the price for that
        interval (`price`), else for the other interval. None when the item has no price."""
        intervals: tuple[Interval, ...] = (interval, "month", "year")
        for iv in intervals:
            price = self.price(item_id, iv, currency)
            if price is not None:
                return monthly(price, iv, quantity)
        return None

    def check(self) -> list[Problem]:
        """Every semantic problem, errors and warnings, in document order of the sections.

        The rules are in `upsell.domain._catalog_checks`; it is imported here, not at the top,
        because it reads this module's types.
        """
        from upsell.domain._catalog_checks import check_catalog

        return check_catalog(self)
