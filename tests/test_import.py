"""Importing files into the store, on SQLite and PostgreSQL: rejects, strictness, idempotence, resuming."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from upsell.config.catalog import load_catalog
from upsell.domain.money import Money
from upsell.domain.subscriptions import mrr_at
from upsell.errors import ImportRejected, WorkspaceError
from upsell.ingest import importer
from upsell.ingest.importer import import_catalog, import_table, rejects_path
from upsell.store.accounts import count_accounts, get_account
from upsell.store.events import count_events
from upsell.store.subscriptions import subscription_items
from upsell.store.watermarks import get_watermark

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A private copy of examples/, so rejects files and appends stay in the test's folder."""
    return Path(shutil.copytree(EXAMPLES, tmp_path / "examples"))


@pytest.fixture
def catalog(db: sa.Engine, examples: Path):
    return import_catalog(db=db, path=examples / "catalog.yaml").loaded.catalog


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rejects(path: Path) -> list[dict]:
    return [json.loads(line) for line in rejects_path(path).read_text().splitlines()]


def test_example_company_imports_cleanly_and_twice_stores_nothing_new(
    db, examples, catalog
) -> None:
    files = [
        ("accounts", examples / "accounts.csv"),
        ("subscriptions", examples / "subscriptions.csv"),
        ("events", examples / "events.jsonl"),
    ]
    first = [import_table(db=db, kind=k, path=p, catalog=catalog) for k, p in files]
    assert [(r.read, r.new, r.rejected) for r in first] == [(8, 8, 0), (12, 12, 0), (236, 236, 0)]
    with db.connect() as conn:
        assert count_accounts(conn=conn) == 8 and count_events(conn=conn) == 236
    for (
        _,
        path,
    ) in files:  # a changed path defeats the watermark, so de-duplication itself is tested
        copy = path.with_name("again-" + path.name)
        shutil.copy(path, copy)
    again = [
        import_table(db=db, kind=k, path=p.with_name("again-" + p.name), catalog=catalog)
        for k, p in files
    ]
    assert [(r.new, r.rejected) for r in again] == [(0, 0), (0, 0), (0, 0)]
    assert (again[0].unchanged, again[1].unchanged, again[2].unchanged) == (8, 12, 236)
    with db.connect() as conn:
        assert count_events(conn=conn) == 236
    assert not rejects_path(examples / "events.jsonl").exists()


def test_invalid_rows_go_to_the_rejects_file_and_valid_rows_are_stored(db, tmp_path) -> None:
    f = write(
        tmp_path / "accounts.csv",
        "account_id,created_at,currency\n"
        "a-1,2026-01-01,USD\n"
        "a-2,2026-13-01,USD\n"
        "a-1,2026-01-02,USD\n"
        "a-3,2026-01-03,XYZ\n"
        "a-4,2026-01-04,EUR\n",
    )
    result = import_table(db=db, kind="accounts", path=f)
    assert (result.read, result.new, result.rejected, result.stored) == (5, 2, 3, True)
    got = rejects(f)
    assert [(r["row"], r["line"]) for r in got] == [(2, 3), (3, 4), (4, 5)]
    assert "created_at: not an ISO-8601 timestamp: '2026-13-01'" in got[0]["reason"]
    assert got[1]["reason"] == "duplicate account_id 'a-1': also on row 1"
    assert "unknown currency 'XYZ'" in got[2]["reason"]
    assert got[2]["values"] == {"account_id": "a-3", "created_at": "2026-01-03", "currency": "XYZ"}
    with db.connect() as conn:
        assert count_accounts(conn=conn) == 2


def test_strict_stores_nothing_from_a_file_with_an_invalid_row(db, tmp_path) -> None:
    f = write(tmp_path / "accounts.csv", "account_id,created_at\na-1,2026-01-01\na-2,yesterday\n")
    result = import_table(db=db, kind="accounts", path=f, strict=True)
    assert (result.stored, result.new, result.rejected) == (False, 0, 1)
    with db.connect() as conn:
        assert count_accounts(conn=conn) == 0
        assert get_watermark(conn=conn, kind="accounts", source=str(f.resolve())) is None


