"""Messages: `GET /v1/messages` on a live `upsell serve` at a steady rate, from a second process
(issue 14, "Measure").

For each database (the workspace's SQLite file, and PostgreSQL in a fresh schema when
UPSELL_BENCH_DATABASE_URL or UPSELL_TEST_DATABASE_URL is set): a new workspace and publishable key,
`USERS` accounts of one user with an in-app banner queued for four in five of them
(bench/messages_load.py seed), the installed `upsell serve` started as users start it, then
`RATE` requests per second for `SECONDS` seconds (open-loop: latency counts from each request's
due time) from bench/messages_load.py. Target: p99 ≤ 5 ms.

The load and the server share the machine's cores, as they would on one host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from child import child_env
from host import ROOT, commit, cpus
from service import _cli, _port, _wait_ready, live_server, on_each_database

HEADING = "## Messages"
LOAD = ROOT / "bench" / "messages_load.py"
TARGET_P99_MS = 5.0
#: 60 s: the run spans two refreshes of every account's copy (service/inbox.py, MAX_AGE 30 s).
RATE, SECONDS, THREADS, USERS = 1_000, 60, 8, 10_000


@dataclass
class Measured:
    database: str
    result: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _load(*args: object) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(LOAD), *map(str, args)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout) if done.stdout.strip() else {}


def _cpu_seconds(pid: int) -> float:
    """The user and system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(database: str, folder: Path, database_url: str | None) -> Measured:
    out = Measured(database)
    out.result["load"] = os.getloadavg()[0]
    env = child_env(database_url)
    _cli(["init", str(folder)], env)
    key = _cli(["keys", "create", "-w", str(folder), "--kind", "publishable"], env)
    _load("seed", database_url or f"sqlite:///{folder / 'upsell.db'}", USERS)
    try:
        with live_server(folder, env, database) as (url, server):
            _load("get", url, key, 200, 2, 2, USERS)  # warm-up
            before = _cpu_seconds(server.pid)
            out.result |= _load("get", url, key, RATE, SECONDS, THREADS, USERS)
            spent = _cpu_seconds(server.pid) - before
            out.result["cpu_ms"] = spent / int(out.result["requests"]) * 1000  # type: ignore[call-overload]
            r = out.result
            print(f"  {database}: {float(r['rate']):,.0f} req/s, p99 {float(r['p99_ms']):.2f} ms")  # type: ignore[arg-type]
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        out.problems.append(f"{database}: {exc}")
    return out


def floor() -> Measured:
    """The same load against bench/floor_app.py under the same uvicorn: the latency of the
    machine, the load and the HTTP server alone."""
    out = Measured("floor: a bare ASGI app")
    out.result["load"] = os.getloadavg()[0]
    port = _port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "uvicorn"), "--app-dir", str(ROOT / "bench"),
         "floor_app:app", "--port", str(port), "--log-level", "warning", "--no-access-log"],
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server, path="/")
        before = _cpu_seconds(server.pid)
        out.result |= _load("get", url, "none", RATE, SECONDS, THREADS, USERS)
        spent = _cpu_seconds(server.pid) - before
        out.result["cpu_ms"] = spent / int(out.result["requests"]) * 1000  # type: ignore[call-overload]
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        out.problems.append(f"floor: {exc}")
    finally:
        server.terminate()
        server.wait(30)
    return out


def section(command: str) -> tuple[str, list[str]]:
    results, skipped = on_each_database("messages", measure)
    return render([*results, floor()], skipped, command)


def render(results: list[Measured], skipped: str, command: str) -> tuple[str, list[str]]:
    failures = [p for r in results for p in r.problems]
    lines = [
        HEADING,
        "",
        f"Written by `{command}` (`--only messages`) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit()}, {cpus()}. "
        f"`GET /v1/messages` for random users of {USERS:,} (four in five with a banner queued, "
        f"the others 204) at a steady {RATE:,} requests/s for {SECONDS} s, open-loop from "
        f"bench/messages_load.py ({THREADS} keep-alive connections; latency from each request's "
        "due time), against one `upsell serve` process on the same machine.",
        "",
        f"**Target** (issue 14): p99 ≤ {TARGET_P99_MS:g} ms at {RATE:,} requests/s.",
        "",
        "| database | load before | requests | achieved req/s | server CPU ms/request | p50 ms "
        "| p90 ms | p99 ms | max ms | statuses | met |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|:-:|",
    ]
    for r in results:
        x = r.result
        if "requests" not in x:
            continue
        p99 = float(x["p99_ms"])  # type: ignore[arg-type]
        met = p99 <= TARGET_P99_MS and float(x["rate"]) >= 0.95 * RATE  # type: ignore[arg-type]
        floor = r.database.startswith("floor")
        if not met and not floor:
            failures.append(f"{r.database}: p99 {p99:.2f} ms at {float(x['rate']):,.0f} req/s")  # type: ignore[arg-type]
        statuses = ", ".join(f"{k}: {v:,}" for k, v in x["statuses"].items())  # type: ignore[attr-defined]
        cpu = f"{float(x['cpu_ms']):.3f}" if "cpu_ms" in x else "—"  # type: ignore[arg-type]
        lines.append(
            f"| {r.database} | {float(x['load']):.2f} | {x['requests']:,} "  # type: ignore[arg-type]
            f"| {float(x['rate']):,.0f} | {cpu} "  # type: ignore[arg-type]
            f"| {float(x['p50_ms']):.2f} | {float(x['p90_ms']):.2f} | {p99:.2f} "  # type: ignore[arg-type]
            f"| {float(x['max_ms']):.1f} | {statuses} "  # type: ignore[arg-type]
            f"| {'—' if floor else 'yes' if met else '**no**'} |"
        )
    lines += [
        "",
        "`load before`: the machine's 1-minute load average as the run started (2 cores). The "
        "floor row is bench/floor_app.py, a bare ASGI app answering `{}` under the same uvicorn "
        "with the same load: what the machine, the load generator and the HTTP server cost "
        "before upsell does anything; not a target.",
    ]
    if skipped:
        lines += ["", skipped + "."]
    if failures:
        lines += ["", "Problems:", *[f"- {f}" for f in failures]]
    return "\n".join(lines) + "\n", failures
