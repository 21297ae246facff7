"""Benchmark: the decisions of the default playbooks against a naive baseline, on the simulator.

What is measured, and why: the issue asks "On the demo company, replay 26 weekly runs through the
simulator's environment interface and report, in bench/RESULTS.md, incremental MRR against the
simulator's counterfactual, contacts per account per month, and churn among contacted vs held-out
accounts — for the default playbooks and for a naive baseline ("every account at >=80 % of any
limit gets an email every week"). The default playbooks must earn more incremental MRR than the
naive baseline with fewer contacts."

For each policy, on a fresh `World` (the demo company: `SimConfig()`, same seed) and a fresh
workspace (SQLite, in a temporary folder under bench/.data/):

1. warm up: the world runs without offers until 26 weeks before its last day; its events (streamed
   to Parquet), accounts and subscriptions are imported into the workspace, like `upsell init
   --demo` does;
2. each week: decide as of `world.today` (the policy), `world.step(lines, days=7)`, write the
   step's accounts, subscriptions and events to new Parquet files and import them (accounts upsert,
   subscription rows update by key, events append);
3. at the end: `world.mrr()` against `world.counterfactual().mrr()` (the same seed replayed with no
   offers, so the difference is exactly what the offers caused).

Policies: "default" is `upsell.flows.offers.run_offers` on the workspace, with the default
playbooks, guardrails and holdout (the real in-app channel; email, CSM task and webhook are the
simulator's channels that report "sent", `upsell.simulator.replay.simulated_channels`: the bench
measures decisions, not SMTP). "naive" computes every account's signals with the same flow
(`upsell.flows.opportunities`: `refresh_rollups`, `signal_tables`, `account_signals`) and emails an
upsell to the next plan of the catalog to every account on a plan below the top with any metric at
80 % or more of its limit, every week, with the same 10 % holdout.

Usage: `.venv/bin/python bench/decisions.py --accounts 5000 --weeks 26` prints the markdown
section; `bench/run.py --only decisions` writes it into bench/RESULTS.md. upsell is imported by the
functions that use it, so that importing this module (bench/run.py does) stays cheap.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from host import DATA, commit, cpus  # bench/host.py, next to this file

if TYPE_CHECKING:
    from upsell.domain.catalog import Catalog
    from upsell.domain.playbooks import Playbooks
    from upsell.simulator.world import SimConfig
    from upsell.workspace import Workspace

HEADING = "## Decisions"
ISSUE = (
    "On the demo company, replay 26 weekly runs through the simulator's environment interface and "
    "report, in bench/RESULTS.md, incremental MRR against the simulator's counterfactual, contacts "
    "per account per month, and churn among contacted vs held-out accounts — for the default "
    'playbooks and for a naive baseline ("every account at >=80 % of any limit gets an email every '
    'week"). The default playbooks must earn more incremental MRR than the naive baseline with '
    "fewer contacts."
)
DEFAULT_ACCOUNTS = 5_000  # the demo company
DEFAULT_WEEKS = 26
NAIVE_UTILISATION = 0.8
DAYS_PER_MONTH = 365.25 / 12
POLICIES = ("default", "naive")
TITLES = {
    "default": "default playbooks",
    "naive": "naive baseline (>= 80 % of a limit: email the next plan, weekly)",
}

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Week:
    day: date
    contacts: int
    held_out: int
    accepted: int
    decide_seconds: float
    step_seconds: float
    import_seconds: float


@dataclass
class Replay:
    """One policy's 26 weeks, and what they did to the world."""

    policy: str
    config: SimConfig
    accounts: int  # signed up by the end
    weeks: list[Week] = field(default_factory=list)
    warmup_days: int = 0
    warmup_seconds: float = 0.0
    warmup_events: int = 0
    wall_seconds: float = 0.0
    world_mrr: float = 0.0
    counterfactual_mrr: float = 0.0
    #: incremental MRR of the accounts never contacted (the simulator promises exactly 0)
    uncontacted_delta: float = 0.0
    contacted: int = 0
    held_out: int = 0
    both: int = 0  # accounts contacted and held out (the holdout is by account: expected 0)
    #: (paid at first decision, of those paying nothing at the end, same in the counterfactual)
    churn_contacted: tuple[int, int, int] = (0, 0, 0)
    churn_held_out: tuple[int, int, int] = (0, 0, 0)
    playbooks: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    #: contacted accounts by the simulator's hidden response type
    contacted_types: Counter[str] = field(default_factory=Counter)
    accepted_offers: int = 0
    accepted_by_playbook: Counter[str] = field(default_factory=Counter)

    @property
    def incremental_mrr(self) -> float:
        return self.world_mrr - self.counterfactual_mrr

    @property
    def contacts(self) -> int:
        return sum(w.contacts for w in self.weeks)

    @property
    def accepted(self) -> int:
        return sum(w.accepted for w in self.weeks)

    @property
    def months(self) -> float:
        return len(self.weeks) * 7 / DAYS_PER_MONTH

    @property
    def contacts_per_account_month(self) -> float:
        return self.contacts / max(self.accounts, 1) / self.months

    @property
    def decide_median(self) -> float:
        return statistics.median(w.decide_seconds for w in self.weeks)


