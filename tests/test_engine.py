"""The engine: rollups and signals, on DuckDB and PySpark, full and incremental.

The simulated company is the files of the session's demo company (tests/conftest.py: the demo's
simulator, fewer accounts, so the Spark run stays short); hand-built tables check the numbers of each
signal against values worked out by hand.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backends import SPARK
from upsell.config.catalog import parse_catalog
from upsell.domain.catalog import Catalog
from upsell.engine.backends import Backend, EngineError
from upsell.engine.rollups import Rollups, RollupSpec
from upsell.engine.signals import build_signals, execute
from upsell.flows import opportunities as pipeline
from upsell.ingest.importer import import_catalog, import_table
from upsell.store.arrow import ACCOUNT_SCHEMA, EVENT_SCHEMA, SUBSCRIPTION_SCHEMA
from upsell.workspace import Workspace

AS_OF = date(2026, 4, 15)


@pytest.fixture(scope="module")
def company(demo_company: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo company's simulated files (data/), its events split into two files by time."""
    folder = tmp_path_factory.mktemp("company")
    data = shutil.copytree(demo_company / "data", folder / "data")
    events = pq.read_table(data / "events.parquet")
    cut = datetime(2026, 4, 1, tzinfo=UTC)
    early = events.filter(pa.compute.less(events["timestamp"], cut))
    late = events.filter(pa.compute.greater_equal(events["timestamp"], cut))
    assert early.num_rows and late.num_rows
    pq.write_table(early, folder / "events-early.parquet")
    pq.write_table(late, folder / "events-late.parquet")
    return folder


def _workspace(company: Path, target: Path, *, events: tuple[str, ...]) -> Workspace:
    ws = Workspace.create(target)
    data = company / "data"
    loaded = import_catalog(db=ws.db, path=data / "catalog.yaml").loaded.catalog
    for kind, name in (
        ("accounts", "accounts.parquet"),
        ("subscriptions", "subscriptions.parquet"),
    ):
        import_table(db=ws.db, kind=kind, path=data / name, catalog=loaded, strict=True)  # type: ignore[arg-type]
    for name in events:
        import_table(db=ws.db, kind="events", path=company / name, strict=True)
    return ws


def _rollups(ws: Workspace, engine: Backend, *, rebuild: bool = False) -> None:
    """Roll up the events stored since the last run (all of them on `rebuild`)."""
    with ws.db.connect() as conn:
        pipeline.refresh_rollups(
            engine, conn=conn, catalog=ws.catalog(), folder=ws.rollups, rebuild=rebuild
        )


def _run(
    ws: Workspace, engine: Backend, *, rebuild: bool = False
) -> tuple[dict[str, pa.Table], pa.Table]:
    """What a run computes: the rollups refreshed, then the signal tables as of AS_OF (and the
    subscriptions table they were computed from)."""
    catalog = ws.catalog()
    with ws.db.connect() as conn:
        rollups, _ = pipeline.refresh_rollups(
            engine, conn=conn, catalog=catalog, folder=ws.rollups, rebuild=rebuild
        )
        return pipeline.signal_tables(
            engine, conn=conn, catalog=catalog, rollups=rollups, as_of=AS_OF
        )


