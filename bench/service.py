"""Service: Segment batches into a live `upsell serve`, from a second process (issue 13, "Measure").

For each database (the workspace's SQLite file, and PostgreSQL in a fresh schema when
UPSELL_BENCH_DATABASE_URL or UPSELL_TEST_DATABASE_URL is set): a new workspace and write key, the
installed `upsell serve` started as users start it (one process, one uvicorn worker), then from
bench/service_load.py in another process:

- `/v1/batch` throughput in events per second, batches of 100 and of 500 (`THREADS` keep-alive
  connections, bodies built before the clock starts); targets ≥ 20,000 events/s on SQLite and
  ≥ 10,000 on PostgreSQL (the goal beyond that is 50,000);
- the p50/p99 latency of one `/v1/track`, sent one after the other;
- the same throughput runs once the store holds 500,000 events (reported, not checked);
- the server's peak RSS under that load (VmHWM of /proc/PID/status);
- and a check that every event sent is stored once (`events` plus `pending_events`).

The load and the server share the machine's cores, as they would on one host.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from child import UPSELL, child_env
from host import DATA, ROOT, commit, cpus

T = TypeVar("T")

HEADING = "## Service"
LOAD = ROOT / "bench" / "service_load.py"
DATABASE_ENVS = ("UPSELL_BENCH_DATABASE_URL", "UPSELL_TEST_DATABASE_URL")
TARGETS = {"SQLite": 20_000, "PostgreSQL": 10_000}
GOAL = 50_000
THREADS = 4
#: (batch size, requests) of each throughput run: 40,000 and 50,000 events.
RUNS = ((100, 400), (500, 100))
TRACKS = 1_000
#: The same runs again once the store holds this many events (not counted against the targets).
FILLED = 500_000


@dataclass
class Measured:
    database: str
    rows: list[dict[str, object]] = field(default_factory=list)
    filled: list[dict[str, object]] = field(default_factory=list)
    track: dict[str, object] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    stored: int = 0
    sent: int = 0
    problems: list[str] = field(default_factory=list)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([str(UPSELL), *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wait_ready(url: str, server: subprocess.Popen[bytes], path: str = "/healthz") -> None:
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"upsell serve exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("upsell serve did not answer in 60 s")


@contextmanager
def live_server(
    folder: Path, env: dict[str, str], database: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The installed `upsell serve` on `folder`, started as users start it (its log next to the
    folder), ready; yields its URL and process, and stops it with SIGTERM afterwards."""
    port = _port()
    url = f"http://127.0.0.1:{port}"
    log = (folder.parent / f"serve-{database}.log").open("wb")
    server = subprocess.Popen(
        [str(UPSELL), "serve", "-w", str(folder), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(url, server)
        yield url, server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        log.close()


def _load(url: str, key: str, *args: object) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(LOAD), url, key, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _stored(database_url: str) -> int:
    import sqlalchemy as sa

    db = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with db.connect() as conn:
            return sum(
                conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                for table in ("events", "pending_events")
            )
    finally:
        db.dispose()


def measure(database: str, folder: Path, database_url: str | None) -> Measured:
    out = Measured(database)
    env = child_env(database_url)
    _cli(["init", str(folder)], env)
    key = _cli(["keys", "create", "-w", str(folder), "--kind", "write", "--name", "bench"], env)
    try:
        with live_server(folder, env, database) as (url, server):
            _load(url, key, "batch", 100, 20, 2)  # warm-up: imports, connections, first pages
            out.sent += 2_000
            for size, requests in RUNS:
                result = _load(url, key, "batch", size, requests, THREADS)
                result["size"] = size
                out.rows.append(result)
                out.sent += size * requests
                print(
                    f"  {database}, batches of {size}: {result['events_per_second']:,.0f} events/s"
                )
            out.track = _load(url, key, "track", TRACKS)
            out.sent += TRACKS
            print(f"  {database}, one track: p50 {out.track['p50_ms']:.2f} ms")
            fill = FILLED - out.sent
            _load(url, key, "batch", 500, fill // 500, THREADS)
            out.sent += fill // 500 * 500
            for size, requests in RUNS:
                result = _load(url, key, "batch", size, requests, THREADS)
                result["size"] = size
                out.filled.append(result)
                out.sent += size * requests
                rate = result["events_per_second"]
                print(
                    f"  {database}, {FILLED:,} events stored, batches of {size}: {rate:,.0f} events/s"
                )
            out.peak_rss_mib = _peak_rss_mib(server.pid)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        out.problems.append(f"{database}: {exc}")
    if not out.problems:
        out.stored = _stored(database_url or f"sqlite:///{folder / 'upsell.db'}")
        if out.stored != out.sent:
            out.problems.append(f"{database}: sent {out.sent:,} events, stored {out.stored:,}")
    return out


def _postgresql() -> tuple[str | None, str]:
    base = next((os.environ[n] for n in DATABASE_ENVS if os.environ.get(n)), "")
    return (base or None), f"set {' or '.join(DATABASE_ENVS)} to a PostgreSQL URL"


def on_each_database(
    name: str, measure: Callable[[str, Path, str | None], T]
) -> tuple[list[T], str]:
    """`measure(database, folder, url)` on SQLite (url None), then on PostgreSQL in a schema of
    its own when a URL is set, each in a folder under bench/.data/`name` (removed afterwards);
    the results, and why PostgreSQL was skipped ("" when it ran)."""
    import shutil

    import sqlalchemy as sa

    work = DATA / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = [measure("SQLite", work / "sqlite", None)]
    base, hint = _postgresql()
    skipped = ""
    if base is None:
        skipped = f"PostgreSQL skipped: {hint}"
    else:
        schema = f"bench_{secrets.token_hex(6)}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
            pg_url = url.render_as_string(hide_password=False)
            results.append(measure("PostgreSQL", work / "postgresql", pg_url))
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()
    shutil.rmtree(work, ignore_errors=True)
    return results, skipped


def section(command: str) -> tuple[str, list[str]]:
    results, skipped = on_each_database("service", measure)
    return render(results, skipped, command)


def render(results: list[Measured], skipped: str, command: str) -> tuple[str, list[str]]:
    failures = [p for r in results for p in r.problems]
    lines = [
        HEADING,
        "",
        f"Written by `{command}` (`--only service`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"commit {commit()}, {cpus()}. A live `upsell serve` (one process) and the load "
        f"(bench/service_load.py, {THREADS} keep-alive connections) share the machine.",
        "",
        f"**Targets** (issue 13): `/v1/batch` ≥ {TARGETS['SQLite']:,} events/s on SQLite and ≥ "
        f"{TARGETS['PostgreSQL']:,} on PostgreSQL, batches of 100 and of 500; the goal beyond is "
        f"{GOAL:,}.",
        "",
        "| database | batch | events | seconds | events/s | p50 ms | p99 ms | target | met |",
        "|---|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    for r in results:
        target = TARGETS[r.database]
        for row in r.rows:
            rate = float(row["events_per_second"])  # type: ignore[arg-type]
            met = rate >= target
            if not met:
                failures.append(f"{r.database}, batches of {row['size']}: {rate:,.0f} events/s")
            lines.append(
                f"| {r.database} | {row['size']} | {row['events']:,} | {float(row['seconds']):.2f} "  # type: ignore[arg-type]
                f"| {rate:,.0f} | {float(row['p50_ms']):.1f} | {float(row['p99_ms']):.1f} "  # type: ignore[arg-type]
                f"| {target:,} | {'yes' if met else '**no**'} |"
            )
    lines += [
        "",
        f"The same runs once the store holds {FILLED:,} events (the message-id and account indexes "
        "are larger; SQLite's WAL is checkpointed more): not part of the targets, shown so that "
        "the first table is not read as a steady state.",
        "",
        "| database | batch | events | seconds | events/s | p50 ms | p99 ms |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        for row in r.filled:
            lines.append(
                f"| {r.database} | {row['size']} | {row['events']:,} | {float(row['seconds']):.2f} "  # type: ignore[arg-type]
                f"| {float(row['events_per_second']):,.0f} | {float(row['p50_ms']):.1f} "  # type: ignore[arg-type]
                f"| {float(row['p99_ms']):.1f} |"  # type: ignore[arg-type]
            )
    lines += [
        "",
        "| database | one `/v1/track`: p50 ms | p99 ms | server peak RSS MiB | events sent | stored |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        t = r.track
        if t:
            lines.append(
                f"| {r.database} | {float(t['p50_ms']):.2f} | {float(t['p99_ms']):.2f} "  # type: ignore[arg-type]
                f"| {r.peak_rss_mib:.0f} | {r.sent:,} | {r.stored:,} |"
            )
    if skipped:
        lines += ["", skipped + "."]
    if failures:
        lines += ["", "Problems:", *[f"- {f}" for f in failures]]
    return "\n".join(lines) + "\n", failures
