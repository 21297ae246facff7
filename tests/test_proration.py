"""Proration as Stripe does it (domain/proration.py), by hand-computed cases and properties; the
billing period anchored on the subscription's start; the checkout's signed tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upsell.domain.checkout import BadToken, click_key, offer_payload, sign, verify
from upsell.domain.money import Money
from upsell.domain.proration import Period, PlanRow, billing_period, prorate, upgrade_due

SECOND = timedelta(seconds=1)


def t(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


JUNE = Period(t(2026, 6, 1), t(2026, 7, 1))  # 30 days


@pytest.mark.parametrize(
    ("old", "new", "period", "at", "due"),
    [
        # The example: $10 -> $20 halfway through a month is +$5 today.
        (usd("10"), usd("20"), JUNE, t(2026, 6, 16), "5.00"),
        # At the first second the whole difference is due; at the last second, nothing.
        (usd("10"), usd("20"), JUNE, t(2026, 6, 1), "10.00"),
        (usd("10"), usd("20"), JUNE, t(2026, 7, 1) - SECOND, "0.00"),  # 10 x 1 / 2,592,000
        # A downgrade is a credit.
        (usd("20"), usd("10"), JUNE, t(2026, 6, 16), "-5.00"),
        # Yearly: 2026 has 365 days; from Jul 2 at noon 182.5 days are left: half of $120.
        (usd("120"), usd("240"), Period(t(2026, 1, 1), t(2027, 1, 1)), t(2026, 7, 2, 12), "60.00"),
        # Quantity: 5 seats -> 8 seats at $10, halfway: (80 - 50) / 2.
        (usd("50"), usd("80"), JUNE, t(2026, 6, 16), "15.00"),
        # 11 days left of a 31-day month and of a 28-day month: 10 x 11/31 and 10 x 11/28.
        (usd("10"), usd("20"), Period(t(2026, 1, 1), t(2026, 2, 1)), t(2026, 1, 21), "3.55"),
        (usd("10"), usd("20"), Period(t(2026, 2, 1), t(2026, 3, 1)), t(2026, 2, 18), "3.93"),
        # To the second: 1 hour into June, 719 of 720 hours left: 10 x 719/720 = 9.98611.
        (usd("10"), usd("20"), JUNE, t(2026, 6, 1, 1), "9.99"),
        # Rounded to the currency's minor unit: yen have none (1000 x 1/3 = 333.33).
        (Money.of(1000, "JPY"), Money.of(2000, "JPY"), Period(t(2026, 6, 1), t(2026, 6, 4)),
         t(2026, 6, 3), "333"),
    ],
)  # fmt: skip
def test_proration_by_hand(old: Money, new: Money, period: Period, at: datetime, due: str) -> None:
    got = prorate(old, new, period, at)
    assert got.amount == Decimal(due) and got.as_string() == due and got.currency == old.currency


@pytest.mark.parametrize(
    ("start", "interval", "at", "period"),
    [
        (t(2026, 1, 10), "month", t(2026, 3, 15), (t(2026, 3, 10), t(2026, 4, 10))),
        (t(2026, 1, 10), "month", t(2026, 3, 10), (t(2026, 3, 10), t(2026, 4, 10))),
        (t(2026, 1, 10), "month", t(2026, 3, 10) - SECOND, (t(2026, 2, 10), t(2026, 3, 10))),
        # Month-end anchors, as Stripe: Jan 31 -> Feb 28 -> Mar 31 -> Apr 30, counted from the start.
        (t(2026, 1, 31), "month", t(2026, 2, 15), (t(2026, 1, 31), t(2026, 2, 28))),
        (t(2026, 1, 31), "month", t(2026, 3, 1), (t(2026, 2, 28), t(2026, 3, 31))),
        (t(2026, 1, 31), "month", t(2026, 4, 5), (t(2026, 3, 31), t(2026, 4, 30))),
        (t(2028, 1, 31), "month", t(2028, 2, 10), (t(2028, 1, 31), t(2028, 2, 29))),
        (t(2024, 2, 29, 9), "year", t(2025, 3, 1), (t(2025, 2, 28, 9), t(2026, 2, 28, 9))),
        (t(2024, 5, 1), "year", t(2026, 4, 30), (t(2025, 5, 1), t(2026, 5, 1))),
        # Before the start: the first period.
        (t(2026, 5, 1), "month", t(2026, 4, 1), (t(2026, 5, 1), t(2026, 6, 1))),
    ],
)
def test_the_billing_period_is_the_anniversary_of_the_start(
    start: datetime, interval: Any, at: datetime, period: tuple[datetime, datetime]
) -> None:
    assert billing_period(start, interval, at) == Period(*period)


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC, microsecond=0)
)
cents = st.integers(min_value=0, max_value=10**7).map(lambda c: Money(Decimal(c) / 100, "EUR"))


@given(instants, st.sampled_from(["month", "year"]), st.integers(0, 10**9))
def test_a_period_contains_its_instant(start: datetime, interval: Any, seconds: int) -> None:
    at = start + timedelta(seconds=seconds)
    p = billing_period(start, interval, at)
    assert p.start <= at < p.end and p.start >= start


@given(cents, cents, instants, st.sampled_from(["month", "year"]), st.data())
def test_due_is_the_whole_difference_at_the_start_nothing_at_the_end_and_monotone(
    old: Money, new: Money, start: datetime, interval: Any, data: st.DataObject
) -> None:
    p = billing_period(start, interval, start)
    assert prorate(old, new, p, p.start) == (new - old).rounded()
    assert prorate(old, new, p, p.end).amount == 0
    a, b = sorted(data.draw(st.lists(st.integers(0, p.seconds), min_size=2, max_size=2)))
    early = prorate(old, new, p, p.start + timedelta(seconds=a))
    late = prorate(old, new, p, p.start + timedelta(seconds=b))
    assert (early >= late) if new >= old else (early <= late)


def test_an_upgrade_offer_is_prorated_over_the_plan_rows_period() -> None:
    line = {"kind": "upsell", "from_item_id": "basic", "price": "20.00", "price_currency": "USD"}
    monthly = PlanRow(t(2026, 5, 1), "month", usd("10"), 1)
    assert upgrade_due(line, monthly, t(2026, 6, 16)) == usd("5.00")
    seats = PlanRow(t(2026, 5, 1), "month", usd("10"), 3)  # 3 x (20 - 10), half left
    assert upgrade_due(line, seats, t(2026, 6, 16)) == usd("15.00")
    # A yearly row: the monthly price over 12 months (240 - 120), half of 2026 left.
    yearly = PlanRow(t(2025, 1, 1), "year", usd("120"), 1)
    assert upgrade_due(line, yearly, t(2026, 7, 2, 12)) == usd("60.00")
    assert upgrade_due({**line, "kind": "add_on"}, monthly, t(2026, 6, 16)) is None
    assert upgrade_due({**line, "from_item_id": None}, monthly, t(2026, 6, 16)) is None
    assert upgrade_due({**line, "price_currency": "EUR"}, monthly, t(2026, 6, 16)) is None
    assert upgrade_due({**line, "price": None}, monthly, t(2026, 6, 16)) is None
    assert upgrade_due(line, None, t(2026, 6, 16)) is None


# -- the checkout's tokens ------------------------------------------------------------------------

SECRET = "s3cret"


def test_a_token_verifies_with_its_secret_until_it_expires() -> None:
    payload = offer_payload(
        {"account_id": "acme", "offer_id": "upsell:basic->pro", "item_id": "pro",
         "from_item_id": "basic", "kind": "upsell", "trial_days": 14},
        contact_id=7, due_today={"amount": "5.00", "currency": "USD"}, iat=1000,
    )  # fmt: skip
    assert payload["exp"] == 1000 + 3600 and payload["discount_percent"] is None
    token = sign(SECRET, payload)
    assert verify(SECRET, token, now=4599) == payload
    with pytest.raises(BadToken) as expired:
        verify(SECRET, token, now=4600)
    assert expired.value.reason == "expired"
    body, _, mac = token.partition(".")
    forged = sign("other", {**payload, "account_id": "globex"}).partition(".")[0]
    for bad, reason in [
        (f"{forged}.{mac}", "bad_signature"),
        (token, "bad_signature"),  # with another secret, below
        ("no-dot", "malformed"),
        (f"{body}.", "malformed"),
        (f"{body}.!!", "malformed"),
    ]:
        with pytest.raises(BadToken) as refused:
            verify("wrong" if bad == token else SECRET, bad, now=2000)
        assert refused.value.reason == reason, bad
    # A click token is signed with a derived key: it never passes for an offer token.
    click = sign(click_key(SECRET), {"typ": "click", "contact_id": 7, "user_id": "u", "exp": 9999})
    with pytest.raises(BadToken):
        verify(SECRET, click, now=2000)
