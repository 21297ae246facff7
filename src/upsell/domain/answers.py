"""What the workspace's own answers say of its offers: how far the decision step's P(accept) is off
for each kind of offer, channel and playbook, how often the offered item is bought without any
offer, and how much a contact adds to churn (issue 15, "learn who answers"; docs/learning.md).

The model is empirical Bayes on counts, the sufficient statistics `upsell learn` takes from past
decisions and their outcomes in the attribution window (`Counts`). Groups nest: all offers, the
kind, the kind on one channel and placement, the playbook, and the playbook's offers made although
a smaller one answered the same needs ("dearer"). Each group's estimate is shrunk
towards its parent's, so that a new workspace decides exactly as the prior (the heuristic
`upsell.domain.acceptance.acceptance`) and a group moves away from its parent only as its own
evidence grows:

* **Acceptance.** A group's treated contacts converted k times where the prior expected E (the sum
  of their prior P(accept)). k is Poisson with mean m x E, and the calibration multiplier m has a
  Gamma prior of mean m_parent and shape `strength` x m_parent (rate `strength`): its posterior is
  Gamma(strength x m_parent + k, strength + E), of mean (strength x m_parent + k) / (strength + E)
  (the Gamma-Poisson model of relative risks: Clayton & Kaldor, Biometrics 43, 1987). The root's
  parent multiplier is 1 (the prior as it is). P(accept) = min(prior x m, `P_MAX`).
* **Buying anyway.** Held-out decisions were made (and their prior P(accept) recorded) but not
  sent: their conversions tell how often the offered item is bought without the offer. The same
  model with its own multiplier a, of Gamma prior mean a_parent (0 at the root: the prior assumes
  that nobody buys without an offer), gives P(anyway) = prior x a. The uplift of an offer is then
  prior x (m - a): a two-model uplift that shares the prior's ranking of accounts.
* **Churn push.** Churn in the window among treated and among held-out accounts that paid at the
  decision, each a Beta-binomial mean shrunk with `churn_strength` decisions towards its parent's
  rate (the root's towards the rate of both together): their difference is the churn a contact
  adds. It is not counted for saves, whose conversion already is the account staying.

* **Per account.** Within a group, a fit may also carry a log-linear model of the account's
  `features` (`Linear`): conversions are Poisson with mean prior x m x exp(beta . z), z the
  standardised features, fitted as a Poisson regression with the group estimate as exposure and
  an L2 penalty (so that beta is 0 without evidence). `upsell learn` keeps it only when it predicts
  better out of sample than the groups alone (learning/answers.py). The same for buying anyway.

`estimate` gives P(accept), the chance of buying anyway and the churn push for one option; with a
`draw` (a number in (0, 1) fixed by the account, the offer and the instant) it samples m from its
Gamma posterior instead of taking its mean: Thompson sampling (Russo et al., "A Tutorial on
Thompson Sampling", 2018), so that arms with little evidence are still tried now and then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from scipy import special

if TYPE_CHECKING:
    from upsell.domain.history import History
    from upsell.domain.opportunities import Opportunity
    from upsell.domain.signals import AccountSignals

#: The highest P(accept) an estimate gives (a calibrated prior may overshoot 1).
P_MAX = 0.99
ROOT = "*"
DEARER = "dearer"


@dataclass(frozen=True)
class Learning:
    """How the decision step learns from the workspace's outcomes (docs/learning.md): `use` the
    fitted answers once they rest on `min_decisions` decisions whose window closed, refit them when
    the fit is `refit_days` old, `explore` by Thompson sampling; `strength` and `churn_strength`
    weigh a group's parent (in expected conversions, and in decisions)."""

    use: bool = True
    refit_days: int = 7
    min_decisions: int = 200
    explore: bool = True
    strength: float = 5.0
    churn_strength: float = 20.0


@dataclass(frozen=True)
class Counts:
    """A group's sufficient statistics: treated decisions (`treated`, `conversions`, `expected`:
    the sum of their prior P(accept)), held-out decisions (the same three), and among the accounts
    that paid at the decision, how many of each group churned."""

    treated: int = 0
    conversions: int = 0
    expected: float = 0.0
    held_out: int = 0
    held_out_conversions: int = 0
    held_out_expected: float = 0.0
    paid_treated: int = 0
    churned_treated: int = 0
    paid_held_out: int = 0
    churned_held_out: int = 0

    def _values(self) -> tuple[Any, ...]:
        return (
            self.treated, self.conversions, self.expected, self.held_out,
            self.held_out_conversions, self.held_out_expected, self.paid_treated,
            self.churned_treated, self.paid_held_out, self.churned_held_out,
        )  # fmt: skip

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def __sub__(self, other: Counts) -> Counts:
        return Counts(*(a - b for a, b in zip(self._values(), other._values(), strict=True)))


