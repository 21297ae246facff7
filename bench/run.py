"""Benchmark: importing one million usage events through the real `upsell` CLI.

What is measured, and why: the issue "Import of 1 million events must not hold more than a few hundred
MB of memory (stream it)" sets a memory target for `upsell import --events`. The DEVELOPERS rule is
that performance targets are checked here, by a benchmark, never by timed assertions in tests. So this
script runs the installed command line (`.venv/bin/upsell`) in a child process, exactly as a user
would, and records for each run the wall time and the peak resident set size (RSS) of that process,
taken from the kernel with `os.wait4` on the child's pid. The target is a peak RSS below
`MEMORY_TARGET_MIB` ("a few hundred MB").

Scenarios, each on a fresh workspace in a temporary folder (catalog, accounts and subscriptions are
imported first, in a separate step that is not measured):

a. the events as JSONL into SQLite;
b. the same events as CSV into SQLite;
c. the JSONL file again into the workspace of (a): it resumes from the watermark and reads 0 rows;
d. the JSONL again under another file name (a hard link): a full pass of de-duplication, 0 new rows;
e. the JSONL into PostgreSQL, when UPSELL_BENCH_DATABASE_URL (or UPSELL_TEST_DATABASE_URL) is set,
   in a schema of its own that is dropped afterwards.

Every run is checked against the counts it prints with `--json`. The input is synthetic but
deterministic (a fixed seed, the stdlib `random`), written once to `bench/.data/` and reused while the
files hold the expected number of rows. The results go to `bench/RESULTS.md`; the exit status is 1
when any run fails its check or exceeds the memory target.

The simulator section measures `upsell simulate` the same way (a child process, wall time and peak
RSS from `os.wait4`), against the issue "1 million accounts and 100 million events must generate in
minutes, not hours, in bounded memory (measure in bench/). The demo size (default 5,000 accounts, 12
months) generates in seconds.": once at the demo size and once at `--sim-accounts` (default
1,000,000), each into a folder under `bench/.data/` that is deleted after its file sizes and row
counts (from simulation.json) are recorded.

The signals section (issue 4, "Measure") computes the engine's signal tables for a simulated company
of `--signals-accounts` (default 1,000,000, about 100 million events): a full rebuild and a one-day
incremental run on DuckDB, the same features as hand-written DuckDB SQL (bench/signals_sql.py; the
target is the engine within 1.5x of it), PySpark at `--spark-accounts`, and the per-account domain
step. Each run is a child process of this script (`--signals-step`); see bench/README.md.

The decisions section (bench/decisions.py) replays 26 weekly runs of the default playbooks and of a
naive baseline on the demo company through the simulator and compares their incremental MRR,
contacts and churn (`--decisions-accounts`, `--decisions-weeks` for a smaller run); see
bench/README.md.

The metrics section (bench/metrics.py, issue 6) times MRR movements, the monthly summary and NDR/GRR
over a synthetic 24-month subscription history of `--metrics-accounts` (default 1,000,000), each
step a child process (`--metrics-step`) with its peak RSS, and PySpark at
`--metrics-spark-accounts`; see bench/README.md.

`--only import`, `--only simulate`, `--only signals`, `--only decisions` or `--only metrics` runs one
section; the other sections of the existing `bench/RESULTS.md` are kept as they are (the import
results are everything before the "## Simulator" heading, the other sections run from their heading
to the next).

Usage: `make bench`, or `.venv/bin/python bench/run.py --events 20000 --sim-accounts 20000
--signals-accounts 20000 --spark-accounts 5000 --decisions-accounts 500 --decisions-weeks 4
--metrics-accounts 20000 --metrics-spark-accounts 5000` for a quick smoke run; `.venv/bin/python
bench/run.py --only simulate` measures only the simulator.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import random
import re
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from host import commit as machine_commit  # bench/host.py, next to this file
from host import cpu_model, memory_total

from upsell.ingest.rows import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
RESULTS = ROOT / "bench" / "RESULTS.md"
CATALOG = ROOT / "examples" / "catalog.yaml"
UPSELL = ROOT / ".venv" / "bin" / "upsell"

MEMORY_TARGET_MIB = 500
DEFAULT_EVENTS = 1_000_000
ACCOUNTS = 10_000
SEED = 20260101
GENERATOR_VERSION = 1  # bump when the generated data changes, so old files are regenerated
DATABASE_ENVS = ("UPSELL_BENCH_DATABASE_URL", "UPSELL_TEST_DATABASE_URL")

EVENTS_START = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp())
EVENTS_SPAN = 365 * 86_400  # 12 months of events
ACCOUNTS_START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
ACCOUNTS_SPAN = EVENTS_START - ACCOUNTS_START  # every account signed up before its first event
CHUNK = 10_000  # events drawn at a time while generating (bounded memory)

# (country, currency, language, weight)
LOCALES = (
    ("US", "USD", "en", 45),
    ("GB", "GBP", "en", 12),
    ("NL", "EUR", "nl", 10),
    ("DE", "EUR", "de", 13),
    ("FR", "EUR", "fr", 8),
    ("BR", "USD", "pt-BR", 12),
)
INDUSTRIES = ("ecommerce", "software", "agency", "education", "healthcare", "finance", "media")
NAME_WORDS = ("Acme", "Blue", "North", "Bright", "Nova", "Cedar", "Pixel", "Harbor", "Summit")
NAME_KINDS = ("Labs", "Shop", "Studio", "Systems", "Group", "Works", "Digital", "& Co")
# (plan of examples/catalog.yaml, weight, share of yearly billing)
PLANS = (("free", 40, 0.0), ("basic", 30, 0.2), ("pro", 22, 0.3), ("enterprise", 8, 0.6))
EVENT_NAMES = (
    ("API Call", 38),
    ("Page Viewed", 18),
    ("Task Completed", 10),
    ("Board Created", 5),
    ("Project Created", 4),
    ("Report Shared", 4),
    ("Lead Captured", 4),
    ("Feature Blocked", 3),
    ("Storage Measured", 3),
    ("Assessment Used", 3),
    ("Export Downloaded", 3),
    ("User Invited", 2),
    ("Limit Reached", 1),
)
SYSTEM_EVENTS = frozenset({"Storage Measured", "Limit Reached"})  # sent without a user_id
ENDPOINTS = ("/v1/tasks", "/v1/boards", "/v1/projects", "/v1/users", "/v1/reports", "/v1/search")
PAGES = ("/dashboard", "/boards", "/projects", "/reports", "/settings", "/billing", "/integrations")
FEATURES = ("automation", "private_boards", "sso", "audit_log", "export", "advanced_scheduling")

EVENT_COLUMNS = [column.name for column in COLUMNS["events"]]

# The simulator section: the sizes and its time targets ("in seconds", "minutes, not hours").
SIM_DEMO_ACCOUNTS = 5_000
SIM_MONTHS = 12
SIM_DEFAULT_ACCOUNTS = 1_000_000
SIM_TARGET_ACCOUNTS = 1_000_000  # the size the "minutes, not hours" target is about
SIM_DEMO_TARGET_SECONDS = 60  # "generates in seconds"
SIM_LARGE_TARGET_SECONDS = 3_600  # "in minutes, not hours"
SIM_FILES = (
    "catalog.yaml",
    "accounts.parquet",
    "subscriptions.parquet",
    "events.parquet",
    "simulation.json",
)
SIM_HEADING = "## Simulator"

# The decisions section (bench/decisions.py): the demo company, 26 weekly runs.
DECISIONS_DEFAULT_ACCOUNTS = 5_000
DECISIONS_DEFAULT_WEEKS = 26


# --- input data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    accounts: Path
    subscriptions: Path
    events_jsonl: Path
    events_csv: Path
    events_renamed: Path  # the JSONL under another name, for scenario (d)
    events: int


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _rows(path: Path, *, header: bool) -> int:
    """Data rows in a generated file (no field holds a newline), or -1 when it is missing."""
    if not path.is_file():
        return -1
    return _count_lines(path) - (1 if header else 0)


def _stamp() -> dict[str, int]:
    return {"generator": GENERATOR_VERSION, "seed": SEED, "accounts": ACCOUNTS}


def _iso(epoch_ms: int) -> str:
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _account_id(index: int) -> str:
    return f"acct-{index:05d}"


def _users_per_account() -> list[int]:
    """How many users each account has (derived from the accounts' seed, so events can use it)."""
    rng = random.Random(f"users-{SEED}")
    return [max(1, min(60, int(rng.lognormvariate(1.2, 0.9)))) for _ in range(ACCOUNTS)]


def write_accounts(accounts: Path, subscriptions: Path) -> None:
    """10,000 accounts and one subscription each, on a plan of examples/catalog.yaml."""
    rng = random.Random(f"accounts-{SEED}")
    users = _users_per_account()
    locales = [locale[:3] for locale in LOCALES]
    locale_weights = [locale[3] for locale in LOCALES]
    plan_weights = [plan[1] for plan in PLANS]
    tmp_a, tmp_s = accounts.with_suffix(".tmp"), subscriptions.with_suffix(".tmp")
    with (
        tmp_a.open("w", newline="", encoding="utf-8") as fa,
        tmp_s.open("w", newline="", encoding="utf-8") as fs,
    ):
        out_a, out_s = csv.writer(fa), csv.writer(fs)
        out_a.writerow([column.name for column in COLUMNS["accounts"]])
        out_s.writerow([column.name for column in COLUMNS["subscriptions"]])
        for index in range(1, ACCOUNTS + 1):
            account_id = _account_id(index)
            created = _iso((ACCOUNTS_START + rng.randrange(ACCOUNTS_SPAN)) * 1000)
            country, currency, language = rng.choices(locales, weights=locale_weights)[0]
            seats = users[index - 1]
            traits = {"seats": seats, "projects": rng.randint(1, 12)}
            out_a.writerow(
                (
                    account_id,
                    created,
                    f"{rng.choice(NAME_WORDS)} {rng.choice(NAME_KINDS)} {index}",
                    rng.choice(INDUSTRIES),
                    max(1, int(rng.lognormvariate(3.0, 1.3))),
                    country,
                    currency,
                    language,
                    f"ops@{account_id}.example",
                    json.dumps(traits),
                )
            )
            plan, _, yearly = rng.choices(PLANS, weights=plan_weights)[0]
            interval = "year" if rng.random() < yearly else "month"
            # unit_price and currency empty: the catalog's price in the account's currency
            out_s.writerow((account_id, plan, created, "", 1, interval, "", "", "active"))
    tmp_a.replace(accounts)
    tmp_s.replace(subscriptions)


def _properties(rng: random.Random, event: str) -> dict[str, Any]:
    if event == "API Call":
        return {
            "endpoint": rng.choice(ENDPOINTS),
            "method": rng.choice(("GET", "GET", "GET", "POST", "PATCH")),
            "status": rng.choice((200, 200, 200, 200, 201, 404, 429)),
        }
    if event == "Page Viewed":
        return {"path": rng.choice(PAGES)}
    if event == "Task Completed":
        return {"board": f"board-{rng.randrange(50)}"}
    if event == "Board Created":
        return {"template": rng.choice(("blank", "kanban", "roadmap", "sprint"))}
    if event == "Project Created":
        return {"project": f"project-{rng.randrange(1000)}"}
    if event == "Report Shared":
        return {"report": rng.choice(("weekly", "burndown", "usage")), "channel": "email"}
    if event == "Lead Captured":
        return {"source": rng.choice(("inbound", "inbound", "outbound")), "form": "contact"}
    if event == "Feature Blocked":
        return {"feature": rng.choice(FEATURES)}
    if event == "Storage Measured":
        return {"gb": round(rng.uniform(0.1, 500.0), 2)}
    if event == "Assessment Used":
        return {"assessment": rng.choice(("skills", "culture", "language"))}
    if event == "Export Downloaded":
        return {"format": rng.choice(("csv", "pdf", "xlsx"))}
    if event == "User Invited":
        return {"role": rng.choice(("member", "member", "admin"))}
    return {"metric": rng.choice(("seats", "projects", "api_calls"))}  # Limit Reached


def generate_events(count: int) -> Iterator[tuple[str, str | None, str, str, dict[str, Any], str]]:
    """`count` Segment-style track events in time order, drawn a chunk at a time (never all at once).

    Accounts are drawn with heavy-tailed weights (a few accounts send most events), like real usage.
    """
    rng = random.Random(f"events-{SEED}-{count}")
    users = _users_per_account()
    accounts = [_account_id(i) for i in range(1, ACCOUNTS + 1)]
    account_weights = [rng.paretovariate(1.2) for _ in accounts]
    names = [name for name, _ in EVENT_NAMES]
    name_weights = [weight for _, weight in EVENT_NAMES]
    step_ms = EVENTS_SPAN * 1000 / count
    end_ms = (EVENTS_START + EVENTS_SPAN) * 1000 - 1
    done = 0
    while done < count:
        size = min(CHUNK, count - done)
        picked = rng.choices(range(ACCOUNTS), weights=account_weights, k=size)
        events = rng.choices(names, weights=name_weights, k=size)
        for account, event in zip(picked, events, strict=True):
            jitter = rng.randrange(-1_800_000, 1_800_000)  # +- 30 minutes around the even spread
            at = min(
                end_ms, max(EVENTS_START * 1000, int(EVENTS_START * 1000 + done * step_ms) + jitter)
            )
            user = (
                None
                if event in SYSTEM_EVENTS
                else f"{accounts[account]}-u{rng.randrange(users[account]) + 1}"
            )
            message_id = f"ajs-{rng.getrandbits(128):032x}"
            yield accounts[account], user, event, _iso(at), _properties(rng, event), message_id
            done += 1


def write_events(count: int, jsonl: Path, csv_path: Path) -> None:
    """The same events as JSONL and as CSV (properties as a JSON string), written line by line."""
    tmp_j, tmp_c = jsonl.with_suffix(".tmp-jsonl"), csv_path.with_suffix(".tmp-csv")
    with (
        tmp_j.open("w", encoding="utf-8", buffering=1 << 20) as fj,
        tmp_c.open("w", newline="", encoding="utf-8", buffering=1 << 20) as fc,
    ):
        out_c = csv.writer(fc)
        out_c.writerow(EVENT_COLUMNS)
        for account_id, user_id, event, timestamp, properties, message_id in generate_events(count):
            row = {
                "account_id": account_id,
                "user_id": user_id,
                "event": event,
                "timestamp": timestamp,
                "properties": properties,
                "message_id": message_id,
            }
            fj.write(json.dumps(row) + "\n")
            out_c.writerow(
                (account_id, user_id or "", event, timestamp, json.dumps(properties), message_id)
            )
    tmp_j.replace(jsonl)
    tmp_c.replace(csv_path)


def prepare_inputs(events: int) -> Inputs:
    """Generate the input files into bench/.data/, unless they are there with the expected rows."""
    DATA.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(
        accounts=DATA / "accounts.csv",
        subscriptions=DATA / "subscriptions.csv",
        events_jsonl=DATA / f"events-{events}.jsonl",
        events_csv=DATA / f"events-{events}.csv",
        events_renamed=DATA / f"events-{events}-renamed.jsonl",
        events=events,
    )
    stamp_file = DATA / "stamp.json"
    stamp_ok = stamp_file.is_file() and json.loads(stamp_file.read_text()) == _stamp()
    if not stamp_ok:
        for old in DATA.iterdir():
            if old.is_file():
                old.unlink()
        stamp_file.write_text(json.dumps(_stamp()) + "\n")

    have = (_rows(inputs.accounts, header=True), _rows(inputs.subscriptions, header=True))
    if have == (ACCOUNTS, ACCOUNTS):
        print(f"inputs: {ACCOUNTS:,} accounts and subscriptions exist, not regenerated")
    else:
        started = time.perf_counter()
        write_accounts(inputs.accounts, inputs.subscriptions)
        print(
            f"inputs: wrote {ACCOUNTS:,} accounts and subscriptions "
            f"({time.perf_counter() - started:.1f} s)"
        )

    have = (_rows(inputs.events_jsonl, header=False), _rows(inputs.events_csv, header=True))
    if have == (events, events):
        print(f"inputs: {events:,} events (JSONL and CSV) exist, not regenerated")
    else:
        started = time.perf_counter()
        write_events(events, inputs.events_jsonl, inputs.events_csv)
        print(
            f"inputs: wrote {events:,} events as JSONL and CSV "
            f"({time.perf_counter() - started:.1f} s)"
        )

    # Scenario (d) needs the same bytes under another path; a hard link costs no space.
    inputs.events_renamed.unlink(missing_ok=True)
    try:
        os.link(inputs.events_jsonl, inputs.events_renamed)
    except OSError:
        shutil.copyfile(inputs.events_jsonl, inputs.events_renamed)
    return inputs


# --- running the CLI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished `upsell` process: exit status, wall time, peak RSS and its output."""

    args: tuple[str, ...]
    returncode: int
    wall_seconds: float
    peak_rss_kib: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system time of the process, from the same wait4
    tree_peak_kib: int = 0  # with `poll`: the peak of the summed RSS of it and its descendants

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024

    def summary(self) -> dict[str, Any] | None:
        """The `--json` output, or None when there is none."""
        try:
            parsed = json.loads(self.stdout)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def failure(self) -> str:
        tail = self.stderr.strip().splitlines()[-5:]
        return f"`upsell {' '.join(self.args)}` exited with {self.returncode}: " + " / ".join(tail)


def child_env(database_url: str | None) -> dict[str, str]:
    """The environment for `upsell`: ours without UPSELL_* settings, plus the database if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSELL_")}
    if database_url:
        env["UPSELL_DATABASE_URL"] = database_url
    return env


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    program: Sequence[str] | None = None,
    poll: bool = False,
) -> Run:
    """Run `upsell ARGS` (or `program ARGS`) and measure it: wall time, and the child's own peak
    RSS from wait4.

    Output goes to temporary files (no pipes to drain), so the child can be reaped with `os.wait4`,
    which returns that process's resource usage; ru_maxrss is in KiB on Linux. With `poll`, a thread
    also samples the summed RSS of the child and its descendants in /proc twice a second (PySpark's
    JVM is a child of the child, which wait4 does not count); the peak is the higher of the two.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        command = [*(program or [str(UPSELL)]), *args]
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=dict(env))
        poller = _TreeRss(proc.pid) if poll else None
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if poller is not None:
            poller.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Run(
            args=tuple(args),
            returncode=proc.returncode,
            wall_seconds=wall,
            peak_rss_kib=max(usage.ru_maxrss, poller.peak_kib if poller else 0),
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            tree_peak_kib=poller.peak_kib if poller else 0,
        )


