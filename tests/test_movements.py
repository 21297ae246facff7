"""MRR movements, monthly totals and retention in the engine (metrics.md), on DuckDB and PySpark."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from upsell.domain.catalog import Catalog
from upsell.domain.metrics import CAUSES, MetricSettings, from_micros
from upsell.engine.backends import Engine, spark_unavailable
from upsell.engine.movements import changes, monthly_summary, mrr_rows, retention
from upsell.sources.catalog import load_catalog
from upsell.store.arrow import SUBSCRIPTION_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
WORKED = ROOT / "examples" / "worked-example"
PRICES = {("basic", "month"): "29", ("pro", "month"): "99", ("pro", "year"): "990"}
PRICES[("extra_seats_5", "month")] = "20"
SPARK = pytest.param(
    "pyspark",
    marks=pytest.mark.skipif(
        spark_unavailable() is not None and not os.environ.get("UPSELL_REQUIRE_SPARK"),
        reason=f"PySpark cannot run here: {spark_unavailable()}",
    ),
)


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


@pytest.fixture(scope="module", params=["duckdb", SPARK])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    e = Engine(request.param)
    try:
        yield e
    finally:
        e.close()


def money(micros: int) -> Decimal:
    return from_micros(micros)


def test_the_worked_example_gives_its_movements(engine: Engine, worked_catalog: Catalog) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog)
    found = engine.arrow(changes(engine.table(rows, "worked")).order_by("at")).to_pylist()
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
    engine: Engine, worked_catalog: Catalog
) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog)
    months = monthly_summary(
        engine,
        rows,
        first=datetime(2026, 1, 1, tzinfo=UTC),
        last=datetime(2026, 8, 31, tzinfo=UTC),
    )
    assert [m["month"] for m in months] == [f"2026-0{k}" for k in range(1, 9)]

    def total(key: str) -> Decimal:
        return money(sum(int(m[key]) for m in months))  # type: ignore[call-overload]

    assert (total("new"), total("expansion"), total("contraction")) == (29, 90, Decimal("16.5"))
    assert (total("churn"), total("reactivation")) == (Decimal("102.5"), 29)
    assert money(int(months[-1]["mrr_end"])) - money(int(months[0]["mrr_start"])) == 29  # type: ignore[call-overload]
    causes = {c: sum(m["expansion_by_cause"][c] for m in months) for c in CAUSES}  # type: ignore[index]
    assert causes == {
        "upsell": 70_000_000, "add_on": 20_000_000, "cross_sell": 0, "quantity": 0, "price": 0
    }  # fmt: skip
    assert [m["paying_accounts"] for m in months] == [1, 1, 1, 1, 0, 0, 0, 1]
    assert months[0]["ndr"] is None and months[5]["ndr"] is None
    assert months[4]["ndr"] == 0 and months[4]["grr"] == 0


def test_the_worked_example_retention_windows(engine: Engine, worked_catalog: Catalog) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog)
    ch = changes(engine.table(rows, "worked_retention"))
    feb_may = retention(engine, ch, utc("2026-02-01T00:00:00Z"), utc("2026-05-01T00:00:00Z"))
    assert feb_may == {"accounts": 1, "start": 29_000_000, "end": 102_500_000, "kept": 29_000_000}
    ndr = Decimal(feb_may["end"]) / Decimal(feb_may["start"])
    assert round(ndr * 100, 1) == Decimal("353.4")
    mar_jun = retention(engine, ch, utc("2026-03-02T00:00:00Z"), utc("2026-06-01T00:00:00Z"))
    assert mar_jun == {"accounts": 1, "start": 119_000_000, "end": 0, "kept": 0}


def test_a_reactivation_window_turns_a_late_return_into_new(
    engine: Engine, worked_catalog: Catalog
) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog)
    late = MetricSettings(reactivation_window_days=60)  # back 62 days after the churn
    found = engine.arrow(changes(engine.table(rows, "worked_window"), late).order_by("at"))
    assert found.column("type").to_pylist()[-1] == "new"
    within = MetricSettings(reactivation_window_days=62)
    found = engine.arrow(changes(engine.table(rows, "worked_window2"), within).order_by("at"))
    assert found.column("type").to_pylist()[-1] == "reactivation"


def test_churn_at_period_end_moves_the_churn_to_the_end_of_the_paid_period(
    engine: Engine, worked_catalog: Catalog
) -> None:
    rows = mrr_rows(worked_subscriptions(), worked_catalog, MetricSettings(churn_at="period_end"))
    found = engine.arrow(changes(engine.table(rows, "worked_period_end")).order_by("at"))
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
