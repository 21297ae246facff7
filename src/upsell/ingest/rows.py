"""The columns of each input table (data-contract.md, Inputs) and the parsing of one row.

Parsing a row needs nothing but the row: it turns raw values (strings from CSV, JSON values from JSONL,
Arrow values from Parquet) into checked Python values, or raises `RowError` with a reason that names
the column and the value. Checks that need the workspace (is the account known? what does the catalog
charge?) happen in `upsell.ingest.importer`, batch by batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from babel import Locale, UnknownLocaleError

from upsell.columns import COLUMNS, Column, InputTable
from upsell.domain.accounts import Account
from upsell.domain.events import Event, default_message_id
from upsell.domain.money import INTERVALS, Interval, is_currency, to_decimal
from upsell.domain.subscriptions import STATUSES, Status

MAX_INTEGER = 2**31 - 1  # whole-number columns are 32-bit on PostgreSQL


class RowError(ValueError):
    """One row is invalid; the message is the reason written to the rejects file."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _get(values: Mapping[str, Any], column: Column) -> Any:
    value = values.get(column.name)
    if isinstance(value, str):
        value = value.strip() or None
    if value is None and column.required:
        raise RowError(f"{column.name}: required, but empty")
    return value


def text(values: Mapping[str, Any], column: Column) -> str | None:
    value = _get(values, column)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(f"{column.name}: expected text, got {_show(value)}")
    if isinstance(value, str) and "\x00" in value:
        raise RowError(f"{column.name}: contains a NUL character: {_show(value)}")
    return str(value)


def timestamp(values: Mapping[str, Any], column: Column) -> datetime | None:
    """ISO-8601; a timestamp without an offset is UTC (data-contract.md). Returns aware UTC."""
    value = _get(values, column)
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RowError(
                f"{column.name}: not an ISO-8601 timestamp: {_show(value)} "
                "(expected e.g. 2026-06-01T09:30:00Z)"
            ) from None
    else:
        raise RowError(f"{column.name}: expected an ISO-8601 timestamp, got {_show(value)}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise RowError(f"{column.name}: {_show(value)} is out of range in UTC") from None


def integer(values: Mapping[str, Any], column: Column, *, minimum: int = 0) -> int | None:
    value = _get(values, column)
    if value is None:
        return None
    if isinstance(value, bool):
        raise RowError(f"{column.name}: expected a whole number, got {_show(value)}")
    if isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.isascii() and value.lstrip("+-").isdigit()
    ):
        number = int(value)
    else:
        raise RowError(f"{column.name}: expected a whole number, got {_show(value)}")
    if number < minimum:
        raise RowError(f"{column.name}: must be at least {minimum}, got {number}")
    if number > MAX_INTEGER:
        raise RowError(f"{column.name}: must be at most {MAX_INTEGER}, got {number}")
    return number


def decimal(values: Mapping[str, Any], column: Column) -> Decimal | None:
    value = _get(values, column)
    if value is None:
        return None
    if isinstance(value, bool):
        raise RowError(f"{column.name}: expected a decimal amount, got {_show(value)}")
    try:
        # A float from JSON or Parquet goes through its shortest repr: 29.99 stays 29.99.
        amount = to_decimal(repr(value) if isinstance(value, float) else value)
    except (ValueError, TypeError):
        raise RowError(f"{column.name}: expected a decimal amount, got {_show(value)}") from None
    if amount < 0:
        raise RowError(f"{column.name}: must not be negative, got {amount}")
    return amount


def json_object(values: Mapping[str, Any], column: Column) -> dict[str, Any]:
    value = _get(values, column)
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"{column.name}: not valid JSON ({exc.msg}): {_show(value)}") from None
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        value = dict(value)  # an Arrow map column arrives as a list of (key, value) pairs
    if not isinstance(value, dict):
        raise RowError(f"{column.name}: expected a JSON object, got {_show(value)}")
    try:
        # Plain JSON only: Parquet values (dates, decimals) become strings; NaN and NUL are refused
        # because PostgreSQL cannot store them.
        text = json.dumps(value, default=str, allow_nan=False, ensure_ascii=False)
    except ValueError:
        raise RowError(f"{column.name}: NaN and Infinity are not JSON: {_show(value)}") from None
    if "\x00" in text or "\\u0000" in text:
        raise RowError(f"{column.name}: contains a NUL character")
    plain: dict[str, Any] = json.loads(text)
    return plain


def currency(values: Mapping[str, Any], column: Column) -> str | None:
    code = text(values, column)
    if code is None:
        return None
    code = code.upper()  # Stripe writes currencies in lower case
    if not is_currency(code):
        raise RowError(
            f"{column.name}: unknown currency {_show(code)} (expected ISO 4217, e.g. EUR)"
        )
    return code


