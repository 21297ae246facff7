"""An account's life: signing up, plans and items starting and ending, churn, upgrades, returns.

`World._simulate_day` calls these in a fixed order (the order of the `World._emit` calls is part of
the output): `signups` (new accounts start their entry plan), `scheduled` (trials end, downgrades and
cancellations requested three days before take effect), then after the day's usage (usage.py)
`moves` (payment failures, cancellation and downgrade requests, organic upgrades, free accounts
going dormant), and `returns` (some churned accounts come back). `start_plan` and `add_item` are how
every subscription row starts, offers' included (responses.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from upsell.domain.events import CANCEL_REQUESTED, DOWNGRADE_REQUESTED, PAYMENT_FAILED
from upsell.simulator.config import DAY_US
from upsell.simulator.population import RESPONSE_TYPES
from upsell.simulator.rows import ACTIVE, CANCELED
from upsell.simulator.usage import limit_of

if TYPE_CHECKING:
    from upsell.simulator.world import World

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_CANCEL_REASONS = ("too expensive", "not using it enough", "switching tool", "company closed")


def signups(world: World, d: int) -> None:
    """The accounts whose signup day is `d` join on their entry plan and take their first steps
    towards activation."""
    lo, hi = np.searchsorted(world.pop.signup_day, [d, d + 1])
    new = np.arange(lo, hi, dtype=np.int64)
    if not len(new):
        return
    world.joined[new] = world.using[new] = True
    world.traits_changed[new] = d
    for g in world.profile.trait_gauges:
        world.gauge[g.metric][new] = 1
    at = (
        world.start_us
        + d * DAY_US
        + np.floor(world._u("signup_at", new) * 43_200).astype(np.int64) * 1_000_000
    )
    start_plan(world, new, world.entry_plan[new], at, d)
    plans = pa.array([f'{{"plan": "{p.id}"}}' for p in world.items.plans])
    world._emit(
        new,
        world.profile.signup_event,
        properties=plans.take(world.entry_plan[new]),
        user=np.zeros(len(new), np.int64),
    )
    # First steps towards activation: all but one of each counted condition.
    for event, props, count in world.items.activation_steps:
        if count > 1:
            world._repeat(
                new,
                np.full(len(new), count - 1),
                event,
                props,
                user_max=np.ones(len(new), np.int64),
            )


def start_plan(world: World, accounts: I64, plans: I64, at: I64, d: int) -> None:
    """Close each account's current plan row (if any) and open one for `plans` at `at`."""
    world.rows.close(world.plan_row[accounts], at, d)
    world.plan_row[accounts] = world.rows.add(
        accounts, plans, at, world.interval[accounts], ACTIVE, d
    )
    world.plan[accounts] = plans
    world.plan_since[accounts] = d
    world.period_index[accounts] = 0
    paid = ~world.items.plan_free[plans]
    world.ever_paid[accounts[paid]] = True
    # Add-ons the new plan does not allow end with the change.
    for k, a in enumerate(world.items.add_ons):
        allowed = (
            np.isin(plans, [world.items.index[r] for r in a.requires])
            if a.requires
            else np.ones(len(plans), bool)
        )
        drop = accounts[(world.addon_row[accounts, k] >= 0) & ~allowed]
        if len(drop):
            world.rows.close(world.addon_row[drop, k], at[np.isin(accounts, drop)], d)
            world.addon_row[drop, k] = -1
    # A lower limit than the account uses: it removes what the plan no longer allows.
    for g in world.profile.trait_gauges:
        value = world.gauge[g.metric][accounts]
        limit = limit_of(world, g.metric, accounts)
        excess = np.where(value > limit, value - np.minimum(value, limit), 0).astype(np.int64)
        if excess.any():
            world._repeat(
                accounts, excess, g.down_event, None, user_max=np.ones(len(accounts), np.int64)
            )
            world.gauge[g.metric][accounts] = value - excess
            world.traits_changed[accounts[excess > 0]] = d


def add_item(world: World, accounts: I64, item: int, at: I64, d: int, status: int = ACTIVE) -> I64:
    """Start `item` (an add-on or a product) for `accounts` at `at`; returns the new rows."""
    rows = world.rows.add(accounts, item, at, world.interval[accounts], status, d)
    if item >= world.items.product_base:
        world.product_row[accounts, item - world.items.product_base] = rows
    elif item >= world.items.addon_base:
        world.addon_row[accounts, item - world.items.addon_base] = rows
    world.pressure[accounts] = 0.0
    world.ever_paid[accounts] = True
    return rows


