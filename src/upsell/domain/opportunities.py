"""Opportunities: every offer worth considering for one account, with its evidence and its gates.

`find_opportunities` turns one account's signals (signals.py) into candidates of four kinds — an
upsell to a higher plan, an add-on, a cross-sell of a complementary product, a save offer for an
account that may shrink or leave — each with the account's own numbers as reasons (S6), a score for
the strength of that evidence, the MRR it would add, and the gates that disqualify it (S5). The rules
are those of domain.md S3, S4, S5, S8, S9, S11, S12 and S13; docs/opportunities.md states each one
with its numbers, and `Policy` holds every threshold.

Money follows metrics.md's MRR rules: an item's MRR is ``unit_price x quantity / months_in_interval``,
trialing items count 0, and the delta of an offer is the account's MRR with the offer taken minus its
MRR now, in the account's currency at the catalog's price for that currency (price book, otherwise
converted) and the account's billing interval, then converted to the catalog's base currency.

Scores combine independent pieces of evidence as ``1 - prod(1 - strength)``: each piece alone gives
its own strength, and more evidence only raises the score, never past 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

from upsell.domain.calendar import iso
from upsell.domain.catalog import AddOn, Catalog, Plan, Product, UsagePricedItem
from upsell.domain.money import MONTHS_IN_INTERVAL, Interval, Money, format_money
from upsell.domain.offers import Kind
from upsell.domain.signals import AccountSignals, FeatureUse, MetricUsage, Population
from upsell.domain.strategy import Strategy, strategy_for
from upsell.domain.subscriptions import SubscriptionItem
from upsell.errors import Problem

Gate = Literal[
    "before_activation",
    "too_new",
    "churn_risk",
    "cannot_afford",
    "price_anchor",
    "not_on_required_plan",
    "already_has_item",
    "sales_assisted",
]
GATES: tuple[Gate, ...] = get_args(Gate)
Route = Literal["self_serve", "csm"]
ROUTES: tuple[Route, ...] = get_args(Route)
#: The codes of `Reason`s the rules give (docs/opportunities.md says what each means).
REASON_CODES: tuple[str, ...] = (
    "near_limit",
    "limit_reached",
    "projected_need",
    "blocked_feature",
    "trial_feature",
    "break_even",
    "upgrade_pattern",
    "growing_usage",
    "add_on_cheaper",
    "goal_match",
    "co_adoption",
    "fits_signal",
    "cancel_requested",
    "downgrade_requested",
    "churn_risk",
    "feature_lost",
    "over_limit",
    "value_received",
    "fits_usage",
)

#: Policy keys that are shares or probabilities: 0..1 inclusive.
_SHARE_KEYS = frozenset(
    {
        "near_limit_utilisation",
        "price_anchor_share",
        "churn_decline_ratio",
        "min_support",
        "min_confidence",
    }
)
#: Policy keys that count something that must happen at least once.
_AT_LEAST_ONE_KEYS = frozenset(
    {"min_blocked_attempts_30d", "min_trial_uses", "churn_min_signals", "churn_open_tickets"}
)


@dataclass(frozen=True)
class Policy:
    """Every threshold of the opportunity rules, flat so that each maps to one key of config.yaml.

    Defaults (docs/opportunities.md explains each rule that uses them):

    - ``min_tenure_days = 14``: gate ``too_new`` below this many days since signup (S5).
    - ``require_activation = True``: gate ``before_activation`` until the 'aha moment' (S5).
    - ``near_limit_utilisation = 0.8``: a limit binds soon at this share used (S9).
    - ``near_limit_days = 30``: ... or when the pace reaches it within this many days.
    - ``projection_days = 60``: a gauge's need is projected this far ahead (value + slope x days);
      a higher tier is offered when the next one would not cover it.
    - ``min_blocked_attempts_30d = 2``: blocked-feature attempts in 30 days that show a need (S8).
    - ``min_trial_uses = 1``: uses of a feature during a trial that count as evidence (S4).
    - ``price_anchor_share = 0.30``: gate ``price_anchor`` when a cross-sell, or an add-on sold
      for a feature, costs more a month than this share of the account's MRR (S12).
    - ``max_payment_failures_30d = 0``: gate ``cannot_afford`` above this many (S5).
    - ``min_employees = 2`` and ``small_company_max_delta = 50`` (base currency a month): gate
      ``cannot_afford`` when a company with fewer employees is asked for more than that.
    - ``csm_min_employees = 50``: a sales-assisted plan goes to accounts this large through a
      customer-success manager (route ``csm``); smaller ones are gated ``sales_assisted``.
    - ``churn_min_signals = 2``: how many churn signals make an account at risk, among: NPS
      detractor, payment failures above the maximum, activity below ``churn_decline_ratio = 0.5``
      of the previous 30 days, at least ``churn_open_tickets = 2`` open support tickets.
    - ``min_support = 0.01``, ``min_confidence = 0.2``, ``min_lift = 1.2``,
      ``min_co_adopters = 5``: a co-adoption rule must pass all four to count ("customers like
      you also bought"); ``min_lift`` and ``min_pattern_upgrades = 5`` do the same for features
      that preceded upgrades.
    """

    min_tenure_days: int = 14
    require_activation: bool = True
    near_limit_utilisation: float = 0.8
    near_limit_days: int = 30
    projection_days: int = 60
    min_blocked_attempts_30d: int = 2
    min_trial_uses: int = 1
    price_anchor_share: Decimal = Decimal("0.30")
    max_payment_failures_30d: int = 0
    min_employees: int = 2
    small_company_max_delta: Decimal = Decimal("50")
    csm_min_employees: int = 50
    churn_min_signals: int = 2
    churn_decline_ratio: float = 0.5
    churn_open_tickets: int = 2
    min_support: float = 0.01
    min_confidence: float = 0.2
    min_lift: float = 1.2
    min_co_adopters: int = 5
    min_pattern_upgrades: int = 5

    def check(self) -> list[Problem]:
        """Every value out of its range, keyed by the field's name (config.yaml's key)."""
        problems: list[Problem] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if f.name in _SHARE_KEYS:
                if not 0 <= value <= 1:
                    problems.append(Problem(f"must be between 0 and 1, got {value}", f.name))
            elif f.name in _AT_LEAST_ONE_KEYS:
                if value < 1:
                    problems.append(Problem(f"must be at least 1, got {value}", f.name))
            elif not value >= 0:
                problems.append(Problem(f"must not be negative, got {value}", f.name))
        return problems


@dataclass(frozen=True)
class Reason:
    """One piece of evidence in plain English, with the numbers it quotes as `values`."""

    code: str
    text: str
    metric: str | None = None
    feature: str | None = None
    values: Mapping[str, int | float | str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """data-contract.md's reason: ``{"code", "metric"/"feature" when set, **values, "text"}``."""
        out: dict[str, object] = {"code": self.code}
        if self.metric is not None:
            out["metric"] = self.metric
        if self.feature is not None:
            out["feature"] = self.feature
        out.update({k: v for k, v in self.values.items() if k not in ("code", "text")})
        out["text"] = self.text
        return out