@dataclass(frozen=True)
class Outcome:
    """One past decision and what followed it in the attribution window: `prior` is the
    heuristic P(accept) it was made with, `converted` whether the offered item was bought (a save:
    whether the account still paid), `paid` whether the account paid at the decision,
    `churned` whether it paid nothing at the window's end, and `dearer` whether a smaller offer
    answered every need it answered (its prior was then price-neutral: `decisions._price_neutral`).
    """

    kind: str
    channel: str
    placement: str
    playbook: str
    prior: float
    held_out: bool
    converted: bool
    paid: bool = False
    churned: bool = False
    dearer: bool = False
    features: Mapping[str, float] = field(default_factory=dict)

    def counts(self) -> Counts:
        churned = self.paid and self.churned
        if self.held_out:
            return Counts(
                held_out=1,
                held_out_conversions=int(self.converted),
                held_out_expected=self.prior,
                paid_held_out=int(self.paid),
                churned_held_out=int(churned),
            )
        return Counts(
            treated=1,
            conversions=int(self.converted),
            expected=self.prior,
            paid_treated=int(self.paid),
            churned_treated=int(churned),
        )


def path(
    kind: str, channel: str, placement: str, playbook: str, *, dearer: bool = False
) -> tuple[str, ...]:
    """The keys of an option's groups, from all offers to its playbook, and for an offer dearer
    than a smaller one that answers the same needs, to the playbook's dearer offers."""
    arm = f"{kind}/{channel}/{placement}"
    keys = (ROOT, kind, arm, f"{arm}/{playbook}")
    return (*keys, f"{keys[-1]}/{DEARER}") if dearer else keys


def count(outcomes: Iterable[Outcome]) -> dict[str, Counts]:
    """Every group's counts (an outcome counts in each group of its `path`)."""
    leaves: dict[tuple[str, str, str, str, bool], list[Any]] = {}
    for o in outcomes:
        leaf = (o.kind, o.channel, o.placement, o.playbook, o.dearer)
        acc = leaves.setdefault(leaf, [0, 0, 0.0, 0, 0, 0.0, 0, 0, 0, 0])
        for n, value in enumerate(o.counts()._values()):
            acc[n] += value
    out: dict[str, Counts] = {}
    for (kind, channel, placement, playbook, dearer), acc in leaves.items():
        c = Counts(*acc)
        for key in path(kind, channel, placement, playbook, dearer=dearer):
            out[key] = out.get(key, Counts()) + c
    return out


@dataclass(frozen=True)
class Estimate:
    """One option's learned numbers: P(accept), P(buying the item anyway), the churn a contact
    adds; `source` ``prior`` (no fitted answers) or ``model``, the answers' `version`, `n`, the
    treated decisions of the deepest group with any (`group`), and the heuristic `prior` it
    calibrated."""

    p_accept: float
    anyway: float = 0.0
    churn_push: float = 0.0
    source: str = "prior"
    version: int | None = None
    n: int = 0
    group: str = ROOT
    explored: bool = False
    prior: float | None = None

    def provenance(self) -> dict[str, Any]:
        """What a decision line says of where its P(accept) came from."""
        out: dict[str, Any] = {"source": self.source}
        if self.source == "model":
            out["prior"] = None if self.prior is None else round(self.prior, 4)
            out |= {"version": self.version, "n": self.n, "group": self.group}
            out |= {"anyway": round(self.anyway, 4), "churn_push": round(self.churn_push, 4)}
            if self.explored:
                out["explored"] = True
        return out


