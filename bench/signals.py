"""Benchmark: the engine's signals of 1,000,000 simulated accounts against hand-written SQL.

What is measured, and why: issue 4 ("Measure") asks for the signals of 1 million accounts and ~100
million events, the engine on DuckDB within 1.5x (`SQL_TARGET_RATIO`) of the same features written by
hand as DuckDB SQL. This section computes the engine's seven signal tables for a simulated company of
`--signals-accounts` (default 1,000,000) accounts, each run a child process of its own
(`bench/run.py --signals-step KIND DATA WORK BACKEND`, measured by bench/child.py), so that its wall
time, CPU time and peak RSS are its own:

a. full rebuild: roll up all events into a fresh rollup folder, then the signal tables to Arrow;
b. one-day incremental: roll up the last simulated day into a new part of rollups that already hold
   every event before it (built by an unmeasured set-up step), then the signal tables;
c. the same rollups and tables as hand-written DuckDB SQL (bench/signals_sql.py) on the same Parquet
   files; the target compares (a) with (c), the fastest of `--signals-repeat` runs of each;
d. the same pipeline on PySpark local at `--spark-accounts` (default 100,000; 0 skips it), with
   DuckDB at the same size beside it;
e. the per-account domain step over (a)'s tables: `upsell.flows.opportunities.account_signals`,
   then `find_opportunities` for each account.

Checks (a failure of the section when they do not hold): the SQL gives the same tables as the engine
on a 2,000-account company and at the full size, the incremental run the same tables as the full
rebuild, and PySpark the same as DuckDB. The simulated companies are written once to
`bench/.data/signals-N/` and reused; the runs' rollups and tables go to `bench/.data/signals-work/`,
deleted at the end. `section` gives the "## Signals" part of `bench/RESULTS.md`; see
bench/README.md ("Signals") for what the profile showed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from child import Run, child_env, run_cli, run_step  # bench/child.py, next to this file
from host import DATA, about
from simulator import MONTHS, mib, simulate_args  # bench/simulator.py: the company is simulated

HEADING = "## Signals"
DEFAULT_ACCOUNTS = 1_000_000
CHECK_ACCOUNTS = 2_000  # the small company the hand-written SQL is checked on
SPARK_DEFAULT_ACCOUNTS = 100_000
SQL_TARGET_RATIO = 1.5  # issue 4: the engine within 1.5x of the same features in hand-written SQL
TABLES = (
    "accounts",
    "metrics",
    "features",
    "signals",
    "usage",
    "co_adoption",
    "upgrade_patterns",
)
STEP_ORDER = (  # the rows of "Where the time goes"
    "rollup",
    "inputs",
    "inputs (plan, periods)",
    "metrics (temp table)",
    *TABLES,
)


# --- the data ------------------------------------------------------------------------------------


def company(accounts: int) -> tuple[Path, dict[str, Any]]:
    """A simulated company in bench/.data/signals-N/ (`upsell simulate`, 12 months, seed 0), reused
    while its simulation.json says it is that one; the folder and its simulation.json."""
    folder = DATA / f"signals-{accounts}"
    wanted = {"accounts": accounts, "months": MONTHS, "model": "saas", "seed": 0}
    try:
        manifest = json.loads((folder / "simulation.json").read_text("utf-8"))
        if {k: manifest["config"][k] for k in wanted} == wanted:
            return folder, manifest
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(folder, ignore_errors=True)
    print(f"  simulating {accounts:,} accounts into {folder} (not measured) ...", flush=True)
    run = run_cli(simulate_args(folder, accounts), child_env(None))
    if run.returncode != 0:
        raise SystemExit(run.failure())
    return folder, json.loads((folder / "simulation.json").read_text("utf-8"))


# --- the measured steps (child processes) --------------------------------------------------------


def step(kind: str, data: Path, work: Path, backend: str) -> dict[str, Any]:
    """One measurement, run by bench/run.py in a child process of its own (`--signals-step`).

    kind: `full` (roll up all events, then the signal tables), `base` (roll up the events before the
    last day: the set-up of `incremental`), `incremental` (roll up the last day into a new part of
    work/rollups, then the signal tables), `sql` (signals_sql.py: the same rollups and tables as
    hand-written SQL) or `domain` (AccountSignals and opportunities per account from the tables in
    work/tables/, written by `full`). The tables go to work/tables/ once the clock has stopped.
    """
    import pyarrow.parquet as pq
    import signals_sql  # bench/signals_sql.py, next to this file: the SQL of `sql`, and `timed`
    from signals_sql import timed

    from upsell.config.catalog import load_catalog
    from upsell.domain.calendar import day_start
    from upsell.engine.signals import KEYS, build_signals
    from upsell.store.arrow import ACCOUNT_SCHEMA, SUBSCRIPTION_SCHEMA

    catalog = load_catalog(data / "catalog.yaml").catalog
    as_of = date.fromisoformat(json.loads((data / "simulation.json").read_text("utf-8"))["end"])
    last_day = day_start(as_of - timedelta(days=1))
    events = data / "events.parquet"
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def arrow(name: str, schema: Any) -> Any:  # the store's shape of a simulator file
        return pq.read_table(data / f"{name}.parquet", columns=schema.names).cast(schema)

    if kind == "domain":
        return domain_step(work, catalog, as_of, arrow("subscriptions", SUBSCRIPTION_SCHEMA))
    if kind == "sql":
        con = signals_sql.connect()
        with timed(timings, "rollup"):
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
        with timed(timings, "rollup"):
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
        with timed(timings, "inputs"):
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
            with timed(timings, name):
                tables[name] = engine.arrow(getattr(exprs, name).order_by(list(KEYS[name])))
    seconds = time.perf_counter() - started
    (work / "tables").mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, work / "tables" / f"{name}.parquet")
    rows = {name: table.num_rows for name, table in tables.items()}
    return {"seconds": seconds, "timings": timings, "rows": rows}


def domain_step(work: Path, catalog: Any, as_of: date, subscriptions: Any) -> dict[str, Any]:
    """Per account: `account_signals` of upsell.flows.opportunities, then `find_opportunities`
    (the default policy) over the tables in work/tables/."""
    import pyarrow.parquet as pq

    from upsell.domain.opportunities import find_opportunities
    from upsell.flows.opportunities import account_signals, population

    tables = {name: pq.read_table(work / "tables" / f"{name}.parquet") for name in TABLES}
    stats = population(tables)
    accounts = found = 0
    build = rules = 0.0
    signals = account_signals(tables, subscriptions, catalog, as_of)
    while True:
        t0 = time.perf_counter()
        account = next(signals, None)
        t1 = time.perf_counter()
        build += t1 - t0
        if account is None:
            break
        accounts += 1
        found += len(find_opportunities(account, catalog, population=stats))
        rules += time.perf_counter() - t1
    timings = {"account_signals": build, "find_opportunities": rules}
    return {
        "seconds": build + rules,
        "timings": timings,
        "accounts": accounts,
        "opportunities": found,
    }


# --- the section ---------------------------------------------------------------------------------


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
    """Run `step(kind, ...)` in a child process (`bench/run.py --signals-step`) and read its
    result."""
    print(f"  {label}) {title}, {size} ...", flush=True)
    s = SignalRun(label, title, size)
    work.mkdir(parents=True, exist_ok=True)
    s.load = os.getloadavg()[0]
    s.run = run_step("--signals-step", kind, data, work, backend)
    if s.run.returncode != 0:
        s.problems.append(s.run.failure())
        print(f"     FAILED: {s.problems[-1]}", flush=True)
        return s
    s.result = json.loads(s.run.stdout.strip().splitlines()[-1])
    steps = ", ".join(f"{k} {v:.1f}" for k, v in s.result["timings"].items())
    print(
        f"     {s.run.wall_seconds:.1f} s wall (work {s.seconds:.1f} s: {steps}), "
        f"peak RSS {s.run.peak_rss_mib:,.0f} MiB",
        flush=True,
    )
    return s


def compare_tables(first: SignalRun, second: SignalRun, a: Path, b: Path) -> list[str]:
    """signals_sql.differences between the tables two steps wrote (a, b: their work folders)."""
    if first.problems or second.problems:
        return ["not compared: a run failed"]
    import pyarrow.parquet as pq
    import signals_sql

    def load(folder: Path) -> dict[str, Any]:
        return {n: pq.read_table(folder / "tables" / f"{n}.parquet") for n in TABLES}

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


def run(accounts: int, spark_accounts: int, repeat: int) -> SignalsReport:
    """The check at CHECK_ACCOUNTS, then (a) to (e) at `accounts`, (d) at `spark_accounts`;
    (a) and (c) `repeat` times each, the fastest run of each reported.

    Everything is written under bench/.data/signals-work/, deleted at the end (the simulated
    companies in bench/.data/signals-N/ are kept for the next run).
    """
    work = DATA / "signals-work"
    shutil.rmtree(work, ignore_errors=True)
    steps: list[SignalRun] = []
    checks: list[tuple[str, list[str]]] = []

    small, _ = company(CHECK_ACCOUNTS)
    size = f"{CHECK_ACCOUNTS:,} accounts"
    x = measure_step("check", "engine, DuckDB", size, "full", small, work / "check-engine")
    y = measure_step("check", "hand-written SQL", size, "sql", small, work / "check-sql")
    what = f"hand-written SQL against the engine at {size}"
    checks.append((what, compare_tables(x, y, work / "check-engine", work / "check-sql")))

    data, manifest = company(accounts)
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
            spark_data, spark_manifest = company(spark_accounts)
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

    facts = _facts(data, manifest, work, base)
    shutil.rmtree(work, ignore_errors=True)
    return SignalsReport(steps, checks, facts)


def _facts(data: Path, manifest: dict[str, Any], work: Path, base: SignalRun) -> dict[str, Any]:
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


def render(
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
        HEADING,
        "",
        "Written by `bench/run.py`; do not edit by hand. This section was produced by "
        f"`{command}` (`--only signals` rewrites only this section) on {started:%Y-%m-%d %H:%M} "
        f"UTC, in {total_seconds:,.0f} s, {about(baseline.stdout)}, Python "
        f"{platform.python_version()}, DuckDB {f['duckdb']}, PySpark {pyspark.__version__}.",
        "",
        f'**Target** (issue 4, "Measure"): signals for 1 million accounts and ~100 million events, '
        f"the engine on DuckDB within {SQL_TARGET_RATIO}x of the same features written by hand as "
        f"DuckDB SQL ([signals_sql.py](signals_sql.py)), both from the events to the seven signal "
        f"tables in Arrow. {verdict}",
        "",
        f"Input: `upsell simulate --accounts {rows['accounts']} --months {MONTHS}` (model `saas`, "
        "seed 0, "
        f"in `bench/.data/`): {rows['accounts']:,} accounts, {rows['subscriptions']:,} "
        f"subscription rows and {rows['events']:,} events ({mib(f['events_bytes'])} MiB of "
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
            result += f"; {s.result['opportunities']:,} opportunities"
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
        f"{name} {n:,} rows ({mib(size)} MiB)" for name, (n, size) in f["rollup_files"].items()
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


def section(
    accounts: int, spark_accounts: int, repeat: int, baseline: Run, command: str
) -> tuple[str, list[str]]:
    """Run every step and render the section; the failures for run.py (a failed run or check, or
    the engine over the target)."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    report = run(accounts, spark_accounts, repeat)
    text = render(report, baseline, command, started_at, time.perf_counter() - started)
    failures = [f"signals {s.label}) {s.title}: {'; '.join(s.problems)}"
                for s in report.steps if s.problems]  # fmt: skip
    failures += [f"signals check, {what}: {len(found)} differences"
                 for what, found in report.checks if found]  # fmt: skip
    if report.ratio is not None and report.ratio > SQL_TARGET_RATIO:
        failures.append(f"signals: the engine took {report.ratio:.2f}x the hand-written SQL")
    return text, failures
