"""MRR movements, monthly totals and retention in the engine (metrics.md), on DuckDB and PySpark."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

import metrics_reference as ref
from backends import SPARK
from test_metrics_reference import FX, KINDS, histories, reference_settings
from upsell.config.catalog import load_catalog, parse_catalog
from upsell.domain.catalog import Catalog
from upsell.domain.metrics import (
    CAUSES,
    MOVEMENT_TYPES,
    MetricSettings,
    MovementType,
    from_micros,
    to_micros,
)
from upsell.domain.money import Money
from upsell.domain.subscriptions import row_mrr
from upsell.engine.backends import Backend
from upsell.engine.movements import Retention, changes, monthly_summary, mrr_rows, retention
from upsell.store.arrow import SUBSCRIPTION_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
WORKED = ROOT / "examples" / "worked-example"
PRICES = {("basic", "month"): "29", ("pro", "month"): "99", ("pro", "year"): "990"}
PRICES[("extra_seats_5", "month")] = "20"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def worked_subscriptions() -> pa.Table:
    with (WORKED / "subscriptions.csv").open() as f:
        rows = list(csv.DictReader(f))
    return pa.Table.from_pylist(
        [
            {
                "account_id": r["account_id"],
                "item_id": r["item_id"],
                "started_at": utc(r["started_at"]),
                "ended_at": utc(r["ended_at"]) if r["ended_at"] else None,
                "quantity": 1,
                "interval": r["interval"],
                "unit_price": PRICES[(r["item_id"], r["interval"])],
                "currency": "USD",
                "status": r["status"],
            }
            for r in rows
        ],
        schema=SUBSCRIPTION_SCHEMA,
    )


@pytest.fixture(scope="module")
def worked_catalog() -> Catalog:
    return load_catalog(WORKED / "catalog.yaml").catalog


def money(micros: int) -> Decimal:
    return from_micros(micros)


def test_the_worked_example_gives_its_movements(backend: Backend, worked_catalog: Catalog) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog)
    found = backend.arrow(changes(backend.table(rows, "worked")).order_by("at")).to_pylist()
    got = [
        (r["at"].strftime("%Y-%m-%d"), r["type"], money(r["amount"]), money(r["after"]))
        for r in found
    ]
    assert got == [
        ("2026-01-10", "new", Decimal("29"), Decimal("29")),
        ("2026-02-15", "expansion", Decimal("70"), Decimal("99")),
        ("2026-03-01", "expansion", Decimal("20"), Decimal("119")),
        ("2026-04-01", "contraction", Decimal("16.5"), Decimal("102.5")),
        ("2026-05-31", "churn", Decimal("102.5"), Decimal("0")),
        ("2026-08-01", "reactivation", Decimal("29"), Decimal("29")),
    ]
    assert found[1]["upsell"] == 70_000_000 and found[2]["add_on"] == 20_000_000
    assert sum(found[1][c] for c in CAUSES) == found[1]["amount"]


def test_the_worked_example_adds_up_from_january_to_august(
    backend: Backend, worked_catalog: Catalog
) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog)
    months = monthly_summary(
        backend,
        rows,
        first=datetime(2026, 1, 1, tzinfo=UTC),
        last=datetime(2026, 8, 31, tzinfo=UTC),
    )
    assert [m.month for m in months] == [f"2026-0{k}" for k in range(1, 9)]

    def total(kind: MovementType) -> Decimal:
        return money(sum(m.movement(kind) for m in months))

    assert (total("new"), total("expansion"), total("contraction")) == (29, 90, Decimal("16.5"))
    assert (total("churn"), total("reactivation")) == (Decimal("102.5"), 29)
    assert money(months[-1].mrr_end) - money(months[0].mrr_start) == 29
    causes = {c: sum(m.expansion_by_cause[c] for m in months) for c in CAUSES}
    assert causes == {
        "upsell": 70_000_000, "add_on": 20_000_000, "cross_sell": 0, "quantity": 0, "price": 0
    }  # fmt: skip
    assert [m.paying_accounts for m in months] == [1, 1, 1, 1, 0, 0, 0, 1]
    assert months[0].ndr is None and months[5].ndr is None
    assert months[4].ndr == 0 and months[4].grr == 0


def test_the_worked_example_retention_windows(backend: Backend, worked_catalog: Catalog) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog)
    ch = changes(backend.table(rows, "worked_retention"))
    feb_may = retention(backend, ch, utc("2026-02-01T00:00:00Z"), utc("2026-05-01T00:00:00Z"))
    assert feb_may == Retention(accounts=1, start=29_000_000, end=102_500_000, kept=29_000_000)
    ndr = Decimal(feb_may.end) / Decimal(feb_may.start)
    assert round(ndr * 100, 1) == Decimal("353.4")
    mar_jun = retention(backend, ch, utc("2026-03-02T00:00:00Z"), utc("2026-06-01T00:00:00Z"))
    assert mar_jun == Retention(accounts=1, start=119_000_000, end=0, kept=0)


def test_a_reactivation_window_turns_a_late_return_into_new(
    backend: Backend, worked_catalog: Catalog
) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog)
    late = MetricSettings(reactivation_window_days=60)  # back 62 days after the churn
    found = backend.arrow(changes(backend.table(rows, "worked_window"), late).order_by("at"))
    assert found.column("type").to_pylist()[-1] == "new"
    within = MetricSettings(reactivation_window_days=62)
    found = backend.arrow(changes(backend.table(rows, "worked_window2"), within).order_by("at"))
    assert found.column("type").to_pylist()[-1] == "reactivation"


def test_churn_at_period_end_moves_the_churn_to_the_end_of_the_paid_period(
    backend: Backend, worked_catalog: Catalog
) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog, MetricSettings(churn_at="period_end"))
    found = backend.arrow(changes(backend.table(rows, "worked_period_end")).order_by("at"))
    # The yearly Pro row (from 2026-04-01) is paid until 2027-04-01; the monthly add-on (from
    # 2026-03-01) until 2026-06-01: the add-on leaves first (contraction), Pro a year later.
    tail = [
        (r["at"].strftime("%Y-%m-%d"), r["type"], money(r["amount"]))
        for r in found.to_pylist()[-3:]
    ]
    assert tail == [
        ("2026-06-01", "contraction", Decimal("20")),
        ("2026-08-01", "expansion", Decimal("29")),
        ("2027-04-01", "contraction", Decimal("82.5")),
    ]


# -- the engine against the reference implementation (tests/metrics_reference.py) ---------------

REFERENCE_CATALOG = """\
currency: USD
plans:
  - {id: free, price: {month: 0}}
  - {id: basic, price: {month: 29}}
  - {id: pro, price: {month: 99}}
  - {id: enterprise, price: {month: 299}}