@dataclass(frozen=True)
class Opportunity:
    """One candidate offer for one account, qualified or not.

    `offer_id` names the move: ``upsell:basic->pro`` (``upsell:pro`` for an account without a
    plan), ``add_on:extra_seats_5``, ``cross_sell:leadbooster``, ``save:pro`` (keep the plan) and
    ``save:pro->basic`` (move to a lower plan instead of leaving). `expected_mrr_delta` is in the
    account's currency, `expected_mrr_delta_base` in the catalog's; for a save offer it is the MRR
    kept compared with what the account asked for (or with cancelling). `score` in [0, 1] is the
    strength of the evidence; `weight` the strategy's preference for this kind for this account.
    """

    account_id: str
    as_of: datetime
    kind: Kind
    offer_id: str
    item_id: str
    from_item_id: str | None
    expected_mrr_delta: Money
    expected_mrr_delta_base: Money
    score: float
    reasons: tuple[Reason, ...]
    gates: tuple[Gate, ...] = ()
    route: Route = "self_serve"
    weight: float = 1.0

    @property
    def qualified(self) -> bool:
        return not self.gates

    @property
    def expected_value(self) -> float:
        """Score x the MRR delta in the base currency: what the offer is worth, for ranking."""
        return self.score * float(self.expected_mrr_delta_base.amount)

    @property
    def priority(self) -> float:
        """Expected value x the strategy's weight: the ranking key (S3)."""
        return self.expected_value * self.weight

    @property
    def sentence(self) -> str:
        return "; ".join(r.text for r in self.reasons)

    def to_json(self) -> dict[str, object]:
        """data-contract.md's opportunities line, plus `route`."""
        return {
            "account_id": self.account_id,
            "as_of": iso(self.as_of),
            "kind": self.kind,
            "offer_id": self.offer_id,
            "item_id": self.item_id,
            "from_item_id": self.from_item_id,
            "expected_mrr_delta": self.expected_mrr_delta.as_string(),
            "currency": self.expected_mrr_delta.currency,
            "score": round(self.score, 4),
            "reasons": [r.to_json() for r in self.reasons],
            "qualified": self.qualified,
            "gates": list(self.gates),
            "route": self.route,
        }


def find_opportunities(
    signals: AccountSignals,
    catalog: Catalog,
    *,
    policy: Policy = Policy(),
    population: Population = Population(),  # noqa: B008 - frozen: a shared default is safe
    strategy: Strategy | None = None,
) -> list[Opportunity]:
    """Every candidate for this account, qualified first, then by priority, then by offer_id.

    `strategy` defaults to the one registered for `catalog.business_model`; kinds it does not
    consider for this account are left out (they are not gated: a strategy is not a
    qualification).
    """
    chosen = strategy if strategy is not None else strategy_for(catalog.business_model)
    account = _Account(signals, catalog, policy, population)
    drafts = [*_upsells(account), *_add_ons(account), *_cross_sells(account), *_saves(account)]
    found = [
        account.finish(d, chosen) for d in drafts if chosen.allows(d.kind, paying=account.paying)
    ]
    found.sort(key=lambda o: (not o.qualified, -o.priority, o.offer_id))
    return found


# -- the account, as the rules see it -------------------------------------------------------------


@dataclass
class _Draft:
    kind: Kind
    offer_id: str
    item_id: str
    from_item_id: str | None
    delta: Money
    score: float
    reasons: list[Reason]
    gates: set[Gate] = field(default_factory=set)
    route: Route = "self_serve"


@dataclass(frozen=True)
class _Evidence:
    reason: Reason
    strength: float


@dataclass(frozen=True)
class _LimitNeed:
    """A limit that binds or will bind soon, and how much of the metric the account will need."""

    usage: MetricUsage
    limit: float
    need: float
    strength: float
    reason: Reason


@dataclass(frozen=True)
class _Need:
    """Evidence for a plan change: how strong it is, which plans answer it, what it says."""

    strength: float
    fits: Callable[[Plan], bool]
    reasons: Callable[[Plan], list[Reason]]