def test_failure_half_way_leaves_nothing_stored(db, tmp_path, monkeypatch) -> None:
    lines = "".join(f"a-{i},2026-01-01\n" for i in range(10))
    f = write(tmp_path / "accounts.csv", "account_id,created_at\n" + lines)
    monkeypatch.setattr(importer, "BATCH_ROWS", 3)
    calls = []

    def crash(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_table(db=db, kind="accounts", path=f, progress=crash)
    with db.connect() as conn:
        assert count_accounts(conn=conn) == 0


def test_subscription_rows_are_checked_against_catalog_and_accounts(db, examples, catalog) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    f = write(
        examples / "subs.csv",
        "account_id,item_id,started_at,interval,currency\n"
        "a-0001,platinum,2026-01-01,month,\n"
        "a-9999,basic,2026-01-01,month,\n"
        "a-0001,assessment_credit,2026-01-01,month,\n"
        "a-0001,extra_seats_5,2026-01-01,year,\n"
        "a-0001,basic,2026-01-01,month,SEK\n"
        "a-0002,pro,2026-02-01,month,\n",
    )
    result = import_table(db=db, kind="subscriptions", path=f, catalog=catalog)
    reasons = [r["reason"] for r in rejects(f)]
    assert result.new == 1 and len(reasons) == 5
    assert reasons[0].startswith("item_id: unknown item 'platinum'")
    assert reasons[1].startswith("account_id: unknown account 'a-9999'")
    assert "priced by usage" in reasons[2]
    assert "no price per year for 'extra_seats_5'" in reasons[3]
    assert reasons[4].startswith("currency: SEK has no exchange rate")
    with db.connect() as conn:
        [item] = subscription_items(conn=conn, account_id="a-0002")
    # a-0002 pays in EUR: Pro's monthly price comes from the catalog's EUR price book.
    assert item.unit_price == Money.of("92", "EUR")


def test_subscriptions_need_a_catalog(db, tmp_path) -> None:
    f = write(tmp_path / "s.csv", "account_id,item_id,started_at\na,b,2026-01-01\n")
    with pytest.raises(WorkspaceError, match="no catalog yet"):
        import_table(db=db, kind="subscriptions", path=f, catalog=None)


def test_a_later_file_updates_a_known_subscription_to_end_it(db, examples, catalog) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    header = "account_id,item_id,started_at,ended_at,status\n"
    first = write(examples / "s1.csv", header + "a-0006,basic,2026-04-01T00:00:00Z,,active\n")
    import_table(db=db, kind="subscriptions", path=first, catalog=catalog)
    later = write(
        examples / "s2.csv",
        header + "a-0006,basic,2026-04-01T00:00:00Z,2026-06-01T00:00:00Z,canceled\n",
    )
    result = import_table(db=db, kind="subscriptions", path=later, catalog=catalog)
    assert (result.new, result.updated) == (0, 1)
    with db.connect() as conn:
        [item] = subscription_items(conn=conn, account_id="a-0006")
    assert (item.ended_at, item.status) == (datetime(2026, 6, 1, tzinfo=UTC), "canceled")


def test_events_for_unknown_accounts_are_rejected_and_duplicates_skipped(db, examples) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    line = {"account_id": "a-0001", "event": "Report Shared", "timestamp": "2026-05-01T09:00:00Z"}
    f = write(
        examples / "e.jsonl",
        "\n".join(
            [
                json.dumps(line),
                json.dumps(line),
                json.dumps({**line, "account_id": "ghost"}),
                "{nope",
            ]
        )
        + "\n",
    )
    result = import_table(db=db, kind="events", path=f)
    assert (result.new, result.unchanged, result.rejected) == (1, 1, 2)
    got = rejects(f)
    assert [r["line"] for r in got] == [3, 4]
    assert got[0]["reason"].startswith("account_id: unknown account 'ghost'")
    assert got[1]["reason"].startswith("not valid JSON")


def event_line(account: str, name: str, day: int) -> str:
    when = f"2026-05-{day:02d}T09:00:00Z"
    return json.dumps({"account_id": account, "event": name, "timestamp": when}) + "\n"


def test_a_grown_file_is_read_on_from_where_the_last_import_stopped(db, examples) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    f = write(examples / "e.jsonl", event_line("a-0001", "A", 1) + event_line("a-0002", "A", 2))
    import_table(db=db, kind="events", path=f)
    with f.open("a") as out:
        out.write(event_line("a-0003", "A", 3))
    result = import_table(db=db, kind="events", path=f)
    assert (result.resumed_after_row, result.read, result.new) == (2, 1, 1)
    again = import_table(db=db, kind="events", path=f)
    assert (again.resumed_after_row, again.read) == (3, 0)


def test_a_file_changed_before_the_watermark_is_read_again_in_full(db, examples) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    f = write(examples / "e.jsonl", event_line("a-0001", "A", 1) + event_line("a-0002", "A", 2))
    import_table(db=db, kind="events", path=f)
    write(
        f,
        event_line("a-0001", "B", 1) + event_line("a-0002", "A", 2) + event_line("a-0003", "A", 3),
    )
    result = import_table(db=db, kind="events", path=f)
    assert (result.resumed_after_row, result.read, result.new, result.unchanged) == (0, 3, 2, 1)


def test_accounts_files_are_always_read_whole(db, tmp_path) -> None:
    f = write(tmp_path / "accounts.csv", "account_id,created_at\na-1,2026-01-01\n")
    import_table(db=db, kind="accounts", path=f)
    with f.open("a") as out:
        out.write("a-2,2026-01-02\n")
    result = import_table(db=db, kind="accounts", path=f)
    assert (result.resumed_after_row, result.read, result.new, result.unchanged) == (0, 2, 1, 1)


def test_rejected_rows_are_read_again_on_the_next_import(db, examples) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    ok = '{"account_id": "a-0001", "event": "E", "timestamp": "2026-05-01T09:00:00Z"}\n'
    early = '{"account_id": "a-0042", "event": "E", "timestamp": "2026-05-02T09:00:00Z"}\n'
    f = write(examples / "e.jsonl", ok + early + ok.replace("E", "F"))
    first = import_table(db=db, kind="events", path=f)
    assert (first.new, first.rejected) == (2, 1)
    write(examples / "more.csv", "account_id,created_at\na-0042,2026-01-01\n")
    import_table(db=db, kind="accounts", path=examples / "more.csv")
    second = import_table(db=db, kind="events", path=f)
    assert (second.resumed_after_row, second.read, second.new, second.unchanged) == (1, 2, 1, 1)


def test_parquet_events_import_and_wrong_types_store_nothing(db, examples) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    when = datetime(2026, 5, 1, 9, tzinfo=UTC)
    good = examples / "events.parquet"
    pq.write_table(
        pa.table(
            {
                "account_id": ["a-0001", "a-0002"],
                "event": ["Feature Blocked", "Report Shared"],
                "timestamp": [when, when],
                "properties": [{"feature": "automation"}, {"feature": None}],
            }
        ),
        good,
    )
    assert import_table(db=db, kind="events", path=good).new == 2
    bad = examples / "bad.parquet"
    pq.write_table(pa.table({"account_id": ["a-0001"], "event": ["E"], "timestamp": [17.5]}), bad)
    with pytest.raises(ImportRejected, match="column 'timestamp' has type double"):
        import_table(db=db, kind="events", path=bad)
    assert rejects(bad)[0]["row"] is None
    with db.connect() as conn:
        assert count_events(conn=conn) == 2


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", b"", "file is empty"),
        ("nohead.csv", b"a-1,2026-01-01\n", "missing required column account_id"),
        ("latin1.csv", b"account_id,created_at,name\na-1,2026-01-01,Caf\xe9\n", None),
    ],
)
def test_bad_files_name_the_file_and_store_nothing(db, tmp_path, name, content, reason) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    if reason is None:
        result = import_table(db=db, kind="accounts", path=f)
        assert result.rejected == 1 and "not valid UTF-8" in rejects(f)[0]["reason"]
    else:
        with pytest.raises(ImportRejected, match=reason) as info:
            import_table(db=db, kind="accounts", path=f)
        assert str(f) in str(info.value)
    with db.connect() as conn:
        assert count_accounts(conn=conn) == 0


