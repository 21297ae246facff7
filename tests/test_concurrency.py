"""Two `upsell` processes on one workspace (docs/operations.md, "Concurrency"), on SQLite and on
PostgreSQL: overlapping runs of one day send every offer exactly once.

The processes are the command users run, in child processes; offers go to a real, slow HTTP
receiver in the test, which counts the POSTs by idempotency key.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import empty_database
from live_server import BIN, child_env
from upsell.flows.runs import JOB_LOCK
from upsell.store.locks import advisory_key
from upsell.store.schema import contacts, locks

AS_OF = "2026-02-20"
#: A small company (60 accounts, 4 months; about 15 offers a day) made once a module.
COMPANY = ("--accounts", 60, "--months", 4, "--seed", 2)
#: Every offer to the webhook, so that the receiver sees every delivery.
PLAYBOOKS = """\
settings:
  holdout: {share: 0.1, key: test}
  contact_cost: {webhook: 0}
guardrails:
  caps: []
playbooks:
  - {id: hook, trigger: {kind: [upsell, add_on, cross_sell]}, channel: webhook, placement: event,
     template: limit_reached}
  - {id: keep, trigger: {kind: save}, channel: webhook, placement: event, template: save}
"""


def upsell(env: dict[str, str], *args: object) -> subprocess.Popen[str]:
    """`upsell ARGS` started in a child process with `env`, its output captured."""
    return subprocess.Popen(
        [str(BIN / "upsell"), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    """Wait for `child`; its exit status and stderr."""
    _, stderr = child.communicate(timeout=timeout)
    return child.returncode, stderr


@dataclass(frozen=True)
class Company:
    folder: Path
    database_url: str
    env: dict[str, str]

    def contacts(self) -> list[dict[str, Any]]:
        db = sa.create_engine(self.database_url, poolclass=sa.NullPool)
        try:
            with db.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(sa.select(contacts))]
        finally:
            db.dispose()


@pytest.fixture(scope="module")
def company_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small company's workspace on SQLite, made once; its data/ holds the simulated files."""
    folder = tmp_path_factory.mktemp("concurrency") / "ws"
    done = subprocess.run(
        [str(BIN / "upsell"), "init", str(folder), "--demo", *map(str, COMPANY)],
        env=child_env(None),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(params=["sqlite", "postgresql"])
def company(
    request: pytest.FixtureRequest, company_files: Path, tmp_path: Path
) -> Iterator[Company]:
    """The small company in a workspace of the test's own: a copy of the SQLite one, or the same
    files imported into a PostgreSQL schema of its own; its playbooks deliver by webhook."""
    folder = tmp_path / "ws"
    with empty_database(request.param, folder) as url:
        env = child_env(url)
        if request.param == "sqlite":
            shutil.copytree(company_files, folder)
        else:
            data = company_files / "data"
            for args in (
                ("init", folder),
                (
                    "import", "-w", folder, "--catalog", data / "catalog.yaml",
                    "--accounts", data / "accounts.parquet",
                    "--subscriptions", data / "subscriptions.parquet",
                    "--events", data / "events.parquet",
                ),
            ):  # fmt: skip
                code, stderr = finish(upsell(env, *args))
                assert code == 0, stderr
        (folder / "playbooks.yaml").write_text(PLAYBOOKS)
        yield Company(folder, url, env)


class Receiver:
    """A webhook receiver that counts POSTs by idempotency key as they arrive, and answers each
    (200) once `gate` is open: a closed gate holds deliveries in flight."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()

    def posts(self) -> int:
        with self.lock:
            return len(self.keys)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.keys.append(body["idempotency_key"])
            state.gate.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        state.gate.set()
        server.shutdown()
        server.server_close()
        thread.join()


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _break_job_lock(company: Company) -> None:
    """Free the job's lock behind its holder's back, as when the holder is paused past the lock's
    time-to-live (SQLite: the row expires) or its lock's session is cut (PostgreSQL: an
    idle-session timeout, a proxy restart)."""
    db = sa.create_engine(company.database_url, poolclass=sa.NullPool)
    try:
        with db.begin() as conn:
            if db.dialect.name == "sqlite":
                expired = datetime.now(UTC) - timedelta(seconds=1)
                conn.execute(sa.update(locks).values(expires_at=expired))
                return
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            key = advisory_key(str(schema), JOB_LOCK) & 0xFFFFFFFFFFFFFFFF
            holder = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :hi"
                    " AND objid = :lo AND objsubid = 1"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
            ).scalar_one()
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
    finally:
        db.dispose()


def test_overlapping_runs_of_one_day_post_every_offer_exactly_once(
    company: Company, receiver: tuple[Receiver, str]
) -> None:
    """A second run stops while the first holds the job's lock (tests/test_locks.py); one that
    gets the lock while the first still delivers (the first lost it) shares the work with it:
    each offer is claimed by one of them, and the one in flight is left to the first."""
    hooks, url = receiver
    env = company.env | {
        "UPSELL_WEBHOOK_URL": url,
        "UPSELL_WEBHOOK_RETRIES": "0",
        "UPSELL_WEBHOOK_TIMEOUT": "90",
    }
    first = upsell(env, "run", "-w", company.folder, "--as-of", AS_OF)
    try:
        _wait_for(lambda: hooks.posts() >= 1 or first.poll() is not None)
        assert first.poll() is None, "the first run finished before the second started"
        first.send_signal(signal.SIGSTOP)
        try:
            _break_job_lock(company)
            second = upsell(env, "run", "-w", company.folder, "--as-of", AS_OF)
            _wait_for(lambda: hooks.posts() >= 2 or second.poll() is not None)
        finally:
            first.send_signal(signal.SIGCONT)
            hooks.gate.set()
        second_code, second_err = finish(second)
    finally:
        hooks.gate.set()
        first_code, first_err = finish(first)
    assert first_code == 0, first_err
    assert second_code == 0, second_err
    offers = [c for c in company.contacts() if not c["held_out"]]
    assert len(offers) >= 8
    posted = Counter(hooks.keys)
    assert posted.most_common(1)[0][1] == 1, f"offers posted twice: {posted.most_common(3)}"
    assert len(posted) == len(offers)
    assert {(c["status"], c["detail"]) for c in offers} == {("sent", "HTTP 200")}


def test_a_killed_run_is_finished_by_the_next_sending_again_only_the_offer_in_flight(
    company: Company, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    env = company.env | {
        "UPSELL_WEBHOOK_URL": url,
        "UPSELL_WEBHOOK_RETRIES": "0",
        "UPSELL_WEBHOOK_TIMEOUT": "90",
    }
    first = upsell(env, "run", "-w", company.folder, "--as-of", AS_OF)
    try:
        _wait_for(lambda: hooks.posts() >= 1 or first.poll() is not None)
        assert first.poll() is None, "the run finished before it was killed"
        first.send_signal(signal.SIGKILL)
    finally:
        finish(first)
    (in_flight,) = hooks.keys
    hooks.gate.set()
    code, stderr = finish(upsell(env, "run", "-w", company.folder, "--as-of", AS_OF))
    assert code == 0, stderr
    offers = [c for c in company.contacts() if not c["held_out"]]
    assert {(c["status"], c["detail"]) for c in offers} == {("sent", "HTTP 200")}
    posted = Counter(hooks.keys)
    assert len(posted) == len(offers)
    assert [k for k, n in posted.items() if n > 1] == [in_flight]
    assert posted[in_flight] == 2
