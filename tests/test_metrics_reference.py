"""The reference implementation of metrics.md (tests/metrics_reference.py) against hand-computed numbers.

First metrics.md's worked example, built from examples/worked-example/; then small cases with the
arithmetic in a comment; then the invariant on generated histories.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from metrics_reference import (
    CAUSES,
    Movement,
    Row,
    Settings,
    add_months,
    counts_until,
    item_mrr,
    month_summary,
    movements,
    mrr_at,
    mrr_before,
    retention,
    split,
)
from upsell.engine.backends import Backend

WORKED = Path(__file__).resolve().parents[1] / "examples" / "worked-example"
D = Decimal

KINDS = {
    "free": ("plan", 0),
    "basic": ("plan", 1),
    "pro": ("plan", 2),
    "enterprise": ("plan", 3),
    "seats": ("add_on", 0),
    "extra_seats_5": ("add_on", 0),
    "scheduling": ("add_on", 0),
    "leadbooster": ("product", 0),
    "forms": ("product", 0),
}
FX = {"USD": D(1), "EUR": D("1.08"), "GBP": D("1.27")}


def t(day: str) -> datetime:
    """'2026-03-01' or '2026-03-01T12:00' as an aware UTC datetime."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def row(account: str, item: str, start: str, end: str | None, price: str, **kw: object) -> Row:
    return Row(account, item, t(start), t(end) if end else None, unit_price=D(price), **kw)  # type: ignore[arg-type]


ENGINE: Backend | None = None


@pytest.fixture(scope="module", autouse=True)
def _engine() -> Iterator[None]:
    """Every hand-computed case also runs through the engine, which must agree to the micro-unit."""
    global ENGINE
    ENGINE = Backend("duckdb")
    try:
        yield
    finally:
        ENGINE.close()
        ENGINE = None


def moves(rows: list[Row], **kw: object) -> list[tuple[str, str, str, Decimal, dict[str, Decimal]]]:
    """(account, date, type, amount, causes) of every movement: short enough to compare by eye.
    The engine is checked against the reference on the same rows first."""
    if ENGINE is not None:
        from test_movements import assert_engine_matches_reference

        config = kw.get("settings", Settings())
        assert_engine_matches_reference(ENGINE, rows, config, "hand")
    return [
        (m.account_id, m.at.isoformat()[:10], m.type, m.amount, m.causes)
        for m in movements(rows, kinds=KINDS, fx=FX, **kw)  # type: ignore[arg-type]
    ]


def summary(rows: list[Row], start: str, end: str, **kw: object) -> dict[str, dict[str, object]]:
    months = month_summary(
        rows, date.fromisoformat(start), date.fromisoformat(end), kinds=KINDS, fx=FX, **kw
    )  # type: ignore[arg-type]
    return {str(m["month"]): m for m in months}


# --- the worked example ----------------------------------------------------------------------------