class _Account:
    """One account's signals with what every rule derives from them, computed once."""

    def __init__(
        self, s: AccountSignals, catalog: Catalog, policy: Policy, population: Population
    ) -> None:
        self.s, self.catalog, self.policy, self.population = s, catalog, policy, population
        fx = catalog.fx
        self.currency = s.currency if s.currency and fx.knows(s.currency) else catalog.currency
        self.interval: Interval = "year" if s.plan_interval == "year" else "month"
        self.zero = Money.zero(self.currency)
        self.active = tuple(h for h in s.holdings if h.status != "trialing")
        self.held = frozenset(h.item_id for h in self.active)
        self.plan = self._plan()
        self.owned = self.held | ({self.plan.id} if self.plan else set())
        plan_rows = [h for h in self.active if self.plan and h.item_id == self.plan.id]
        self.plan_quantity = plan_rows[0].quantity if plan_rows else 1
        listed = self.zero
        if self.plan is not None and not plan_rows:  # known from plan_id alone: its list price
            listed = self.list_mrr(self.plan.id) or self.zero
        self.plan_mrr = self._sum(h.mrr(fx, self.currency) for h in plan_rows) + listed
        self.mrr = self._sum(h.mrr(fx, self.currency) for h in self.active) + listed
        if not s.holdings and s.mrr.amount > 0:  # signals without their rows: trust their MRR
            self.mrr = fx.convert(s.mrr, self.currency)
        self.features = self._features()
        self.paying = self.mrr.amount > 0 or s.paid_before
        self.large = s.employees is not None and s.employees >= policy.csm_min_employees
        self.tiny = s.employees is not None and s.employees < policy.min_employees
        self.risk_signals = self._risk_signals()
        self.downgrade_to = self._downgrade_to()
        self.at_risk = (
            s.risk.cancel_requested
            or self.downgrade_to is not None
            or len(self.risk_signals) >= policy.churn_min_signals
        )
        self.goals = frozenset(
            goal
            for p in catalog.products
            if any(sig in s.signals for sig in p.fits_signals)
            for goal in p.goals
        )
        self.limit_needs = self._limit_needs()
        tier = self.plan.tier if self.plan is not None else -1
        #: The paid plans above the account's, lowest first: what an upsell can offer.
        self.higher = [
            p
            for p in catalog.plans
            if p.tier > tier and (price := self.list_mrr(p.id)) is not None and price.amount > 0
        ]

    # -- holdings and money ------------------------------------------------------------------

    def _plan(self) -> Plan | None:
        """The plan the account pays for (or holds for free).

        The engine names the highest plan held, a trialing one included; during a trial of a
        higher plan that is the trial, and the plan paid for is the highest one held that is not
        trialing (None when the trial is the account's first plan).
        """
        s, catalog = self.s, self.catalog
        named = catalog.plan(s.plan_id) if s.plan_id is not None else None
        if named is not None and not s.trialing:
            return named
        return catalog.highest_plan(h.item_id for h in self.active)

    def _features(self) -> frozenset[str]:
        """Features the account has now: its plan's and those of the items it pays for."""
        out = set(self.plan.features if self.plan else ())
        for item_id in self.held:
            item = self.catalog.item(item_id)
            if isinstance(item, AddOn | Product):
                out |= item.features
        return frozenset(out)

    def _sum(self, amounts: Iterable[Money]) -> Money:
        total = self.zero
        for m in amounts:
            total = total + m
        return total

    def list_mrr(self, item_id: str, quantity: int = 1) -> Money | None:
        """The catalog's monthly price of `item_id` for this account: in its currency, for its
        billing interval. None without a price."""
        return self.catalog.monthly_price(item_id, self.currency, self.interval, quantity)

    def to_base(self, money: Money) -> Money:
        return self.catalog.fx.to_base(money)

    def fmt(self, money: Money) -> str:
        return format_money(money, "en")

    def kept_add_ons(self, plan: Plan) -> list[tuple[AddOn, SubscriptionItem]]:
        """Held add-ons that still work with `plan` (an add-on needs one of its `requires`)."""
        rows = [
            (item, h)
            for h in self.active
            if isinstance(item := self.catalog.item(h.item_id), AddOn)
        ]
        have = {plan.id} | {a.id for a, _ in rows}
        return [(a, h) for a, h in rows if not a.requires or set(a.requires) & have]

    def mrr_with_plan(self, plan: Plan | None) -> Money:
        """The account's MRR if `plan` replaced its plan (None: it leaves, MRR 0).

        Add-ons that do not work with the new plan end; everything else is kept at what it is
        charged now; the new plan costs its list price for this account.
        """
        if plan is None:
            return self.zero
        kept = {id(h) for _, h in self.kept_add_ons(plan)}
        total = self.list_mrr(plan.id, self.plan_quantity) or self.zero
        for h in self.active:
            item = self.catalog.item(h.item_id)
            if isinstance(item, Plan) or (isinstance(item, AddOn) and id(h) not in kept):
                continue
            total = total + h.mrr(self.catalog.fx, self.currency)
        return total

    def limit_under(self, plan: Plan, metric: str) -> float | None:
        """`plan`'s limit on `metric` plus what the add-ons kept under it grant (None: unlimited)."""
        limit = plan.limit(metric)
        if limit is None:
            return None
        return float(limit) + sum(
            a.grants.get(metric, 0) * h.quantity for a, h in self.kept_add_ons(plan)
        )

    def features_under(self, plan: Plan | None) -> frozenset[str]:
        if plan is None:
            return frozenset()
        out = set(plan.features)
        for a, _ in self.kept_add_ons(plan):
            out |= a.features
        for item_id in self.held:
            item = self.catalog.item(item_id)
            if isinstance(item, Product):
                out |= item.features
        return frozenset(out)

    def anchored(self, monthly_price: Money) -> bool:
        """S12's price anchor: more a month than `price_anchor_share` of what the account pays.

        An account that pays nothing has no anchor (its first purchase is the freemium
        strategy's single premium feature, which the `cannot_afford` gate still checks).
        """
        mrr = self.to_base(self.mrr).amount
        if mrr <= 0:
            return False
        return self.to_base(monthly_price).amount > self.policy.price_anchor_share * mrr

    # -- risk ---------------------------------------------------------------------------------

    def _risk_signals(self) -> list[tuple[str, str, int]]:
        """The churn signals that hold, as (code, text, number)."""
        r, e, p = self.s.risk, self.s.engagement, self.policy
        out: list[tuple[str, str, int]] = []
        if r.detractor and r.nps_score is not None:
            out.append(("nps", f"NPS {r.nps_score}", r.nps_score))
        if r.payment_failures_30d > p.max_payment_failures_30d:
            n = r.payment_failures_30d
            out.append(("payment_failures_30d", f"{_plural(n, 'failed payment')} in 30 days", n))
        if e.events_prev_30d > 0 and e.events_30d < p.churn_decline_ratio * e.events_prev_30d:
            out.append(
                (
                    "events_30d",
                    f"activity fell from {_n(e.events_prev_30d)} to {_n(e.events_30d)} events",
                    e.events_30d,
                )
            )
        if r.open_tickets >= p.churn_open_tickets:
            n = r.open_tickets
            out.append(("open_tickets", f"{_plural(n, 'open support ticket')}", n))
        return out

    def _downgrade_to(self) -> Plan | str | None:
        """The lower plan asked for; the id itself when the catalog does not know it."""
        to = self.s.risk.downgrade_requested_to
        if to is None:
            return None
        target = self.catalog.plan(to)
        if target is None:
            return to
        if self.plan is not None and target.tier >= self.plan.tier:
            return None  # not a downgrade
        return target

    # -- gates and the finished candidate -----------------------------------------------------

    def finish(self, d: _Draft, strategy: Strategy) -> Opportunity:
        s, p = self.s, self.policy
        gates = set(d.gates)
        base_delta = self.to_base(d.delta)
        if d.kind != "save":
            exempt = strategy.skips_timing_gates(d.kind, paying=self.paying)
            wants_activation = p.require_activation or strategy.waits_for_activation(d.kind)
            has_rule = self.catalog.activation is not None
            if has_rule and wants_activation and not s.activated and not exempt:
                gates.add("before_activation")
            if s.tenure_days < p.min_tenure_days and not exempt:
                gates.add("too_new")
            if self.at_risk:
                gates.add("churn_risk")
            failures = s.risk.payment_failures_30d > p.max_payment_failures_30d
            if failures or (self.tiny and base_delta.amount > p.small_company_max_delta):
                gates.add("cannot_afford")
        return Opportunity(
            account_id=s.account_id,
            as_of=s.as_of,
            kind=d.kind,
            offer_id=d.offer_id,
            item_id=d.item_id,
            from_item_id=d.from_item_id,
            expected_mrr_delta=d.delta,
            expected_mrr_delta_base=base_delta,
            score=min(1.0, max(0.0, d.score)),
            reasons=tuple(d.reasons),
            gates=tuple(g for g in GATES if g in gates),
            route=d.route,
            weight=strategy.weight(d.kind, paying=self.paying, large=self.large),
        )

    # -- evidence shared by several kinds -----------------------------------------------------

    def _limit_needs(self) -> list[_LimitNeed]:
        """Limits that bind or will bind soon (S9): used >= near_limit_utilisation, the pace
        reaches the limit within near_limit_days, or the limit was hit in the last 30 days.

        The need is projected: a gauge's value + slope x projection_days; a counter's use in one
        window at the current pace (slope x window days, at least what it used so far). A limit
        that is reached needs at least one unit more.
        """
        p = self.policy
        out = []
        for metric in sorted(self.s.metrics):
            u = self.s.metrics[metric]
            if u.limit is None:
                continue
            util = u.utilisation
            soon_days = u.days_to_limit is not None and u.days_to_limit <= p.near_limit_days
            near = util is not None and util >= p.near_limit_utilisation
            hit = (u.reached and u.value > 0) or u.exceeded or u.limit_reached_30d > 0
            if not (near or soon_days or hit):
                continue
            slope = max(u.slope_per_day or 0.0, 0.0)
            if u.kind == "counter":
                need = max(u.value, slope * self._window_days(metric))
            else:
                need = u.value + slope * p.projection_days
            if hit:
                need = max(need, u.limit + 1)
            out.append(
                _LimitNeed(u, float(u.limit), need, _limit_strength(u, p), _limit_reason(u, p))
            )
        return out

    def _window_days(self, metric: str) -> int:
        m = self.catalog.metrics.get(metric)
        if m is not None and isinstance(m.window, int):
            return m.window
        return 365 if self.interval == "year" else 30

    def wanted(self, names: Iterable[str]) -> list[tuple[FeatureUse, str]]:
        """Features among `names` the account lacks and wants, as (use, "blocked" | "trial")."""
        p = self.policy
        out: list[tuple[FeatureUse, str]] = []
        for name in sorted(set(names) - self.features):
            f = self.s.features.get(name)
            if f is None:
                continue
            if f.blocked_30d >= p.min_blocked_attempts_30d:
                out.append((f, "blocked"))
            elif f.used_in_trial >= p.min_trial_uses:
                out.append((f, "trial"))
        return out

    def feature_evidence(self, f: FeatureUse, how: str, where: str) -> _Evidence:
        """A wanted feature as evidence; `where` says what offers it ("it is in Pro")."""
        if how == "blocked":
            n = f.blocked_30d
            return _Evidence(
                Reason(
                    "blocked_feature",
                    f"tried {feature_name(f.feature)} {_times(n)} this month — {where}",
                    feature=f.feature,
                    values={"attempts_30d": n, "attempts_7d": f.blocked_7d},
                ),
                min(1.0, 0.3 + 0.1 * n),
            )
        n = f.used_in_trial
        lacks = f"; {self.plan.name} does not include it" if self.plan is not None else ""
        return _Evidence(
            Reason(
                "trial_feature",
                f"used {feature_name(f.feature)} {_times(n)} during the trial — {where}{lacks}",
                feature=f.feature,
                values={"uses_in_trial": n},
            ),
            min(1.0, 0.4 + 0.05 * n),
        )

    def co_adoption(self, item_id: str) -> list[_Evidence]:
        """'Customers like you also bought' (S12): rules from items the account holds."""
        p = self.policy
        out = []
        for r in self.population.co_adoption:
            if r.consequent != item_id or r.antecedent not in self.owned:
                continue
            if (
                r.support < p.min_support
                or r.confidence < p.min_confidence
                or r.lift < p.min_lift
                or r.accounts < p.min_co_adopters
            ):
                continue
            text = (
                f"{round(r.confidence * 100)}% of customers with {self.name(r.antecedent)} also "
                f"have {self.name(item_id)} — {r.lift:.1f} times the usual rate "
                f"({_n(r.accounts)} accounts)"
            )
            values: dict[str, int | float | str] = {
                "antecedent": r.antecedent,
                "confidence": round(r.confidence, 4),
                "lift": round(r.lift, 2),
                "support": round(r.support, 4),
                "accounts": r.accounts,
            }
            out.append(
                _Evidence(Reason("co_adoption", text, values=values), min(0.9, r.confidence))
            )
        out.sort(key=lambda e: (-e.strength, str(e.reason.values["antecedent"])))
        return out

    def name(self, item_id: str) -> str:
        item = self.catalog.item(item_id)
        return item.name if item is not None else item_id


