"""What the Segment and PostHog doors share: reading a body within its limit (gzip or not),
decoding it as UTF-8 JSON, checking the write key, and storing the messages before answering.

Bodies are read as bytes and parsed once here (pydantic-core's JSON parser), not by FastAPI.
Every problem is an `ApiError` 400 whose message says what and where; nothing is stored unless
the whole request is valid, and a 200 is sent only after the transaction committed.

Requests that arrive while the server's workers are busy wait in a queue; a worker takes those
that wait (of one source, up to `GROUP_REQUESTS` requests and `GROUP_BYTES` of bodies) and stores
their messages in one transaction (group commit: one commit, one thread hop and one set of
statements for several requests; storing the concatenation in order is what storing them one after
the other does). When that transaction fails, each request of the group is stored again on its own,
so that one bad request fails alone (`live.ingest_together`).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from upsell.ingest.live import Stored, ingest_together
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

#: Workers decoding and storing requests at once, per server. SQLite has one writer: a second
#: thread would only take the GIL from the one holding the write lock (measured: 23,600 events/s
#: with one thread, 18,600 with four); PostgreSQL writes in its own processes and gains from a few.
WORKERS = {"sqlite": 1, "postgresql": 4}
#: The most requests, and bytes of their bodies, a worker stores in one transaction (at least one
#: request, whatever its size).
GROUP_REQUESTS = 8
GROUP_BYTES = 1_000_000


@dataclass
class _Waiting:
    """A request whose body is read, waiting for a worker; `done` gets its outcome."""

    request: Request
    body: bytes
    source: Source
    key: Callable[[Any], str | None]
    parse: Parse
    what: str
    limit: int
    done: asyncio.Future[Stored]
    messages: list[Message] = field(default_factory=list)


class Intake:
    """The queue of one server's ingestion requests and its workers (see the module docstring)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.waiting: list[_Waiting] = []
        self.busy = 0  # workers running: counted here, not by their tasks (see `_work`)
        self.tasks: set[asyncio.Task[None]] = set()

    async def store(self, item: _Waiting) -> Stored:
        self.waiting.append(item)
        if self.busy < self.workers:
            self.busy += 1
            task = asyncio.get_running_loop().create_task(self._work())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await item.done

    def _take(self) -> list[_Waiting]:
        """The next group: the first waiting request, and those after it of the same source
        within `GROUP_REQUESTS` and `GROUP_BYTES`."""
        first = self.waiting[0]
        group, rest, size = [first], [], len(first.body)
        for item in self.waiting[1:]:
            if (
                item.source == first.source
                and len(group) < GROUP_REQUESTS
                and size + len(item.body) <= GROUP_BYTES
            ):
                group.append(item)
                size += len(item.body)
            else:
                rest.append(item)
        self.waiting = rest
        return group

    async def _work(self) -> None:
        # A worker stops in the same step as it finds the queue empty: a request queued after
        # that step sees it gone and starts another.
        try:
            await self._drain()
        finally:
            self.busy -= 1

    async def _drain(self) -> None:
        while self.waiting:
            group = self._take()
            try:
                outcomes: list[Stored | BaseException] = await run_in_threadpool(
                    _store_group, group
                )
            except asyncio.CancelledError as exc:  # shutdown: no request waits for nothing
                for item in group + self.waiting:
                    if not item.done.done():
                        item.done.set_exception(exc)
                raise
            except Exception as exc:  # a bug in _store_group: its group fails, the rest goes on
                outcomes = [exc] * len(group)
            # One `Stored` per transaction, shared by the requests it stored.
            done = {id(o): o for o in outcomes if isinstance(o, Stored)}.values()
            if done:
                app = group[0].request.app
                count_ingested(app, group[0].source, sum(s.new + s.pending for s in done))
                triggers: Triggers = app.state.triggers
                triggers.queued(sum(s.triggered for s in done))
            for item, outcome in zip(group, outcomes, strict=True):
                if item.done.done():  # its client went away
                    continue
                if isinstance(outcome, BaseException):
                    item.done.set_exception(outcome)
                else:
                    item.done.set_result(outcome)


def _intake(request: Request) -> Intake:
    found: Intake | None = getattr(request.app.state, "intake", None)
    if found is None:
        ws: Workspace = request.app.state.workspace
        found = Intake(WORKERS.get(ws.db.dialect.name, 4))
        request.app.state.intake = found
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


def _messages(item: _Waiting) -> list[Message]:
    """Decode a request's body, check its write key (the HTTP Basic user name, else the one the
    body holds) and parse its messages; `ApiError` when any of it fails."""
    request = item.request
    ws: Workspace = request.app.state.workspace
    header_key = basic_user(request)
    checker = keys(request)
    if header_key is not None:
        checker.check(header_key, WRITE, what=item.what)
    payload, size = decode(item.body, request.headers.get("content-encoding", ""), item.limit)
    if header_key is None:
        checker.check(item.key(payload), WRITE, what=item.what)
    try:
        return item.parse(payload, clock(ws), size)
    except MessageError as exc:
        raise ApiError(400, exc.code, str(exc)) from None


def _store_group(group: list[_Waiting]) -> list[Stored | BaseException]:
    """Each request's outcome: the `Stored` of the transaction that stored it
    (`live.ingest_together`), or the exception that refused it. Runs in a worker thread (it
    blocks on the database)."""
    outcomes: list[Stored | BaseException] = []
    valid: list[_Waiting] = []
    for item in group:
        try:
            item.messages = _messages(item)
        except Exception as exc:  # handed to the request, which raises it
            outcomes.append(exc)
            continue
        outcomes.append(Stored())  # replaced below
        valid.append(item)
    if not valid:
        return outcomes
    app = valid[0].request.app
    ws: Workspace = app.state.workspace
    stored = iter(
        ingest_together(
            db=ws.db,
            batches=[item.messages for item in valid],
            triggers=app.state.triggers.rules(),
        )
    )
    return [next(stored) if isinstance(o, Stored) else o for o in outcomes]


async def receive(
    request: Request,
    *,
    source: Source,
    key: Callable[[Any], str | None],
    parse: Parse,
    what: str,
    limit: int,
) -> Stored:
    """Read, check and store one request's messages (with those of the requests waiting with it,
    see the module docstring); counted in ``/metrics`` once committed. Returns the `Stored` of
    the transaction that stored them."""
    body = await read_body(request, limit)
    done: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
    item = _Waiting(request, body, source, key, parse, what, limit, done)
    return await _intake(request).store(item)