def test_worked_example_of_metrics_md_imports_with_the_mrr_it_states(db) -> None:
    folder = EXAMPLES / "worked-example"
    catalog = import_catalog(db=db, path=folder / "catalog.yaml").loaded.catalog
    import_table(db=db, kind="accounts", path=folder / "accounts.csv")
    result = import_table(
        db=db, kind="subscriptions", path=folder / "subscriptions.csv", catalog=catalog
    )
    assert (result.new, result.rejected) == (5, 0)
    rejects_path(folder / "subscriptions.csv").unlink(missing_ok=True)
    with db.connect() as conn:
        items = subscription_items(conn=conn, account_id="acct-1")
    after = {
        "2026-01-10": "29",
        "2026-02-15": "99",
        "2026-03-01": "119",
        "2026-04-01": "102.50",
        "2026-05-31": "0",
        "2026-08-01": "29",
    }
    for day, mrr in after.items():
        at = datetime.fromisoformat(day).replace(tzinfo=UTC)
        assert mrr_at(items, at, catalog.fx).amount == Decimal(mrr), day


def test_catalog_is_versioned_only_when_it_changes(db, examples) -> None:
    first = import_catalog(db=db, path=examples / "catalog.yaml")
    same = import_catalog(db=db, path=examples / "catalog.yaml")
    assert (first.version, first.created) == (same.version, True) and same.created is False
    changed = examples / "catalog2.yaml"
    changed.write_text(
        (examples / "catalog.yaml").read_text().replace("LeadBooster", "Lead Booster")
    )
    assert import_catalog(db=db, path=changed).version == first.version + 1
    assert load_catalog(changed).catalog.item("leadbooster") is not None


