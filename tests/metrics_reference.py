"""A reference implementation of metrics.md's MRR and movement rules: the oracle for the engine's tests.

Deliberately naive so that it can be trusted by reading: for each account, sweep over the instants at
which one of its rows starts or stops counting, and compare the account's MRR just before and just
after each instant. Decimal throughout, no floats, no tables.

The rules (metrics.md, with the choices it leaves open written down):

- **Item MRR** = ``unit_price x quantity x fx[currency] / months`` (month 1, year 12), rounded half-even
  to 6 decimal places (micro-units of the base currency). Every other number is an exact sum of those.
  Trialing rows and free items count 0. ``fx`` maps a currency to the value of one unit in the base
  currency (the base currency maps to 1).
- **Holding**: a row holds its item from ``started_at`` inclusive to ``ended_at`` exclusive. With
  ``churn_at="period_end"`` a row whose status is ``canceled`` keeps counting until the end of the
  billing period in which it ended: the first boundary ``started_at + k intervals`` (k >= 1, months
  added from ``started_at`` with the day clamped to the month's last day) that is >= ``ended_at``.
  Other rows (a plan change's old row, ``active`` or ``past_due``) stop at ``ended_at`` either way.
- **Movements**: changes at one instant for one account are one change, from ``b`` (MRR just before the
  instant) to ``a`` (MRR at the instant). b = 0 < a: ``new``, or ``reactivation`` when the account had
  MRR > 0 at some earlier instant. b > 0: ``expansion`` (a > b), ``contraction`` (0 < a < b), ``churn``
  (a = 0). The amount is always positive.
- **Reactivation window** (``reactivation_window_days``): None means any return of a former payer is a
  reactivation. With N days, a return at most N days (inclusive) after the account's last churn (the
  instant its MRR last went to 0) is a reactivation; a later return counts as ``new``.
- **Expansion causes**: per item_id, the MRR of its rows starting at the instant minus that of its rows
  ending there (trialing rows take no part: a trial that converts is the item starting). An item with
  rows both ending and starting is a ``quantity`` cause when the total quantities differ, else a
  ``price`` cause (interval or price change, a discount ending). An item only starting or only ending
  is its kind's cause: plan -> ``upsell``, add_on -> ``add_on``, product -> ``cross_sell``. The deltas
  are summed per cause and the expansion amount is split among the causes in proportion to their
  positive deltas: in micro-units each gets floor(amount x delta / total positive delta), and the
  remainder goes to the cause with the largest positive delta (ties: alphabetical). No positive delta
  (impossible when a > b; guarded) puts everything under ``price``.
- **Periods**: a period [start, end) owns the movements at instants start <= t < end. Its start MRR is
  the previous period's end MRR, i.e. the MRR *just before* ``start``, and its end MRR is the MRR just
  before ``end`` (``mrr_before``). So a change at exactly 00:00 UTC of a month's first day is a movement
  of that month, and MRR_end - MRR_start = new + reactivation + expansion - contraction - churn holds
  for every period and account. ``mrr_at`` is the MRR at an instant itself (changes at it included).
- **Retention** over [start, end): the cohort is the accounts with MRR > 0 at the start (just before
  ``start``, so an account that starts paying at exactly ``start`` is not in it); NDR = sum of their end
  MRR / sum of their start MRR; GRR = sum of min(end, start) / sum of start. Both None for an empty
  cohort.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

MICRO = Decimal("0.000001")
MONTHS = {"month": 1, "year": 12}
MOVEMENT_TYPES = ("new", "reactivation", "expansion", "contraction", "churn")
CAUSES = ("upsell", "add_on", "cross_sell", "quantity", "price")
KIND_CAUSE = {"plan": "upsell", "add_on": "add_on", "product": "cross_sell"}
ZERO = Decimal(0)

Kinds = Mapping[str, tuple[str, int]]
Fx = Mapping[str, Decimal]


@dataclass(frozen=True)
class Row:
    """One subscription row (data-contract.md's subscriptions). Timestamps are aware UTC."""

    account_id: str
    item_id: str
    started_at: datetime
    ended_at: datetime | None
    quantity: int = 1
    interval: str = "month"  # month | year
    unit_price: Decimal = ZERO  # charged per interval, after discounts
    currency: str = "USD"
    status: str = "active"  # trialing | active | past_due | canceled

    def __post_init__(self) -> None:
        if self.interval not in MONTHS:
            raise ValueError(f"interval must be month or year, got {self.interval!r}")
        if self.status not in ("trialing", "active", "past_due", "canceled"):
            raise ValueError(f"unknown status {self.status!r}")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")


@dataclass(frozen=True)
class Settings:
    reactivation_window_days: int | None = None  # None: any return is a reactivation
    churn_at: str = "cancel"  # cancel | period_end

    def __post_init__(self) -> None:
        if self.churn_at not in ("cancel", "period_end"):
            raise ValueError(f"churn_at must be cancel or period_end, got {self.churn_at!r}")


@dataclass(frozen=True)
class Movement:
    account_id: str
    at: datetime
    type: str  # new | reactivation | expansion | contraction | churn
    amount: Decimal  # > 0
    before: Decimal
    after: Decimal
    causes: dict[str, Decimal]  # expansion only: cause -> amount, summing to `amount`


# --- rows ------------------------------------------------------------------------------------------


def item_mrr(row: Row, kinds: Kinds, fx: Fx) -> Decimal:
    """The row's MRR in the base currency while held, rounded half-even to micro-units."""
    if row.item_id not in kinds:
        raise KeyError(f"unknown item {row.item_id!r}")
    if row.status == "trialing":
        return ZERO
    exact = row.unit_price * row.quantity * fx[row.currency] / MONTHS[row.interval]
    return exact.quantize(MICRO, rounding=ROUND_HALF_EVEN)


def add_months(t: datetime, months: int) -> datetime:
    """`t` plus a number of months, the day clamped to the target month's last day."""
    year, month0 = divmod(t.month - 1 + months, 12)
    year += t.year
    day = min(t.day, calendar.monthrange(year, month0 + 1)[1])
    return t.replace(year=year, month=month0 + 1, day=day)


def counts_until(row: Row, settings: Settings) -> datetime | None:
    """The instant the row stops counting (exclusive); None while it is still held."""
    if row.ended_at is None:
        return None
    if settings.churn_at == "period_end" and row.status == "canceled":
        k = 1
        while add_months(row.started_at, k * MONTHS[row.interval]) < row.ended_at:
            k += 1
        return add_months(row.started_at, k * MONTHS[row.interval])
    return row.ended_at


def held_at(row: Row, t: datetime, settings: Settings) -> bool:
    """Whether the row counts at the instant `t` (started_at <= t < end)."""
    until = counts_until(row, settings)
    return row.started_at <= t and (until is None or t < until)


def held_just_before(row: Row, t: datetime, settings: Settings) -> bool:
    """Whether the row counts an instant before `t` (started_at < t <= end)."""
    until = counts_until(row, settings)
    return row.started_at < t and (until is None or t <= until)


def _by_account(rows: Iterable[Row]) -> dict[str, list[Row]]:
    accounts: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        accounts[row.account_id].append(row)
    return dict(sorted(accounts.items()))


# --- MRR at an instant -----------------------------------------------------------------------------


def mrr_at(
    rows: Iterable[Row], at: datetime, *, kinds: Kinds, fx: Fx, settings: Settings = Settings()
) -> dict[str, Decimal]:
    """Each account's MRR at the instant `at` (rows with started_at <= at < end), zeros included."""
    return {
        account: sum((item_mrr(r, kinds, fx) for r in rs if held_at(r, at, settings)), ZERO)
        for account, rs in _by_account(rows).items()
    }


def mrr_before(
    rows: Iterable[Row], at: datetime, *, kinds: Kinds, fx: Fx, settings: Settings = Settings()
) -> dict[str, Decimal]:
    """Each account's MRR just before `at`: the end MRR of a period ending at `at`."""
    return {
        account: sum(
            (item_mrr(r, kinds, fx) for r in rs if held_just_before(r, at, settings)), ZERO
        )
        for account, rs in _by_account(rows).items()
    }


# --- movements -------------------------------------------------------------------------------------


def movements(
    rows: Iterable[Row], *, kinds: Kinds, fx: Fx, settings: Settings = Settings()
) -> list[Movement]:
    """Every change of an account's MRR, ordered by instant then account."""
    found: list[Movement] = []
    for account_rows in _by_account(rows).values():
        found.extend(_account_movements(account_rows, kinds, fx, settings))
    return sorted(found, key=lambda m: (m.at, m.account_id))


def _account_movements(rows: list[Row], kinds: Kinds, fx: Fx, settings: Settings) -> list[Movement]:
    instants = {r.started_at for r in rows}
    instants |= {u for r in rows if (u := counts_until(r, settings)) is not None}
    paid_before = False
    last_churn: datetime | None = None
    found: list[Movement] = []
    for t in sorted(instants):
        b = sum((item_mrr(r, kinds, fx) for r in rows if held_just_before(r, t, settings)), ZERO)
        a = sum((item_mrr(r, kinds, fx) for r in rows if held_at(r, t, settings)), ZERO)
        if a == b:
            continue
        causes: dict[str, Decimal] = {}
        if b == 0:
            kind = (
                "reactivation" if paid_before and _within_window(t, last_churn, settings) else "new"
            )
            amount = a
        elif a > b:
            kind, amount = "expansion", a - b
            causes = _expansion_causes(rows, t, amount, kinds, fx, settings)
        elif a > 0:
            kind, amount = "contraction", b - a
        else:
            kind, amount = "churn", b
            last_churn = t
        if a > 0:
            paid_before = True
        found.append(Movement(rows[0].account_id, t, kind, amount, b, a, causes))
    return found


def _within_window(t: datetime, last_churn: datetime | None, settings: Settings) -> bool:
    if settings.reactivation_window_days is None:
        return True
    assert last_churn is not None  # MRR went from > 0 back to 0 through a churn
    return t - last_churn <= timedelta(days=settings.reactivation_window_days)


def _expansion_causes(
    rows: list[Row], t: datetime, amount: Decimal, kinds: Kinds, fx: Fx, settings: Settings
) -> dict[str, Decimal]:
    paying = [r for r in rows if r.status != "trialing"]
    deltas: dict[str, Decimal] = defaultdict(Decimal)
    for item_id in sorted({r.item_id for r in paying}):
        own = [r for r in paying if r.item_id == item_id]
        ending = [
            r for r in own if held_just_before(r, t, settings) and not held_at(r, t, settings)
        ]
        starting = [
            r for r in own if held_at(r, t, settings) and not held_just_before(r, t, settings)
        ]
        if not ending and not starting:
            continue
        if ending and starting:
            same_quantity = sum(r.quantity for r in ending) == sum(r.quantity for r in starting)
            cause = "price" if same_quantity else "quantity"
        else:
            cause = KIND_CAUSE[kinds[item_id][0]]
        started = sum((item_mrr(r, kinds, fx) for r in starting), ZERO)
        ended = sum((item_mrr(r, kinds, fx) for r in ending), ZERO)
        deltas[cause] += started - ended
    return split(amount, deltas)


def split(amount: Decimal, deltas: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Split `amount` among the causes with a positive delta, in proportion, in micro-units.

    Each cause gets floor(amount x delta / total); the remainder goes to the largest delta (ties:
    alphabetical). Only causes with a non-zero share are returned.
    """
    positive = {cause: int(d.scaleb(6)) for cause, d in deltas.items() if d > 0}
    if not positive:
        return {"price": amount}
    units = int(amount.scaleb(6))
    total = sum(positive.values())
    shares = {cause: units * d // total for cause, d in positive.items()}
    largest = min(positive, key=lambda cause: (-positive[cause], cause))
    shares[largest] += units - sum(shares.values())
    return {cause: Decimal(s).scaleb(-6) for cause, s in sorted(shares.items()) if s}


# --- periods ---------------------------------------------------------------------------------------


def retention(
    rows: Iterable[Row],
    start: datetime,
    end: datetime,
    *,
    kinds: Kinds,
    fx: Fx,
    settings: Settings = Settings(),
) -> tuple[Decimal | None, Decimal | None]:
    """(NDR, GRR) over [start, end); (None, None) when no account pays at the start."""
    rows = list(rows)
    opening = mrr_before(rows, start, kinds=kinds, fx=fx, settings=settings)
    closing = mrr_before(rows, end, kinds=kinds, fx=fx, settings=settings)
    cohort = [account for account, mrr in opening.items() if mrr > 0]
    if not cohort:
        return None, None
    base = sum((opening[a] for a in cohort), ZERO)
    net = sum((closing[a] for a in cohort), ZERO)
    gross = sum((min(closing[a], opening[a]) for a in cohort), ZERO)
    return net / base, gross / base


def month_summary(
    rows: Iterable[Row],
    start: date,
    end: date,
    *,
    kinds: Kinds,
    fx: Fx,
    settings: Settings = Settings(),
) -> list[dict[str, object]]:
    """One dict per calendar month from `start`'s month to `end`'s month, both included."""
    rows = list(rows)
    moves = movements(rows, kinds=kinds, fx=fx, settings=settings)
    summary: list[dict[str, object]] = []
    for first, following in _months(start, end):
        opening = mrr_before(rows, first, kinds=kinds, fx=fx, settings=settings)
        closing = mrr_before(rows, following, kinds=kinds, fx=fx, settings=settings)
        owned = [m for m in moves if first <= m.at < following]
        totals = {
            kind: sum((m.amount for m in owned if m.type == kind), ZERO) for kind in MOVEMENT_TYPES
        }
        by_cause = {c: sum((m.causes.get(c, ZERO) for m in owned), ZERO) for c in CAUSES}
        ndr, grr = retention(rows, first, following, kinds=kinds, fx=fx, settings=settings)
        summary.append(
            {
                "month": f"{first.year:04d}-{first.month:02d}",
                "mrr_start": sum(opening.values(), ZERO),
                "mrr_end": sum(closing.values(), ZERO),
                **totals,
                "expansion_by_cause": by_cause,
                "paying_accounts": sum(1 for mrr in closing.values() if mrr > 0),
                "ndr": ndr,
                "grr": grr,
            }
        )
    return summary


def _months(start: date, end: date) -> list[tuple[datetime, datetime]]:
    """(first instant, next month's first instant) for each month from `start`'s to `end`'s."""
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        following = (year + 1, 1) if month == 12 else (year, month + 1)
        months.append((datetime(year, month, 1, tzinfo=UTC), datetime(*following, 1, tzinfo=UTC)))
        year, month = following
    return months
