"""Save offers for a paying account at risk (S5's retention mindset, S11's downgrade reminder):
keep the plan (``save:<plan>``), move to a lower plan instead of leaving
(``save:<plan>-><lower>``), or get the add-on or plan with the feature it left for
(``save:<plan>+<add_on>``, ``save:<plan>-><higher>``) — each answering why it wants to leave.
"""

from __future__ import annotations

from typing import Literal, get_args

from upsell.domain.catalog import AddOn, Plan
from upsell.domain.money import Money
from upsell.domain.opportunities._account import Account, Draft
from upsell.domain.opportunities.candidates import Reason, Route
from upsell.domain.wording import as_value, feature_name, metric_name, number, plural, times

#: Why an account asked to cancel, as far as the save offer answers it.
CancelMotive = Literal["too_expensive", "missing_feature", "not_using"]
MOTIVES: tuple[CancelMotive, ...] = get_args(CancelMotive)
#: Words of a ``Cancel Requested`` `reason` that name each motive, Stripe's
#: ``cancellation_details.feedback`` codes (too_expensive, missing_features, unused) among them;
#: tried in this order.
MOTIVE_WORDS: tuple[tuple[CancelMotive, tuple[str, ...]], ...] = (
    ("not_using", ("unused", "not using", "not use", "don't use", "do not use", "no longer need")),
    ("too_expensive", ("expensive", "price", "cost", "afford", "budget", "cheaper")),
    ("missing_feature", ("feature", "missing", "lack")),
)
_MOTIVE_TEXT: dict[CancelMotive, str] = {
    "too_expensive": "it costs too much",
    "missing_feature": "a feature is missing",
    "not_using": "it does not use it enough",
}


def cancel_motive(reason: str | None) -> CancelMotive | None:
    """The motive a cancel request's `reason` names (Stripe's codes or plain words), or None."""
    text = (reason or "").lower().replace("_", " ")
    for motive, words in MOTIVE_WORDS:
        if any(w in text for w in words):
            return motive
    return None


def find_saves(a: Account) -> list[Draft]:
    """S5's retention mindset and S11's downgrade reminder, for a paying account at risk.

    ``save:<plan>`` asks it to keep its plan: the reasons are what it would lose (features used in
    the last 30 days that the plan it asked for lacks, usage above that plan's limits) and what it
    got; the delta is its MRR now minus its MRR after what it asked for (cancelling: 0).
    ``save:<plan>-><lower>`` offers the cheapest lower plan whose limits still cover its usage and
    that loses the fewest used features; the delta is that plan's MRR minus the MRR after what it
    asked for. A requested downgrade bounds the lower plans from below.

    A cancel request's reason (`cancel_motive`) is answered: too expensive, both (a playbook can
    add a discount to keeping the plan); a missing feature, the cheapest add-on or higher plan
    with a feature the account tried while locked (``Feature Blocked``), and keeping the plan;
    not using it, help from a customer-success manager (route ``csm``), no cheaper plan. Each
    draft carries the motive as a reason (``too_expensive``, ``missing_feature``, ``not_using``).
    An account at risk that asked for nothing (``churn_risk``) is reminded of its plan's value,
    never offered a cheaper plan: it would lose revenue the account was not giving up.
    """
    if not a.at_risk or a.plan is None or a.mrr.amount <= 0:
        return []
    plan, r = a.plan, a.s.risk
    alt: Plan | None = None
    motive: CancelMotive | None = None
    if r.cancel_requested:
        strength = 0.9
        motive = cancel_motive(r.cancel_reason)
        text = "asked to cancel" + (f": {_MOTIVE_TEXT[motive]}" if motive else "")
        trigger = Reason("cancel_requested", text, values={"reason": motive} if motive else {})
    elif a.downgrade_to is not None:
        strength = 0.8
        to = a.downgrade_to
        alt = to if isinstance(to, Plan) else None
        label = to.name if isinstance(to, Plan) else to
        to_id = to.id if isinstance(to, Plan) else to
        trigger = Reason(
            "downgrade_requested",
            f"asked to downgrade to {label}",
            values={"to_plan": to_id, "to_plan_name": label},
        )
    else:
        strength = min(0.9, 0.3 + 0.15 * len(a.risk_signals))
        trigger = Reason(
            "churn_risk",
            "at risk of leaving: " + "; ".join(text for _, text, _ in a.risk_signals),
            values={code: n for code, _, n in a.risk_signals},
        )
    why = [Reason(motive, f"says {_MOTIVE_TEXT[motive]}")] if motive else []
    alt_mrr = a.mrr_with_plan(alt)
    route: Route = "csm" if plan.sales_assisted or motive == "not_using" else "self_serve"
    drafts = []

    if motive == "missing_feature":
        found = _feature_answer(a, plan, alt_mrr, strength, [trigger, *why], route)
        if found is not None:
            drafts.append(found)

    lost = _lost_features(a, alt, "cancel" if alt is None else alt.name)
    over = _over_limits(a, alt) if alt is not None else []
    keep = a.mrr - alt_mrr
    if keep.amount > 0:
        lost_count = len(lost) + len(over)
        drafts.append(
            Draft(
                kind="save",
                offer_id=f"save:{plan.id}",
                item_id=plan.id,
                from_item_id=plan.id,
                delta=keep,
                score=strength * (0.6 + 0.4 * min(1.0, lost_count / 3)),
                reasons=[trigger, *why, *lost[:5], *over, *_value_received(a, plan)],
                route=route,
            )
        )
    if motive in ("not_using", "missing_feature"):
        return drafts  # a cheaper plan answers neither
    if not r.cancel_requested and a.downgrade_to is None:
        return drafts  # a cheaper plan to an account that asked for nothing only loses revenue

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
                Draft(
                    kind="save",
                    offer_id=f"save:{plan.id}->{lower.id}",
                    item_id=lower.id,
                    from_item_id=plan.id,
                    delta=kept,
                    score=strength * (1 - 0.4 * min(1.0, len(lower_lost) / 3)),
                    reasons=[trigger, *why, _fits_usage(a, lower), *lower_lost[:5]],
                    route=route,
                )
            )
    return drafts


