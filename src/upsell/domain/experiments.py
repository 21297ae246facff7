"""Experiment statistics: what the offers earned against the holdout, with its uncertainty.

metrics.md: "Incremental expansion MRR: expansion MRR per account in the treated group minus that in
its holdout group, times the treated accounts; with a confidence interval." The interval is Welch's
t-interval for a difference of two means with unequal variances (Welch, 1947): the standard error
is sqrt(s_t^2 / n_t + s_h^2 / n_h) and the degrees of freedom the Welch-Satterthwaite
approximation. Bad data is a result, not an error: groups too small for a variance give no interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Lift:
    """The difference of the per-account means (treated - holdout) and its interval, and the
    incremental total (the difference times the treated accounts) with its interval."""

    treated: int
    holdout: int
    mean_treated: float
    mean_holdout: float
    difference: float
    low: float | None
    high: float | None
    confidence: float

    @property
    def incremental(self) -> float:
        return self.difference * self.treated

    @property
    def incremental_low(self) -> float | None:
        return None if self.low is None else self.low * self.treated

    @property
    def incremental_high(self) -> float | None:
        return None if self.high is None else self.high * self.treated


def lift(
    treated: Sequence[float], holdout: Sequence[float], *, confidence: float = 0.95
) -> Lift | None:
    """Welch's interval for mean(treated) - mean(holdout); None when a group is empty, and no
    interval (low/high None) when a group has fewer than two accounts."""
    nt, nh = len(treated), len(holdout)
    if nt == 0 or nh == 0:
        return None
    mt, mh = sum(treated) / nt, sum(holdout) / nh
    diff = mt - mh
    if nt < 2 or nh < 2:
        return Lift(nt, nh, mt, mh, diff, None, None, confidence)
    vt = sum((x - mt) ** 2 for x in treated) / (nt - 1)
    vh = sum((x - mh) ** 2 for x in holdout) / (nh - 1)
    se2 = vt / nt + vh / nh
    if se2 == 0:
        return Lift(nt, nh, mt, mh, diff, diff, diff, confidence)
    spread = (vt / nt) ** 2 / (nt - 1) + (vh / nh) ** 2 / (nh - 1)
    # Variances so small their squares underflow: the conservative degrees of freedom.
    df = se2**2 / spread if spread > 0 else float(min(nt, nh) - 1)
    t = float(stats.t.ppf(0.5 + confidence / 2, df))
    half = t * math.sqrt(se2)
    return Lift(nt, nh, mt, mh, diff, diff - half, diff + half, confidence)
