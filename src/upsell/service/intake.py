"""What the Segment and PostHog doors share: reading a body within its limit (gzip or not),
decoding it as UTF-8 JSON, checking the write key, and storing the messages before answering.

Bodies are read as bytes and parsed once here (pydantic-core's JSON parser), not by FastAPI.
Every problem is an `ApiError` 400 whose message says what and where; nothing is stored unless
the whole request is valid, and a 200 is sent only after the transaction committed.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from upsell.ingest.live import Stored, ingest
from upsell.ingest.messages import (
    MAX_BATCH_BYTES,
    Clock,
    Message,
    MessageError,
    check_finite,
)
from upsell.service.auth import basic_user, keys
from upsell.service.errors import ApiError
from upsell.service.metrics import Source, count_ingested
from upsell.service.triggers import Triggers
from upsell.workspace import Workspace

WRITE: tuple[Any, ...] = ("write",)

#: Requests decoded and stored at once, per server. SQLite has one writer: a second thread would
#: only take the GIL from the one holding the write lock (measured: 23,600 events/s with one
#: thread, 18,600 with four); PostgreSQL writes in its own processes and gains from a few.
WORKERS = {"sqlite": 1, "postgresql": 4}


def _workers(request: Request) -> asyncio.Semaphore:
    found: asyncio.Semaphore | None = getattr(request.app.state, "intake_workers", None)
    if found is None:
        ws: Workspace = request.app.state.workspace
        found = asyncio.Semaphore(WORKERS.get(ws.db.dialect.name, 4))
        request.app.state.intake_workers = found
    return found


def _too_large(limit: int, what: str) -> ApiError:
    return ApiError(
        400,
        "too_large",
        f"{what} is over {limit // 1024:,} KB ({limit:,} bytes), the limit per request",
    )


async def read_body(request: Request, limit: int = MAX_BATCH_BYTES) -> bytes:
    """The raw body, refused past `limit` bytes without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, "the request body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, "the request body")
        chunks.append(chunk)
    return b"".join(chunks)


def decode(body: bytes, encoding: str, limit: int = MAX_BATCH_BYTES) -> tuple[Any, int]:
    """The JSON value of `body` (gunzipped when `encoding` says gzip), and its size in bytes."""
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        inflate = zlib.decompressobj(wbits=31)
        try:
            body = inflate.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ApiError(
                400, "invalid_gzip", f"Content-Encoding is gzip but the body is not: {exc}"
            ) from None
        if len(body) > limit:
            raise _too_large(limit, "the decompressed body")
        if not inflate.eof:
            raise ApiError(400, "invalid_gzip", "the gzip body is truncated")
    elif encoding not in ("", "identity"):
        raise ApiError(
            400,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported: send gzip or no encoding",
        )
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty: expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid_utf8",
            f"the body is not UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}",
        ) from None
    try:
        value = pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    try:
        check_finite(value)
    except MessageError as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None
    return value, len(body)


def clock(ws: Workspace) -> Clock:
    hours = ws.settings.service_max_clock_skew_hours
    return Clock(now=datetime.now(UTC), max_skew=timedelta(hours=hours))


Parse = Callable[[Any, Clock, int], list[Message]]


def take(
    request: Request,
    body: bytes,
    *,
    key: Callable[[Any], str | None],
    parse: Parse,
    what: str,
    limit: int,
) -> Stored:
    """Decode `body`, check the write key (the HTTP Basic user name, else `key(payload)`), parse
    it with `parse` and store its messages; run in a worker thread (it blocks on the database)."""
    ws: Workspace = request.app.state.workspace
    header_key = basic_user(request)
    checker = keys(request)
    if header_key is not None:
        checker.check(header_key, WRITE, what=what)
    payload, size = decode(body, request.headers.get("content-encoding", ""), limit)
    if header_key is None:
        checker.check(key(payload), WRITE, what=what)
    try:
        messages = parse(payload, clock(ws), size)
    except MessageError as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    triggers: Triggers = request.app.state.triggers
    return ingest(db=ws.db, messages=messages, triggers=triggers.rules())


async def receive(
    request: Request,
    *,
    source: Source,
    key: Callable[[Any], str | None],
    parse: Parse,
    what: str,
    limit: int,
) -> Stored:
    """Read, check and store one request's messages; counted in ``/metrics`` once committed."""
    body = await read_body(request, limit)
    async with _workers(request):
        stored = await run_in_threadpool(
            take, request, body, key=key, parse=parse, what=what, limit=limit
        )
    count_ingested(request.app, source, stored.new + stored.pending)
    triggers: Triggers = request.app.state.triggers
    triggers.queued(stored.triggered)
    return stored
