"""Calendar arithmetic in UTC: the one definition of each boundary upsell computes with.

A day's instant is its midnight UTC (signals and decisions "as of" a day see the whole days before
it); months are calendar months in UTC (metrics.md: a change at 00:00 UTC of a month's first day is
a movement of that month); adding months keeps the day of the month, clamped to the month's last
day (Jan 31 + 1 month = Feb 28), always counted from the first date, never step by step.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from typing import TypeVar

When = TypeVar("When", date, datetime)


def day_start(day: date) -> datetime:
    """The first instant of `day`, UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def add_months(at: When, months: int) -> When:
    """`at` moved by `months` calendar months (negative: back), the day clamped to the month."""
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def month_start(at: date | datetime) -> datetime:
    """The first instant of the calendar month (UTC) that `at` falls in."""
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month(at: date | datetime) -> datetime:
    """The first instant of the calendar month after `at`'s."""
    return add_months(month_start(at), 1)


def month_starts(first: date | datetime, last: date | datetime) -> list[datetime]:
    """The first instant of every month from `first`'s to `last`'s, both included (none when
    `last` is in an earlier month)."""
    out: list[datetime] = []
    at, end = month_start(first), month_start(last)
    while at <= end:
        out.append(at)
        at = next_month(at)
    return out


def iso(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` (a naive time is UTC): ``2026-06-01T00:00:00Z``."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat().replace("+00:00", "Z")
