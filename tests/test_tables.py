"""Readers of input files: streaming, row numbers, and the file-level errors."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from upsell.errors import ImportRejected
from upsell.ingest.rows import COLUMNS
from upsell.ingest.tables import MAX_RECORD_BYTES, RawRow, open_table

ACCOUNTS = COLUMNS["accounts"]
EVENTS = COLUMNS["events"]


def rows(path: Path, columns=ACCOUNTS, **kwargs) -> list[RawRow]:
    reader = open_table(path, columns, **kwargs)
    try:
        return list(reader)
    finally:
        reader.close()


def test_csv_rows_are_numbered_from_the_first_data_row_with_their_line(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("account_id,created_at\na-1,2026-01-01\n\na-2,2026-01-02\n")
    got = rows(f)
    assert [(r.row, r.line, r.values) for r in got] == [
        (1, 2, {"account_id": "a-1", "created_at": "2026-01-01"}),
        (2, 4, {"account_id": "a-2", "created_at": "2026-01-02"}),
    ]


def test_csv_quoted_field_may_span_lines_and_hold_quotes(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text(
        'account_id,created_at,name\na-1,2026-01-01,"Line one\nline ""two"""\na-2,2026-01-02,x\n'
    )
    got = rows(f)
    assert got[0].values is not None and got[0].values["name"] == 'Line one\nline "two"'
    assert (got[1].row, got[1].line) == (2, 4)


