"""The calendar rules every layer shares (domain/calendar.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from upsell.domain.calendar import add_months, day_start, iso, month_start, month_starts, next_month


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_day_starts_at_midnight_utc() -> None:
    assert day_start(date(2026, 11, 1)) == utc("2026-11-01T00:00")


def test_adding_months_clamps_the_day_and_counts_from_the_first_date() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 1, 31), 2) == date(2026, 3, 31)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(utc("2026-11-15T08:30"), 3) == utc("2027-02-15T08:30")
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2026, 1, 15), -13) == date(2024, 12, 15)


def test_month_boundaries_are_utc_month_starts() -> None:
    assert month_start(date(2026, 2, 17)) == utc("2026-02-01")
    assert month_start(utc("2026-12-31T23:59")) == utc("2026-12-01")
    assert next_month(utc("2026-12-01")) == utc("2027-01-01")
    assert next_month(date(2026, 1, 31)) == utc("2026-02-01")


def test_month_starts_include_both_ends_and_are_empty_backwards() -> None:
    assert month_starts(date(2025, 11, 20), date(2026, 2, 1)) == [
        utc("2025-11-01"),
        utc("2025-12-01"),
        utc("2026-01-01"),
        utc("2026-02-01"),
    ]
    assert month_starts(date(2026, 3, 1), date(2026, 3, 31)) == [utc("2026-03-01")]
    assert month_starts(date(2026, 3, 1), date(2026, 2, 28)) == []


def test_iso_is_utc_with_a_z() -> None:
    assert iso(utc("2026-06-01T00:00")) == "2026-06-01T00:00:00Z"
    assert iso(datetime(2026, 6, 1, 2, 0)) == "2026-06-01T02:00:00Z"  # naive is UTC
    plus_two = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 6, 1, 2, 0, tzinfo=plus_two)) == "2026-06-01T00:00:00Z"
