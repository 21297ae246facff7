"""Stripe's shapes in upsell's terms: the signature (cross-checked with the official `stripe`
package), amounts, intervals and discounts, and the subscription rows of trials, pauses, removed
items and backfilled deletions, applied to a store on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
import stripe

import stripe_payloads as sp
from upsell.config.catalog import parse_catalog
from upsell.domain.money import Money
from upsell.ingest.stripe import Outcome, apply_event
from upsell.ingest.stripe_objects import StripeError, parse_event, subscription_items
from upsell.ingest.stripe_signature import SignatureError, parse_secrets, sign, verify
from upsell.store.subscriptions import subscription_items as stored_rows

CATALOG = parse_catalog(sp.CATALOG).catalog
T0 = 1767225600
DAY = 86400


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# -- the signature --------------------------------------------------------------------------------


def test_what_stripe_signs_verifies_and_what_upsell_signs_stripe_verifies() -> None:
    payload = sp.body(sp.event("customer.created", sp.customer("cus_1", "a", T0), T0))
    now = int(time.time())
    header = sp.sign(payload, "whsec_a", now)  # computed and checked by the stripe package
    assert verify(payload, header, ["whsec_a"]) == now
    mine = f"t={now},v1={sign(payload, 'whsec_a', now)}"
    assert stripe.WebhookSignature.verify_header(payload.decode(), mine, "whsec_a", 300)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("", "missing_signature"),
        ("v1=abc", "bad_signature"),
        ("t=1,t=2,v1=abc", "bad_signature"),
        ("t=-5,v1=abc", "bad_signature"),
        ("t={now},v0={good}", "bad_signature"),
        ("t={now},v1={bad}", "bad_signature"),
        ("t={now},v1=é", "bad_signature"),
        ("t={old},v1={good_old}", "signature_expired"),
    ],
)
def test_bad_headers_are_refused_with_their_reason(header: str, code: str) -> None:
    payload = b'{"id": "evt_1"}'
    now, old = int(time.time()), int(time.time()) - 301
    header = header.format(
        now=now,
        old=old,
        good=sign(payload, "whsec_a", now),
        good_old=sign(payload, "whsec_a", old),
        bad=sign(payload, "whsec_b", now),
    )
    with pytest.raises(SignatureError) as raised:
        verify(payload, header, ["whsec_a"])
    assert raised.value.code == code


def test_any_v1_may_match_any_secret_and_v0_is_ignored() -> None:
    payload = b"{}"
    now = int(time.time())
    header = (
        f"t={now}, v0=00, v1={sign(payload, 'whsec_x', now)}, v1={sign(payload, 'whsec_b', now)}"
    )
    assert verify(payload, header, parse_secrets(" whsec_a, whsec_b ,")) == now
    assert parse_secrets("whsec_a,,whsec_b") == ("whsec_a", "whsec_b")


# -- amounts, intervals, discounts ----------------------------------------------------------------


def terms(items: list[dict[str, Any]], **sub: Any) -> list[Any]:
    return subscription_items(sp.subscription("sub", "cus", items, T0, **sub), CATALOG, at(T0))


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (sp.price("price_basic_month", 2900), Money.of("29.00", "USD")),
        (sp.price("price_basic_month", 500, currency="jpy"), Money.of("500", "JPY")),
        (sp.price("price_basic_month", 2550, currency="eur"), Money.of("25.50", "EUR")),
        (
            {**sp.price("price_basic_month", 0), "unit_amount_decimal": "2899.5"},
            Money.of("29.00", "USD"),  # 28.995 charged per unit, rounded half to even
        ),
    ],
)
def test_unit_amounts_are_in_stripes_minor_units(price: dict[str, Any], expected: Money) -> None:
    [t] = terms([sp.item("si", price, 1, T0)])
    assert (t.problem, t.unit_price) == (None, expected)


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        (sp.price("price_nope", 100), "not in the catalog"),
        (sp.price("price_basic_month", 100, interval="week"), "bills every 1 week(s)"),
        (sp.price("price_basic_month", 100, count=6), "bills every 6 month(s)"),
        (sp.price("price_basic_month", 100, currency="gbp"), "GBP, which has no fx rate"),
        (
            {
                **sp.price("price_basic_month", 100),
                "unit_amount": None,
                "unit_amount_decimal": None,
            },
            "tiered prices are not supported",
        ),
        (
            {
                **sp.price("price_basic_month", 100),
                "recurring": {"interval": "month", "usage_type": "metered"},
            },
            "is metered",
        ),
    ],
)
def test_prices_upsell_cannot_count_say_why(price: dict[str, Any], problem: str) -> None:
    [t] = terms([sp.item("si", price, 1, T0)])
    assert t.problem is not None and problem in t.problem


def test_twelve_months_is_a_year() -> None:
    [t] = terms([sp.item("si", sp.price("price_basic_month", 29000, count=12), 1, T0)])
    assert (t.interval, t.unit_price) == ("year", Money.of("290.00", "USD"))


def test_discounts_lower_unit_prices() -> None:
    basic, seat = sp.price("price_basic_month", 3000), sp.price("price_seat_month", 1000)
    forever = {"coupon": {"percent_off": 10, "duration": "forever"}, "end": None}
    ten_off = {"coupon": {"amount_off": 1000, "currency": "usd", "duration": "repeating"}}
    once = {"coupon": {"percent_off": 50, "duration": "once"}}
    ended = {"coupon": {"percent_off": 50, "duration": "repeating"}, "end": T0 - 1}
    only_seats = {
        "coupon": {"percent_off": 50, "applies_to": {"products": ["prod_price_seat_month"]}}
    }
    items = [
        sp.item("si_b", basic, 1, T0),
        {**sp.item("si_s", seat, 4, T0), "discounts": [only_seats]},
    ]
    found = terms(items, discount=forever)
    assert [t.unit_price for t in found] == [Money.of("27.00", "USD"), Money.of("4.50", "USD")]
    # An amount off the subscription is spread over its items by their amounts (30 and 40).
    sub = sp.subscription("sub", "cus", [*items[:1], sp.item("si_s", seat, 4, T0)], T0)
    sub["discounts"] = [ten_off, once, ended, "di_not_expanded"]
    found = subscription_items(sub, CATALOG, at(T0))
    assert [t.unit_price for t in found] == [
        Money.of("25.71", "USD"),  # 30 - 10 x 3/7
        Money.of("8.57", "USD"),  # (40 - 10 x 4/7) / 4
    ]


def test_an_event_that_is_not_stripes_shape_names_the_field() -> None:
    with pytest.raises(StripeError, match=r"event.created: required"):
        parse_event({"id": "evt_1", "type": "x", "data": {"object": {}}})
    sub = sp.subscription("sub", "cus", [sp.item("si", sp.price("p", 1), 1, T0)], T0)
    sub["items"]["data"][0]["quantity"] = "two"
    with pytest.raises(StripeError, match=r"items.data\[0\].quantity"):
        subscription_items(sub, CATALOG, at(T0))


# -- rows -----------------------------------------------------------------------------------------


def send(db: sa.Engine, e: dict[str, Any]) -> Outcome:
    with db.begin() as conn:
        return apply_event(conn, parse_event(e), catalog=CATALOG, metadata_key="upsell_account_id")


def rows(db: sa.Engine) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        found = stored_rows(conn=conn, account_id="acme")
    return [(r.item_id, r.quantity, r.started_at, r.ended_at, r.status) for r in found]


def sub_event(type_: str, when: int, items: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    sub = sp.subscription("sub_1", "cus_acme", items, T0, **kw)
    sub["metadata"] = {"upsell_account_id": "acme"}
    return sp.event(f"customer.subscription.{type_}", sub, when)


BASIC = sp.price("price_basic_month", 2900)
PRO = sp.price("price_pro_month", 9900)


def test_a_trial_converts_into_a_new_row_and_past_due_keeps_the_row(db: sa.Engine) -> None:
    item = [sp.item("si", BASIC, 1, T0)]
    send(db, sub_event("created", T0, item, status="trialing"))
    send(db, sub_event("updated", T0 + 14 * DAY, item, status="active"))
    send(db, sub_event("updated", T0 + 44 * DAY, item, status="past_due"))
    assert rows(db) == [
        ("basic", 1, at(T0), at(T0 + 14 * DAY), "trialing"),
        ("basic", 1, at(T0 + 14 * DAY), None, "past_due"),
    ]


def test_an_upgrade_pause_resume_and_a_removed_item(db: sa.Engine) -> None:
    seat = sp.price("price_seat_month", 1000)
    both = [sp.item("si", BASIC, 1, T0), sp.item("si_seat", seat, 2, T0)]
    send(db, sub_event("created", T0, both))
    # The same Stripe item moves to the pro price; the seats are removed.
    send(db, sub_event("updated", T0 + DAY, [sp.item("si", PRO, 1, T0)]))
    send(db, sub_event("updated", T0 + 2 * DAY, [sp.item("si", PRO, 1, T0)], status="paused"))
    send(db, sub_event("updated", T0 + 3 * DAY, [sp.item("si", PRO, 1, T0)]))
    assert rows(db) == [
        ("basic", 1, at(T0), at(T0 + DAY), "active"),
        ("extra_seats", 2, at(T0), at(T0 + DAY), "active"),
        ("pro", 1, at(T0 + DAY), at(T0 + 2 * DAY), "active"),
        ("pro", 1, at(T0 + 3 * DAY), None, "active"),
    ]


def test_changes_in_the_second_the_item_started_rewrite_its_row(db: sa.Engine) -> None:
    send(db, sub_event("created", T0, [sp.item("si", BASIC, 1, T0)], status="incomplete"))
    assert rows(db) == []
    send(db, sub_event("updated", T0, [sp.item("si", BASIC, 2, T0)]))
    send(db, sub_event("updated", T0, [sp.item("si", BASIC, 3, T0)]))
    assert rows(db) == [("basic", 3, at(T0), None, "active")]


def test_a_subscription_first_seen_deleted_gets_the_row_it_held(db: sa.Engine) -> None:
    outcome = send(
        db,
        sub_event(
            "deleted",
            T0 + 60 * DAY,
            [sp.item("si", BASIC, 2, T0)],
            status="canceled",
            ended_at=T0 + 60 * DAY,
        ),
    )
    assert outcome.outcome == "applied"
    assert rows(db) == [("basic", 2, at(T0), at(T0 + 60 * DAY), "canceled")]


def test_an_item_whose_price_left_the_catalog_keeps_its_row(db: sa.Engine) -> None:
    send(db, sub_event("created", T0, [sp.item("si", BASIC, 1, T0)]))
    smaller = parse_catalog(sp.CATALOG.replace("price_basic_month, ", "")).catalog
    raw = sub_event("updated", T0 + DAY, [sp.item("si", BASIC, 1, T0)])
    e = parse_event(raw)
    with db.begin() as conn:
        outcome = apply_event(conn, e, catalog=smaller, metadata_key="upsell_account_id")
    assert outcome.outcome == "unmapped" and "not in the catalog" in str(outcome.detail)
    assert rows(db) == [("basic", 1, at(T0), None, "active")]
    # Once the catalog lists it again, the event received again applies (it was not final).
    assert send(db, raw).outcome == "applied"
    assert send(db, raw).outcome == "duplicate"
    assert rows(db) == [("basic", 1, at(T0), None, "active")]


def test_amounts_in_the_store_are_exact(db: sa.Engine) -> None:
    price = {**sp.price("price_basic_month", 0), "unit_amount_decimal": "2950"}
    send(db, sub_event("created", T0, [sp.item("si", price, 1, T0)]))
    with db.connect() as conn:
        [row] = stored_rows(conn=conn, account_id="acme")
    assert row.unit_price.amount == Decimal("29.50")
