"""The catalog: what a company sells, as frozen values (data-contract.md, "catalog.yaml").

Plans are tiers of one product (S1), ordered from lowest to highest; add-ons work only with a base
plan or another add-on (S2); products are standalone complementary items for cross-sell (S2, S12);
usage-priced items are pay-as-you-go (S13). Base prices are in the catalog currency, price-book
prices in the book's currency (S17).

`Catalog.check` holds the semantic rules (a limit on an unknown metric, a cycle in `requires`, a
price that goes down as tiers go up, ...). It knows nothing about files: each `Problem` carries a
dotted key in catalog.yaml's own vocabulary (``plans[2].price.month``) that the loader maps to a
line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeAlias

from upsell.domain.money import INTERVALS, FxRates, Interval, Money, monthly
from upsell.errors import CurrencyError, Problem

BusinessModel = Literal["saas", "freemium", "game", "software"]
BUSINESS_MODELS: tuple[BusinessModel, ...] = ("saas", "freemium", "game", "software")
MetricKind = Literal["gauge", "counter"]
METRIC_KINDS: tuple[MetricKind, ...] = ("gauge", "counter")
Window: TypeAlias = Literal["billing_period"] | int | None

#: S1: adjacent tiers should differ by a new feature or a limit raised by at least this factor.
TIER_STEP = Decimal("1.5")


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

    def __post_init__(self) -> None:
        index: dict[str, Item] = {}
        for item in self._items():
            index.setdefault(item.id, item)
        object.__setattr__(self, "_index", index)

    def _items(self) -> Iterator[Item]:
        yield from self.plans
        yield from self.add_ons
        yield from self.products
        yield from self.usage_pricing

    def item(self, item_id: str) -> Item | None:
        """The plan, add-on, product or usage-priced item with this id, or None."""
        return self._index.get(item_id)

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
        """Every semantic problem, errors and warnings, in document order of the sections."""
        return [
            *self._check_currency(),
            *self._check_metrics(),
            *self._check_signals(),
            *self._check_activation(),
            *self._check_ids(),
            *self._check_plans(),
            *self._check_add_ons(),
            *self._check_products(),
            *self._check_usage_pricing(),
            *self._check_price_books(),
        ]

    # -- the rules --------------------------------------------------------------------------

    def _check_currency(self) -> Iterator[Problem]:
        if self.fx.base != self.currency:
            yield Problem(f"rates are into {self.fx.base}, expected {self.currency}", "fx")
        for item_key, prices in self._keyed_prices():
            for interval, money in prices.items():
                if money.currency != self.currency:
                    yield Problem(
                        f"is in {money.currency}, expected the catalog currency {self.currency}",
                        f"{item_key}.price.{interval}",
                    )
                if money.amount < 0:
                    yield Problem(
                        f"must be a non-negative amount, got {money.amount}",
                        f"{item_key}.price.{interval}",
                    )

    def _check_metrics(self) -> Iterator[Problem]:
        for metric_id, m in self.metrics.items():
            key = f"metrics.{metric_id}"
            if m.id != metric_id:
                yield Problem(f"metric is filed under {metric_id!r} but its id is {m.id!r}", key)
            if (m.source_trait is None) == (m.source_event is None):
                yield Problem("source must give exactly one of trait or event", f"{key}.source")
            if m.source_property is not None and m.source_event is None:
                yield Problem(
                    "property is read from an event: give it together with event",
                    f"{key}.source.property",
                )
            if (m.up_event or m.down_event) and m.source_trait is None:
                yield Problem(
                    "up and down name the events that move a trait: give them with trait",
                    f"{key}.source",
                )
            if m.kind == "counter" and m.source_event is None:
                yield Problem("a counter counts events: its source needs an event", f"{key}.source")
            if isinstance(m.window, int) and m.window < 1:
                yield Problem(f"must be a positive number of days, got {m.window}", f"{key}.window")

    def _check_signals(self) -> Iterator[Problem]:
        for signal_id, s in self.signals.items():
            key = f"signals.{signal_id}"
            if s.id != signal_id:
                yield Problem(f"signal is filed under {signal_id!r} but its id is {s.id!r}", key)
            if s.at_least < 1:
                yield Problem(f"must be at least 1, got {s.at_least}", f"{key}.at_least")
            if s.window_days < 1:
                yield Problem(f"must be at least 1 day, got {s.window_days}", f"{key}.window_days")

    def _check_activation(self) -> Iterator[Problem]:
        if self.activation is not None:
            yield from _check_rule(self.activation, "activation")

    def _check_ids(self) -> Iterator[Problem]:
        seen: dict[str, str] = {}
        for item_key, item in self._keyed_items():
            if item.id in seen:
                yield Problem(
                    f"duplicate item id {item.id!r}: already used by {seen[item.id]}",
                    f"{item_key}.id",
                )
            else:
                seen[item.id] = item_key

    def _check_plans(self) -> Iterator[Problem]:
        if not self.plans:
            yield Problem("the catalog needs at least one plan", "plans")
        for i, plan in enumerate(self.plans):
            key = f"plans[{i}]"
            if plan.tier != i:
                yield Problem(f"tier is {plan.tier} but the plan is at position {i}", key)
            for metric, limit in plan.limits.items():
                if metric not in self.metrics:
                    yield Problem(self._unknown_metric(metric), f"{key}.limits.{metric}")
                if limit < 0:
                    yield Problem(
                        f"must be a non-negative integer, got {limit}", f"{key}.limits.{metric}"
                    )
            if i > 0:
                yield from self._check_tier_step(i)

    def _check_tier_step(self, i: int) -> Iterator[Problem]:
        """Prices and limits must not go down as tiers go up; adjacent tiers must differ (S1).

        A price is compared with the nearest lower tier that has a price for the same interval. A
        higher tier that adds no feature and raises no limit by at least `TIER_STEP` (50 %) over the
        tier right below gives customers no reason to upgrade (S1: "adjacent tiers must differ
        enough to be worth upgrading"); that is a warning, not an error.
        """
        lower, higher = self.plans[i - 1], self.plans[i]
        key = f"plans[{i}]"
        for interval, price in higher.prices.items():
            below = next(
                (p for p in reversed(self.plans[:i]) if interval in p.prices),
                None,
            )
            if below is None:
                continue
            below_price = below.prices[interval]
            if price.currency == below_price.currency and price < below_price:
                yield Problem(
                    f"{price.amount} per {interval} is lower than {below_price.amount} for "
                    f"{below.id!r}, a lower tier: prices must not go down as tiers go up",
                    f"{key}.price.{interval}",
                )
        for metric in sorted(set(lower.limits) | set(higher.limits)):
            low, high = lower.limit(metric), higher.limit(metric)
            if high is not None and (low is None or high < low):
                low_text = "unlimited" if low is None else str(low)
                yield Problem(
                    f"{high} is lower than {low_text} on {lower.id!r}, the tier below: limits "
                    "must not go down as tiers go up (a missing limit means unlimited)",
                    f"{key}.limits.{metric}",
                )
        adds_feature = bool(higher.features - lower.features)
        raises_limit = any(
            _raises_enough(lower.limit(m), higher.limit(m)) for m in set(lower.limits)
        )
        if not adds_feature and not raises_limit:
            yield Problem(
                f"{higher.id!r} adds no feature and raises no limit by at least 50 % over "
                f"{lower.id!r}: customers have little reason to upgrade (S1)",
                key,
                severity="warning",
            )

    def _check_add_ons(self) -> Iterator[Problem]:
        add_on_ids = {a.id for a in self.add_ons}
        plan_ids = {p.id for p in self.plans}
        for i, add_on in enumerate(self.add_ons):
            key = f"add_ons[{i}]"
            for metric, amount in add_on.grants.items():
                if metric not in self.metrics:
                    yield Problem(self._unknown_metric(metric), f"{key}.grants.{metric}")
                if amount < 0:
                    yield Problem(
                        f"must be a non-negative integer, got {amount}", f"{key}.grants.{metric}"
                    )
            for j, required in enumerate(add_on.requires):
                if required not in plan_ids and required not in add_on_ids:
                    what = "a product" if isinstance(self.item(required), Product) else "unknown"
                    yield Problem(
                        f"{required!r} is {what}: requires may name only plans and add-ons "
                        f"({_names(plan_ids | add_on_ids)})",
                        f"{key}.requires[{j}]",
                    )
        yield from self._check_requires_cycles()

    def _check_requires_cycles(self) -> Iterator[Problem]:
        """An add-on that (through other add-ons) requires itself can never be bought."""
        graph = {a.id: list(a.requires) for a in self.add_ons}
        position = {a.id: i for i, a in reversed(list(enumerate(self.add_ons)))}
        reported: set[frozenset[str]] = set()
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        path: list[str] = []

        def visit(node: str) -> Iterator[Problem]:
            state[node] = 1
            path.append(node)
            for nxt in graph.get(node, []):
                if nxt not in graph:
                    continue
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt) :], nxt]
                    members = frozenset(cycle)
                    if members not in reported:
                        reported.add(members)
                        yield Problem(
                            "cycle in requires: " + " -> ".join(cycle),
                            f"add_ons[{position[nxt]}].requires",
                        )
                elif nxt not in state:
                    yield from visit(nxt)
            path.pop()
            state[node] = 2

        for a in self.add_ons:
            if a.id not in state:
                yield from visit(a.id)

    def _check_products(self) -> Iterator[Problem]:
        for i, product in enumerate(self.products):
            for j, signal in enumerate(product.fits_signals):
                if signal not in self.signals:
                    yield Problem(
                        f"unknown signal {signal!r}: define it under signals "
                        f"({_names(self.signals)})",
                        f"products[{i}].fits.signals[{j}]",
                    )

    def _check_usage_pricing(self) -> Iterator[Problem]:
        for i, usage in enumerate(self.usage_pricing):
            key = f"usage_pricing[{i}]"
            if usage.metric not in self.metrics:
                yield Problem(self._unknown_metric(usage.metric), f"{key}.metric")
            if usage.unit_price.currency != self.currency:
                yield Problem(
                    f"is in {usage.unit_price.currency}, expected the catalog currency "
                    f"{self.currency}",
                    f"{key}.unit_price",
                )
            if usage.unit_price.amount < 0:
                yield Problem(
                    f"must be a non-negative amount, got {usage.unit_price.amount}",
                    f"{key}.unit_price",
                )

    def _check_price_books(self) -> Iterator[Problem]:
        for currency, book in self.price_books.items():
            key = f"price_books.{currency}"
            if not self.fx.knows(currency):
                yield Problem(
                    f"no fx rate for {currency}: MRR in {currency} cannot be normalised to "
                    f"{self.currency}; add {currency} under fx",
                    key,
                    severity="warning",
                )
            for item_id, prices in book.items():
                item = self.item(item_id)
                if item is None:
                    yield Problem(
                        f"unknown item {item_id!r}: expected a plan, add-on or product id",
                        f"{key}.{item_id}",
                    )
                    continue
                if isinstance(item, UsagePricedItem):
                    yield Problem(
                        f"{item_id!r} is usage-priced and has no price per interval",
                        f"{key}.{item_id}",
                    )
                    continue
                for interval, money in prices.items():
                    at = f"{key}.{item_id}.{interval}"
                    if interval not in INTERVALS or interval not in item.prices:
                        yield Problem(
                            f"{item_id!r} has no {interval} price in {self.currency}; a price "
                            "book may only localise intervals the item is sold in "
                            f"({' and '.join(sorted(item.prices)) or 'none'})",
                            at,
                        )
                    if money.currency != currency:
                        yield Problem(f"is in {money.currency}, expected {currency}", at)
                    if money.amount < 0:
                        yield Problem(f"must be a non-negative amount, got {money.amount}", at)
            if self.fx.knows(currency):
                yield from self._check_book_tiers(currency, book)

    def _check_book_tiers(
        self, currency: str, book: Mapping[str, Mapping[Interval, Money]]
    ) -> Iterator[Problem]:
        """In a local currency too, a higher tier must not cost less than the tier below."""
        for i in range(1, len(self.plans)):
            lower, higher = self.plans[i - 1], self.plans[i]
            for interval in INTERVALS:
                local_high = book.get(higher.id, {}).get(interval)
                local_low = book.get(lower.id, {}).get(interval)
                if local_high is None and local_low is None:
                    continue
                try:
                    high = self.price(higher.id, interval, currency)
                    low = self.price(lower.id, interval, currency)
                except CurrencyError:  # a base price in a foreign currency: reported elsewhere
                    continue
                if high is None or low is None or high.currency != low.currency or high >= low:
                    continue
                where = higher.id if local_high is not None else lower.id
                yield Problem(
                    f"{higher.id!r} costs {high.rounded().amount} {currency} per {interval}, less "
                    f"than {lower.id!r} at {low.rounded().amount}: prices must not go down as "
                    "tiers go up",
                    f"price_books.{currency}.{where}.{interval}",
                )

    # -- helpers ----------------------------------------------------------------------------

    def _unknown_metric(self, metric: str) -> str:
        return f"unknown metric {metric!r}: define it under metrics ({_names(self.metrics)})"

    def _keyed_items(self) -> Iterator[tuple[str, Item]]:
        sections: tuple[tuple[str, tuple[Item, ...]], ...] = (
            ("plans", self.plans),
            ("add_ons", self.add_ons),
            ("products", self.products),
            ("usage_pricing", self.usage_pricing),
        )
        for section, items in sections:
            for i, item in enumerate(items):
                yield f"{section}[{i}]", item

    def _keyed_prices(self) -> Iterator[tuple[str, Mapping[Interval, Money]]]:
        for item_key, item in self._keyed_items():
            if not isinstance(item, UsagePricedItem):
                yield item_key, item.prices


def _check_rule(rule: ActivationRule, key: str) -> Iterator[Problem]:
    if not rule.all_of and not rule.any_of:
        yield Problem("needs at least one condition under all_of or any_of", key)
    for name, parts in (("all_of", rule.all_of), ("any_of", rule.any_of)):
        for i, part in enumerate(parts):
            at = f"{key}.{name}[{i}]"
            if isinstance(part, ActivationRule):
                yield from _check_rule(part, at)
                continue
            if part.at_least < 1:
                yield Problem(f"must be at least 1, got {part.at_least}", f"{at}.at_least")
            if part.within_days is not None and part.within_days < 1:
                yield Problem(
                    f"must be at least 1 day, got {part.within_days}", f"{at}.within_days"
                )


def _raises_enough(low: int | None, high: int | None) -> bool:
    """True when `high` is unlimited or at least `TIER_STEP` times a limited `low`."""
    if low is None:
        return False
    if high is None:
        return True
    return high > low and high >= TIER_STEP * low


def _names(ids: Iterable[str]) -> str:
    known = sorted(ids)
    return "known: " + ", ".join(known) if known else "none defined"
