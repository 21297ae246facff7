"""Decisions: the one offer worth making to an account now, or why none is (S5-S7, S9-S12, S14).

`decide` takes one account's signals, its opportunities (opportunities/), the workspace's
playbooks and what upsell already did with the account, and returns a `Choice`: at most one
`Decision`, and a `Refusal` for every option a guardrail stopped, each named.

For every qualified opportunity and every playbook whose trigger it meets (an experiment assigns
the account its variant), the option's expected value is

    EV = P(accept) x MRR delta (base currency) x months retained x (1 - discount share) - contact cost

and the account gets the option with the highest positive EV that passes the guardrails; ties go to
the playbook listed first, then the offer id. `acceptance` is a heuristic model of P(accept),
documented term by term in docs/decisions.md, until a fitted model replaces it (architecture.md's
learning loop). An account whose hash with the holdout's key falls in the holdout share keeps its
decision, marked held out, so that nothing is sent and its outcome measures what offers earn.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import partial
from typing import Literal, get_args

from upsell.domain.acceptance import acceptance
from upsell.domain.answers import Answers, Estimate, account_features
from upsell.domain.calendar import iso
from upsell.domain.history import History, PastContact
from upsell.domain.offers import Kind
from upsell.domain.opportunities import Opportunity, Policy
from upsell.domain.playbooks import (
    SAVE_HOLDOUT_SHARE,
    Experiment,
    Playbook,
    Playbooks,
    Promotion,
    Variant,
    deadline_of,
    facts_of,
)
from upsell.domain.signals import AccountSignals

RefusalCode = Literal[
    "no_playbook",
    "not_worth_it",
    "quiet_period",
    "dismissed_cooldown",
    "recently_contacted",
    "frequency_cap",
    "no_email_address",
    "promotion_limit",
    "deadline_too_short",
    "already_offered",
    "no_uplift",
    "smaller_offer_suffices",
    "recent_purchase",
    "csm_owned",
    "template_error",
]
REFUSALS: tuple[RefusalCode, ...] = get_args(RefusalCode)


@dataclass(frozen=True)
class Decision:
    """The offer chosen for an account: the opportunity, the playbook as its variant runs it."""

    opportunity: Opportunity
    playbook: Playbook
    variant: str | None
    p_accept: float
    expected_value: float
    deadline: date | None = None
    promotion: Promotion | None = None
    held_out: bool = False
    estimate: Estimate | None = None
    features: Mapping[str, float] | None = None
    holdout_share: float = 0.0

    @property
    def account_id(self) -> str:
        return self.opportunity.account_id

    @property
    def offer_id(self) -> str:
        return self.opportunity.offer_id

    @property
    def channel(self) -> str:
        return self.playbook.channel

    @property
    def placement(self) -> str:
        return self.playbook.placement

    @property
    def experiment(self) -> str | None:
        e = self.playbook.experiment
        return e.id if e is not None and self.variant is not None else None

    @property
    def trial_days(self) -> int:
        return self.playbook.offer.trial_days

    @property
    def discount_percent(self) -> float | None:
        if self.promotion is not None:
            return float(self.promotion.discount_percent)
        d = self.playbook.offer.discount_percent
        return None if d is None else float(d)

    @property
    def discount_months(self) -> int | None:
        if self.promotion is not None:
            return self.promotion.discount_months
        return self.playbook.offer.discount_months


@dataclass(frozen=True)
class Refusal:
    """An option a guardrail stopped: which offer, through which playbook, and why."""

    account_id: str
    offer_id: str
    guardrail: RefusalCode
    detail: str
    playbook: str | None = None


@dataclass(frozen=True)
class Choice:
    """One account's outcome of a run: its decision (None: no offer) and every refusal."""

    account_id: str
    decision: Decision | None
    refusals: tuple[Refusal, ...] = ()


AcceptanceModel = Callable[
    [Opportunity, AccountSignals, Playbook, History, datetime, "date | None"], float
]


