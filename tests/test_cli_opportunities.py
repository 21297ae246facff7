"""`upsell opportunities` on a small simulated company (a copy of the shared demo company for each
test): the file, the terminal, the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cli_runner import run

AS_OF = "2026-04-15"
CONTRACT_KEYS = {
    "account_id", "as_of", "kind", "offer_id", "item_id", "from_item_id", "expected_mrr_delta",
    "currency", "score", "reasons", "qualified", "gates",
}  # fmt: skip


@pytest.fixture
def workspace(demo_workspace: Path) -> Path:
    """A copy of the shared demo company (tests/conftest.py) of the test's own."""
    return demo_workspace


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    monkeypatch.delenv("UPSELL_WORKSPACE", raising=False)


def test_every_candidate_is_written_with_the_contract_fields(
    workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "opportunities.jsonl"
    result = run("opportunities", "-w", workspace, "--as-of", AS_OF, "--out", out)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines, "the simulated company has candidates"
    for line in lines:
        assert line.keys() >= CONTRACT_KEYS
        assert line["as_of"] == "2026-04-15T00:00:00Z"
        assert line["qualified"] == (line["gates"] == [])
        assert all(r["text"] for r in line["reasons"])
    assert any(line["qualified"] for line in lines)
    assert any(not line["qualified"] for line in lines)
    assert "Top" in result.stderr and "qualified" in result.stderr


def test_csv_and_parquet_outputs_hold_the_same_candidates(workspace: Path, tmp_path: Path) -> None:
    run("opportunities", "-w", workspace, "--as-of", AS_OF, "--out", tmp_path / "o.jsonl")
    assert (
        run(
            "opportunities", "-w", workspace, "--as-of", AS_OF, "--out", tmp_path / "o.parquet"
        ).exit_code
        == 0
    )
    n = len((tmp_path / "o.jsonl").read_text().splitlines())
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.num_rows == n
    assert json.loads(table["gates"][0].as_py()) is not None


def test_one_account_is_explained_with_its_gates(workspace: Path) -> None:
    result = run("opportunities", "-w", workspace, "--as-of", AS_OF, "--json")
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    stopped = next(line for line in lines if line["gates"])
    result = run(
        "opportunities", "-w", workspace, "--as-of", AS_OF, "--account", stopped["account_id"]
    )
    assert result.exit_code == 0, result.output
    assert stopped["account_id"] in result.stderr
    assert "stopped by" in result.stderr and stopped["gates"][0] in result.stderr


def test_an_unknown_account_is_a_usage_error_naming_it(workspace: Path) -> None:
    result = run("opportunities", "-w", workspace, "--as-of", AS_OF, "--account", "nobody")
    assert result.exit_code == 2
    assert "'nobody'" in result.stderr


def test_a_bad_date_or_output_format_is_a_usage_error_and_writes_nothing(
    workspace: Path, tmp_path: Path
) -> None:
    result = run("opportunities", "-w", workspace, "--as-of", "15/04/2026")
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output
    out = tmp_path / "o.xlsx"
    result = run("opportunities", "-w", workspace, "--as-of", AS_OF, "--out", out)
    assert result.exit_code == 2 and ".xlsx" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_config_error_names_the_file_line_and_key(workspace: Path, tmp_path: Path) -> None:
    (workspace / "config.yaml").write_text("opportunities:\n  min_tenure_days: -3\n")
    result = run("opportunities", "-w", workspace, "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "config.yaml:2" in result.stderr and "min_tenure_days" in result.stderr


def test_csv_output_cannot_smuggle_a_formula_into_a_spreadsheet(tmp_path: Path) -> None:
    """OWASP's CSV injection: text starting with =, +, -, @, a tab or a CR gets a leading quote;
    numbers, negative ones included, stay numbers."""
    import csv

    from upsell.cli.output import write_lines

    out = tmp_path / "x.csv"
    rows = [
        {"account_id": '=HYPERLINK("http://evil","x")', "name": "+1 555", "delta": "-12.50"},
        {"account_id": "@SUM(A1)", "name": "\tpad", "delta": -3},
        {"account_id": "a-1", "name": "-minus", "delta": "1e3"},
    ]
    assert write_lines(out, rows) == 3
    with out.open(newline="") as f:
        got = list(csv.DictReader(f))
    assert [r["account_id"] for r in got] == ['\'=HYPERLINK("http://evil","x")', "'@SUM(A1)", "a-1"]
    assert [r["name"] for r in got] == ["'+1 555", "'\tpad", "'-minus"]
    assert [r["delta"] for r in got] == ["-12.50", "-3", "1e3"]
