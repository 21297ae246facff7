"""How each simulated business behaves: the knobs the world's rules are turned by, per business model.

The catalog (``catalogs/<model>.yaml``) says what the company sells; a `Profile` says how its customers
use it: which event grows each trait gauge, how fast teams and usage grow, who starts on which plan,
how often people churn. The world's rules (usage.py, lifecycle.py, responses.py) are the same for
every model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from upsell.domain.catalog import BusinessModel
from upsell.domain.events import FEATURE_USED

Driver = Literal["team", "work"]


@dataclass(frozen=True)
class TraitGauge:
    """A gauge metric kept as an account trait (seats, projects), moved by one event up and one down.

    ``driver`` "team" follows the account's team size (it is the seat count); "work" grows with the
    account's amount of work: ``base`` plus ``per_user`` per team member, times a per-account factor.
    """

    metric: str
    up_event: str
    down_event: str
    driver: Driver = "work"
    base: float = 1.0
    per_user: float = 0.3


@dataclass(frozen=True)
class MeasuredGauge:
    """A gauge read from a property of a periodic measurement event (storage): ``per_user`` units
    per team member, growing with tenure, measured every ``every_days`` days."""

    metric: str
    per_user: float = 1.0
    every_days: int = 7


@dataclass(frozen=True)
class CounterUsage:
    """A counter metric: ``adopters`` of the accounts use it, ``per_user_day`` units per team
    member and day on average (per-account spread is log-normal). When the catalog's metric has a
    ``property`` the world sends one event a day carrying the day's total; otherwise one event per
    unit."""

    metric: str
    adopters: float
    per_user_day: float


@dataclass(frozen=True)
class GoalSignal:
    """Accounts with `goal` show it by sending `event` (with `properties`) about `per_day` times a day."""

    goal: str
    event: str
    per_day: float
    properties: Mapping[str, str] = field(default_factory=dict)
    other_properties: Mapping[str, str] = field(default_factory=dict)
    other_share: float = 0.0


@dataclass(frozen=True)
class Profile:
    model: BusinessModel
    #: Share of signups starting on each plan, for small (< 20 employees) and larger companies.
    entry_small: Mapping[str, float]
    entry_large: Mapping[str, float]
    #: Share of paid signups who pay yearly.
    yearly_share: float
    trait_gauges: tuple[TraitGauge, ...]
    measured_gauges: tuple[MeasuredGauge, ...]
    counters: tuple[CounterUsage, ...]
    goal_signals: tuple[GoalSignal, ...]
    #: Share of accounts that ever reach the activation rule, and the mean days it takes them.
    activation_share: float = 0.65
    activation_days: float = 12.0
    #: Typical team members per employee who use the product (per-account spread is log-normal).
    users_per_employee: float = 0.35
    #: Monthly probability that a paying, activated, happy account cancels.
    paid_churn_monthly: float = 0.02
    #: Monthly probability that a free account stops using the product (activated / not).
    free_dormancy_monthly: tuple[float, float] = (0.04, 0.25)
    #: Feature-use events per active user and day, once settled in.
    events_per_user_day: float = 0.8
    #: Daily probability that an active user opens the product.
    user_active_day: float = 0.3
    #: How strongly each account wants features above its plan (share of accounts that want one).
    wants_higher_features: float = 0.45
    #: Organic upgrade hazard per day per unit of pressure, for each response type.
    upgrade_hazard: Mapping[str, float] = field(
        default_factory=lambda: {
            "sure_thing": 0.03,
            "persuadable": 0.003,
            "lost_cause": 0.0008,
            "sleeping_dog": 0.0008,
        }
    )
    signup_event: str = "Signed Up"
    feature_used_event: str = FEATURE_USED


SAAS = Profile(
    model="saas",
    upgrade_hazard={
        "sure_thing": 0.02,
        "persuadable": 0.0015,
        "lost_cause": 0.0004,
        "sleeping_dog": 0.0004,
    },
    entry_small={"free": 0.55, "basic": 0.33, "pro": 0.12},
    entry_large={"free": 0.3, "basic": 0.25, "pro": 0.37, "enterprise": 0.08},
    yearly_share=0.2,
    trait_gauges=(
        TraitGauge("seats", "User Invited", "User Removed", driver="team"),
        TraitGauge("projects", "Project Created", "Project Archived", base=1.0, per_user=0.35),
    ),
    measured_gauges=(MeasuredGauge("storage_gb", per_user=1.2, every_days=14),),
    counters=(
        CounterUsage("api_calls", adopters=0.15, per_user_day=60.0),
        CounterUsage("assessments", adopters=0.08, per_user_day=0.05),
    ),
    goal_signals=(
        GoalSignal(
            "grow_revenue",
            "Lead Captured",
            per_day=0.2,
            properties={"source": "inbound"},
            other_properties={"source": "outbound"},
            other_share=0.3,
        ),
        GoalSignal("save_time", "Timer Started", per_day=0.3),
    ),
)

# A note-taking app: mostly individuals and small teams, a generous free plan nearly everyone starts
# on, few paid tiers bought by small companies, consumer-like churn.
FREEMIUM = Profile(
    model="freemium",
    entry_small={"free": 0.88, "plus": 0.08, "premium": 0.04},
    entry_large={"free": 0.7, "plus": 0.1, "premium": 0.08, "team": 0.12},
    yearly_share=0.3,
    trait_gauges=(
        TraitGauge("members", "Member Invited", "Member Removed", driver="team"),
        TraitGauge("notebooks", "Notebook Created", "Notebook Archived", base=2.0, per_user=1.5),
    ),
    measured_gauges=(MeasuredGauge("storage_gb", per_user=0.35, every_days=14),),
    counters=(CounterUsage("web_clips", adopters=0.3, per_user_day=0.35),),
    goal_signals=(
        GoalSignal(
            "publish",
            "Page Shared",
            per_day=0.25,
            properties={"audience": "public"},
            other_properties={"audience": "private"},
            other_share=0.4,
        ),
        GoalSignal("write_faster", "Draft Started", per_day=0.3),
        GoalSignal("stay_organized", "Meeting Note Created", per_day=0.35),
    ),
    activation_share=0.55,
    activation_days=7.0,
    users_per_employee=0.2,
    paid_churn_monthly=0.035,
    free_dormancy_monthly=(0.05, 0.3),
    events_per_user_day=1.5,
    user_active_day=0.35,
    wants_higher_features=0.4,
    upgrade_hazard={
        "sure_thing": 0.024,
        "persuadable": 0.0024,
        "lost_cause": 0.0006,
        "sleeping_dog": 0.0006,
    },
)

# A live-service game: household accounts with a few player profiles, most starting free to play,
# heavy daily play, high churn.
GAME = Profile(
    model="game",
    entry_small={"free_to_play": 0.7, "standard": 0.18, "deluxe": 0.09, "ultimate": 0.03},
    entry_large={"free_to_play": 0.6, "standard": 0.2, "deluxe": 0.13, "ultimate": 0.07},
    yearly_share=0.1,
    trait_gauges=(
        TraitGauge("players", "Player Profile Added", "Player Profile Removed", driver="team"),
        TraitGauge("characters", "Character Created", "Character Deleted", base=1.5, per_user=1.2),
    ),
    measured_gauges=(MeasuredGauge("stash_slots", per_user=30.0, every_days=7),),
    counters=(CounterUsage("gem_packs", adopters=0.2, per_user_day=0.04),),
    goal_signals=(
        GoalSignal("compete", "Ranked Match Finished", per_day=0.6),
        GoalSignal("explore", "Region Discovered", per_day=0.25),
        GoalSignal(
            "create_content",
            "Clip Recorded",
            per_day=0.4,
            properties={"visibility": "public"},
            other_properties={"visibility": "private"},
            other_share=0.3,
        ),
    ),
    activation_share=0.6,
    activation_days=4.0,
    users_per_employee=0.12,
    paid_churn_monthly=0.05,
    free_dormancy_monthly=(0.08, 0.35),
    events_per_user_day=2.5,
    user_active_day=0.5,
    wants_higher_features=0.5,
    upgrade_hazard={
        "sure_thing": 0.02,
        "persuadable": 0.002,
        "lost_cause": 0.0005,
        "sleeping_dog": 0.0005,
    },
)

# A desktop design-software vendor: every customer pays for an edition, mostly on yearly terms,
# larger companies start higher; long onboarding, low churn.
SOFTWARE = Profile(
    model="software",
    entry_small={"standard": 0.7, "professional": 0.3},
    entry_large={"standard": 0.45, "professional": 0.45, "enterprise": 0.1},
    yearly_share=0.7,
    trait_gauges=(
        TraitGauge("seats", "Seat Assigned", "Seat Released", driver="team"),
        TraitGauge("projects", "Project Created", "Project Closed", base=1.0, per_user=0.8),
    ),
    measured_gauges=(MeasuredGauge("cloud_gb", per_user=2.0, every_days=14),),
    counters=(CounterUsage("render_minutes", adopters=0.2, per_user_day=6.0),),
    goal_signals=(
        GoalSignal("design_faster", "Macro Recorded", per_day=0.3),
        GoalSignal("pass_audits", "Compliance Check Run", per_day=0.15),
        GoalSignal(
            "collaborate",
            "Design Review Requested",
            per_day=0.3,
            properties={"reviewer": "external"},
            other_properties={"reviewer": "internal"},
            other_share=0.5,
        ),
    ),
    activation_share=0.7,
    activation_days=14.0,
    users_per_employee=0.25,
    paid_churn_monthly=0.012,
    events_per_user_day=0.8,
    user_active_day=0.35,
)

PROFILES: Mapping[BusinessModel, Profile] = {
    "saas": SAAS,
    "freemium": FREEMIUM,
    "game": GAME,
    "software": SOFTWARE,
}


def catalog_text(model: BusinessModel) -> str:
    """The YAML catalog of the simulated company for `model`."""
    return (resources.files("upsell.simulator") / "catalogs" / f"{model}.yaml").read_text("utf-8")
