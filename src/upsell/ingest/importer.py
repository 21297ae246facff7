"""Import input files into the workspace store (data-contract.md, "Bad input").

Each file is imported in one transaction, in batches of `BATCH_ROWS` rows, so that memory stays bounded
whatever the file's size and a failure half-way leaves nothing stored. Every invalid row goes to
``<file>.rejects.jsonl`` with its row number, line and reason; with ``strict`` one invalid row rolls the
whole file back. Re-importing a file stores nothing new (events de-duplicate on ``message_id``,
subscriptions on ``(account_id, item_id, started_at)``, accounts update in place).

Incremental import: after a CSV or JSONL file is imported, a watermark records how many bytes of it
were taken in (up to the first rejected row) and a SHA-256 of those bytes. When the same path is
imported again and still begins with exactly those bytes, reading resumes there; a file that changed
anywhere before the watermark is read again from the start.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import sqlalchemy as sa

from upsell.columns import COLUMNS, Column, InputTable
from upsell.config.catalog import LoadedCatalog, load_catalog
from upsell.domain.accounts import Account, User
from upsell.domain.catalog import Catalog, UsagePricedItem
from upsell.domain.events import Event
from upsell.domain.money import Money
from upsell.domain.subscriptions import SubscriptionItem
from upsell.errors import ImportRejected, WorkspaceError
from upsell.ingest import segment
from upsell.ingest.live import store_messages
from upsell.ingest.messages import Message, MessageError, no_clock
from upsell.ingest.rows import (
    RowError,
    SubscriptionRow,
    json_object,
    parse_account,
    parse_event,
    parse_subscription,
)
from upsell.ingest.tables import RawRow, TableReader, detect_format, open_table
from upsell.store import accounts as account_store
from upsell.store import catalogs as catalog_store
from upsell.store import events as event_store
from upsell.store import subscriptions as subscription_store
from upsell.store.locks import wait_xact_lock
from upsell.store.watermarks import Watermark, get_watermark, set_watermark

BATCH_ROWS = 5_000
#: The lock that keeps imports into one workspace to one at a time (`store.locks.wait_xact_lock`).
IMPORT_LOCK = "import"

Progress = Callable[[int, int], None]
"""Called with (bytes read, file size) as an import goes."""


@dataclass
class FileImport:
    """What importing one file did. `stored` is False when `strict` rolled the file back."""

    kind: InputTable
    file: Path
    read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    pending: int = 0
    stored: bool = True
    resumed_after_row: int = 0
    rejects_file: Path | None = None
    first_rejects: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": str(self.file),
            "read": self.read,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "pending": self.pending,
            "stored": self.stored,
            "resumed_after_row": self.resumed_after_row,
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
        }


@dataclass(frozen=True)
class CatalogImport:
    file: Path
    version: int
    created: bool
    loaded: LoadedCatalog


def rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.jsonl")


class _Rejects:
    """The rejects file: written beside the source under a temporary name, in row order, and moved
    into place when the import ends (or discarded if it was interrupted). Created only when a row is
    rejected, so a clean import of a file in a read-only folder needs no write access."""

    def __init__(self, source: Path, result: FileImport) -> None:
        self.source = source
        self.result = result
        self.first_start: int | None = None
        self.first_row: int | None = None
        self._tmp = source.with_name(f".{source.name}.rejects-{os.getpid()}.tmp")
        self._out: TextIO | None = None
        self._batch: list[tuple[int, RawRow | None, str]] = []

    @property
    def pending(self) -> int:
        return len(self._batch)

    def add(self, raw: RawRow | None, reason: str, start: int | None = None) -> None:
        self.result.rejected += 1
        if raw is not None and (self.first_row is None or raw.row < self.first_row):
            self.first_row, self.first_start = raw.row, start
        self._batch.append((raw.row if raw else 0, raw, reason))
        if raw is None:
            self.flush()

    def flush(self) -> None:
        """Write the rejects held for the current batch, in row order."""
        if self._batch and self._out is None:
            try:
                self._out = self._tmp.open("w", encoding="utf-8")
            except OSError as exc:
                raise ImportRejected(
                    str(self.source), f"cannot write its rejects file beside it: {exc.strerror}"
                ) from None
        for _, raw, reason in sorted(self._batch, key=lambda entry: entry[0]):
            record = {
                "row": raw.row if raw else None,
                "line": raw.line if raw else None,
                "reason": reason,
                "values": raw.values if raw else None,
            }
            assert self._out is not None
            self._out.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
            if len(self.result.first_rejects) < 5:
                where = (
                    f"line {raw.line}" if raw and raw.line else f"row {raw.row}" if raw else "file"
                )
                self.result.first_rejects.append(f"{where}: {reason}")
        self._batch.clear()

    def finish(self) -> None:
        """Put the rejects file in place, or remove a stale one when nothing was rejected."""
        self.flush()
        target = rejects_path(self.source)
        if self._out is not None:
            self._out.close()
            os.replace(self._tmp, target)
            self.result.rejects_file = target
        elif target.exists():
            target.unlink()

    def discard(self) -> None:
        """The import was interrupted and rolled back: leave no rejects file of it."""
        if self._out is not None:
            self._out.close()
            self._tmp.unlink(missing_ok=True)


def import_catalog(*, db: sa.Engine, path: Path) -> CatalogImport:
    """Validate `path` and store it as the workspace's current catalog (a new version if it changed)."""
    loaded = load_catalog(path)
    with db.begin() as conn:
        version, created = catalog_store.save_catalog_version(
            conn=conn, text=loaded.text, sha256=loaded.sha256, source=str(path)
        )
    return CatalogImport(file=path, version=version, created=created, loaded=loaded)


