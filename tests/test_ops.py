"""Operations (docs/service.md, "Operations"): JSON logs with a request id, Prometheus metrics,
graceful shutdown; on a live `upsell serve` where the behaviour is the server's."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from conftest import Served
from live_server import BIN, child_env, live_server
from upsell.domain.contacts import Contact
from upsell.service import logs
from upsell.service.app import create_app
from upsell.service.metrics import count_ingested
from upsell.settings import Settings
from upsell.store.contacts import record_contact
from upsell.store.db import connect
from upsell.store.keys import create_key
from upsell.store.schema import events, pending_events, runs
from upsell.workspace import Workspace


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a /metrics page by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def call(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET `path` from `app` in this process (its exceptions answered as the server would)."""

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(get())


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- logs -----------------------------------------------------------------------------------------


def test_every_log_line_is_json_and_each_request_has_an_id(served: Served) -> None:
    given = httpx.get(f"{served.url}/healthz", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = httpx.get(f"{served.url}/no/such/route")
    made_id = made.headers["x-request-id"]
    assert len(made_id) == 32 and int(made_id, 16) >= 0
    # An id that is not 1-128 visible ASCII characters is replaced, not echoed or logged.
    odd = httpx.get(f"{served.url}/healthz", headers={"X-Request-ID": "a b"})
    assert odd.headers["x-request-id"] != "a b"

    # The access line is written once the answer is sent: wait for the last one.
    odd_id = odd.headers["x-request-id"]
    _wait_until(lambda: odd_id in served.server.output())
    lines = log_lines(served.server.output())  # every line parses: nothing but JSON on stderr
    access = {line["request_id"]: line for line in lines if line["logger"] == "upsell.access"}
    line = access["trace-42"]
    assert {k: line[k] for k in ("level", "method", "path", "route", "status")} == {
        "level": "info",
        "method": "GET",
        "path": "/healthz",
        "route": "/healthz",
        "status": 200,
    }
    assert line["message"] == "GET /healthz 200" and 0 < line["duration_ms"] < 5000
    assert abs(datetime.fromisoformat(line["time"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert access[made_id]["status"] == 404 and access[made_id]["route"] == "<unmatched>"
    assert access[odd.headers["x-request-id"]]["status"] == 200
    assert any(line["logger"] == "uvicorn.error" for line in lines)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """An in-process workspace on SQLite, for what needs the app itself (two apps, a failing
    route)."""
    env = child_env(None)
    subprocess.run([str(BIN / "upsell"), "init", str(tmp_path / "ws")], env=env, check=True)
    with Workspace.open(tmp_path / "ws", Settings()) as ws:
        yield ws


def test_an_unexpected_error_is_logged_with_its_traceback_and_request_id(
    workspace: Workspace,
) -> None:
    app = create_app(workspace)

    def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", boom)  # an app of this test only; production has no such route
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    try:
        answer = call(app, "/boom", {"X-Request-ID": "oops-1"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert answer.status_code == 500 and answer.json()["code"] == "internal"
    assert answer.headers["x-request-id"] == "oops-1"
    lines = [line for line in log_lines(out.getvalue()) if line.get("request_id") == "oops-1"]
    error = next(line for line in lines if line["level"] == "error")
    assert error["message"] == "unexpected error on GET /boom"
    assert "Traceback" in error["exception"] and "RuntimeError: boom" in error["exception"]
    access = next(line for line in lines if line["logger"] == "upsell.access")
    assert access["status"] == 500 and access["route"] == "/boom"
    page = samples(app.state.metrics.exposition().decode())
    key = (("method", "GET"), ("route", "/boom"), ("status", "500"))
    assert page[("upsell_http_requests_total", key)] == 1


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_count_requests_by_route_and_read_the_store(served: Served) -> None:
    now = datetime.now(UTC)
    db = connect(served.store_url)
    try:
        with db.begin() as conn:
            conn.execute(
                sa.insert(events),
                [
                    {
                        "message_id": "m1",
                        "account_id": "acme",
                        "event": "Report Run",
                        "timestamp": now - timedelta(hours=1),
                        "properties": {},
                        "received_at": now - timedelta(seconds=300),
                    }
                ],
            )
            conn.execute(
                sa.insert(pending_events),
                [
                    {
                        "message_id": f"p{i}",
                        "user_id": "u1",
                        "event": "Report Run",
                        "timestamp": now - timedelta(hours=1),
                        "properties": {},
                        "received_at": now - timedelta(seconds=120),
                    }
                    for i in range(3)
                ],
            )
            finished = now - timedelta(hours=2)
            conn.execute(
                sa.insert(runs),
                [
                    {
                        "as_of": now,
                        "trigger": "schedule",
                        "status": status,
                        "requested_at": now,
                        "finished_at": at,
                    }
                    for status, at in [
                        ("succeeded", finished - timedelta(days=1)),
                        ("succeeded", finished),
                        ("failed", now),
                    ]
                ],
            )
            for channel, status, account in [
                ("email", "sent", "a"),
                ("email", "sent", "b"),
                ("email", "failed", "c"),
                ("in_app", "queued", "a"),
            ]:
                contact = Contact(account, now, "upsell", "o1", "pro", channel, status=status)  # type: ignore[arg-type]
                record_contact(conn=conn, contact=contact)
    finally:
        db.dispose()

    for _ in range(2):
        httpx.get(f"{served.url}/readyz")
    httpx.get(f"{served.url}/no/such/{time.time()}")
    httpx.post(f"{served.url}/healthz")
    httpx.get(f"{served.url}/openapi.json")
    # A request is counted once its answer is sent, a moment after the client has it.
    key = (
        "upsell_http_requests_total",
        (("method", "GET"), ("route", "/openapi.json"), ("status", "200")),
    )
    _wait_until(lambda: key in samples(httpx.get(f"{served.url}/metrics").text))
    page = samples(httpx.get(f"{served.url}/metrics").text)

    def get(name: str, **labels: str) -> float:
        return page[(name, tuple(sorted(labels.items())))]

    assert get("upsell_http_requests_total", route="/readyz", method="GET", status="200") == 2
    assert get("upsell_http_requests_total", route="<unmatched>", method="GET", status="404") == 1
    assert get("upsell_http_requests_total", route="/healthz", method="POST", status="405") == 1
    assert get("upsell_http_requests_total", route="/openapi.json", method="GET", status="200") == 1
    assert get("upsell_http_request_duration_seconds_count", route="/readyz", method="GET") == 2
    assert get("upsell_events_ingested_total", source="segment") == 0
    assert get("upsell_database_up") == 1
    assert get("upsell_events_pending") == 3
    assert 115 <= get("upsell_ingestion_lag_seconds") < 180  # the newest receipt: 120 s ago
    assert get("upsell_runs", status="succeeded") == 2 and get("upsell_runs", status="failed") == 1
    assert get("upsell_run_last_success_timestamp_seconds") == pytest.approx(
        finished.timestamp(), abs=1e-3
    )
    assert get("upsell_offers", channel="email", status="sent") == 2
    assert get("upsell_offers", channel="email", status="failed") == 1
    assert get("upsell_offers", channel="in_app", status="queued") == 1
    assert get("process_resident_memory_bytes") > 0


def test_events_ingested_are_counted_by_source_in_each_apps_own_registry(
    workspace: Workspace,
) -> None:
    one, two = create_app(workspace), create_app(workspace)
    count_ingested(one, "segment", 100)
    count_ingested(one, "segment", 5)
    count_ingested(one, "stripe", 1)
    first = samples(one.state.metrics.exposition().decode())
    second = samples(two.state.metrics.exposition().decode())
    ingested = "upsell_events_ingested_total"
    assert first[(ingested, (("source", "segment"),))] == 105
    assert first[(ingested, (("source", "stripe"),))] == 1
    assert first[(ingested, (("source", "posthog"),))] == 0
    assert second[(ingested, (("source", "segment"),))] == 0
    # The store's gauges read the database of their own app: before any event, no lag.
    assert not any(name == "upsell_ingestion_lag_seconds" for name, _ in first)


def test_ingestion_requests_that_arrive_together_are_all_answered_and_stored_once(
    workspace: Workspace,
) -> None:
    """Requests that wait for the writer are stored together (docs/service.md, "Durability and
    throughput"). In process, straight through ASGI (so that a request can arrive in the very
    step the writer finds the queue empty): 4 clients send 15 batches each, one after the other,
    each batch repeating a message of another; every one is answered 200 in time, and every
    message is stored once."""
    app = create_app(workspace)
    with workspace.db.begin() as conn:
        _, key = create_key(conn=conn, kind="write")
    auth = b"Basic " + base64.b64encode(f"{key}:".encode())

    def body(n: int) -> bytes:
        items = [
            {
                "type": "track",
                "messageId": f"r{n}-{i}",
                "userId": f"u{i}",
                "event": "E",
                "context": {"groupId": f"a{n % 4}"},
            }
            for i in range(5)
        ] + [{"type": "track", "messageId": f"r{(n + 1) % 60}-0", "userId": "u0", "event": "E"}]
        return json.dumps({"batch": items}).encode()  # fmt: skip

    async def post(content: bytes) -> int:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/batch", "raw_path": b"/v1/batch",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80), "state": {},
            "headers": [(b"host", b"app"), (b"authorization", auth),
                        (b"content-length", str(len(content)).encode())],
        }  # fmt: skip
        parts = [{"type": "http.request", "body": content, "more_body": False}]
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            if parts:
                return parts.pop()
            await asyncio.Event().wait()  # no disconnect: wait until cancelled
            return {}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        return status[0]

    async def client(first: int) -> list[int]:
        return [await post(body(n)) for n in range(first, first + 15)]

    async def send_all() -> list[int]:
        clients = asyncio.gather(*[client(first) for first in range(0, 60, 15)])
        return [s for found in await asyncio.wait_for(clients, timeout=20) for s in found]

    assert asyncio.run(send_all()) == [200] * 60
    with workspace.db.connect() as conn:
        stored = conn.execute(sa.select(events.c.message_id)).scalars().all()
        waiting = conn.execute(sa.select(pending_events.c.message_id)).scalars().all()
    assert sorted(stored) == sorted(f"r{n}-{i}" for n in range(60) for i in range(5))
    assert waiting == []


def test_metrics_can_require_an_admin_token(tmp_path: Path) -> None:
    env = child_env(None)
    subprocess.run([str(BIN / "upsell"), "init", str(tmp_path / "ws")], env=env, check=True)
    settings = Settings(service_metrics_auth=True)
    with Workspace.open(tmp_path / "ws", settings) as ws:
        with ws.db.begin() as conn:
            _, admin = create_key(conn=conn, kind="admin")
            _, write = create_key(conn=conn, kind="write")
        app = create_app(ws)
        assert call(app, "/metrics").status_code == 401
        assert call(app, "/metrics", {"Authorization": f"Bearer {write}"}).status_code == 403
        page = call(app, "/metrics", {"Authorization": f"Bearer {admin}"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    assert "upsell_http_requests_total" in page.text


# -- shutdown -------------------------------------------------------------------------------------


class TableLock:
    """An ACCESS EXCLUSIVE lock on PostgreSQL's `alembic_version`, which `/readyz` reads: a
    request to it waits, in flight, until the lock is released."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.NullPool)
        self.conn = self.engine.connect()
        self.conn.begin()
        self.conn.exec_driver_sql("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")

    def waiting(self) -> int:
        """How many other sessions wait on a lock of this database (the server's /readyz)."""
        with self.engine.connect() as other:
            query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            waiting: int = other.exec_driver_sql(query).scalar_one()
            return waiting

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()
        self.engine.dispose()


def _held_request(url: str, answers: list[httpx.Response | Exception]) -> threading.Thread:
    def run() -> None:
        try:
            answers.append(httpx.get(f"{url}/readyz", timeout=60))
        except httpx.HTTPError as exc:
            answers.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_until(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_sigterm_drains_a_request_in_flight_then_exits_0(served: Served) -> None:
    """A request held in flight by a database lock completes with 200 after SIGTERM, while new
    connections are refused; then the server exits 0.

    The request is a real one, `/readyz`, held by a lock on PostgreSQL's `alembic_version`: no
    route exists for tests only. SQLite in WAL mode never makes a reader wait (and the server's
    open connections keep anyone from taking the exclusive lock that would), so there this test
    is skipped; the drain itself is uvicorn's and the same on both databases."""
    if not served.database_url.startswith("postgresql"):
        pytest.skip("a request can be held in flight by a lock on PostgreSQL only")
    lock = TableLock(served.database_url)
    answers: list[httpx.Response | Exception] = []
    try:
        thread = _held_request(served.url, answers)
        _wait_until(lambda: lock.waiting() >= 1)
        served.server.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        _wait_until(lambda: _refused(served.url))
        time.sleep(0.5)
        assert not answers, "the request finished before the lock was released"
    finally:
        lock.release()
    thread.join(30)
    assert isinstance(answers[0], httpx.Response), answers
    assert answers[0].status_code == 200 and answers[0].json()["status"] == "ready"
    assert served.server.stop() == 0
    messages = [line["message"] for line in log_lines(served.server.output())]
    assert "Shutting down" in messages and not any("Cancel" in m for m in messages)


def test_a_request_longer_than_the_shutdown_timeout_is_cut_and_the_exit_is_still_0(
    database_url: str, tmp_path: Path
) -> None:
    """``UPSELL_SERVICE_SHUTDOWN_SECONDS=1``: a request held past it is cancelled (uvicorn answers
    500), and the server exits 0 at once, though the request's thread still waits on the database.
    Held as in the test above."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a request can be held in flight by a lock on PostgreSQL only")
    env = child_env(database_url) | {"UPSELL_SERVICE_SHUTDOWN_SECONDS": "1"}
    folder = tmp_path / "ws"
    subprocess.run([str(BIN / "upsell"), "init", str(folder)], env=env, check=True)
    with live_server(folder, env) as server:
        lock = TableLock(database_url)
        answers: list[httpx.Response | Exception] = []
        try:
            thread = _held_request(server.url, answers)
            _wait_until(lambda: lock.waiting() >= 1)
            start = time.monotonic()
            assert server.stop(signal.SIGTERM, timeout=15) == 0
            assert time.monotonic() - start < 10
            thread.join(30)
        finally:
            lock.release()
        assert isinstance(answers[0], httpx.Response) and answers[0].status_code == 500
        lines = log_lines(server.output())
    messages = [line["message"] for line in lines]
    assert any("timeout graceful shutdown exceeded" in m for m in messages)
    # The cut request's thread, and any idle worker thread of the pool: at least one.
    assert any(
        re.fullmatch(r"exiting with [1-9]\d* request thread\(s\) still busy", m) for m in messages
    )
    access = next(line for line in lines if line.get("path") == "/readyz")
    assert access["status"] == 500 and access["duration_ms"] > 900


def test_the_log_level_setting_leaves_out_the_access_lines(tmp_path: Path) -> None:
    env = child_env(None) | {"UPSELL_SERVICE_LOG_LEVEL": "warning"}
    folder = tmp_path / "ws"
    subprocess.run([str(BIN / "upsell"), "init", str(folder)], env=env, check=True)
    with live_server(folder, env) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        httpx.request("BREW", f"{server.url}/healthz")
        assert server.stop() == 0
        lines = log_lines(server.output())
    assert lines and all(line["level"] in ("warning", "error", "critical") for line in lines)


def test_a_log_record_is_one_line_whatever_characters_it_holds() -> None:
    import logging

    from upsell.service.logs import JsonFormatter

    text = "POST /v1/messages/\u2028\x85\x1c\x1e\n\r\u00e9"
    record = logging.LogRecord("upsell.access", logging.INFO, __file__, 1, text, None, None)
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1 and line.isascii()
    assert json.loads(line)["message"] == text