def unit_hash(*parts: str) -> float:
    """A number in [0, 1) fixed by `parts` (SHA-256): the same account always lands in the same
    holdout and the same variant, on every machine and in every run."""
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def holdout_share(playbooks: Playbooks, kind: Kind, playbook: Playbook) -> float:
    """The share held out of offers of `kind` made through `playbook`: the playbook's own, else
    its kind's, else the global one; saves `SAVE_HOLDOUT_SHARE` at most by default."""
    s = playbooks.settings
    if playbook.holdout is not None:
        return playbook.holdout
    if kind in s.holdout_by_kind:
        return s.holdout_by_kind[kind]
    if kind == "save":
        return min(s.holdout_share, SAVE_HOLDOUT_SHARE)
    return s.holdout_share


def held_out(account_id: str, playbooks: Playbooks, share: float | None = None) -> bool:
    """Whether the account is held out at `share` (default: the global one). One number per
    account and key (`unit_hash`), so the holdouts of smaller shares lie within the larger ones'."""
    s = playbooks.settings
    return unit_hash(s.holdout_key, account_id) < (s.holdout_share if share is None else share)


def variant_for(account_id: str, experiment: Experiment) -> Variant:
    """The variant of `experiment` an account is in, by weight."""
    u = unit_hash("experiment", experiment.id, account_id)
    total = sum(v.weight for v in experiment.variants)
    acc = 0.0
    for v in experiment.variants:
        acc += v.weight / total
        if u < acc:
            return v
    return experiment.variants[-1]


def decide(
    signals: AccountSignals,
    opportunities: Sequence[Opportunity],
    playbooks: Playbooks,
    history: History = History(),  # noqa: B008 - frozen: a shared default is safe
    *,
    email: str | None = None,
    owner: str | None = None,
    model: AcceptanceModel | None = None,
    policy: Policy = Policy(),  # noqa: B008 - frozen: a shared default is safe
    triggered: bool = False,
    answers: Answers | None = None,
    explore: bool = False,
) -> Choice:
    """The one offer worth making to this account at `signals.as_of`, or none (module docstring).

    `history` must hold only what happened before `signals.as_of` (and, in `later`, the
    triggers' contacts since): a run repeated for the same instant then decides the same way.
    `email` is the account's address (an email offer to an account without one is refused);
    `owner` its customer-success manager, if any (``csm_owned``).
    Opportunities with gates never become offers; they are the opportunity step's refusals and are
    not repeated here. `model` estimates P(accept); by default it is `acceptance` with `policy`,
    the workspace's opportunity policy (which company is large). `triggered`: a real-time
    trigger decides (docs/in-app.md), not the daily run; each refuses an offer the other made
    within ``same_offer_days`` (``already_offered``). `answers` are what the workspace's own
    outcomes say (`upsell.domain.answers`, fitted by ``upsell learn``): they calibrate the model's
    P(accept) by group, subtract the chance of buying anyway and the churn a contact adds, and with
    `explore` sample the calibration (Thompson sampling, seeded by the account, the offer, the
    playbook and the instant).
    """
    accept = model if model is not None else partial(acceptance, policy=policy)
    account_id, at = signals.account_id, signals.as_of
    qualified = [o for o in opportunities if o.qualified]
    if not qualified:
        return Choice(account_id, None)
    top = qualified[0]
    account_refusal = _account_guardrails(signals, playbooks, history, top)
    if account_refusal is not None:
        return Choice(account_id, None, (account_refusal,))

    refusals: list[Refusal] = []
    options: list[tuple[float, bool, int, str, Decision]] = []
    matched = False
    for o in qualified:
        facts = facts_of(o, signals)
        for index, playbook in enumerate(playbooks.playbooks):
            if not playbook.matches(facts):
                continue
            variant = (
                variant_for(account_id, playbook.experiment)
                if playbook.experiment is not None
                else None
            )
            arm = playbook.with_variant(variant) if variant is not None else playbook
            promotion = playbooks.promotion(arm.offer.promotion) if arm.offer.promotion else None
            if promotion is not None and promotion.running(at.date()) is None:
                continue  # off the promotion calendar: the playbook is not on today
            if promotion is not None:  # the promotion's discount is the offer's
                offer = replace(
                    arm.offer,
                    discount_percent=promotion.discount_percent,
                    discount_months=promotion.discount_months,
                )
                arm = replace(arm, offer=offer)
            matched = True
            deadline = deadline_of(arm.offer, promotion, at.date())
            refusal = _option_guardrails(
                o, signals, arm, playbooks, history, promotion, deadline, email, triggered, owner
            )
            if refusal is not None:
                refusals.append(refusal)
                continue
            if o.smaller is not None and answers is None:
                refusals.append(_smaller(account_id, o, playbook.id))
                continue
            prior = accept(o, signals, arm, history, at, deadline) * _price_neutral(o)
            features = account_features(o, signals, history)
            est = _estimate(answers, explore, prior, o, arm, account_id, at, features)
            p = est.p_accept
            value = _value(o, arm, promotion, playbooks)
            cost = float(playbooks.settings.contact_cost.get(arm.channel, 0))
            gain = p * value - cost
            ev = gain - _uplift_cost(est, value, signals, playbooks)
            if ev <= 0:
                refusals.append(_unworthy(account_id, o, arm, playbook.id, est, gain, ev))
                continue
            decision = Decision(
                opportunity=o,
                playbook=arm,
                variant=variant.id if variant is not None else None,
                p_accept=p,
                expected_value=ev,
                deadline=deadline,
                promotion=promotion,
                estimate=est if answers is not None else None,
                features=features,
            )
            options.append((-round(ev, 9), o.smaller is not None, index, o.offer_id, decision))
    if not matched:
        refusals.append(
            Refusal(account_id, top.offer_id, "no_playbook", "no playbook's trigger matches")
        )
    if not options:
        return Choice(account_id, None, tuple(refusals))
    best = min(options, key=lambda t: t[:4])[4]
    share = holdout_share(playbooks, best.opportunity.kind, best.playbook)
    best = replace(best, holdout_share=share, held_out=held_out(account_id, playbooks, share))
    return Choice(account_id, best, tuple(refusals))


