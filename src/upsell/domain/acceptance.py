"""The prior P(accept): a heuristic model of how likely an account is to accept an offer, from the
seeds' tactics, documented term by term in docs/decisions.md. The learning step
(`upsell.domain.answers`) calibrates it on the workspace's own outcomes."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

from upsell.domain.history import History
from upsell.domain.offers import Kind
from upsell.domain.opportunities import Opportunity, Policy
from upsell.domain.playbooks import Playbook
from upsell.domain.signals import AccountSignals

#: The acceptance model's terms (docs/decisions.md explains each).
BASE: dict[Kind, float] = {"upsell": -2.5, "add_on": -2.0, "cross_sell": -2.5, "save": -0.5}
PLACEMENT_TERM = {"modal": 0.4, "tooltip": 0.2, "banner": 0.0}
EMAIL_TERM = -0.4
CSM_LARGE_TERM, CSM_SMALL_TERM = 1.0, -0.7  # a large company (Policy.large), a smaller one
CONTEXTUAL_REASONS = frozenset({"limit_reached", "blocked_feature"})
CONTEXTUAL_TERM = 0.4
TRIAL_TERM, TRIAL_CONVERSION, TRIAL_MIN_DAYS = 1.0, 0.6, 7
DISCOUNT_TERM = 1.5  # x the discount's share (20 % -> +0.3)
DEADLINE_TERM, DEADLINE_SOON_DAYS = 0.3, 21
FATIGUE_TERM, FATIGUE_DAYS = -0.3, 28
REPEAT_TERM = -0.3
DECLINING_TERM = -0.5
SEEN: dict[str, float] = {"email": 0.45, "csm_task": 0.9, "webhook": 1.0}
IN_APP_FULL_SIGHT_DAYS = 8


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def acceptance(
    o: Opportunity,
    s: AccountSignals,
    arm: Playbook,
    history: History,
    at: datetime,
    deadline: date | None,
    *,
    policy: Policy = Policy(),  # noqa: B008 - frozen: a shared default is safe
) -> float:
    """The heuristic P(accept) of an offer: P(the account sees it) x logistic(sum of terms).

    The terms, from the seeds' tactics (docs/decisions.md): a base rate by kind; the evidence
    (2 x (score - 0.5)); the placement (a modal beats a tooltip beats a banner, S10), email -0.4,
    a CSM +1.0 for a large company (`policy.large`: at least `csm_min_employees` employees, 50 by
    default) and -0.7 below; +0.4 for an in-app offer while a limit or a locked feature is in the
    way (S9's contextual moment); a trial of 7+ days +1.0, but only 60 % of trials convert (S7); a
    discount 1.5 x its share; a deadline within 21 days +0.3 (S14); -0.3 per contact in the last
    28 days and per earlier showing of the same offer; -0.5 for declining activity. An in-app offer
    is seen as often as the account comes by (all of it at 8 active days a month); an email is
    opened 45 % of the time, a CSM reaches 90 %.
    """
    x = BASE[o.kind] + 2.0 * (o.score - 0.5)
    if arm.channel == "in_app":
        x += PLACEMENT_TERM.get(arm.placement, 0.0)
        if any(r.code in CONTEXTUAL_REASONS for r in o.reasons):
            x += CONTEXTUAL_TERM
        seen = min(1.0, s.engagement.active_days_30d / IN_APP_FULL_SIGHT_DAYS)
    else:
        seen = SEEN.get(arm.channel, 1.0)
        if arm.channel == "email":
            x += EMAIL_TERM
        elif arm.channel == "csm_task":
            x += CSM_LARGE_TERM if policy.large(s.employees) else CSM_SMALL_TERM
    offer = arm.offer
    trial = offer.trial_days >= TRIAL_MIN_DAYS and o.kind != "save"
    if trial:
        x += TRIAL_TERM
    if offer.discount_percent is not None:
        x += DISCOUNT_TERM * float(offer.discount_percent) / 100
    if deadline is not None and (deadline - at.date()).days <= DEADLINE_SOON_DAYS:
        x += DEADLINE_TERM
    recent = history.reached_since(at - timedelta(days=FATIGUE_DAYS), at)
    x += FATIGUE_TERM * len(recent)
    x += REPEAT_TERM * sum(1 for c in history.contacts if c.reached and c.offer_id == o.offer_id)
    if s.engagement.trend == "declining":
        x += DECLINING_TERM
    p = seen * _logistic(x)
    return p * TRIAL_CONVERSION if trial else p
