"""`upsell report` on a small simulated company with two weekly runs of in-app offers."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from cli_runner import run
from upsell.domain.calendar import iso
from upsell.settings import Settings
from upsell.store.arrow import contacts_arrow
from upsell.workspace import Workspace

PLAYBOOKS = """\
settings:
  holdout: {share: 0.2, key: report-test}
playbooks:
  - {id: modal, trigger: {kind: [upsell, add_on, cross_sell]}, channel: in_app,
     placement: modal, template: limit_reached}
  - {id: keep, trigger: {kind: save}, channel: in_app, placement: modal, template: save}
guardrails:
  caps: []
"""
CONTRACT_MONTH_KEYS = {
    "month", "mrr_start", "mrr_end", "new", "reactivation", "expansion", "expansion_by_cause",
    "contraction", "churn", "paying_accounts", "ndr", "grr",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    monkeypatch.delenv("UPSELL_WORKSPACE", raising=False)


@pytest.fixture(scope="module")
def company(demo_company: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared demo company (tests/conftest.py) after two runs of the in-app
    playbooks, built once for the module; each test reports on a copy of it (`workspace`)."""
    ws = Path(shutil.copytree(demo_company, tmp_path_factory.mktemp("report") / "ws"))
    (ws / "playbooks.yaml").write_text(PLAYBOOKS)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("UPSELL_DATABASE_URL", raising=False)
        for day in ("2026-03-15", "2026-04-01"):
            result = run("run", "-w", ws, "--as-of", day)
            assert result.exit_code == 0, result.output
    return ws


