"""Streaming readers for the input tables: CSV, JSONL and Parquet.

Every reader yields one `RawRow` at a time and holds at most one read buffer (1 MiB) or one Parquet
batch in memory, so a file of any size imports in bounded memory. Problems with one row (bad JSON, bytes
that are not UTF-8, a record longer than `MAX_RECORD_BYTES`, the wrong number of fields) are returned
on the row, for the rejects file; problems with the file itself (empty, no header, missing or mistyped
columns) raise `ImportRejected`.

Text readers report the byte offset just after each record, so an import can record how far it got
and a later import of the same, grown file can resume there (see `upsell.ingest.importer`).
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from upsell.columns import Column, ColumnType
from upsell.errors import ImportRejected

Format = Literal["csv", "jsonl", "parquet"]

MAX_RECORD_BYTES = 1 << 20
_CHUNK = 1 << 20
PARQUET_BATCH_ROWS = 5_000

_EXTENSIONS: Mapping[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class RawRow:
    """One record as read, before validation.

    `row` is the 1-based data row (the header is not a row); `line` the 1-based line where the
    record starts (text formats); `end` the byte offset just after it (text formats). Exactly one of
    `values` and `error` is set.
    """

    row: int
    line: int | None
    end: int | None
    values: dict[str, Any] | None = None
    error: str | None = None


def detect_format(path: Path) -> Format:
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise ImportRejected(
            str(path), f"unknown file type {path.suffix!r}: expected one of {known}"
        )
    return fmt


class TableReader(ABC):
    """Iterate a table file's rows; `position` and `size` (bytes) drive a progress bar."""

    resumable: bool = False

    def __init__(self, path: Path, columns: tuple[Column, ...]) -> None:
        self.path = path
        self.columns = columns
        self.size = path.stat().st_size
        self.position = 0
        if self.size == 0:
            required = ", ".join(c.name for c in columns if c.required)
            raise ImportRejected(str(path), f"file is empty: expected rows with {required}")

    @abstractmethod
    def __iter__(self) -> Iterator[RawRow]: ...

    @abstractmethod
    def close(self) -> None:
        """Release the file handle."""


def open_table(
    path: Path, columns: tuple[Column, ...], *, start: int = 0, start_row: int = 0
) -> TableReader:
    """Open `path` by its extension. `start`/`start_row` resume a text file after a known record."""
    fmt = detect_format(path)
    if fmt == "csv":
        return CsvReader(path, columns, start=start, start_row=start_row)
    if fmt == "jsonl":
        return JsonlReader(path, columns, start=start, start_row=start_row)
    return ParquetReader(path, columns)