add_ons:
  - {id: seats, price: {month: 20}}
  - {id: extra_seats_5, price: {month: 20}}
  - {id: scheduling, price: {month: 8}}
products:
  - {id: leadbooster, price: {month: 39}}
  - {id: forms, price: {month: 15}}
fx: {EUR: 1.08, GBP: 1.27}
"""


def _arrow(rows: list[Any]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "account_id": r.account_id,
                "item_id": r.item_id,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "quantity": r.quantity,
                "interval": r.interval,
                "unit_price": str(r.unit_price),
                "currency": r.currency,
                "status": r.status,
            }
            for r in rows
        ],
        schema=SUBSCRIPTION_SCHEMA,
    )


def _micros(amount: Decimal) -> int:
    return int(amount * 1_000_000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=histories())
def test_the_engine_prices_every_row_as_the_domain_does(rows: list[Any]) -> None:
    """`mrr_rows` is the table-scale twin of the domain's per-row rule (`row_mrr`): every row that
    is not in its trial gets the domain's MRR, to the micro-unit, in the same order."""
    catalog = parse_catalog(REFERENCE_CATALOG, "reference.yaml").catalog
    table = mrr_rows(_arrow(rows), catalog)
    expected = [
        to_micros(
            row_mrr(
                Money(Decimal(str(r.unit_price)), r.currency),
                r.quantity,
                r.interval,
                r.status,
                catalog.fx,
            ).amount
        )
        for r in rows
        if r.status != "trialing"
    ]
    assert table.column("mrr").to_pylist() == expected


