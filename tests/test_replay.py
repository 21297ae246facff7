"""A simulated company replayed week by week through `upsell run` (upsell/replay.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from cli_runner import run
from upsell.store.schema import contacts, events


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    monkeypatch.delenv("UPSELL_WORKSPACE", raising=False)


def test_replayed_weeks_leave_offers_answers_and_a_holdout_to_report(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = run("init", ws, "--demo", "--accounts", 400, "--months", 4, "--seed", 5, "--weeks", 3)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("week of ") == 3
    engine = sa.create_engine(f"sqlite:///{ws / 'upsell.db'}")
    try:
        with engine.connect() as conn:
            days = {r.as_of.date() for r in conn.execute(sa.select(contacts.c.as_of))}
            held = conn.execute(
                sa.select(sa.func.count()).where(contacts.c.held_out.is_(True))
            ).scalar_one()
            answers = conn.execute(
                sa.select(sa.func.count()).where(
                    events.c.event.in_(["Offer Viewed", "Email Opened"])
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert len(days) == 3 and held > 0 and answers > 0
    out = tmp_path / "report.json"
    assert run("report", "-w", ws, "--out", out).exit_code == 0
    report = json.loads(out.read_text())
    funnel = report["offers"]["by_channel"]["in_app"]
    assert funnel["contacted"] > 0 and funnel["opened"] > 0
    assert 0 < report["incremental"]["holdout_accounts"] <= held


def test_weeks_that_do_not_fit_the_simulation_are_a_usage_error(tmp_path: Path) -> None:
    result = run("init", tmp_path / "ws", "--demo", "--months", 1, "--weeks", 6)
    assert result.exit_code == 2
    assert "do not fit" in result.output