def _utf8(data: bytes) -> tuple[str | None, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        return None, f"not valid UTF-8: byte 0x{bad} at byte {exc.start + 1} of the record"


class _TextReader(TableReader):
    """Shared line machinery: bounded lines with their byte offsets."""

    resumable = True

    def __init__(
        self, path: Path, columns: tuple[Column, ...], *, start: int, start_row: int
    ) -> None:
        super().__init__(path, columns)
        self._file: BinaryIO = path.open("rb")
        self.start = start
        self.start_row = start_row

    def close(self) -> None:
        self._file.close()

    def _lines(self, offset: int) -> Iterator[tuple[int, bytes | None]]:
        """Yield (end offset, line bytes) from `offset`; None for a line over MAX_RECORD_BYTES.

        An over-long line is skipped through in chunks, never accumulated.
        """
        self._file.seek(offset)
        self.position = offset
        buffer = b""
        skipping = False
        while True:
            chunk = self._file.read(_CHUNK)
            if not chunk:
                if buffer or skipping:
                    self.position += len(buffer)
                    yield self.position, None if skipping else buffer
                return
            buffer += chunk
            begin = 0
            while True:
                newline = buffer.find(b"\n", begin)
                if newline < 0:
                    break
                line = buffer[begin : newline + 1]
                self.position += len(line)
                if skipping:
                    skipping = False
                    yield self.position, None
                elif len(line) > MAX_RECORD_BYTES:
                    yield self.position, None
                else:
                    yield self.position, line
                begin = newline + 1
            buffer = buffer[begin:]
            if len(buffer) > MAX_RECORD_BYTES:
                self.position += len(buffer)
                buffer = b""
                skipping = True

    def _line_number_at(self, offset: int) -> int:
        """1-based line number of the byte at `offset` (counted once, when resuming)."""
        self._file.seek(0)
        count, remaining = 1, offset
        while remaining > 0:
            chunk = self._file.read(min(_CHUNK, remaining))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
        return count


_TOO_LONG = f"record is longer than {MAX_RECORD_BYTES} bytes"
_QUOTE, _COMMA = ord('"'), ord(",")


def _inside_quotes(line: bytes, quoted: bool) -> bool:
    """Whether a CSV record is still inside a quoted field at the end of `line` (RFC 4180).

    A quote opens a quoted field only at the start of a field; inside one, ``""`` is an escaped
    quote. A quote in the middle of an unquoted field (``27" Monitors``) is a plain character, as
    Python's csv module reads it.
    """
    if _QUOTE not in line:
        return quoted
    field_start = not quoted
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quoted:
            if c == _QUOTE:
                if i + 1 < n and line[i + 1] == _QUOTE:
                    i += 1
                else:
                    quoted = False
        elif c == _COMMA:
            field_start = True
            i += 1
            continue
        elif c == _QUOTE and field_start:
            quoted = True
        field_start = False
        i += 1
    return quoted


class CsvReader(_TextReader):
    """RFC 4180 CSV with a header row; quoted fields may hold commas, quotes and newlines."""

    def __init__(
        self, path: Path, columns: tuple[Column, ...], *, start: int = 0, start_row: int = 0
    ) -> None:
        super().__init__(path, columns, start=start, start_row=start_row)
        try:
            self.header, self.header_end = self._read_header()
        except ImportRejected:
            self.close()
            raise

    def _read_header(self) -> tuple[list[str], int]:
        path, columns = self.path, self.columns
        header_end, header = next(self._lines(0), (0, None))
        if header is None:
            raise ImportRejected(
                str(path), "the header line is too long: is this a CSV file?", line=1
            )
        text, error = _utf8(header.removeprefix(b"\xef\xbb\xbf"))
        if text is None:
            raise ImportRejected(str(path), f"header {error}", line=1)
        try:
            names = next(csv.reader([text]))
        except (csv.Error, StopIteration) as exc:
            raise ImportRejected(str(path), f"header is not CSV: {exc}", line=1) from None
        names = [n.strip() for n in names]
        if not any(names):
            raise ImportRejected(
                str(path), "the first line must be a header naming the columns", line=1
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ImportRejected(
                str(path), f"column repeated in header: {', '.join(repeated)}", line=1
            )
        missing = [c.name for c in columns if c.required and c.name not in names]
        if missing:
            hint = ""
            if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
                hint = "; the columns look separated by ';' or tabs: upsell reads comma-separated files"
            raise ImportRejected(
                str(path),
                f"missing required column {', '.join(missing)} (header has: {', '.join(names)}){hint}",
                line=1,
            )
        return names, header_end

    def __iter__(self) -> Iterator[RawRow]:
        offset = max(self.start, self.header_end)
        line_no = 2 if offset == self.header_end else self._line_number_at(offset)
        row = self.start_row
        pending: list[bytes] = []
        pending_line = line_no
        quoted = False
        for end, line in self._lines(offset):
            if line is None:
                row += 1
                yield RawRow(row, pending_line if pending else line_no, end, error=_TOO_LONG)
                pending, quoted = [], False
                line_no += 1
                continue
            if not pending:
                pending_line = line_no
            pending.append(line)
            quoted = _inside_quotes(line, quoted)
            line_no += 1
            if quoted:  # a quoted field holds a line break: the record goes on
                if sum(len(p) for p in pending) > MAX_RECORD_BYTES:
                    row += 1
                    yield RawRow(row, pending_line, end, error=_TOO_LONG)
                    pending, quoted = [], False
                continue
            record = b"".join(pending)
            pending = []
            if not record.strip(b", \t\r\n"):  # blank, or all fields empty (spreadsheet exports)
                continue
            row += 1
            yield self._parse(row, pending_line, end, record)
        if pending:
            row += 1
            yield RawRow(row, pending_line, self.position, error="unterminated quoted field")

    def _parse(self, row: int, line: int, end: int, record: bytes) -> RawRow:
        text, error = _utf8(record)
        if text is None:
            return RawRow(row, line, end, error=error)
        try:
            fields = next(csv.reader([text]))
        except csv.Error as exc:
            return RawRow(row, line, end, error=f"not valid CSV: {exc}")
        if len(fields) != len(self.header):
            return RawRow(
                row,
                line,
                end,
                error=f"has {len(fields)} fields; the header has {len(self.header)}",
            )
        values = {
            name: (v if v != "" else None) for name, v in zip(self.header, fields, strict=True)
        }
        return RawRow(row, line, end, values=values)


class JsonlReader(_TextReader):
    """One JSON object per line (JSON Lines); blank lines are skipped."""

    def __iter__(self) -> Iterator[RawRow]:
        line_no = 1 if self.start == 0 else self._line_number_at(self.start)
        row = self.start_row
        for end, line in self._lines(self.start):
            number = line_no
            line_no += 1
            if line is None:
                row += 1
                yield RawRow(row, number, end, error=_TOO_LONG)
                continue
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
                if line.lstrip().startswith(b"["):
                    raise ImportRejected(
                        str(self.path),
                        "this is a JSON array; upsell reads JSON Lines: one object per line",
                        line=1,
                    )
            text, error = _utf8(line)
            if text is not None and not text.strip():
                continue
            row += 1
            if text is None:
                yield RawRow(row, number, end, error=error)
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow(
                    row, number, end, error=f"not valid JSON: {exc.msg} at column {exc.colno}"
                )
                continue
            if not isinstance(value, dict):
                yield RawRow(
                    row, number, end, error=f"expected a JSON object, got {type(value).__name__}"
                )
                continue
            yield RawRow(row, number, end, values=value)


def _parquet_type_ok(kind: ColumnType) -> Callable[[Any], bool]:
    import pyarrow.types as t

    checks: dict[ColumnType, Callable[[Any], bool]] = {
        "string": lambda d: t.is_string(d) or t.is_large_string(d) or t.is_integer(d),
        "timestamp": lambda d: (
            t.is_timestamp(d) or t.is_date(d) or t.is_string(d) or t.is_large_string(d)
        ),
        # pandas stores a whole-number column with gaps as float64; the row parser checks each value.
        "integer": lambda d: t.is_integer(d) or t.is_floating(d),
        "decimal": lambda d: (
            t.is_decimal(d)
            or t.is_integer(d)
            or t.is_floating(d)
            or t.is_string(d)
            or t.is_large_string(d)
        ),
        "json": lambda d: t.is_struct(d) or t.is_map(d) or t.is_string(d) or t.is_large_string(d),
    }
    return checks[kind]


_EXPECTED: Mapping[ColumnType, str] = {
    "string": "string",
    "timestamp": "timestamp, date or ISO-8601 string",
    "integer": "integer (or whole floats)",
    "decimal": "decimal, integer, float or decimal string",
    "json": "struct, map or JSON string",
}


class ParquetReader(TableReader):
    """Parquet, read one row batch at a time; column types are checked before any row is read."""

    def __init__(self, path: Path, columns: tuple[Column, ...]) -> None:
        super().__init__(path, columns)
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ImportRejected(str(path), f"not a readable Parquet file: {exc}") from None
        self._target: Any = None
        try:
            self._names = self._check_schema()
        except ImportRejected:
            self._file.close()
            raise
        self.rows_total = self._file.metadata.num_rows

    def _check_schema(self) -> list[str]:
        import pyarrow as pa

        path, columns = self.path, self.columns
        schema = self._file.schema_arrow
        present = set(schema.names)
        missing = [c.name for c in columns if c.required and c.name not in present]
        if missing:
            raise ImportRejected(
                str(path),
                f"missing required column {', '.join(missing)} (file has: {', '.join(schema.names)})",
            )
        for column in columns:
            if column.name not in present:
                continue
            dtype = schema.field(column.name).type
            if pa.types.is_dictionary(dtype):
                dtype = dtype.value_type
            if not _parquet_type_ok(column.type)(dtype):
                raise ImportRejected(
                    str(path),
                    f"column {column.name!r} has type {dtype}; expected {_EXPECTED[column.type]}",
                )
        names = [c.name for c in columns if c.name in present]
        # Python datetimes hold microseconds; pandas writes nanoseconds by default. Truncate them.
        fields = [schema.field(name) for name in names]
        if any(pa.types.is_timestamp(f.type) and f.type.unit == "ns" for f in fields):
            self._target = pa.schema(
                [
                    f.with_type(pa.timestamp("us", f.type.tz))
                    if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
                    else f
                    for f in fields
                ]
            )
        return names

    def __iter__(self) -> Iterator[RawRow]:
        import pyarrow as pa

        row = 0
        batches = self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=self._names)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                raise ImportRejected(str(self.path), f"unreadable after row {row}: {exc}") from None
            if batch is None:
                return
            if self._target is not None:
                batch = batch.cast(self._target, safe=False)
            for values in batch.to_pylist():
                row += 1
                yield RawRow(row, None, None, values=values)
            self.position = self.size * row // max(self.rows_total, 1)

    def close(self) -> None:
        self._file.close()