class _TreeRss(threading.Thread):
    """Polls the summed VmRSS of a process and its descendants (KiB) until stopped."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kib = pid, every, 0
        self._done = threading.Event()
        self.start()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(self.every):
            parents: dict[int, int] = {}
            rss: dict[int, int] = {}
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                pid = int(stat.parent.name)
                parents[pid] = int(fields[1])  # ppid; fields[21] is rss in pages
                rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
            tree: set[int] = set()
            new = {self.pid}
            while new:
                tree |= new
                new = {pid for pid, ppid in parents.items() if ppid in new} - tree
            self.peak_kib = max(self.peak_kib, sum(rss.get(pid, 0) for pid in tree))


# --- scenarios -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One measured scenario: what ran, what it did, and whether that was right."""

    label: str
    title: str
    run: Run | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def within_target(self) -> bool:
        return self.run is not None and self.run.peak_rss_mib < MEMORY_TARGET_MIB

    @property
    def passed(self) -> bool:
        return self.skipped is not None or (
            self.run is not None and not self.problems and self.within_target
        )


def check_import(run: Run, expected: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Problems with an `upsell import --json` run, given the counts expected per kind of file."""
    if run.returncode != 0:
        return [run.failure()]
    summary = run.summary()
    if summary is None:
        return [f"`upsell {' '.join(run.args)}` printed no JSON summary on stdout"]
    files = {entry.get("kind"): entry for entry in summary.get("files", [])}
    problems = []
    for kind, counts in expected.items():
        entry = files.get(kind)
        if entry is None:
            problems.append(f"no {kind} file in the JSON summary")
            continue
        for key, value in counts.items():
            if entry.get(key) != value:
                problems.append(f"{kind}: {key} is {entry.get(key)!r}, expected {value:,}")
    return problems


def setup_workspace(folder: Path, inputs: Inputs, env: Mapping[str, str]) -> list[str]:
    """Init a workspace and import catalog, accounts and subscriptions (not measured)."""
    init = run_cli(["init", str(folder)], env)
    if init.returncode != 0:
        return [init.failure()]
    run = run_cli(
        [
            "import",
            "-w",
            str(folder),
            "--catalog",
            str(CATALOG),
            "--accounts",
            str(inputs.accounts),
            "--subscriptions",
            str(inputs.subscriptions),
            "--json",
        ],
        env,
    )
    every = {"read": ACCOUNTS, "new": ACCOUNTS, "rejected": 0}
    problems = check_import(run, {"accounts": every, "subscriptions": every})
    return [f"setup: {p}" for p in problems]


def measure_events(
    outcome: Outcome,
    folder: Path,
    events: Path,
    env: Mapping[str, str],
    expected: Mapping[str, int],
) -> None:
    args = ["import", "-w", str(folder), "--events", str(events), "--json"]
    print(f"  {outcome.label}) {outcome.title} ...", flush=True)
    run = run_cli(args, env)
    outcome.run = run
    outcome.problems += check_import(run, {"events": expected})
    summary = run.summary() or {}
    outcome.counts = next(iter(summary.get("files", [])), {})
    state = "ok" if not outcome.problems else "FAILED: " + "; ".join(outcome.problems)
    print(
        f"     {run.wall_seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} MiB, "
        f"read {outcome.counts.get('read', '?')}, new {outcome.counts.get('new', '?')}: {state}",
        flush=True,
    )


def sqlite_size(folder: Path) -> str:
    size = sum(p.stat().st_size for p in folder.glob("upsell.db*") if p.is_file())
    return f"{size / 2**20:,.0f} MiB"


def run_sqlite(inputs: Inputs, tmp: Path) -> list[Outcome]:
    n = inputs.events
    env = child_env(None)
    fresh = {"read": n, "new": n, "unchanged": 0, "rejected": 0, "resumed_after_row": 0}
    a = Outcome("a", f"{n:,} events, JSONL, into SQLite (fresh workspace)")
    c = Outcome("c", "the same JSONL file again (resumes at the watermark)")
    d = Outcome("d", "the same JSONL under another file name (full de-duplication)")
    b = Outcome("b", f"{n:,} events, CSV, into SQLite (fresh workspace)")

    ws_a = tmp / "sqlite-jsonl"
    problems = setup_workspace(ws_a, inputs, env)
    if problems:
        for outcome in (a, c, d):
            outcome.problems += problems
    else:
        measure_events(a, ws_a, inputs.events_jsonl, env, fresh)
        a.notes.append(f"database after the import: {sqlite_size(ws_a)}")
        if a.problems:
            for outcome in (c, d):
                outcome.problems.append("not run: scenario (a) failed")
        else:
            nothing = {"read": 0, "new": 0, "unchanged": 0, "rejected": 0, "resumed_after_row": n}
            measure_events(c, ws_a, inputs.events_jsonl, env, nothing)
            again = {"read": n, "new": 0, "unchanged": n, "rejected": 0, "resumed_after_row": 0}
            measure_events(d, ws_a, inputs.events_renamed, env, again)
    shutil.rmtree(ws_a, ignore_errors=True)

    ws_b = tmp / "sqlite-csv"
    problems = setup_workspace(ws_b, inputs, env)
    if problems:
        b.problems += problems
    else:
        measure_events(b, ws_b, inputs.events_csv, env, fresh)
        b.notes.append(f"database after the import: {sqlite_size(ws_b)}")
    shutil.rmtree(ws_b, ignore_errors=True)
    return [a, b, c, d]


def run_postgresql(inputs: Inputs, tmp: Path) -> tuple[Outcome, str | None]:
    """Scenario (e); returns it and the server's version (None when not run)."""
    n = inputs.events
    outcome = Outcome("e", f"{n:,} events, JSONL, into PostgreSQL (fresh schema)")
    name, base = next(
        ((name, os.environ[name]) for name in DATABASE_ENVS if os.environ.get(name)), ("", "")
    )
    if not base:
        outcome.skipped = f"skipped: set {' or '.join(DATABASE_ENVS)} to a PostgreSQL URL"
        print(f"  e) {outcome.skipped}")
        return outcome, None

    import sqlalchemy as sa  # only needed here; the project's own dependency

    schema = f"bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    version: str | None = None
    created = False
    try:
        with admin.connect() as conn:
            version = str(conn.exec_driver_sql("SHOW server_version").scalar_one())
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            created = True
        url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        shown = sa.make_url(base).render_as_string(hide_password=True)
        outcome.notes.append(f"database from {name}: {shown}, schema {schema} (dropped after)")
        env = child_env(url.render_as_string(hide_password=False))
        folder = tmp / "postgresql"
        problems = setup_workspace(folder, inputs, env)
        if problems:
            outcome.problems += problems
        else:
            fresh = {"read": n, "new": n, "unchanged": 0, "rejected": 0, "resumed_after_row": 0}
            measure_events(outcome, folder, inputs.events_jsonl, env, fresh)
    except sa.exc.SQLAlchemyError as exc:
        outcome.problems.append(f"PostgreSQL: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        print(f"  e) FAILED: {outcome.problems[-1]}")
    finally:
        if created:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
    return outcome, version


# --- the simulator -------------------------------------------------------------------------------


@dataclass
class SimOutcome:
    """One measured `upsell simulate` run: its size, the process, and what it wrote."""

    label: str
    accounts: int
    target_seconds: float | None  # None: the issue sets no time for this size
    run: Run | None = None
    rows: dict[str, int] = field(default_factory=dict)
    file_bytes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return self.rows.get("events", 0)

    @property
    def total_bytes(self) -> int:
        return sum(self.file_bytes.values())

    @property
    def within_target(self) -> bool:
        return self.run is not None and (
            self.target_seconds is None or self.run.wall_seconds < self.target_seconds
        )

    @property
    def passed(self) -> bool:
        return self.run is not None and not self.problems and self.within_target


def check_simulation(run: Run, folder: Path, accounts: int) -> tuple[dict[str, int], list[str]]:
    """The row counts of simulation.json, and problems with the run or the files it wrote."""
    if run.returncode != 0:
        return {}, [run.failure()]
    missing = [name for name in SIM_FILES if not (folder / name).is_file()]
    if missing:
        return {}, [f"{', '.join(missing)} not written"]
    try:
        manifest = json.loads((folder / "simulation.json").read_text("utf-8"))
        rows = {str(k): int(v) for k, v in manifest["rows"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return {}, [f"simulation.json has no row counts: {type(exc).__name__}: {exc}"]
    problems = []
    if rows.get("accounts") != accounts:
        problems.append(
            f"simulation.json: {rows.get('accounts')!r} accounts, expected {accounts:,}"
        )
    if not rows.get("events"):
        problems.append("simulation.json: no events")
    if rows.get("subscriptions", 0) < 1:
        problems.append("simulation.json: no subscriptions")
    return rows, problems


def measure_simulation(outcome: SimOutcome, env: Mapping[str, str]) -> None:
    """Run `upsell simulate` into bench/.data/simulate-N/, record it, then delete the folder."""
    folder = DATA / f"simulate-{outcome.accounts}"
    shutil.rmtree(folder, ignore_errors=True)
    DATA.mkdir(parents=True, exist_ok=True)
    args = [
        "simulate",
        "--out",
        str(folder),
        "--accounts",
        str(outcome.accounts),
        "--months",
        str(SIM_MONTHS),
    ]
    print(f"  {outcome.label}) {outcome.accounts:,} accounts, {SIM_MONTHS} months ...", flush=True)
    try:
        run = run_cli(args, env)
        outcome.run = run
        outcome.rows, problems = check_simulation(run, folder, outcome.accounts)
        outcome.problems += problems
        outcome.file_bytes = {
            name: (folder / name).stat().st_size for name in SIM_FILES if (folder / name).is_file()
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    state = "ok" if not outcome.problems else "FAILED: " + "; ".join(outcome.problems)
    rate = outcome.events / run.wall_seconds if run.wall_seconds else 0.0
    print(
        f"     {run.wall_seconds:.1f} s (CPU {run.cpu_seconds:.1f} s), "
        f"peak RSS {run.peak_rss_mib:.0f} MiB, {outcome.events:,} events ({rate:,.0f}/s), "
        f"{outcome.total_bytes / 2**20:,.1f} MiB written: {state}",
        flush=True,
    )


def run_simulator(large_accounts: int) -> list[SimOutcome]:
    """The demo size, then `large_accounts` (skipped when it is the demo size)."""
    env = child_env(None)
    outcomes = [SimOutcome("demo", SIM_DEMO_ACCOUNTS, SIM_DEMO_TARGET_SECONDS)]
    if large_accounts != SIM_DEMO_ACCOUNTS:
        target = SIM_LARGE_TARGET_SECONDS if large_accounts >= SIM_TARGET_ACCOUNTS else None
        outcomes.append(SimOutcome("large", large_accounts, target))
    for outcome in outcomes:
        measure_simulation(outcome, env)
    return outcomes


# --- signals -------------------------------------------------------------------------------------

SIGNALS_HEADING = "## Signals"
SIGNALS_DEFAULT_ACCOUNTS = 1_000_000
SIGNALS_CHECK_ACCOUNTS = 2_000  # the small company the hand-written SQL is checked on
SPARK_DEFAULT_ACCOUNTS = 100_000
SQL_TARGET_RATIO = 1.5  # issue 4: the engine within 1.5x of the same features in hand-written SQL
SIGNAL_TABLES = (
    "accounts",
    "metrics",
    "features",
    "signals",
    "usage",
    "co_adoption",
    "upgrade_patterns",
)
STEP = (sys.executable, str(Path(__file__).resolve()), "--signals-step")


def signals_data(accounts: int) -> tuple[Path, dict[str, Any]]:
    """A simulated company in bench/.data/signals-N/ (`upsell simulate`, 12 months, seed 0), reused
    while its simulation.json says it is that one; the folder and its simulation.json."""
    folder = DATA / f"signals-{accounts}"
    wanted = {"accounts": accounts, "months": SIM_MONTHS, "model": "saas", "seed": 0}
    try:
        manifest = json.loads((folder / "simulation.json").read_text("utf-8"))
        if {k: manifest["config"][k] for k in wanted} == wanted:
            return folder, manifest
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(folder, ignore_errors=True)
    print(f"  simulating {accounts:,} accounts into {folder} (not measured) ...", flush=True)
    args = ["simulate", "--out", str(folder), "--accounts", str(accounts), "--months", "12"]
    run = run_cli(args, child_env(None))
    if run.returncode != 0:
        raise SystemExit(run.failure())
    return folder, json.loads((folder / "simulation.json").read_text("utf-8"))


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """`with _timed(timings, name):` records the seconds the block took."""
    started = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - started


def signals_step(kind: str, data: Path, work: Path, backend: str) -> dict[str, Any]:
    """One measurement, run by bench/run.py in a child process of its own (`--signals-step`).

    kind: `full` (roll up all events, then the signal tables), `base` (roll up the events before the
    last day: the set-up of `incremental`), `incremental` (roll up the last day into a new part of
    work/rollups, then the signal tables), `sql` (signals_sql.py: the same rollups and tables as
    hand-written SQL) or `domain` (AccountSignals and opportunities per account from the tables in
    work/tables/, written by `full`). The tables go to work/tables/ once the clock has stopped.
    """
    import pyarrow.parquet as pq

    from upsell.config.catalog import load_catalog
    from upsell.engine.signals import KEYS, as_of_instant, build_signals
    from upsell.store.arrow import ACCOUNT_SCHEMA, SUBSCRIPTION_SCHEMA

    catalog = load_catalog(data / "catalog.yaml").catalog
    as_of = date.fromisoformat(json.loads((data / "simulation.json").read_text("utf-8"))["end"])
    last_day = as_of_instant(as_of - timedelta(days=1))
    events = data / "events.parquet"
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def arrow(name: str, schema: Any) -> Any:  # the store's shape of a simulator file
        return pq.read_table(data / f"{name}.parquet", columns=schema.names).cast(schema)

    if kind == "domain":
        return domain_step(work, catalog, as_of, arrow("subscriptions", SUBSCRIPTION_SCHEMA))
    if kind == "sql":
        import signals_sql  # bench/signals_sql.py, next to this file

        con = signals_sql.connect()
        with _timed(timings, "rollup"):
            signals_sql.rollup(con, events, work / "usage.parquet", work / "users.parquet")
        tables = signals_sql.signals(
            con,
            accounts=data / "accounts.parquet",
            subscriptions=data / "subscriptions.parquet",
            usage=work / "usage.parquet",
            users=work / "users.parquet",
            catalog=catalog,
            as_of=as_of,
            timings=timings,
        )
    else:
        from upsell.engine.backends import Backend
        from upsell.engine.rollups import Rollups, RollupSpec

        engine = Backend(backend)
        rollups = Rollups(work / "rollups")
        with _timed(timings, "rollup"):
            e = engine.read_parquet([events], "events")
            e = e.select("account_id", "user_id", "event", "timestamp", "properties")
            if kind == "incremental":
                e = e.filter(e.timestamp >= last_day)
            else:
                rollups.reset()
                e = e.filter(e.timestamp < last_day) if kind == "base" else e
            spec = RollupSpec.from_catalog(catalog)
            rollups.add(engine, e, spec, watermark=f"{kind}-{as_of}", events_read=0)
        if kind == "base":
            return {"seconds": time.perf_counter() - started, "timings": timings}
        with _timed(timings, "inputs"):
            exprs = build_signals(
                engine,
                accounts=engine.table(arrow("accounts", ACCOUNT_SCHEMA), "accounts"),
                subscriptions=engine.table(arrow("subscriptions", SUBSCRIPTION_SCHEMA), "subs"),
                usage=rollups.usage(engine),
                users=rollups.users(engine),
                catalog=catalog,
                as_of=as_of,
            )
        tables = {}
        for name in exprs.names():  # what signals.execute does, one table at a time
            with _timed(timings, name):
                tables[name] = engine.arrow(getattr(exprs, name).order_by(list(KEYS[name])))
    seconds = time.perf_counter() - started
    (work / "tables").mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, work / "tables" / f"{name}.parquet")
    rows = {name: table.num_rows for name, table in tables.items()}
    return {"seconds": seconds, "timings": timings, "rows": rows}


def domain_step(work: Path, catalog: Any, as_of: date, subscriptions: Any) -> dict[str, Any]:
    """Per account: pipeline.account_signals, then find_opportunities (when it exists)."""
    import pyarrow.parquet as pq

    from upsell import pipeline
    from upsell.domain import opportunities

    tables = {name: pq.read_table(work / "tables" / f"{name}.parquet") for name in SIGNAL_TABLES}
    find = getattr(opportunities, "find_opportunities", None)
    population = pipeline.population(tables)
    accounts = found = 0
    build = rules = 0.0
    signals = pipeline.account_signals(tables, subscriptions, catalog, as_of)
    while True:
        t0 = time.perf_counter()
        account = next(signals, None)
        t1 = time.perf_counter()
        build += t1 - t0
        if account is None:
            break
        accounts += 1
        if find is not None:
            found += len(find(account, catalog, population=population))
            rules += time.perf_counter() - t1
    timings = {"account_signals": build, "find_opportunities": rules}
    result = {"seconds": build + rules, "timings": timings, "accounts": accounts}
    return result | ({"opportunities": found} if find is not None else {})


@dataclass
class SignalRun:
    """One measured step: the child process and what it reported (JSON on its last line)."""

    label: str
    title: str
    size: str
    run: Run | None = None
    load: float = 0.0  # the machine's 1-minute load average when the run started
    times: list[float] = field(default_factory=list)  # work seconds of every repeat
    result: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return float(self.result.get("seconds", 0.0))

    def timing(self, name: str) -> float | None:
        return self.result.get("timings", {}).get(name)


def measure_step(
    label: str, title: str, size: str, kind: str, data: Path, work: Path, backend: str = "duckdb"
) -> SignalRun:
    print(f"  {label}) {title}, {size} ...", flush=True)
    step = SignalRun(label, title, size)
    work.mkdir(parents=True, exist_ok=True)
    step.load = os.getloadavg()[0]
    step.run = run_cli(
        [kind, str(data), str(work), backend], child_env(None), program=STEP, poll=True
    )
    if step.run.returncode != 0:
        step.problems.append(step.run.failure())
        print(f"     FAILED: {step.problems[-1]}", flush=True)
        return step
    step.result = json.loads(step.run.stdout.strip().splitlines()[-1])
    steps = ", ".join(f"{k} {v:.1f}" for k, v in step.result["timings"].items())
    print(
        f"     {step.run.wall_seconds:.1f} s wall (work {step.seconds:.1f} s: {steps}), "
        f"peak RSS {step.run.peak_rss_mib:,.0f} MiB",
        flush=True,
    )
    return step


def compare_tables(first: SignalRun, second: SignalRun, a: Path, b: Path) -> list[str]:
    """signals_sql.differences between the tables two steps wrote (a, b: their work folders)."""
    if first.problems or second.problems:
        return ["not compared: a run failed"]
    import pyarrow.parquet as pq
    import signals_sql

    def load(folder: Path) -> dict[str, Any]:
        return {n: pq.read_table(folder / "tables" / f"{n}.parquet") for n in SIGNAL_TABLES}

    return signals_sql.differences(load(a), load(b))


@dataclass
class SignalsReport:
    steps: list[SignalRun]
    checks: list[tuple[str, list[str]]]  # (what was compared, the differences found)
    facts: dict[str, Any]

    def step(self, label: str) -> SignalRun | None:
        return next((s for s in self.steps if s.label == label), None)

    @property
    def ratio(self) -> float | None:
        engine, sql = self.step("a"), self.step("c")
        if engine is None or sql is None or engine.problems or sql.problems:
            return None
        return engine.seconds / sql.seconds


def _faster(best: SignalRun | None, new: SignalRun) -> SignalRun:
    """The faster of two runs of one step, with every run's work seconds (a failed run wins)."""
    if best is None:
        new.times = [new.seconds]
        return new
    if best.problems:
        return best
    winner = new if new.problems or new.seconds < best.seconds else best
    winner.times = [*best.times, new.seconds]
    return winner


def run_signals(accounts: int, spark_accounts: int, repeat: int) -> SignalsReport:
    """The check at SIGNALS_CHECK_ACCOUNTS, then (a) to (e) at `accounts`, (d) at `spark_accounts`;
    (a) and (c) `repeat` times each, the fastest run of each reported.

    Everything is written under bench/.data/signals-work/, deleted at the end (the simulated
    companies in bench/.data/signals-N/ are kept for the next run).
    """
    work = DATA / "signals-work"
    shutil.rmtree(work, ignore_errors=True)
    steps: list[SignalRun] = []
    checks: list[tuple[str, list[str]]] = []

    small, _ = signals_data(SIGNALS_CHECK_ACCOUNTS)
    size = f"{SIGNALS_CHECK_ACCOUNTS:,} accounts"
    x = measure_step("check", "engine, DuckDB", size, "full", small, work / "check-engine")
    y = measure_step("check", "hand-written SQL", size, "sql", small, work / "check-sql")
    what = f"hand-written SQL against the engine at {size}"
    checks.append((what, compare_tables(x, y, work / "check-engine", work / "check-sql")))

    data, manifest = signals_data(accounts)
    rows = manifest["rows"]
    size = f"{rows['accounts']:,} accounts, {rows['events']:,} events"
    full = sql = None
    for _ in range(repeat):  # (a) and (c) in turn, so that both meet the same machine
        full = _faster(full, measure_step("a", "full rebuild, DuckDB", size, "full", data,
                                          work / "full"))  # fmt: skip
        sql = _faster(sql, measure_step("c", "hand-written DuckDB SQL", size, "sql", data,
                                        work / "sql"))  # fmt: skip
    assert full is not None and sql is not None
    steps += [full, sql]
    base = measure_step("base", "set-up of (b): rollups before the last day", size, "base",
                        data, work / "incremental")  # fmt: skip
    last_day = measure_step("b", "one-day incremental, DuckDB", size, "incremental", data,
                            work / "incremental")  # fmt: skip
    last_day.problems += [f"its set-up failed: {p}" for p in base.problems]
    steps.append(last_day)
    what = "the incremental run's tables against the full rebuild's"
    checks.append((what, compare_tables(full, last_day, work / "full", work / "incremental")))
    what = f"hand-written SQL against the engine at {rows['accounts']:,} accounts"
    checks.append((what, compare_tables(full, sql, work / "full", work / "sql")))

    if spark_accounts:
        from upsell.engine.backends import spark_unavailable

        reason = spark_unavailable()
        if reason:
            steps.append(SignalRun("d", "PySpark local", "-", problems=[f"not run: {reason}"]))
        else:
            spark_data, spark_manifest = signals_data(spark_accounts)
            n = spark_manifest["rows"]
            size = f"{n['accounts']:,} accounts, {n['events']:,} events"
            spark = measure_step("d", "full rebuild, PySpark local", size, "full", spark_data,
                                 work / "spark", "pyspark")  # fmt: skip
            duck = measure_step("d2", "full rebuild, DuckDB (for comparison)", size, "full",
                                spark_data, work / "spark-duckdb")  # fmt: skip
            steps += [spark, duck]
            what = f"PySpark against DuckDB at {n['accounts']:,} accounts"
            checks.append(
                (what, compare_tables(spark, duck, work / "spark", work / "spark-duckdb"))
            )

    if not full.problems:
        size = f"{rows['accounts']:,} accounts, the tables of (a)"
        steps.append(
            measure_step("e", "per-account domain step", size, "domain", data, work / "full")
        )

    facts = _signals_facts(data, manifest, work, base)
    shutil.rmtree(work, ignore_errors=True)
    return SignalsReport(steps, checks, facts)


def _signals_facts(
    data: Path, manifest: dict[str, Any], work: Path, base: SignalRun
) -> dict[str, Any]:
    """Input sizes for the report: files, the last day's events, the rollup parts."""
    import duckdb
    import pyarrow.parquet as pq

    as_of = date.fromisoformat(manifest["end"])
    last = (as_of - timedelta(days=1)).isoformat()
    events = data / "events.parquet"
    day_events = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{events}') "
        f"WHERE timestamp >= TIMESTAMPTZ '{last} 00:00:00+00'"
    ).fetchone()
    parts = {}
    for path in sorted((work / "full" / "rollups").glob("*.parquet")):
        parts[path.name] = (pq.ParquetFile(path).metadata.num_rows, path.stat().st_size)
    return {
        "rows": manifest["rows"],
        "start": manifest["config"]["start"],
        "as_of": as_of,
        "last_day": last,
        "last_day_events": day_events[0] if day_events else 0,
        "events_bytes": events.stat().st_size,
        "rollup_files": parts,
        "base_seconds": base.run.wall_seconds if base.run and not base.problems else None,
        "duckdb": duckdb.__version__,
    }


# --- the report ----------------------------------------------------------------------------------


def machine(pg_version: str | None, baseline: Run) -> list[tuple[str, str]]:
    commit = machine_commit()
    return [
        ("upsell", f"{baseline.stdout.strip() or 'unknown'}, commit {commit}"),
        ("CPUs (nproc)", f"{len(os.sched_getaffinity(0))} x {cpu_model()}"),
        ("memory", memory_total()),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("SQLite", sqlite3.sqlite_version),
        ("PostgreSQL server", pg_version or "not used"),
    ]


def _result_text(outcome: Outcome) -> str:
    if outcome.skipped:
        return outcome.skipped
    c = outcome.counts
    if c:
        text = f"{c.get('new', 0):,} new, {c.get('unchanged', 0):,} unchanged, {c.get('rejected', 0):,} rejected"
        if c.get("resumed_after_row"):
            text += f"; resumed after row {c['resumed_after_row']:,}"
    else:
        text = "no result"
    if outcome.problems:
        return f"**FAILED**: {text}; " + "; ".join(outcome.problems)
    return f"{text} (as expected)"


def render(
    outcomes: Sequence[Outcome],
    inputs: Inputs,
    baseline: Run,
    pg_version: str | None,
    started: datetime,
    total_seconds: float,
) -> str:
    ran = [o for o in outcomes if o.run is not None]
    over = [o.label for o in ran if not o.within_target]
    failed = [o.label for o in outcomes if o.problems]
    if not ran:
        verdict = "**Not checked**: no run completed."
    elif over:
        verdict = f"**Not met** by scenario {', '.join(over)}."
    else:
        verdict = f"**Met** by every run (highest peak: {max(o.run.peak_rss_mib for o in ran if o.run):.0f} MiB)."
    lines = [
        "# Benchmark: importing events",
        "",
        "Written by `bench/run.py`; do not edit by hand. Reproduce with `make bench` "
        "(a quick smoke run: `.venv/bin/python bench/run.py --events 20000 --sim-accounts 20000`).",
        "",
        f"Run on {started:%Y-%m-%d %H:%M} UTC; the whole benchmark took {total_seconds:.0f} s.",
        "",
        '**Target** (issue: "Import of 1 million events must not hold more than a few hundred MB of '
        f'memory (stream it)"): the peak RSS of the `upsell import` process stays below '
        f"{MEMORY_TARGET_MIB} MiB. {verdict}",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine(pg_version, baseline)),
        "",
        "## Input",
        "",
        f"Synthetic and deterministic (seed {SEED}, generated into `bench/.data/`): "
        f"{ACCOUNTS:,} accounts, one subscription each on a plan of `examples/catalog.yaml`, and "
        f"{inputs.events:,} Segment-style track events over 12 months "
        f"({len(EVENT_NAMES)} event names, heavy-tailed over the accounts) as JSONL "
        f"({inputs.events_jsonl.stat().st_size / 2**20:,.0f} MiB) and as CSV "
        f"({inputs.events_csv.stat().st_size / 2**20:,.0f} MiB).",
        "",
        "## Results",
        "",
        "Each row is one `upsell import -w DIR --events FILE --json` process; wall time and peak RSS "
        "are that process's own (`os.wait4`), including interpreter start-up. Catalog, accounts and "
        "subscriptions are imported beforehand in a separate, unmeasured step.",
        "",
        f"| scenario | rows read | wall s | rows/s | peak RSS MiB | < {MEMORY_TARGET_MIB} MiB | result |",
        "|---|--:|--:|--:|--:|:-:|---|",
    ]
    for o in sorted(outcomes, key=lambda o: o.label):
        if o.run is None:
            lines.append(f"| {o.label}) {o.title} | - | - | - | - | - | {_result_text(o)} |")
            continue
        read = o.counts.get("read")
        rate = f"{read / o.run.wall_seconds:,.0f}" if read else "-"
        lines.append(
            f"| {o.label}) {o.title} | {read if read is None else f'{read:,}'} | "
            f"{o.run.wall_seconds:,.1f} | {rate} | {o.run.peak_rss_mib:,.0f} | "
            f"{'yes' if o.within_target else '**no**'} | {_result_text(o)} |"
        )
    lines += [
        "",
        f"For scale: `upsell --version` alone peaks at {baseline.peak_rss_mib:.0f} MiB RSS "
        f"({baseline.wall_seconds:.1f} s) on this machine.",
        "",
    ]
    for o in sorted(outcomes, key=lambda o: o.label):
        lines += [f"- ({o.label}) {note}" for note in o.notes]
    if failed:
        lines += ["", f"**Failed checks**: scenario {', '.join(failed)} (see the result column)."]
    return "\n".join(lines) + "\n"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f}"


