"""The batch flow from the store to opportunities: rollups -> signals -> per-account rules.

architecture.md's arrows as plain functions: the store's tables are read as Arrow, the engine
(Ibis on DuckDB or PySpark) keeps the daily rollups and computes the signal tables, and the domain's
rules turn each account's signals into qualified and disqualified opportunities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import sqlalchemy as sa

from upsell.domain.calendar import day_start
from upsell.domain.catalog import Catalog
from upsell.domain.money import Money
from upsell.domain.opportunities import Opportunity, find_opportunities
from upsell.domain.signals import (
    AccountSignals,
    CoAdoption,
    Engagement,
    FeatureUse,
    MetricUsage,
    Population,
    Risk,
    UpgradePattern,
    UsageSpend,
)
from upsell.domain.subscriptions import SubscriptionItem, mrr_at
from upsell.engine.backends import Backend
from upsell.engine.rollups import Rollups, RollupSpec
from upsell.engine.signals import build_signals, execute
from upsell.errors import UnknownAccount
from upsell.store.arrow import (
    EVENT_SCHEMA,
    accounts_table,
    event_batches,
    last_event_seq,
    subscriptions_table,
)
from upsell.workspace import Workspace

#: Events rolled up per part: bounds the memory of one incremental step.
PART_EVENTS = 5_000_000
V = TypeVar("V")


@dataclass(frozen=True)
class RefreshResult:
    events_read: int
    rebuilt: bool
    parts: int
    watermark: int


def refresh_rollups(
    backend: Backend,
    *,
    conn: sa.Connection,
    catalog: Catalog,
    folder: Path,
    rebuild: bool = False,
) -> tuple[Rollups, RefreshResult]:
    """Roll up the events stored since the last run (all of them on `rebuild`, on the first run,
    or when the catalog now keeps other properties)."""
    spec = RollupSpec.from_catalog(catalog)
    rollups = Rollups(folder)
    rebuilt = rebuild or not rollups.usable(spec)
    if rebuilt:
        rollups.reset()
    after = 0 if rebuilt else int(rollups.watermark)
    last = last_event_seq(conn=conn)
    read = 0
    batch: list[pa.RecordBatch] = []
    rows = 0

    def flush(upto: int) -> None:
        nonlocal batch, rows, read
        table = pa.Table.from_batches(batch) if batch else None
        if table is None and rollups.state["parts"]:
            return
        if table is None:
            table = EVENT_SCHEMA.empty_table()
        rollups.add(
            backend,
            backend.table(table, "new_events"),
            spec,
            watermark=upto,
            events_read=table.num_rows,
        )
        read += table.num_rows
        batch, rows = [], 0

    seq = after
    for b in event_batches(conn=conn, after_seq=after, upto_seq=last):
        batch.append(b)
        rows += b.num_rows
        seq = int(b.column("seq")[-1].as_py())
        if rows >= PART_EVENTS:
            flush(seq)
    flush(max(seq, last))
    return rollups, RefreshResult(
        events_read=read, rebuilt=rebuilt, parts=len(rollups.state["parts"]), watermark=last
    )


def signal_tables(
    backend: Backend,
    *,
    conn: sa.Connection,
    catalog: Catalog,
    rollups: Rollups,
    as_of: date,
) -> tuple[dict[str, pa.Table], pa.Table]:
    """The executed signal tables, and the subscriptions table they were computed from."""
    subscriptions = subscriptions_table(conn=conn)
    tables = build_signals(
        backend,
        accounts=backend.table(accounts_table(conn=conn), "accounts"),
        subscriptions=backend.table(subscriptions, "subscriptions"),
        usage=rollups.usage(backend),
        users=rollups.users(backend),
        catalog=catalog,
        as_of=as_of,
    )
    return execute(backend, tables), subscriptions


def _by_account(table: pa.Table) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table.to_pylist():
        out[row["account_id"]].append(row)
    return out


def _holdings(subscriptions: pa.Table, at: datetime) -> dict[str, list[SubscriptionItem]]:
    out: dict[str, list[SubscriptionItem]] = defaultdict(list)
    for r in subscriptions.to_pylist():
        if r["started_at"] > at or (r["ended_at"] is not None and r["ended_at"] <= at):
            continue
        out[r["account_id"]].append(
            SubscriptionItem(
                account_id=r["account_id"],
                item_id=r["item_id"],
                started_at=r["started_at"],
                ended_at=r["ended_at"],
                unit_price=Money(Decimal(r["unit_price"]), r["currency"]),
                quantity=r["quantity"],
                interval=r["interval"],
                status=r["status"],
            )
        )
    return out


def _value(kind: type[V], row: Mapping[str, Any], **given: Any) -> V:
    """A signal value from a row of the engine's tables, whose columns are named after its fields
    (engine/signals.py); columns it has no field for are left out, `given` fields win."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{k: v for k, v in row.items() if k in names} | given)