@dataclass(frozen=True)
class Answers:
    """The fitted answers model (a plain value: counts per group and the two prior strengths)."""

    counts: Mapping[str, Counts] = field(default_factory=dict)
    strength: float = 5.0
    churn_strength: float = 20.0
    version: int | None = None
    fitted_at: datetime | None = None
    treated_model: Linear | None = None
    held_out_model: Linear | None = None
    _posteriors: dict[tuple[str, ...], Posterior] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.strength <= 0 or self.churn_strength <= 0:
            raise ValueError("strengths must be positive")

    @property
    def contacts(self) -> int:
        root = self.counts.get(ROOT, Counts())
        return root.treated + root.held_out

    def posterior(
        self, kind: str, channel: str, placement: str, playbook: str, *, dearer: bool = False
    ) -> Posterior:
        """The option's posterior, down its groups from all offers. Each group's prior is its
        parent's posterior on the parent's other groups only (its own counts taken out), so that no
        decision counts twice. Computed once per group."""
        keys = path(kind, channel, placement, playbook, dearer=dearer)
        found = self._posteriors.get(keys)
        if found is None:
            found = self._posteriors[keys] = self._posterior(keys)
        return found

    def _posterior(self, keys: tuple[str, ...]) -> Posterior:
        root = self.counts.get(ROOT, Counts())
        paid = root.paid_treated + root.paid_held_out
        pooled = (root.churned_treated + root.churned_held_out) / paid if paid else 0.0
        prior = _Prior(m=1.0, anyway=0.0, churn_treated=pooled, churn_held_out=pooled)
        chain = [self.counts.get(key, Counts()) for key in keys]
        n, deepest = 0, ROOT
        for i, c in enumerate(chain):
            if c.treated:
                n, deepest = c.treated, keys[i]
            if i + 1 < len(chain):
                prior = self._update(prior, c - chain[i + 1])
        last = self._update(prior, chain[-1])
        shape = self.strength * prior.m + chain[-1].conversions
        rate = self.strength + chain[-1].expected
        push = last.churn_treated - last.churn_held_out
        return Posterior(shape, rate, last.anyway, push, n, deepest)

    def _update(self, prior: _Prior, c: Counts) -> _Prior:
        s, k = self.strength, self.churn_strength
        return _Prior(
            m=(s * prior.m + c.conversions) / (s + c.expected),
            anyway=(s * prior.anyway + c.held_out_conversions) / (s + c.held_out_expected),
            churn_treated=(k * prior.churn_treated + c.churned_treated) / (k + c.paid_treated),
            churn_held_out=(k * prior.churn_held_out + c.churned_held_out) / (k + c.paid_held_out),
        )

    def estimate(
        self,
        prior: float,
        kind: str,
        channel: str,
        placement: str,
        playbook: str,
        *,
        dearer: bool = False,
        draw: float | None = None,
        features: Mapping[str, float] | None = None,
    ) -> Estimate:
        """The option's learned numbers for a decision whose heuristic P(accept) is `prior`; with
        `draw` in (0, 1), the multiplier is that quantile of its posterior (Thompson sampling);
        with `features` (`account_features`), the per-account models' multipliers apply."""
        post = self.posterior(kind, channel, placement, playbook, dearer=dearer)
        m = post.multiplier if draw is None else post.quantile(draw)
        m_account = a_account = 1.0
        if features is not None:
            if self.treated_model is not None:
                m_account = self.treated_model.multiplier(features)
            if self.held_out_model is not None:
                a_account = self.held_out_model.multiplier(features)
        return Estimate(
            p_accept=min(prior * m * m_account, P_MAX),
            anyway=min(prior * post.anyway * a_account, P_MAX),
            churn_push=0.0 if kind == "save" else post.churn_push,
            source="model",
            version=self.version,
            n=post.n,
            group=post.group,
            explored=draw is not None,
            prior=prior,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "churn_strength": self.churn_strength,
            "counts": {k: asdict(c) for k, c in sorted(self.counts.items())},
            "treated_model": None if self.treated_model is None else asdict(self.treated_model),
            "held_out_model": None if self.held_out_model is None else asdict(self.held_out_model),
        }

    @classmethod
    def from_json(
        cls,
        data: Mapping[str, Any],
        *,
        version: int | None = None,
        fitted_at: datetime | None = None,
    ) -> Answers:
        return cls(
            counts={k: Counts(**v) for k, v in data["counts"].items()},
            strength=float(data["strength"]),
            churn_strength=float(data["churn_strength"]),
            version=version,
            fitted_at=fitted_at,
            treated_model=Linear.from_json(data.get("treated_model")),
            held_out_model=Linear.from_json(data.get("held_out_model")),
        )


#: The account's numbers the per-account models read (`account_features`).
FEATURES = (
    "log_mrr",
    "log_tenure_days",
    "active_days_share",
    "log_active_users",
    "activity_trend",
    "log_employees",
    "score",
    "log_price_share",
    "utilisation",
    "log_limit_hits",
    "recent_contacts",
    "detractor",
    "log_reached_180d",
    "log_dismissed_180d",
    "clicked_180d",
)
#: How far back an account's own answers count as features.
ANSWER_DAYS = 180
#: The most a per-account model moves its group's estimate, either way (a factor of e^3).
MAX_LOG_MULTIPLIER = 3.0


