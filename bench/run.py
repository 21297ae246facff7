"""Benchmarks: the performance targets of upsell's issues, measured and written to bench/RESULTS.md.

The DEVELOPERS rule is that performance targets are checked here, by a benchmark, never by timed
assertions in tests. This script is the driver (`make bench`); each section is a module of its own,
whose docstring says what it measures and why:

- import (bench/imports.py): 1,000,000 usage events through the real `upsell import`, JSONL and CSV
  into SQLite, a re-import, a de-duplication pass and PostgreSQL when configured; the peak RSS of
  each process against "a few hundred MB" (`--events`);
- simulate (bench/simulator.py): `upsell simulate` at the demo size and at 1,000,000 accounts
  against "in seconds" and "minutes, not hours" (`--sim-accounts`);
- signals (bench/signals.py, with bench/signals_sql.py): the engine's signal tables for 1,000,000
  simulated accounts against the same features as hand-written DuckDB SQL, target 1.5x, plus a
  one-day incremental run, PySpark and the per-account domain step (`--signals-accounts`,
  `--spark-accounts`, `--signals-repeat`);
- decisions (bench/decisions.py): 12 weekly runs of four policies (the default playbooks, a naive
  baseline, the seeds' rules and an oracle of the hidden response types) on the simulator's four
  business models, tuned and held-out seeds: incremental MRR, contacts, churn and the hidden types
  contacted, against issue 15's targets (`--decisions-accounts`, `--decisions-weeks`,
  `--decisions-models`, `--decisions-seeds`, `--decisions-held-out-seeds`, `--decisions-jobs`);
- metrics (bench/metrics.py): MRR movements, the monthly summary and NDR/GRR over a synthetic
  24-month subscription history of 1,000,000 accounts (`--metrics-accounts`,
  `--metrics-spark-accounts`);
- service (bench/service.py, with bench/service_load.py): Segment batches into a live `upsell
  serve` from a second process, on SQLite and PostgreSQL: events per second, track latency and the
  server's peak RSS against the issue's targets;
- messages (bench/messages.py, with bench/messages_load.py): `GET /v1/messages` on a live `upsell
  serve` at a steady 1,000 requests/s from a second process, on SQLite and PostgreSQL: latency
  percentiles against the p99 ≤ 5 ms target;
- triggers (bench/triggers.py): trigger → servable latency of real-time triggers in a live `upsell
  serve`, idle and under bench/service_load.py's load, on SQLite and PostgreSQL
  (`--triggers-accounts`, `--triggers-probes`).

Every measurement is a child process (bench/child.py) with its own wall time and peak RSS: the
installed `upsell` command line, or this script again with `--signals-step` or `--metrics-step` for
one step of the signals or metrics section (bench/signals.py's and bench/metrics.py's `step`). The
decisions section runs in this process, after the others have measured their children.

`--only import`, `--only simulate`, `--only signals`, `--only decisions`, `--only metrics`,
`--only service`, `--only messages` or `--only triggers` runs one section; the other sections of the existing results file are kept as
they are (the import results
are everything before the "## Simulator" heading, the other sections run from their heading to the
next). The exit status is 1 when a run fails its check or misses its target.

Usage: `make bench`, or `.venv/bin/python bench/run.py --events 20000 --sim-accounts 20000
--signals-accounts 20000 --spark-accounts 5000 --decisions-accounts 300 --decisions-weeks 2
--decisions-models saas --decisions-seeds 0 --decisions-held-out-seeds '' --metrics-accounts 20000 --metrics-spark-accounts 5000` for a quick smoke run; `.venv/bin/python
bench/run.py --only simulate` measures only the simulator. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# The sections, next to this file. Their modules import upsell's heavier parts only where a step
# or a section uses them, so that this process, and every step it runs as a child, starts small.
import decisions
import imports
import messages
import metrics
import service
import signals
import simulator
import triggers
from child import UPSELL, child_env, run_cli
from host import ROOT

RESULTS = ROOT / "bench" / "RESULTS.md"
SECTIONS = {  # the sections after the import results, in the file's order
    "simulate": simulator.HEADING,
    "signals": signals.HEADING,
    "decisions": decisions.HEADING,
    "metrics": metrics.HEADING,
    "service": service.HEADING,
    "messages": messages.HEADING,
    "triggers": triggers.HEADING,
}
NO_IMPORT_RESULTS = """# Benchmark: importing events