@pytest.fixture
def workspace(company: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(company, ws)
    return ws


def test_the_json_report_has_the_contract_shape_and_adds_up(
    workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    result = run("report", "-w", workspace, "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["currency"] == "USD"
    assert (report["from"], report["to"]) == ("2025-11-01", "2026-04-30")
    assert report["settings"] == {
        "reactivation_window_days": None, "churn_at": "cancel", "usage_in_mrr": False,
        "gross_margin": 0.8, "attribution_days": 14,
    }  # fmt: skip
    months = report["months"]
    assert [m["month"] for m in months] == [
        "2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "2026-04",
    ]  # fmt: skip
    for m in months:
        assert m.keys() >= CONTRACT_MONTH_KEYS
        change = Decimal(m["mrr_end"]) - Decimal(m["mrr_start"])
        moved = sum(Decimal(m[k]) for k in ("new", "reactivation", "expansion"))
        moved -= sum(Decimal(m[k]) for k in ("contraction", "churn"))
        assert abs(change - moved) <= Decimal("0.01") * 5, m["month"]  # cents rounding only
        assert sum(Decimal(v) for v in m["expansion_by_cause"].values()) == pytest.approx(
            Decimal(m["expansion"]), abs=Decimal("0.03")
        )
    for a, b in itertools.pairwise(months):
        assert a["mrr_end"] == b["mrr_start"]
    by_playbook = report["offers"]["by_playbook"]
    assert by_playbook["modal"]["contacted"] > 0
    assert by_playbook["modal"]["eligible"] >= by_playbook["modal"]["contacted"]
    assert report["incremental"]["holdout_accounts"] > 0
    assert report["top_opportunities"], "the latest run's offers"
    time = report["summary"]["time_to_upsell_days"]
    assert time["upsells"] == 0 or 0 <= time["p25"] <= time["median"] <= time["p75"]
    summary = report["summary"]
    assert Decimal(summary["arr"]) == Decimal(summary["mrr"]) * 12
    for funnel in report["offers"]["by_playbook"].values():
        assert funnel["eligible"] >= funnel["contacted"] >= funnel["converted"]
        assert funnel["opened"] >= funnel["clicked"]
        assert 0 <= funnel["dismissed"] <= funnel["contacted"]
    assert report["cohorts"][0]["ages"][0]["ndr"] in (1.0, None)
    assert "Revenue from 2025-11-01 to 2026-04-30" in result.stderr


def test_a_dismissal_of_an_offer_counts_in_the_funnel_within_its_window(
    workspace: Path, tmp_path: Path
) -> None:
    with Workspace.open(workspace, Settings()) as ws, ws.db.connect() as conn:
        contacts = contacts_arrow(conn=conn).to_pylist()
    reached = [
        c for c in contacts
        if c["channel"] == "in_app" and not c["held_out"] and c["status"] != "failed"
    ]  # fmt: skip
    latest = max(c["as_of"] for c in reached)
    x, y, z = [c for c in reached if c["as_of"] == latest][:3]

    def dismissed(c: dict[str, Any], offer: str, days: int) -> str:
        at = c["as_of"] + timedelta(days=days)
        return json.dumps(
            {"account_id": c["account_id"], "event": "Offer Dismissed", "timestamp": iso(at),
             "properties": {"offer_id": offer}}
        )  # fmt: skip

    before = json.loads(run("report", "-w", workspace, "--json").stdout)
    events = tmp_path / "dismissals.jsonl"
    events.write_text(
        "\n".join(
            [
                dismissed(x, x["offer_id"], 2),  # counts
                dismissed(y, "add_on:something-else", 2),  # another offer: does not
                dismissed(z, z["offer_id"], 15),  # after the 14-day window: does not
            ]
        )
        + "\n"
    )
    imported = run("import", "-w", workspace, "--events", events)
    assert imported.exit_code == 0, imported.output
    result = run("report", "-w", workspace, "--json")
    assert result.exit_code == 0, result.output
    after = json.loads(result.stdout)
    old, new = before["offers"]["by_channel"]["in_app"], after["offers"]["by_channel"]["in_app"]
    assert new["dismissed"] == old["dismissed"] + 1
    assert {k: v for k, v in new.items() if k != "dismissed"} == {
        k: v for k, v in old.items() if k != "dismissed"
    }
    assert after["offers"]["by_playbook"]["modal"]["dismissed"] >= 1
    share = f"{new['dismissed'] / new['contacted']:.1%}"
    assert "Offer funnel by channel" in result.stderr
    assert f"{new['dismissed']:,} ({share})" in result.stderr


def test_the_html_report_is_one_self_contained_page(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run("report", "-w", workspace, "--out", out, "--locale", "de")
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    links: list[str] = []

    class Links(HTMLParser):  # script bodies are data to the parser, not tags
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            links.extend(v or "" for k, v in attrs if k in ("src", "href"))

    Links().feed(page)
    assert not [x for x in links if x.startswith(("http:", "https:", "//"))]
    assert "Plotly.newPlot" in page and " €" not in page  # USD, in German: "1.234,50 $"
    assert re.search(r"\d\.\d{3},\d{2}\s\$", page)


def test_from_and_to_choose_the_months_and_the_workspace_settings_are_used(
    workspace: Path,
) -> None:
    (workspace / "config.yaml").write_text(
        "metrics:\n  churn_at: period_end\nreport:\n  locale: nl\n"
    )
    result = run("report", "-w", workspace, "--from", "2026-02-10", "--to", "2026-03-02", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [m["month"] for m in report["months"]] == ["2026-02", "2026-03"]
    assert report["settings"]["churn_at"] == "period_end" and report["locale"] == "nl"
    assert "churn at period_end" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-03-01", "--to", "2026-01-01"), "is before --from"),
        (("--out", "report.pdf"), "must end in .html or .json"),
        (("--from", "soon"), "is not a date"),
        (("--to", "9999-12-01"), "is out of range: use a day from 1970-01-01 to 2999-12-31"),
        (("--from", "0001-01-01"), "is out of range"),
        (("--to", "2026-06-01T25:00"), "is not a date"),
        (("--locale", "xx_QQ_zz"), "is not a locale"),
    ],
)
def test_bad_options_are_usage_errors(workspace: Path, args: tuple[str, ...], message: str) -> None:
    result = run("report", "-w", workspace, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_an_unknown_engine_is_a_usage_error(workspace: Path) -> None:
    result = run("report", "-w", workspace, "--engine", "spork")
    assert result.exit_code == 2 and "must be one of duckdb, pyspark" in result.output


def test_offers_without_a_holdout_are_not_reported_as_no_offers(workspace: Path) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{workspace / 'upsell.db'}")
    try:
        with engine.begin() as conn:
            assert conn.exec_driver_sql("DELETE FROM contacts WHERE held_out").rowcount > 0
    finally:
        engine.dispose()
    result = run("report", "-w", workspace)
    assert result.exit_code == 0, result.output
    assert "No account was held out in the period" in result.output
    assert "No offers recorded" not in result.output