def account_features(o: Opportunity, s: AccountSignals, history: History) -> dict[str, float]:
    """The `FEATURES` of an option for an account at its signals' instant, each a plain number:
    MRR, tenure, active days in 30 (a share), active users, the 30-day activity trend (log ratio),
    employees, the opportunity's score, its MRR delta over the account's MRR, the highest
    utilisation of a limited metric (at most 2), limit hits in 30 days, contacts that reached the
    account in 28 days, an NPS detractor flag, and the account's own answers in `ANSWER_DAYS`:
    contacts that reached it, dismissals, and whether it clicked any. Logs are log(1 + x)."""
    at = s.as_of
    recent_contacts = len(history.reached_since(at - timedelta(days=28), at))
    since = at - timedelta(days=ANSWER_DAYS)
    reached = len(history.reached_since(since, at))
    answers = [r for r in history.responses if since <= r.at < at]
    dismissed = sum(1 for r in answers if r.response == "dismissed")
    clicked = any(r.response in ("clicked", "accepted") for r in answers)
    e = s.engagement
    mrr = float(s.mrr.amount)
    uses = [u.utilisation for u in s.metrics.values() if u.utilisation is not None]
    hits = sum(u.limit_reached_30d for u in s.metrics.values())
    return {
        "log_mrr": math.log1p(max(mrr, 0.0)),
        "log_tenure_days": math.log1p(max(s.tenure_days, 0)),
        "active_days_share": min(e.active_days_30d / 30, 1.0),
        "log_active_users": math.log1p(e.active_users_30d),
        "activity_trend": math.log((e.events_30d + 1) / (e.events_prev_30d + 1)),
        "log_employees": math.log1p(s.employees or 0),
        "score": o.score,
        "log_price_share": math.log1p(
            max(float(o.expected_mrr_delta_base.amount), 0.0) / max(mrr, 1.0)
        ),
        "utilisation": min(max(uses, default=0.0), 2.0),
        "log_limit_hits": math.log1p(hits),
        "recent_contacts": float(recent_contacts),
        "detractor": 1.0 if s.risk.detractor else 0.0,
        "log_reached_180d": math.log1p(reached),
        "log_dismissed_180d": math.log1p(dismissed),
        "clicked_180d": 1.0 if clicked else 0.0,
    }


@dataclass(frozen=True)
class Linear:
    """A per-account multiplier exp(intercept + sum of coefficient x (feature - mean) / scale), at most
    e^`MAX_LOG_MULTIPLIER` either way; a feature the account lacks counts as its mean."""

    coefficients: Mapping[str, float]
    means: Mapping[str, float]
    scales: Mapping[str, float]
    intercept: float = 0.0

    def multiplier(self, features: Mapping[str, float]) -> float:
        z = self.intercept + sum(
            c * (features.get(k, self.means[k]) - self.means[k]) / self.scales[k]
            for k, c in self.coefficients.items()
        )
        return math.exp(min(max(z, -MAX_LOG_MULTIPLIER), MAX_LOG_MULTIPLIER))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Linear | None:
        if not data:
            return None
        return cls(
            coefficients={k: float(v) for k, v in data["coefficients"].items()},
            means={k: float(v) for k, v in data["means"].items()},
            scales={k: float(v) for k, v in data["scales"].items()},
            intercept=float(data.get("intercept", 0.0)),
        )


@dataclass(frozen=True)
class _Prior:
    m: float
    anyway: float
    churn_treated: float
    churn_held_out: float


@dataclass(frozen=True)
class Posterior:
    """The calibration multiplier's Gamma(shape, rate) posterior, the multiplier of the prior that
    gives the chance of buying anyway, the churn push, and the treated decisions `n` of the deepest
    group with any (`group`)."""

    shape: float
    rate: float
    anyway: float
    churn_push: float
    n: int
    group: str

    @property
    def multiplier(self) -> float:
        return self.shape / self.rate

    def quantile(self, u: float) -> float:
        """The multiplier's `u` quantile (the regularised incomplete gamma function's inverse)."""
        return float(special.gammaincinv(self.shape, min(max(u, 1e-12), 1 - 1e-12))) / self.rate