Not measured yet: run `make bench` (or `.venv/bin/python bench/run.py --only import`).
"""


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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--events",
        type=int,
        default=imports.DEFAULT_EVENTS,
        metavar="N",
        help=f"events to generate and import (default {imports.DEFAULT_EVENTS:,})",
    )
    p.add_argument(
        "--sim-accounts",
        type=int,
        default=simulator.DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the large `upsell simulate` run (default "
        f"{simulator.DEFAULT_ACCOUNTS:,}; the demo size, {simulator.DEMO_ACCOUNTS:,}, is always "
        "measured too)",
    )
    p.add_argument(
        "--signals-accounts",
        type=int,
        default=signals.DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the signals section (default {signals.DEFAULT_ACCOUNTS:,})",
    )
    p.add_argument(
        "--spark-accounts",
        type=int,
        default=signals.SPARK_DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the PySpark run of the signals section (default "
        f"{signals.SPARK_DEFAULT_ACCOUNTS:,}; 0 skips it)",
    )
    p.add_argument(
        "--signals-repeat",
        type=int,
        default=2,
        metavar="N",
        help="runs of the engine's full rebuild and of the hand-written SQL, in turn; the fastest "
        "of each is compared (default 2)",
    )
    p.add_argument(
        "--only",
        choices=("import", *SECTIONS),
        help="run one section only; the other sections of the existing results file are kept",
    )
    decisions.add_options(p, "decisions-")
    p.add_argument(
        "--metrics-accounts",
        type=int,
        default=metrics.DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the subscription history of the metrics section (default "
        f"{metrics.DEFAULT_ACCOUNTS:,})",
    )
    p.add_argument(
        "--metrics-spark-accounts",
        type=int,
        default=metrics.SPARK_DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the PySpark runs of the metrics section (default "
        f"{metrics.SPARK_DEFAULT_ACCOUNTS:,}; 0 skips them)",
    )
    p.add_argument(
        "--triggers-accounts",
        type=int,
        default=triggers.DEFAULT_ACCOUNTS,
        metavar="N",
        help=f"accounts of the company of the triggers section (default "
        f"{triggers.DEFAULT_ACCOUNTS:,})",
    )
    p.add_argument(
        "--triggers-probes",
        type=int,
        default=triggers.DEFAULT_PROBES,
        metavar="N",
        help=f"triggers measured per condition and database (default {triggers.DEFAULT_PROBES})",
    )
    # One step of a section, in a child process of its own (bench/child.py's run_step).
    p.add_argument("--signals-step", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--metrics-step", nargs=4, help=argparse.SUPPRESS)
    p.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        metavar="FILE",
        help="where to write the results (default bench/RESULTS.md)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    options = p.parse_args(args)
    for flag, step in (("signals_step", signals.step), ("metrics_step", metrics.step)):
        if getattr(options, flag):
            kind, data, work, backend = getattr(options, flag)
            print(json.dumps(step(kind, Path(data), Path(work), backend)))
            return 0
    if options.events < 1:
        p.error("--events must be at least 1")
    if options.sim_accounts < 1:
        p.error("--sim-accounts must be at least 1")
    if options.signals_accounts < 1 or options.signals_repeat < 1 or options.spark_accounts < 0:
        p.error(
            "--signals-accounts and --signals-repeat must be at least 1, --spark-accounts at least 0"
        )
    decisions.check_options(options, p.error, "decisions-")
    if options.metrics_accounts < 1 or options.metrics_spark_accounts < 0:
        p.error("--metrics-accounts must be at least 1, --metrics-spark-accounts at least 0")
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

    def wanted(name: str) -> bool:
        return options.only in (None, name)

    # In this order: the decisions run in this process and grow it, so they come after the
    # sections whose children are measured with wait4 (a child's ru_maxrss starts at its parent's).
    if wanted("import"):
        parts["import"], found = imports.section(options.events, baseline)
        failures += found
    if wanted("simulate"):
        print("Simulator:")
        parts["simulate"], found = simulator.section(options.sim_accounts, baseline, command)
        failures += found
    if wanted("signals"):
        print("Signals:")
        parts["signals"], found = signals.section(
            options.signals_accounts,
            options.spark_accounts,
            options.signals_repeat,
            baseline,
            command,
        )
        failures += found
    if wanted("decisions"):
        print("Decisions:")
        parts["decisions"], found = decisions.section(
            accounts=options.decisions_accounts,
            weeks=options.decisions_weeks,
            models=options.decisions_models,
            seeds=options.decisions_seeds,
            held_out_seeds=options.decisions_held_out_seeds,
            jobs=options.decisions_jobs,
            command=command,
        )
        failures += found
    if wanted("metrics"):
        print("Metrics:")
        parts["metrics"], found = metrics.section(
            options.metrics_accounts, options.metrics_spark_accounts, command, baseline
        )
        failures += found
    if wanted("service"):
        print("Service:")
        parts["service"], found = service.section(command)
        failures += found
    if wanted("messages"):
        print("Messages:")
        parts["messages"], found = messages.section(command)
        failures += found
    if wanted("triggers"):
        print("Triggers:")
        parts["triggers"], found = triggers.section(
            command, options.triggers_accounts, options.triggers_probes
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