def population(tables: dict[str, pa.Table]) -> Population:
    return Population(
        co_adoption=tuple(CoAdoption(**r) for r in tables["co_adoption"].to_pylist()),
        upgrade_patterns=tuple(UpgradePattern(**r) for r in tables["upgrade_patterns"].to_pylist()),
    )


def account_signals(
    tables: dict[str, pa.Table], subscriptions: pa.Table, catalog: Catalog, as_of: date
) -> Iterator[AccountSignals]:
    """One AccountSignals per account that existed at `as_of`, in account_id order."""
    at = day_start(as_of)
    holdings = _holdings(subscriptions, at)
    metrics = _by_account(tables["metrics"])
    features = _by_account(tables["features"])
    named = _by_account(tables["signals"])
    usage = _by_account(tables["usage"])
    for a in tables["accounts"].to_pylist():
        account_id = a["account_id"]
        held = tuple(holdings.get(account_id, ()))
        yield AccountSignals(
            account_id=account_id,
            as_of=at,
            created_at=day_start(a["created_day"]),
            tenure_days=a["tenure_days"],
            mrr=mrr_at(held, at, catalog.fx),
            industry=a["industry"],
            employees=a["employees"],
            country=a["country"],
            currency=a["currency"] or catalog.currency,
            language=a["language"],
            plan_id=a["plan_id"],
            plan_status=a["plan_status"],
            plan_interval=a["plan_interval"],
            plan_started_at=(day_start(a["plan_started_day"]) if a["plan_started_day"] else None),
            paid_before=a["paid_before"],
            activated=a["activated"],
            activated_on=a["activated_on"],
            holdings=held,
            metrics={
                m["metric"]: _value(MetricUsage, m, value=m["value"] or 0.0)
                for m in metrics.get(account_id, ())
            },
            features={f["feature"]: _value(FeatureUse, f) for f in features.get(account_id, ())},
            signals=frozenset(s["signal"] for s in named.get(account_id, ())),
            engagement=_value(Engagement, a),
            risk=_value(Risk, a),
            usage=tuple(_value(UsageSpend, u) for u in usage.get(account_id, ())),
        )


@dataclass(frozen=True)
class OpportunityRun:
    """What `upsell opportunities` found: every candidate, and the signals behind them."""

    as_of: date
    accounts: int
    opportunities: list[Opportunity]
    signals: dict[str, AccountSignals]
    refresh: RefreshResult


def find_all(
    ws: Workspace,
    as_of: date,
    *,
    rebuild: bool = False,
    account_id: str | None = None,
    keep_signals: bool = False,
) -> OpportunityRun:
    """Refresh the rollups, compute the signals as of `as_of`, and run the opportunity rules with
    config.yaml's policy for every account (or only `account_id`, whose signals are kept for
    explaining). `keep_signals` keeps the signals of every account with a qualified opportunity (the
    decision step's input)."""
    catalog, policy, backend = ws.catalog(), ws.config.opportunities, ws.backend
    with ws.db.connect() as conn:
        rollups, refresh = refresh_rollups(
            backend, conn=conn, catalog=catalog, folder=ws.rollups, rebuild=rebuild
        )
        tables, subscriptions = signal_tables(
            backend, conn=conn, catalog=catalog, rollups=rollups, as_of=as_of
        )
    if account_id is not None:
        known = set(tables["accounts"]["account_id"].to_pylist())
        if account_id not in known:
            raise UnknownAccount(account_id, as_of=as_of)
    stats = population(tables)
    found: list[Opportunity] = []
    kept: dict[str, AccountSignals] = {}
    count = 0
    for signals in account_signals(tables, subscriptions, catalog, as_of):
        if account_id is not None and signals.account_id != account_id:
            continue
        count += 1
        mine = find_opportunities(signals, catalog, policy=policy, population=stats)
        if account_id is not None or (keep_signals and any(o.qualified for o in mine)):
            kept[signals.account_id] = signals
        found.extend(mine)
    return OpportunityRun(
        as_of=as_of, accounts=count, opportunities=found, signals=kept, refresh=refresh
    )
