"""Stripe event objects in Stripe's own shapes (docs.stripe.com/api/events), and their signature
made and checked with the official `stripe` package, for the Stripe tests."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any

import stripe

BASIL = "2025-03-31.basil"
OLD = "2024-06-20"
_ids = itertools.count(1)

#: A catalog whose basic and pro plans and seats add-on are billed by Stripe prices.
CATALOG = """\
currency: USD
metrics:
  seats: {kind: gauge, source: {trait: seats}}
plans:
  - id: basic
    price: {month: 29, year: 290}
    limits: {seats: 5}
    features: [boards]
    stripe: {prices: [price_basic_month, basic_yearly]}
  - id: pro
    price: {month: 99, year: 990}
    limits: {seats: 25}
    features: [boards, sso]
    stripe: {prices: [price_pro_month]}
add_ons:
  - id: extra_seats
    price: {month: 10}
    grants: {seats: 1}
    stripe: {prices: [price_seat_month]}
fx: {EUR: 1.1, JPY: 0.0065}
"""


def sign(payload: bytes, secret: str, timestamp: int | None = None, *, extra: str = "") -> str:
    """A ``Stripe-Signature`` header for `payload`, as Stripe sends it, checked with the official
    package's verifier (the test oracle) before it is used."""
    t = int(time.time()) if timestamp is None else timestamp
    try:
        text = payload.decode()
    except UnicodeDecodeError:  # not text: the same scheme over the raw bytes
        digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256)
        return f"t={t},v1={digest.hexdigest()}{extra}"
    signature = stripe.WebhookSignature._compute_signature(f"{t}.{text}", secret)
    header = f"t={t},v1={signature}{extra}"
    stripe.WebhookSignature.verify_header(text, header, secret, tolerance=None)
    return header


def event(
    type_: str, obj: dict[str, Any], created: int, *, api_version: str = BASIL
) -> dict[str, Any]:
    return {
        "id": f"evt_{next(_ids):06d}",
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def body(e: dict[str, Any]) -> bytes:
    return json.dumps(e, indent=2).encode()


def customer(
    customer_id: str,
    account_id: str | None,
    created: int,
    *,
    email: str | None = "billing@acme.test",
    currency: str | None = "usd",
    country: str | None = "NL",
) -> dict[str, Any]:
    return {
        "id": customer_id,
        "object": "customer",
        "address": None if country is None else {"country": country, "city": "Utrecht"},
        "created": created,
        "currency": currency,
        "email": email,
        "metadata": {} if account_id is None else {"upsell_account_id": account_id},
        "name": "Acme",
        "preferred_locales": [],
    }


def price(
    price_id: str,
    amount: int,
    *,
    currency: str = "usd",
    interval: str = "month",
    count: int = 1,
    lookup_key: str | None = None,
) -> dict[str, Any]:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "currency": currency,
        "lookup_key": lookup_key,
        "product": f"prod_{price_id}",
        "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"},
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }


def item(
    item_id: str,
    the_price: dict[str, Any],
    quantity: int,
    created: int,
    *,
    period: tuple[int, int] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item_id,
        "object": "subscription_item",
        "created": created,
        "metadata": {},
        "price": the_price,
        "quantity": quantity,
        "discounts": [],
    }
    if period is not None:
        out["current_period_start"], out["current_period_end"] = period
    return out


def subscription(
    sub_id: str,
    customer_id: str,
    items: list[dict[str, Any]],
    created: int,
    *,
    status: str = "active",
    cancel_at_period_end: bool = False,
    period: tuple[int, int] | None = None,
    ended_at: int | None = None,
    discount: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A subscription; `period` set gives the subscription-level period fields of API versions
    before 2025-03-31 (later ones carry them on each item)."""
    out: dict[str, Any] = {
        "id": sub_id,
        "object": "subscription",
        "cancel_at": None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": None,
        "created": created,
        "currency": items[0]["price"]["currency"] if items else "usd",
        "customer": customer_id,
        "discount": discount,
        "discounts": [],
        "ended_at": ended_at,
        "items": {"object": "list", "data": items, "has_more": False},
        "metadata": {},
        "start_date": created,
        "status": status,
        "trial_end": None,
    }
    if period is not None:
        out["current_period_start"], out["current_period_end"] = period
    return out


def invoice(
    invoice_id: str, customer_id: str, amount: int, *, sub_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": amount,
        "amount_paid": amount,
        "attempt_count": 1,
        "billing_reason": "subscription_cycle",
        "currency": "usd",
        "customer": customer_id,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": sub_id, "metadata": {}},
        },
        "status": "paid",
    }