def _value(
    o: Opportunity, arm: Playbook, promotion: Promotion | None, playbooks: Playbooks
) -> float:
    """What an accepted offer brings: MRR delta (base currency) x months retained x the share
    the discount leaves."""
    s = playbooks.settings
    months = s.months_retained
    percent = promotion.discount_percent if promotion is not None else arm.offer.discount_percent
    kept = 1.0
    if percent is not None:
        dm = promotion.discount_months if promotion is not None else arm.offer.discount_months
        share = min(float(dm) if dm is not None else months, months) / months
        kept = 1.0 - float(percent) / 100 * share
    return float(o.expected_mrr_delta_base.amount) * months * kept


def _estimate(
    answers: Answers | None,
    explore: bool,
    prior: float,
    o: Opportunity,
    arm: Playbook,
    account_id: str,
    at: datetime,
    features: Mapping[str, float],
) -> Estimate:
    if answers is None:
        return Estimate(prior)
    draw = unit_hash("explore", account_id, o.offer_id, arm.id, iso(at)) if explore else None
    dearer = o.smaller is not None
    return answers.estimate(
        prior,
        o.kind,
        arm.channel,
        arm.placement,
        arm.id,
        dearer=dearer,
        draw=draw,
        features=features,
    )


def _price_neutral(o: Opportunity) -> float:
    """1, or for an offer dearer than a smaller one that answers every need it answers, the
    smaller's MRR delta over its own: until evidence says otherwise, the dearer offer is assumed
    to earn no more than the smaller one (docs/learning.md, "The smallest sufficient offer")."""
    if o.smaller_delta_base is None:
        return 1.0
    mine = float(o.expected_mrr_delta_base.amount)
    return min(1.0, float(o.smaller_delta_base.amount) / mine) if mine > 0 else 1.0


