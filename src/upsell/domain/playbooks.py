"""Playbooks: the no-code rules that turn a qualified opportunity into an offer (S19).

A playbook says *when* (a trigger: conditions on the opportunity and its account's signals), *what*
(the offer: a trial, a discount, a deadline, a promotion), *how* (a channel and a placement) and
*with which words* (a message template), optionally split by an experiment into variants. The
workspace's ``playbooks.yaml`` holds them with the guardrails and the settings of the decision step;
`upsell.config.playbooks` reads that file, docs/decisions.md documents every key.

This module holds the value types and the checks that need no file: a trigger's facts and their
types, placements per channel, a promotion calendar that repeats too often or runs shorter than
reaching its audience takes (S14), deadlines shorter than a channel's reach.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, get_args

from upsell.domain.answers import Learning
from upsell.domain.checkout import DEFAULT_CHECKOUT_URL, DEFAULT_SAVE_URL, check_url_template
from upsell.domain.offers import CHANNELS, KINDS, PLACEMENTS
from upsell.domain.opportunities import Opportunity
from upsell.domain.signals import AccountSignals
from upsell.errors import Problem

Op = Literal["equals", "any_of", "none_of", "at_least", "at_most"]
OPS: tuple[Op, ...] = get_args(Op)
FactType = Literal["text", "number", "flag", "set"]

Value = str | float | bool | tuple[str, ...] | None


@dataclass(frozen=True)
class Fact:
    """Something a trigger can test: its type and what it means (docs/decisions.md lists them)."""

    name: str
    type: FactType
    doc: str


FACTS: Mapping[str, Fact] = MappingProxyType(
    {
        f.name: f
        for f in (
            Fact("kind", "text", "upsell, add_on, cross_sell or save"),
            Fact("offer_id", "text", "the opportunity's offer, e.g. upsell:basic->pro"),
            Fact("item_id", "text", "the item offered"),
            Fact("from_item_id", "text", "the plan the account moves from"),
            Fact("route", "text", "self_serve, or csm for a sales-assisted plan"),
            Fact("reasons", "set", "the codes of the opportunity's reasons (near_limit, ...)"),
            Fact("score", "number", "the strength of the evidence, 0 to 1"),
            Fact("expected_mrr_delta", "number", "the offer's MRR delta, base currency"),
            Fact("plan", "text", "the account's plan id"),
            Fact("interval", "text", "the plan's billing interval: month or year"),
            Fact("mrr", "number", "the account's MRR, base currency"),
            Fact("employees", "number", "company size"),
            Fact("industry", "text", "the account's industry"),
            Fact("country", "text", "ISO 3166 alpha-2"),
            Fact("language", "text", "the language of its messages"),
            Fact("tenure_days", "number", "days since signup"),
            Fact("activated", "flag", "reached the catalog's activation rule"),
            Fact("signals", "set", "the catalog's named usage signals that hold"),
            Fact("utilisation", "number", "the highest share of any limit in use, 0 to 1+"),
            Fact("active_users_30d", "number", "users active in the last 30 days"),
            Fact("active_days_30d", "number", "days with activity in the last 30"),
            Fact("dau_mau", "number", "daily over monthly active users"),
            Fact("trend", "text", "growing, flat, declining or new"),
            Fact("nps", "number", "the last NPS answer, 0 to 10"),
        )
    }
)


@dataclass(frozen=True)
class Condition:
    """One test of a trigger: ``fact op value``. A missing fact (no NPS answer, no industry)
    satisfies only ``none_of``."""

    fact: str
    op: Op
    value: Value

    def holds(self, facts: Mapping[str, object]) -> bool:
        have = facts.get(self.fact)
        if have is None:
            return self.op == "none_of"
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        if isinstance(have, frozenset):
            if self.op == "equals":
                return have == frozenset(values)
            hit = bool(have & frozenset(values))
            return hit if self.op == "any_of" else not hit if self.op == "none_of" else False
        if self.op == "at_least":
            return isinstance(have, int | float) and float(have) >= float(self.value)  # type: ignore[arg-type]
        if self.op == "at_most":
            return isinstance(have, int | float) and float(have) <= float(self.value)  # type: ignore[arg-type]
        if self.op == "equals":
            return have == self.value
        return (have in values) == (self.op == "any_of")


def facts_of(opportunity: Opportunity, signals: AccountSignals) -> dict[str, object]:
    """The values `FACTS` names, for one opportunity of one account (None when unknown)."""
    limited = [u.utilisation for u in signals.metrics.values() if u.utilisation is not None]
    e = signals.engagement
    return {
        "kind": opportunity.kind,
        "offer_id": opportunity.offer_id,
        "item_id": opportunity.item_id,
        "from_item_id": opportunity.from_item_id,
        "route": opportunity.route,
        "reasons": frozenset(r.code for r in opportunity.reasons),
        "score": opportunity.score,
        "expected_mrr_delta": float(opportunity.expected_mrr_delta_base.amount),
        "plan": signals.plan_id,
        "interval": signals.plan_interval,
        "mrr": float(signals.mrr.amount),
        "employees": signals.employees,
        "industry": signals.industry,
        "country": signals.country,
        "language": signals.language,
        "tenure_days": signals.tenure_days,
        "activated": signals.activated,
        "signals": signals.signals,
        "utilisation": max(limited) if limited else None,
        "active_users_30d": e.active_users_30d,
        "active_days_30d": e.active_days_30d,
        "dau_mau": e.dau_mau,
        "trend": e.trend,
        "nps": signals.risk.nps_score,
    }


@dataclass(frozen=True)
class Offer:
    """What the customer is offered beyond the item: a free trial, a discount, a deadline.

    `discount_months` None with a discount means for as long as the item is held. `deadline_days`
    is the number of days the offer stands (S14's real deadline); a promotion's deadline is the end
    of its current run instead.
    """

    trial_days: int = 0
    discount_percent: Decimal | None = None
    discount_months: int | None = None
    deadline_days: int | None = None
    promotion: str | None = None


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: what it changes in its playbook (None: the playbook's own)."""

    id: str
    weight: float = 1.0
    template: str | None = None
    placement: str | None = None
    offer: Offer | None = None


@dataclass(frozen=True)
class Experiment:
    id: str
    variants: tuple[Variant, ...]


#: Where an in-app tooltip points when its playbook names no `anchor`: an element the host page
#: marks with ``data-upsell-anchor``.
DEFAULT_ANCHOR = "[data-upsell-anchor]"


@dataclass(frozen=True)
class Playbook:
    """Trigger → offer → channel and placement → message template (→ experiment). `anchor` is the
    CSS selector of the element an in-app tooltip points at (`DEFAULT_ANCHOR` when None)."""

    id: str
    channel: str
    placement: str
    template: str
    trigger: tuple[Condition, ...] = ()
    offer: Offer = field(default_factory=Offer)
    experiment: Experiment | None = None
    description: str = ""
    anchor: str | None = None
    holdout: float | None = None

    def matches(self, facts: Mapping[str, object]) -> bool:
        return all(c.holds(facts) for c in self.trigger)

    def with_variant(self, variant: Variant) -> Playbook:
        """The playbook as the variant's arm runs it."""
        return Playbook(
            id=self.id,
            channel=self.channel,
            placement=variant.placement or self.placement,
            template=variant.template or self.template,
            trigger=self.trigger,
            offer=variant.offer or self.offer,
            experiment=self.experiment,
            description=self.description,
            anchor=self.anchor,
            holdout=self.holdout,
        )


@dataclass(frozen=True)
class PromotionRun:
    """One period a promotion runs, both days included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class Promotion:
    """A discount that runs on the calendar (S14): the same promotion too often becomes the price."""

    id: str
    discount_percent: Decimal
    discount_months: int | None = None
    runs: tuple[PromotionRun, ...] = ()

    def running(self, day: date) -> PromotionRun | None:
        return next((r for r in self.runs if r.start <= day <= r.end), None)


@dataclass(frozen=True)
class Cap:
    """At most `max` contacts in `days` days, on `channel` (and `placement`), or on all channels."""

    max: int
    days: int
    channel: str | None = None
    placement: str | None = None

    @property
    def label(self) -> str:
        where = "all channels" if self.channel is None else self.channel
        if self.placement is not None:
            where += f" {self.placement}"
        return f"{self.max} per {self.days} days on {where}"


DEFAULT_CAPS = (
    Cap(max=1, days=14, channel="in_app", placement="modal"),
    Cap(max=2, days=14, channel="in_app"),
    Cap(max=2, days=30, channel="email"),
    Cap(max=1, days=90, channel="csm_task"),
    Cap(max=3, days=30),
)
DEFAULT_REACH_DAYS: Mapping[str, int] = MappingProxyType(
    {"in_app": 7, "email": 3, "csm_task": 14, "webhook": 1}
)


@dataclass(frozen=True)
class Guardrails:
    """What keeps offers welcome. Every refusal is recorded with its name (docs/decisions.md).

    - `caps`: frequency caps (``frequency_cap`` per channel, ``recently_contacted`` overall).
    - `dismissed_cooldown_days`: no offer for this long after one was dismissed.
    - `purchase_cooldown_days`: no offer for this long after a purchase (an upgrade, an add-on or a
      product bought: `upsell.domain.subscriptions.last_purchase`; ``recent_purchase``); 0: none.
    - `csm_owner_trait`, `csm_task_open_days`: an account whose trait `csm_owner_trait` names an
      owner gets no offer but through a CSM task while a CSM task on it is open — it reached the
      account less than `csm_task_open_days` ago and has no answer (``csm_owned``); 0: never.
    - `quiet_signup_days`, `quiet_open_ticket`, `quiet_payment_failed`: ``quiet_period`` — the
      first days after signup, while a support ticket is open, within 30 days of a failed payment.
    - `promotion_max_per_12_months`: runs of one promotion in any 12 months on the calendar, and
      times one account receives it in 12 months (``promotion_limit``).
    - `reach_days`: how long reaching an account takes per channel; a deadline must be at least
      that far away (``deadline_too_short``), and a promotion must run at least that long.
    - `same_offer_days`: a real-time trigger and the daily run never both make one offer to one
      account within this many days (``already_offered``).
    """

    caps: tuple[Cap, ...] = DEFAULT_CAPS
    dismissed_cooldown_days: int = 30
    purchase_cooldown_days: int = 30
    csm_owner_trait: str = "csm_owner"
    csm_task_open_days: int = 30
    quiet_signup_days: int = 7
    quiet_open_ticket: bool = True
    quiet_payment_failed: bool = True
    promotion_max_per_12_months: int = 2
    reach_days: Mapping[str, int] = field(default_factory=lambda: DEFAULT_REACH_DAYS)
    same_offer_days: int = 14


DEFAULT_CONTACT_COST: Mapping[str, Decimal] = MappingProxyType(
    {
        "in_app": Decimal("0"),
        "email": Decimal("0.10"),
        "csm_task": Decimal("30"),
        "webhook": Decimal("0"),
    }
)
#: The default holdout share of save offers (docs/decisions.md gives the reason).
SAVE_HOLDOUT_SHARE = 0.05


@dataclass(frozen=True)
class DecisionSettings:
    """How offers are valued and measured.

    - `holdout_share` of eligible accounts (0.10), chosen by hashing the account id with
      `holdout_key`, get nothing and are recorded as held out. `holdout_by_kind` sets the share of
      a kind of offer; a playbook's own `holdout` wins over both. Saves hold out
      `SAVE_HOLDOUT_SHARE` (5 %, or the global share when smaller) unless set: withholding a save
      can cost a customer, and 5 % still measures.
    - `months_retained`: how long an accepted offer's MRR is expected to last (expected value).
    - `contact_cost`: what one contact costs per channel, base currency (a CSM's time, an email).
    - `checkout_url`: the call to action's URL; ``{account_id}`` and the other `CHECKOUT_FIELDS`
      are filled in (URL-encoded). `save_url` instead for a save that keeps the plan held (there
      is nothing to buy: the account withdraws its cancel or downgrade request).
    - `learning`: how the decision step learns from outcomes (`Learning`).
    """

    holdout_share: float = 0.10
    holdout_key: str = "holdout"
    holdout_by_kind: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    months_retained: float = 12.0
    contact_cost: Mapping[str, Decimal] = field(default_factory=lambda: DEFAULT_CONTACT_COST)
    checkout_url: str = DEFAULT_CHECKOUT_URL
    learning: Learning = field(default_factory=Learning)
    save_url: str = DEFAULT_SAVE_URL

    def cta_url(self, kind: str, item_id: str, from_item_id: str | None) -> str:
        """The URL template of an offer's call to action: `save_url` for a save that keeps the
        plan held, else `checkout_url`."""
        return self.save_url if kind == "save" and item_id == from_item_id else self.checkout_url


@dataclass(frozen=True)
class Playbooks:
    """Everything the decision step is configured with (the whole of playbooks.yaml)."""

    playbooks: tuple[Playbook, ...]
    promotions: tuple[Promotion, ...] = ()
    guardrails: Guardrails = field(default_factory=Guardrails)
    settings: DecisionSettings = field(default_factory=DecisionSettings)

    def promotion(self, promotion_id: str) -> Promotion | None:
        return next((p for p in self.promotions if p.id == promotion_id), None)

    @property
    def templates(self) -> frozenset[str]:
        """Every template a playbook or a variant names."""
        out = {p.template for p in self.playbooks}
        for p in self.playbooks:
            if p.experiment is not None:
                out |= {v.template for v in p.experiment.variants if v.template}
        return frozenset(out)

    def check(self, channels: tuple[str, ...] = CHANNELS) -> list[Problem]:
        """Problems no single key shows, keyed by their dotted path in playbooks.yaml: duplicate
        ids, unknown channels, placements and promotions, trigger values of the wrong type, a
        promotion calendar that repeats too often or runs shorter than its channels' reach, and
        deadlines shorter than a channel's reach."""
        problems: list[Problem] = []
        g, s = self.guardrails, self.settings
        seen: set[str] = set()
        experiments: dict[str, str] = {}
        used_by: dict[str, set[str]] = {}
        for n, p in enumerate(self.playbooks):
            at = f"playbooks[{n}]"
            if p.id in seen:
                problems.append(Problem(f"duplicate playbook id {p.id!r}", f"{at}.id"))
            seen.add(p.id)
            if p.channel not in channels:
                known = ", ".join(channels)
                problems.append(
                    Problem(f"unknown channel {p.channel!r}; known: {known}", f"{at}.channel")
                )
            for k, c in enumerate(p.trigger):
                problems += _check_condition(c, f"{at}.trigger.{c.fact}", k)
            arms: list[tuple[str, str, Offer]] = [(at, p.placement, p.offer)]
            if p.experiment is not None:
                e = p.experiment
                if e.id in experiments:
                    problems.append(
                        Problem(
                            f"experiment {e.id!r} is already run by playbook {experiments[e.id]!r}",
                            f"{at}.experiment.id",
                        )
                    )
                experiments[e.id] = p.id
                if len(e.variants) < 2:
                    problems.append(
                        Problem("an experiment needs at least two variants", f"{at}.experiment")
                    )
                ids = [v.id for v in e.variants]
                for dup in sorted({i for i in ids if ids.count(i) > 1}):
                    problems.append(
                        Problem(f"duplicate variant id {dup!r}", f"{at}.experiment.variants")
                    )
                for k, v in enumerate(e.variants):
                    if v.weight <= 0:
                        problems.append(
                            Problem(
                                f"weight must be positive, got {v.weight}",
                                f"{at}.experiment.variants[{k}].weight",
                            )
                        )
                    arms.append(
                        (
                            f"{at}.experiment.variants[{k}]",
                            v.placement or p.placement,
                            v.offer or p.offer,
                        )
                    )
            for where, placement, offer in arms:
                allowed = PLACEMENTS.get(p.channel)
                if allowed is not None and placement not in allowed:
                    problems.append(
                        Problem(
                            f"{p.channel} has no placement {placement!r}; choose "
                            f"{', '.join(allowed)}",
                            f"{where}.placement",
                        )
                    )
                problems += self._check_offer(offer, p.channel, f"{where}.offer")
                if offer.promotion is not None:
                    used_by.setdefault(offer.promotion, set()).add(p.channel)
        problems += self._check_promotions(used_by)
        if not 0 <= s.holdout_share < 1:
            problems.append(
                Problem(
                    f"must be at least 0 and below 1, got {s.holdout_share}",
                    "settings.holdout.share",
                )
            )
        learning = s.learning
        for name in ("strength", "churn_strength"):
            if getattr(learning, name) <= 0:
                problems.append(
                    Problem(
                        f"must be positive, got {getattr(learning, name)}",
                        f"settings.learning.{name}",
                    )
                )
        if s.months_retained <= 0:
            problems.append(
                Problem(f"must be positive, got {s.months_retained}", "settings.months_retained")
            )
        for channel, cost in s.contact_cost.items():
            if cost < 0:
                problems.append(
                    Problem(f"must not be negative, got {cost}", f"settings.contact_cost.{channel}")
                )
        problems += check_url_template(s.checkout_url)
        problems += check_url_template(s.save_url, "settings.save_url")
        for k, cap in enumerate(g.caps):
            if cap.max < 1 or cap.days < 1:
                problems.append(Problem("max and days must be at least 1", f"guardrails.caps[{k}]"))
            if cap.placement is not None and cap.channel is None:
                problems.append(
                    Problem("a placement needs its channel", f"guardrails.caps[{k}].placement")
                )
        return problems

    def _check_offer(self, offer: Offer, channel: str, at: str) -> list[Problem]:
        problems = []
        reach = self.guardrails.reach_days.get(channel, 0)
        if offer.trial_days < 0:
            problems.append(Problem("must not be negative", f"{at}.trial_days"))
        if offer.discount_percent is not None and not 0 < offer.discount_percent < 100:
            problems.append(
                Problem(
                    f"must be above 0 and below 100, got {offer.discount_percent}",
                    f"{at}.discount.percent",
                )
            )
        if offer.discount_percent is not None and offer.deadline_days is None:
            problems.append(
                Problem(
                    "a discount needs a real deadline (deadline_days) or a promotion (S14)",
                    f"{at}.discount",
                )
            )
        if offer.deadline_days is not None and offer.deadline_days < reach:
            problems.append(
                Problem(
                    f"a deadline of {offer.deadline_days} days is shorter than reaching an "
                    f"account by {channel} takes ({reach} days, guardrails.reach_days)",
                    f"{at}.deadline_days",
                )
            )
        if offer.promotion is not None and self.promotion(offer.promotion) is None:
            known = ", ".join(p.id for p in self.promotions) or "none are defined"
            problems.append(
                Problem(f"unknown promotion {offer.promotion!r}; known: {known}", f"{at}.promotion")
            )
        return problems

    def _check_promotions(self, used_by: Mapping[str, set[str]]) -> list[Problem]:
        problems = []
        g = self.guardrails
        ids: set[str] = set()
        for n, promo in enumerate(self.promotions):
            at = f"promotions[{n}]"
            if promo.id in ids:
                problems.append(Problem(f"duplicate promotion id {promo.id!r}", f"{at}.id"))
            ids.add(promo.id)
            if not 0 < promo.discount_percent < 100:
                problems.append(
                    Problem(
                        f"must be above 0 and below 100, got {promo.discount_percent}",
                        f"{at}.percent",
                    )
                )
            runs = sorted(promo.runs, key=lambda r: r.start)
            reach = max((g.reach_days.get(c, 0) for c in used_by.get(promo.id, ())), default=0)
            for k, run in enumerate(promo.runs):
                if run.end < run.start:
                    problems.append(Problem("ends before it starts", f"{at}.runs[{k}]"))
                elif run.days < reach:
                    problems.append(
                        Problem(
                            f"runs {run.days} days, shorter than reaching its audience takes "
                            f"({reach} days by its channels, guardrails.reach_days; S14)",
                            f"{at}.runs[{k}]",
                        )
                    )
            for a, b in itertools.pairwise(runs):
                if b.start <= a.end:
                    problems.append(
                        Problem(f"runs overlap ({a.start} to {a.end} and {b.start})", f"{at}.runs")
                    )
            for k, run in enumerate(runs):
                window = [r for r in runs[k:] if r.start < run.start + timedelta(days=365)]
                if len(window) > g.promotion_max_per_12_months:
                    problems.append(
                        Problem(
                            f"runs {len(window)} times in the 12 months from {run.start}; at most "
                            f"{g.promotion_max_per_12_months} (guardrails.promotions."
                            "max_per_12_months), or it becomes the price (S14)",
                            f"{at}.runs",
                        )
                    )
                    break
        return problems


def _check_condition(c: Condition, at: str, _k: int) -> list[Problem]:
    fact = FACTS.get(c.fact)
    if fact is None:
        return [Problem(f"unknown fact {c.fact!r}; known: {', '.join(FACTS)}", at)]
    numeric = c.op in ("at_least", "at_most")
    if numeric and fact.type != "number":
        return [Problem(f"{c.fact} is {fact.type}, not a number: use a value or a list", at)]
    if fact.type == "number" and not numeric:
        return [Problem(f"{c.fact} is a number: use at_least or at_most", at)]
    if numeric and (isinstance(c.value, bool) or not isinstance(c.value, int | float)):
        return [Problem(f"{c.op} needs a number, got {c.value!r}", at)]
    if c.fact == "kind":
        values = c.value if isinstance(c.value, tuple) else (c.value,)
        bad = [v for v in values if v not in KINDS]
        if bad:
            return [Problem(f"unknown kind {bad[0]!r}; choose {', '.join(KINDS)}", at)]
    return []


def deadline_of(offer: Offer, promotion: Promotion | None, day: date) -> date | None:
    """The last day the offer stands: the end of the promotion's current run, or `deadline_days`
    after `day`; None for an offer without a deadline."""
    if promotion is not None:
        run = promotion.running(day)
        return run.end if run is not None else None
    if offer.deadline_days is not None:
        return day + timedelta(days=offer.deadline_days)
    return None