def render_simulator(
    outcomes: Sequence[SimOutcome],
    baseline: Run,
    command: str,
    started: datetime,
    total_seconds: float,
) -> str:
    """The "## Simulator" section of RESULTS.md (it runs to the end of the file)."""
    over = [o for o in outcomes if o.run is not None and not o.within_target]
    failed = [o for o in outcomes if o.problems]
    large = next((o for o in outcomes if o.label == "large"), None)
    if any(o.run is None for o in outcomes):
        verdict = "**Not checked**: a run did not complete."
    elif over:
        verdict = "**Not met** by " + ", ".join(
            f"{o.accounts:,} accounts ({o.run.wall_seconds:,.0f} s)" for o in over if o.run
        )
        verdict += "."
    elif large is None or large.target_seconds is None:
        verdict = (
            f"**Met** at the demo size; the large target applies to {SIM_TARGET_ACCOUNTS:,} "
            "accounts and was not measured here (run with the default `--sim-accounts`)."
        )
    else:
        verdict = "**Met** by both sizes."
    commit = machine_commit()
    lines = [
        SIM_HEADING,
        "",
        "Written by `bench/run.py`; do not edit by hand. This section was produced by "
        f"`{command}` (`--only simulate` rewrites only this section) on {started:%Y-%m-%d %H:%M} "
        f"UTC, in {total_seconds:.0f} s, with {baseline.stdout.strip() or 'upsell'} at commit "
        f"{commit}, on {len(os.sched_getaffinity(0))} x {cpu_model()} with "
        f"{memory_total()} memory, Python {platform.python_version()}.",
        "",
        '**Targets** (issue: "1 million accounts and 100 million events must generate in minutes, '
        "not hours, in bounded memory (measure in bench/). The demo size (default 5,000 accounts, "
        f'12 months) generates in seconds."): the demo size in under {SIM_DEMO_TARGET_SECONDS} s, '
        f"{SIM_TARGET_ACCOUNTS:,} accounts in under {SIM_LARGE_TARGET_SECONDS // 60} minutes; "
        f"memory is reported (peak RSS), not held to a number. {verdict}",
        "",
        f"Each row is one `upsell simulate --out DIR --accounts N --months {SIM_MONTHS}` process "
        "(default model `saas`, seed 0, start 2025-11-01) writing into `bench/.data/`; wall time, "
        "CPU time (user + system) and peak RSS are that process's own (`os.wait4`), including "
        "interpreter start-up. Rows are read from the simulation.json it wrote; bytes are the five "
        "files it wrote (catalog.yaml, accounts, subscriptions and events Parquet, simulation.json), "
        "deleted after measuring.",
        "",
        "| size | accounts | wall s | CPU s | peak RSS MiB | subscription rows | events | events/s "
        "| events.parquet MiB | all files MiB (bytes) | result |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for o in outcomes:
        if o.run is None:
            lines.append(
                f"| {o.label} | {o.accounts:,} | - | - | - | - | - | - | - | - | not run |"
            )
            continue
        rate = f"{o.events / o.run.wall_seconds:,.0f}" if o.events else "-"
        events_bytes = o.file_bytes.get("events.parquet")
        if o.problems:
            result = "**FAILED**: " + "; ".join(o.problems)
        elif not o.within_target:
            result = f"**over** {o.target_seconds:,.0f} s"
        elif o.target_seconds is None:
            result = "ok (no time target at this size)"
        else:
            result = f"ok (< {o.target_seconds:,.0f} s)"
        lines.append(
            f"| {o.label} | {o.accounts:,} | {o.run.wall_seconds:,.1f} | {o.run.cpu_seconds:,.1f} "
            f"| {o.run.peak_rss_mib:,.0f} | {o.rows.get('subscriptions', 0):,} | {o.events:,} "
            f"| {rate} | {'-' if events_bytes is None else _mib(events_bytes)} "
            f"| {_mib(o.total_bytes)} ({o.total_bytes:,}) | {result} |"
        )
    lines += [
        "",
        f"For scale: `upsell --version` alone peaks at {baseline.peak_rss_mib:.0f} MiB RSS "
        f"({baseline.wall_seconds:.1f} s) on this machine.",
        "",
    ]
    for o in outcomes:
        if o.file_bytes:
            sizes = ", ".join(f"{name} {size:,}" for name, size in o.file_bytes.items())
            lines.append(f"- {o.label}: bytes per file: {sizes}")
    if failed:
        lines += ["", f"**Failed checks**: {', '.join(o.label for o in failed)} (see the table)."]
    return "\n".join(lines) + "\n"


STEP_ORDER = (
    "rollup",
    "inputs",
    "inputs (plan, periods)",
    "metrics (temp table)",
    *SIGNAL_TABLES,
)


def render_signals(
    report: SignalsReport, baseline: Run, command: str, started: datetime, total_seconds: float
) -> str:
    """The "## Signals" section of RESULTS.md."""
    f = report.facts
    rows = f["rows"]
    ratio = report.ratio
    if ratio is None:
        verdict = "**Not checked**: a run failed."
    else:
        a, c = report.step("a"), report.step("c")
        assert a is not None and c is not None
        met = "**Met**" if ratio <= SQL_TARGET_RATIO else "**Not met**"
        a_rollup, c_rollup = a.timing("rollup") or 0.0, c.timing("rollup") or 0.0
        verdict = (
            f"{met}: the engine took {a.seconds:,.1f} s, the hand-written SQL {c.seconds:,.1f} s: "
            f"**{ratio:.2f}x** (the rollups {a_rollup:,.1f} s against {c_rollup:,.1f} s, "
            f"{a_rollup / c_rollup:.2f}x; the signal tables {a.seconds - a_rollup:,.1f} s against "
            f"{c.seconds - c_rollup:,.1f} s, {(a.seconds - a_rollup) / (c.seconds - c_rollup):.2f}x)."
        )
    import pyspark  # the versions, for the record

    lines = [
        SIGNALS_HEADING,
        "",
        "Written by `bench/run.py`; do not edit by hand. This section was produced by "
        f"`{command}` (`--only signals` rewrites only this section) on {started:%Y-%m-%d %H:%M} "
        f"UTC, in {total_seconds:,.0f} s, with {baseline.stdout.strip() or 'upsell'} at commit "
        f"{machine_commit()}, on {len(os.sched_getaffinity(0))} x {cpu_model()} with "
        f"{memory_total()} memory, Python {platform.python_version()}, DuckDB {f['duckdb']}, "
        f"PySpark {pyspark.__version__}.",
        "",
        f'**Target** (issue 4, "Measure"): signals for 1 million accounts and ~100 million events, '
        f"the engine on DuckDB within {SQL_TARGET_RATIO}x of the same features written by hand as "
        f"DuckDB SQL ([signals_sql.py](signals_sql.py)), both from the events to the seven signal "
        f"tables in Arrow. {verdict}",
        "",
        f"Input: `upsell simulate --accounts {rows['accounts']} --months 12` (model `saas`, seed 0, "
        f"in `bench/.data/`): {rows['accounts']:,} accounts, {rows['subscriptions']:,} "
        f"subscription rows and {rows['events']:,} events ({_mib(f['events_bytes'])} MiB of "
        f"Parquet) from {f['start']} to {f['last_day']}. Signals are as of {f['as_of']}, the day "
        f"after the last simulated day, which holds {f['last_day_events']:,} events.",
        "",
        "Each row is one child process of `bench/run.py --signals-step ...`: wall time and CPU time "
        "are that process's (`os.wait4`; for PySpark, the Python driver's without its JVM), with "
        "interpreter start-up and imports; peak RSS is the "
        "higher of its `ru_maxrss` and the summed RSS of it and its children polled in /proc (the "
        "JVM of PySpark); *work s* is measured inside, from reading the inputs to the last table in "
        "Arrow (what the engine/SQL ratio uses). Rollups are written to Parquet, as the engine keeps "
        "them; the tables are written to Parquet after the clock stops, to be compared. *load* is "
        "the machine's 1-minute load average when the run started (other work on the machine "
        "slows a run down). (a) and (c) ran in turn, more than once when *work s* lists several "
        "runs: the row is the fastest run of each.",
        "",
        "| run | data | wall s | work s | rollup s | signals s | CPU s | peak RSS MiB | load | result |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for s in report.steps:
        if s.run is None or s.problems:
            problems = "; ".join(s.problems) or "not run"
            lines.append(
                f"| {s.label}) {s.title} | {s.size} | - | - | - | - | - | - | - | {problems} |"
            )
            continue
        rollup = s.timing("rollup")
        signals = s.seconds - (rollup or 0.0)
        if s.label == "e":
            n = s.result["accounts"]
            result = f"{n / s.seconds:,.0f} accounts/s: " + ", ".join(
                f"{k} {v:,.1f} s ({n / v:,.0f}/s)" for k, v in s.result["timings"].items() if v
            )
            if "opportunities" in s.result:
                result += f"; {s.result['opportunities']:,} opportunities"
            else:
                result += "; find_opportunities does not exist yet"
        else:
            result = ", ".join(f"{k} {v:,}" for k, v in s.result.get("rows", {}).items())
            result = f"rows: {result}"
        work = f"{s.seconds:,.1f}"
        if len(s.times) > 1:
            work += " (of " + ", ".join(f"{t:,.1f}" for t in s.times) + ")"
        lines.append(
            f"| {s.label}) {s.title} | {s.size} | {s.run.wall_seconds:,.1f} | {work} "
            f"| {'-' if rollup is None else f'{rollup:,.1f}'} "
            f"| {'-' if s.label == 'e' else f'{signals:,.1f}'} | {s.run.cpu_seconds:,.1f} "
            f"| {s.run.peak_rss_mib:,.0f} | {s.load:.1f} | {result} |"
        )
    if f["base_seconds"] is not None:
        lines += [
            "",
            f"(b) adds the last day's {f['last_day_events']:,} events as a second part to rollups "
            f"that hold every event before it (built by an unmeasured set-up step, "
            f"{f['base_seconds']:,.0f} s), then computes the signals over both parts merged.",
        ]
    parts = ", ".join(
        f"{name} {n:,} rows ({_mib(size)} MiB)" for name, (n, size) in f["rollup_files"].items()
    )
    lines += ["", f"Rollups of (a): {parts}."]
    spark, duck = report.step("d"), report.step("d2")
    if spark and duck and spark.seconds and duck.seconds and spark.size != report.steps[0].size:
        usage = sum(n for name, (n, _) in f["rollup_files"].items() if name.startswith("usage"))
        lines += [
            "",
            f"(d) runs at a smaller size than (a): at that size PySpark local already takes "
            f"{spark.seconds / duck.seconds:,.1f}x DuckDB's time, and its back end collects each "
            f"rollup to the driver to write it (`Backend.write_parquet`): the usage rollup alone is "
            f"{usage:,} rows at the full size.",
        ]
    lines.append("")

    timed = [s for s in report.steps if s.result.get("timings") and s.label != "e"]
    lines += [
        "### Where the time goes",
        "",
        "Seconds per step inside each run: the rollups (both Parquet files), then each table "
        "executed to Arrow in turn (`inputs` builds the Ibis expressions and loads accounts and "
        "subscriptions; the SQL materialises the plan, billing periods and metrics as temporary "
        "tables first, and its usage table reuses the metrics).",
        "",
        "| step | " + " | ".join(f"{s.label}) {s.title}" for s in timed) + " |",
        "|---|" + "--:|" * len(timed),
    ]
    for name in STEP_ORDER:
        cells = [s.timing(name) for s in timed]
        if any(c is not None for c in cells):
            shown = " | ".join("-" if c is None else f"{c:,.1f}" for c in cells)
            lines.append(f"| {name} | {shown} |")
    lines.append("| **total** | " + " | ".join(f"**{s.seconds:,.1f}**" for s in timed) + " |")
    lines += ["", "### Checks", ""]
    for what, found in report.checks:
        if found:
            lines.append(f"- {what}: **{len(found)} differences**: " + "; ".join(found))
        else:
            lines.append(
                f"- {what}: the same seven tables, row for row (keys equal, doubles within a "
                "relative 1e-9, everything else equal, nulls included)."
            )
    return "\n".join(lines) + "\n"


DECISIONS_HEADING = "## Decisions"  # bench/decisions.py's HEADING
METRICS_HEADING = "## Metrics"  # bench/metrics.py's HEADING
SECTIONS = {
    "simulate": SIM_HEADING,
    "signals": SIGNALS_HEADING,
    "decisions": DECISIONS_HEADING,
    "metrics": METRICS_HEADING,
}


def split_results(text: str) -> dict[str, str]:
    """RESULTS.md by section: "import" (everything before the first other heading), "simulate",
    "signals", "decisions" and "metrics" (each from its heading to the next section's; absent when
    not there)."""
    starts = sorted(
        (match.start(), name)
        for name, heading in SECTIONS.items()
        if (match := re.search(rf"^{re.escape(heading)}\s*$", text, flags=re.MULTILINE))
    )
    ends = [start for start, _ in starts[1:]] + ([len(text)] if starts else [])
    parts = {"import": text[: starts[0][0] if starts else len(text)]}
    parts |= {name: text[start:end] for (start, name), end in zip(starts, ends, strict=True)}
    return parts


def join_results(parts: Mapping[str, str]) -> str:
    ordered = [parts.get(name, "") for name in ("import", *SECTIONS)]
    return "\n\n".join(part.strip("\n") for part in ordered if part.strip()) + "\n"


NO_IMPORT_RESULTS = """# Benchmark: importing events

Not measured yet: run `make bench` (or `.venv/bin/python bench/run.py --only import`).
"""


# --- metrics -------------------------------------------------------------------------------------

METRICS_DEFAULT_ACCOUNTS = 1_000_000
METRICS_SPARK_DEFAULT_ACCOUNTS = 100_000
METRICS_STEP = (sys.executable, str(Path(__file__).resolve()), "--metrics-step")


def measure_metrics(kind: str, data: Path, work: Path, backend: str) -> Run:
    """One step of bench/metrics.py in a child process (`--metrics-step`), measured like the
    signals' steps: wall time, CPU time, and the peak RSS of it and its children (the JVM)."""
    args = [kind, str(data), str(work), backend]
    return run_cli(args, child_env(None), program=METRICS_STEP, poll=True)


# --- main ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        metavar="N",
        help=f"events to generate and import (default {DEFAULT_EVENTS:,})",
    )
    parser.add_argument(
        "--sim-accounts",
        type=int,
        default=SIM_DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the large `upsell simulate` run (default {SIM_DEFAULT_ACCOUNTS:,}; "
        f"the demo size, {SIM_DEMO_ACCOUNTS:,}, is always measured too)",
    )
    parser.add_argument(
        "--signals-accounts",
        type=int,
        default=SIGNALS_DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the signals section (default {SIGNALS_DEFAULT_ACCOUNTS:,})",
    )
    parser.add_argument(
        "--spark-accounts",
        type=int,
        default=SPARK_DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the PySpark run of the signals section (default "
        f"{SPARK_DEFAULT_ACCOUNTS:,}; 0 skips it)",
    )
    parser.add_argument(
        "--signals-repeat",
        type=int,
        default=2,
        metavar="N",
        help="runs of the engine's full rebuild and of the hand-written SQL, in turn; the fastest "
        "of each is compared (default 2)",
    )
    parser.add_argument(
        "--only",
        choices=("import", "simulate", "signals", "decisions", "metrics"),
        help="run one section only; the other sections of the existing results file are kept",
    )
    parser.add_argument(
        "--decisions-accounts",
        type=int,
        default=DECISIONS_DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the simulated company of the decisions section (default "
        f"{DECISIONS_DEFAULT_ACCOUNTS:,}, the demo company)",
    )
    parser.add_argument(
        "--decisions-weeks",
        type=int,
        default=DECISIONS_DEFAULT_WEEKS,
        metavar="W",
        help=f"weekly runs replayed by the decisions section (default {DECISIONS_DEFAULT_WEEKS})",
    )
    parser.add_argument(
        "--metrics-accounts",
        type=int,
        default=METRICS_DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the subscription history of the metrics section (default "
        f"{METRICS_DEFAULT_ACCOUNTS:,})",
    )
    parser.add_argument(
        "--metrics-spark-accounts",
        type=int,
        default=METRICS_SPARK_DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the PySpark runs of the metrics section (default "
        f"{METRICS_SPARK_DEFAULT_ACCOUNTS:,}; 0 skips them)",
    )
    parser.add_argument("--signals-step", nargs=4, help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--metrics-step", nargs=4, help=argparse.SUPPRESS)  # a child process
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        metavar="FILE",
        help="where to write the results (default bench/RESULTS.md)",
    )
    args = list(sys.argv[1:] if argv is None else argv)
    options = parser.parse_args(args)
    if options.signals_step:
        kind, data, work, backend = options.signals_step
        print(json.dumps(signals_step(kind, Path(data), Path(work), backend)))
        return 0
    if options.metrics_step:
        import metrics  # bench/metrics.py, next to this file

        kind, data, work, backend = options.metrics_step
        print(json.dumps(metrics.step(kind, Path(data), Path(work), backend)))
        return 0
    if options.events < 1:
        parser.error("--events must be at least 1")
    if options.sim_accounts < 1:
        parser.error("--sim-accounts must be at least 1")
    if options.signals_accounts < 1 or options.signals_repeat < 1 or options.spark_accounts < 0:
        parser.error(
            "--signals-accounts and --signals-repeat must be at least 1, --spark-accounts at least 0"
        )
    if options.decisions_accounts < 1 or options.decisions_weeks < 1:
        parser.error("--decisions-accounts and --decisions-weeks must be at least 1")
    if options.metrics_accounts < 1 or options.metrics_spark_accounts < 0:
        parser.error("--metrics-accounts must be at least 1, --metrics-spark-accounts at least 0")
    if not UPSELL.is_file():
        print(f"error: {UPSELL} is missing: run `make bench` (it installs .venv)", file=sys.stderr)
        return 2

    try:
        existing = options.results.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    parts = split_results(existing)
    if not parts["import"].strip():
        parts["import"] = NO_IMPORT_RESULTS
    command = shlex.join([".venv/bin/python", "bench/run.py", *args])
    started = time.perf_counter()
    baseline = run_cli(["--version"], child_env(None))
    print(
        f"upsell: {baseline.stdout.strip()}; start-up alone peaks at {baseline.peak_rss_mib:.0f} MiB"
    )
    failures: list[str] = []

    if options.only in (None, "import"):
        started_at = datetime.now(UTC)
        section_started = time.perf_counter()
        inputs = prepare_inputs(options.events)
        with tempfile.TemporaryDirectory(prefix="upsell-bench-") as name:
            tmp = Path(name)
            print("SQLite:")
            outcomes = run_sqlite(inputs, tmp)
            print("PostgreSQL:")
            pg, pg_version = run_postgresql(inputs, tmp)
            outcomes.append(pg)
        parts["import"] = render(
            outcomes,
            inputs,
            baseline,
            pg_version,
            started_at,
            time.perf_counter() - section_started,
        )
        for o in outcomes:
            if o.passed:
                continue
            reason = "; ".join(o.problems)
            if not reason and o.run is not None:
                reason = f"peak RSS {o.run.peak_rss_mib:.0f} MiB, over {MEMORY_TARGET_MIB} MiB"
            failures.append(f"import {o.label}) {o.title}: {reason}")

    if options.only in (None, "simulate"):
        started_at = datetime.now(UTC)
        section_started = time.perf_counter()
        print("Simulator:")
        sims = run_simulator(options.sim_accounts)
        parts["simulate"] = render_simulator(
            sims, baseline, command, started_at, time.perf_counter() - section_started
        )
        for s in sims:
            if s.passed:
                continue
            reason = "; ".join(s.problems)
            if not reason and s.run is not None:
                reason = f"{s.run.wall_seconds:,.0f} s, over {s.target_seconds:,.0f} s"
            failures.append(f"simulate {s.label} ({s.accounts:,} accounts): {reason}")

    if options.only in (None, "signals"):
        started_at = datetime.now(UTC)
        section_started = time.perf_counter()
        print("Signals:")
        report = run_signals(
            options.signals_accounts, options.spark_accounts, options.signals_repeat
        )
        parts["signals"] = render_signals(
            report, baseline, command, started_at, time.perf_counter() - section_started
        )
        failures += [f"signals {s.label}) {s.title}: {'; '.join(s.problems)}"
                     for s in report.steps if s.problems]  # fmt: skip
        failures += [f"signals check, {what}: {len(found)} differences"
                     for what, found in report.checks if found]  # fmt: skip
        if report.ratio is not None and report.ratio > SQL_TARGET_RATIO:
            failures.append(f"signals: the engine took {report.ratio:.2f}x the hand-written SQL")

    if options.only in (None, "decisions"):
        import decisions  # bench/decisions.py, next to this file

        print("Decisions:")
        parts["decisions"], found = decisions.section(
            options.decisions_accounts, options.decisions_weeks, command
        )
        failures += found

    if options.only in (None, "metrics"):
        import metrics  # bench/metrics.py, next to this file

        print("Metrics:")
        about = (
            f"with {baseline.stdout.strip() or 'upsell'} at commit {machine_commit()}, on "
            f"{len(os.sched_getaffinity(0))} x {cpu_model()} with {memory_total()} memory, "
            f"{metrics.versions()}"
        )
        parts["metrics"], found = metrics.section(
            options.metrics_accounts,
            options.metrics_spark_accounts,
            command,
            measure_metrics,
            about,
            log=lambda line: print(line, flush=True),
        )
        failures += found

    total = time.perf_counter() - started
    options.results.write_text(join_results(parts), encoding="utf-8")
    print(f"wrote {options.results} ({total:.0f} s in all)")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
