"""`upsell learn` and the runs that decide with what it fitted, on a replayed demo company (docs/
learning.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from cli_runner import run
from companies import PLAYBOOKS
from upsell.config.playbooks import DEFAULT_PLAYBOOKS
from upsell.store.schema import models

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    monkeypatch.delenv("UPSELL_WORKSPACE", raising=False)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 accounts over 4 months, then 6 weekly runs answered by the simulated customers (built
    once; each test works on a copy)."""
    ws = tmp_path_factory.mktemp("learn") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("UPSELL_DATABASE_URL", raising=False)
        result = run(
            "init", ws, "--demo", "--accounts", 400, "--months", 4, "--seed", 5, "--weeks", 6
        )
    assert result.exit_code == 0, result.output
    return ws


@pytest.fixture
def ws(replayed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(replayed, tmp_path / "ws"))


def _learning(ws: Path, settings: str, *, in_app: bool = False) -> None:
    """The default playbooks with `settings` as settings.learning; with `in_app`, those of
    tests/companies.py instead (everything in-app: a real run needs no server to deliver to)."""
    text = PLAYBOOKS.replace("settings:\n", "settings:\n  learning: {}\n") if in_app else None
    text = text or DEFAULT_PLAYBOOKS.read_text()
    old = next(line for line in text.splitlines() if line.startswith("  learning:"))
    (ws / "playbooks.yaml").write_text(text.replace(old, f"  learning: {settings}"))


def _versions(ws: Path) -> list[tuple[int, int]]:
    engine = sa.create_engine(f"sqlite:///{ws / 'upsell.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(models.c.version, models.c.decisions)).all()
    finally:
        engine.dispose()
    return [(r.version, r.decisions) for r in rows]


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_learn_reports_the_data_it_used_and_how_it_does_out_of_sample(ws: Path) -> None:
    before = _versions(ws)
    result = run("learn", "-w", ws, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    e = out["evaluation"]
    assert out["decisions"] == e["treated"] + e["held_out"] > 0
    assert out["pending"] > 0  # the last weeks' windows are still open
    assert sum(c["decisions"] for c in e["calibration"]) == e["treated"]
    assert e["auc"] is None or 0 <= e["auc"] <= 1
    assert out["in_use"] is False  # the default needs 200 decisions; this company has fewer
    assert {g["group"].split("/")[0] for g in out["groups"]} <= {
        "upsell", "add_on", "cross_sell", "save",
    }  # fmt: skip
    after = _versions(ws)
    assert after[-1] == (out["version"], out["decisions"]) and len(after) == len(before) + 1
    text = run("learn", "-w", ws, "--dry-run")
    assert text.exit_code == 0 and "not stored (--dry-run)" in text.stdout
    assert "Runs keep deciding by the prior until the fit rests on 200" in text.stdout
    assert _versions(ws) == after


def test_a_run_decides_with_the_fit_and_each_line_says_where_p_accept_came_from(
    ws: Path, tmp_path: Path
) -> None:
    _learning(ws, "{min_decisions: 20, refit_days: 7}", in_app=True)
    before = _versions(ws)
    out = tmp_path / "decisions.jsonl"
    result = run("run", "-w", ws, "--as-of", "2026-03-01", "--dry-run", "--out", out)
    assert result.exit_code == 0, result.output
    lines = _lines(out)
    assert lines and all(line["p_source"]["source"] == "model" for line in lines)  # type: ignore[index]
    first = lines[0]["p_source"]
    assert isinstance(first, dict) and first["n"] >= 0 and 0 < first["prior"] <= 1
    assert _versions(ws) == before  # a dry run refits for itself and stores nothing
    assert run("run", "-w", ws, "--as-of", "2026-03-01").exit_code == 0
    after = _versions(ws)
    assert len(after) == len(before) + 1  # the real run stored its refit
    again = tmp_path / "again.jsonl"
    assert run("run", "-w", ws, "--as-of", "2026-03-02", "--dry-run", "--out", again).exit_code == 0
    assert _versions(ws) == after  # one day later the fit is not yet due
    versions = {line["p_source"]["version"] for line in _lines(again)}  # type: ignore[index]
    assert versions <= {after[-1][0]}


def test_with_learning_off_or_too_little_evidence_the_prior_decides(
    ws: Path, tmp_path: Path
) -> None:
    out = tmp_path / "decisions.jsonl"
    assert run("run", "-w", ws, "--as-of", "2026-03-01", "--dry-run", "--out", out).exit_code == 0
    assert {str(line["p_source"]) for line in _lines(out)} == {"{'source': 'prior'}"}
    _learning(ws, "{use: false, min_decisions: 1}")
    assert run("run", "-w", ws, "--as-of", "2026-03-01", "--dry-run", "--out", out).exit_code == 0
    assert {str(line["p_source"]) for line in _lines(out)} == {"{'source': 'prior'}"}


def test_bad_learning_settings_name_the_key(ws: Path) -> None:
    _learning(ws, "{strength: 0, refit: 3}")
    result = run("playbooks", "check", "-w", ws)
    assert result.exit_code != 0
    assert "settings.learning.strength" in result.output and "refit" in result.output


def test_the_decision_path_never_imports_the_simulator() -> None:
    """Deciding, learning and serving run with the simulator absent (it knows the hidden truth)."""
    code = (
        "import sys\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'upsell.simulator' or name.startswith('upsell.simulator.'):\n"
        "            raise ImportError('the simulator is absent')\n"
        "sys.meta_path.insert(0, Absent())\n"
        "import upsell.flows.offers, upsell.flows.learn, upsell.flows.triggers\n"
        "import upsell.service.app, upsell.cli.run, upsell.cli.learn\n"
        "assert not [m for m in sys.modules if m.startswith('upsell.simulator')]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
