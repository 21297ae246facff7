"""``/healthz`` (the process answers) and ``/readyz`` (the database answers and its schema is the
one this version of upsell expects)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from upsell.service.errors import ApiError
from upsell.store.db import current_revision, head_revision

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database unreachable or not migrated"}})
async def readyz(request: Request) -> dict[str, Any]:
    """The database is reachable and migrated to this version's schema."""
    db: sa.Engine = request.app.state.workspace.db
    try:
        revision = await run_in_threadpool(current_revision, db)
    except sa.exc.SQLAlchemyError as exc:
        message = f"the database does not answer: {exc.__class__.__name__}"
        raise ApiError(503, "not_ready", message) from None
    head = head_revision()
    if revision != head:
        raise ApiError(
            503, "not_ready", f"the database is at migration {revision}, this upsell needs {head}"
        )
    return {"status": "ready", "migration": revision}
