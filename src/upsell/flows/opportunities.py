"""The batch flow from the store to opportunities: rollups -> signals -> per-account rules.

architecture.md's arrows as plain functions: the store's tables are read as Arrow, the engine
(Ibis on DuckDB or PySpark) keeps the daily rollups and computes the signal tables, and the domain's
rules turn each account's signals into qualified and disqualified opportunities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import ibis.expr.types as ir
import pyarrow as pa
import sqlalchemy as sa

from upsell.columns import TIMESTAMP
from upsell.domain.calendar import day_start
from upsell.domain.catalog import Catalog
from upsell.domain.money import Money
from upsell.domain.opportunities import Opportunity, Policy, find_opportunities
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
from upsell.domain.subscriptions import SubscriptionItem, last_purchase, mrr_at
from upsell.engine.backends import Backend, Prepared
from upsell.engine.rollups import Rollups, RollupSpec, account_rollups
from upsell.engine.signals import KEYS, build_signals, execute, power_users_floor
from upsell.errors import UnknownAccount
from upsell.store.arrow import (
    ACCOUNT_SCHEMA,
    EVENT_SCHEMA,
    SUBSCRIPTION_SCHEMA,
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


def _rows(subscriptions: pa.Table, at: datetime) -> dict[str, list[SubscriptionItem]]:
    """Each account's subscription rows started by `at`."""
    out: dict[str, list[SubscriptionItem]] = defaultdict(list)
    for r in subscriptions.to_pylist():
        if r["started_at"] > at:
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
    tables: dict[str, pa.Table],
    subscriptions: pa.Table,
    catalog: Catalog,
    as_of: date,
    instant: datetime | None = None,
) -> Iterator[AccountSignals]:
    """One AccountSignals per account that existed at `as_of` (at `instant` on that day, for
    tables built with that instant: `build_signals`), in account_id order."""
    at = instant if instant is not None else day_start(as_of)
    rows = _rows(subscriptions, at)
    tiers = {p.id: p.tier for p in catalog.plans}
    metrics = _by_account(tables["metrics"])
    features = _by_account(tables["features"])
    named = _by_account(tables["signals"])
    usage = _by_account(tables["usage"])
    for a in tables["accounts"].to_pylist():
        account_id = a["account_id"]
        mine = rows.get(account_id, [])
        held = tuple(r for r in mine if r.held_at(at))
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
            last_purchase=last_purchase(mine, tiers, at),
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


# -- a few accounts at an instant (real-time triggers) ------------------------------------------

#: The signal tables an account's opportunities are read from (the population's are computed once
#: for everyone: `everyone_at`).
ACCOUNT_TABLES = ("accounts", "metrics", "features", "signals", "usage")


@dataclass(frozen=True)
class Everyone:
    """What a few accounts' signals are compared with, from every account as of a day: the
    population statistics (co-adoption, upgrade patterns) and the fewest events of a power user."""

    population: Population = field(default_factory=Population)
    power_floor: float | None = None


def everyone_at(
    ws: Workspace, as_of: date, catalog: Catalog, backend: Backend | None = None
) -> Everyone:
    """`Everyone` as of `as_of`, from the stored rollups as they are (the daily run refreshes
    them); nothing without rollups."""
    backend = backend or ws.backend
    rollups = Rollups(ws.rollups)
    if not rollups.usable(RollupSpec.from_catalog(catalog)):
        return Everyone()
    with ws.db.connect() as conn:
        accounts = accounts_table(conn=conn)
        subscriptions = subscriptions_table(conn=conn)
    inputs: dict[str, Any] = {
        "accounts": backend.table(accounts, "accounts"),
        "subscriptions": backend.table(subscriptions, "subscriptions"),
        "usage": rollups.usage(backend),
        "users": rollups.users(backend),
        "catalog": catalog,
        "as_of": as_of,
    }
    tables = build_signals(backend, **inputs)
    stats = population(execute(backend, tables, ("co_adoption", "upgrade_patterns")))
    floor = backend.arrow(power_users_floor(backend, **inputs)).column("floor")[0].as_py()
    return Everyone(stats, floor)