def worked_example() -> tuple[list[Row], dict[str, tuple[str, int]]]:
    """The rows of examples/worked-example/subscriptions.csv, priced from its catalog.yaml."""
    catalog = YAML(typ="safe").load((WORKED / "catalog.yaml").read_text())
    prices: dict[str, dict[str, Decimal]] = {}
    kinds: dict[str, tuple[str, int]] = {}
    for tier, plan in enumerate(catalog["plans"]):
        kinds[plan["id"]] = ("plan", tier)
        prices[plan["id"]] = {k: D(str(v)) for k, v in plan["price"].items()}
    for section, kind in (("add_ons", "add_on"), ("products", "product")):
        for item in catalog.get(section, []):
            kinds[item["id"]] = (kind, 0)
            prices[item["id"]] = {k: D(str(v)) for k, v in item["price"].items()}
    rows = []
    with (WORKED / "subscriptions.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            interval = r.get("interval") or "month"
            rows.append(
                Row(
                    account_id=r["account_id"],
                    item_id=r["item_id"],
                    started_at=datetime.fromisoformat(r["started_at"]),
                    ended_at=datetime.fromisoformat(r["ended_at"]) if r["ended_at"] else None,
                    quantity=int(r.get("quantity") or 1),
                    interval=interval,
                    unit_price=D(r["unit_price"])
                    if r.get("unit_price")
                    else prices[r["item_id"]][interval],
                    currency=r.get("currency") or catalog["currency"],
                    status=r.get("status") or "active",
                )
            )
    return rows, kinds


def test_worked_example_movements() -> None:
    rows, kinds = worked_example()
    assert len(rows) == 5
    got = movements(rows, kinds=kinds, fx={"USD": D(1)})
    assert got == [
        Movement("acct-1", t("2026-01-10"), "new", D(29), D(0), D(29), {}),
        Movement("acct-1", t("2026-02-15"), "expansion", D(70), D(29), D(99), {"upsell": D(70)}),
        Movement("acct-1", t("2026-03-01"), "expansion", D(20), D(99), D(119), {"add_on": D(20)}),
        # Pro $990/year = 82.50/month; 82.50 + 20 = 102.50; 119 - 102.50 = 16.50
        Movement("acct-1", t("2026-04-01"), "contraction", D("16.5"), D(119), D("102.5"), {}),
        Movement("acct-1", t("2026-05-31"), "churn", D("102.5"), D("102.5"), D(0), {}),
        Movement("acct-1", t("2026-08-01"), "reactivation", D(29), D(0), D(29), {}),
    ]


def test_worked_example_mrr_after_each_change() -> None:
    rows, kinds = worked_example()
    fx = {"USD": D(1)}
    at = {
        day: mrr_at(rows, t(day), kinds=kinds, fx=fx)["acct-1"]
        for day in (
            "2026-01-10",
            "2026-02-15",
            "2026-03-01",
            "2026-04-01",
            "2026-05-31",
            "2026-08-01",
        )
    }
    assert list(at.values()) == [D(29), D(99), D(119), D("102.50"), D(0), D(29)]


def test_worked_example_january_to_august() -> None:
    rows, kinds = worked_example()
    months = month_summary(rows, date(2026, 1, 1), date(2026, 8, 31), kinds=kinds, fx={"USD": D(1)})
    assert [m["month"] for m in months] == [f"2026-0{i}" for i in range(1, 9)]

    def total(key: str) -> Decimal:
        return sum((m[key] for m in months), D(0))  # type: ignore[misc]

    assert total("new") == 29
    assert total("expansion") == 90
    assert total("contraction") == D("16.50")
    assert total("churn") == D("102.50")
    assert total("reactivation") == 29
    causes = {c: sum((m["expansion_by_cause"][c] for m in months), D(0)) for c in CAUSES}  # type: ignore[index]
    assert causes == {"upsell": 70, "add_on": 20, "cross_sell": 0, "quantity": 0, "price": 0}
    # net +29: from 0 on 1 January to 29 on 31 August
    assert months[0]["mrr_start"] == 0
    assert months[-1]["mrr_end"] == 29
    assert (
        total("new")
        + total("reactivation")
        + total("expansion")
        - total("contraction")
        - total("churn")
        == 29
    )
    # month ends: 29 (Jan), 99 (Feb), 119 (Mar), 102.50 (Apr), 0 (churn 31 May), 0, 0, 29 (Aug)
    assert [m["mrr_end"] for m in months] == [29, 99, 119, D("102.5"), 0, 0, 0, 29]
    assert [m["paying_accounts"] for m in months] == [1, 1, 1, 1, 0, 0, 0, 1]


def test_worked_example_retention() -> None:
    rows, kinds = worked_example()
    fx = {"USD": D(1)}
    # 2026-02-01 -> 2026-05-01: start 29, end 102.50: NDR 102.50 / 29 = 353.4 %, GRR min(102.50, 29) / 29
    ndr, grr = retention(rows, t("2026-02-01"), t("2026-05-01"), kinds=kinds, fx=fx)
    assert ndr is not None and round(ndr * 100, 1) == D("353.4")
    assert grr == 1
    # 2026-03-02 -> 2026-06-01: start 119, end 0
    assert retention(rows, t("2026-03-02"), t("2026-06-01"), kinds=kinds, fx=fx) == (0, 0)


# --- hand-computed cases ---------------------------------------------------------------------------


def test_item_mrr_rounds_half_even_to_micro_units() -> None:
    def mrr(price: str, **kw: object) -> Decimal:
        return item_mrr(row("a", "pro", "2026-01-01", None, price, **kw), KINDS, FX)

    assert mrr("990", interval="year") == D("82.5")
    assert mrr("100", interval="year") == D("8.333333")  # 8.3333333...
    assert mrr("290", interval="year") == D("24.166667")  # 24.1666666...
    assert mrr("0.0000125") == D("0.000012")  # a tie: half-even goes to the even digit 2
    assert mrr("0.0000135") == D("0.000014")  # a tie: to the even digit 4
    assert mrr("27", currency="EUR") == D("29.16")  # 27 x 1.08
    assert mrr("4", quantity=3) == 12
    assert mrr("99", status="trialing") == 0
    assert mrr("99", status="past_due") == 99
    assert mrr("0") == 0


def test_annual_plan_counts_a_twelfth() -> None:
    # Pro at 990/year from 10 January: 990 / 12 = 82.50 a month, new 82.50 in January
    rows = [row("a", "pro", "2026-01-10", None, "990", interval="year")]
    assert moves(rows) == [("a", "2026-01-10", "new", D("82.5"), {})]
    assert summary(rows, "2026-02-01", "2026-02-28")["2026-02"]["mrr_start"] == D("82.5")


def test_quantity_change_is_a_quantity_expansion() -> None:
    # Basic 29 + 3 seats at 4 = 41; 3 -> 5 seats on 1 March: 29 + 20 = 49, expansion 8 (quantity)
    rows = [
        row("a", "basic", "2026-01-01", None, "29"),
        row("a", "seats", "2026-01-01", "2026-03-01", "4", quantity=3),
        row("a", "seats", "2026-03-01", None, "4", quantity=5),
    ]
    assert moves(rows) == [
        ("a", "2026-01-01", "new", D(41), {}),
        ("a", "2026-03-01", "expansion", D(8), {"quantity": D(8)}),
    ]


def test_discount_ending_is_a_price_expansion() -> None:
    # Pro at 79 (20 off) until 1 April, then 99: same item and quantity: expansion 20 (price)
    rows = [
        row("a", "pro", "2026-01-01", "2026-04-01", "79"),
        row("a", "pro", "2026-04-01", None, "99"),
    ]
    assert moves(rows)[1:] == [("a", "2026-04-01", "expansion", D(20), {"price": D(20)})]


def test_discount_starting_is_a_contraction() -> None:
    # Pro at 99, then 25 % off from 15 February: 74.25; contraction 99 - 74.25 = 24.75
    rows = [
        row("a", "pro", "2026-01-01", "2026-02-15", "99"),
        row("a", "pro", "2026-02-15", None, "74.25"),
    ]
    assert moves(rows)[1:] == [("a", "2026-02-15", "contraction", D("24.75"), {})]


def test_plan_swap_up_and_down_at_the_same_instant() -> None:
    # Basic 29 -> Pro 99 on 1 March: one change, expansion 70 (upsell);
    # Pro 99 -> Basic 29 on 1 June: contraction 70. Never a churn and a new in between.
    rows = [
        row("a", "basic", "2026-01-01", "2026-03-01", "29"),
        row("a", "pro", "2026-03-01", "2026-06-01", "99"),
        row("a", "basic", "2026-06-01", None, "29"),
    ]
    assert moves(rows) == [
        ("a", "2026-01-01", "new", D(29), {}),
        ("a", "2026-03-01", "expansion", D(70), {"upsell": D(70)}),
        ("a", "2026-06-01", "contraction", D(70), {}),
    ]


def test_plan_swap_with_an_add_on_splits_by_own_deltas() -> None:
    # Basic 29 -> Pro 99 (+70, upsell) and 5 seats 20 (+20, add_on) at once: expansion 90 = 70 + 20
    rows = [
        row("a", "basic", "2026-01-01", "2026-03-01", "29"),
        row("a", "pro", "2026-03-01", None, "99"),
        row("a", "extra_seats_5", "2026-03-01", None, "20"),
    ]
    assert moves(rows)[1:] == [
        ("a", "2026-03-01", "expansion", D(90), {"add_on": D(20), "upsell": D(70)})
    ]


def test_split_with_a_negative_cause_uses_the_rounding_rule() -> None:
    # Basic 29 -> Pro 99 (+70 upsell), seats +20 (add_on), LeadBooster 10 dropped (-10 cross_sell):
    # expansion 80, split over the positive deltas 70 + 20 = 90:
    #   upsell 80 x 70 / 90 = 62.2222222... -> floor 62.222222
    #   add_on 80 x 20 / 90 = 17.7777777... -> floor 17.777777
    #   sum 79.999999: the remaining 0.000001 goes to the largest delta (upsell): 62.222223
    rows = [
        row("a", "basic", "2026-01-01", "2026-03-01", "29"),
        row("a", "leadbooster", "2026-01-01", "2026-03-01", "10"),
        row("a", "pro", "2026-03-01", None, "99"),
        row("a", "extra_seats_5", "2026-03-01", None, "20"),
    ]
    [(_, _, kind, amount, causes)] = moves(rows)[1:]
    assert (kind, amount) == ("expansion", D(80))
    assert causes == {"upsell": D("62.222223"), "add_on": D("17.777777")}
    assert sum(causes.values()) == 80


def test_split_ties_go_to_the_alphabetically_first_cause() -> None:
    # 10 split over three equal deltas: 3.333333 each, remainder 0.000001 to add_on (a < c < u)
    deltas = {"upsell": D(5), "cross_sell": D(5), "add_on": D(5)}
    assert split(D(10), deltas) == {
        "add_on": D("3.333334"),
        "cross_sell": D("3.333333"),
        "upsell": D("3.333333"),
    }
    assert split(D(1), {"upsell": D(-3)}) == {"price": D(1)}  # the guard


def test_multi_currency_converts_with_fx() -> None:
    # Basic at EUR 27 with fx 1.08: 29.16; plus a GBP 10 product: 12.70; total 41.86
    rows = [
        row("a", "basic", "2026-01-05", None, "27", currency="EUR"),
        row("a", "forms", "2026-02-05", None, "10", currency="GBP"),
    ]
    assert moves(rows) == [
        ("a", "2026-01-05", "new", D("29.16"), {}),
        ("a", "2026-02-05", "expansion", D("12.70"), {"cross_sell": D("12.7")}),
    ]
    assert mrr_at(rows, t("2026-03-01"), kinds=KINDS, fx=FX) == {"a": D("41.86")}


def test_trial_converting_is_new_at_conversion() -> None:
    # Trial of Pro 1-15 January (0 MRR), paying from 15 January: new 99 on the 15th, nothing on the 1st
    rows = [
        row("a", "pro", "2026-01-01", "2026-01-15", "99", status="trialing"),
        row("a", "pro", "2026-01-15", None, "99"),
    ]
    assert moves(rows) == [("a", "2026-01-15", "new", D(99), {})]
    assert mrr_at(rows, t("2026-01-14"), kinds=KINDS, fx=FX) == {"a": 0}


def test_add_on_trial_converting_is_an_add_on_expansion() -> None:
    # On Pro 99; a trial of scheduling (8) converts on 10 February: expansion 8, add_on (not price:
    # the trialing row takes no part in the causes)
    rows = [
        row("a", "pro", "2026-01-01", None, "99"),
        row("a", "scheduling", "2026-01-27", "2026-02-10", "8", status="trialing"),
        row("a", "scheduling", "2026-02-10", None, "8"),
    ]
    assert moves(rows)[1:] == [("a", "2026-02-10", "expansion", D(8), {"add_on": D(8)})]


def test_past_due_counts_and_canceled_churns_at_ended_at() -> None:
    # a: past_due Basic still counts 29. b: Basic canceled on 10 March: churn 29 on 10 March
    rows = [
        row("a", "basic", "2026-01-01", None, "29", status="past_due"),
        row("b", "basic", "2026-01-05", "2026-03-10", "29", status="canceled"),
    ]
    assert mrr_at(rows, t("2026-03-09"), kinds=KINDS, fx=FX) == {"a": 29, "b": 29}
    assert mrr_at(rows, t("2026-03-10"), kinds=KINDS, fx=FX) == {"a": 29, "b": 0}
    assert moves(rows) == [
        ("a", "2026-01-01", "new", D(29), {}),
        ("b", "2026-01-05", "new", D(29), {}),
        ("b", "2026-03-10", "churn", D(29), {}),
    ]


def test_churn_at_period_end_monthly() -> None:
    # Basic from 31 January, canceled 10 March. Periods end 28 February (31 Feb clamped) and
    # 31 March: the first boundary >= 10 March is 31 March. With churn_at=cancel: 10 March.
    rows = [row("a", "basic", "2026-01-31", "2026-03-10", "29", status="canceled")]
    assert moves(rows)[1:] == [("a", "2026-03-10", "churn", D(29), {})]
    period_end = Settings(churn_at="period_end")
    assert moves(rows, settings=period_end)[1:] == [("a", "2026-03-31", "churn", D(29), {})]
    assert counts_until(rows[0], period_end) == t("2026-03-31")
    # a boundary that falls exactly on ended_at is the end
    on_boundary = row("a", "basic", "2026-01-31", "2026-02-28", "29", status="canceled")
    assert counts_until(on_boundary, period_end) == t("2026-02-28")


def test_churn_at_period_end_yearly() -> None:
    # Pro yearly (82.50) from 1 April 2026, canceled 31 May 2026: counts until 1 April 2027.
    # An active row that ends (a plan change's old row) still stops at ended_at.
    rows = [
        row("a", "pro", "2026-04-01", "2026-05-31", "990", interval="year", status="canceled"),
        row("b", "basic", "2026-01-01", "2026-06-01", "29"),
        row("b", "pro", "2026-06-01", None, "99"),
    ]
    got = moves(rows, settings=Settings(churn_at="period_end"))
    assert [m for m in got if m[0] == "a"] == [
        ("a", "2026-04-01", "new", D("82.5"), {}),
        ("a", "2027-04-01", "churn", D("82.5"), {}),
    ]
    assert [m for m in got if m[0] == "b"][1:] == [
        ("b", "2026-06-01", "expansion", D(70), {"upsell": D(70)})
    ]


def test_add_months_clamps_the_day() -> None:
    assert add_months(t("2026-01-31"), 1) == t("2026-02-28")
    assert add_months(t("2026-01-31"), 2) == t("2026-03-31")  # from the start, not from 28 Feb
    assert add_months(t("2024-02-29"), 12) == t("2025-02-28")
    assert add_months(t("2026-11-15T08:30"), 3) == t("2027-02-15T08:30")


@pytest.mark.parametrize(
    ("returns", "window", "expected"),
    [
        ("2026-05-30", 90, "reactivation"),  # churn 1 March + 90 days = 30 May: inside (inclusive)
        ("2026-05-31", 90, "new"),  # 91 days: outside
        ("2026-05-31", None, "reactivation"),  # no window: any return
        ("2027-05-31", None, "reactivation"),
    ],
)
def test_reactivation_window(returns: str, window: int | None, expected: str) -> None:
    rows = [
        row("a", "basic", "2026-01-01", "2026-03-01", "29", status="canceled"),
        row("a", "pro", returns, None, "99"),
    ]
    got = moves(rows, settings=Settings(reactivation_window_days=window))
    assert got == [
        ("a", "2026-01-01", "new", D(29), {}),
        ("a", "2026-03-01", "churn", D(29), {}),
        ("a", returns, expected, D(99), {}),
    ]


def test_reactivation_window_counts_from_the_last_churn() -> None:
    # paid Jan-Feb, churned 1 March, back 1 April (reactivation), churned 1 September, back
    # 1 October: 30 days after the last churn, so a reactivation with a 90-day window
    rows = [
        row("a", "basic", "2026-01-01", "2026-03-01", "29"),
        row("a", "basic", "2026-04-01", "2026-09-01", "29"),
        row("a", "basic", "2026-10-01", None, "29"),
    ]
    types = [m[2] for m in moves(rows, settings=Settings(reactivation_window_days=90))]
    assert types == ["new", "churn", "reactivation", "churn", "reactivation"]


def test_same_month_signup_and_churn() -> None:
    # a pays 99 all along; b signs up 5 March (29) and cancels 20 March.
    # March: start 99, end 99, new 29, churn 29: 99 - 99 = 29 - 29. Cohort {a}: NDR = GRR = 1.
    rows = [
        row("a", "pro", "2026-01-01", None, "99"),
        row("b", "basic", "2026-03-05", "2026-03-20", "29", status="canceled"),
    ]
    march = summary(rows, "2026-03-01", "2026-03-31")["2026-03"]
    assert (march["mrr_start"], march["mrr_end"], march["new"], march["churn"]) == (99, 99, 29, 29)
    assert (march["ndr"], march["grr"], march["paying_accounts"]) == (1, 1, 1)
    # b alone: no cohort in March
    march_b = summary(rows[1:], "2026-03-01", "2026-03-31")["2026-03"]
    assert (march_b["ndr"], march_b["grr"], march_b["paying_accounts"]) == (None, None, 0)


def test_free_plan_then_paid_is_new() -> None:
    # Free (0) from 1 January: no movement, not paying. Basic 29 from 1 February: new 29 (not expansion)
    rows = [
        row("a", "free", "2026-01-01", "2026-02-01", "0"),
        row("a", "basic", "2026-02-01", None, "29"),
    ]
    assert moves(rows) == [("a", "2026-02-01", "new", D(29), {})]
    months = summary(rows, "2026-01-01", "2026-02-28")
    assert months["2026-01"]["paying_accounts"] == 0
    assert months["2026-02"]["new"] == 29


def test_cross_sell_product_is_a_cross_sell_expansion() -> None:
    # On Basic 29, LeadBooster 39 from 10 March: expansion 39 (cross_sell)
    rows = [
        row("a", "basic", "2026-01-01", None, "29"),
        row("a", "leadbooster", "2026-03-10", None, "39"),
    ]
    assert moves(rows)[1:] == [("a", "2026-03-10", "expansion", D(39), {"cross_sell": D(39)})]
    march = summary(rows, "2026-03-01", "2026-03-31")["2026-03"]
    assert march["expansion_by_cause"] == {
        "upsell": 0,
        "add_on": 0,
        "cross_sell": 39,
        "quantity": 0,
        "price": 0,
    }


def test_add_on_removed_is_a_contraction() -> None:
    # Pro 99 + seats 20 = 119; seats removed 1 May: 99, contraction 20
    rows = [
        row("a", "pro", "2026-01-01", None, "99"),
        row("a", "extra_seats_5", "2026-02-01", "2026-05-01", "20", status="canceled"),
    ]
    assert moves(rows)[2:] == [("a", "2026-05-01", "contraction", D(20), {})]


def test_change_at_midnight_on_the_first_belongs_to_that_month() -> None:
    # Starts paying at exactly 2026-03-01T00:00Z: a March movement. February ends at 0, March starts
    # at 0 (the previous month's end) and ends at 29; not in March's NDR cohort.
    rows = [row("a", "basic", "2026-03-01", None, "29")]
    months = summary(rows, "2026-02-01", "2026-03-31")
    assert (months["2026-02"]["new"], months["2026-02"]["mrr_end"]) == (0, 0)
    march = months["2026-03"]
    assert (march["mrr_start"], march["new"], march["mrr_end"]) == (0, 29, 29)
    assert (march["ndr"], march["grr"]) == (None, None)
    # the instant itself includes the change; the period boundary is the MRR just before it
    assert mrr_at(rows, t("2026-03-01"), kinds=KINDS, fx=FX) == {"a": 29}
    assert mrr_before(rows, t("2026-03-01"), kinds=KINDS, fx=FX) == {"a": 0}


def test_churn_at_midnight_on_the_first_belongs_to_that_month() -> None:
    # Paid 29 through February, canceled at exactly 2026-03-01T00:00Z: a March churn; February's
    # end MRR is 29, in the cohort of March, which retains 0
    rows = [row("a", "basic", "2026-01-15", "2026-03-01", "29", status="canceled")]
    months = summary(rows, "2026-02-01", "2026-03-31")
    assert (months["2026-02"]["mrr_end"], months["2026-02"]["churn"]) == (29, 0)
    assert (months["2026-03"]["mrr_start"], months["2026-03"]["churn"]) == (29, 29)
    assert (months["2026-03"]["ndr"], months["2026-03"]["grr"]) == (0, 0)


def test_retention_counts_a_cohort_account_that_churns_and_returns_with_its_end_mrr() -> None:
    # a: 99 at the start, churns 10 March, back on Basic 20 March: end 29. b: 29 -> 49 (seats 20).
    # c: starts during the quarter, not in the cohort.
    # NDR = (29 + 49) / (99 + 29) = 78 / 128 = 0.609375; GRR = (29 + 29) / 128 = 0.453125
    rows = [
        row("a", "pro", "2026-01-01", "2026-03-10", "99", status="canceled"),
        row("a", "basic", "2026-03-20", None, "29"),
        row("b", "basic", "2026-01-01", None, "29"),
        row("b", "extra_seats_5", "2026-02-01", None, "20"),
        row("c", "pro", "2026-02-01", None, "99"),
    ]
    assert retention(rows, t("2026-01-02"), t("2026-04-01"), kinds=KINDS, fx=FX) == (
        D("0.609375"),
        D("0.453125"),
    )


# --- the invariant on generated histories ----------------------------------------------------------

PLANS = ["free", "basic", "pro", "enterprise"]
ITEMS = [*PLANS, "seats", "scheduling", "leadbooster", "forms"]
PRICES = [D(0), D(8), D(20), D(29), D(99), D(290), D(990), D("12.34"), D("74.25")]
JAN_1 = t("2026-01-01")
FIRSTS = [(t(f"2026-{m:02d}-01") - JAN_1).days for m in range(1, 13)]
days = st.one_of(st.sampled_from(FIRSTS), st.integers(min_value=0, max_value=364))


@st.composite
def spells(draw: st.DrawFn, account: str) -> list[Row]:
    """One to three consecutive periods meeting at the same instants (plan swaps, re-pricing,
    quantity changes: the next period often keeps the item), each one or two items started and
    ended together (several causes in one change)."""
    start = draw(days)
    item = draw(st.sampled_from(ITEMS))
    rows = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        length = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=120)))
        # every instant within 2026 (a row that would end later stays open)
        end = None if length is None or start + length > 364 else start + length
        item = draw(st.sampled_from([item, item, *ITEMS]))
        items = [item] + ([draw(st.sampled_from(ITEMS))] if draw(st.booleans()) else [])
        for item_id in items:
            rows.append(
                Row(
                    account_id=account,
                    item_id=item_id,
                    started_at=JAN_1 + timedelta(days=start),
                    ended_at=None if end is None else JAN_1 + timedelta(days=end),
                    quantity=draw(st.integers(min_value=1, max_value=5)),
                    interval=draw(st.sampled_from(["month", "month", "year"])),
                    unit_price=draw(st.sampled_from(PRICES)),
                    currency=draw(st.sampled_from(["USD", "USD", "EUR", "GBP"])),
                    status=draw(
                        st.sampled_from(["active", "active", "canceled", "past_due", "trialing"])
                    ),
                )
            )
        if end is None:
            break
        start = end
    return rows


