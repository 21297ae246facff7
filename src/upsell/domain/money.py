"""Money: exact Decimal amounts tagged with an ISO 4217 currency, exchange rates, and formatting.

Amounts are never floats. Arithmetic across two currencies is an error; conversion is explicit and
goes through `FxRates`, whose rates are "value of one unit of that currency in the base currency"
(catalog.yaml's ``fx``). Rounding happens only when an amount is shown (`Money.rounded`, `format_money`),
to the currency's minor unit as CLDR defines it (2 for USD, 0 for JPY, 3 for BHD).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from typing import Literal

from babel.numbers import format_currency, get_currency_precision, list_currencies

from upsell.errors import CurrencyError

Interval = Literal["month", "year"]
INTERVALS: tuple[Interval, ...] = ("month", "year")
MONTHS_IN_INTERVAL: Mapping[Interval, int] = {"month": 1, "year": 12}


@cache
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """True for an ISO 4217 code that CLDR knows (upper case, e.g. ``EUR``)."""
    return code in _currencies()


def check_currency(code: str) -> str:
    if not is_currency(code):
        raise CurrencyError(
            f"unknown currency {code!r}: expected an ISO 4217 code such as USD or EUR"
        )
    return code


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Parse an amount exactly; floats are refused because they cannot hold cents exactly."""
    if isinstance(value, float):
        raise TypeError("amounts must be Decimal, int or str, never float")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return amount


@dataclass(frozen=True, order=False)
class Money:
    """An exact amount in one currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", to_decimal(self.amount))
        check_currency(self.currency)

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str) -> Money:
        return cls(to_decimal(amount), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyError(
                f"cannot combine {self.currency} and {other.currency}: convert one first"
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, float):
            raise TypeError("multiply money by Decimal or int, never float")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __truediv__(self, divisor: Decimal | int) -> Money:
        if isinstance(divisor, float):
            raise TypeError("divide money by Decimal or int, never float")
        return Money(self.amount / divisor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    @property
    def minor_digits(self) -> int:
        return int(get_currency_precision(self.currency))

    def rounded(self) -> Money:
        """This amount rounded half-to-even to the currency's minor unit."""
        quantum = Decimal(1).scaleb(-self.minor_digits)
        return Money(self.amount.quantize(quantum, rounding=ROUND_HALF_EVEN), self.currency)

    def as_string(self) -> str:
        """The decimal string used in output files (``"70.00"``): rounded, never in exponent form."""
        return f"{self.rounded().amount:f}"

    def __str__(self) -> str:
        return f"{self.as_string()} {self.currency}"


@dataclass(frozen=True)
class FxRates:
    """Exchange rates into one base currency: ``rates[c]`` is the value of 1 unit of c in base."""

    base: str
    rates: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_currency(self.base)
        clean: dict[str, Decimal] = {}
        for code, rate in self.rates.items():
            check_currency(code)
            value = to_decimal(rate)
            if value <= 0:
                raise CurrencyError(f"exchange rate for {code} must be positive, got {rate}")
            clean[code] = value
        clean[self.base] = Decimal(1)
        object.__setattr__(self, "rates", clean)

    def knows(self, currency: str) -> bool:
        return currency in self.rates

    def rate(self, currency: str) -> Decimal:
        try:
            return self.rates[currency]
        except KeyError:
            raise CurrencyError(
                f"no exchange rate for {currency} into {self.base}: add it under fx in catalog.yaml"
            ) from None

    def convert(self, money: Money, to: str) -> Money:
        """Convert through the base currency; exact up to Decimal's 28 significant digits."""
        if money.currency == to:
            return money
        in_base = money.amount * self.rate(money.currency)
        return Money(in_base / self.rate(to), to)

    def to_base(self, money: Money) -> Money:
        return self.convert(money, self.base)


def monthly(price: Money, interval: Interval, quantity: int = 1) -> Money:
    """Normalise a recurring price to one month: ``unit_price x quantity / months_in_interval``.

    metrics.md, "MRR": a year counts as 12 months; the result is exact (not rounded).
    """
    if quantity < 0:
        raise ValueError(f"quantity must not be negative, got {quantity}")
    return price * quantity / MONTHS_IN_INTERVAL[interval]


def format_money(money: Money, locale: str = "en") -> str:
    """Format for people in a locale, via CLDR: ``$1,234.50`` (en), ``€ 1.234,50`` (nl)."""
    return str(format_currency(money.amount, money.currency, locale=locale.replace("-", "_")))
