"""Money: exact arithmetic, conversion through fx, MRR normalisation (metrics.md) and formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upsell.domain.money import FxRates, Money, format_money, is_currency, monthly
from upsell.domain.subscriptions import SubscriptionItem, mrr_at
from upsell.errors import CurrencyError

amounts = st.decimals(
    min_value=-(10**9), max_value=10**9, places=4, allow_nan=False, allow_infinity=False
)
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10_000), places=4)
currencies = st.sampled_from(["USD", "EUR", "GBP", "JPY", "NOK", "BHD"])
FX = FxRates("USD", {"EUR": Decimal("1.08"), "GBP": Decimal("1.27")})


@given(amounts, amounts, currencies)
def test_addition_is_exact_and_commutative(a: Decimal, b: Decimal, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert x + y == y + x == Money(a + b, currency)
    assert (x + y) - y == x


@given(amounts, amounts, amounts)
def test_addition_is_associative(a: Decimal, b: Decimal, c: Decimal) -> None:
    x, y, z = Money(a, "EUR"), Money(b, "EUR"), Money(c, "EUR")
    assert (x + y) + z == x + (y + z)


@given(amounts, st.integers(min_value=0, max_value=10_000))
def test_multiplying_by_a_quantity_is_repeated_addition(a: Decimal, n: int) -> None:
    assert Money(a, "USD") * n == Money(a * n, "USD") == n * Money(a, "USD")


def test_money_in_two_currencies_cannot_be_combined() -> None:
    with pytest.raises(CurrencyError, match="cannot combine USD and EUR"):
        Money.of(1, "USD") + Money.of(1, "EUR")
    with pytest.raises(CurrencyError):
        assert Money.of(1, "USD") < Money.of(2, "EUR")


def test_floats_are_refused_because_they_cannot_hold_cents() -> None:
    with pytest.raises(TypeError):
        Money.of(0.1, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money.of(1, "USD") * 1.5  # type: ignore[operator]


def test_unknown_currency_is_refused() -> None:
    assert is_currency("NOK") and not is_currency("XYZ") and not is_currency("usd")
    with pytest.raises(CurrencyError, match="unknown currency 'XYZ'"):
        Money.of(1, "XYZ")


def test_rounding_follows_the_currency_minor_unit_half_to_even() -> None:
    assert Money.of("2.675", "USD").as_string() == "2.68"
    assert Money.of("2.665", "USD").as_string() == "2.66"
    assert Money.of("1234.5", "JPY").as_string() == "1234"
    assert Money.of("1.2345", "BHD").as_string() == "1.234"
    assert Money.of("1E+3", "USD").as_string() == "1000.00"


@given(amounts, currencies, rates)
def test_conversion_through_the_base_round_trips(a: Decimal, currency: str, rate: Decimal) -> None:
    fx = FxRates("USD", {currency: rate} if currency != "USD" else {})
    there = fx.to_base(Money(a, currency))
    back = fx.convert(there, currency)
    assert back.currency == currency
    assert abs(back.amount - a) <= abs(a) * Decimal("1e-20") + Decimal("1e-20")


def test_conversion_uses_the_value_of_one_unit_in_the_base_currency() -> None:
    assert FX.to_base(Money.of(100, "EUR")) == Money.of("108", "USD")
    assert FX.convert(Money.of(127, "USD"), "GBP") == Money.of(100, "GBP")
    assert FX.convert(Money.of(100, "EUR"), "GBP").rounded() == Money.of("85.04", "GBP")


def test_conversion_without_a_rate_says_where_to_add_it() -> None:
    with pytest.raises(CurrencyError, match="no exchange rate for NOK into USD: add it under fx"):
        FX.to_base(Money.of(1, "NOK"))


def test_exchange_rates_must_be_positive() -> None:
    with pytest.raises(CurrencyError, match="must be positive"):
        FxRates("USD", {"EUR": Decimal(0)})


@given(amounts.filter(lambda a: a >= 0), st.integers(min_value=1, max_value=500))
def test_monthly_normalisation_of_a_year_is_one_twelfth(price: Decimal, quantity: int) -> None:
    yearly = monthly(Money(price, "USD"), "year", quantity)
    assert yearly * 12 == Money(price * quantity, "USD")
    assert monthly(Money(price, "USD"), "month", quantity) == Money(price * quantity, "USD")


def test_annual_plan_counts_one_twelfth() -> None:
    assert monthly(Money.of(990, "USD"), "year") == Money.of("82.5", "USD")


def item(
    item_id: str, price: str, start: str, end: str | None = None, **kw: object
) -> SubscriptionItem:
    return SubscriptionItem(
        account_id="a",
        item_id=item_id,
        started_at=datetime.fromisoformat(start).replace(tzinfo=UTC),
        ended_at=datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None,
        unit_price=Money.of(price, str(kw.pop("currency", "USD"))),
        **kw,  # type: ignore[arg-type]
    )


def test_trialing_items_count_zero_and_past_due_still_counts() -> None:
    assert item("pro", "99", "2026-01-01", status="trialing").mrr(FX) == Money.zero("USD")
    assert item("pro", "99", "2026-01-01", status="past_due").mrr(FX) == Money.of(99, "USD")


def test_item_mrr_is_in_the_base_currency_and_scales_with_quantity() -> None:
    seats = item("seats", "20", "2026-01-01", quantity=3, currency="EUR")
    assert seats.mrr(FX) == Money.of("64.80", "USD")


def test_an_item_is_held_from_start_inclusive_to_end_exclusive() -> None:
    basic = item("basic", "29", "2026-01-10", "2026-02-15")
    pro = item("pro", "99", "2026-02-15")
    at = datetime(2026, 2, 15, tzinfo=UTC)
    assert mrr_at([basic, pro], at, FX) == Money.of(99, "USD")
    assert mrr_at([basic, pro], datetime(2026, 2, 14, 23, 59, tzinfo=UTC), FX) == Money.of(
        29, "USD"
    )


@pytest.mark.parametrize(
    ("locale", "currency", "expected"),
    [
        ("en", "USD", "$1,234.50"),
        ("nl", "EUR", "€\xa01.234,50"),  # CLDR: a no-break space, so it never wraps
        ("de", "EUR", "1.234,50\xa0€"),
        ("it", "EUR", "1.234,50\xa0€"),
        ("fr", "EUR", "1\u202f234,50\xa0€"),
        ("nb", "NOK", "1\xa0234,50\xa0kr"),
        ("en-GB", "GBP", "£1,234.50"),
    ],
)
def test_formatting_follows_the_locale(locale: str, currency: str, expected: str) -> None:
    assert format_money(Money.of("1234.5", currency), locale) == expected
