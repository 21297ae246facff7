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


def stratified_lift(
    strata: Sequence[tuple[Sequence[float], Sequence[float]]], *, confidence: float = 0.95
) -> Lift | None:
    """The holdout comparison when accounts were held out at different shares (a smaller one for
    saves, a playbook's own): within each stratum (one share) the assignment is a fair draw, across
    strata it is not, so the pooled means would compare unlike accounts. Post-stratification
    (Cochran, *Sampling Techniques*, 1977, 5A; Miratrix, Sekhon & Yu, 2013): each stratum's
    difference of means, weighted by its share of the treated accounts, so that the incremental
    total is the sum over strata of difference x treated accounts. Its variance is the weighted sum
    of the strata's Welch variances, its degrees of freedom Welch-Satterthwaite's over all terms.

    `strata` are (treated, holdout) per stratum; one without both groups cannot be compared and is
    left out (its accounts are not counted). `mean_holdout` is the holdout's mean weighted like
    the treated accounts (mean_treated - difference). One stratum is `lift`."""
    used = [(t, h) for t, h in strata if len(t) and len(h)]
    if not used:
        return None
    if len(used) == 1:
        return lift(used[0][0], used[0][1], confidence=confidence)
    nt = sum(len(t) for t, _ in used)
    nh = sum(len(h) for _, h in used)
    mt = sum(sum(t) for t, _ in used) / nt
    diff = sum(len(t) / nt * (sum(t) / len(t) - sum(h) / len(h)) for t, h in used)
    mh = mt - diff
    if any(len(t) < 2 or len(h) < 2 for t, h in used):
        return Lift(nt, nh, mt, mh, diff, None, None, confidence)
    terms: list[tuple[float, int]] = []  # (w^2 x s^2 / n, n) of every group of every stratum
    for t, h in used:
        w = len(t) / nt
        for group in (t, h):
            n = len(group)
            m = sum(group) / n
            terms.append((w * w * sum((x - m) ** 2 for x in group) / (n - 1) / n, n))
    se2 = sum(v for v, _ in terms)
    if se2 == 0:
        return Lift(nt, nh, mt, mh, diff, diff, diff, confidence)
    spread = sum(v * v / (n - 1) for v, n in terms)
    df = se2**2 / spread if spread > 0 else float(min(n for _, n in terms) - 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)
    return Lift(nt, nh, mt, mh, diff, diff - half, diff + half, confidence)
