"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no timestamp-with-time-zone and no exact decimal type, so both are stored in a form that
every back end holds exactly: timestamps as naive UTC, decimals as their string.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

JSON = sa.JSON


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: takes timezone-aware datetimes only, stores naive UTC, returns aware UTC.

    A naive datetime is refused (ValueError) rather than guessed at: the data contract says inputs
    without an offset are UTC, and making that explicit is the importer's job, not the database's.
    """

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give it a time zone (UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class DecimalText(TypeDecorator[Decimal]):
    """An exact Decimal stored as its string (``str(Decimal)`` round-trips sign, digits, exponent).

    Not sa.Numeric: SQLite would keep it as a float. The price is that SQL cannot sort or sum these
    columns numerically; do that in Python or in the engine after reading.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, float | bool):
            raise TypeError(f"expected a Decimal, got {type(value).__name__}: {value!r}")
        try:
            amount = Decimal(value)
        except (InvalidOperation, TypeError):
            raise ValueError(f"not a decimal amount: {value!r}") from None
        if not amount.is_finite():
            raise ValueError(f"not a finite amount: {value!r}")
        return str(amount)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value)
