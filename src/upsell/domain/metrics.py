"""Revenue metrics (metrics.md): the settings where the tools disagree, and the formulas.

The engine (upsell/engine/movements.py, outcomes.py) computes MRR movements, retention, offer
outcomes and cohorts over whole tables, in integer micro-units of the base currency (so every back
end gets the same cents); this module holds what it shares with the rest: the settings, the
movement types and expansion causes, money in micro-units, and the formulas the report applies to
the engine's totals (ARR, ARPA, quick ratio, revenue churn, LTV, time to upsell, ratios), each
once, with metrics.md's definition.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal, get_args

from upsell.domain.calendar import add_months
from upsell.domain.money import MONTHS_IN_INTERVAL, Interval

MovementType = Literal["new", "reactivation", "expansion", "contraction", "churn"]
MOVEMENT_TYPES: tuple[MovementType, ...] = get_args(MovementType)
Cause = Literal["upsell", "add_on", "cross_sell", "quantity", "price"]
CAUSES: tuple[Cause, ...] = get_args(Cause)
ChurnAt = Literal["cancel", "period_end"]
CHURN_AT: tuple[ChurnAt, ...] = get_args(ChurnAt)

#: Money in the engine is an integer number of millionths of the base currency.
MICRO = Decimal("0.000001")
MICROS_PER_UNIT = 1_000_000
CENT = Decimal("0.01")
#: ARR is twelve months of MRR.
MONTHS_IN_YEAR = 12


@dataclass(frozen=True)
class MetricSettings:
    """metrics.md's settings (ChartMogul's defaults).

    - `reactivation_window_days`: None counts any return of a churned account as a reactivation;
      a number (Maxio: 90) counts only returns within that many days of the churn, later ones as new.
    - `churn_at`: ``cancel`` stops a cancelled row's MRR at its ``ended_at``; ``period_end`` at the
      end of the billing period in which it ended.
    - `usage_in_mrr`: pay-as-you-go usage is not MRR (True is not supported yet).
    - `gross_margin`: for LTV.
    - `attribution_days`: an offer converted when the account took its item within this many days
      of the offer.
    """

    reactivation_window_days: int | None = None
    churn_at: ChurnAt = "cancel"
    usage_in_mrr: bool = False
    gross_margin: float = 0.8
    attribution_days: int = 14


DEFAULT_SETTINGS = MetricSettings()


def to_micros(amount: Decimal) -> int:
    """An amount as the engine holds it: micro-units, rounded half-even to 6 decimals."""
    return int(amount.quantize(MICRO, rounding=ROUND_HALF_EVEN) * MICROS_PER_UNIT)


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS_PER_UNIT).quantize(MICRO)


def period_end(started_at: datetime, ended_at: datetime, interval: Interval) -> datetime:
    """The end of the billing period in which a row ended: the first ``started_at + k intervals``
    (k >= 1, months clamped to the month's last day) at or after `ended_at`."""
    months = MONTHS_IN_INTERVAL[interval]
    k = 1
    while True:
        boundary = add_months(started_at, k * months)
        if boundary >= ended_at:
            return boundary
        k += 1


def cents(micros: float) -> Decimal:
    """An amount in micro-units (truncated to whole micro-units) as money is shown: rounded
    half-even to cents."""
    return from_micros(int(micros)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator; None when there is nothing to divide by."""
    return None if denominator == 0 else numerator / denominator


def arr(mrr: Decimal) -> Decimal:
    """Annual run rate: 12 x the MRR as shown (rounded to cents), so the two always agree."""
    return mrr * MONTHS_IN_YEAR


def arpa(mrr: float, paying_accounts: int) -> float | None:
    """Average revenue per (paying) account: MRR / paying accounts (in the MRR's unit)."""
    return None if paying_accounts == 0 else mrr / paying_accounts


def quick_ratio(gained: float, lost: float) -> float | None:
    """(new + reactivation + expansion) / (contraction + churn): `gained` over `lost`."""
    return ratio(gained, lost)


def revenue_churn(lost: float, starting_mrr: float) -> float | None:
    """The monthly revenue churn rate of a period: the MRR it lost (churn + contraction; with
    expansion netted out for the net rate) over the sum of its months' starting MRR."""
    return ratio(lost, starting_mrr)


def ltv(arpa: float, gross_margin: float, churn_rate: float | None) -> float | None:
    """Lifetime value: ARPA x gross margin / monthly revenue churn rate (metrics.md); None when
    nothing churned (the lifetime is unbounded) or the rate is not positive (net expansion)."""
    if churn_rate is None or churn_rate <= 0:
        return None
    return arpa * gross_margin / churn_rate


@dataclass(frozen=True)
class TimeToUpsell:
    """Days from an account's first paid item to its first upgrade, over the accounts whose first
    upgrade falls in the period: median and quartiles (None without any), and how many."""

    median: int | None = None
    p25: int | None = None
    p75: int | None = None
    upsells: int = 0


def time_to_upsell(days: Sequence[float]) -> TimeToUpsell:
    """The median and quartiles of `days` (the inclusive method: they never extrapolate beyond
    the data), rounded to whole days."""
    ordered = sorted(days)
    if not ordered:
        return TimeToUpsell()
    if len(ordered) > 1:
        q = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q = [ordered[0]] * 3
    return TimeToUpsell(round(q[1]), round(q[0]), round(q[2]), len(ordered))
