"""Add-ons: one that lifts a binding limit for less than the plan change would, unlocks a wanted
feature, or that customers like this one bought (S2, S8, S12); a goal the account's usage shows
that the add-on serves raises its score.
"""

from __future__ import annotations

import math

from upsell.domain.catalog import AddOn
from upsell.domain.money import Money
from upsell.domain.opportunities._account import (
    Account,
    Draft,
    Evidence,
    LimitNeed,
    combine,
    feature_key,
    limit_key,
    limit_need,
)
from upsell.domain.opportunities.candidates import Reason
from upsell.domain.wording import goals_phrase, metric_name, number


def find_add_ons(a: Account) -> list[Draft]:
    """Add-ons that lift a binding limit for less than the plan change would, that unlock a
    wanted feature, or that customers like this one bought (S2, S8, S12)."""
    drafts = []
    for add_on in a.catalog.add_ons:
        price = a.list_mrr(add_on.id)
        if price is None:
            continue
        evidence: list[Evidence] = []
        answers: set[str] = set()
        quantity = 0
        for ln in a.limit_needs:
            found = _limit_add_on(a, add_on, price, ln)
            if found is not None:
                units, reasons_ = found
                quantity = max(quantity, units)
                answers.add(limit_key(ln.usage.metric))
                evidence += [
                    Evidence(r, ln.strength if i == 0 else 0.0) for i, r in enumerate(reasons_)
                ]
        for_limits = quantity > 0
        for f, how in a.wanted(add_on.features):
            evidence.append(a.feature_evidence(f, how, f"{add_on.name} unlocks it"))
            answers.add(feature_key(f.feature))
        evidence += a.co_adoption(add_on.id)
        if not evidence:
            continue
        evidence += _goal_boosters(a, add_on.name, add_on.goals)
        draft = Draft(
            kind="add_on",
            offer_id=f"add_on:{add_on.id}",
            item_id=add_on.id,
            from_item_id=None,
            delta=price * max(quantity, 1),
            score=combine(e.strength for e in evidence),
            reasons=[e.reason for e in evidence],
            answers=frozenset(answers),
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
    a: Account, add_on: AddOn, price: Money, ln: LimitNeed
) -> tuple[int, list[Reason]] | None:
    """(units, reasons) when `add_on` lifts this limit for less than the plan change would."""
    metric = ln.usage.metric
    grant = add_on.grants.get(metric, 0)
    if grant <= 0:
        return None
    units = max(1, math.ceil((ln.need - ln.limit) / grant))
    cost = price * units
    need = limit_need(a, ln)
    plan = next((p for p in a.higher if need.fits(p)), None) if need is not None else None
    what = f"{number(grant * units)} more {metric_name(metric)}"
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


def _goal_boosters(a: Account, name: str, goals: frozenset[str]) -> list[Evidence]:
    """A goal the account's usage shows (a product's fits signal holds) that the item serves."""
    shared = sorted(goals & a.goals)
    if not shared:
        return []
    text = f"your usage shows you want to {goals_phrase(shared)}; {name} serves that"
    return [Evidence(Reason("goal_match", text, values={"goals": ", ".join(shared)}), 0.1)]