def test_a_file_of_only_bad_rows_is_written_out_batch_by_batch(db, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(importer, "BATCH_ROWS", 10)
    f = write(
        tmp_path / "a.csv",
        "account_id,created_at\n" + "".join(f"a-{i},06/01/2026\n" for i in range(35)),
    )
    seen: list[int] = []
    original = importer._Rejects.flush

    def spy(self) -> None:
        seen.append(self.pending)
        original(self)

    monkeypatch.setattr(importer._Rejects, "flush", spy)
    result = import_table(db=db, kind="accounts", path=f)
    assert result.rejected == 35 and len(rejects(f)) == 35
    assert max(seen) <= 10  # never more than a batch of rejects held in memory


def test_reimporting_an_accounts_file_with_a_duplicate_keeps_the_first(db, tmp_path) -> None:
    f = write(
        tmp_path / "a.csv",
        "account_id,created_at,name\na-1,2026-01-01,First\na-1,2026-01-02,Second\n",
    )
    for _ in range(2):
        result = import_table(db=db, kind="accounts", path=f)
        assert (result.resumed_after_row, result.rejected) == (0, 1)
    with db.connect() as conn:
        account = get_account(conn=conn, account_id="a-1")
    assert account is not None and account.name == "First"


def test_an_unfinished_last_line_is_read_again_when_the_file_grows(db, examples) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    f = examples / "e.jsonl"
    f.write_text(
        '{"account_id": "a-0001", "event": "A", "timestamp": "2026-05-01T09:00:00Z"}\n{"account_id": "a-00'
    )
    first = import_table(db=db, kind="events", path=f)
    assert (first.new, first.rejected) == (1, 1)
    with f.open("a") as out:
        out.write('02", "event": "B", "timestamp": "2026-05-01T09:00:00Z"}\n')
    second = import_table(db=db, kind="events", path=f)
    assert (second.resumed_after_row, second.read, second.new, second.rejected) == (1, 1, 1, 0)
    assert not rejects_path(f).exists()


def test_a_crash_half_way_leaves_no_rejects_file(db, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(importer, "BATCH_ROWS", 2)
    body = "".join(f"a-{i},{'bad' if i % 2 else '2026-01-01'}\n" for i in range(10))
    f = write(tmp_path / "a.csv", "account_id,created_at\n" + body)

    def crash(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_table(db=db, kind="accounts", path=f, progress=crash)
    assert not list(tmp_path.glob(".*.tmp")) and not rejects_path(f).exists()


def test_default_price_converted_with_fx_is_rounded_to_cents(db, examples, catalog) -> None:
    import_table(db=db, kind="accounts", path=examples / "accounts.csv")
    f = write(
        examples / "s.csv", "account_id,item_id,started_at,interval\na-0002,basic,2026-01-01,year\n"
    )
    import_table(db=db, kind="subscriptions", path=f, catalog=catalog)
    with db.connect() as conn:
        [item] = subscription_items(conn=conn, account_id="a-0002")
    assert item.unit_price == Money.of("268.52", "EUR")  # 290 USD / 1.08, no EUR price book entry
