"""The ``features`` table: per account and feature, its uses and blocks in the last days and its
uses while a trialing plan row was held (domain/signals.py's `FeatureUse`)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from upsell.domain.events import FEATURE_BLOCKED, FEATURE_USED
from upsell.engine._as_of import AsOf


def features(at: AsOf) -> ir.Table:
    """One row per account and feature used or blocked in the 30 days, or used during a trial."""
    f = at.usage.filter(at.usage.event.isin([FEATURE_USED, FEATURE_BLOCKED]))
    f = f.filter(f.key != "")
    used = f.event == FEATURE_USED
    blocked = f.event == FEATURE_BLOCKED
    out = f.group_by(account_id=f.account_id, feature=f.key).aggregate(
        used_30d=ibis.ifelse(used & (f.day >= at.d30), f.n, 0).sum(),
        blocked_7d=ibis.ifelse(blocked & (f.day >= at.d7), f.n, 0).sum(),
        blocked_30d=ibis.ifelse(blocked & (f.day >= at.d30), f.n, 0).sum(),
    )
    s = at.subscriptions
    trials = s.filter(s.status == "trialing").join(at.items, "item_id")
    trials = trials.filter(trials.item_kind == "plan").select(
        account_id=trials.account_id,
        t_start=trials.started_at.date(),
        t_end=trials.ended_at.date().fill_null(at.day),
    )
    fu = f.filter(used)
    during = fu.join(
        trials,
        (fu.account_id == trials.account_id) & (fu.day >= trials.t_start) & (fu.day < trials.t_end),
    )
    in_trial = during.group_by(account_id=during.account_id, feature=during.key).aggregate(
        used_in_trial=during.n.sum()
    )
    j = out.left_join(in_trial, ["account_id", "feature"])
    j = j.select(
        account_id=j.account_id,
        feature=j.feature,
        used_30d=j.used_30d.cast("int64"),
        blocked_7d=j.blocked_7d.cast("int64"),
        blocked_30d=j.blocked_30d.cast("int64"),
        used_in_trial=j.used_in_trial.fill_null(0).cast("int64"),
    )
    return j.filter((j.used_30d > 0) | (j.blocked_30d > 0) | (j.used_in_trial > 0))