# -- upsell ---------------------------------------------------------------------------------------


def _upsells(a: _Account) -> list[_Draft]:
    """S4, S8, S9, S13: a higher plan for each need, and the lowest plan that answers them all."""
    higher = a.higher
    needs = [
        *(n for ln in a.limit_needs if (n := _limit_need(a, ln)) is not None),
        *_feature_upsell_needs(a, higher),
        *_break_even_needs(a, higher),
    ]
    if not needs:
        return []
    targets: list[Plan] = []
    for group in [[n] for n in needs] + [needs]:
        target = next((p for p in higher if all(n.fits(p) for n in group)), None)
        if target is not None and all(t.id != target.id for t in targets):
            targets.append(target)
    boosters = _upsell_boosters(a)
    drafts = []
    for target in sorted(targets, key=lambda p: p.tier):
        met = [n for n in needs if n.fits(target)]
        reasons = [r for n in met for r in n.reasons(target)] + [b.reason for b in boosters]
        strengths = [n.strength for n in met] + [b.strength for b in boosters]
        from_id = a.plan.id if a.plan is not None else None
        draft = _Draft(
            kind="upsell",
            offer_id=f"upsell:{from_id}->{target.id}" if from_id else f"upsell:{target.id}",
            item_id=target.id,
            from_item_id=from_id,
            delta=a.mrr_with_plan(target) - a.mrr,
            score=_combine(strengths),
            reasons=reasons,
        )
        if target.sales_assisted:
            if a.large:
                draft.route = "csm"
            else:
                draft.gates.add("sales_assisted")
        drafts.append(draft)
    return drafts


