"""What accounts do each day: grow their gauges, use features and counters, reach activation.

`use` runs once a day over the accounts that use the product, in a fixed order (the order of its
`World._emit` calls is part of the output): trait gauges grow towards each account's target and stop
at the plan's limit (`Limit Reached` instead), measured gauges and counters are reported and
throttled at the limit, active users use the features they have discovered (`Feature Blocked` when
the plan lacks one), accounts reach activation, show their goals in usage, open and close support
tickets and answer NPS surveys. A limit that binds or a blocked feature adds to the account's
pressure, which drives organic upgrades (lifecycle.py) and the response model (responses.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from upsell.domain.events import (
    FEATURE_BLOCKED,
    LIMIT_REACHED,
    SUPPORT_TICKET_CLOSED,
    SUPPORT_TICKET_OPENED,
    SURVEY_ANSWERED,
)
from upsell.simulator import _random as rnd

if TYPE_CHECKING:
    from upsell.simulator.world import World

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Share of would-be uses of a locked feature that are actually attempted (and blocked).
LOCKED_TRY = 0.3
_SATISFACTION_REASONS = {
    "detractor": ("too expensive", "missing features", "hard to use", "slow support"),
    "passive": ("does the job", "some features missing", "price is fair"),
    "promoter": ("saves us time", "easy to use", "great support", "the team loves it"),
}


def limit_of(world: World, metric: str, accounts: I64) -> F64:
    """Each account's limit of `metric`: its plan's (inf = unlimited) plus its add-ons' grants."""
    plans = world.plan[accounts]
    limit = world.items.plan_limit[metric][np.maximum(plans, 0)].copy()
    grants = world.items.addon_grant[metric]
    for k in np.flatnonzero(grants):
        limit += grants[k] * (world.addon_row[accounts, k] >= 0)
    return limit


def _available(world: World, accounts: I64) -> B:
    """Which features each account has: its plan's and its add-ons' (one row per account, one column per feature)."""
    have = world.items.plan_has[np.maximum(world.plan[accounts], 0)].copy()
    for k in range(len(world.items.add_ons)):
        have |= (world.addon_row[accounts, k] >= 0)[:, None] & world.items.addon_has[k][None, :]
    return have


def _hit_limit(
    world: World, accounts: I64, metric: str, weight: float, every_days: int = 7
) -> None:
    """`accounts` would pass `metric`'s limit: their pressure grows by `weight`, and those that have
    not been told for `every_days` days send `Limit Reached`."""
    d = world.day
    last = world.last_limit_hit[metric]
    fresh = accounts[last[accounts] <= d - every_days]
    world.pressure[accounts] += weight
    world.bound_metric[accounts] = world.items.metrics.index(metric)
    if len(fresh):
        last[fresh] = d
        props = json.dumps({"metric": metric})
        world._emit(fresh, LIMIT_REACHED, properties=props, user=np.zeros(len(fresh), np.int64))


