"""A summary of what a workspace holds: accounts, MRR, plan mix and the most used events.

MRR and plans come from the engine (`upsell.engine.movements`, `upsell.engine.holdings`), the
same rules and the same micro-units as the report, so every MRR the user sees agrees to the cent;
the counts come from the store (`upsell.store.summary`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from upsell.domain.metrics import from_micros
from upsell.domain.money import Money
from upsell.engine.catalog_tables import catalog_items
from upsell.engine.holdings import highest_plans
from upsell.engine.movements import account_mrr, materialised_changes, mrr_rows
from upsell.store.accounts import count_accounts
from upsell.store.arrow import subscriptions_table
from upsell.store.events import count_events
from upsell.store.summary import latest_event_at, top_events
from upsell.workspace import Workspace

TOP_EVENTS = 8


@dataclass(frozen=True)
class PlanShare:
    """The accounts on one plan and their MRR (everything they pay for, add-ons included)."""

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


def summarize(ws: Workspace) -> DataSummary:
    """Accounts, MRR and plan mix at the latest event (included), with config.yaml's metric
    settings, and the most used events of the 30 days up to it."""
    catalog, backend = ws.catalog(), ws.backend
    with ws.db.connect() as conn:
        as_of = latest_event_at(conn=conn) or datetime.now(UTC)
        accounts = count_accounts(conn=conn)
        events = count_events(conn=conn)
        top = top_events(conn=conn, until=as_of, limit=TOP_EVENTS)
        subscriptions = subscriptions_table(conn=conn)
    # Changes at the instant itself count: the MRR just after it.
    just_after = as_of + timedelta(microseconds=1)
    changes = materialised_changes(backend, mrr_rows(subscriptions, catalog, ws.config.metrics))
    mrr = {
        r["account_id"]: int(r["mrr"])
        for r in backend.arrow(account_mrr(changes, just_after)).to_pylist()
    }
    subs = backend.table(subscriptions, "subscriptions")
    held = subs.filter(
        (subs.started_at <= as_of) & (subs.ended_at.isnull() | (subs.ended_at > as_of))
    )
    plan_of = {
        r["account_id"]: r["plan_id"]
        for r in backend.arrow(highest_plans(held, catalog_items(backend, catalog))).to_pylist()
    }
    members: dict[str, list[str]] = defaultdict(list)
    for account, plan in plan_of.items():
        members[plan].append(account)

    def money(micros: int) -> Money:
        return Money(from_micros(micros), catalog.currency)

    return DataSummary(
        as_of=as_of,
        accounts=accounts,
        paying_accounts=sum(1 for m in mrr.values() if m > 0),
        mrr=money(sum(mrr.values())),
        plans=tuple(
            PlanShare(p.id, len(members[p.id]), money(sum(mrr.get(a, 0) for a in members[p.id])))
            for p in catalog.plans
        ),
        no_plan=accounts - len(plan_of),
        events=events,
        top_events=tuple(top),
    )
