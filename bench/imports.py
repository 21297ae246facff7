"""Benchmark: importing one million usage events through the real `upsell` CLI.

What is measured, and why: the issue "Import of 1 million events must not hold more than a few hundred
MB of memory (stream it)" sets a memory target for `upsell import --events`. The DEVELOPERS rule is
that performance targets are checked here, by a benchmark, never by timed assertions in tests. So this
section runs the installed command line (`.venv/bin/upsell`) in a child process, exactly as a user
would, and records for each run the wall time and the peak resident set size (RSS) of that process,
taken from the kernel with `os.wait4` on the child's pid (bench/child.py). The target is a peak RSS
below `MEMORY_TARGET_MIB` ("a few hundred MB").

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
files hold the expected number of rows. `section` gives the import part of `bench/RESULTS.md` (all
of it before the "## Simulator" heading) and a failure when any run fails its check or exceeds the
memory target. Run it with `bench/run.py --only import [--events N]`.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import random
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from child import Run, child_env, for_scale, run_cli  # bench/child.py, next to this file
from host import DATA, ROOT, commit, cpus, memory_total

if TYPE_CHECKING:
    from upsell.columns import InputTable

CATALOG = ROOT / "examples" / "catalog.yaml"

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


def _header(table: InputTable) -> list[str]:
    """The columns of an input table (data-contract.md), in order: the files' header."""
    from upsell.columns import COLUMNS  # here: it loads pyarrow, which run.py does not need

    return [column.name for column in COLUMNS[table]]


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
        out_a.writerow(_header("accounts"))
        out_s.writerow(_header("subscriptions"))
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
        out_c.writerow(_header("events"))
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


# --- the report ----------------------------------------------------------------------------------


def machine(pg_version: str | None, baseline: Run) -> list[tuple[str, str]]:
    return [
        ("upsell", f"{baseline.stdout.strip() or 'unknown'}, commit {commit()}"),
        ("CPUs (nproc)", cpus()),
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
        for_scale(baseline),
        "",
    ]
    for o in sorted(outcomes, key=lambda o: o.label):
        lines += [f"- ({o.label}) {note}" for note in o.notes]
    if failed:
        lines += ["", f"**Failed checks**: scenario {', '.join(failed)} (see the result column)."]
    return "\n".join(lines) + "\n"


def section(events: int, baseline: Run) -> tuple[str, list[str]]:
    """Generate (or reuse) the inputs, run every scenario and render the import part of
    RESULTS.md; the failures for run.py. `baseline` is the measured `upsell --version`."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    inputs = prepare_inputs(events)
    with tempfile.TemporaryDirectory(prefix="upsell-bench-") as name:
        tmp = Path(name)
        print("SQLite:")
        outcomes = run_sqlite(inputs, tmp)
        print("PostgreSQL:")
        pg, pg_version = run_postgresql(inputs, tmp)
        outcomes.append(pg)
    text = render(outcomes, inputs, baseline, pg_version, started_at, time.perf_counter() - started)
    failures = []
    for o in outcomes:
        if o.passed:
            continue
        reason = "; ".join(o.problems)
        if not reason and o.run is not None:
            reason = f"peak RSS {o.run.peak_rss_mib:.0f} MiB, over {MEMORY_TARGET_MIB} MiB"
        failures.append(f"import {o.label}) {o.title}: {reason}")
    return text, failures
