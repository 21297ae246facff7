"""`Policy`: every threshold of the opportunity rules, each one key of config.yaml's
``opportunities:`` section.

`Policy.check` names the values out of their range; `Policy.large` is the one "large company" rule
(a sales-assisted plan goes through a customer-success manager, the strategies' *large* accounts,
the acceptance model's CSM term in decisions.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from upsell.errors import Problem

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

    def large(self, employees: int | None) -> bool:
        """Whether a company of `employees` is large: at least `csm_min_employees` (unknown: no)."""
        return employees is not None and employees >= self.csm_min_employees