def scheduled(world: World, d: int) -> None:
    """What was scheduled for day `d` happens: trials end, downgrades and cancellations take effect."""
    # Trials end: convert (the trial row ends, a paid row starts) or lapse.
    ending = np.flatnonzero(world.trial_end == d)
    if len(ending):
        at = world.start_us + d * DAY_US + np.zeros(len(ending), np.int64)
        world.rows.close(world.trial_row[ending], at, d)
        conv = ending[world.trial_converts[ending] & world.using[ending]]
        item = world.trial_item[conv]
        for it in np.unique(item):
            sel = conv[item == it]
            if it < world.items.n_plans:
                start_plan(world, sel, np.full(len(sel), it), at[: len(sel)], d)
            else:
                add_item(world, sel, int(it), at[: len(sel)], d)
        world.trial_item[ending] = world.trial_row[ending] = world.trial_end[ending] = -1
    # Downgrades take effect.
    down = np.flatnonzero(world.downgrade_day == d)
    down = down[world.using[down] & (world.plan[down] > world.downgrade_to[down])]
    if len(down):
        start_plan(world, down, world.downgrade_to[down], world._at(down, "downgrade"), d)
    world.downgrade_day[world.downgrade_day == d] = -1
    # Cancellations take effect: every item ends.
    leave = np.flatnonzero(world.cancel_day == d)
    world.cancel_day[leave] = -1
    leave = leave[world.using[leave]]
    if len(leave):
        at = world._at(leave, "cancel")
        world.rows.close(world.plan_row[leave], at, d, CANCELED)
        for k in range(len(world.items.add_ons)):
            world.rows.close(world.addon_row[leave, k], at, d, CANCELED)
        for k in range(len(world.items.products)):
            world.rows.close(world.product_row[leave, k], at, d, CANCELED)
        world.rows.close(world.trial_row[leave], at, d, CANCELED)
        world.plan_row[leave] = world.plan[leave] = -1
        world.addon_row[leave] = world.product_row[leave] = -1
        world.trial_item[leave] = world.trial_row[leave] = world.trial_end[leave] = -1
        world.using[leave] = False
        world.churned_day[leave] = d


def moves(world: World, d: int, act: I64) -> None:
    """The accounts `act` (using the product) make their own moves of day `d`."""
    prof, pop = world.profile, world.pop
    plan = world.plan[act]
    paid = act[(plan >= 0) & ~world.items.plan_free[np.maximum(plan, 0)]]
    free = act[(plan >= 0) & world.items.plan_free[np.maximum(plan, 0)]]

    # Payment failures.
    failing = paid[world._u("payment", paid) < 0.0015]
    if len(failing):
        world.payfail_until[failing] = d + 30
        world._emit(failing, PAYMENT_FAILED, properties='{"reason": "card_declined"}')

    # Churn of paying accounts: likelier before activation, after payment failures and bad
    # support, for detractors, and after pushing a sleeping dog or contacting too often.
    recent = (world.contacts[paid] > d - 28).sum(axis=1)
    risk = (
        np.where(world.activated[paid], 1.0, 3.0)
        * np.where(world.payfail_until[paid] > d, 3.0, 1.0)
        * np.where(world.bad_support_until[paid] > d, 2.0, 1.0)
        * np.where(world.detractor[paid], 1.5, 1.0)
        * np.where(world.pushed_until[paid] > d, 4.0, 1.0)
        * np.where(recent >= 3, 1.5, 1.0)
    )
    leaving = paid[
        (world.cancel_day[paid] < 0)
        & (world._u("churn", paid) < _hazard(np.minimum(prof.paid_churn_monthly * risk, 0.9)))
    ]
    if len(leaving):
        world.cancel_day[leaving] = d + 3
        reasons = pa.array([json.dumps({"reason": r}) for r in _CANCEL_REASONS])
        pick = np.floor(world._u("cancel_reason", leaving) * len(_CANCEL_REASONS)).astype(np.int64)
        world._emit(
            leaving,
            CANCEL_REQUESTED,
            properties=reasons.take(pick),
            user=np.zeros(len(leaving), np.int64),
        )

    # Downgrades: paying for a tier the account does not use.
    tier = world.plan[paid]
    fits_lower = (tier >= 2) & (world.need_tier[paid] < tier) & (world.pressure[paid] < 0.05)
    for g in prof.trait_gauges:
        lower = world.items.plan_limit[g.metric][np.maximum(tier - 1, 0)]
        fits_lower &= world.gauge[g.metric][paid] <= lower
    down = paid[
        fits_lower
        & (world.downgrade_day[paid] < 0)
        & (world.cancel_day[paid] < 0)
        & (world._u("downgrade", paid) < 0.004)
    ]
    if len(down):
        world.downgrade_day[down] = d + 3
        world.downgrade_to[down] = world.plan[down] - 1
        names = pa.array([json.dumps({"to_plan": p.id}) for p in world.items.plans])
        world._emit(
            down,
            DOWNGRADE_REQUESTED,
            properties=names.take(world.downgrade_to[down]),
            user=np.zeros(len(down), np.int64),
        )

    # Organic upgrades when limits bind or features are missing.
    cand = act[
        (world.pressure[act] > 0.05)
        & (world.plan[act] >= 0)
        & (world.cancel_day[act] < 0)
        & (world.trial_item[act] < 0)
    ]
    if len(cand):
        rate = np.array([prof.upgrade_hazard[name] for name, _ in RESPONSE_TYPES])[
            pop.response_type[cand]
        ]
        affordable = np.where(pop.employees[cand] < 3, 0.5, 1.0)
        h = (
            rate
            * np.minimum(world.pressure[cand], 5.0)
            * np.where(world.activated[cand], 1.0, 0.3)
            * affordable
        )
        go = cand[world._u("upgrade", cand) < h]
        if len(go):
            _organic_upgrade(world, d, go)

    # Free accounts drift away, much faster before they reach the 'aha' moment.
    if len(free):
        on, off = prof.free_dormancy_monthly
        h = _hazard(np.where(world.activated[free], on, off))
        gone = free[world._u("dormant", free) < h]
        world.using[gone] = False