class _Batch(Protocol):
    def __call__(
        self, conn: sa.Connection, rows: list[tuple[RawRow, Any, int | None]], rejects: _Rejects
    ) -> None: ...


def import_table(
    *,
    db: sa.Engine,
    kind: InputTable,
    path: Path,
    catalog: Catalog | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> FileImport:
    """Import one accounts, subscriptions or events file; see the module docstring for the rules.

    Raises ImportRejected when the file itself is unusable (nothing is stored then) and
    WorkspaceError when subscriptions are imported into a workspace without a catalog.
    """
    if kind == "subscriptions" and catalog is None:
        raise WorkspaceError(
            "the workspace has no catalog yet: import one first with `upsell import --catalog FILE`"
        )
    result = FileImport(kind=kind, file=path)
    source = str(path.resolve())
    if not path.is_file():
        raise ImportRejected(str(path), "no such file")
    with db.connect() as conn:
        resume = _resume_point(conn, kind, source, path)
    rejects = _Rejects(path, result)
    try:
        reader = open_table(
            path, COLUMNS[kind], start=resume.bytes_done, start_row=resume.rows_done
        )
        result.resumed_after_row = resume.rows_done
        try:
            _run(db, kind, reader, catalog, strict, progress, result, rejects, resume, source)
        finally:
            reader.close()
    except ImportRejected as exc:
        try:
            rejects.add(None, exc.reason)
            rejects.finish()
        except ImportRejected:  # the rejects file itself cannot be written
            rejects.discard()
        raise
    except BaseException:
        rejects.discard()
        raise
    rejects.finish()
    return result


def _resumes(kind: InputTable, path: Path) -> bool:
    """Subscriptions and events files in CSV or JSONL resume. Accounts files are always read whole:
    finding a duplicate account_id takes every row of the file (and they are small)."""
    return kind != "accounts" and detect_format(path) != "parquet"


def _resume_point(conn: sa.Connection, kind: InputTable, source: str, path: Path) -> Watermark:
    nothing = Watermark(kind=kind, source=source, bytes_done=0, rows_done=0, prefix_sha256="")
    if not _resumes(kind, path):
        return nothing
    mark = get_watermark(conn=conn, kind=kind, source=source)
    if mark is None or mark.bytes_done == 0 or path.stat().st_size < mark.bytes_done:
        return nothing
    if _prefix_sha256(path, mark.bytes_done) != mark.prefix_sha256:
        return nothing
    return mark


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _prefix_sha256(path: Path, length: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        remaining = length
        while remaining > 0:
            chunk = f.read(min(1 << 20, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


class _StrictRollback(Exception):
    pass


def _run(
    db: sa.Engine,
    kind: InputTable,
    reader: TableReader,
    catalog: Catalog | None,
    strict: bool,
    progress: Progress | None,
    result: FileImport,
    rejects: _Rejects,
    resume: Watermark,
    source: str,
) -> None:
    parse: Callable[[Any], Any] = {
        "accounts": parse_account,
        "subscriptions": parse_subscription,
        "events": _parse_event_row,
    }[kind]
    store: _Batch = {
        "accounts": _AccountBatches(result),
        "subscriptions": _SubscriptionBatches(result, catalog) if catalog else None,
        "events": _EventBatches(result),
    }[kind]  # type: ignore[assignment]
    resumable = _resumes(kind, reader.path)
    # The watermark may pass only whole records: a last line without its newline may still be
    # being written, so it is read again next time.
    tail_complete = _ends_with_newline(reader.path)
    last_end: int | None = resume.bytes_done if resumable else None
    last_row = resume.rows_done
    try:
        # IMMEDIATE: take SQLite's write lock up front, so a running server's writes make this wait
        # (busy_timeout) rather than fail half-way with "database is locked". PostgreSQL ignores it.
        with (
            db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
            conn.begin(),
        ):
            # One import at a time on PostgreSQL too (SQLite's write lock is one already).
            wait_xact_lock(conn, IMPORT_LOCK)
            pending: list[tuple[RawRow, Any, int | None]] = []
            for raw in reader:
                start = last_end
                if tail_complete or raw.end != reader.size:
                    last_end, last_row = raw.end, raw.row
                result.read += 1
                if raw.error is not None:
                    rejects.add(raw, raw.error, start)
                    continue
                try:
                    pending.append((raw, parse(raw.values), start))
                except RowError as exc:
                    rejects.add(raw, str(exc), start)
                except (ValueError, TypeError, OverflowError) as exc:  # bad data is a result
                    rejects.add(raw, f"invalid value: {exc}", start)
                if len(pending) + rejects.pending >= BATCH_ROWS:
                    store(conn, pending, rejects)
                    rejects.flush()
                    pending = []
                    if progress:
                        progress(reader.position, reader.size)
            store(conn, pending, rejects)
            if progress:
                progress(reader.size, reader.size)
            if strict and result.rejected:
                raise _StrictRollback
            if resumable:
                if rejects.first_row is not None:
                    done_bytes, done_rows = rejects.first_start or 0, rejects.first_row - 1
                else:
                    done_bytes, done_rows = last_end or 0, last_row
                set_watermark(
                    conn=conn,
                    watermark=Watermark(
                        kind=kind,
                        source=source,
                        bytes_done=done_bytes,
                        rows_done=done_rows,
                        prefix_sha256=_prefix_sha256(reader.path, done_bytes),
                    ),
                )
    except _StrictRollback:
        result.stored = False
        result.new = result.updated = result.unchanged = 0


class _AccountBatches:
    def __init__(self, result: FileImport) -> None:
        self.result = result
        self.seen: dict[str, int] = {}

    def __call__(
        self, conn: sa.Connection, rows: list[tuple[RawRow, Any, int | None]], rejects: _Rejects
    ) -> None:
        accounts: list[Account] = []
        for raw, account, start in rows:
            first = self.seen.get(account.account_id)
            if first is not None:
                rejects.add(
                    raw, f"duplicate account_id {account.account_id!r}: also on row {first}", start
                )
                continue
            self.seen[account.account_id] = raw.row
            accounts.append(account)
        if accounts:
            new, updated = account_store.upsert_accounts(conn=conn, accounts=accounts)
            self.result.new += new
            self.result.updated += updated
            self.result.unchanged += len({a.account_id for a in accounts}) - new - updated


class _SubscriptionBatches:
    def __init__(self, result: FileImport, catalog: Catalog) -> None:
        self.result = result
        self.catalog = catalog

    def __call__(
        self, conn: sa.Connection, rows: list[tuple[RawRow, Any, int | None]], rejects: _Rejects
    ) -> None:
        currencies = account_store.account_currencies(
            conn=conn, ids={row.account_id for _, row, _ in rows}
        )
        items: list[SubscriptionItem] = []
        for raw, row, start in rows:
            try:
                items.append(self._item(row, currencies))
            except RowError as exc:
                rejects.add(raw, str(exc), start)
        if items:
            new, updated, unchanged = subscription_store.upsert_subscription_items(
                conn=conn, items=items
            )
            self.result.new += new
            self.result.updated += updated
            self.result.unchanged += unchanged

    def _item(self, row: SubscriptionRow, currencies: dict[str, str | None]) -> SubscriptionItem:
        catalog = self.catalog
        if row.account_id not in currencies:
            raise RowError(
                f"account_id: unknown account {row.account_id!r}: import it with --accounts first"
            )
        item = catalog.item(row.item_id)
        if item is None:
            raise RowError(
                f"item_id: unknown item {row.item_id!r}: not a plan, add-on or product of the catalog"
            )
        if isinstance(item, UsagePricedItem):
            raise RowError(
                f"item_id: {row.item_id!r} is priced by usage: record its charges as "
                "'Usage Charged' events, not as subscriptions"
            )
        currency = row.currency or currencies[row.account_id] or catalog.currency
        if not catalog.fx.knows(currency):
            origin = "" if row.currency else f" (the currency of account {row.account_id!r})"
            raise RowError(
                f"currency: {currency}{origin} has no exchange rate under fx in the catalog, "
                f"so its MRR cannot be counted in {catalog.currency}"
            )
        if row.unit_price is not None:
            price = Money(row.unit_price, currency)
        else:
            catalog_price = catalog.price(row.item_id, row.interval, currency)
            if catalog_price is None:
                raise RowError(
                    f"unit_price: empty, and the catalog has no price per {row.interval} "
                    f"for {row.item_id!r}: give the price charged"
                )
            price = catalog_price.rounded()  # what is charged: whole minor units (cents)
        return SubscriptionItem(
            account_id=row.account_id,
            item_id=row.item_id,
            started_at=row.started_at,
            ended_at=row.ended_at,
            unit_price=price,
            quantity=row.quantity,
            interval=row.interval,
            status=row.status,
        )


def _parse_event_row(values: dict[str, Any]) -> Event | Message:
    """A row of upsell's flat events table, or a message in Segment's own shape (camelCase
    ``userId``, ``context.groupId``, ``messageId``, ``type``), read by the service's mapping."""
    if not segment.is_segment_row(values):
        return parse_event(values)
    try:
        message = segment.parse_message(values, "message", no_clock(), default="track")
    except MessageError as exc:
        raise RowError(str(exc)) from None
    for name in ("properties", "traits"):  # plain JSON only, as for the flat table
        json_object({name: getattr(message, name)}, Column(name, "json"))
    return message


class _EventBatches:
    def __init__(self, result: FileImport) -> None:
        self.result = result

    def __call__(
        self, conn: sa.Connection, rows: list[tuple[RawRow, Any, int | None]], rejects: _Rejects
    ) -> None:
        messages = [m for _, m, _ in rows if isinstance(m, Message)]
        if messages:
            stored = store_messages(conn=conn, messages=messages)
            self.result.new += stored.new + stored.attributed
            self.result.unchanged += stored.duplicates
            self.result.pending += stored.pending
        rows = [row for row in rows if not isinstance(row[1], Message)]
        known = account_store.existing_account_ids(
            conn=conn, ids={event.account_id for _, event, _ in rows}
        )
        events: list[Event] = []
        for raw, event, start in rows:
            if event.account_id not in known:
                rejects.add(
                    raw,
                    f"account_id: unknown account {event.account_id!r}: import it with --accounts first",
                    start,
                )
                continue
            events.append(event)
        if events:
            new, duplicates = event_store.insert_events(conn=conn, events=events)
            self.result.new += new
            self.result.unchanged += duplicates
            account_store.upsert_users(
                conn=conn,
                users=[
                    User(e.account_id, e.user_id, e.timestamp, e.timestamp)
                    for e in events
                    if e.user_id is not None
                ],
            )
