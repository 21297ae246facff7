"""Signals: what the usage and billing data say about one account as of a date (S4, S5, S9, S13).

The engine (upsell/engine/signals.py) computes these over whole tables; this module holds the per-
account values it hands to the opportunity rules, and the statistics over all accounts
("customers like you also bought", features that preceded upgrades). Every field is a number read
off the data, never a judgement: the judgements (qualification, the offer) are in opportunities/.

Windows end at `as_of` (exclusive) and are counted in whole UTC days: "30d" is the 30 days before
the as-of day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from upsell.domain.catalog import MetricKind
from upsell.domain.money import Money
from upsell.domain.subscriptions import Purchase, SubscriptionItem

Trend = Literal["growing", "flat", "declining", "new"]

#: Activity in the last 30 days against the 30 before: above 1 + this is growing, below 1 - this is
#: declining. An account younger than 60 days has no earlier window and is "new".
TREND_BAND = 0.15


@dataclass(frozen=True)
class MetricUsage:
    """Consumption of one limited (or metered) metric against the account's effective limit.

    `limit` is the plan's limit plus what held add-ons grant (times their quantity); None is
    unlimited. A gauge's `value` is its latest value; a counter's the total over its window (the
    current billing period, or its number of days). `slope_per_day` is the 30-day trend (gauges:
    change per day between the first and last reading of the window; counters: the average daily
    use in the current window); None when there is too little data. `days_to_limit` is the projected
    number of days until `value` reaches `limit` at that pace (0 when reached; None when unlimited
    or not growing).
    """

    metric: str
    kind: MetricKind
    value: float
    limit: float | None = None
    slope_per_day: float | None = None
    days_to_limit: float | None = None
    limit_reached_30d: int = 0

    @property
    def utilisation(self) -> float | None:
        if self.limit is None or self.limit <= 0:
            return None
        return self.value / self.limit

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.value >= self.limit

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.value > self.limit


@dataclass(frozen=True)
class FeatureUse:
    """Use of one feature (``Feature Used``) and attempts at it while locked (``Feature Blocked``)."""

    feature: str
    used_30d: int = 0
    blocked_7d: int = 0
    blocked_30d: int = 0
    used_in_trial: int = 0


@dataclass(frozen=True)
class Engagement:
    """How much the account uses the product (S4: logins, active users per seat, depth, breadth).

    `days_per_user` is active days per active user over 30 days (login frequency without relying
    on a login event). `power_users` counts the account's users whose 30-day activity is in the top
    decile of all users' activity. `events_prev_30d` covers the 30 days before the last 30.
    """

    active_users_30d: int = 0
    active_days_30d: int = 0
    events_30d: int = 0
    events_prev_30d: int = 0
    dau_mau: float | None = None
    days_per_user: float | None = None
    breadth_30d: int = 0
    power_users: int = 0
    tenure_days: int = 0

    @property
    def trend(self) -> Trend:
        if self.tenure_days < 60:
            return "new"
        if self.events_prev_30d == 0:
            return "growing" if self.events_30d > 0 else "flat"
        ratio = self.events_30d / self.events_prev_30d
        if ratio > 1 + TREND_BAND:
            return "growing"
        if ratio < 1 - TREND_BAND:
            return "declining"
        return "flat"

    @property
    def depth(self) -> float | None:
        """Events per active user in the last 30 days."""
        return self.events_30d / self.active_users_30d if self.active_users_30d else None


@dataclass(frozen=True)
class Risk:
    """Signs that an account may shrink or leave (S5's retention mindset, S11). `cancel_reason`
    is the `reason` of the latest ``Cancel Requested`` in 30 days, as sent (opportunities/saves.py
    reads it)."""

    payment_failures_30d: int = 0
    open_tickets: int = 0
    nps_score: int | None = None
    downgrade_requested_to: str | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None

    @property
    def detractor(self) -> bool:
        """NPS 0-6 on the last survey answered."""
        return self.nps_score is not None and self.nps_score <= 6


@dataclass(frozen=True)
class UsageSpend:
    """Pay-as-you-go units of one usage-priced item in the current and the last billing period."""

    item_id: str
    metric: str
    units_current: float = 0.0
    units_last: float = 0.0


@dataclass(frozen=True)
class AccountSignals:
    """Everything known about one account as of `as_of`.

    `holdings` are the subscription items held at `as_of` (trialing included); `plan_id` is the plan
    among them (None when the account holds no plan). `mrr` is metrics.md's MRR in the catalog's base
    currency. `signals` are the catalog's named usage signals that hold (``inbound_leads``).
    `last_purchase` is the latest paid row that added to what the account held
    (`upsell.domain.subscriptions.last_purchase`).
    """

    account_id: str
    as_of: datetime
    created_at: datetime
    tenure_days: int
    mrr: Money
    industry: str | None = None
    employees: int | None = None
    country: str | None = None
    currency: str | None = None
    language: str | None = None
    plan_id: str | None = None
    plan_status: str | None = None
    plan_interval: str | None = None
    plan_started_at: datetime | None = None
    paid_before: bool = False
    activated: bool = False
    activated_on: date | None = None
    holdings: tuple[SubscriptionItem, ...] = ()
    metrics: Mapping[str, MetricUsage] = field(default_factory=dict)
    features: Mapping[str, FeatureUse] = field(default_factory=dict)
    signals: frozenset[str] = frozenset()
    engagement: Engagement = field(default_factory=Engagement)
    risk: Risk = field(default_factory=Risk)
    usage: tuple[UsageSpend, ...] = ()
    last_purchase: Purchase | None = None

    @property
    def held_items(self) -> frozenset[str]:
        return frozenset(h.item_id for h in self.holdings)

    @property
    def trialing(self) -> bool:
        return self.plan_status == "trialing"


@dataclass(frozen=True)
class CoAdoption:
    """Association rule over all accounts' holdings: who holds `antecedent` also holds `consequent`.

    support = P(antecedent and consequent), confidence = P(consequent | antecedent),
    lift = confidence / P(consequent) (Agrawal et al., 1993); `accounts` holding both.
    """

    antecedent: str
    consequent: str
    accounts: int
    support: float
    confidence: float
    lift: float


@dataclass(frozen=True)
class UpgradePattern:
    """A feature whose use preceded upgrades: of accounts that used it in the 30 days before a
    move to a higher plan, compared with all accounts on the lower plan (lift = rate among users of
    the feature / base rate)."""

    feature: str
    from_plan: str
    upgrades: int
    lift: float


@dataclass(frozen=True)
class Population:
    """What the opportunity rules need to know about all accounts at once."""

    co_adoption: tuple[CoAdoption, ...] = ()
    upgrade_patterns: tuple[UpgradePattern, ...] = ()