def test_csv_empty_field_reads_as_none_and_bom_is_ignored(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(b"\xef\xbb\xbfaccount_id,created_at,name\r\na-1,2026-01-01,\r\n")
    assert rows(f)[0].values == {"account_id": "a-1", "created_at": "2026-01-01", "name": None}


def test_csv_row_with_bytes_that_are_not_utf8_is_a_row_error(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(b"account_id,created_at,name\na-1,2026-01-01,Caf\xe9\na-2,2026-01-01,ok\n")
    got = rows(f)
    assert got[0].error is not None and "not valid UTF-8: byte 0xe9" in got[0].error
    assert got[1].values is not None


def test_csv_wrong_number_of_fields_is_a_row_error(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("account_id,created_at\na-1,2026-01-01,extra\n")
    assert rows(f)[0].error == "has 3 fields; the header has 2"


def test_csv_missing_required_column_names_it_and_the_header(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("account_id,name\na-1,x\n")
    with pytest.raises(
        ImportRejected, match=r"missing required column created_at \(header has: account_id, name\)"
    ):
        open_table(f, ACCOUNTS)


def test_empty_file_is_refused_in_every_format(tmp_path: Path) -> None:
    for name in ("a.csv", "a.jsonl", "a.parquet"):
        f = tmp_path / name
        f.write_bytes(b"")
        with pytest.raises(ImportRejected, match="file is empty"):
            open_table(f, ACCOUNTS)


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "a.xlsx"
    f.write_text("x")
    with pytest.raises(ImportRejected, match=r"unknown file type '.xlsx'"):
        open_table(f, ACCOUNTS)


def test_jsonl_line_that_is_not_json_is_a_row_error_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text('{"account_id": "a"}\n{"account_id": \n\n[1, 2]\n')
    got = rows(f, EVENTS)
    assert got[0].values == {"account_id": "a"}
    assert (got[1].row, got[1].line) == (2, 2)
    assert got[1].error is not None and got[1].error.startswith("not valid JSON")
    assert (got[2].row, got[2].line, got[2].error) == (3, 4, "expected a JSON object, got list")


def test_over_long_record_is_skipped_without_being_held(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    with f.open("wb") as out:
        out.write(b'{"a": 1}\n')
        out.write(b"x" * (3 * MAX_RECORD_BYTES) + b"\n")
        out.write(b'{"a": 2}\n')
    got = rows(f, EVENTS)
    assert [r.values for r in got] == [{"a": 1}, None, {"a": 2}]
    assert got[1].error is not None and "longer than" in got[1].error


def test_resuming_at_an_offset_keeps_row_and_line_numbers(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("account_id,created_at\na-1,2026-01-01\na-2,2026-01-02\na-3,2026-01-03\n")
    first = rows(f)
    resumed = rows(f, start=first[0].end or 0, start_row=1)
    assert [(r.row, r.line) for r in resumed] == [(2, 3), (3, 4)]
    assert resumed[-1].end == f.stat().st_size


def test_parquet_streams_rows_with_native_types(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    when = datetime(2026, 1, 1, tzinfo=UTC)
    table = pa.table(
        {"account_id": ["a-1", "a-2"], "created_at": [when, when], "employees": [3, None]}
    )
    pq.write_table(table, f)
    got = rows(f)
    assert [r.row for r in got] == [1, 2]
    assert got[0].values == {"account_id": "a-1", "created_at": when, "employees": 3}


def test_parquet_column_of_wrong_type_is_refused_before_any_row(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pq.write_table(pa.table({"account_id": ["a-1"], "created_at": [1.5]}), f)
    with pytest.raises(
        ImportRejected, match=r"column 'created_at' has type double; expected timestamp"
    ):
        open_table(f, ACCOUNTS)


def test_parquet_missing_required_column_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pq.write_table(pa.table({"account_id": ["a-1"]}), f)
    with pytest.raises(ImportRejected, match="missing required column created_at"):
        open_table(f, ACCOUNTS)


def test_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    f.write_text("account_id,created_at\n")
    with pytest.raises(ImportRejected, match="not a readable Parquet file"):
        open_table(f, ACCOUNTS)


@pytest.mark.skipif(
    sys.platform != "linux", reason="needs a sparse file and ru_maxrss in KiB (Linux)"
)
def test_two_gigabyte_file_is_streamed_not_loaded(tmp_path: Path) -> None:
    """A 2 GiB CSV (sparse: a gap of NUL bytes between valid rows) is read through in bounded memory.

    The NUL region is one 2 GiB 'line': a reader that loaded lines or the file whole would need
    gigabytes; this one skips it as a single rejected record and reads on to the rows after it.
    """
    f = tmp_path / "big.csv"
    size = 2 * 1024**3
    tail = b"\na-3,2026-01-03\na-4,2026-01-04\n"
    with f.open("wb") as out:
        out.write(b"account_id,created_at\na-1,2026-01-01\na-2,2026-01-02\n")
        out.seek(size - len(tail))
        out.write(tail)
    assert f.stat().st_size == size
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from upsell.ingest.rows import COLUMNS
        from upsell.ingest.tables import open_table
        reader = open_table(Path({str(f)!r}), COLUMNS["accounts"])
        out = [[r.row, r.values["account_id"] if r.values else None, r.error] for r in reader]
        peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        print(json.dumps({{"rows": out, "rss_kib": int(peak.split()[1])}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    import json

    result = json.loads(done.stdout)
    ids = [r[1] for r in result["rows"]]
    assert ids == ["a-1", "a-2", None, "a-3", "a-4"]
    assert "longer than" in result["rows"][2][2]
    # The child's own peak (VmHWM, reset by exec): ru_maxrss would start at the peak of the pytest
    # process it was forked from (800 MiB late in a full run). Far below the 2 GiB file.
    assert result["rss_kib"] < 768 * 1024, f"peak memory {result['rss_kib']} KiB"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 1024 * 1024


def test_a_quote_inside_an_unquoted_field_is_a_plain_character(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text(
        'account_id,created_at,name\na-10,2026-01-01,27" Monitors Inc\na-11,2026-01-01,x\n'
    )
    got = rows(f)
    assert [r.values["name"] if r.values else r.error for r in got] == ['27" Monitors Inc', "x"]


def test_rows_with_every_field_empty_are_skipped_like_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("account_id,created_at,name\na-1,2026-01-01,x\n,,\n , ,\n")
    assert [r.row for r in rows(f)] == [1]


def test_semicolon_separated_csv_gets_a_hint(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("account_id;created_at\na-1;2026-01-01\n")
    with pytest.raises(ImportRejected, match="separated by ';'"):
        open_table(f, ACCOUNTS)


def test_jsonl_with_a_byte_order_mark_keeps_its_first_row(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"account_id": "a"}\n')
    assert rows(f, EVENTS)[0].values == {"account_id": "a"}


def test_a_json_array_is_refused_with_what_to_write_instead(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text('[\n  {"account_id": "a"},\n  {"account_id": "b"}\n]\n')
    with pytest.raises(ImportRejected, match="JSON array; upsell reads JSON Lines"):
        rows(f, EVENTS)
    with pytest.raises(ImportRejected, match=r"unknown file type '\.json'"):
        open_table(f.rename(tmp_path / "e.json"), EVENTS)


def test_parquet_from_pandas_nanoseconds_and_float_gaps_is_read(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    stamps = pa.array([1_700_000_000_123_456_789, None], pa.timestamp("ns", "UTC"))
    pq.write_table(
        pa.table(
            {
                "account_id": pa.array(["a", "b"], pa.large_string()),
                "created_at": stamps,
                "employees": pa.array([12.0, None]),
            }
        ),
        f,
    )
    got = rows(f)
    assert got[0].values is not None
    assert got[0].values["created_at"] == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert got[0].values["employees"] == 12.0