def _limit_need(a: _Account, ln: _LimitNeed) -> _Need | None:
    """A binding limit asks for the lowest plan whose limit covers the projected need; when no
    plan covers it, for the one with the most room. Plans that do not raise the limit never do
    (None when no plan above raises it)."""
    metric, higher = ln.usage.metric, a.higher
    if not higher:
        return None
    limits = [a.limit_under(p, metric) for p in higher]
    best = None if any(lim is None for lim in limits) else max(lim or 0.0 for lim in limits)
    if best is not None and best <= ln.limit:
        return None
    required = ln.need if best is None else min(ln.need, best)

    def fits(plan: Plan) -> bool:
        limit = a.limit_under(plan, metric)
        return limit is None or (limit >= required and limit > ln.limit)

    def reasons(plan: Plan) -> list[Reason]:
        out = [ln.reason]
        nxt = higher[0]
        if nxt.id != plan.id and not fits(nxt):
            nxt_limit = a.limit_under(nxt, metric)
            target_limit = a.limit_under(plan, metric)
            room = "has no limit" if target_limit is None else f"allows {_n(target_limit)}"
            when = (
                f"within {a.policy.projection_days} days"
                if ln.usage.kind == "gauge"
                else "per period"
            )
            values: dict[str, int | float | str] = {
                "needed": _v(ln.need),
                "days": a.policy.projection_days,
                "next_plan": nxt.id,
                "next_limit": _v(nxt_limit or 0.0),
            }
            out.append(
                Reason(
                    "projected_need",
                    f"at this pace you will need about {_n(ln.need)} {metric_name(metric)} "
                    f"{when}; {nxt.name} allows {_n(nxt_limit or 0.0)}, {plan.name} {room}",
                    metric=metric,
                    values=values,
                )
            )
        return out

    return _Need(ln.strength, fits, reasons)


def _feature_upsell_needs(a: _Account, higher: Sequence[Plan]) -> list[_Need]:
    """Blocked features (S8) and features used in a trial (S4) that a higher plan includes."""
    in_plans = {f for p in higher for f in p.features}
    out = []
    for f, how in a.wanted(in_plans):

        def fits(plan: Plan, feature: str = f.feature) -> bool:
            return feature in plan.features

        def reasons(plan: Plan, f: FeatureUse = f, how: str = how) -> list[Reason]:
            return [a.feature_evidence(f, how, f"it is in {plan.name}").reason]

        out.append(_Need(a.feature_evidence(f, how, "").strength, fits, reasons))
    return out


def _break_even_needs(a: _Account, higher: Sequence[Plan]) -> list[_Need]:
    """S13: pay-as-you-go spend that makes a plan cheaper than the bill.

    The bill is the plan's MRR plus the spend in the current or the last billing period
    (whichever is higher), a month's worth. Plans include a metered metric only when the catalog
    limits it on some plan: each plan then includes it up to its limit (no limit on that plan: all
    of it, the catalog's rule) and the rest stays pay-as-you-go. A metric no plan limits (in-game
    currency, say) is sold only by the unit, and spending on it is no reason to change plan.
    """
    out = []
    for spend in a.s.usage:
        item = a.catalog.item(spend.item_id)
        if not isinstance(item, UsagePricedItem):
            continue
        if not any(spend.metric in p.limits for p in a.catalog.plans):
            continue
        last = spend.units_last >= spend.units_current
        units = spend.units_last if last else spend.units_current
        if not (units > 0 and math.isfinite(units)):
            continue
        be = _BreakEven(a, item, spend.metric, units, last)
        saving = [be.bill - be.after(p) for p in higher if be.fits(p)]
        if not saving or be.bill.amount <= 0:
            continue
        share = float(max(s.amount for s in saving) / be.bill.amount)
        out.append(_Need(min(1.0, 0.5 + share), be.fits, be.reasons))
    return out


class _BreakEven:
    """One usage-priced item's spend against the plans that would include it."""

    def __init__(
        self, a: _Account, item: UsagePricedItem, metric: str, units: float, last: bool
    ) -> None:
        self.a, self.item, self.metric, self.units, self.last = a, item, metric, units, last
        self.months = MONTHS_IN_INTERVAL[a.interval]
        self.unit = a.catalog.fx.convert(item.unit_price, a.currency)
        self.usage = self.unit * _dec(units) / self.months
        self.bill = a.plan_mrr + self.usage

    def price(self, plan: Plan) -> Money:
        return self.a.list_mrr(plan.id, self.a.plan_quantity) or self.a.zero

    def after(self, plan: Plan) -> Money:
        """The monthly bill on `plan`: its price plus the units above its limit."""
        limit = self.a.limit_under(plan, self.metric)
        over = 0.0 if limit is None else max(0.0, self.units - limit)
        return self.price(plan) + self.unit * _dec(over) / self.months

    def fits(self, plan: Plan) -> bool:
        return self.after(plan) < self.bill

    def reasons(self, plan: Plan) -> list[Reason]:
        a, units, bill = self.a, self.units, self.bill
        price = self.price(plan)
        limit = a.limit_under(plan, self.metric)
        if a.interval == "month":
            lead = (
                f"your bill was {a.fmt(bill)} last month"
                if self.last
                else f"your bill is {a.fmt(bill)} this month so far"
            )
        elif self.last:
            lead = f"your bill came to {a.fmt(bill)} a month over the last billing year"
        else:
            lead = f"your bill comes to {a.fmt(bill)} a month so far this billing year"
        what = f"{_n(units)} {'unit' if units == 1 else 'units'} of {self.item.name}"
        if a.plan_mrr.amount > 0 and a.plan is not None:
            detail = f" ({a.fmt(a.plan_mrr)} for {a.plan.name} and {a.fmt(self.usage)} for {what})"
        else:
            detail = f" ({what} at {a.fmt(self.unit)})"
        covers = (
            "and includes them"
            if limit is None or limit >= units
            else f"and includes {_n(limit)} of them"
        )
        values: dict[str, int | float | str] = {
            "item_id": self.item.id,
            "units": _v(units),
            "period": "last" if self.last else "current",
            "bill": bill.as_string(),
            "usage_spend": self.usage.as_string(),
            "price": price.as_string(),
            "currency": a.currency,
        }
        text = f"{lead}{detail}; {plan.name} is {a.fmt(price)} a month {covers}"
        return [Reason("break_even", text, metric=self.metric, values=values)]