@cache
def _territories() -> frozenset[str]:
    return frozenset(str(code) for code in Locale("en").territories if str(code).isalpha())


def country(values: Mapping[str, Any], column: Column) -> str | None:
    code = text(values, column)
    if code is None:
        return None
    code = code.upper()
    if len(code) != 2 or code not in _territories():
        raise RowError(f"{column.name}: unknown country {_show(code)} (expected ISO 3166 alpha-2)")
    return code


@cache
def _language_ok(tag: str) -> bool:
    try:
        Locale.parse(tag, sep="-")
    except (ValueError, UnknownLocaleError):
        return False
    return True


def language(values: Mapping[str, Any], column: Column) -> str | None:
    tag = text(values, column)
    if tag is None:
        return None
    tag = tag.replace("_", "-")
    if not _language_ok(tag):
        raise RowError(
            f"{column.name}: unknown language tag {_show(tag)} (expected BCP 47: en, nl, pt-BR)"
        )
    return tag


def email(values: Mapping[str, Any], column: Column) -> str | None:
    address = text(values, column)
    if address is None:
        return None
    local, at, domain = address.partition("@")
    if not at or not local or "." not in domain or " " in address:
        raise RowError(f"{column.name}: not an email address: {_show(address)}")
    return address


def choice(values: Mapping[str, Any], column: Column, options: tuple[str, ...]) -> str | None:
    value = text(values, column)
    if value is None:
        return None
    if value.lower() not in options:
        raise RowError(f"{column.name}: expected one of {', '.join(options)}, got {_show(value)}")
    return value.lower()


def _col(kind: InputTable, name: str) -> Column:
    return next(c for c in COLUMNS[kind] if c.name == name)


@dataclass(frozen=True)
class SubscriptionRow:
    """A subscription row before the workspace fills in its defaults (price, currency)."""

    account_id: str
    item_id: str
    started_at: datetime
    ended_at: datetime | None
    quantity: int
    interval: Interval
    unit_price: Decimal | None
    currency: str | None
    status: Status


def _required(value: Any) -> Any:
    assert value is not None  # _get() raises for an empty required column
    return value


def parse_subscription(values: Mapping[str, Any]) -> SubscriptionRow:
    c = COLUMNS["subscriptions"]
    started_at = _required(timestamp(values, c[2]))
    ended_at = timestamp(values, c[3])
    if ended_at is not None and ended_at < started_at:
        raise RowError(
            f"ended_at {ended_at.isoformat()} is before started_at {started_at.isoformat()}"
        )
    status = choice(values, _col("subscriptions", "status"), STATUSES) or "active"
    if status == "canceled" and ended_at is None:
        raise RowError("status is canceled but ended_at is empty: give the instant it ended")
    return SubscriptionRow(
        account_id=_required(text(values, c[0])),
        item_id=_required(text(values, c[1])),
        started_at=started_at,
        ended_at=ended_at,
        quantity=integer(values, _col("subscriptions", "quantity"), minimum=1) or 1,
        interval=choice(values, _col("subscriptions", "interval"), INTERVALS) or "month",  # type: ignore[arg-type]
        unit_price=decimal(values, _col("subscriptions", "unit_price")),
        currency=currency(values, _col("subscriptions", "currency")),
        status=status,  # type: ignore[arg-type]
    )


def parse_account(values: Mapping[str, Any]) -> Account:
    c = {col.name: col for col in COLUMNS["accounts"]}
    return Account(
        account_id=_required(text(values, c["account_id"])),
        created_at=_required(timestamp(values, c["created_at"])),
        name=text(values, c["name"]),
        industry=text(values, c["industry"]),
        employees=integer(values, c["employees"]),
        country=country(values, c["country"]),
        currency=currency(values, c["currency"]),
        language=language(values, c["language"]),
        email=email(values, c["email"]),
        traits=json_object(values, c["traits"]),
    )


def parse_event(values: Mapping[str, Any]) -> Event:
    c = {col.name: col for col in COLUMNS["events"]}
    account_id = _required(text(values, c["account_id"]))
    user_id = text(values, c["user_id"])
    name = _required(text(values, c["event"]))
    at = _required(timestamp(values, c["timestamp"]))
    properties = json_object(values, c["properties"])
    message_id = text(values, c["message_id"]) or default_message_id(
        account_id, user_id, name, at, properties
    )
    return Event(
        message_id=message_id,
        account_id=account_id,
        event=name,
        timestamp=at,
        user_id=user_id,
        properties=properties,
    )
