"""Revenue metrics (metrics.md): the settings where the tools disagree, and one row's MRR.

The engine (upsell/engine/movements.py) computes MRR movements, retention and cohorts over whole
tables; this module holds what both the engine and the per-account code share: the settings, the
movement types and expansion causes, and the MRR of one subscription row in micro-units of the base
currency (the engine sums integers, so every back end gets the same cents).
"""

from __future__ import annotations

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
