"""Two `upsell` processes on one workspace (docs/operations.md, "Concurrency"), on SQLite and on
PostgreSQL: overlapping runs of one day send every offer exactly once.

The processes are the command users run, in child processes; offers go to a real, slow HTTP
receiver in the test, which counts the POSTs by idempotency key.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cli_runner import run
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


# -- imports and other writers ---------------------------------------------------------------------


def _events_file(path: Path, company: Path, tag: str, rows: int, reverse: bool) -> Path:
    """`rows` events (JSONL) of new users of the company's accounts, message ids tagged `tag`: two
    such files share their users and no event; `reverse` lists the users the other way round."""
    accounts = sorted(
        json.loads(line)["account_id"]
        for line in subprocess.run(
            [str(BIN / "python"), "-c", _ACCOUNT_IDS, str(company / "data" / "accounts.parquet")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    )
    users = [(a, f"{a}-new{i}") for a in accounts for i in range(3)]
    if reverse:
        users.reverse()
    with path.open("w") as f:
        for n in range(rows):
            account_id, user_id = users[n % len(users)]
            event = {
                "account_id": account_id,
                "user_id": user_id,
                "event": "Report Viewed",
                "timestamp": f"2026-02-{1 + n % 18:02d}T12:00:00Z",
                "message_id": f"{tag}-{n}",
            }
            f.write(json.dumps(event) + "\n")
    return path


_ACCOUNT_IDS = """
import json, sys
import pyarrow.parquet as pq
for row in pq.read_table(sys.argv[1], columns=["account_id"]).to_pylist():
    print(json.dumps(row))
"""


def test_two_imports_at_once_on_postgresql_both_store_everything(
    company_files: Path, tmp_path: Path
) -> None:
    """The second import waits for the first (an advisory lock), says so, then stores its file:
    no deadlock, no unique violation, on files whose events differ and whose users are shared."""
    with empty_database("postgresql", tmp_path) as url:
        env = child_env(url)
        folder = tmp_path / "ws"
        code, stderr = finish(upsell(env, "init", folder))
        assert code == 0, stderr
        data = company_files / "data"
        args = ("--catalog", data / "catalog.yaml", "--accounts", data / "accounts.parquet")
        code, stderr = finish(upsell(env, "import", "-w", folder, *args))
        assert code == 0, stderr
        rows = 20_000
        files = [
            _events_file(tmp_path / f"{tag}.jsonl", company_files, tag, rows, tag == "b")
            for tag in ("a", "b")
        ]
        children = [upsell(env, "import", "-w", folder, "--events", f) for f in files]
        done = [finish(child) for child in children]
        for code, stderr in done:
            assert code == 0 and "Traceback" not in stderr, stderr
        assert any("waiting for the workspace" in stderr for _, stderr in done), "no overlap"
        db = sa.create_engine(url, poolclass=sa.NullPool)
        try:
            with db.connect() as conn:
                events = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
                users = conn.exec_driver_sql("SELECT count(*) FROM users").scalar_one()
        finally:
            db.dispose()
        assert events == 2 * rows
        assert users == 3 * 60


@pytest.fixture
def sqlite_company(company_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the small company on SQLite, for commands run in this process."""
    for name in ("UPSELL_DATABASE_URL", "UPSELL_WORKSPACE", "UPSELL_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    folder = Path(shutil.copytree(company_files, tmp_path / "ws"))
    (folder / "playbooks.yaml").write_text(PLAYBOOKS)
    return folder


@contextmanager
def sqlite_write_lock(folder: Path) -> Iterator[sqlite3.Connection]:
    """Hold the SQLite workspace's write lock, as a long import does."""
    holder = sqlite3.connect(folder / "upsell.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield holder
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def test_a_writer_waits_for_the_sqlite_write_lock_then_fails_clearly(
    sqlite_company: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process holds the write lock past UPSELL_LOCK_TIMEOUT_SECONDS, an import and
    a run wait, say so, and stop with exit 2 and a clear message: no traceback."""
    monkeypatch.setenv("UPSELL_LOCK_TIMEOUT_SECONDS", "2")
    events = _events_file(tmp_path / "e.jsonl", sqlite_company, "e", 50, False)
    with sqlite_write_lock(sqlite_company):
        for args in (("import", "--events", events), ("run", "--as-of", AS_OF, "--dry-run")):
            result = run(args[0], "-w", sqlite_company, *args[1:])
            assert result.exit_code == 2, result.output
            assert "workspace busy: another upsell process" in result.stderr, result.stderr
            assert "waited 2 s" in result.stderr
            assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_writer_that_waits_for_the_sqlite_write_lock_goes_on_once_it_is_free(
    sqlite_company: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSELL_LOCK_TIMEOUT_SECONDS", "60")
    events = _events_file(tmp_path / "e.jsonl", sqlite_company, "e", 50, False)
    held = threading.Event()

    def hold_for_a_while() -> None:
        with sqlite_write_lock(sqlite_company):
            held.set()
            time.sleep(2.5)

    holder = threading.Thread(target=hold_for_a_while)
    holder.start()
    try:
        held.wait(10)
        result = run("import", "-w", sqlite_company, "--events", events)
    finally:
        holder.join()
    assert result.exit_code == 0, result.output
    assert "waiting for the workspace: another upsell process" in result.stderr, result.stderr
