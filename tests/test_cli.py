"""The command line: workspaces, imports, exit statuses and messages a newcomer can act on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_runner import run
from upsell import __version__

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    monkeypatch.delenv("UPSELL_WORKSPACE", raising=False)


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLES, tmp_path / "examples"))


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"upsell {__version__}"


def test_init_creates_a_workspace_and_refuses_to_do_it_twice(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    first = run("init", ws)
    assert first.exit_code == 0, first.output
    assert (ws / "upsell.db").is_file()
    second = run("init", ws)
    assert second.exit_code == 2
    assert "is a workspace already" in second.stderr


def test_commands_on_a_folder_that_is_not_a_workspace_say_how_to_make_one(tmp_path: Path) -> None:
    result = run("import", "-w", tmp_path, "--catalog", EXAMPLES / "catalog.yaml")
    assert result.exit_code == 2
    assert "no workspace at" in result.stderr and "upsell init" in result.stderr


def test_import_with_nothing_to_import_is_a_usage_error(tmp_path: Path) -> None:
    run("init", tmp_path / "ws")
    result = run("import", "-w", tmp_path / "ws")
    assert result.exit_code == 2 and "nothing to import" in result.stderr


def test_full_import_of_the_example_company(tmp_path: Path, examples: Path, monkeypatch) -> None:
    ws = tmp_path / "ws"
    run("init", ws)
    monkeypatch.setenv("UPSELL_WORKSPACE", str(ws))
    result = run(
        "import",
        "--catalog", examples / "catalog.yaml",
        "--accounts", examples / "accounts.csv",
        "--subscriptions", examples / "subscriptions.csv",
        "--events", examples / "events.jsonl",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["catalog"]["version"] == 1
    assert [(f["kind"], f["new"], f["rejected"]) for f in summary["files"]] == [
        ("accounts", 8, 0),
        ("subscriptions", 12, 0),
        ("events", 236, 0),
    ]
    assert "Imported" in result.stderr


def test_rejected_rows_give_exit_status_1_and_name_the_rejects_file(
    tmp_path: Path, examples: Path
) -> None:
    ws = tmp_path / "ws"
    run("init", ws)
    bad = examples / "accounts.csv"
    bad.write_text(bad.read_text() + "a-0009,not-a-date,Broken,,,,,,,\n")
    result = run("import", "-w", ws, "--accounts", bad)
    assert result.exit_code == 1
    assert "1 rows rejected" in result.stderr and "accounts.csv.rejects.jsonl" in result.stderr
    assert "line 10: created_at: not an ISO-8601 timestamp" in result.stderr


def test_strict_stops_at_the_first_file_with_rejects(tmp_path: Path, examples: Path) -> None:
    ws = tmp_path / "ws"
    run("init", ws)
    bad = examples / "accounts.csv"
    bad.write_text(bad.read_text() + "a-0009,not-a-date,Broken,,,,,,,\n")
    result = run(
        "import", "-w", ws, "--strict", "--catalog", examples / "catalog.yaml",
        "--accounts", bad, "--events", examples / "events.jsonl", "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    files = json.loads(result.stdout)["files"]
    assert [(f["kind"], f["stored"]) for f in files] == [("accounts", False)]
    assert "nothing stored (--strict)" in result.stderr


def test_invalid_catalog_is_a_configuration_error_naming_file_and_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run("init", ws)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "currency: USD\nplans:\n  - id: basic\n    name: Basic\n    price: {month: -5}\n"
    )
    result = run("import", "-w", ws, "--catalog", catalog)
    assert result.exit_code == 2
    assert "the catalog is invalid" in result.stderr
    assert f"{catalog}:5" in result.stderr and "-5" in result.stderr


def test_a_file_refused_whole_stops_the_import_and_names_what_was_skipped(
    tmp_path: Path, examples: Path
) -> None:
    ws = tmp_path / "ws"
    run("init", ws)
    empty = tmp_path / "accounts.csv"
    empty.write_bytes(b"")
    result = run("import", "-w", ws, "--accounts", empty, "--events", examples / "events.jsonl")
    assert result.exit_code == 1
    assert "file is empty" in result.stderr
    assert "not imported either" in result.stderr and "events.jsonl" in result.stderr


def test_subscriptions_before_any_catalog_say_what_to_do(tmp_path: Path, examples: Path) -> None:
    ws = tmp_path / "ws"
    run("init", ws)
    result = run("import", "-w", ws, "--subscriptions", examples / "subscriptions.csv")
    assert result.exit_code == 2 and "--catalog" in result.stderr