def _feature_answer(
    a: Account, plan: Plan, alt_mrr: Money, strength: float, head: list[Reason], route: Route
) -> Draft | None:
    """The cheapest add-on (that works with `plan`) or higher plan with a feature the account
    tried while locked in the last 30 days and lacks, most tried first: what it left for."""
    tried = sorted(
        (f for f in a.s.features.values() if f.blocked_30d > 0 and f.feature not in a.features),
        key=lambda f: (-f.blocked_30d, f.feature),
    )
    for f in tried:
        # (what it adds a month, the item, the account's MRR with it, the offer id)
        answers: list[tuple[Money, AddOn | Plan, Money, str]] = []
        for add_on in a.catalog.add_ons:
            price = a.list_mrr(add_on.id)
            works = not add_on.requires or plan.id in add_on.requires
            if f.feature in add_on.features and works and price is not None:
                answers.append((price, add_on, a.mrr + price, f"save:{plan.id}+{add_on.id}"))
        for higher in a.higher:
            if f.feature in higher.features and not higher.sales_assisted:
                after = a.mrr_with_plan(higher)
                answers.append((after - a.mrr, higher, after, f"save:{plan.id}->{higher.id}"))
        if not answers:
            continue
        _, item, after, offer_id = min(answers, key=lambda t: (t[0].amount, t[1].id))
        n = f.blocked_30d
        tried_it = Reason(
            "blocked_feature",
            f"tried {feature_name(f.feature)} {times(n)} this month — {item.name} has it",
            feature=f.feature,
            values={"attempts_30d": n, "attempts_7d": f.blocked_7d},
        )
        return Draft(
            kind="save",
            offer_id=offer_id,
            item_id=item.id,
            from_item_id=plan.id,
            delta=after - alt_mrr,
            score=strength * min(1.0, 0.6 + 0.1 * n),
            reasons=[*head, tried_it],
            route=route,
        )
    return None


def _lost_features(a: Account, target: Plan | None, label: str) -> list[Reason]:
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
                f"you used {feature_name(f.feature)} {times(f.used_30d)} in 30 days; {then}",
                feature=f.feature,
                values={"uses_30d": f.used_30d},
            )
        )
    return out


def _over_limits(a: Account, target: Plan) -> list[Reason]:
    """Usage above `target`'s limits (with the add-ons kept under it)."""
    out = []
    for metric in sorted(a.s.metrics):
        u = a.s.metrics[metric]
        limit = a.limit_under(target, metric)
        if limit is not None and u.value > limit:
            out.append(
                Reason(
                    "over_limit",
                    f"you have {number(u.value)} {metric_name(metric)}; {target.name} allows "
                    f"{number(limit)}",
                    metric=metric,
                    values={
                        "used": as_value(u.value),
                        "limit": as_value(limit),
                        "plan_id": target.id,
                    },
                )
            )
    return out


def _value_received(a: Account, plan: Plan) -> list[Reason]:
    """S11: what the account got from its plan lately."""
    e = a.s.engagement
    if e.events_30d <= 0:
        return []
    users = f"{plural(e.active_users_30d, 'active user')} and " if e.active_users_30d else ""
    text = f"{users}{number(e.events_30d)} actions in {plan.name} in the last 30 days"
    values: dict[str, int | float | str] = {
        "active_users_30d": e.active_users_30d,
        "events_30d": e.events_30d,
        "tenure_days": a.s.tenure_days,
    }
    return [Reason("value_received", text, values=values)]


def _fits_usage(a: Account, lower: Plan) -> Reason:
    price = a.list_mrr(lower.id, a.plan_quantity) or a.zero
    parts = []
    for metric in sorted(a.s.metrics):
        u = a.s.metrics[metric]
        limit = a.limit_under(lower, metric)
        if u.value > 0:
            room = "no limit" if limit is None else f"up to {number(limit)}"
            parts.append(f"{number(u.value)} {metric_name(metric)} ({room})")
    covers = "still covers your " + ", ".join(parts[:3]) if parts else "covers what you use"
    values: dict[str, int | float | str] = {
        "plan_id": lower.id,
        "price": price.as_string(),
        "currency": a.currency,
    }
    return Reason("fits_usage", f"{lower.name} at {a.fmt(price)} a month {covers}", values=values)
