"""Fitting `upsell.domain.answers.Answers` from past decisions and their outcomes, and measuring
how well it ranks and how well it is calibrated, out of sample (docs/learning.md).

`AnswersFitter` follows scikit-learn's estimator contract: `__init__` stores the parameters,
`fit` returns the fitter with `answers_` (the model the decision step reads) and `evaluation_`
(cross-validated by account, so that no account is scored by a model that saw it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from scipy.stats import rankdata

from upsell.domain.answers import Answers, Outcome, count
from upsell.domain.decisions import unit_hash
from upsell.errors import NotFittedError

FOLDS = 5
BINS = 5


@dataclass(frozen=True)
class Calibration:
    """One bin of treated decisions by predicted P(accept): how many, the mean prediction, the
    observed conversion rate."""

    decisions: int
    predicted: float
    observed: float


@dataclass(frozen=True)
class Evaluation:
    """Out-of-sample quality (`FOLDS`-fold cross-validation by account): ROC AUC and Brier score
    of P(accept) on treated decisions, for the model and for the prior alone; calibration bins;
    the normalised Qini coefficient of the predicted uplift over treated and held-out decisions
    (None where a class or a group is missing)."""

    treated: int
    held_out: int
    converted: int
    auc: float | None = None
    auc_prior: float | None = None
    brier: float | None = None
    brier_prior: float | None = None
    qini: float | None = None
    calibration: tuple[Calibration, ...] = field(default_factory=tuple)


class AnswersFitter:
    """Fits `Answers` (the group calibration, buying anyway, the churn push) from outcomes.

    `strength` is the weight of a group's parent, in expected conversions; `churn_strength`
    the weight, in decisions, of the parent's churn rates."""

    def __init__(self, strength: float = 5.0, churn_strength: float = 20.0) -> None:
        self.strength = strength
        self.churn_strength = churn_strength

    def fit(
        self,
        outcomes: Sequence[Outcome],
        accounts: Sequence[str],
        *,
        version: int | None = None,
        fitted_at: datetime | None = None,
    ) -> AnswersFitter:
        """Fit on `outcomes` (one per past decision whose window has closed; `accounts[i]` is the
        account of `outcomes[i]`)."""
        if len(outcomes) != len(accounts):
            raise ValueError("one account per outcome")
        self.answers_ = self._answers(outcomes, version=version, fitted_at=fitted_at)
        self.evaluation_ = self._evaluate(outcomes, accounts)
        return self

    @property
    def answers(self) -> Answers:
        if not hasattr(self, "answers_"):
            raise NotFittedError("AnswersFitter is not fitted: call fit() first")
        return self.answers_

    def _answers(
        self,
        outcomes: Sequence[Outcome],
        *,
        version: int | None = None,
        fitted_at: datetime | None = None,
    ) -> Answers:
        return Answers(
            count(outcomes),
            strength=self.strength,
            churn_strength=self.churn_strength,
            version=version,
            fitted_at=fitted_at,
        )

    def _evaluate(self, outcomes: Sequence[Outcome], accounts: Sequence[str]) -> Evaluation:
        fold = [int(unit_hash("fold", a) * FOLDS) for a in accounts]
        p = np.zeros(len(outcomes))
        uplift = np.zeros(len(outcomes))
        for k in range(FOLDS):
            train = [o for o, f in zip(outcomes, fold, strict=True) if f != k]
            model = self._answers(train)
            for i, o in enumerate(outcomes):
                if fold[i] == k:
                    e = model.estimate(o.prior, o.kind, o.channel, o.placement, o.playbook)
                    p[i], uplift[i] = e.p_accept, e.p_accept - e.anyway
        treated = np.array([not o.held_out for o in outcomes], dtype=bool)
        y = np.array([o.converted for o in outcomes], dtype=bool)
        prior = np.array([o.prior for o in outcomes])
        out = Evaluation(
            treated=int(treated.sum()),
            held_out=int((~treated).sum()),
            converted=int(y[treated].sum()),
        )
        yt, pt, prt = y[treated], p[treated], prior[treated]
        if yt.size == 0:
            return out
        both = 0 < yt.sum() < yt.size
        return Evaluation(
            treated=out.treated,
            held_out=out.held_out,
            converted=out.converted,
            auc=auc(yt, pt) if both else None,
            auc_prior=auc(yt, prt) if both else None,
            brier=brier(yt, pt),
            brier_prior=brier(yt, np.clip(prt, 0, 1)),
            qini=qini(uplift, treated, y, tiebreak=[unit_hash("tie", a) for a in accounts]),
            calibration=_calibration(pt, yt),
        )


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney U statistic (ties count one half): the chance that a random
    converter scores above a random non-converter."""
    ranks = rankdata(score)
    pos = int(y.sum())
    neg = y.size - pos
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """The Brier score: the mean squared difference of prediction and outcome (lower is better)."""
    return float(np.mean((p - y.astype(float)) ** 2))


def _calibration(p: np.ndarray, y: np.ndarray) -> tuple[Calibration, ...]:
    """`BINS` bins of equal count by prediction."""
    order = np.argsort(p, kind="stable")
    return tuple(
        Calibration(int(part.size), float(p[part].mean()), float(y[part].mean()))
        for part in np.array_split(order, BINS)
        if part.size
    )


def qini(
    uplift: np.ndarray, treated: np.ndarray, y: np.ndarray, *, tiebreak: Sequence[float]
) -> float | None:
    """The normalised Qini coefficient (Radcliffe, "Using control groups to target on predicted
    lift", 2007; normalised as scikit-uplift's `qini_auc_score`): the area between the Qini curve
    of the ranking by `uplift` and the random line, over the same area for the perfect ranking
    (treated converters first, held-out converters last). The Qini curve at the top i decisions
    is conversions_treated(i) - conversions_held_out(i) x treated(i) / held_out(i). Ties in
    `uplift` are broken by `tiebreak`, a fixed hash (no order the data happened to come in)."""
    if treated.all() or not treated.any() or not y.any():
        return None
    order = np.lexsort((np.asarray(tiebreak), -uplift))
    model = _qini_area(treated[order], y[order])
    perfect_key = np.where(treated & y, 0, np.where(~treated & y, 2, 1))
    best = np.argsort(perfect_key, kind="stable")
    perfect = _qini_area(treated[best], y[best])
    n = len(y)
    total = _qini_curve(treated, y)[-1]
    random = total * (n + 1) / 2  # the straight line from 0 to the final value, summed
    if perfect - random <= 0:
        return None
    return float((model - random) / (perfect - random))


def _qini_curve(treated: np.ndarray, y: np.ndarray) -> np.ndarray:
    nt = np.cumsum(treated)
    nc = np.cumsum(~treated)
    yt = np.cumsum(treated & y)
    yc = np.cumsum(~treated & y)
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = yt - np.where(nc > 0, yc * nt / np.maximum(nc, 1), 0.0)
    return np.asarray(curve, dtype=float)


def _qini_area(treated: np.ndarray, y: np.ndarray) -> float:
    return float(_qini_curve(treated, y).sum())
