"""Parsing one input row: types, defaults and the reasons given for bad values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upsell.ingest.rows import RowError, parse_account, parse_event, parse_subscription


def account(**values: object) -> dict[str, object]:
    return {"account_id": "a-1", "created_at": "2026-01-05T09:12:00Z", **values}


def test_timestamp_without_offset_is_utc() -> None:
    assert parse_account(account(created_at="2026-01-05 09:12:00")).created_at == datetime(
        2026, 1, 5, 9, 12, tzinfo=UTC
    )


def test_timestamp_with_offset_is_converted_to_utc() -> None:
    got = parse_account(account(created_at="2026-01-05T10:12:00+01:00")).created_at
    assert got == datetime(2026, 1, 5, 9, 12, tzinfo=UTC) and got.tzinfo == UTC


def test_bad_timestamp_names_the_column_and_value() -> None:
    with pytest.raises(RowError, match=r"created_at: not an ISO-8601 timestamp: '2026-13-01'"):
        parse_account(account(created_at="2026-13-01"))


def test_missing_required_value_names_the_column() -> None:
    with pytest.raises(RowError, match="account_id: required, but empty"):
        parse_account(account(account_id="  "))


def test_account_fields_are_normalised() -> None:
    got = parse_account(
        account(
            currency="eur", country="nl", language="pt_BR", employees="12", traits='{"seats": 3}'
        )
    )
    assert (got.currency, got.country, got.language, got.employees) == ("EUR", "NL", "pt-BR", 12)
    assert got.traits == {"seats": 3}


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"currency": "EURO"}, "currency: unknown currency 'EURO'"),
        ({"country": "XX"}, "country: unknown country 'XX'"),
        ({"language": "klingon"}, "language: unknown language tag 'klingon'"),
        ({"employees": "12.5"}, "employees: expected a whole number, got '12.5'"),
        ({"employees": "-3"}, "employees: must be at least 0, got -3"),
        ({"traits": "[1]"}, "traits: expected a JSON object, got [1]"),
        ({"traits": "{oops"}, "traits: not valid JSON"),
        ({"email": "nobody"}, "email: not an email address: 'nobody'"),
    ],
)
def test_bad_account_values_are_rejected_with_reason(
    values: dict[str, object], reason: str
) -> None:
    with pytest.raises(RowError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        parse_account(account(**values))


def subscription(**values: object) -> dict[str, object]:
    return {"account_id": "a-1", "item_id": "pro", "started_at": "2026-02-15", **values}


def test_subscription_defaults_follow_the_contract() -> None:
    got = parse_subscription(subscription())
    assert (got.quantity, got.interval, got.status, got.unit_price, got.currency) == (
        1,
        "month",
        "active",
        None,
        None,
    )


def test_subscription_price_from_json_float_is_exact() -> None:
    assert parse_subscription(subscription(unit_price=29.99)).unit_price == Decimal("29.99")


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"unit_price": "-5"}, "unit_price: must not be negative, got -5"),
        ({"unit_price": "ten"}, "unit_price: expected a decimal amount, got 'ten'"),
        ({"quantity": "0"}, "quantity: must be at least 1, got 0"),
        ({"interval": "week"}, "interval: expected one of month, year, got 'week'"),
        ({"status": "paused"}, "status: expected one of trialing, active, past_due, canceled"),
        ({"status": "canceled"}, "status is canceled but ended_at is empty"),
        ({"ended_at": "2026-02-01"}, "ended_at 2026-02-01T00:00:00\\+00:00 is before started_at"),
    ],
)
def test_bad_subscription_values_are_rejected_with_reason(
    values: dict[str, object], reason: str
) -> None:
    with pytest.raises(RowError, match=reason):
        parse_subscription(subscription(**values))


def test_event_without_message_id_gets_a_stable_content_hash() -> None:
    row = {"account_id": "a-1", "event": "Report Shared", "timestamp": "2026-05-01T09:00:00Z"}
    first, second = parse_event(row), parse_event(dict(row))
    assert first.message_id == second.message_id and first.message_id.startswith("sha256:")
    other = parse_event({**row, "properties": {"report": "x"}})
    assert other.message_id != first.message_id


def test_event_keeps_given_message_id_and_properties() -> None:
    got = parse_event(
        {
            "account_id": "a-1",
            "event": "Feature Blocked",
            "timestamp": "2026-05-01T09:00:00Z",
            "properties": {"feature": "automation"},
            "message_id": "m-1",
        }
    )
    assert (got.message_id, dict(got.properties)) == ("m-1", {"feature": "automation"})


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_any_iso_timestamp_round_trips_to_the_same_instant(when: datetime) -> None:
    assert parse_account(account(created_at=when.isoformat())).created_at == when


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"name": "Acme\x00"}, "name: contains a NUL character"),
        ({"employees": str(2**31)}, "employees: must be at most 2147483647"),
        ({"traits": '{"score": NaN}'}, "traits: NaN and Infinity are not JSON"),
        ({"traits": '{"note": "a\\u0000b"}'}, "traits: contains a NUL character"),
    ],
)
def test_values_postgresql_cannot_store_are_rejected_on_every_database(
    values: dict[str, object], reason: str
) -> None:
    with pytest.raises(RowError, match=reason):
        parse_account(account(**values))


def test_json_values_from_parquet_become_plain_json() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    got = parse_account(account(traits={"since": when, "price": Decimal("9.50")}))
    assert got.traits == {"since": str(when), "price": "9.50"}


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"employees": "5²"}, "employees: expected a whole number, got '5²'"),
        ({"created_at": "9999-12-31T23:59:59-05:00"}, "created_at: .* is out of range in UTC"),
    ],
)
def test_values_that_python_cannot_convert_are_reasons_not_crashes(
    values: dict[str, object], reason: str
) -> None:
    with pytest.raises(RowError, match=reason):
        parse_account(account(**values))