@dataclass(frozen=True)
class AccountsAt:
    """What `SignalsAt` found for a few accounts at an instant: each account's signals and
    opportunities (qualified or not), and how many of their events were rolled up on the fly."""

    at: datetime
    opportunities: dict[str, list[Opportunity]]
    signals: dict[str, AccountSignals]
    events_read: int


_INSTANT = pa.schema([("instant", TIMESTAMP)])
_IDS = pa.schema([("account_id", pa.string())])
#: The input tables of `SignalsAt`'s prepared queries, filled at each call.
_EVERYONE = pa.schema([("floor", pa.float64())])
_INPUTS = {
    "trigger_everyone": _EVERYONE,
    "trigger_events": EVENT_SCHEMA,
    "trigger_ids": _IDS,
    "trigger_accounts": ACCOUNT_SCHEMA,
    "trigger_subscriptions": SUBSCRIPTION_SCHEMA,
    "trigger_instant": _INSTANT,
}


class SignalsAt:
    """The signals and opportunities of a few accounts at an instant (a real-time trigger's),
    through the same engine expressions as the daily run, computed for those accounts only.

    Their rows of the store's tables are read with a WHERE on the account ids, their rollups are
    the stored parts' rows of those accounts merged with the rollup of their events stored since the
    parts' watermark (so today's count; `engine.rollups.account_rollups`: read, not written, the
    daily run keeps the parts), and the signals are computed at the instant (`build_signals`'
    `instant`: the day of the trigger counts). The engine's queries are compiled and planned once
    per catalog and day, over input tables filled at each call (`Backend.prepare`: compiling takes
    seconds, running them on a few accounts milliseconds). What compares an account with
    everyone (the population statistics, the power users' floor) is computed over every account
    once per day (`everyone_at`). Not thread-safe: one per thread, with a back end of its own or the caller
    holding the workspace's analytics lock.
    """

    def __init__(self, ws: Workspace, backend: Backend | None = None) -> None:
        self.ws = ws
        self.backend = backend or ws.backend
        self._inputs: dict[str, ir.Table] = {}
        self._schemas: dict[str, pa.Schema] = {}
        self._rollup_key: tuple[Any, ...] | None = None
        self._rollup_runs: tuple[Prepared, Prepared] | None = None
        self._signal_key: tuple[Any, ...] | None = None
        self._signal_runs: dict[str, Prepared] = {}
        self._everyone_key: tuple[Any, ...] | None = None
        self._everyone = Everyone()

    def _input(self, name: str, schema: pa.Schema | None = None) -> ir.Table:
        if name not in self._inputs:
            schema = schema or _INPUTS[name]
            self._inputs[name] = self.backend.input_table(name, schema)
            self._schemas[name] = schema
        return self._inputs[name]

    def _fill(self, name: str, data: pa.Table) -> None:
        """Fill an input table with `data`, its columns taken by name and cast to the table's."""
        schema = self._schemas[name]
        self.backend.fill(name, data.select(schema.names).cast(schema))

    def _rollups(self, spec: RollupSpec, rollups: Rollups) -> tuple[Prepared, Prepared]:
        usable = rollups.usable(spec)
        parts = tuple(p["number"] for p in rollups.state["parts"]) if usable else ()
        key = (spec.fingerprint, parts)
        if self._rollup_runs is None or self._rollup_key != key:
            backend = self.backend
            stored = None
            if usable:  # the parts' views, bound by the prepared queries as they are now
                stored = (rollups.part_rows(backend, "usage"), rollups.part_rows(backend, "users"))
            usage, users = account_rollups(
                backend, self._input("trigger_events"), self._input("trigger_ids"), spec, stored
            )
            for old in self._rollup_runs or ():
                old.close()
            self._rollup_runs = (backend.prepare(usage), backend.prepare(users))
            self._rollup_key = key
        return self._rollup_runs

    def _signals(self, catalog: Catalog, day: date) -> dict[str, Prepared]:
        key = (catalog, day)
        if self._signal_runs and _same(self._signal_key, key):
            return self._signal_runs
        assert self._rollup_runs is not None
        usage, users = (run.expr.schema().to_pyarrow() for run in self._rollup_runs)
        tables = build_signals(
            self.backend,
            accounts=self._input("trigger_accounts"),
            subscriptions=self._input("trigger_subscriptions"),
            usage=self._input("trigger_usage", usage),
            users=self._input("trigger_users", users),
            catalog=catalog,
            as_of=day,
            instant=self._input("trigger_instant").instant.max().as_scalar(),
            power_floor=self._input("trigger_everyone").floor.max().as_scalar(),
        )
        for old in self._signal_runs.values():
            old.close()
        self._signal_runs = {
            name: self.backend.prepare(getattr(tables, name).order_by(list(KEYS[name])))
            for name in ACCOUNT_TABLES
        }
        self._signal_key = key
        return self._signal_runs

    def prepare(self, catalog: Catalog, day: date) -> None:
        """Compile the queries of `day` and compute its population statistics now (seconds),
        unless done already, so that the next call takes milliseconds."""
        self._rollups(RollupSpec.from_catalog(catalog), Rollups(self.ws.rollups))
        self._signals(catalog, day)
        self.everyone(catalog, day)

    def everyone(self, catalog: Catalog, day: date) -> Everyone:
        """What the accounts are compared with (`everyone_at`), computed once a day (and
        catalog): it changes slowly, and computing it reads every account's rollups."""
        key = (catalog, day)
        if not _same(self._everyone_key, key):
            self._everyone = everyone_at(self.ws, day, catalog, self.backend)
            self._everyone_key = key
            self._input("trigger_everyone")
            floor = self._everyone.power_floor
            self._fill("trigger_everyone", pa.table({"floor": [floor]}, schema=_EVERYONE))
        return self._everyone

    def __call__(
        self, account_ids: Sequence[str], at: datetime, *, catalog: Catalog, policy: Policy
    ) -> AccountsAt:
        """The signals and opportunities of `account_ids` (at most `IN_CHUNK`) at the instant
        `at` (aware UTC); accounts unknown, or created after `at`, are left out."""
        ids = sorted(set(account_ids))
        day = at.astimezone(UTC).date()
        spec = RollupSpec.from_catalog(catalog)
        rollups = Rollups(self.ws.rollups)
        after = int(rollups.watermark) if rollups.usable(spec) else 0
        stats = self.everyone(catalog, day).population
        with self.ws.db.connect() as conn:
            events = pa.Table.from_batches(
                list(event_batches(conn=conn, after_seq=after, account_ids=ids)),
                schema=EVENT_SCHEMA,
            )
            subscriptions = subscriptions_table(conn=conn, account_ids=ids)
            accounts = accounts_table(conn=conn, account_ids=ids)
        usage_run, users_run = self._rollups(spec, rollups)
        runs = self._signals(catalog, day)
        fill = self._fill
        fill("trigger_events", events)
        fill("trigger_ids", pa.table({"account_id": ids}, schema=_IDS))
        fill("trigger_usage", usage_run())
        fill("trigger_users", users_run())
        fill("trigger_accounts", accounts)
        fill("trigger_subscriptions", subscriptions)
        fill("trigger_instant", pa.table({"instant": [at]}, schema=_INSTANT))
        tables = {name: run() for name, run in runs.items()}
        found: dict[str, list[Opportunity]] = {}
        kept: dict[str, AccountSignals] = {}
        for signals in account_signals(tables, subscriptions, catalog, day, instant=at):
            kept[signals.account_id] = signals
            found[signals.account_id] = find_opportunities(
                signals, catalog, policy=policy, population=stats
            )
        return AccountsAt(at=at, opportunities=found, signals=kept, events_read=events.num_rows)


def _same(key: tuple[Any, ...] | None, other: tuple[Catalog, date]) -> bool:
    """The same catalog object (a new one is parsed when the catalog changes) and day."""
    return key is not None and key[0] is other[0] and key[1] == other[1]
