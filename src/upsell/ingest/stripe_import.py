"""``upsell import --stripe-events FILE.jsonl``: a dump of Stripe event objects (one JSON object a
line, as the API's ``GET /v1/events`` lists them) through the webhook's mapping, for a backfill.

No signature is checked: the file is the operator's. The events are applied in ``created`` order
(the file's order among equals), whatever order the file lists them in, each in a savepoint of the
file's one transaction: an event whose fields are not Stripe's shape is rolled back alone and
written to ``FILE.rejects.jsonl`` (with its line and reason), like a line that is not a JSON event.
With `strict`, one rejected line stores nothing of the file. Importing a dump again changes nothing
(every event is a replay), and events the webhook received already are replays too.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from upsell.errors import ImportRejected
from upsell.ingest.importer import rejects_path
from upsell.ingest.stripe import apply_event, current_catalog
from upsell.ingest.stripe_objects import StripeError, StripeEvent, parse_event

#: The columns of the import's report, in order: the outcomes, a replay, a rejected line.
COUNTS = ("applied", "partial", "unmapped", "stale", "ignored", "duplicate")


@dataclass
class StripeImport:
    """What importing one dump did: events read, their outcomes, the rejected lines."""

    file: Path
    read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    stored: bool = True
    rejects_file: Path | None = None
    first_rejects: list[str] = field(default_factory=list)
    first_unmapped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "stripe_events",
            "file": str(self.file),
            "read": self.read,
            **{name: self.outcomes[name] for name in COUNTS},
            "rejected": self.rejected,
            "stored": self.stored,
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
        }


class _Rollback(Exception):
    pass


def import_stripe_events(
    *, db: sa.Engine, path: Path, metadata_key: str, strict: bool = False
) -> StripeImport:
    """Apply the dump at `path`; ImportRejected when the file cannot be read at all."""
    result = StripeImport(file=path)
    if not path.is_file():
        raise ImportRejected(str(path), "no such file")
    rejects: list[dict[str, Any]] = []

    def reject(line: int, reason: str, text: str) -> None:
        result.rejected += 1
        rejects.append({"row": line, "line": line, "reason": reason, "values": text[:2000]})
        if len(result.first_rejects) < 5:
            result.first_rejects.append(f"line {line}: {reason}")

    events: list[tuple[StripeEvent, int, str]] = []
    try:
        with path.open(encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                result.read += 1
                try:
                    events.append((parse_event(json.loads(text)), number, text))
                except json.JSONDecodeError as exc:
                    reject(number, f"not JSON: {exc.msg} (column {exc.colno})", text)
                except StripeError as exc:
                    reject(number, str(exc), text)
    except UnicodeDecodeError as exc:
        raise ImportRejected(str(path), f"not UTF-8 text: {exc.reason}") from None
    events.sort(key=lambda entry: (entry[0].created, entry[1]))
    try:
        with db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            catalog = current_catalog(conn=conn)
            for event, number, text in events:
                try:
                    with conn.begin_nested():
                        outcome = apply_event(
                            conn, event, catalog=catalog, metadata_key=metadata_key
                        )
                except StripeError as exc:
                    reject(number, f"event {event.id}: {exc}", text)
                    continue
                result.outcomes[outcome.outcome] += 1
                if outcome.outcome in ("unmapped", "partial") and len(result.first_unmapped) < 5:
                    result.first_unmapped.append(f"line {number}: {event.id}: {outcome.detail}")
            if strict and result.rejected:
                raise _Rollback
    except _Rollback:
        result.stored = False
        result.outcomes.clear()
    _write_rejects(path, sorted(rejects, key=lambda r: r["line"]), result)
    return result


def _write_rejects(path: Path, rejects: list[dict[str, Any]], result: StripeImport) -> None:
    target = rejects_path(path)
    if not rejects:
        target.unlink(missing_ok=True)
        return
    try:
        with target.open("w", encoding="utf-8") as out:
            for record in rejects:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise ImportRejected(
            str(path), f"cannot write its rejects file beside it: {exc.strerror}"
        ) from None
    result.rejects_file = target