@st.composite
def histories(draw: st.DrawFn) -> list[Row]:
    rows: list[Row] = []
    for account in ("a", "b", "c")[: draw(st.integers(min_value=1, max_value=3))]:
        for spell in draw(st.lists(spells(account), min_size=1, max_size=4)):
            rows.extend(spell)
    return rows


reference_settings = st.builds(
    Settings,
    reactivation_window_days=st.sampled_from([None, 30, 90]),
    churn_at=st.sampled_from(["cancel", "period_end"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), reference_settings)
def test_invariant_on_generated_histories(rows: list[Row], config: Settings) -> None:
    found = movements(rows, kinds=KINDS, fx=FX, settings=config)
    by_account: dict[str, list[Movement]] = defaultdict(list)
    for m in found:
        by_account[m.account_id].append(m)
        assert m.amount > 0
        assert m.type == classify(m.before, m.after, m.type)
        if m.type == "expansion":
            assert sum(m.causes.values()) == m.amount
            assert set(m.causes) <= set(CAUSES)
        else:
            assert m.causes == {}

    # the years 2026-2027 hold every change (period_end moves a yearly cancel at most a year on)
    first, last = date(2026, 1, 1), date(2027, 12, 31)
    boundaries = [t(f"{y}-{m:02d}-01") for y in (2026, 2027, 2028) for m in range(1, 13)][:25]
    for account in {r.account_id for r in rows}:
        own = [r for r in rows if r.account_id == account]
        signed = [(m.at, signed_amount(m)) for m in by_account[account]]
        # the sweep: each movement starts from where the last one ended
        afters = [D(0), *(m.after for m in by_account[account])]
        assert [m.before for m in by_account[account]] == afters[:-1]
        # mrr_at at each month boundary is the running sum of the movements up to it (inclusive)
        for boundary in boundaries:
            at = mrr_at(own, boundary, kinds=KINDS, fx=FX, settings=config)[account]
            assert at == sum((s for when, s in signed if when <= boundary), D(0))
            before = mrr_before(own, boundary, kinds=KINDS, fx=FX, settings=config)[account]
            assert before == sum((s for when, s in signed if when < boundary), D(0))
        months = month_summary(own, first, last, kinds=KINDS, fx=FX, settings=config)
        check_months(months)
        assert (
            sum(
                m["new"] + m["reactivation"] + m["expansion"] - m["contraction"] - m["churn"]
                for m in months
            )
            == months[-1]["mrr_end"]
        )  # type: ignore[operator]
    check_months(month_summary(rows, first, last, kinds=KINDS, fx=FX, settings=config))


def classify(before: Decimal, after: Decimal, reported: str) -> str:
    """metrics.md's table, read independently (new and reactivation are told apart by history)."""
    if before == 0:
        assert after > 0
        return reported if reported in ("new", "reactivation") else "?"
    if after > before:
        return "expansion"
    return "contraction" if after > 0 else "churn"


def signed_amount(m: Movement) -> Decimal:
    return -m.amount if m.type in ("contraction", "churn") else m.amount


def check_months(months: list[dict[str, object]]) -> None:
    """MRR_end - MRR_start = new + reactivation + expansion - contraction - churn, causes add up."""
    previous_end = D(0)
    for m in months:
        assert m["mrr_start"] == previous_end
        net = m["new"] + m["reactivation"] + m["expansion"] - m["contraction"] - m["churn"]  # type: ignore[operator]
        assert m["mrr_end"] - m["mrr_start"] == net  # type: ignore[operator]
        assert sum(m["expansion_by_cause"].values()) == m["expansion"]  # type: ignore[attr-defined]
        if m["ndr"] is not None:
            assert m["grr"] is not None and 0 <= m["grr"] <= 1  # type: ignore[operator]
            assert m["grr"] <= m["ndr"]  # type: ignore[operator]
        previous_end = m["mrr_end"]  # type: ignore[assignment]
