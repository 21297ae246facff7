"""How far each input file has been imported, so that a later import can resume after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from upsell.store.schema import import_watermarks


@dataclass(frozen=True)
class Watermark:
    """The first `bytes_done` bytes (`rows_done` rows) of `source` are imported as `kind`.

    `prefix_sha256` is the hash of those bytes: when the file's prefix no longer has it, the file
    was rewritten rather than appended to, and the import starts over.
    """

    kind: str
    source: str
    bytes_done: int
    rows_done: int
    prefix_sha256: str

    def __post_init__(self) -> None:
        if self.bytes_done < 0 or self.rows_done < 0:
            raise ValueError("bytes_done and rows_done must not be negative")


def get_watermark(*, conn: sa.Connection, kind: str, source: str) -> Watermark | None:
    row = conn.execute(
        sa.select(import_watermarks).where(
            import_watermarks.c.kind == kind, import_watermarks.c.source == source
        )
    ).first()
    if row is None:
        return None
    return Watermark(
        kind=row.kind,
        source=row.source,
        bytes_done=row.bytes_done,
        rows_done=row.rows_done,
        prefix_sha256=row.prefix_sha256,
    )


def set_watermark(*, conn: sa.Connection, watermark: Watermark) -> None:
    """Insert or replace the watermark of (kind, source)."""
    values = {
        "bytes_done": watermark.bytes_done,
        "rows_done": watermark.rows_done,
        "prefix_sha256": watermark.prefix_sha256,
        "updated_at": datetime.now(UTC),
    }
    where = (
        import_watermarks.c.kind == watermark.kind,
        import_watermarks.c.source == watermark.source,
    )
    if conn.execute(sa.update(import_watermarks).where(*where).values(values)).rowcount == 0:
        conn.execute(
            sa.insert(import_watermarks).values(
                kind=watermark.kind, source=watermark.source, **values
            )
        )
