"""What accounts hold at as_of: their subscription rows still running, the plan among them (the
domain's rule, over whole tables), whether they ever paid, and the limits their holdings give them."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from upsell.engine._as_of import AsOf


def highest_plans(held: ir.Table, items: ir.Table) -> ir.Table:
    """Per account, the plan of the highest tier among its `held` subscription rows (the latest
    started when it holds that tier twice): its plan, by the domain's rule
    (`upsell.domain.catalog.Catalog.highest_plan`), with the row's status, interval and start.
    `items` is `upsell.engine.catalog_tables.catalog_items`."""
    h = held.join(items, "item_id").filter(lambda t: t.item_kind == "plan")
    ranked = h.mutate(
        rank=ibis.row_number().over(
            group_by=h.account_id, order_by=[ibis.desc(h.tier), ibis.desc(h.started_at)]
        )
    )
    top = ranked.filter(ranked["rank"] == 0)
    return top.select(
        account_id=top.account_id,
        plan_id=top.item_id,
        plan_status=top.status,
        plan_interval=top.interval,
        plan_started_at=top.started_at,
    )


def held(at: AsOf) -> ir.Table:
    """The subscription rows running at as_of (started before it, not ended by it)."""
    s = at.subscriptions
    return s.filter(s.ended_at.isnull() | (s.ended_at > at.instant))


def plan_held(at: AsOf) -> ir.Table:
    """The plan held at as_of, with its row."""
    return highest_plans(held(at), at.items)


def paid_before(at: AsOf) -> ir.Table:
    """``account_id, paid_before``: the accounts with a paid, non-trialing row started before as_of."""
    s = at.subscriptions
    paid = s.filter((s.status != "trialing") & (s.unit_price.try_cast("float64") > 0))
    return paid.group_by("account_id").aggregate(paid_before=paid.count() > 0)


def effective_limits(at: AsOf, plan: ir.Table) -> ir.Table:
    """Per account and metric: the plan's limit plus the held add-ons' grants x quantity."""
    lim = at.limits
    base = plan.join(lim, plan.plan_id == lim.item_id).select(
        account_id=plan.account_id, metric=lim.metric, base=lim.amount
    )
    h = held(at)
    grants = h.join(lim.filter(lim.grant), h.item_id == lim.item_id)
    extra = grants.group_by(grants.account_id, grants.metric).aggregate(
        extra=(grants.amount * grants.quantity).sum()
    )
    out = base.left_join(extra, ["account_id", "metric"])
    return out.select(
        account_id=out.account_id,
        metric=out.metric,
        limit=out.base + out.extra.fill_null(0.0),
    )
