"""Imported catalog texts, one version per distinct content."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from upsell.store.schema import catalog_versions


def save_catalog_version(
    *, conn: sa.Connection, text: str, sha256: str, source: str
) -> tuple[int, bool]:
    """Store a catalog's text; returns (version, created).

    Content already stored (same `sha256`, as computed by the caller) returns its version and
    False, so importing the same catalog twice makes no new version.
    """
    existing = conn.execute(
        sa.select(catalog_versions.c.version).where(catalog_versions.c.sha256 == sha256)
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    result = conn.execute(
        sa.insert(catalog_versions).values(
            sha256=sha256, source=source, text=text, imported_at=datetime.now(UTC)
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0]), True


def latest_catalog(*, conn: sa.Connection) -> tuple[int, str, str] | None:
    """The newest catalog as (version, text, source), or None before the first import."""
    row = conn.execute(
        sa.select(catalog_versions.c.version, catalog_versions.c.text, catalog_versions.c.source)
        .order_by(catalog_versions.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.version, row.text, row.source)


def latest_version(*, conn: sa.Connection) -> int | None:
    """The newest catalog's version, or None before the first import (without its text)."""
    found: int | None = conn.execute(sa.select(sa.func.max(catalog_versions.c.version))).scalar()
    return found
