"""The semantic rules of a catalog: what no single value shows (data-contract.md, "catalog.yaml").

`check_catalog` is what `Catalog.check` returns: every problem, errors and warnings, section by
section in the order catalog.yaml lists them (currency and prices, metrics, signals, activation,
item ids, plans, add-ons, products, usage pricing, price books), and within a section in document
order. The loader sorts them by line with a stable sort, so this order also decides the order of
problems on one line; keep it when adding a rule.

Each `Problem` carries a dotted key in catalog.yaml's own vocabulary (``plans[2].price.month``) and
no file or line: the rules know nothing about files, the loader maps keys to lines. The rules only
read the catalog; they never raise on a bad catalog, since reporting it is their purpose.

The module is private to the domain: `Catalog.check` is the entry point.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

from upsell.domain.catalog import (
    ActivationRule,
    Catalog,
    Item,
    Product,
    UsagePricedItem,
)
from upsell.domain.money import INTERVALS, Interval, Money
from upsell.errors import CurrencyError, Problem

#: S1: adjacent tiers should differ by a new feature or a limit raised by at least this factor.
TIER_STEP = Decimal("1.5")


def check_catalog(catalog: Catalog) -> list[Problem]:
    """Every semantic problem of `catalog`, errors and warnings, in document order of the
    sections."""
    return [
        *_check_currency(catalog),
        *_check_metrics(catalog),
        *_check_signals(catalog),
        *_check_activation(catalog),
        *_check_ids(catalog),
        *_check_plans(catalog),
        *_check_add_ons(catalog),
        *_check_products(catalog),
        *_check_usage_pricing(catalog),
        *_check_price_books(catalog),
        *_check_stripe_prices(catalog),
    ]


# -- the rules ----------------------------------------------------------------------------------


def _check_currency(catalog: Catalog) -> Iterator[Problem]:
    if catalog.fx.base != catalog.currency:
        yield Problem(f"rates are into {catalog.fx.base}, expected {catalog.currency}", "fx")
    for item_key, prices in _keyed_prices(catalog):
        for interval, money in prices.items():
            if money.currency != catalog.currency:
                yield Problem(
                    f"is in {money.currency}, expected the catalog currency {catalog.currency}",
                    f"{item_key}.price.{interval}",
                )
            if money.amount < 0:
                yield Problem(
                    f"must be a non-negative amount, got {money.amount}",
                    f"{item_key}.price.{interval}",
                )


def _check_metrics(catalog: Catalog) -> Iterator[Problem]:
    for metric_id, m in catalog.metrics.items():
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


def _check_signals(catalog: Catalog) -> Iterator[Problem]:
    for signal_id, s in catalog.signals.items():
        key = f"signals.{signal_id}"
        if s.id != signal_id:
            yield Problem(f"signal is filed under {signal_id!r} but its id is {s.id!r}", key)
        if s.at_least < 1:
            yield Problem(f"must be at least 1, got {s.at_least}", f"{key}.at_least")
        if s.window_days < 1:
            yield Problem(f"must be at least 1 day, got {s.window_days}", f"{key}.window_days")


def _check_activation(catalog: Catalog) -> Iterator[Problem]:
    if catalog.activation is not None:
        yield from _check_rule(catalog.activation, "activation")


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


def _check_ids(catalog: Catalog) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    for item_key, item in _keyed_items(catalog):
        if item.id in seen:
            yield Problem(
                f"duplicate item id {item.id!r}: already used by {seen[item.id]}",
                f"{item_key}.id",
            )
        else:
            seen[item.id] = item_key


def _check_plans(catalog: Catalog) -> Iterator[Problem]:
    if not catalog.plans:
        yield Problem("the catalog needs at least one plan", "plans")
    for i, plan in enumerate(catalog.plans):
        key = f"plans[{i}]"
        if plan.tier != i:
            yield Problem(f"tier is {plan.tier} but the plan is at position {i}", key)
        for metric, limit in plan.limits.items():
            if metric not in catalog.metrics:
                yield Problem(_unknown_metric(catalog, metric), f"{key}.limits.{metric}")
            if limit < 0:
                yield Problem(
                    f"must be a non-negative integer, got {limit}", f"{key}.limits.{metric}"
                )
        if i > 0:
            yield from _check_tier_step(catalog, i)


def _check_tier_step(catalog: Catalog, i: int) -> Iterator[Problem]:
    """Prices and limits must not go down as tiers go up; adjacent tiers must differ (S1).

    A price is compared with the nearest lower tier that has a price for the same interval. A
    higher tier that adds no feature and raises no limit by at least `TIER_STEP` (50 %) over the
    tier right below gives customers no reason to upgrade (S1: "adjacent tiers must differ
    enough to be worth upgrading"); that is a warning, not an error.
    """
    lower, higher = catalog.plans[i - 1], catalog.plans[i]
    key = f"plans[{i}]"
    for interval, price in higher.prices.items():
        below = next(
            (p for p in reversed(catalog.plans[:i]) if interval in p.prices),
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
    raises_limit = any(_raises_enough(lower.limit(m), higher.limit(m)) for m in set(lower.limits))
    if not adds_feature and not raises_limit:
        yield Problem(
            f"{higher.id!r} adds no feature and raises no limit by at least 50 % over "
            f"{lower.id!r}: customers have little reason to upgrade (S1)",
            key,
            severity="warning",
        )


def _raises_enough(low: int | None, high: int | None) -> bool:
    """True when `high` is unlimited or at least `TIER_STEP` times a limited `low`."""
    if low is None:
        return False
    if high is None:
        return True
    return high > low and high >= TIER_STEP * low


def _check_add_ons(catalog: Catalog) -> Iterator[Problem]:
    add_on_ids = {a.id for a in catalog.add_ons}
    plan_ids = {p.id for p in catalog.plans}
    for i, add_on in enumerate(catalog.add_ons):
        key = f"add_ons[{i}]"
        for metric, amount in add_on.grants.items():
            if metric not in catalog.metrics:
                yield Problem(_unknown_metric(catalog, metric), f"{key}.grants.{metric}")
            if amount < 0:
                yield Problem(
                    f"must be a non-negative integer, got {amount}", f"{key}.grants.{metric}"
                )
        for j, required in enumerate(add_on.requires):
            if required not in plan_ids and required not in add_on_ids:
                what = "a product" if isinstance(catalog.item(required), Product) else "unknown"
                yield Problem(
                    f"{required!r} is {what}: requires may name only plans and add-ons "
                    f"({_names(plan_ids | add_on_ids)})",
                    f"{key}.requires[{j}]",
                )
    yield from _check_requires_cycles(catalog)


def _check_requires_cycles(catalog: Catalog) -> Iterator[Problem]:
    """An add-on that (through other add-ons) requires itself can never be bought.

    The walk is depth-first from each add-on in file order; a cycle is reported once whichever
    add-on it is entered from, at the ``requires`` of the add-on the walk comes back to (the first
    add-on with that id).
    """
    graph = {a.id: list(a.requires) for a in catalog.add_ons}
    position = {a.id: i for i, a in reversed(list(enumerate(catalog.add_ons)))}
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

    for a in catalog.add_ons:
        if a.id not in state:
            yield from visit(a.id)


def _check_products(catalog: Catalog) -> Iterator[Problem]:
    for i, product in enumerate(catalog.products):
        for j, signal in enumerate(product.fits_signals):
            if signal not in catalog.signals:
                yield Problem(
                    f"unknown signal {signal!r}: define it under signals "
                    f"({_names(catalog.signals)})",
                    f"products[{i}].fits.signals[{j}]",
                )


def _check_usage_pricing(catalog: Catalog) -> Iterator[Problem]:
    for i, usage in enumerate(catalog.usage_pricing):
        key = f"usage_pricing[{i}]"
        if usage.metric not in catalog.metrics:
            yield Problem(_unknown_metric(catalog, usage.metric), f"{key}.metric")
        if usage.unit_price.currency != catalog.currency:
            yield Problem(
                f"is in {usage.unit_price.currency}, expected the catalog currency "
                f"{catalog.currency}",
                f"{key}.unit_price",
            )
        if usage.unit_price.amount < 0:
            yield Problem(
                f"must be a non-negative amount, got {usage.unit_price.amount}",
                f"{key}.unit_price",
            )


def _check_price_books(catalog: Catalog) -> Iterator[Problem]:
    for currency, book in catalog.price_books.items():
        key = f"price_books.{currency}"
        if not catalog.fx.knows(currency):
            yield Problem(
                f"no fx rate for {currency}: MRR in {currency} cannot be normalised to "
                f"{catalog.currency}; add {currency} under fx",
                key,
                severity="warning",
            )
        for item_id, prices in book.items():
            item = catalog.item(item_id)
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
                        f"{item_id!r} has no {interval} price in {catalog.currency}; a price "
                        "book may only localise intervals the item is sold in "
                        f"({' and '.join(sorted(item.prices)) or 'none'})",
                        at,
                    )
                if money.currency != currency:
                    yield Problem(f"is in {money.currency}, expected {currency}", at)
                if money.amount < 0:
                    yield Problem(f"must be a non-negative amount, got {money.amount}", at)
        if catalog.fx.knows(currency):
            yield from _check_book_tiers(catalog, currency, book)


def _check_book_tiers(
    catalog: Catalog, currency: str, book: Mapping[str, Mapping[Interval, Money]]
) -> Iterator[Problem]:
    """In a local currency too, a higher tier must not cost less than the tier below."""
    for i in range(1, len(catalog.plans)):
        lower, higher = catalog.plans[i - 1], catalog.plans[i]
        for interval in INTERVALS:
            local_high = book.get(higher.id, {}).get(interval)
            local_low = book.get(lower.id, {}).get(interval)
            if local_high is None and local_low is None:
                continue
            try:
                high = catalog.price(higher.id, interval, currency)
                low = catalog.price(lower.id, interval, currency)
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


def _check_stripe_prices(catalog: Catalog) -> Iterator[Problem]:
    """A Stripe price id or lookup key maps to one item: listed twice, which item it is is unclear."""
    seen: dict[str, str] = {}
    for item_key, item in _keyed_items(catalog):
        for j, price in enumerate(getattr(item, "stripe_prices", ())):
            if price in seen:
                yield Problem(
                    f"Stripe price {price!r} is listed already under {seen[price]}: a price maps "
                    "to one item",
                    f"{item_key}.stripe.prices[{j}]",
                )
            else:
                seen[price] = f"{item_key} ({item.id!r})"


# -- helpers ------------------------------------------------------------------------------------


def _unknown_metric(catalog: Catalog, metric: str) -> str:
    return f"unknown metric {metric!r}: define it under metrics ({_names(catalog.metrics)})"


def _keyed_items(catalog: Catalog) -> Iterator[tuple[str, Item]]:
    """Every item with its key (``add_ons[1]``), duplicates included, in document order."""
    sections: tuple[tuple[str, tuple[Item, ...]], ...] = (
        ("plans", catalog.plans),
        ("add_ons", catalog.add_ons),
        ("products", catalog.products),
        ("usage_pricing", catalog.usage_pricing),
    )
    for section, items in sections:
        for i, item in enumerate(items):
            yield f"{section}[{i}]", item


def _keyed_prices(catalog: Catalog) -> Iterator[tuple[str, Mapping[Interval, Money]]]:
    for item_key, item in _keyed_items(catalog):
        if not isinstance(item, UsagePricedItem):
            yield item_key, item.prices


def _names(ids: Iterable[str]) -> str:
    known = sorted(ids)
    return "known: " + ", ".join(known) if known else "none defined"
