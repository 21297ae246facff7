"""Fitting `upsell.domain.answers.Answers` from past decisions and their outcomes, and measuring
how well it ranks and how well it is calibrated, out of sample (docs/learning.md).

`AnswersFitter` follows scikit-learn's estimator contract: `__init__` stores the parameters,
`fit` returns the fitter with `answers_` (the model the decision step reads) and `evaluation_`
(cross-validated by account, so that no account is scored by a model that saw it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import PoissonRegressor
from threadpoolctl import threadpool_limits

from upsell.domain.answers import FEATURES, Answers, Linear, Outcome, count
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
    of P(accept) on treated decisions for the fit, for its groups alone and for the prior alone;
    calibration bins; the normalised Qini coefficient of the predicted uplift over treated and
    held-out decisions (None where a class or a group is missing); and the L2 penalty of each
    per-account model kept (None: the groups predicted as well without it)."""

    treated: int
    held_out: int
    converted: int
    auc: float | None = None
    auc_groups: float | None = None
    auc_prior: float | None = None
    brier: float | None = None
    brier_prior: float | None = None
    qini: float | None = None
    calibration: tuple[Calibration, ...] = field(default_factory=tuple)
    treated_alpha: float | None = None
    held_out_alpha: float | None = None


#: The L2 penalties tried for the per-account models (scikit-learn's `PoissonRegressor.alpha`, on
#: standardised features), and the least evidence they are tried on.
ALPHAS = (0.003, 0.03, 0.3)
MIN_ROWS = {False: 200, True: 100}
MIN_CONVERSIONS = {False: 20, True: 10}


class AnswersFitter:
    """Fits `Answers` (the group calibration, buying anyway, the churn push, and the per-account
    models when they predict better out of sample) from outcomes.

    `strength` is the weight of a group's parent, in expected conversions; `churn_strength`
    the weight, in decisions, of the parent's churn rates; `alphas` the per-account models'
    penalties to choose from by cross-validated Poisson deviance."""

    def __init__(
        self,
        strength: float = 5.0,
        churn_strength: float = 20.0,
        alphas: Sequence[float] = ALPHAS,
    ) -> None:
        self.strength = strength
        self.churn_strength = churn_strength
        self.alphas = alphas

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
        fold = np.array([int(unit_hash("fold", a) * FOLDS) for a in accounts])
        alphas = {held: self._choose(outcomes, fold, held) for held in (False, True)}
        self.answers_ = replace(self._fit(outcomes, alphas), version=version, fitted_at=fitted_at)
        self.evaluation_ = self._evaluate(outcomes, accounts, fold, alphas)
        return self

    @property
    def answers(self) -> Answers:
        if not hasattr(self, "answers_"):
            raise NotFittedError("AnswersFitter is not fitted: call fit() first")
        return self.answers_

    def _groups(self, outcomes: Sequence[Outcome]) -> Answers:
        return Answers(count(outcomes), strength=self.strength, churn_strength=self.churn_strength)

    def _fit(self, outcomes: Sequence[Outcome], alphas: dict[bool, float | None]) -> Answers:
        groups = self._groups(outcomes)
        models = {
            held: None if alpha is None else _linear(groups, _rows(outcomes, held), held, alpha)
            for held, alpha in alphas.items()
        }
        return replace(groups, treated_model=models[False], held_out_model=models[True])

    def _choose(self, outcomes: Sequence[Outcome], fold: np.ndarray, held: bool) -> float | None:
        """The penalty whose per-account model has the lowest cross-validated Poisson deviance,
        or None when the groups alone do as well (or there is too little evidence to try)."""
        rows = _rows(outcomes, held)
        if len(rows) < MIN_ROWS[held] or sum(o.converted for o in rows) < MIN_CONVERSIONS[held]:
            return None
        candidates: list[float | None] = [None, *self.alphas]
        deviance = dict.fromkeys(candidates, 0.0)
        for k in range(FOLDS):
            train = [o for o, f in zip(outcomes, fold, strict=True) if f != k]
            test = [o for o, f in zip(outcomes, fold, strict=True) if f == k and o.held_out == held]
            test = [o for o in test if o.features]
            if not test:
                continue
            groups = self._groups(train)
            y = np.array([o.converted for o in test], dtype=float)
            base = _exposure(groups, test, held)
            for alpha in candidates:
                mu = base
                if alpha is not None:
                    model = _linear(groups, _rows(train, held), held, alpha)
                    if model is not None:
                        mu = base * np.array([model.multiplier(o.features) for o in test])
                deviance[alpha] += _poisson_deviance(y, mu)
        return min(candidates, key=lambda a: (deviance[a], a is not None, a or 0.0))

    def _evaluate(
        self,
        outcomes: Sequence[Outcome],
        accounts: Sequence[str],
        fold: np.ndarray,
        alphas: dict[bool, float | None],
    ) -> Evaluation:
        p = np.zeros(len(outcomes))
        p_groups = np.zeros(len(outcomes))
        uplift = np.zeros(len(outcomes))
        for k in range(FOLDS):
            train = [o for o, f in zip(outcomes, fold, strict=True) if f != k]
            model, groups = self._fit(train, alphas), self._groups(train)
            for i, o in enumerate(outcomes):
                if fold[i] == k:
                    e = model.estimate(
                        o.prior, o.kind, o.channel, o.placement, o.playbook,
                        dearer=o.dearer, features=o.features or None,
                    )  # fmt: skip
                    g = groups.estimate(
                        o.prior, o.kind, o.channel, o.placement, o.playbook, dearer=o.dearer
                    )
                    p[i], p_groups[i], uplift[i] = e.p_accept, g.p_accept, e.p_accept - e.anyway
        treated = np.array([not o.held_out for o in outcomes], dtype=bool)
        y = np.array([o.converted for o in outcomes], dtype=bool)
        prior = np.array([o.prior for o in outcomes])
        out = Evaluation(
            treated=int(treated.sum()),
            held_out=int((~treated).sum()),
            converted=int(y[treated].sum()),
            treated_alpha=alphas[False],
            held_out_alpha=alphas[True],
        )
        yt, pt, prt = y[treated], p[treated], prior[treated]
        if yt.size == 0:
            return out
        both = 0 < yt.sum() < yt.size
        return replace(
            out,
            auc=auc(yt, pt) if both else None,
            auc_groups=auc(yt, p_groups[treated]) if both else None,
            auc_prior=auc(yt, prt) if both else None,
            brier=brier(yt, pt),
            brier_prior=brier(yt, np.clip(prt, 0, 1)),
            qini=qini(uplift, treated, y, tiebreak=[unit_hash("tie", a) for a in accounts]),
            calibration=_calibration(pt, yt),
        )