def assert_engine_matches_reference(
    backend: Backend, rows: list[Any], config: Any, name: str
) -> None:
    catalog = parse_catalog(REFERENCE_CATALOG, "reference.yaml").catalog
    settings = MetricSettings(
        reactivation_window_days=config.reactivation_window_days, churn_at=config.churn_at
    )
    table = mrr_rows(_arrow(rows), catalog, settings)
    found = backend.arrow(changes(backend.table(table, name), settings))
    got = sorted(
        (
            r["account_id"],
            r["at"].replace(tzinfo=UTC),
            r["type"],
            r["amount"],
            r["before"],
            r["after"],
            {c: r[c] for c in CAUSES if r[c]},
        )
        for r in found.to_pylist()
    )
    expected = sorted(
        (
            m.account_id,
            m.at,
            m.type,
            _micros(m.amount),
            _micros(m.before),
            _micros(m.after),
            {c: _micros(v) for c, v in m.causes.items() if v},
        )
        for m in ref.movements(rows, kinds=KINDS, fx=FX, settings=config)
    )
    assert got == expected
    first, last = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC)
    months = monthly_summary(backend, table, first=first, last=last, settings=settings)
    reference = ref.month_summary(
        rows, first.date(), last.date(), kinds=KINDS, fx=FX, settings=config
    )
    assert len(months) == len(reference) == 24
    for mine, theirs in zip(months, reference, strict=True):
        assert mine.month == theirs["month"]
        for key in ("mrr_start", "mrr_end", *MOVEMENT_TYPES):
            assert getattr(mine, key) == _micros(theirs[key]), (mine.month, key)  # type: ignore[arg-type]
        causes = theirs["expansion_by_cause"]
        assert mine.expansion_by_cause == {c: _micros(causes[c]) for c in CAUSES}  # type: ignore[index]
        assert mine.paying_accounts == theirs["paying_accounts"]
        for key in ("ndr", "grr"):
            if theirs[key] is None:
                assert getattr(mine, key) is None
            else:
                assert getattr(mine, key) == pytest.approx(float(theirs[key]), abs=1e-9)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def duckdb() -> Iterator[Backend]:
    e = Backend("duckdb")
    try:
        yield e
    finally:
        e.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rows=histories(), config=reference_settings)
def test_the_engine_gives_the_reference_movements_on_random_histories(
    duckdb: Backend, rows: list[Any], config: Any
) -> None:
    assert_engine_matches_reference(duckdb, rows, config, "random")


def test_a_split_too_large_for_floats_is_exact(backend: Backend) -> None:
    rows = [
        ref.Row("a", "basic", utc("2026-01-01T00:00:00Z"), utc("2026-03-01T00:00:00Z"),
                unit_price=Decimal("29")),
        ref.Row("a", "enterprise", utc("2026-03-01T00:00:00Z"), None, unit_price=Decimal("299")),
        ref.Row("a", "scheduling", utc("2026-03-01T00:00:00Z"), None, interval="year",
                unit_price=Decimal("290")),
    ]  # fmt: skip
    # 270 (upsell) + 24.166667 (add-on): amount x delta = 7.9e16 micro-units², past 2^53.
    assert_engine_matches_reference(backend, rows, ref.Settings(), "split")


@pytest.fixture(scope="module")
def company(demo_company: Path) -> tuple[pa.Table, Catalog]:
    """The shared demo company's simulated subscriptions and catalog (tests/conftest.py)."""
    data = demo_company / "data"
    catalog = load_catalog(data / "catalog.yaml").catalog
    subscriptions = pq.read_table(data / "subscriptions.parquet")
    return subscriptions.cast(SUBSCRIPTION_SCHEMA), catalog


