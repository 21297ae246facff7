"""The account as the opportunity rules see it, and the evidence several rule families share.

`Account` derives once, from one account's signals, what every family needs: the plan it pays for,
its MRR, currency and billing interval, the features it has, its churn signals, the limits that
bind or will bind soon (`LimitNeed`) and the higher plans an upsell can offer; it prices what-ifs
(`mrr_with_plan`, `limit_under`, `features_under`). It gives the evidence shared by several kinds
of offer: features the account lacks and wants (`wanted`, `feature_evidence`), "customers like you
also bought" (`co_adoption`) and the higher plan a binding limit asks for (`limit_need`, used by
upsells and by add-ons to compare prices). `Account.finish` turns a family's `Draft` into an
`Opportunity` with the gates every kind shares.

`combine` is the score combination of the package's docstring: ``1 - prod(1 - strength)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from upsell.domain.catalog import AddOn, Catalog, Plan, Product
from upsell.domain.money import Interval, Money, format_money
from upsell.domain.offers import Kind
from upsell.domain.opportunities.candidates import GATES, Gate, Opportunity, Reason, Route
from upsell.domain.opportunities.policy import Policy
from upsell.domain.signals import AccountSignals, FeatureUse, MetricUsage, Population
from upsell.domain.strategy import Strategy
from upsell.domain.subscriptions import SubscriptionItem
from upsell.domain.wording import as_value, feature_name, metric_name, number, plural, times


@dataclass
class Draft:
    """A candidate as its rule family builds it; `Account.finish` adds the gates all kinds share."""

    kind: Kind
    offer_id: str
    item_id: str
    from_item_id: str | None
    delta: Money
    score: float
    reasons: list[Reason]
    gates: set[Gate] = field(default_factory=set)
    route: Route = "self_serve"
    #: The needs the offer answers (`Need.key`): a cheaper qualified offer that answers all of
    #: them is this one's `Opportunity.smaller` (find_opportunities).
    answers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Evidence:
    """One reason and its strength in [0, 1], for `combine`."""

    reason: Reason
    strength: float


@dataclass(frozen=True)
class LimitNeed:
    """A limit that binds or will bind soon, and how much of the metric the account will need."""

    usage: MetricUsage
    limit: float
    need: float
    strength: float
    reason: Reason


@dataclass(frozen=True)
class Need:
    """Evidence for a plan change: how strong it is, which plans answer it, what it says; `key`
    names the need itself (``limit:seats``, ``feature:sso``, ``break_even:assessments``), the same
    whichever offer answers it."""

    key: str
    strength: float
    fits: Callable[[Plan], bool]
    reasons: Callable[[Plan], list[Reason]]


class Account:
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
        self.trial = self._trial()
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
        self.large = policy.large(s.employees)
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

    def _trial(self) -> Plan | None:
        """The higher plan on trial, if any (the engine names it as the plan held)."""
        s = self.s
        on_trial = self.catalog.plan(s.plan_id) if s.trialing and s.plan_id is not None else None
        if on_trial is None or (self.plan is not None and on_trial.tier <= self.plan.tier):
            return None
        return on_trial

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
            out.append(("payment_failures_30d", f"{plural(n, 'failed payment')} in 30 days", n))
        if e.events_prev_30d > 0 and e.events_30d < p.churn_decline_ratio * e.events_prev_30d:
            out.append(
                (
                    "events_30d",
                    f"activity fell from {number(e.events_prev_30d)} to "
                    f"{number(e.events_30d)} events",
                    e.events_30d,
                )
            )
        if r.open_tickets >= p.churn_open_tickets:
            n = r.open_tickets
            out.append(("open_tickets", f"{plural(n, 'open support ticket')}", n))
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

    def finish(self, d: Draft, strategy: Strategy) -> Opportunity:
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

    def _limit_needs(self) -> list[LimitNeed]:
        """Limits that bind or will bind soon (S9): used >= near_limit_utilisation, the pace
        reaches the limit within near_limit_days, or the limit was hit in the last 30 days. A
        metric the account does not use and never ran into is no need, whatever its limit: a plan
        that includes none of it (a limit of 0) is "0 of 0" but asks for nothing.

        The need is projected: a gauge's value + slope x projection_days; a counter's use in one
        window at the current pace (slope x window days, at least what it used so far). A limit
        that is reached needs at least one unit more.
        """
        p = self.policy
        out = []
        for metric in sorted(self.s.metrics):
            u = self._after_trial(self.s.metrics[metric])
            if u.limit is None or (u.value <= 0 and u.limit_reached_30d <= 0):
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
            reason = _limit_reason(u, p, self.plan if self.trial is not None else None)
            out.append(LimitNeed(u, float(u.limit), need, _limit_strength(u, p), reason))
        return out

    def _after_trial(self, u: MetricUsage) -> MetricUsage:
        """During a trial of a higher plan, usage against the limit of the plan paid for, which the
        account keeps when the trial ends (none: no plan paid for, no limit to judge by). The
        signals' limit and hits are the trial's: its hits say nothing of the plan paid for."""
        if self.trial is None:
            return u
        limit = self.limit_under(self.plan, u.metric) if self.plan is not None else None
        if limit is None:
            return replace(u, limit=None, days_to_limit=None, limit_reached_30d=0)
        room, slope = limit - u.value, u.slope_per_day
        days = 0.0 if room <= 0 else (room / slope if slope is not None and slope > 0 else None)
        return replace(u, limit=limit, days_to_limit=days, limit_reached_30d=0)

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

    def feature_evidence(self, f: FeatureUse, how: str, where: str) -> Evidence:
        """A wanted feature as evidence; `where` says what offers it ("it is in Pro")."""
        if how == "blocked":
            n = f.blocked_30d
            return Evidence(
                Reason(
                    "blocked_feature",
                    f"tried {feature_name(f.feature)} {times(n)} this month — {where}",
                    feature=f.feature,
                    values={"attempts_30d": n, "attempts_7d": f.blocked_7d},
                ),
                min(1.0, 0.3 + 0.1 * n),
            )
        n = f.used_in_trial
        lacks = f"; {self.plan.name} does not include it" if self.plan is not None else ""
        return Evidence(
            Reason(
                "trial_feature",
                f"used {feature_name(f.feature)} {times(n)} during the trial — {where}{lacks}",
                feature=f.feature,
                values={"uses_in_trial": n},
            ),
            min(1.0, 0.4 + 0.05 * n),
        )

    def co_adoption(self, item_id: str) -> list[Evidence]:
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
                f"({number(r.accounts)} accounts)"
            )
            values: dict[str, int | float | str] = {
                "antecedent": r.antecedent,
                "confidence": round(r.confidence, 4),
                "lift": round(r.lift, 2),
                "support": round(r.support, 4),
                "accounts": r.accounts,
            }
            out.append(Evidence(Reason("co_adoption", text, values=values), min(0.9, r.confidence)))
        out.sort(key=lambda e: (-e.strength, str(e.reason.values["antecedent"])))
        return out

    def name(self, item_id: str) -> str:
        item = self.catalog.item(item_id)
        return item.name if item is not None else item_id


# -- limit needs and scores -----------------------------------------------------------------------


def limit_need(a: Account, ln: LimitNeed) -> Need | None:
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
            room = "has no limit" if target_limit is None else f"allows {number(target_limit)}"
            when = (
                f"within {a.policy.projection_days} days"
                if ln.usage.kind == "gauge"
                else "per period"
            )
            values: dict[str, int | float | str] = {
                "needed": as_value(ln.need),
                "days": a.policy.projection_days,
                "next_plan": nxt.id,
                "next_limit": as_value(nxt_limit or 0.0),
            }
            out.append(
                Reason(
                    "projected_need",
                    f"at this pace you will need about {number(ln.need)} {metric_name(metric)} "
                    f"{when}; {nxt.name} allows {number(nxt_limit or 0.0)}, {plan.name} {room}",
                    metric=metric,
                    values=values,
                )
            )
        return out

    return Need(limit_key(metric), ln.strength, fits, reasons)


def limit_key(metric: str) -> str:
    return f"limit:{metric}"


def feature_key(feature: str) -> str:
    return f"feature:{feature}"


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


def _limit_reason(u: MetricUsage, p: Policy, after_trial: Plan | None = None) -> Reason:
    """What the limit says; `after_trial`: the plan paid for, whose limit `u` holds during a trial."""
    limit = u.limit or 0.0
    name = metric_name(u.metric)
    values: dict[str, int | float | str] = {"used": as_value(u.value), "limit": as_value(limit)}
    if after_trial is not None:
        code = "limit_reached" if u.value >= limit else "near_limit"
        text = (
            f"{number(u.value)} {name} in use during the trial; {after_trial.name}, the plan "
            f"after it, allows {number(limit)}"
        )
        return Reason(code, text, metric=u.metric, values=values | {"plan": after_trial.id})
    if u.value >= limit and (u.value > 0 or u.limit_reached_30d > 0):
        text = f"{number(u.value)} of {number(limit)} {name} used — the limit is reached"
        if u.limit_reached_30d > 0:
            text += f"; it was hit {times(u.limit_reached_30d)} in the last 30 days"
            values["times_30d"] = u.limit_reached_30d
        return Reason("limit_reached", text, metric=u.metric, values=values)
    if u.limit_reached_30d > 0:
        values["times_30d"] = u.limit_reached_30d
        text = (
            f"the {name} limit of {number(limit)} was hit {times(u.limit_reached_30d)} in the last "
            f"30 days ({number(u.value)} used now)"
        )
        return Reason("limit_reached", text, metric=u.metric, values=values)
    text = f"{number(u.value)} of {number(limit)} {name} used"
    if u.days_to_limit is not None and u.days_to_limit <= p.near_limit_days and not u.reached:
        days = max(1, math.ceil(u.days_to_limit))
        values["days_to_limit"] = days
        text += f"; at this pace the limit is reached in {plural(days, 'day')}"
    elif u.utilisation is not None:
        text += f" ({round(u.utilisation * 100)}%)"
    return Reason("near_limit", text, metric=u.metric, values=values)


def combine(strengths: Iterable[float]) -> float:
    """Independent evidence: 1 - prod(1 - s), each s clamped to [0, 1]."""
    miss = 1.0
    for s in strengths:
        miss *= 1.0 - _clamp(s)
    return _clamp(1.0 - miss)


def _clamp(x: float) -> float:
    return 0.0 if not x > 0 else min(1.0, x)