def _rows(outcomes: Sequence[Outcome], held: bool) -> list[Outcome]:
    """The treated (or held-out) outcomes that carry features."""
    return [o for o in outcomes if o.held_out == held and o.features]


def _exposure(groups: Answers, rows: Sequence[Outcome], held: bool) -> np.ndarray:
    """Each row's expected conversions by its groups alone: prior x m (held out: prior x a)."""
    out = []
    for o in rows:
        post = groups.posterior(o.kind, o.channel, o.placement, o.playbook, dearer=o.dearer)
        out.append(o.prior * (post.anyway if held else post.multiplier))
    return np.asarray(np.maximum(np.array(out, dtype=float), 1e-6), dtype=float)


def _linear(groups: Answers, rows: Sequence[Outcome], held: bool, alpha: float) -> Linear | None:
    """The per-account model: a Poisson regression of conversions on the standardised
    `FEATURES`, with the groups' expected conversions as exposure (target y / exposure, weight
    exposure: the offset form of a log-link GLM) and an L2 penalty `alpha`."""
    if not rows:
        return None
    names = [k for k in FEATURES if any(k in o.features for o in rows)]
    if not names:
        return None
    x = np.array([[o.features.get(k, np.nan) for k in names] for o in rows], dtype=float)
    known = ~np.isnan(x)
    means = np.where(known, x, 0.0).sum(axis=0) / known.sum(axis=0)
    x = np.where(known, x, means)
    scales = x.std(axis=0)
    scales = np.where(scales > 1e-9, scales, 1.0)
    z = (x - means) / scales
    exposure = _exposure(groups, rows, held)
    y = np.array([o.converted for o in rows], dtype=float)
    with threadpool_limits(limits=1):  # a few thousand rows: threads would only wait on each other
        model = PoissonRegressor(alpha=alpha, max_iter=300)
        model.fit(z, y / exposure, sample_weight=exposure)
    return Linear(
        coefficients={k: float(c) for k, c in zip(names, model.coef_, strict=True)},
        means={k: float(m) for k, m in zip(names, means, strict=True)},
        scales={k: float(v) for k, v in zip(names, scales, strict=True)},
        intercept=float(model.intercept_),
    )


def _poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    mu = np.maximum(mu, 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu), 0.0)
    return float(2 * np.sum(term - (y - mu)))


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
