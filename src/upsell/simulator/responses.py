"""The hidden ground truth: how a simulated customer answers an offer.

The probability of accepting is a logistic model whose terms are the seeds' claims (domain.md):
need (a binding limit or a blocked feature the offer fixes, S4/S5/S9), timing (not before activation,
S5), channel and placement (contextual in-app beats cold email; a CSM for large accounts, S10),
relevance (a cross-sell that serves the account's goal, S12), price anchoring (an add-on or product
above ~30 % of current spend converts far worse, S12), trials (S7), urgency and the same promotion
repeated (S14), fatigue (recent contacts), and the account's hidden response type (sure thing,
persuadable, lost cause, sleeping dog). A sleeping dog who is pushed becomes likelier to churn.
The coefficients are documented in docs/simulator.md; the engine never sees them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from upsell.domain.events import EMAIL_OPENED, OFFER_CLICKED, OFFER_DISMISSED, OFFER_VIEWED
from upsell.domain.offers import CHANNELS, KINDS
from upsell.simulator.config import SimulationError
from upsell.simulator.lifecycle import add_item, start_plan
from upsell.simulator.population import RESPONSE_TYPES
from upsell.simulator.rows import TRIALING

if TYPE_CHECKING:
    from upsell.simulator.world import World

#: The channels a simulated customer can be reached through: upsell's, and a checkout page.
SIMULATED_CHANNELS = (*CHANNELS, "checkout")

BASE = {"upsell": -2.8, "add_on": -2.0, "cross_sell": -2.6, "save": -0.4}
TYPE_EFFECT = {"sure_thing": 2.0, "persuadable": 0.5, "lost_cause": -2.5, "sleeping_dog": -3.0}
NEED_WEIGHT = {"sure_thing": 1.0, "persuadable": 1.3, "lost_cause": 0.3, "sleeping_dog": 0.3}
SAVE_EFFECT = {"sure_thing": 1.0, "persuadable": 0.6, "lost_cause": -0.8, "sleeping_dog": -1.0}
PLACEMENT = {"modal": 0.5, "tooltip": 0.2, "banner": 0.0}
PRICE_ANCHOR = 0.30
SEEN = {"in_app": 0.8, "email": 0.45, "csm_task": 1.0, "webhook": 1.0, "checkout": 1.0}


def _error(position: int, message: str) -> Exception:
    return SimulationError(f"decision {position + 1}: {message}")


@dataclass(frozen=True)
class Offer:
    """A decision line reduced to what the simulated customer reacts to."""

    account: int
    kind: str
    offer_id: str
    item: int  # index into world.items.ids, -1 for a save offer without an item
    channel: str
    placement: str | None
    trial_days: int
    expires_day: int | None

    @classmethod
    def parse(cls, decision: Mapping[str, Any], *, position: int, world: World) -> Offer:
        if not isinstance(decision, Mapping):
            raise _error(position, f"expected a JSON object, got {type(decision).__name__}")
        account_id = decision.get("account_id")
        if not isinstance(account_id, str):
            raise _error(position, "account_id is missing")
        try:
            account = world.account_index(account_id)
        except ValueError as exc:
            raise _error(position, str(exc)) from None
        if not world.joined[account]:
            raise _error(position, f"account {account_id} has not signed up yet")
        kind = decision.get("kind")
        if kind not in KINDS:
            raise _error(position, f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        item_id = decision.get("item_id")
        item = -1
        if item_id is not None:
            if item_id not in world.items.index:
                raise _error(position, f"item_id {item_id!r} is not in the catalog")
            item = world.items.index[item_id]
        elif kind != "save":
            raise _error(position, f"a {kind} offer needs an item_id")
        channel = decision.get("channel")
        if channel not in SIMULATED_CHANNELS:
            raise _error(
                position, f"channel must be one of {', '.join(SIMULATED_CHANNELS)}, got {channel!r}"
            )
        trial = decision.get("trial_days") or 0
        if not isinstance(trial, int) or trial < 0:
            raise _error(position, f"trial_days must be a whole number of days, got {trial!r}")
        message = decision.get("message") or {}
        expires_day = None
        if isinstance(message, Mapping) and message.get("expires_at"):
            try:
                at = datetime.fromisoformat(str(message["expires_at"]).replace("Z", "+00:00"))
            except ValueError:
                raise _error(
                    position, f"message.expires_at is not a timestamp: {message['expires_at']!r}"
                ) from None
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            expires_day = (at.date() - world.config.start).days
        return cls(
            account=account,
            kind=kind,
            offer_id=str(decision.get("offer_id") or f"{kind}:{item_id}"),
            item=item,
            channel=channel,
            placement=decision.get("placement"),
            trial_days=trial,
            expires_day=expires_day,
        )


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _fixes_need(world: World, offer: Offer, a: int) -> bool:
    """Whether the offered item lifts the limit that binds or unlocks a feature the account tried."""
    if world.pressure[a] <= 0.05 or offer.item < 0:
        return False
    plan = int(world.plan[a])
    bound = int(world.bound_metric[a])
    metric = world.items.metrics[bound] if bound >= 0 else None
    if offer.item < world.items.n_plans:
        if offer.item <= plan:
            return False
        lifts = (
            metric is not None
            and world.items.plan_limit[metric][offer.item]
            > world.items.plan_limit[metric][max(plan, 0)]
        )
        return bool(lifts or world.need_tier[a] > plan)
    if world.items.addon_base <= offer.item < world.items.product_base:
        k = offer.item - world.items.addon_base
        lifts = metric is not None and world.items.addon_grant[metric][k] > 0
        unlocks = bool((world.items.addon_has[k] & world.wants[a]).any())
        return bool(lifts or unlocks)
    return False


def probability(world: World, offer: Offer, *, repeats: int) -> tuple[float, float]:
    """(P(accept), P(pay after a trial)) for `offer` made today; the hidden truth."""
    a, d = offer.account, world.day
    pop = world.pop
    rtype = RESPONSE_TYPES[int(pop.response_type[a])][0]
    tenure = d - int(pop.signup_day[a])
    recent = int((world.contacts[a] > d - 28).sum())
    x = BASE[offer.kind]
    need = _fixes_need(world, offer, a)
    if offer.kind == "save":
        x += SAVE_EFFECT[rtype] + (0.5 if world.activated[a] else 0.0)
        x -= 0.8 * bool(world.detractor[a]) + 0.6 * bool(world.bad_support_until[a] > d)
        if 0 <= offer.item < world.items.n_plans and offer.item < world.plan[a]:
            x += 0.6  # a better-fitting plan instead of leaving
    else:
        x += TYPE_EFFECT[rtype]
        if offer.kind in ("upsell", "add_on"):
            x += (
                NEED_WEIGHT[rtype] * (0.6 + 0.25 * min(float(world.pressure[a]), 4.0))
                if need
                else -1.2
            )
        if not world.activated[a]:
            x -= 1.8
        if tenure < 14:
            x -= 0.8
        if world.detractor[a]:
            x -= 0.8
        if world.payfail_until[a] > d:
            x -= 1.0
    goals = _goals(world, offer.item)
    if offer.kind == "cross_sell":
        x += 1.8 if _goal_of(world, a) in goals else -1.5
    elif offer.kind == "add_on" and goals and _goal_of(world, a) in goals:
        x += 0.5
    if offer.kind in ("cross_sell", "add_on") and offer.item >= 0:
        spend = float(world.mrr_of(a))
        price = float(
            world.items.price_value[offer.item, world.interval[a], world.currency_index[a]]
        )
        ratio = price / max(spend, 1.0)
        if ratio > PRICE_ANCHOR:
            x -= 1.5 + 3.0 * (ratio - PRICE_ANCHOR)
    if offer.kind == "upsell" and pop.employees[a] < 3 and offer.item >= 0:
        step = world.items.price_value[offer.item, 0, world.currency_index[a]] - world.mrr_of(a)
        if step > 50:
            x -= 1.0
    # Channel and placement: contextual in-app beats cold email; a CSM suits large accounts.
    if offer.channel == "in_app":
        x += PLACEMENT.get(offer.placement or "", 0.2)
        if need and world.pressure[a] > 0.5:
            x += 0.5
    elif offer.channel == "email":
        x -= 0.5
    elif offer.channel == "csm_task":
        x += 1.2 if pop.employees[a] >= 50 else -0.8
    elif offer.channel == "checkout":
        x += 0.3
    if offer.trial_days >= 7 and offer.kind != "save":
        x += 1.0
    if offer.expires_day is not None and 0 <= offer.expires_day - d <= 21:
        x += 0.5 * 0.5**repeats
    x -= 0.3 * repeats + 0.35 * recent
    p_accept = _logistic(x)
    p_convert = 0.75 if need or rtype == "sure_thing" else 0.3
    if offer.trial_days >= 14:
        p_convert = min(0.95, p_convert + 0.05)
    return p_accept, p_convert


def _goals(world: World, item: int) -> frozenset[str]:
    if item < 0:
        return frozenset()
    found = world.catalog.item(world.items.ids[item])
    return getattr(found, "goals", frozenset())


def _goal_of(world: World, a: int) -> str | None:
    g = int(world.pop.goal[a])
    return world.profile.goal_signals[g].goal if g >= 0 else None


def respond(world: World, offer: Offer, *, repeats: int, nth: int, day: int) -> int:
    """Apply one offer: the customer sees it (or not), accepts (or not); returns 1 if accepted."""
    a = offer.account
    acct = np.array([a], np.int64)
    n = np.array([10_000 + nth], np.int64)
    if not world.using[a]:
        world.offer_log.append((day, a, offer.offer_id, 0.0, False))
        return 0
    props = json.dumps(
        {"offer_id": offer.offer_id, "channel": offer.channel, "placement": offer.placement}
    )
    seen_p = SEEN[offer.channel] * (
        min(1.0, float(world.pop.engagement[a])) if offer.channel == "in_app" else 1.0
    )
    seen = world._u("offer_seen", acct, n)[0] < seen_p
    if not seen:
        world.offer_log.append((day, a, offer.offer_id, 0.0, False))
        return 0
    if offer.channel == "in_app":
        world._emit(acct, OFFER_VIEWED, properties=props, user=np.zeros(1, np.int64), nth=n)
    elif offer.channel == "email":
        world._emit(acct, EMAIL_OPENED, properties=props, nth=n)
    if RESPONSE_TYPES[int(world.pop.response_type[a])][0] == "sleeping_dog":
        world.pushed_until[a] = day + 30
    p_accept, p_convert = probability(world, offer, repeats=repeats)
    accepted = world._u("offer_accept", acct, n)[0] < p_accept
    applied = accepted and _apply(world, offer, p_convert, n)
    world.offer_log.append((day, a, offer.offer_id, p_accept, bool(applied)))
    if applied:
        world._emit(acct, OFFER_CLICKED, properties=props, user=np.zeros(1, np.int64), nth=n)
        return 1
    if offer.channel == "in_app":
        world._emit(acct, OFFER_DISMISSED, properties=props, user=np.zeros(1, np.int64), nth=n)
    return 0


def _apply(world: World, offer: Offer, p_convert: float, n: Any) -> bool:
    """Make the accepted offer happen; False when it cannot (an item the account already holds)."""
    a, d = offer.account, world.day
    acct = np.array([a], np.int64)
    at = world._at(acct, f"offer:{offer.offer_id}")
    plan = int(world.plan[a])
    if offer.kind == "save":
        saved = bool(world.cancel_day[a] >= 0 or world.downgrade_day[a] >= 0)
        world.cancel_day[a] = world.downgrade_day[a] = -1
        if 0 <= offer.item < world.items.n_plans and offer.item != plan:
            start_plan(world, acct, np.array([offer.item]), at, d)
            return True
        return saved
    item = offer.item
    if item < world.items.n_plans:
        if item <= plan or plan < 0:
            return False
    elif item < world.items.product_base:
        k = item - world.items.addon_base
        a_on = world.items.add_ons[k]
        if world.addon_row[a, k] >= 0:
            return False
        if a_on.requires and world.items.ids[plan] not in a_on.requires:
            return False
    elif world.product_row[a, item - world.items.product_base] >= 0:
        return False
    if world.trial_item[a] >= 0:
        return False
    if offer.trial_days > 0:
        row = world.rows.add(acct, item, at, world.interval[acct], TRIALING, d)
        world.trial_item[a], world.trial_row[a] = item, row[0]
        world.trial_end[a] = d + offer.trial_days
        world.trial_converts[a] = world._u("trial_convert", acct, n)[0] < p_convert
        return True
    if item < world.items.n_plans:
        start_plan(world, acct, np.array([item]), at, d)
        world.pressure[a] = 0.0
    else:
        add_item(world, acct, item, at, d)
    return True