def _upsell_boosters(a: _Account) -> list[_Evidence]:
    """Evidence that raises an upsell's score but never makes one: features whose use preceded
    upgrades from this plan (S4's adoption patterns), and growing activity."""
    p, out = a.policy, []
    if a.plan is not None:
        for pat in sorted(a.population.upgrade_patterns, key=lambda x: (-x.lift, x.feature)):
            use = a.s.features.get(pat.feature)
            if (
                pat.from_plan != a.plan.id
                or pat.lift < p.min_lift
                or pat.upgrades < p.min_pattern_upgrades
                or use is None
                or use.used_30d <= 0
            ):
                continue
            text = (
                f"accounts on {a.plan.name} that use {feature_name(pat.feature)} upgrade "
                f"{pat.lift:.1f} times as often as the others ({_n(pat.upgrades)} upgrades); you "
                f"used it {_times(use.used_30d)} in 30 days"
            )
            values: dict[str, int | float | str] = {
                "lift": round(pat.lift, 2),
                "upgrades": pat.upgrades,
                "uses_30d": use.used_30d,
            }
            out.append(
                _Evidence(
                    Reason("upgrade_pattern", text, feature=pat.feature, values=values),
                    min(0.3, 0.1 * pat.lift),
                )
            )
    e = a.s.engagement
    if e.trend == "growing" and e.events_prev_30d > 0:
        text = f"activity grew from {_n(e.events_prev_30d)} to {_n(e.events_30d)} events in 30 days"
        values = {"events_30d": e.events_30d, "events_prev_30d": e.events_prev_30d}
        out.append(_Evidence(Reason("growing_usage", text, values=values), 0.1))
    return out


# -- add-ons --------------------------------------------------------------------------------------


def _add_ons(a: _Account) -> list[_Draft]:
    """Add-ons that lift a binding limit for less than the plan change would, that unlock a
    wanted feature, or that customers like this one bought (S2, S8, S12)."""
    drafts = []
    for add_on in a.catalog.add_ons:
        price = a.list_mrr(add_on.id)
        if price is None:
            continue
        evidence: list[_Evidence] = []
        quantity = 0
        for ln in a.limit_needs:
            found = _limit_add_on(a, add_on, price, ln)
            if found is not None:
                units, reasons_ = found
                quantity = max(quantity, units)
                evidence += [
                    _Evidence(r, ln.strength if i == 0 else 0.0) for i, r in enumerate(reasons_)
                ]
        for_limits = quantity > 0
        for f, how in a.wanted(add_on.features):
            evidence.append(a.feature_evidence(f, how, f"{add_on.name} unlocks it"))
        evidence += a.co_adoption(add_on.id)
        if not evidence:
            continue
        evidence += _goal_boosters(a, add_on.name, add_on.goals)
        draft = _Draft(
            kind="add_on",
            offer_id=f"add_on:{add_on.id}",
            item_id=add_on.id,
            from_item_id=None,
            delta=price * max(quantity, 1),
            score=_combine(e.strength for e in evidence),
            reasons=[e.reason for e in evidence],
        )
        if add_on.requires and not set(add_on.requires) & a.owned:
            draft.gates.add("not_on_required_plan")
        if not for_limits:
            if add_on.id in a.held:
                draft.gates.add("already_has_item")
            if a.anchored(draft.delta):
                draft.gates.add("price_anchor")
        if a.plan is not None and a.plan.sales_assisted and a.large:
            draft.route = "csm"
        drafts.append(draft)
    return drafts


def _limit_add_on(
    a: _Account, add_on: AddOn, price: Money, ln: _LimitNeed
) -> tuple[int, list[Reason]] | None:
    """(units, reasons) when `add_on` lifts this limit for less than the plan change would."""
    metric = ln.usage.metric
    grant = add_on.grants.get(metric, 0)
    if grant <= 0:
        return None
    units = max(1, math.ceil((ln.need - ln.limit) / grant))
    cost = price * units
    need = _limit_need(a, ln)
    plan = next((p for p in a.higher if need.fits(p)), None) if need is not None else None
    what = f"{_n(grant * units)} more {metric_name(metric)}"
    lead = f"{add_on.name} x {units}:" if units > 1 else f"{add_on.name}:"
    values: dict[str, int | float | str] = {
        "add_on_id": add_on.id,
        "quantity": units,
        "add_on_price": cost.as_string(),
        "currency": a.currency,
    }
    text = f"{lead} {a.fmt(cost)} a month for {what}"
    if plan is not None:
        change = a.mrr_with_plan(plan) - a.mrr
        if cost >= change:
            return None
        text += f"; moving to {plan.name} would cost {a.fmt(change)} more a month"
        values |= {"plan_id": plan.id, "plan_change": change.as_string()}
    return units, [ln.reason, Reason("add_on_cheaper", text, metric=metric, values=values)]


def _goal_boosters(a: _Account, name: str, goals: frozenset[str]) -> list[_Evidence]:
    """A goal the account's usage shows (a product's fits signal holds) that the item serves."""
    shared = sorted(goals & a.goals)
    if not shared:
        return []
    text = f"your usage shows you want to {_goals(shared)}; {name} serves that"
    return [_Evidence(Reason("goal_match", text, values={"goals": ", ".join(shared)}), 0.1)]


