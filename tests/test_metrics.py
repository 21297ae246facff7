"""The report's formulas (domain/metrics.py), and `upsell report` end to end, on metrics.md's worked
example, every number computed by hand.

The worked example (examples/worked-example): one account, Basic $29 from 10 January 2026, Pro $99
from 15 February, the 5-seat add-on ($20) from 1 March, Pro yearly ($990, 82.50 a month) from
1 April, everything cancelled on 31 May, Basic again from 1 August. MRR after each change: 29, 99,
119, 102.50, 0, 29. January to August: new 29, expansion 90 (70 upsell, 20 add-on), contraction
16.50, churn 102.50, reactivation 29; the months start with 0, 29, 99, 119, 102.50, 0, 0, 0.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from cli_runner import run
from upsell.domain.metrics import (
    arpa,
    arr,
    cents,
    ltv,
    quick_ratio,
    ratio,
    revenue_churn,
    time_to_upsell,
)

EXAMPLE = Path(__file__).parent.parent / "examples" / "worked-example"
MILLION = 1_000_000
STARTS = (0 + 29 + 99 + 119 + 102.5) * MILLION  # the months' starting MRR, in micro-units
LOST = (16.5 + 102.5) * MILLION  # contraction + churn
EXPANSION = 90 * MILLION


def test_arr_is_twelve_times_the_mrr_as_shown() -> None:
    assert arr(Decimal("29.00")) == Decimal("348.00")
    assert arr(Decimal("146857.92")) == Decimal("1762295.04")


def test_arpa_is_mrr_over_paying_accounts_and_shown_in_cents() -> None:
    assert arpa(102_500_000, 1) == 102_500_000
    assert arpa(146_857_920_000, 2_409) == pytest.approx(60_962_192.6)
    assert cents(arpa(146_857_920_000, 2_409) or 0) == Decimal("60.96")
    assert arpa(0, 0) is None


def test_cents_truncate_to_whole_micro_units_then_round_half_even() -> None:
    assert cents(68_137_815.126) == Decimal("68.14")
    assert cents(5_000) == Decimal("0.00")  # 0.005: half to even
    assert cents(15_000) == Decimal("0.02")  # 0.015: half to even
    assert cents(-16_500_000) == Decimal("-16.50")


def test_quick_ratio_of_the_worked_example() -> None:
    # (new 29 + reactivation 29 + expansion 90) / (contraction 16.50 + churn 102.50) = 148 / 119
    assert quick_ratio(148, 119) == pytest.approx(1.2436974789915967)
    assert quick_ratio(29, 0) is None
    assert ratio(0, 16.5) == 0.0


def test_ltv_and_its_uplift_on_the_worked_example() -> None:
    # Gross revenue churn: 119 / 349.50 a month; net of expansion: 29 / 349.50. ARPA 29, margin 80 %.
    gross = revenue_churn(LOST, STARTS)
    net = revenue_churn(LOST - EXPANSION, STARTS)
    assert gross == pytest.approx(119 / 349.5)
    assert net == pytest.approx(29 / 349.5)
    without = ltv(29 * MILLION, 0.8, gross)
    with_expansion = ltv(29 * MILLION, 0.8, net)
    assert without is not None and with_expansion is not None
    assert cents(without) == Decimal("68.14")  # 23.20 x 349.50 / 119
    assert cents(with_expansion) == Decimal("279.60")  # 23.20 x 349.50 / 29
    assert cents(with_expansion - without) == Decimal("211.46")


def test_no_churn_or_net_expansion_has_no_ltv() -> None:
    assert ltv(29.0, 0.8, None) is None
    assert ltv(29.0, 0.8, 0.0) is None
    assert ltv(29.0, 0.8, revenue_churn(10 - 20, 100)) is None  # expansion beat the losses


def test_time_to_upsell_uses_inclusive_quartiles() -> None:
    assert time_to_upsell([36.0]).median == 36
    t = time_to_upsell([10.0, 20.0, 40.0, 100.0])
    # The inclusive method: quartiles at positions 1.75, 2.5 and 3.25 of the sorted days.
    assert (t.p25, t.median, t.p75, t.upsells) == (18, 30, 55, 4)
    assert time_to_upsell([]).median is None and time_to_upsell([]).upsells == 0


@pytest.fixture(scope="module")
def worked_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = pytest.MonkeyPatch()
    mp.delenv("UPSELL_DATABASE_URL", raising=False)
    ws = tmp_path_factory.mktemp("worked") / "ws"
    assert run("init", ws).exit_code == 0
    done = run(
        "import", "-w", ws,
        "--catalog", EXAMPLE / "catalog.yaml",
        "--accounts", EXAMPLE / "accounts.csv",
        "--subscriptions", EXAMPLE / "subscriptions.csv",
    )  # fmt: skip
    mp.undo()
    assert done.exit_code == 0, done.output
    return ws


def report(ws: Path, *args: str) -> dict[str, object]:
    done = run("report", "-w", ws, "--json", *args)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_report_of_the_worked_example_by_hand(worked_example: Path) -> None:
    r = report(worked_example)
    assert (r["from"], r["to"]) == ("2026-01-01", "2026-08-31")
    months = {m["month"]: m for m in r["months"]}  # type: ignore[attr-defined]
    moves = ("new", "reactivation", "expansion", "contraction", "churn", "mrr_end")
    expected = {
        "2026-01": ("29.00", "0.00", "0.00", "0.00", "0.00", "29.00"),
        "2026-02": ("0.00", "0.00", "70.00", "0.00", "0.00", "99.00"),
        "2026-03": ("0.00", "0.00", "20.00", "0.00", "0.00", "119.00"),
        "2026-04": ("0.00", "0.00", "0.00", "16.50", "0.00", "102.50"),
        "2026-05": ("0.00", "0.00", "0.00", "0.00", "102.50", "0.00"),
        "2026-06": ("0.00", "0.00", "0.00", "0.00", "0.00", "0.00"),
        "2026-07": ("0.00", "0.00", "0.00", "0.00", "0.00", "0.00"),
        "2026-08": ("0.00", "29.00", "0.00", "0.00", "0.00", "29.00"),
    }
    assert {k: tuple(m[x] for x in moves) for k, m in months.items()} == expected
    feb, mar, apr, may = (months[f"2026-0{n}"] for n in (2, 3, 4, 5))
    assert feb["expansion_by_cause"]["upsell"] == "70.00"
    assert mar["expansion_by_cause"]["add_on"] == "20.00"
    assert feb["ndr"] == pytest.approx(99 / 29) and feb["grr"] == 1.0
    assert apr["ndr"] == pytest.approx(102.5 / 119) and apr["grr"] == pytest.approx(102.5 / 119)
    assert (feb["upgrades"], feb["upsell_conversion"]) == (1, 1.0)  # 1 of the 1 paying at its start
    assert (mar["upgrades"], mar["upsell_conversion"]) == (0, 0.0)
    assert (apr["arr"], apr["arpa"], apr["quick_ratio"]) == ("1230.00", "102.50", 0.0)
    assert (may["paying_accounts"], may["arpa"], may["ndr"]) == (0, None, 0.0)
    assert months["2026-01"]["quick_ratio"] is None  # nothing lost in January
    s = r["summary"]
    assert s == {
        "mrr": "29.00",
        "arr": "348.00",
        "paying_accounts": 1,
        "arpa": "29.00",
        "ndr_ttm": None,  # nobody paid twelve months before August
        "grr_ttm": None,
        "quick_ratio": pytest.approx(148 / 119),
        "ltv": "68.14",
        "ltv_uplift": "211.46",
        "upsell_conversion": None,  # August started with nobody paying
        "average_upgrade_value": "70.00",
        "time_to_upsell_days": {"median": 36, "p25": 36, "p75": 36, "upsells": 1},
        "reach": None,
    }
    assert r["offers"] == {"by_kind": {}, "by_channel": {}, "by_playbook": {}, "by_variant": {}}
    assert r["incremental"] == {}
    (cohort,) = r["cohorts"]  # type: ignore[misc]
    assert (cohort["cohort"], cohort["accounts"]) == ("2026-01", 1)
    ndr = [a["ndr"] for a in cohort["ages"]]
    assert ndr == pytest.approx([1.0, 99 / 29, 119 / 29, 102.5 / 29, 0.0, 0.0, 0.0, 1.0])
    assert [a["logo_retention"] for a in cohort["ages"]] == [1, 1, 1, 1, 0, 0, 0, 1]


def test_a_window_without_its_start_carries_the_mrr_in(worked_example: Path) -> None:
    r = report(worked_example, "--from", "2026-04-01", "--to", "2026-05-31")
    assert [m["month"] for m in r["months"]] == ["2026-04", "2026-05"]  # type: ignore[attr-defined]
    assert r["months"][0]["mrr_start"] == "119.00"  # type: ignore[index]
    assert r["summary"]["quick_ratio"] == 0.0  # type: ignore[index]
    assert r["summary"]["average_upgrade_value"] is None  # type: ignore[index]


def test_churn_at_period_end_moves_the_summary_and_the_report_alike(
    worked_example: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(worked_example, ws)
    (ws / "config.yaml").write_text("metrics:\n  churn_at: period_end\n")
    events = tmp_path / "events.jsonl"
    events.write_text('{"account_id": "acct-1", "event": "Signed In", "timestamp": "2026-08-15"}\n')
    assert run("import", "-w", ws, "--events", events).exit_code == 0
    r = report(ws, "--to", "2026-06-30")
    # Cancelled on 31 May: the add-on's month ends 1 June, Pro's year 1 April 2027.
    june = r["months"][-1]  # type: ignore[index]
    assert june["mrr_end"] == "82.50"
    demo = run("demo", "-w", ws, "--json")
    assert demo.exit_code == 0, demo.output
    # The summary is as of the latest event, 15 August: Basic again, and Pro's paid year.
    assert json.loads(demo.stdout)["mrr"] == "111.50"  # Basic 29 + Pro yearly 82.50