def test_every_month_adds_up_on_a_simulated_company(
    backend: Backend, company: tuple[pa.Table, Catalog]
) -> None:
    subscriptions, catalog = company
    rows = mrr_rows(subscriptions, catalog)
    found = backend.arrow(changes(backend.table(rows, "company"))).to_pylist()
    assert len(found) > 300
    by_account_month: dict[tuple[str, str], int] = {}
    for c in found:
        key = (c["account_id"], c["at"].strftime("%Y-%m"))
        sign = -1 if c["type"] in ("contraction", "churn") else 1
        by_account_month[key] = by_account_month.get(key, 0) + sign * c["amount"]
        assert c["after"] - c["before"] == sign * c["amount"]
        if c["type"] == "expansion":
            assert sum(c[cause] for cause in CAUSES) == c["amount"]
    months = monthly_summary(
        backend,
        rows,
        first=datetime(2025, 11, 1, tzinfo=UTC),
        last=datetime(2026, 4, 30, tzinfo=UTC),
    )
    for m in months:
        change = m.mrr_end - m.mrr_start
        movement = m.new + m.reactivation + m.expansion - m.contraction - m.churn
        assert change == movement, m.month
        net = sum(v for (_, month), v in by_account_month.items() if month == m.month)
        assert net == change
    assert months[-1].mrr_end > 0
    assert months[-1].ndr is not None


def test_the_engine_gives_the_reference_on_a_simulated_company(
    duckdb: Backend, company: tuple[pa.Table, Catalog]
) -> None:
    subscriptions, catalog = company
    rows = [
        ref.Row(
            r["account_id"], r["item_id"], r["started_at"], r["ended_at"], r["quantity"],
            r["interval"], Decimal(r["unit_price"]), r["currency"], r["status"],
        )
        for r in subscriptions.to_pylist()
    ]  # fmt: skip
    kinds = {i.id: ("plan", i.tier) for i in catalog.plans}
    kinds |= {a.id: ("add_on", 0) for a in catalog.add_ons}
    kinds |= {p.id: ("product", 0) for p in catalog.products}
    fx = {c: catalog.fx.rate(c) for c in {r.currency for r in rows}}
    expected = ref.movements(rows, kinds=kinds, fx=fx)
    table = mrr_rows(subscriptions, catalog)
    found = duckdb.arrow(changes(duckdb.table(table, "company_ref"))).to_pylist()
    assert sorted((c["account_id"], c["at"], c["type"], c["amount"]) for c in found) == sorted(
        (m.account_id, m.at, m.type, _micros(m.amount)) for m in expected
    )


@pytest.mark.parametrize("backend", [SPARK])
def test_pyspark_gives_the_same_movements_as_duckdb(
    backend: str, duckdb: Backend, company: tuple[pa.Table, Catalog]
) -> None:
    subscriptions, catalog = company
    rows = mrr_rows(subscriptions, catalog, MetricSettings(reactivation_window_days=90))
    spark = Backend(backend)
    try:
        settings = MetricSettings(reactivation_window_days=90)
        theirs = spark.arrow(changes(spark.table(rows, "company_spark"), settings)).to_pylist()
        first, last = datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC)
        their_months = monthly_summary(spark, rows, first=first, last=last, settings=settings)
    finally:
        spark.close()
    mine = duckdb.arrow(changes(duckdb.table(rows, "company_duck"), settings)).to_pylist()
    my_months = monthly_summary(duckdb, rows, first=first, last=last, settings=settings)

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        return (
            c["account_id"],
            c["at"].replace(tzinfo=None),
            *(c[k] for k in sorted(c) if k not in ("account_id", "at")),
        )

    assert sorted(map(key, theirs)) == sorted(map(key, mine))
    assert their_months == my_months
