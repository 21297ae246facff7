"""Engagement per account over the last 30 days against the 30 before: events, active days, the
breadth of features used, active and power users, days per user and DAU/MAU (domain/signals.py's
`Engagement`), for the accounts table."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from upsell.domain.events import FEATURE_USED
from upsell.engine._as_of import WINDOW, AsOf, attach, float64

#: A power user is in the top decile of all users' events in the 30 days (percent rank >= this).
POWER_USER_RANK = 0.9


def _per_user(at: AsOf) -> ir.Table:
    us = at.users.filter(at.users.day >= at.d30)
    return us.group_by("account_id", "user_id").aggregate(n=us.n.sum(), days=us.count())


def power_user_floor(at: AsOf) -> ir.Table:
    """One row: `floor`, the fewest events in the 30 days of a power user among all users (null
    without users). A user with at least that many is a power user: the same as being in the top
    decile, so that a few accounts' signals (`AsOf.power_floor`) count them as everyone's do."""
    ranked = _ranked(_per_user(at))
    power = ranked.filter(ranked["rank"] >= POWER_USER_RANK)
    return power.aggregate(floor=power.n.min().cast("float64"))


def _ranked(per_user: ir.Table) -> ir.Table:
    return per_user.mutate(rank=ibis.percent_rank().over(order_by=per_user.n))


def engagement(at: AsOf) -> ir.Table:
    """One row per account: counts are 0 without activity; `days_per_user` and `dau_mau` null
    without active users. Power users are ranked among all users of `at`, or counted against
    `at.power_floor` when it is given (a few accounts' signals: `power_user_floor`)."""
    u = at.usage
    recent = u.filter(u.day >= at.d30)
    prev = u.filter((u.day >= at.d60) & (u.day < at.d30))
    ev = recent.group_by("account_id").aggregate(
        events_30d=recent.n.sum(), active_days_30d=recent.day.nunique()
    )
    pv = prev.group_by("account_id").aggregate(events_prev_30d=prev.n.sum())
    fu = recent.filter((recent.event == FEATURE_USED) & (recent.key != ""))
    br = fu.group_by("account_id").aggregate(breadth_30d=fu.key.nunique())
    per_user = _per_user(at)
    if at.power_floor is None:
        ranked = _ranked(per_user)
        power = ranked["rank"] >= POWER_USER_RANK
    else:
        ranked = per_user
        power = (ranked.n >= at.power_floor).fill_null(False)
    ua = ranked.group_by("account_id").aggregate(
        active_users_30d=ranked.count(),
        user_days=ranked.days.sum(),
        power_users=ibis.ifelse(power, 1, 0).sum(),
    )
    t = attach(at.accounts.select("account_id"), ev, pv, br, ua)
    users = t.active_users_30d.fill_null(0)
    return t.select(
        account_id=t.account_id,
        events_30d=t.events_30d.fill_null(0).cast("int64"),
        events_prev_30d=t.events_prev_30d.fill_null(0).cast("int64"),
        active_days_30d=t.active_days_30d.fill_null(0).cast("int64"),
        breadth_30d=t.breadth_30d.fill_null(0).cast("int64"),
        active_users_30d=users.cast("int64"),
        power_users=t.power_users.fill_null(0).cast("int64"),
        days_per_user=ibis.ifelse(
            users > 0, t.user_days / users.cast("float64"), ibis.null("float64")
        ),
        dau_mau=ibis.ifelse(
            users > 0,
            t.user_days.cast("float64") / float64(WINDOW) / users.cast("float64"),
            ibis.null("float64"),
        ),
    )
