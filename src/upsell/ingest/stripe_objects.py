"""Stripe's payload shapes read into upsell's terms, without the store: events, customers, and each
subscription item's catalog item, quantity, interval, price after discounts and billing period.

What cannot be read raises `StripeError` naming the field (``data.object.items.data[0].price``);
what can be read but not mapped (a price missing from the catalog, a quarterly interval) comes back
as an item's `problem`, so that the other items of the subscription still apply.

Amounts: Stripe gives them in the currency's minor unit, as Stripe defines it (docs.stripe.com/
currencies): no decimals for its zero-decimal currencies, three for its three-decimal ones, two for
every other currency (ISK, HUF and TWD included, which Stripe keeps two-decimal in its API).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from upsell.domain.catalog import Catalog, UsagePricedItem
from upsell.domain.money import Interval, Money, is_currency
from upsell.domain.subscriptions import Status
from upsell.ingest.messages import first_non_finite

ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])

#: Stripe's subscription statuses and what an item's row is in each: a status upsell keeps, or
#: None for "holds nothing" (not paid for yet, expired, paused, or over).
STATUSES: Mapping[str, Status | None] = {
    "trialing": "trialing",
    "active": "active",
    "past_due": "past_due",
    "unpaid": "past_due",
    "canceled": "canceled",
    "incomplete": None,
    "incomplete_expired": None,
    "paused": None,
}


class StripeError(ValueError):
    """A Stripe payload that is not the shape Stripe sends; the message names the field."""


def minor_digits(currency: str) -> int:
    """The decimals of Stripe's integer amounts in `currency` (upper case)."""
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def from_minor(amount: Decimal, currency: str) -> Money:
    """An amount in Stripe's minor units as money: ``2900`` USD is 29.00, ``500`` JPY is 500."""
    return Money(amount.scaleb(-minor_digits(currency)), currency)


# -- small readers --------------------------------------------------------------------------------


