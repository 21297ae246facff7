"""Statistics over all accounts, for the rules that compare an account with the others
(domain/signals.py's `Population`): which items are held together (``co_adoption``) and which
features were used before moves to a higher plan (``upgrade_patterns``)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from upsell.domain.events import FEATURE_USED
from upsell.engine._as_of import WINDOW, AsOf
from upsell.engine.holdings import held


def co_adoption(at: AsOf) -> ir.Table:
    """Per ordered pair of items held together at as_of: the accounts holding both, support (their
    share of the accounts holding anything), confidence (their share of the antecedent's holders)
    and lift (confidence / the consequent's holders' share)."""
    h = held(at).select("account_id", "item_id").distinct()
    total = h.account_id.nunique().as_scalar()
    counts = h.group_by("item_id").aggregate(holders=h.count())
    a = h.rename(antecedent="item_id")
    b = h.rename(consequent="item_id")
    pairs = a.join(b, "account_id").filter(lambda t: t.antecedent != t.consequent)
    both = pairs.group_by("antecedent", "consequent").aggregate(accounts=pairs.count())
    ca = counts.rename(n_a="holders", antecedent="item_id")
    cb = counts.rename(n_b="holders", consequent="item_id")
    j = both.join(ca, "antecedent").join(cb, "consequent")
    n = total.cast("float64")
    return j.select(
        antecedent=j.antecedent,
        consequent=j.consequent,
        accounts=j.accounts.cast("int64"),
        support=j.accounts / n,
        confidence=j.accounts / j.n_a.cast("float64"),
        lift=(j.accounts / j.n_a.cast("float64")) / (j.n_b / n),
    )


def upgrade_patterns(at: AsOf) -> ir.Table:
    """Features used in the 30 days before a move to a higher plan, against all accounts that
    used them on that lower plan (lift = upgrade rate among users / base upgrade rate)."""
    s = at.subscriptions.join(at.items, "item_id").filter(lambda t: t.item_kind == "plan")
    s = s.filter(s.status != "trialing")
    frm = s.select(
        account_id=s.account_id, from_plan=s.item_id, from_tier=s.tier,
        f_start=s.started_at, f_end=s.ended_at,
    )  # fmt: skip
    to = s.select(account_id=s.account_id, to_tier=s.tier, t_start=s.started_at)
    up = frm.join(
        to,
        (frm.account_id == to.account_id)
        & (frm.f_end == to.t_start)
        & (to.to_tier > frm.from_tier),
    ).select(account_id=frm.account_id, from_plan=frm.from_plan, up_day=to.t_start.date())
    fu = at.usage.filter((at.usage.event == FEATURE_USED) & (at.usage.key != ""))
    before = fu.join(
        up,
        (fu.account_id == up.account_id)
        & (fu.day >= up.up_day - ibis.literal(WINDOW).as_interval("D"))
        & (fu.day < up.up_day),
    )
    with_f = before.group_by(from_plan=before.from_plan, feature=before.key).aggregate(
        upgrades=before.account_id.nunique()
    )
    on_plan = fu.join(
        frm,
        (fu.account_id == frm.account_id)
        & (fu.day >= frm.f_start.date())
        & (frm.f_end.isnull() | (fu.day < frm.f_end.date())),
    )
    users_f = on_plan.group_by(from_plan=on_plan.from_plan, feature=on_plan.key).aggregate(
        users=on_plan.account_id.nunique()
    )
    plan_accounts = frm.group_by("from_plan").aggregate(holders=frm.account_id.nunique())
    plan_ups = up.group_by("from_plan").aggregate(upgraders=up.account_id.nunique())
    j = (
        with_f.join(users_f, ["from_plan", "feature"])
        .join(plan_accounts, "from_plan")
        .join(plan_ups, "from_plan")
    )
    rate = j.upgrades / j.users.cast("float64")
    base = j.upgraders / j.holders.cast("float64")
    return j.select(
        from_plan=j.from_plan,
        feature=j.feature,
        upgrades=j.upgrades.cast("int64"),
        lift=(rate / base).cast("float64"),
    )
