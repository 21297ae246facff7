"""The files commands write (data-contract.md, outputs): candidate and decision lines, the report.

Every file is written to a temporary name and renamed, so a failure leaves no half-written file.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from upsell.errors import UpsellError

if TYPE_CHECKING:
    from upsell.domain.report import Report

FORMATS = (".jsonl", ".json", ".csv", ".parquet")
# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: object) -> object:
    """`value` as a CSV cell a spreadsheet shows as text: text starting like a formula gets a
    leading ``'`` (numbers, ``-12.50`` included, are left as they are)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


REPORT_FORMATS = (".html", ".json")


class OutputError(UpsellError, ValueError):
    """An output file that cannot be written in the asked format."""


def _folder_of(path: Path) -> None:
    if not path.parent.is_dir():
        raise OutputError(f"{path}: the folder {path.parent} does not exist")


def write_lines(path: Path, lines: Iterable[dict[str, object]]) -> int:
    """Write opportunity or decision lines as JSONL (CSV or Parquet by extension, with lists and
    mappings such as `reasons` as JSON text); returns how many."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(
            f"{path}: unknown output format {suffix or '(none)'!r}; use one of {', '.join(FORMATS)}"
        )
    _folder_of(path)
    rows = list(lines)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if suffix in (".jsonl", ".json"):
            with tmp.open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            flat = [
                {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}
                for row in rows
            ]
            if suffix == ".csv":
                with tmp.open("w", encoding="utf-8", newline="") as f:
                    names = list(flat[0]) if flat else ["account_id"]
                    writer = csv.DictWriter(f, fieldnames=names)
                    writer.writeheader()
                    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in flat)
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.Table.from_pylist(flat), tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(rows)


def write_report(report: Report, path: Path) -> None:
    """The report as JSON, or as the self-contained HTML page, by `path`'s extension."""
    _folder_of(path)
    if path.suffix.lower() == ".json":
        tmp = path.with_name(f".{path.name}.tmp")
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    else:
        from upsell.report.page import write_html

        write_html(report, path)