def _smaller(account_id: str, o: Opportunity, playbook_id: str) -> Refusal:
    return Refusal(
        account_id,
        o.offer_id,
        "smaller_offer_suffices",
        f"{o.smaller} answers every need this offer answers, for less a month; until the "
        "workspace's own outcomes say otherwise (docs/learning.md), the smaller offer is made",
        playbook_id,
    )


def _uplift_cost(est: Estimate, value: float, s: AccountSignals, playbooks: Playbooks) -> float:
    """What the offer would not earn after all: the value of those who buy anyway, and the churn
    a contact adds (churn push x the account's MRR x months retained)."""
    months = playbooks.settings.months_retained
    return est.anyway * value + max(est.churn_push, 0.0) * float(s.mrr.amount) * months


def _unworthy(
    account_id: str, o: Opportunity, arm: Playbook, playbook_id: str, est: Estimate, gain: float,
    ev: float,
) -> Refusal:  # fmt: skip
    if gain > 0:  # worth it by P(accept) alone: not over what happens without the offer
        return Refusal(
            account_id,
            o.offer_id,
            "no_uplift",
            f"expected value {gain:.2f} by P(accept) {est.p_accept:.3f}, {ev:.2f} once buying "
            f"anyway ({est.anyway:.3f}) and the churn a contact adds ({est.churn_push:+.3f}) are "
            f"counted ({est.group}, n={est.n})",
            playbook_id,
        )
    return Refusal(
        account_id,
        o.offer_id,
        "not_worth_it",
        f"expected value {ev:.2f} (P(accept) {est.p_accept:.3f}) does not cover the "
        f"{arm.channel} contact cost",
        playbook_id,
    )


def _account_guardrails(
    s: AccountSignals, playbooks: Playbooks, history: History, top: Opportunity
) -> Refusal | None:
    """Guardrails that hold for the account whatever the offer: quiet periods, a recent purchase,
    a dismissed offer, the cap over all channels."""
    g, at = playbooks.guardrails, s.as_of

    def refuse(code: RefusalCode, detail: str) -> Refusal:
        return Refusal(s.account_id, top.offer_id, code, detail)

    if s.tenure_days < g.quiet_signup_days:
        return refuse(
            "quiet_period", f"signed up {s.tenure_days} days ago (quiet for {g.quiet_signup_days})"
        )
    if g.quiet_open_ticket and s.risk.open_tickets > 0:
        return refuse("quiet_period", f"{s.risk.open_tickets} support ticket(s) open")
    if g.quiet_payment_failed and s.risk.payment_failures_30d > 0:
        return refuse(
            "quiet_period", f"{s.risk.payment_failures_30d} failed payment(s) in the last 30 days"
        )
    bought = s.last_purchase
    cooldown = timedelta(days=g.purchase_cooldown_days)
    if bought is not None and cooldown and bought.at >= at - cooldown:
        return refuse(
            "recent_purchase",
            f"bought {bought.item_id} on {bought.at.date()} "
            f"(cooldown {g.purchase_cooldown_days} days)",
        )
    since = at - timedelta(days=g.dismissed_cooldown_days)
    dismissed = [r for r in history.responses if r.response == "dismissed" and since <= r.at < at]
    if dismissed:
        last = max(dismissed, key=lambda r: r.at)
        return refuse(
            "dismissed_cooldown",
            f"dismissed {last.offer_id} on {last.at.date()} "
            f"(cooldown {g.dismissed_cooldown_days} days)",
        )
    for cap in g.caps:
        if cap.channel is not None:
            continue
        n = len(history.reached_since(at - timedelta(days=cap.days), at))
        if n >= cap.max:
            return refuse("recently_contacted", f"{n} contacts in {cap.days} days ({cap.label})")
    return None


