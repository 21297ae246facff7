"""Numbers for people, in the report's locale (CLDR through Babel): money, percentages, counts."""

from __future__ import annotations

from decimal import Decimal

from babel import Locale
from babel.numbers import format_decimal, format_percent, get_decimal_symbol, get_group_symbol

from upsell.domain.money import Money, format_money

#: What the page shows where a number does not exist.
DASH = "—"


class Numbers:
    """Formats the report's numbers for `locale`; a missing number is a dash."""

    def __init__(self, currency: str, locale: str) -> None:
        self.currency = currency
        self.locale = locale.replace("-", "_")
        parsed = Locale.parse(self.locale)
        # The locale's percent pattern with up to one decimal: 104 %, 9,4 %, 3.1%.
        pattern = parsed.percent_formats[None].pattern
        self._percent = ";".join(_one_optional_decimal(part) for part in pattern.split(";"))

    def money(self, value: Decimal | None, currency: str | None = None) -> str:
        if value is None:
            return DASH
        return format_money(Money(value, currency or self.currency), self.locale)

    def percent(self, value: float | None) -> str:
        if value is None:
            return DASH
        return str(format_percent(Decimal(repr(value)), self._percent, locale=self.locale))

    def number(self, value: float | None, digits: int = 2) -> str:
        if value is None:
            return DASH
        return str(format_decimal(round(Decimal(repr(value)), digits), locale=self.locale))

    def count(self, value: int | None) -> str:
        if value is None:
            return DASH
        return str(format_decimal(int(value), locale=self.locale))

    def separators(self) -> str:
        """Plotly's ``layout.separators``: the decimal then the group symbol of the locale."""
        return f"{get_decimal_symbol(self.locale)}{get_group_symbol(self.locale)}"


def _one_optional_decimal(pattern: str) -> str:
    head, zero, tail = pattern.rpartition("0")
    return f"{head}0.#{tail}" if zero else pattern