def _same(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        left, right = a[name], b[name]
        assert left.column_names == right.column_names, name
        for column in left.column_names:
            x, y = left[column].to_pylist(), right[column].to_pylist()
            # Floats are compared to 12 significant digits: sums may be added in another order.
            if pa.types.is_floating(left.schema.field(column).type):
                x = [None if v is None else float(f"{v:.12g}") for v in x]
                y = [None if v is None else float(f"{v:.12g}") for v in y]
            assert x == y, f"{name}.{column} differs"


DuckDBRun = tuple[dict[str, pa.Table], pa.Table, Catalog]


@pytest.fixture(scope="module")
def duckdb_run(company: Path, tmp_path_factory: pytest.TempPathFactory) -> DuckDBRun:
    """One DuckDB run over all the events, in a workspace of its own (the reference): the signal
    tables, the subscriptions they were computed from and the workspace's catalog."""
    ws = _workspace(
        company,
        tmp_path_factory.mktemp("full"),
        events=("events-early.parquet", "events-late.parquet"),
    )
    try:
        return (*_run(ws, Backend("duckdb")), ws.catalog())
    finally:
        ws.close()


@pytest.fixture(scope="module")
def duckdb_signals(duckdb_run: DuckDBRun) -> dict[str, pa.Table]:
    return duckdb_run[0]


def test_the_engine_names_the_plan_the_domain_would(duckdb_run: DuckDBRun) -> None:
    """The engine's table-scale plan (the highest tier held) is `Catalog.highest_plan` of each
    account's holdings."""
    tables, subs, catalog = duckdb_run
    checked = 0
    for s in pipeline.account_signals(tables, subs, catalog, AS_OF):
        plan = catalog.highest_plan(h.item_id for h in s.holdings)
        assert (plan.id if plan else None) == s.plan_id, s.account_id
        checked += plan is not None
    assert checked > 300


def test_each_accounts_last_purchase_is_one_of_its_paid_rows(duckdb_run: DuckDBRun) -> None:
    """The flow reads every row of an account, ended ones too, for its last purchase."""
    tables, subs, catalog = duckdb_run
    rows = {(r["account_id"], r["item_id"], r["started_at"]) for r in subs.to_pylist()}
    bought = [s for s in pipeline.account_signals(tables, subs, catalog, AS_OF) if s.last_purchase]
    assert len(bought) > 100
    for s in bought:
        p = s.last_purchase
        assert p is not None and (s.account_id, p.item_id, p.at) in rows
    upgraded = [s for s in bought if s.last_purchase and s.last_purchase.at > s.created_at]
    assert upgraded, "some bought after they signed up"


def test_signals_cover_the_company(company: Path, duckdb_signals: dict[str, pa.Table]) -> None:
    accounts = duckdb_signals["accounts"]
    signed_up = pq.read_table(company / "data" / "accounts.parquet")
    before = pa.compute.less(signed_up["created_at"], _t(AS_OF, 0))
    # Every account that had signed up by AS_OF, and no other.
    assert sorted(accounts["account_id"].to_pylist()) == sorted(
        signed_up.filter(before)["account_id"].to_pylist()
    )
    assert accounts.num_rows > 400
    assert set(duckdb_signals["metrics"]["metric"].to_pylist()) == {
        "seats",
        "projects",
        "api_calls",
        "storage_gb",
        "assessments",
    }
    assert any(accounts["activated"].to_pylist())
    assert sum(accounts["events_30d"].to_pylist()) > 0
    assert duckdb_signals["features"].num_rows > 0


@pytest.mark.parametrize("backend", ["duckdb", SPARK])
def test_an_incremental_run_and_a_full_rebuild_give_the_tables_of_one_duckdb_run(
    backend: str, company: Path, tmp_path: Path, duckdb_signals: dict[str, pa.Table]
) -> None:
    """Rollups kept in two parts (the early events, then the late ones) give the signal tables of
    one DuckDB run over all the events, and so does a rebuild from every event into one part (a
    first run's path: the rollups reset, every event rolled up). On PySpark, the incremental run
    is the check that PySpark gives DuckDB's signal tables; its rebuild, the same queries over one
    part, is left to bench/ (run.py --only signals) to keep `make test` within its 15 minutes."""
    ws = _workspace(company, tmp_path / "ws", events=("events-early.parquet",))
    try:
        engine = Backend(backend)  # type: ignore[arg-type]
        _rollups(ws, engine)
        import_table(db=ws.db, kind="events", path=company / "events-late.parquet", strict=True)
        incremental, _ = _run(ws, engine)
        assert len(Rollups(ws.rollups).state["parts"]) == 2
        _same(incremental, duckdb_signals)
        if backend == SPARK:
            return
        rebuilt, _ = _run(ws, engine, rebuild=True)
        assert len(Rollups(ws.rollups).state["parts"]) == 1
        _same(rebuilt, duckdb_signals)
    finally:
        ws.close()


def test_a_second_run_with_no_new_events_adds_no_part(company: Path, tmp_path: Path) -> None:
    ws = _workspace(company, tmp_path / "ws", events=("events-early.parquet",))
    try:
        engine = Backend("duckdb")
        _rollups(ws, engine)
        _rollups(ws, engine)
        assert len(Rollups(ws.rollups).state["parts"]) == 1
    finally:
        ws.close()


# -- hand-built cases ---------------------------------------------------------------------------

CATALOG = """
currency: USD
business_model: saas
metrics:
  seats:     {kind: gauge, source: {trait: seats, up: "User Invited", down: "User Removed"}}
  storage:   {kind: gauge, source: {event: "Storage Measured", property: gb}}
  api_calls: {kind: counter, source: {event: "API Calls Used", property: count}, window: billing_period}
  exports:   {kind: counter, source: {event: "Exported"}, window: 7}
signals:
  inbound:   {event: "Lead Captured", where: {source: inbound}, at_least: 2, window_days: 30}
activation:
  all_of:
    - {event: "Report Shared", at_least: 1}
    - {event: "Board Created", at_least: 2}
plans:
  - {id: basic, name: Basic, price: {month: 29}, limits: {seats: 5, api_calls: 1000, storage: 10, exports: 100}, features: [boards]}
  - {id: pro, name: Pro, price: {month: 99}, limits: {seats: 25, api_calls: 100000, storage: 100, exports: 1000}, features: [boards, automation]}
add_ons:
  - {id: seats5, name: 5 seats, price: {month: 20}, requires: [basic, pro], grants: {seats: 5}}
fx: {}
"""


def _t(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _hand_signals(
    events: list[tuple], *, backend: str = "duckdb", more_rows: tuple[dict, ...] = ()
) -> dict[str, pa.Table]:
    """Signals as of AS_OF for account `a` (Basic since 2026-01-31, 2 seat add-ons, 8 seats now;
    `more_rows`: further subscription rows)."""
    catalog = parse_catalog(CATALOG, "catalog.yaml").catalog
    engine = Backend(backend)  # type: ignore[arg-type]
    accounts = pa.Table.from_pylist(
        [
            {
                "account_id": "a",
                "created_at": _t(date(2026, 1, 20)),
                "industry": "agency",
                "employees": 12,
                "country": "NL",
                "currency": "EUR",
                "language": "nl",
                "traits": json.dumps({"seats": 8}),
            }
        ],
        schema=ACCOUNT_SCHEMA,
    )
    subs = pa.Table.from_pylist(
        [
            {"account_id": "a", "item_id": "basic", "started_at": _t(date(2026, 1, 31), 0),
             "ended_at": None, "quantity": 1, "interval": "month", "unit_price": "29",
             "currency": "USD", "status": "active"},
            {"account_id": "a", "item_id": "seats5", "started_at": _t(date(2026, 2, 10)),
             "ended_at": None, "quantity": 2, "interval": "month", "unit_price": "20",
             "currency": "USD", "status": "active"},
            *more_rows,
        ],
        schema=SUBSCRIPTION_SCHEMA,
    )  # fmt: skip
    rows = [
        {"seq": i, "account_id": "a", "user_id": user, "event": event, "timestamp": ts,
         "properties": json.dumps(props)}
        for i, (event, ts, props, user) in enumerate(events, 1)
    ]  # fmt: skip
    ev = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    spec = RollupSpec.from_catalog(catalog)
    from upsell.engine.rollups import rollup

    usage, users = rollup(engine, engine.table(ev, "ev"), spec)
    tables = build_signals(
        engine,
        accounts=engine.table(accounts, "acc"),
        subscriptions=engine.table(subs, "subs"),
        usage=usage,
        users=users,
        catalog=catalog,
        as_of=AS_OF,
    )
    return execute(engine, tables)


def _metric(tables: dict[str, pa.Table], metric: str) -> dict:
    return next(r for r in tables["metrics"].to_pylist() if r["metric"] == metric)


def test_a_trait_gauge_is_read_back_to_the_as_of_date_and_trended_from_its_moves() -> None:
    d = AS_OF
    events = [
        ("User Invited", _t(d - timedelta(days=20)), {}, "u1"),
        ("User Invited", _t(d - timedelta(days=10)), {}, "u1"),
        ("User Invited", _t(d - timedelta(days=5)), {}, "u1"),
        ("User Removed", _t(d - timedelta(days=3)), {}, "u1"),
        ("User Invited", _t(d + timedelta(days=2)), {}, "u1"),  # after as_of: not yet
    ]
    seats = _metric(_hand_signals(events), "seats")
    # 8 today, one invited after as_of -> 7 then; +3 -1 in 30 days -> 2/30 a day.
    assert seats["value"] == 7
    # Basic's 5 seats plus two 5-seat add-ons.
    assert seats["limit"] == 15
    assert seats["slope_per_day"] == pytest.approx(2 / 30)
    assert seats["days_to_limit"] == pytest.approx(8 / (2 / 30))


def test_a_billing_period_counter_sums_since_the_monthly_anniversary_clamped_at_month_end() -> None:
    # Plan started Jan 31: periods start Feb 28 (clamped), Mar 31; as of Apr 15 the period began
    # Mar 31 and the last one on Feb 28.
    events = [
        ("API Calls Used", _t(date(2026, 3, 30)), {"count": 300}, None),
        ("API Calls Used", _t(date(2026, 3, 31)), {"count": 250}, None),
        ("API Calls Used", _t(date(2026, 4, 14)), {"count": 500}, None),
        ("API Calls Used", _t(date(2026, 4, 15)), {"count": 999}, None),  # on as_of: not counted
    ]
    api = _metric(_hand_signals(events), "api_calls")
    assert api["value"] == 750
    assert api["last_units"] == 300
    assert api["slope_per_day"] == pytest.approx(750 / 15)
    assert api["days_to_limit"] == pytest.approx(250 / 50)


def test_an_event_gauge_takes_the_latest_reading_and_its_trend() -> None:
    d = AS_OF
    events = [
        ("Storage Measured", _t(d - timedelta(days=40)), {"gb": 1.0}, None),
        ("Storage Measured", _t(d - timedelta(days=28)), {"gb": 4.0}, None),
        ("Storage Measured", _t(d - timedelta(days=8)), {"gb": 9.0}, None),
        ("Storage Measured", _t(d - timedelta(days=8), 18), {"gb": 10.0}, None),
        ("Exported", _t(d - timedelta(days=8)), {}, None),
        ("Exported", _t(d - timedelta(days=1)), {}, None),
        ("Exported", _t(d - timedelta(days=1)), {}, None),
        ("Limit Reached", _t(d - timedelta(days=2)), {"metric": "storage"}, None),
    ]
    tables = _hand_signals(events)
    storage = _metric(tables, "storage")
    assert storage["value"] == 10.0
    assert storage["slope_per_day"] == pytest.approx((10.0 - 4.0) / 20)
    assert storage["days_to_limit"] == 0.0
    assert storage["limit_reached_30d"] == 1
    exports = _metric(tables, "exports")
    assert exports["value"] == 2  # the 7-day window
    assert exports["slope_per_day"] == pytest.approx(2 / 7)


def test_limit_hits_under_an_earlier_plan_do_not_count_against_the_plan_on_trial() -> None:
    # Basic's 5 seats (+10 from the add-ons) hit twice, then a trial of Pro from April 5: its
    # limit is 25 + 10, and only the hit after the trial's first day was a hit of it.
    d = AS_OF
    trial = {"account_id": "a", "item_id": "pro", "started_at": _t(date(2026, 4, 5), 9),
             "ended_at": None, "quantity": 1, "interval": "month", "unit_price": "99",
             "currency": "USD", "status": "trialing"}  # fmt: skip
    events = [
        ("Limit Reached", _t(date(2026, 4, 1)), {"metric": "seats"}, None),
        ("Limit Reached", _t(date(2026, 4, 5), 8), {"metric": "seats"}, None),  # that morning
        ("Limit Reached", _t(d - timedelta(days=2)), {"metric": "seats"}, None),
    ]
    seats = _metric(_hand_signals(events, more_rows=(trial,)), "seats")
    assert seats["limit"] == 35
    assert seats["limit_reached_30d"] == 1
    assert _metric(_hand_signals(events), "seats")["limit_reached_30d"] == 3  # no trial: Basic's


def test_activation_is_dated_the_day_the_last_condition_was_met() -> None:
    events = [
        ("Board Created", _t(date(2026, 2, 1)), {}, "u1"),
        ("Report Shared", _t(date(2026, 2, 3)), {}, "u1"),
        ("Board Created", _t(date(2026, 2, 9)), {}, "u1"),
    ]
    account = _hand_signals(events)["accounts"].to_pylist()[0]
    assert account["activated"] is True
    assert account["activated_on"] == date(2026, 2, 9)
    account = _hand_signals(events[:2])["accounts"].to_pylist()[0]
    assert account["activated"] is False
    assert account["activated_on"] is None


def test_features_engagement_risk_and_named_signals() -> None:
    d = AS_OF
    ago = lambda n: _t(d - timedelta(days=n))  # noqa: E731
    events = [
        ("Feature Blocked", ago(2), {"feature": "automation"}, "u1"),
        ("Feature Blocked", ago(20), {"feature": "automation"}, "u2"),
        ("Feature Used", ago(1), {"feature": "boards"}, "u1"),
        ("Feature Used", ago(1), {"feature": "boards"}, "u2"),
        ("Feature Used", ago(3), {"feature": "boards"}, "u1"),
        ("Feature Used", ago(45), {"feature": "boards"}, "u1"),
        ("Lead Captured", ago(4), {"source": "inbound"}, None),
        ("Lead Captured", ago(5), {"source": "inbound"}, None),
        ("Lead Captured", ago(6), {"source": "outbound"}, None),
        ("Payment Failed", ago(9), {"reason": "card_declined"}, None),
        ("Support Ticket Opened", ago(12), {"ticket_id": "t1"}, None),
        ("Survey Answered", ago(50), {"survey": "nps", "score": 9}, None),
        ("Survey Answered", ago(15), {"survey": "nps", "score": 4}, None),
        ("Downgrade Requested", ago(1), {"to_plan": "free"}, None),
    ]
    tables = _hand_signals(events)
    features = {r["feature"]: r for r in tables["features"].to_pylist()}
    assert features["automation"]["blocked_7d"] == 1
    assert features["automation"]["blocked_30d"] == 2
    assert features["boards"]["used_30d"] == 3
    a = tables["accounts"].to_pylist()[0]
    assert a["plan_id"] == "basic"
    assert a["tenure_days"] == (d - date(2026, 1, 20)).days
    assert a["active_users_30d"] == 2
    assert a["events_30d"] == 12
    assert a["events_prev_30d"] == 2
    assert a["breadth_30d"] == 1
    assert a["payment_failures_30d"] == 1
    assert a["open_tickets"] == 1
    assert a["nps_score"] == 4
    assert a["downgrade_requested_to"] == "free"
    assert a["paid_before"] is True
    # u1 was active on 3 days (1, 2, 3 days ago), u2 on 2 (1 and 20 days ago).
    assert a["days_per_user"] == pytest.approx(5 / 2)
    assert tables["signals"].to_pylist() == [{"account_id": "a", "signal": "inbound"}]


def test_the_latest_cancel_request_gives_the_reason() -> None:
    ago = lambda n: _t(AS_OF - timedelta(days=n))  # noqa: E731
    events = [
        ("Cancel Requested", ago(10), {"reason": "switching tool"}, None),
        ("Cancel Requested", ago(3), {"reason": "too expensive"}, None),
    ]
    a = _hand_signals(events)["accounts"].to_pylist()[0]
    assert (a["cancel_requested"], a["cancel_reason"]) == (True, "too expensive")
    a = _hand_signals([("Cancel Requested", ago(3), {}, None)])["accounts"].to_pylist()[0]
    assert (a["cancel_requested"], a["cancel_reason"]) == (True, None)


def test_a_catalog_keying_one_event_by_two_properties_is_refused() -> None:
    text = CATALOG.replace(
        "  inbound:",
        '  other: {event: "Lead Captured", where: {channel: web}, window_days: 30}\n  inbound:',
    )
    catalog = parse_catalog(text, "catalog.yaml").catalog
    with pytest.raises(EngineError, match="Lead Captured"):
        RollupSpec.from_catalog(catalog)


def test_resetting_the_rollups_removes_only_their_own_files(tmp_path: Path) -> None:
    from upsell.engine.rollups import Rollups

    rollups = Rollups(tmp_path)
    for name in ("state.json", "usage-00001.parquet", "users-00001.parquet", "upsell.db"):
        (tmp_path / name).write_text("x")
    rollups.reset()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upsell.db"]