def _organic_upgrade(world: World, d: int, go: I64) -> None:
    """The accounts `go` upgrade by themselves: some buy an add-on that lifts their binding limit,
    the others move up to the plan they need (at most the top self-serve plan below 100 employees)."""
    at = world._at(go, "upgrade")
    plan = world.plan[go]
    # A binding gauge that an add-on for this plan lifts: some buy the add-on instead.
    bought = np.zeros(len(go), bool)
    for k, a in enumerate(world.items.add_ons):
        if not a.grants:
            continue
        lifts = np.isin(
            world.bound_metric[go],
            [world.items.metrics.index(m) for m in a.grants if m in world.items.metrics],
        )
        ok = (
            lifts
            & np.isin(plan, [world.items.index[r] for r in a.requires])
            & (world.addon_row[go, k] < 0)
            & ~bought
        )
        ok &= world._u(f"buy_addon:{a.id}", go) < 0.4
        sel = go[ok]
        if len(sel):
            add_item(world, sel, world.items.addon_base + k, at[ok], d)
            bought |= ok
    rest = ~bought
    target = np.maximum(plan + 1, world.need_tier[go])
    big = world.pop.employees[go] >= 100
    target = np.where(
        big,
        np.minimum(target, world.items.n_plans - 1),
        np.minimum(target, world.items.top_self_serve),
    )
    up = rest & (target > plan)
    if up.any():
        start_plan(world, go[up], target[up], at[up], d)
        world.pressure[go[up]] = 0.0
        world.traits_changed[go[up]] = d


def _hazard(monthly: F64 | float) -> F64:
    """The daily chance that makes `monthly` over 30 days."""
    return 1.0 - np.power(1.0 - np.asarray(monthly, dtype=np.float64), 1.0 / 30.0)


def returns(world: World, d: int) -> None:
    """Some activated accounts that cancelled over 30 days ago come back, on the first paid plan."""
    gone = np.flatnonzero((world.churned_day >= 0) & (world.churned_day < d - 30) & world.activated)
    back = gone[world._u("return", gone) < 0.0008]
    if len(back):
        world.using[back] = True
        world.churned_day[back] = -1
        first_paid = int(np.flatnonzero(~world.items.plan_free)[0])
        start_plan(world, back, np.full(len(back), first_paid), world._at(back, "return"), d)
        world._emit(back, "Signed In", user=np.zeros(len(back), np.int64))