def field(obj: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise StripeError(f"{where}.{name}: required, missing")
    return obj[name]


def text(obj: Mapping[str, Any], name: str, where: str, *, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        got = "missing" if value is None else f"got {type(value).__name__} {value!r}"[:80]
        raise StripeError(f"{where}.{name}: expected non-empty text, {got}")
    return value


def mapping(obj: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = obj.get(name)
    if not isinstance(value, Mapping):
        raise StripeError(f"{where}.{name}: expected an object, got {_kind(value)}")
    return value


def instant(obj: Mapping[str, Any], name: str, where: str) -> datetime | None:
    """A Unix timestamp field as an aware UTC datetime (None when absent or null)."""
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 253402300800:
        raise StripeError(f"{where}.{name}: expected Unix seconds, got {_kind(value)} {value!r}")
    return datetime.fromtimestamp(value, UTC)


def object_id(value: Any, where: str) -> str | None:
    """An id field that Stripe may also expand into its object (``customer``, ``product``)."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise StripeError(f"{where}: expected an id, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def currency_of(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    value = text(obj, name, where, required=False)
    if value is None:
        return None
    if not is_currency(value.upper()):
        raise StripeError(f"{where}.{name}: unknown currency {value!r}")
    return value.upper()


# -- events and customers -------------------------------------------------------------------------


@dataclass(frozen=True)
class StripeEvent:
    """A Stripe event's envelope: ``id``, ``type``, ``created``, ``data.object``."""

    id: str
    type: str
    created: datetime
    object: Mapping[str, Any]
    api_version: str | None = None

    @property
    def object_id(self) -> str | None:
        value = self.object.get("id")
        return value if isinstance(value, str) and value else None

    def as_dict(self) -> dict[str, Any]:
        """The event as Stripe sends it (the fields upsell reads), for `parse_event` to read back."""
        return {
            "id": self.id,
            "object": "event",
            "type": self.type,
            "created": int(self.created.timestamp()),
            "api_version": self.api_version,
            "data": {"object": dict(self.object)},
        }


#: The longest event id or type taken (Stripe's are under 40 characters).
MAX_ID = 255


def parse_event(raw: Any) -> StripeEvent:
    """Check a decoded JSON value is a Stripe event object; StripeError names what is not."""
    if not isinstance(raw, Mapping):
        raise StripeError(f"the body must be a Stripe event object, got {_kind(raw)}")
    if raw.get("object", "event") != "event":
        raise StripeError(f"object: expected 'event', got {raw.get('object')!r}")
    event_id = text(raw, "id", "event")
    type_ = text(raw, "type", "event")
    assert event_id is not None and type_ is not None
    if len(event_id) > MAX_ID or len(type_) > MAX_ID:
        raise StripeError(f"event.id and event.type: at most {MAX_ID} characters each")
    where = first_non_finite(raw, "event")
    if where:  # 1e400 decodes to inf, which no JSON column holds
        raise StripeError(f"{where}: not a finite number")
    created = instant(raw, "created", "event")
    if created is None:
        raise StripeError("event.created: required, missing")
    data = mapping(raw, "data", "event")
    obj = mapping(data, "object", "data")
    version = raw.get("api_version")
    return StripeEvent(event_id, type_, created, obj, version if isinstance(version, str) else None)


@dataclass(frozen=True)
class Customer:
    """What upsell keeps of a Stripe customer."""

    id: str
    created: datetime | None
    email: str | None
    name: str | None
    currency: str | None
    country: str | None
    metadata: Mapping[str, Any]


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def parse_customer(obj: Mapping[str, Any], where: str = "data.object") -> Customer:
    customer_id = text(obj, "id", where)
    assert customer_id is not None
    address = obj.get("address")
    country = address.get("country") if isinstance(address, Mapping) else None
    country = country.upper() if isinstance(country, str) else None
    return Customer(
        id=customer_id,
        created=instant(obj, "created", where),
        email=text(obj, "email", where, required=False),
        name=text(obj, "name", where, required=False),
        currency=currency_of(obj, "currency", where),
        country=country if country and _COUNTRY.match(country) else None,
        metadata=metadata(obj, where),
    )


def metadata(obj: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    value = obj.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StripeError(f"{where}.metadata: expected an object, got {_kind(value)}")
    return value


def account_in_metadata(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    """The account id written in an object's metadata under `key`, if any."""
    value = metadata(obj, where).get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise StripeError(f"{where}.metadata.{key}: expected an account id, got {_kind(value)}")
    return value.strip()


# -- subscription items ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemTerms:
    """One Stripe subscription item in upsell's terms. `problem` says why it cannot be a row
    (then `item_id`, `interval` or `unit_price` may be None)."""

    stripe_item_id: str
    price_id: str
    item_id: str | None
    quantity: int
    interval: Interval | None
    unit_price: Money | None
    created: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    problem: str | None = None


def subscription_items(
    sub: Mapping[str, Any], catalog: Catalog | None, at: datetime
) -> list[ItemTerms]:
    """Every item of a Stripe subscription object, priced after the discounts in force at `at`.

    The billing period is the item's (API versions from 2025-03-31 on), else the subscription's.
    """
    items = mapping(sub, "items", "data.object")
    data = items.get("data")
    if not isinstance(data, list):
        raise StripeError(f"data.object.items.data: expected a list, got {_kind(data)}")
    out: list[ItemTerms] = []
    for i, raw in enumerate(data):
        where = f"data.object.items.data[{i}]"
        if not isinstance(raw, Mapping):
            raise StripeError(f"{where}: expected an object, got {_kind(raw)}")
        out.append(_item(sub, raw, where, catalog))
    return _discounted(sub, data, out, at)


def _item(
    sub: Mapping[str, Any], raw: Mapping[str, Any], where: str, catalog: Catalog | None
) -> ItemTerms:
    item_id = text(raw, "id", where)
    price = raw.get("price") if isinstance(raw.get("price"), Mapping) else raw.get("plan")
    if not isinstance(price, Mapping):
        raise StripeError(f"{where}.price: expected a price object, got {_kind(raw.get('price'))}")
    price_where = f"{where}.price" if "price" in raw else f"{where}.plan"
    price_id = text(price, "id", price_where)
    quantity = raw.get("quantity", 1)
    if quantity is None:
        quantity = 1
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise StripeError(f"{where}.quantity: expected a whole number >= 0, got {quantity!r}")
    assert item_id is not None and price_id is not None
    terms = ItemTerms(
        stripe_item_id=item_id,
        price_id=price_id,
        item_id=None,
        quantity=quantity,
        interval=None,
        unit_price=None,
        created=instant(raw, "created", where),
        period_start=instant(raw, "current_period_start", where)
        or instant(sub, "current_period_start", "data.object"),
        period_end=instant(raw, "current_period_end", where)
        or instant(sub, "current_period_end", "data.object"),
    )
    mapped = _price(price, price_where, catalog)
    if isinstance(mapped, str):
        return _with(terms, problem=f"{price_where} {price_id!r}: {mapped}")
    catalog_item, interval, unit_price = mapped
    return _with(terms, item_id=catalog_item, interval=interval, unit_price=unit_price)


def _with(terms: ItemTerms, **changes: Any) -> ItemTerms:
    return ItemTerms(**{**terms.__dict__, **changes})


def _price(
    price: Mapping[str, Any], where: str, catalog: Catalog | None
) -> tuple[str, Interval, Money] | str:
    """(catalog item, interval, unit price) of a Stripe price, or why it has none."""
    price_id = str(price["id"])
    lookup_key = text(price, "lookup_key", where, required=False)
    if catalog is None:
        return "the workspace has no catalog yet (upsell import --catalog FILE)"
    item_id = catalog.item_for_stripe_price(price_id, lookup_key)
    if item_id is None:
        named = f" nor its lookup key {lookup_key!r}" if lookup_key else ""
        return f"not in the catalog: no item lists this price id{named} under stripe.prices"
    if isinstance(catalog.item(item_id), UsagePricedItem):
        return f"maps to {item_id!r}, a usage-priced item: record its charges as events"
    recurring = price.get("recurring") if "recurring" in price else price
    if not isinstance(recurring, Mapping) or "interval" not in recurring:
        return "is not a recurring price"
    if recurring.get("usage_type") == "metered":
        return "is metered: usage is not a subscription row (send 'Usage Charged' events)"
    every = recurring.get("interval_count") or 1
    months = {"month": 1, "year": 12}.get(str(recurring.get("interval")), 0) * every
    interval: Interval | None = {1: "month", 12: "year"}.get(months)  # type: ignore[assignment]
    if interval is None:
        return (
            f"bills every {every} {recurring.get('interval')}(s): upsell counts monthly and "
            "yearly prices only"
        )
    currency = currency_of(price, "currency", where)
    if currency is None:
        raise StripeError(f"{where}.currency: required, missing")
    if not catalog.fx.knows(currency):
        return (
            f"is in {currency}, which has no fx rate in the catalog: its MRR cannot be counted "
            f"in {catalog.currency}"
        )
    minor = price.get("unit_amount_decimal", price.get("amount_decimal"))
    if minor is None:
        minor = price.get("unit_amount", price.get("amount"))
    try:
        amount = Decimal(str(minor)) if minor is not None and not isinstance(minor, bool) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        return "has no unit amount (tiered prices are not supported)"
    return item_id, interval, from_minor(amount, currency)


# -- discounts ------------------------------------------------------------------------------------


def _coupons(discounts: Any, at: datetime) -> list[Mapping[str, Any]]:
    """The coupons of expanded discount objects in force at `at` and recurring: a ``once``
    coupon lowers one invoice, not the recurring revenue. Discounts given as bare ids (webhooks
    do not expand them) cannot be priced and are left out."""
    found = []
    for d in discounts if isinstance(discounts, list) else [discounts]:
        if not isinstance(d, Mapping):
            continue
        coupon = d.get("coupon") or (d.get("source") or {}).get("coupon")
        if not isinstance(coupon, Mapping) or coupon.get("duration") == "once":
            continue
        end = d.get("end")
        if isinstance(end, int) and not isinstance(end, bool) and end <= at.timestamp():
            continue
        found.append(coupon)
    return found


def _applies(coupon: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
    products = (coupon.get("applies_to") or {}).get("products")
    if not products:
        return True
    price = raw.get("price") or raw.get("plan") or {}
    return object_id(price.get("product"), "price.product") in products


def _discounted(
    sub: Mapping[str, Any], data: Sequence[Any], terms: list[ItemTerms], at: datetime
) -> list[ItemTerms]:
    """Apply percent-off coupons to each unit price, then amount-off ones: an item's own amount
    off is spread over its units; the subscription's over its items in proportion to their amounts
    (only items in the coupon's currency). A price never goes below zero; unit prices are rounded to
    the currency's minor unit, what is charged."""
    shared = _coupons(sub.get("discount"), at) + _coupons(sub.get("discounts"), at)
    prices = [t.unit_price for t in terms]
    own = [_coupons(raw.get("discounts"), at) for raw in data]
    for i, raw in enumerate(data):
        price = prices[i]
        if price is None:
            continue
        for coupon in [*shared, *own[i]]:
            off = coupon.get("percent_off")
            if isinstance(off, int | float) and not isinstance(off, bool) and _applies(coupon, raw):
                price = price * (1 - Decimal(str(off)) / 100)
        for coupon in own[i]:
            price = _minus(price, coupon, Decimal(1), max(terms[i].quantity, 1))
        prices[i] = price
    for coupon in shared:
        currency = str(coupon.get("currency") or "").upper()
        lines = {
            i: p.amount * max(terms[i].quantity, 1)
            for i, p in enumerate(prices)
            if p is not None and p.currency == currency and _applies(coupon, data[i])
        }
        total = sum(lines.values(), Decimal(0))
        for i, line in lines.items():
            price = prices[i]
            if total > 0 and price is not None:
                prices[i] = _minus(price, coupon, line / total, max(terms[i].quantity, 1))
    return [
        t
        if p is None
        else _with(t, unit_price=Money(max(p.amount, Decimal(0)), p.currency).rounded())
        for t, p in zip(terms, prices, strict=True)
    ]


def _minus(price: Money, coupon: Mapping[str, Any], share: Decimal, quantity: int) -> Money:
    off = coupon.get("amount_off")
    currency = str(coupon.get("currency") or "").upper()
    if not isinstance(off, int) or isinstance(off, bool) or currency != price.currency:
        return price
    return price - from_minor(Decimal(off) * share, currency) / quantity