def _option_guardrails(
    o: Opportunity,
    s: AccountSignals,
    arm: Playbook,
    playbooks: Playbooks,
    history: History,
    promotion: Promotion | None,
    deadline: date | None,
    email: str | None,
    triggered: bool = False,
    owner: str | None = None,
) -> Refusal | None:
    """Guardrails of one option: the same offer made by the other path (a trigger, the daily
    run), an open CSM task on an owned account, its channel's caps, an address, the promotion's
    limit, and a deadline the account can be reached before."""
    g, at = playbooks.guardrails, s.as_of

    def refuse(code: RefusalCode, detail: str) -> Refusal:
        return Refusal(s.account_id, o.offer_id, code, detail, arm.id)

    task = open_csm_task(history, at, g.csm_task_open_days) if owner else None
    if task is not None and arm.channel != "csm_task":
        return refuse(
            "csm_owned",
            f"{owner} owns the account and the CSM task {task.offer_id} of {task.as_of.date()} "
            f"is open (no answer yet; open for {g.csm_task_open_days} days)",
        )

    other = offered_by_other_path(history, o.offer_id, at, g.same_offer_days, triggered=triggered)
    if other is not None:
        by = "a trigger" if other.trigger else "the daily run"
        return refuse(
            "already_offered",
            f"{by} made this offer at {other.as_of.isoformat()} (the daily run and a trigger "
            f"do not both make one offer within {g.same_offer_days} days)",
        )

    for cap in g.caps:
        if cap.channel != arm.channel or cap.channel is None:
            continue
        if cap.placement is not None and cap.placement != arm.placement:
            continue
        n = sum(
            1
            for c in history.reached_since(at - timedelta(days=cap.days), at)
            if c.channel == cap.channel and (cap.placement is None or c.placement == cap.placement)
        )
        if n >= cap.max:
            return refuse("frequency_cap", f"{n} contacts in {cap.days} days ({cap.label})")
    if arm.channel == "email" and not email:
        return refuse("no_email_address", "the account has no email address")
    if promotion is not None:
        n = sum(
            1
            for c in history.contacts
            if c.reached and c.promotion == promotion.id and c.as_of >= at - timedelta(days=365)
        )
        if n >= g.promotion_max_per_12_months:
            return refuse(
                "promotion_limit",
                f"received {promotion.id} {n} times in 12 months "
                f"(at most {g.promotion_max_per_12_months})",
            )
    if deadline is not None:
        reach = reach_days(arm.channel, s, playbooks)
        left = (deadline - at.date()).days
        if left < reach:
            return refuse(
                "deadline_too_short",
                f"the offer ends in {left} days; reaching the account by {arm.channel} takes "
                f"{reach}",
            )
    return None


def open_csm_task(history: History, at: datetime, days: int) -> PastContact | None:
    """The latest CSM task that reached the account less than `days` days before `at` and has no
    answer yet: no response to its offer since it was made (``csm_owned``)."""
    open_ = [
        c
        for c in history.contacts
        if c.channel == "csm_task"
        and c.reached
        and at - timedelta(days=days) <= c.as_of < at
        and not any(r.offer_id == c.offer_id and r.at >= c.as_of for r in history.responses)
    ]
    return max(open_, key=lambda c: c.as_of, default=None)


def offered_by_other_path(
    history: History, offer_id: str, at: datetime, days: int, *, triggered: bool
) -> PastContact | None:
    """The contact, if any, that the other path (the daily run for a trigger, a trigger for the
    daily run) made with `offer_id` less than `days` days before or after `at` and that reached
    the account: one reason, one contact (``already_offered``)."""
    span = timedelta(days=days)
    for c in (*history.contacts, *history.later):
        mine = c.trigger == triggered
        if not mine and c.reached and c.offer_id == offer_id and abs(c.as_of - at) < span:
            return c
    return None


def reach_days(channel: str, s: AccountSignals, playbooks: Playbooks) -> int:
    """Days it takes to reach the account: the channel's `reach_days`, and for in-app at least
    the account's usual gap between visits (30 / active days in the last 30)."""
    days = playbooks.guardrails.reach_days.get(channel, 0)
    if channel == "in_app":
        active = s.engagement.active_days_30d
        gap = math.ceil(30 / active) if active > 0 else 31
        days = max(days, gap)
    return days
