"""A summary of what a workspace holds: accounts, MRR, plan mix and the most used events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from upsell.domain.catalog import Catalog
from upsell.domain.money import Money
from upsell.store.schema import accounts, events, subscription_items
from upsell.store.subscriptions import item_from_row

TOP_EVENTS = 8
USAGE_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class PlanShare:
    plan_id: str
    accounts: int
    mrr: Money


@dataclass(frozen=True)
class DataSummary:
    """The workspace as of `as_of` (the latest event, or now when there are none)."""

    as_of: datetime
    accounts: int
    paying_accounts: int
    mrr: Money
    plans: tuple[PlanShare, ...]
    no_plan: int
    events: int
    top_events: tuple[tuple[str, int], ...]  # the last 30 days before as_of


def summarize(*, conn: sa.Connection, catalog: Catalog) -> DataSummary:
    latest = conn.execute(sa.select(sa.func.max(events.c.timestamp))).scalar_one()
    as_of = latest or datetime.now(UTC)
    held = sa.select(subscription_items).where(
        subscription_items.c.started_at <= as_of,
        sa.or_(subscription_items.c.ended_at.is_(None), subscription_items.c.ended_at > as_of),
    )
    mrr: dict[str, Money] = {}
    plan_of: dict[str, str] = {}
    for row in conn.execute(held):
        item = item_from_row(row)
        mrr[item.account_id] = mrr.get(item.account_id, Money.zero(catalog.currency)) + item.mrr(
            catalog.fx
        )
        plan = catalog.plan(item.item_id)
        if plan is not None and (
            item.account_id not in plan_of
            or plan.tier > catalog.plan(plan_of[item.account_id]).tier  # type: ignore[union-attr]
        ):
            plan_of[item.account_id] = plan.id
    zero = Money.zero(catalog.currency)
    shares = []
    for plan in catalog.plans:
        members = [a for a, p in plan_of.items() if p == plan.id]
        total = sum((mrr.get(a, zero) for a in members), zero)
        shares.append(PlanShare(plan.id, len(members), total))
    n_accounts = conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one()
    n_events = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    count = sa.func.count().label("n")
    top = conn.execute(
        sa.select(events.c.event, count)
        .where(events.c.timestamp > as_of - USAGE_WINDOW, events.c.timestamp <= as_of)
        .group_by(events.c.event)
        .order_by(count.desc(), events.c.event)
        .limit(TOP_EVENTS)
    ).all()
    return DataSummary(
        as_of=as_of,
        accounts=n_accounts,
        paying_accounts=sum(1 for m in mrr.values() if m.amount > 0),
        mrr=sum(mrr.values(), zero),
        plans=tuple(shares),
        no_plan=n_accounts - len(plan_of),
        events=n_events,
        top_events=tuple((name, n) for name, n in top),
    )