# --- the replay ----------------------------------------------------------------------------------


def _naive(
    ws: Workspace, catalog: Catalog, playbooks: Playbooks, day: date
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every account on a plan below the top with any metric at >= 80 % of its limit: an email
    upsell to the next plan (by tier), unless the account is in the holdout."""
    from upsell.domain.decisions import unit_hash
    from upsell.flows.opportunities import account_signals, refresh_rollups, signal_tables

    plans = sorted(catalog.plans, key=lambda p: p.tier)
    following = {a.id: b.id for a, b in itertools.pairwise(plans)}
    settings = playbooks.settings
    backend = ws.backend
    with ws.db.connect() as conn:
        rollups, _ = refresh_rollups(backend, conn=conn, catalog=catalog, folder=ws.rollups)
        tables, subscriptions = signal_tables(
            backend, conn=conn, catalog=catalog, rollups=rollups, as_of=day
        )
    lines: list[dict[str, Any]] = []
    held: list[str] = []
    for s in account_signals(tables, subscriptions, catalog, day):
        plan = s.plan_id
        if plan is None or plan not in following:
            continue
        if not any((m.utilisation or 0.0) >= NAIVE_UTILISATION for m in s.metrics.values()):
            continue
        if unit_hash(settings.holdout_key, s.account_id) < settings.holdout_share:
            held.append(s.account_id)
            continue
        nxt = following[plan]
        lines.append(
            {
                "account_id": s.account_id,
                "kind": "upsell",
                "offer_id": f"upsell:{plan}->{nxt}",
                "item_id": nxt,
                "from_item_id": plan,
                "channel": "email",
                "placement": "email",
                "trial_days": 0,
                "playbook": "naive",
                "message": {"expires_at": None},
            }
        )
    return lines, held


def replay(policy: str, accounts: int, weeks: int, folder: Path, log: Log = _stderr) -> Replay:
    """Replay `weeks` weekly runs of `policy` on a fresh world and workspace in `folder`."""
    import numpy as np
    import pyarrow.parquet as pq

    from upsell.flows.offers import run_offers
    from upsell.settings import Settings
    from upsell.simulator.population import RESPONSE_TYPES
    from upsell.simulator.replay import simulated_channels, warm_up
    from upsell.simulator.world import SimConfig, World
    from upsell.workspace import Workspace

    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    started = time.perf_counter()
    config = SimConfig(accounts=accounts)
    world = World(config)
    warmup = config.days - weeks * 7
    if warmup < 1:
        raise ValueError(f"{weeks} weeks do not fit in the {config.days} simulated days")
    data = folder / "data"
    # The data in SQLite in the folder, whatever UPSELL_DATABASE_URL says; the back end is DuckDB.
    ws = Workspace.create(folder / "workspace", Settings(database_url=None))
    out = Replay(policy=policy, config=config, accounts=0, warmup_days=warmup)
    try:
        load = warm_up(world, warmup, ws, data)
        catalog = load.catalog
        events = pq.ParquetFile(data / "events-w00.parquet").metadata.num_rows
        out.warmup_events = events
        out.warmup_seconds = time.perf_counter() - started
        log(
            f"  {policy}: warm-up {warmup} days, {events:,} events, imported in "
            f"{out.warmup_seconds:.1f} s"
        )
        playbooks = ws.playbooks(catalog)
        channels = simulated_channels()
        first_mrr: dict[int, float] = {}  # account -> its MRR when first decided for
        contacted: set[int] = set()
        held_out: set[int] = set()
        offered: dict[tuple[int, str], str] = {}  # (account, offer_id) -> playbook, for accepts
        for week in range(weeks):
            day = world.today
            t0 = time.perf_counter()
            if policy == "default":
                result = run_offers(ws, day, channels=channels)
                lines = result.lines
                held = [d.opportunity.account_id for d in result.held_out]
                out.refusals.update(r.guardrail for r in result.refusals)
            else:
                lines, held = _naive(ws, catalog, playbooks, day)
            t1 = time.perf_counter()
            mrr_now = world.mrr()
            decided = [world.account_index(line["account_id"]) for line in lines]
            held_idx = [world.account_index(a) for a in held]
            for k in (*decided, *held_idx):
                first_mrr.setdefault(k, float(mrr_now[k]))
            contacted.update(decided)
            held_out.update(held_idx)
            for line, k in zip(lines, decided, strict=True):
                out.playbooks[str(line.get("playbook"))] += 1
                out.channels[f"{line['channel']} {line.get('placement')}"] += 1
                out.kinds[line["kind"]] += 1
                offered[(k, str(line.get("offer_id")))] = str(line.get("playbook"))
            log_start = len(world.offer_log)
            step = world.step(lines, days=7)
            for _d, a, offer_id, _p, accepted in world.offer_log[log_start:]:
                if accepted:
                    out.accepted_by_playbook[offered.get((a, offer_id), "?")] += 1
            t2 = time.perf_counter()
            tag = f"w{week + 1:02d}"
            load("accounts", step.accounts, tag)
            load("subscriptions", step.subscriptions, tag)
            load("events", step.events, tag)
            t3 = time.perf_counter()
            out.weeks.append(
                Week(day, len(lines), len(held), step.offers_accepted, t1 - t0, t2 - t1, t3 - t2)
            )
            log(
                f"  {policy} week {week + 1:2d} ({day}): {len(lines):,} contacts, "
                f"{len(held):,} held out, {step.offers_accepted:,} accepted; decide "
                f"{t1 - t0:.1f} s, simulate {t2 - t1:.1f} s, import {t3 - t2:.1f} s"
            )
    finally:
        ws.close()  # and its back end
    end = world.mrr()
    other = world.counterfactual().mrr()
    out.accounts = int(world.joined.sum())
    out.world_mrr, out.counterfactual_mrr = float(end.sum()), float(other.sum())
    touched = np.zeros(len(end), bool)
    touched[list(contacted)] = True
    out.uncontacted_delta = float((end - other)[~touched].sum())
    out.contacted, out.held_out = len(contacted), len(held_out)
    out.both = len(contacted & held_out)
    out.accepted_offers = sum(1 for *_, accepted in world.offer_log if accepted)

    def churn(group: set[int]) -> tuple[int, int, int]:
        paid = [k for k in group if first_mrr[k] > 0]
        return (
            len(paid),
            sum(1 for k in paid if end[k] <= 0),
            sum(1 for k in paid if other[k] <= 0),
        )

    out.churn_contacted = churn(contacted)
    out.churn_held_out = churn(held_out)
    out.contacted_types = Counter(
        RESPONSE_TYPES[int(world.pop.response_type[k])][0] for k in contacted
    )
    out.wall_seconds = time.perf_counter() - started
    return out


def run(accounts: int, weeks: int, log: Log = _stderr) -> list[Replay]:
    """Both policies, each in a temporary folder under bench/.data/ (deleted afterwards)."""
    DATA.mkdir(parents=True, exist_ok=True)
    results = []
    for policy in POLICIES:
        log(f"Decisions, {policy}: {accounts:,} accounts, {weeks} weeks")
        folder = Path(tempfile.mkdtemp(prefix=f"decisions-{policy}-", dir=DATA))
        try:
            results.append(replay(policy, accounts, weeks, folder, log))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return results


# --- the report ----------------------------------------------------------------------------------


def verdict(default: Replay, naive: Replay) -> tuple[bool, str]:
    more = default.incremental_mrr > naive.incremental_mrr
    fewer = default.contacts < naive.contacts
    passed = more and fewer
    text = (
        f"**{'PASS' if passed else 'FAIL'}**: the default playbooks earned "
        f"{_money(default.incremental_mrr)} incremental MRR against the naive baseline's "
        f"{_money(naive.incremental_mrr)} ({'more' if more else 'not more'}), with "
        f"{default.contacts:,} contacts against {naive.contacts:,} "
        f"({'fewer' if fewer else 'not fewer'})."
    )
    return passed, text


def _money(value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _rate(part: int, whole: int) -> str:
    return f"{part:,} / {whole:,} ({part / whole:.1%})" if whole else f"{part:,} / 0 (-)"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counter.most_common()) or "none"


def render(results: Sequence[Replay], command: str, started: datetime, total_seconds: float) -> str:
    """The "## Decisions" section of RESULTS.md."""
    from upsell.simulator.world import SimConfig

    by = {r.policy: r for r in results}
    default, naive = by["default"], by["naive"]
    passed, says = verdict(default, naive)
    weeks = len(default.weeks)
    first, last = default.weeks[0].day, default.weeks[-1].day
    cols = [default, naive]
    config = default.config
    company = (
        "The demo company (`SimConfig()`"
        if config == SimConfig()
        else f"A company of another size than the demo's (`SimConfig(accounts={config.accounts})`"
    )

    def row(label: str, cell: Callable[[Replay], str]) -> str:
        return f"| {label} | " + " | ".join(cell(r) for r in cols) + " |"

    def churn_cell(c: tuple[int, int, int]) -> str:
        return _rate(c[1], c[0])

    def cf_cell(c: tuple[int, int, int]) -> str:
        return _rate(c[2], c[0])

    lines = [
        HEADING,
        "",
        "Written by `bench/run.py` (or `bench/decisions.py`); do not edit by hand. This section was "
        f"produced by `{command}` (`--only decisions` rewrites only this section) on "
        f"{started:%Y-%m-%d %H:%M} UTC, in {total_seconds:,.0f} s, at commit {commit()}, on "
        f"{cpus()}, Python {platform.python_version()}.",
        "",
        f"**Target** (issue: “{ISSUE}”)",
        "",
        says,
        "",
        f"{company}: {config.accounts:,} accounts, {default.accounts:,} of them signed up by the "
        f"end of its {config.months} months from {config.start}; model {config.model}, seed "
        f"{config.seed}), warmed up for {default.warmup_days} days without offers, then {weeks} weekly "
        f"runs as of {first} to {last} through `World.step(lines, days=7)`; each week's accounts, "
        "subscriptions and events are imported into the policy's own workspace (SQLite, DuckDB "
        "engine) before the next decision. Each policy has a fresh world and workspace; both "
        "worlds are compared with the same counterfactual (the same seed, no offers). Money is "
        "the catalog's base currency (USD), MRR as the simulator counts it (trialing rows 0).",
        "",
        "| | " + " | ".join(TITLES[r.policy] for r in cols) + " |",
        "|---|--:|--:|",
        row("MRR at the end", lambda r: _money(r.world_mrr)),
        row("counterfactual MRR (no offers)", lambda r: _money(r.counterfactual_mrr)),
        row(
            "**incremental MRR**",
            lambda r: (
                f"**{_money(r.incremental_mrr)}** ({r.incremental_mrr / r.counterfactual_mrr:+.2%})"
            ),
        ),
        row("incremental MRR of never-contacted accounts", lambda r: _money(r.uncontacted_delta)),
        row("offers accepted (trials included)", lambda r: f"{r.accepted:,}"),
        row("**contacts sent**", lambda r: f"**{r.contacts:,}**"),
        row(
            "contacts per account per month",
            lambda r: f"{r.contacts_per_account_month:.3f}",
        ),
        row(
            "contacts per contacted account per month",
            lambda r: f"{r.contacts / max(r.contacted, 1) / r.months:.2f}",
        ),
        row("accounts contacted", lambda r: f"{r.contacted:,}"),
        row("accounts held out", lambda r: f"{r.held_out:,}"),
        row("churn, contacted (paid at first decision)", lambda r: churn_cell(r.churn_contacted)),
        row("(the same contacted accounts, counterfactual)", lambda r: cf_cell(r.churn_contacted)),
        row("churn, held out (paid at first decision)", lambda r: churn_cell(r.churn_held_out)),
        row("(the same held-out accounts, counterfactual)", lambda r: cf_cell(r.churn_held_out)),
        row("wall time of the replay", lambda r: f"{r.wall_seconds:,.0f} s"),
        row(
            "warm-up (simulate + import)",
            lambda r: f"{r.warmup_seconds:,.1f} s ({r.warmup_events:,} events)",
        ),
        row(
            "deciding per week, median (max)",
            lambda r: f"{r.decide_median:.1f} s ({max(w.decide_seconds for w in r.weeks):.1f} s)",
        ),
        row(
            "simulating + importing per week, median",
            lambda r: (
                f"{statistics.median(w.step_seconds for w in r.weeks):.1f} s + "
                f"{statistics.median(w.import_seconds for w in r.weeks):.1f} s"
            ),
        ),
        "",
        "Definitions: a contact is a decision line handed to the world (held-out decisions are "
        "not); contacts per account per month = contacts / accounts signed up by the end / "
        f"{default.months:.2f} months ({weeks} weeks). An account is contacted when it got at "
        "least one line, held out when the holdout withheld at least one decision for it (the "
        "holdout is by account, `unit_hash(key, account_id) < 10 %`, so no account is both: "
        f"{default.both} and {naive.both} here). It churned when it paid (MRR > 0) when it was "
        "first decided for and pays nothing at the end; the rows in brackets count the same "
        "accounts in the counterfactual world (no offers). Incremental MRR is `world.mrr().sum() - "
        "world.counterfactual().mrr().sum()`; never-contacted accounts live the same life in "
        "both worlds, so their share must be 0.",
        "",
        "Default playbooks, totals over the weeks:",
        "",
        f"- offers by playbook: {_counts(default.playbooks)}",
        f"- accepted by playbook: {_counts(default.accepted_by_playbook)}",
        f"- offers by channel: {_counts(default.channels)}; by kind: {_counts(default.kinds)}",
        f"- refusals by guardrail: {_counts(default.refusals)}",
        "- contacted accounts by the simulator's hidden response type: default "
        f"{_counts(default.contacted_types)}; naive {_counts(naive.contacted_types)}",
        "",
        "| week | as of | default: contacts | held out | accepted | naive: contacts | held out "
        "| accepted |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for n, (a, b) in enumerate(zip(default.weeks, naive.weeks, strict=True), start=1):
        lines.append(
            f"| {n} | {a.day} | {a.contacts:,} | {a.held_out:,} | {a.accepted:,} | "
            f"{b.contacts:,} | {b.held_out:,} | {b.accepted:,} |"
        )
    lines.append("")
    lines.append(
        "Deterministic: every random draw of the simulator is a hash of (seed, purpose, account, "
        "day, n), and the holdout a hash of the account, so the same run gives the same numbers "
        "(the wall times aside)." + ("" if passed else " **The target is not met.**")
    )
    return "\n".join(lines) + "\n"


def section(accounts: int, weeks: int, command: str, log: Log = _stderr) -> tuple[str, list[str]]:
    """Run both policies and render the section; the failures (the verdict) for run.py."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    results = run(accounts, weeks, log)
    text = render(results, command, started_at, time.perf_counter() - started)
    passed, says = verdict(results[0], results[1])
    return text, [] if passed else [f"decisions: {says.replace('**', '')}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS, metavar="N")
    parser.add_argument("--weeks", type=int, default=DEFAULT_WEEKS, metavar="W")
    args = list(sys.argv[1:] if argv is None else argv)
    options = parser.parse_args(args)
    if options.accounts < 1 or options.weeks < 1:
        parser.error("--accounts and --weeks must be at least 1")
    command = shlex.join([".venv/bin/python", "bench/decisions.py", *args])
    text, failures = section(options.accounts, options.weeks, command)
    print(text)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
