"""Fitted models (table ``models``): `upsell learn` saves one row a fit; the decision step reads the
newest of a name (docs/learning.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from upsell.store.schema import models


@dataclass(frozen=True)
class StoredModel:
    version: int
    name: str
    fitted_at: datetime
    data_end: datetime | None
    decisions: int
    params: Mapping[str, Any]
    evaluation: Mapping[str, Any] | None


def save_model(
    *,
    conn: sa.Connection,
    name: str,
    fitted_at: datetime,
    data_end: datetime | None,
    decisions: int,
    params: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None,
) -> int:
    """Store a fit; its version (they only grow)."""
    result = conn.execute(
        sa.insert(models).values(
            name=name,
            fitted_at=fitted_at,
            data_end=data_end,
            decisions=decisions,
            params=dict(params),
            evaluation=None if evaluation is None else dict(evaluation),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def latest_model(*, conn: sa.Connection, name: str) -> StoredModel | None:
    """The newest fit of `name`, or None."""
    row = conn.execute(
        sa.select(models).where(models.c.name == name).order_by(models.c.version.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return StoredModel(
        version=row.version,
        name=row.name,
        fitted_at=row.fitted_at,
        data_end=row.data_end,
        decisions=row.decisions,
        params=row.params,
        evaluation=row.evaluation,
    )