def use(world: World, d: int, act: I64) -> None:
    """Day `d` of the accounts `act` (sorted; those that use the product)."""
    prof, pop = world.profile, world.pop
    tenure = d - pop.signup_day[act]
    settled = 1.0 - np.exp(-tenure / 45.0)
    activity = pop.engagement[act] * np.where(world.activated[act], 1.0, 0.5)
    world.pressure[act] *= np.exp(-1.0 / 10.0)
    seats_gauge = next((g.metric for g in prof.trait_gauges if g.driver == "team"), None)
    team = world.gauge[seats_gauge][act] if seats_gauge else np.ones(len(act), np.int64)

    # Trait gauges: grow towards the account's target, blocked by the plan's limit.
    for g in prof.trait_gauges:
        value = world.gauge[g.metric][act]
        if g.driver == "team":
            target = 1 + (pop.team_target[act] - 1) * (1 - np.exp(-tenure / 60.0))
        else:
            target = (
                (g.base + g.per_user * team)
                * pop.work_factor[act]
                * (1 - np.exp(-(tenure + 1) / 90.0))
            )
        wants_more = (value + 1 <= target) & (world._u(f"grow:{g.metric}", act) < 0.25)
        limit = limit_of(world, g.metric, act)
        blocked = wants_more & (value + 1 > limit)
        grow = wants_more & ~blocked
        shrink = ~wants_more & (value > 1) & (world._u(f"shrink:{g.metric}", act) < 0.002)
        _hit_limit(world, act[blocked], g.metric, 1.0)
        world.gauge[g.metric][act[grow]] += 1
        world.gauge[g.metric][act[shrink]] -= 1
        changed = act[grow | shrink]
        world.traits_changed[changed] = d
        users = np.zeros(len(act), np.int64)
        world._emit(act[grow], g.up_event, user=users[grow])
        world._emit(act[shrink], g.down_event, user=users[shrink])

    # Measured gauges: a weekly measurement, capped at the limit.
    for m in prof.measured_gauges:
        due = act[(tenure % m.every_days) == 0]
        if not len(due):
            continue
        t_due = d - pop.signup_day[due]
        team_due = world.gauge[seats_gauge][due] if seats_gauge else 1
        value = m.per_user * team_due * pop.work_factor[due] * (0.2 + t_due / 120.0)
        limit = limit_of(world, m.metric, due)
        over = value > limit
        _hit_limit(world, due[over], m.metric, 1.0)
        value = np.round(np.minimum(value, limit), 1)
        world.measured[m.metric][due] = value
        metric = world.catalog.metrics.get(m.metric)
        if metric is None or metric.source_event is None:
            continue
        props = pc.binary_join_element_wise(
            f'{{"{metric.source_property}": ', pc.cast(pa.array(value), pa.string()), "}", ""
        )
        world._emit(due, metric.source_event, properties=props)

    # Counters: daily usage by adopters, throttled at the limit of the billing period.
    period = (d - world.plan_since[act]) // 30
    new_period = period != world.period_index[act]
    world.period_index[act] = period
    for c in prof.counters:
        use = world.period_use[c.metric]
        use[act[new_period]] = 0
        users = act[world.counter_adopts[c.metric][act]]
        if not len(users):
            continue
        k = np.searchsorted(act, users)
        lam = (
            c.per_user_day
            * team[k]
            * world.counter_level[c.metric][users]
            * activity[k]
            * (0.3 + 0.7 * settled[k])
        )
        n = rnd.poisson(world._u(f"count:{c.metric}", users), lam)
        limit = limit_of(world, c.metric, users)
        room = np.maximum(limit - use[users], 0)
        over = n > room
        _hit_limit(world, users[over], c.metric, 1.5, every_days=30)
        n = np.minimum(n, room).astype(np.int64)
        use[users] += n
        metric = world.catalog.metrics.get(c.metric)
        if metric is None or metric.source_event is None:
            continue
        if metric.source_property:
            positive = n > 0
            props = pc.binary_join_element_wise(
                f'{{"{metric.source_property}": ',
                pc.cast(pa.array(n[positive]), pa.string()),
                "}",
                "",
            )
            world._emit(users[positive], metric.source_event, properties=props)
        else:
            world._repeat(users, n, metric.source_event, None, user_max=team[k])

    # Feature use: active users, each doing a few things; features above the plan are blocked.
    active_users = np.minimum(
        rnd.poisson(world._u("active_users", act), team * prof.user_active_day * activity), team
    )
    n_events = rnd.poisson(
        world._u("feature_events", act),
        active_users * prof.events_per_user_day * (0.5 + 0.5 * settled),
    )
    some = np.flatnonzero(n_events > 0)
    if len(some):
        acct = np.repeat(act[some], n_events[some])
        starts = np.cumsum(n_events[some]) - n_events[some]
        nth = np.arange(len(acct), dtype=np.int64) - np.repeat(starts, n_events[some])
        weights = world.feature_weight[acct] * (
            world.discover_day[acct] <= (d - pop.signup_day[acct])[:, None]
        )
        feature = rnd.choose(world._u("feature", acct, nth), weights + 1e-12)
        available = _available(world, act[some])
        avail = np.repeat(available, n_events[some], axis=0)[np.arange(len(acct)), feature]
        # People learn what is locked: most attempts at a locked feature are not made at all.
        tried = avail | (world._u("try_locked", acct, nth) < LOCKED_TRY)
        acct, nth, feature, avail = acct[tried], nth[tried], feature[tried], avail[tried]
        per_acct = np.repeat(active_users[some], n_events[some])[tried]
        user = np.floor(world._u("feature_user", acct, nth) * per_acct).astype(np.int64)
        table = pa.array([json.dumps({"feature": f}) for f in world.items.features])
        used, blocked = avail, ~avail
        world._emit(
            acct[used],
            prof.feature_used_event,
            properties=table.take(feature[used]),
            user=user[used],
            nth=nth[used],
        )
        if blocked.any():
            b_acct = acct[blocked]
            world._emit(
                b_acct,
                FEATURE_BLOCKED,
                properties=table.take(feature[blocked]),
                user=user[blocked],
                nth=nth[blocked],
            )
            np.add.at(world.pressure, b_acct, 0.5)
            # A plan feature calls for that plan; an add-on's feature for the add-on, not a plan.
            tier = world.items.feature_tier[feature[blocked]]
            is_plan = tier == np.floor(tier)
            np.maximum.at(world.need_tier, b_acct[is_plan], tier[is_plan].astype(np.int64))

    # Activation: the rule's remaining steps on the day the account gets there.
    reach = act[pop.activates[act] & ~world.activated[act] & (tenure == pop.activation_delay[act])]
    if len(reach):
        world.activated[reach] = True
        world.activation_day[reach] = d
        for event, props, _count in world.items.activation_steps:
            world._emit(reach, event, properties=props, user=np.zeros(len(reach), np.int64))

    # Goals show in usage (inbound leads, time tracking): what makes a product relevant.
    for gi, gs in enumerate(prof.goal_signals):
        mine = act[pop.goal[act] == gi]
        if not len(mine):
            continue
        k = np.searchsorted(act, mine)
        n = rnd.poisson(
            world._u(f"goal:{gs.goal}", mine),
            gs.per_day * activity[k] * (0.3 + 0.7 * settled[k]) * np.sqrt(team[k]),
        )
        main = json.dumps(dict(gs.properties)) if gs.properties else None
        if gs.other_share and gs.other_properties:
            acct = np.repeat(mine, n)
            starts = np.cumsum(n) - n
            nth = np.arange(len(acct), dtype=np.int64) - np.repeat(starts, n)
            other = world._u(f"goal_other:{gs.goal}", acct, nth) < gs.other_share
            options = pa.array([main, json.dumps(dict(gs.other_properties))])
            world._emit(acct, gs.event, properties=options.take(other.astype(np.int64)), nth=nth)
        else:
            world._repeat(mine, n, gs.event, main)

    # Support: tickets opened and closed, some badly.
    opening = act[
        (world.ticket_close_day[act] < 0) & (world._u("ticket", act) < 0.004 * (1 + team / 20))
    ]
    if len(opening):
        world.ticket_open_day[opening] = d
        world.ticket_close_day[opening] = (
            d + 1 + np.floor(world._u("ticket_days", opening) * 6).astype(np.int64)
        )
        ids = pc.binary_join_element_wise(world.account_ids.take(opening), str(d), "-")
        props = pc.binary_join_element_wise('{"ticket_id": "', ids, '"}', "")
        world._emit(
            opening,
            SUPPORT_TICKET_OPENED,
            properties=props,
            user=np.zeros(len(opening), np.int64),
        )
    closing = act[world.ticket_close_day[act] == d]
    if len(closing):
        bad = world._u("ticket_bad", closing) < np.where(
            world.pop.satisfaction[closing] < -0.5, 0.35, 0.15
        )
        world.bad_support_until[closing[bad]] = d + 60
        world.ticket_close_day[closing] = -1
        verdict = pa.array(['", "satisfaction": "good"}', '", "satisfaction": "bad"}'])
        ids = pc.binary_join_element_wise(
            world.account_ids.take(closing),
            pc.cast(pa.array(world.ticket_open_day[closing]), pa.string()),
            "-",
        )
        props = pc.binary_join_element_wise(
            '{"ticket_id": "', ids, verdict.take(bad.astype(np.int64)), ""
        )
        world._emit(closing, SUPPORT_TICKET_CLOSED, properties=props)

    # Surveys: NPS after 30 days and every 90 days after that, answered by some.
    asked = act[(tenure >= 30) & ((tenure - 30) % 90 == 0)]
    answer = asked[world._u("survey", asked) < 0.35]
    if len(answer):
        support = (world.bad_support_until[answer] > d).astype(float)
        score = np.clip(
            np.rint(
                7.6
                + 1.8 * pop.satisfaction[answer]
                - 2.5 * support
                - 0.3 * np.minimum(world.pressure[answer], 5)
            ),
            0,
            10,
        ).astype(np.int64)
        world.detractor[answer] = score <= 6
        band = np.where(score <= 6, 0, np.where(score <= 8, 1, 2))
        texts = []
        for s, b, r in zip(
            score.tolist(),
            band.tolist(),
            world._u("survey_reason", answer).tolist(),
            strict=True,
        ):
            options = _SATISFACTION_REASONS[("detractor", "passive", "promoter")[b]]
            texts.append(
                json.dumps({"survey": "nps", "score": s, "reason": options[int(r * len(options))]})
            )
        world._emit(
            answer,
            SURVEY_ANSWERED,
            properties=pa.array(texts),
            user=np.zeros(len(answer), np.int64),
        )