# -- cross-sell -----------------------------------------------------------------------------------


def _cross_sells(a: _Account) -> list[_Draft]:
    """Complementary products whose fits signals hold (S12: personalised by usage), that unlock
    a wanted feature, or that customers like this one bought."""
    drafts = []
    for product in a.catalog.products:
        price = a.list_mrr(product.id)
        if price is None:
            continue
        evidence: list[_Evidence] = []
        holding = [sig for sig in product.fits_signals if sig in a.s.signals]
        for i, sig in enumerate(holding):
            strength = 0.5 if i == 0 else 0.15
            evidence.append(_Evidence(_signal_reason(a, sig, product), strength))
        for f, how in a.wanted(product.features):
            evidence.append(a.feature_evidence(f, how, f"{product.name} unlocks it"))
        evidence += a.co_adoption(product.id)
        if not evidence:
            continue
        draft = _Draft(
            kind="cross_sell",
            offer_id=f"cross_sell:{product.id}",
            item_id=product.id,
            from_item_id=None,
            delta=price,
            score=min(0.9, _combine(e.strength for e in evidence)),
            reasons=[e.reason for e in evidence],
        )
        if product.id in a.held:
            draft.gates.add("already_has_item")
        if a.anchored(price):
            draft.gates.add("price_anchor")
        if a.plan is not None and a.plan.sales_assisted and a.large:
            draft.route = "csm"
        drafts.append(draft)
    return drafts


def _signal_reason(a: _Account, signal_id: str, product: Product) -> Reason:
    sig = a.catalog.signals.get(signal_id)
    serves = (
        f"{product.name} helps you {_goals(sorted(product.goals))}"
        if product.goals
        else (f"{product.name} is made for that")
    )
    if sig is None:
        return Reason(
            "fits_signal", f"your usage shows {signal_id}; {serves}", values={"signal": signal_id}
        )
    where = "".join(f" with {k} {v}" for k, v in sorted(sig.where.items()))
    text = (
        f"at least {_n(sig.at_least)} {sig.event} events{where} in the last "
        f"{sig.window_days} days — {serves}"
    )
    values: dict[str, int | float | str] = {
        "signal": signal_id,
        "at_least": sig.at_least,
        "window_days": sig.window_days,
    }
    return Reason("fits_signal", text, values=values)


# -- save -----------------------------------------------------------------------------------------


def _saves(a: _Account) -> list[_Draft]:
    """S5's retention mindset and S11's downgrade reminder, for a paying account at risk.

    ``save:<plan>`` asks it to keep its plan: the reasons are what it would lose (features used in
    the last 30 days that the plan it asked for lacks, usage above that plan's limits) and what it
    got; the delta is its MRR now minus its MRR after what it asked for (cancelling: 0).
    ``save:<plan>-><lower>`` offers the cheapest lower plan whose limits still cover its usage and
    that loses the fewest used features; the delta is that plan's MRR minus the MRR after what it
    asked for. A requested downgrade bounds the lower plans from below.
    """
    if not a.at_risk or a.plan is None or a.mrr.amount <= 0:
        return []
    plan, r = a.plan, a.s.risk
    alt: Plan | None = None
    if r.cancel_requested:
        strength = 0.9
        trigger = Reason("cancel_requested", "asked to cancel")
    elif a.downgrade_to is not None:
        strength = 0.8
        to = a.downgrade_to
        alt = to if isinstance(to, Plan) else None
        label = to.name if isinstance(to, Plan) else to
        to_id = to.id if isinstance(to, Plan) else to
        trigger = Reason(
            "downgrade_requested", f"asked to downgrade to {label}", values={"to_plan": to_id}
        )
    else:
        strength = min(0.9, 0.3 + 0.15 * len(a.risk_signals))
        trigger = Reason(
            "churn_risk",
            "at risk of leaving: " + "; ".join(text for _, text, _ in a.risk_signals),
            values={code: n for code, _, n in a.risk_signals},
        )
    alt_mrr = a.mrr_with_plan(alt)
    route: Route = "csm" if plan.sales_assisted else "self_serve"
    drafts = []

    lost = _lost_features(a, alt, "cancel" if alt is None else alt.name)
    over = _over_limits(a, alt) if alt is not None else []
    keep = a.mrr - alt_mrr
    if keep.amount > 0:
        lost_count = len(lost) + len(over)
        drafts.append(
            _Draft(
                kind="save",
                offer_id=f"save:{plan.id}",
                item_id=plan.id,
                from_item_id=plan.id,
                delta=keep,
                score=strength * (0.6 + 0.4 * min(1.0, lost_count / 3)),
                reasons=[trigger, *lost[:5], *over, *_value_received(a, plan)],
                route=route,
            )
        )

    floor = alt.tier if alt is not None else -1
    options = [
        p
        for p in a.catalog.plans
        if floor < p.tier < plan.tier and (m := a.list_mrr(p.id)) is not None and m.amount > 0
    ]
    covering = [p for p in options if not _over_limits(a, p)]
    if covering:
        lower = min(covering, key=lambda p: (len(_lost_features(a, p, p.name)), p.tier))
        kept = a.mrr_with_plan(lower) - alt_mrr
        if kept.amount > 0:
            lower_lost = _lost_features(a, lower, lower.name)
            drafts.append(
                _Draft(
                    kind="save",
                    offer_id=f"save:{plan.id}->{lower.id}",
                    item_id=lower.id,
                    from_item_id=plan.id,
                    delta=kept,
                    score=strength * (1 - 0.4 * min(1.0, len(lower_lost) / 3)),
                    reasons=[trigger, _fits_usage(a, lower), *lower_lost[:5]],
                    route=route,
                )
            )
    return drafts


def _lost_features(a: _Account, target: Plan | None, label: str) -> list[Reason]:
    """Features used in the last 30 days that the account has now and would not have on `target`
    (None: after cancelling), most used first."""
    keep = a.features_under(target)
    used = sorted(
        (f for f in a.s.features.values() if f.used_30d > 0 and f.feature in a.features),
        key=lambda f: (-f.used_30d, f.feature),
    )
    out = []
    for f in used:
        if f.feature in keep:
            continue
        then = "it ends if you cancel" if target is None else f"{label} does not include it"
        out.append(
            Reason(
                "feature_lost",
                f"you used {feature_name(f.feature)} {_times(f.used_30d)} in 30 days; {then}",
                feature=f.feature,
                values={"uses_30d": f.used_30d},
            )
        )
    return out


