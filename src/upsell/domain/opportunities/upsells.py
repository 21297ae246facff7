"""Upsells: a higher plan for each need the account shows, and the lowest plan that answers them
all (S4, S8, S9, S13).

The needs: a limit that binds (`limit_need`), a wanted feature a higher plan includes, and
pay-as-you-go spend that makes a plan cheaper than the bill (break-even). Features whose use
preceded upgrades and growing activity raise an upsell's score but never make one. A sales-assisted
plan goes to a large account through a customer-success manager and is gated for the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from upsell.domain.catalog import Plan, UsagePricedItem
from upsell.domain.money import MONTHS_IN_INTERVAL, Money
from upsell.domain.opportunities._account import (
    Account,
    Draft,
    Evidence,
    Need,
    combine,
    feature_key,
    limit_need,
)
from upsell.domain.opportunities.candidates import Reason
from upsell.domain.signals import FeatureUse
from upsell.domain.wording import as_value, feature_name, number, times


def find_upsells(a: Account) -> list[Draft]:
    """S4, S8, S9, S13: a higher plan for each need, and the lowest plan that answers them all."""
    higher = a.higher
    needs = [
        *(n for ln in a.limit_needs if (n := limit_need(a, ln)) is not None),
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
        draft = Draft(
            kind="upsell",
            offer_id=f"upsell:{from_id}->{target.id}" if from_id else f"upsell:{target.id}",
            item_id=target.id,
            from_item_id=from_id,
            delta=a.mrr_with_plan(target) - a.mrr,
            score=combine(strengths),
            reasons=reasons,
            answers=frozenset(n.key for n in met),
        )
        if target.sales_assisted:
            if a.large:
                draft.route = "csm"
            else:
                draft.gates.add("sales_assisted")
        drafts.append(draft)
    return drafts


def _feature_upsell_needs(a: Account, higher: Sequence[Plan]) -> list[Need]:
    """Blocked features (S8) and features used in a trial (S4) that a higher plan includes."""
    in_plans = {f for p in higher for f in p.features}
    out = []
    for f, how in a.wanted(in_plans):

        def fits(plan: Plan, feature: str = f.feature) -> bool:
            return feature in plan.features

        def reasons(plan: Plan, f: FeatureUse = f, how: str = how) -> list[Reason]:
            return [a.feature_evidence(f, how, f"it is in {plan.name}").reason]

        strength = a.feature_evidence(f, how, "").strength
        out.append(Need(feature_key(f.feature), strength, fits, reasons))
    return out


def _break_even_needs(a: Account, higher: Sequence[Plan]) -> list[Need]:
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
        out.append(Need(f"break_even:{spend.item_id}", min(1.0, 0.5 + share), be.fits, be.reasons))
    return out


class _BreakEven:
    """One usage-priced item's spend against the plans that would include it."""

    def __init__(
        self, a: Account, item: UsagePricedItem, metric: str, units: float, last: bool
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
        what = f"{number(units)} {'unit' if units == 1 else 'units'} of {self.item.name}"
        if a.plan_mrr.amount > 0 and a.plan is not None:
            detail = f" ({a.fmt(a.plan_mrr)} for {a.plan.name} and {a.fmt(self.usage)} for {what})"
        else:
            detail = f" ({what} at {a.fmt(self.unit)})"
        covers = (
            "and includes them"
            if limit is None or limit >= units
            else f"and includes {number(limit)} of them"
        )
        values: dict[str, int | float | str] = {
            "item_id": self.item.id,
            "units": as_value(units),
            "period": "last" if self.last else "current",
            "bill": bill.as_string(),
            "usage_spend": self.usage.as_string(),
            "price": price.as_string(),
            "currency": a.currency,
        }
        text = f"{lead}{detail}; {plan.name} is {a.fmt(price)} a month {covers}"
        return [Reason("break_even", text, metric=self.metric, values=values)]


def _upsell_boosters(a: Account) -> list[Evidence]:
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
                f"{pat.lift:.1f} times as often as the others ({number(pat.upgrades)} upgrades); "
                f"you used it {times(use.used_30d)} in 30 days"
            )
            values: dict[str, int | float | str] = {
                "lift": round(pat.lift, 2),
                "upgrades": pat.upgrades,
                "uses_30d": use.used_30d,
            }
            out.append(
                Evidence(
                    Reason("upgrade_pattern", text, feature=pat.feature, values=values),
                    min(0.3, 0.1 * pat.lift),
                )
            )
    e = a.s.engagement
    if e.trend == "growing" and e.events_prev_30d > 0:
        text = (
            f"activity grew from {number(e.events_prev_30d)} to {number(e.events_30d)} events "
            "in 30 days"
        )
        values = {"events_30d": e.events_30d, "events_prev_30d": e.events_prev_30d}
        out.append(Evidence(Reason("growing_usage", text, values=values), 0.1))
    return out


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))