def _over_limits(a: _Account, target: Plan) -> list[Reason]:
    """Usage above `target`'s limits (with the add-ons kept under it)."""
    out = []
    for metric in sorted(a.s.metrics):
        u = a.s.metrics[metric]
        limit = a.limit_under(target, metric)
        if limit is not None and u.value > limit:
            out.append(
                Reason(
                    "over_limit",
                    f"you have {_n(u.value)} {metric_name(metric)}; {target.name} allows "
                    f"{_n(limit)}",
                    metric=metric,
                    values={"used": _v(u.value), "limit": _v(limit), "plan_id": target.id},
                )
            )
    return out


def _value_received(a: _Account, plan: Plan) -> list[Reason]:
    """S11: what the account got from its plan lately."""
    e = a.s.engagement
    if e.events_30d <= 0:
        return []
    users = f"{_plural(e.active_users_30d, 'active user')} and " if e.active_users_30d else ""
    text = f"{users}{_n(e.events_30d)} actions in {plan.name} in the last 30 days"
    values: dict[str, int | float | str] = {
        "active_users_30d": e.active_users_30d,
        "events_30d": e.events_30d,
        "tenure_days": a.s.tenure_days,
    }
    return [Reason("value_received", text, values=values)]


def _fits_usage(a: _Account, lower: Plan) -> Reason:
    price = a.list_mrr(lower.id, a.plan_quantity) or a.zero
    parts = []
    for metric in sorted(a.s.metrics):
        u = a.s.metrics[metric]
        limit = a.limit_under(lower, metric)
        if u.value > 0:
            room = "no limit" if limit is None else f"up to {_n(limit)}"
            parts.append(f"{_n(u.value)} {metric_name(metric)} ({room})")
    covers = "still covers your " + ", ".join(parts[:3]) if parts else "covers what you use"
    values: dict[str, int | float | str] = {
        "plan_id": lower.id,
        "price": price.as_string(),
        "currency": a.currency,
    }
    return Reason("fits_usage", f"{lower.name} at {a.fmt(price)} a month {covers}", values=values)


# -- small pieces ---------------------------------------------------------------------------------


def _limit_strength(u: MetricUsage, p: Policy) -> float:
    """How strongly a limit asks for more room.

    Hit in the last 30 days (or exceeded): 0.6, + 0.1 per hit up to 1.0. Reached by the pace
    within `near_limit_days`: 0.4 to 0.6 as the days left approach 0. Only a share used at or
    above `near_limit_utilisation` — up to a full limit with no hit, where the account uses all it
    has but shows no sign of wanting more: 0.3 to 0.45.
    """
    if u.exceeded or u.limit_reached_30d > 0:
        return min(1.0, 0.6 + 0.1 * min(u.limit_reached_30d, 4))
    s = 0.3
    util, thr = u.utilisation, p.near_limit_utilisation
    if util is not None and util >= thr:
        s = 0.3 + 0.15 * (_clamp((util - thr) / (1 - thr)) if thr < 1 else 1.0)
    if u.days_to_limit is not None and u.days_to_limit <= p.near_limit_days and not u.reached:
        days_left = u.days_to_limit / p.near_limit_days if p.near_limit_days > 0 else 0.0
        s = max(s, 0.4 + 0.2 * _clamp(1 - days_left))
    return s


def _limit_reason(u: MetricUsage, p: Policy) -> Reason:
    limit = u.limit or 0.0
    name = metric_name(u.metric)
    values: dict[str, int | float | str] = {"used": _v(u.value), "limit": _v(limit)}
    if u.value >= limit and (u.value > 0 or u.limit_reached_30d > 0):
        text = f"{_n(u.value)} of {_n(limit)} {name} used — the limit is reached"
        if u.limit_reached_30d > 0:
            text += f"; it was hit {_times(u.limit_reached_30d)} in the last 30 days"
            values["times_30d"] = u.limit_reached_30d
        return Reason("limit_reached", text, metric=u.metric, values=values)
    if u.limit_reached_30d > 0:
        values["times_30d"] = u.limit_reached_30d
        text = (
            f"the {name} limit of {_n(limit)} was hit {_times(u.limit_reached_30d)} in the last "
            f"30 days ({_n(u.value)} used now)"
        )
        return Reason("limit_reached", text, metric=u.metric, values=values)
    text = f"{_n(u.value)} of {_n(limit)} {name} used"
    if u.days_to_limit is not None and u.days_to_limit <= p.near_limit_days and not u.reached:
        days = max(1, math.ceil(u.days_to_limit))
        values["days_to_limit"] = days
        text += f"; at this pace the limit is reached in {_plural(days, 'day')}"
    elif u.utilisation is not None:
        text += f" ({round(u.utilisation * 100)}%)"
    return Reason("near_limit", text, metric=u.metric, values=values)


def _combine(strengths: Iterable[float]) -> float:
    """Independent evidence: 1 - prod(1 - s), each s clamped to [0, 1]."""
    miss = 1.0
    for s in strengths:
        miss *= 1.0 - _clamp(s)
    return _clamp(1.0 - miss)


def _clamp(x: float) -> float:
    return 0.0 if not x > 0 else min(1.0, x)


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _v(x: float) -> int | float:
    """A number for a reason's values: an int when whole."""
    if math.isfinite(x) and float(x).is_integer():
        return int(x)
    return round(float(x), 2)


def _n(x: float) -> str:
    """A number for a sentence: ``1,340``, ``2.5``."""
    v = _v(x)
    return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{_n(n)} times"


def _plural(n: int, noun: str) -> str:
    return f"{_n(n)} {noun}" + ("" if n == 1 else "s")


def _goals(goals: Sequence[str]) -> str:
    return " and ".join(g.replace("_", " ") for g in goals)


def feature_name(feature: str) -> str:
    """A feature id as people read it: ``private_boards`` -> ``Private boards``."""
    return feature.replace("_", " ").capitalize()


def metric_name(metric: str) -> str:
    """A metric id as people read it: ``api_calls`` -> ``api calls``."""
    return metric.replace("_", " ")
