"""Benchmark: MRR movements and NDR for 1 million accounts with 24 months of subscription history.

What is measured, and why: issue 6 asks for "Movements and NDR for 1 million accounts with 24 months
of subscription history: time and peak memory in bench/RESULTS.md". The code under test is
`upsell.engine.movements`: `mrr_rows` (a Python pass giving each subscription row its MRR in
micro-units), `changes` and `monthly_summary` (Ibis, here on DuckDB) and `retention` (NDR/GRR over
any window).

The input is a synthetic subscription history, generated here with numpy (seeded, deterministic,
vectorised; not the simulator's `World`, which would also generate ~200 million events) on the
simulator's saas catalog (src/upsell/simulator/catalogs/saas.yaml), straight into
`bench/.data/metrics-N/subscriptions.parquet` (the store's SUBSCRIPTION_SCHEMA, unit prices as text
from the catalog's price books or its fx rates) and reused while its manifest says it is the same
data. Each account signs up between 2025-01-01 and 2026-12-31 (more of them later: linear growth),
some after a 14-day trial (a trialing row, then the paid row at the same instant, or the free plan,
or nothing), starts on free, basic, pro or enterprise (some yearly), and then meets, at monthly
rates that depend on its plan, upgrades, downgrades, a switch to yearly billing (the old row ends and
the new one starts at the same instant) and cancellation (every row ends, status canceled); some
cancelled accounts come back (a reactivation), on the plan they left or the one below. Paid basic
and pro periods may carry the extra_seats_5 add-on (quantity 1-3, sometimes changed: the row ends
and a row of the same item with another quantity starts); an account's life may take a product
(leadbooster, timetracker), until it cancels or on its own. Currencies USD, EUR, GBP, NOK.

The measurements are child processes of `bench/run.py --metrics-step KIND DATA WORK BACKEND`
(`step` below, run by bench/child.py), so that each one's wall time (`os.wait4`) and peak RSS (its
VmHWM; see `step`) are its own; `section` runs them and renders the "## Metrics" section of
RESULTS.md. Run it with `bench/run.py --only metrics [--metrics-accounts N]
[--metrics-spark-accounts N]`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from child import Run, run_step  # bench/child.py, next to this file
from host import DATA, ROOT, about

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# numpy and pyarrow are imported by the functions that run in the child processes (generating the
# data, the steps), so that bench/run.py, which imports this module, stays small: a child's
# ru_maxrss starts at its parent's peak (see `step`).

HEADING = "## Metrics"
ISSUE = (
    "Movements and NDR for 1 million accounts with 24 months of subscription history: time and "
    "peak memory in bench/RESULTS.md."
)
CATALOG = ROOT / "src" / "upsell" / "simulator" / "catalogs" / "saas.yaml"
DEFAULT_ACCOUNTS = 1_000_000
SPARK_DEFAULT_ACCOUNTS = 100_000
SEED = 20260601
GENERATOR_VERSION = 1  # bump when the generated data changes, so old files are regenerated

FIRST = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)  # exclusive: the history is 2025-01-01 to 2026-12-31
LAST = datetime(2026, 12, 31, tzinfo=UTC)
DAY = 86_400
MONTH = 30.436875 * DAY  # seconds in an average month: hazards below are per month

PLANS = ("free", "basic", "pro", "enterprise")
ITEMS = (*PLANS, "extra_seats_5", "leadbooster", "timetracker")
ADD_ON = ITEMS.index("extra_seats_5")
PRODUCTS = ((ITEMS.index("leadbooster"), 20.0), (ITEMS.index("timetracker"), 30.0))  # months
INTERVALS = ("month", "year")
MONTHLY, YEARLY = 0, 1
STATUSES = ("trialing", "active", "canceled")
TRIALING, ACTIVE, CANCELED = 0, 1, 2
CURRENCIES = ("USD", "EUR", "GBP", "NOK")
CURRENCY_SHARES = (0.55, 0.25, 0.12, 0.08)
START_PLAN_SHARES = (0.45, 0.32, 0.20, 0.03)  # accounts that start without a trial
YEARLY_SHARES = (0.0, 0.2, 0.3, 0.6)  # by plan
TRIAL_SHARE, TRIAL_DAYS, TRIAL_CONVERTS, TRIAL_TO_FREE = 0.40, 14, 0.65, 0.40
# Monthly hazards by plan: upgrade, downgrade, switch from monthly to yearly, cancel.
HAZARDS = (
    (0.080, 0.0, 0.0, 0.040),  # free (its cancellation changes no MRR)
    (0.020, 0.015, 0.012, 0.035),  # basic
    (0.008, 0.025, 0.012, 0.025),  # pro
    (0.0, 0.020, 0.0, 0.012),  # enterprise
)
REACTIVATES = (0.15, 0.35)  # share of cancelled accounts that come back: free, paid
REACTIVATION_DAYS = 120  # mean wait before coming back
MAX_REACTIVATIONS = 2
# Mean waits in months: for the add-on from the start of a basic/pro period, between its
# quantity changes, for a product from the start of an account's life, and before a product is
# cancelled on its own.
ADD_ON_MONTHS, QUANTITY_MONTHS, PRODUCT_KEPT_MONTHS = 8.0, 5.0, 15.0
PRODUCT_YEARLY = 0.15

# Retention is NDR/GRR over the trailing twelve months at each of the last 12 month-ends of the
# history (a month-end is the first instant of the next month).
MONTH_ENDS = [datetime(2026, m, 1, tzinfo=UTC) for m in range(2, 13)] + [END]


# --- the data ------------------------------------------------------------------------------------


def _print(line: str) -> None:
    print(line, flush=True)


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


class _Rows:
    """Subscription rows collected as numpy arrays (seconds; end -1 for an open row)."""

    NAMES = ("account", "item", "start", "end", "quantity", "interval", "status")

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, account: np.ndarray, item: Any, start: Any, end: Any, quantity: Any,
            interval: Any, status: Any) -> None:  # fmt: skip
        import numpy as np

        n = len(account)
        if n:
            values = (account, item, start, end, quantity, interval, status)
            self.parts.append(tuple(np.broadcast_to(np.asarray(v, np.int64), (n,)) for v in values))

    def arrays(self) -> dict[str, np.ndarray]:
        import numpy as np

        return {
            name: np.concatenate([p[k] for p in self.parts]) for k, name in enumerate(self.NAMES)
        }


def _wait(rng: np.random.Generator, months: float, n: int) -> np.ndarray:
    """Exponential waits of mean `months`, in whole seconds (at least one)."""
    import numpy as np

    return np.maximum(np.ceil(rng.exponential(months * MONTH, n)), 1).astype(np.int64)


def _price_texts(catalog: Any) -> list[str | None]:
    """Unit prices as text, flat by (item, interval, currency), as the simulator writes them."""
    out: list[str | None] = []
    for item in ITEMS:
        for interval in INTERVALS:
            for currency in CURRENCIES:
                money = catalog.price(item, interval, currency)
                out.append(None if money is None else f"{money.amount:.2f}")
    return out


def load_catalog() -> Any:
    from upsell.config.catalog import parse_catalog

    return parse_catalog(CATALOG.read_text("utf-8"), str(CATALOG)).catalog


def generate(accounts: int, seed: int = SEED) -> pa.Table:
    """The subscription history of `accounts` accounts (see the module's docstring)."""
    import numpy as np
    import pyarrow as pa

    from upsell.store.arrow import SUBSCRIPTION_SCHEMA

    yearly_shares, hazards = np.array(YEARLY_SHARES), np.array(HAZARDS)
    rng = np.random.default_rng([seed, accounts])
    n = accounts
    first, end = _epoch(FIRST), _epoch(END)
    span = end - first
    growth = 0.5  # sign-ups per day grow linearly, 1.5 times as many at the end as at the start
    u = rng.random(n)
    signup = first + ((np.sqrt(1 + u * growth * (2 + growth)) - 1) / growth * span).astype(np.int64)
    currency = rng.choice(len(CURRENCIES), n, p=CURRENCY_SHARES)
    rows = _Rows()
    plan_rows = _Rows()  # the plan rows again, to attach add-ons to
    segments = _Rows()  # account lives: (account, -, start, end or -1, -, -, status at the end)

    plan = np.full(n, -1, np.int64)
    interval = np.zeros(n, np.int64)
    at = np.zeros(n, np.int64)  # when the current plan row started
    alive = np.zeros(n, bool)

    # Trials: a trialing row on basic or pro, then the paid plan at the same instant, the free
    # plan, or nothing.
    trial = rng.random(n) < TRIAL_SHARE
    trial_plan = np.where(rng.random(n) < 0.6, 1, 2)
    trial_end = signup + TRIAL_DAYS * DAY
    outcome = rng.random(n)
    t = np.flatnonzero(trial)
    open_trial = trial_end[t] >= end
    rows.add(t, trial_plan[t], signup[t], np.where(open_trial, -1, trial_end[t]), 1, MONTHLY,
             TRIALING)  # fmt: skip
    t = t[~open_trial]
    paid = t[outcome[t] < TRIAL_CONVERTS]
    free = t[(outcome[t] >= TRIAL_CONVERTS) & (outcome[t] < TRIAL_CONVERTS + (1 - TRIAL_CONVERTS) * TRIAL_TO_FREE)]  # fmt: skip
    plan[paid], plan[free] = trial_plan[paid], 0
    interval[paid] = rng.random(len(paid)) < 0.15
    at[paid], at[free] = trial_end[paid], trial_end[free]
    alive[paid] = alive[free] = True
    direct = np.flatnonzero(~trial)
    plan[direct] = rng.choice(len(PLANS), len(direct), p=START_PLAN_SHARES)
    interval[direct] = rng.random(len(direct)) < yearly_shares[plan[direct]]
    at[direct] = signup[direct]
    alive[direct] = True
    life = at.copy()  # when the account's current life (first start or reactivation) began
    returns = np.zeros(n, np.int64)

    # Plan changes, one round at a time: each living account's next change (exponential waits at
    # its plan's rates); an account whose next change falls after the end keeps its row open.
    while True:
        idx = np.flatnonzero(alive)
        if not len(idx):
            break
        p = plan[idx]
        h = hazards[p].copy()
        h[:, 2] *= interval[idx] == MONTHLY
        total = h.sum(axis=1)
        wait = np.maximum(np.ceil(rng.exponential(1.0, len(idx)) / total * MONTH), 1)
        when = at[idx] + wait.astype(np.int64)
        stop = when >= end
        s = idx[stop]
        rows.add(s, plan[s], at[s], -1, 1, interval[s], ACTIVE)
        plan_rows.add(s, plan[s], at[s], -1, 1, interval[s], ACTIVE)
        segments.add(s, 0, life[s], -1, 0, 0, ACTIVE)
        alive[s] = False
        go, when, h, total = idx[~stop], when[~stop], h[~stop], total[~stop]
        kind = (rng.random(len(go))[:, None] * total[:, None] >= np.cumsum(h, axis=1)).sum(axis=1)
        kind = np.minimum(kind, 3)  # 0 upgrade, 1 downgrade, 2 to yearly, 3 cancel
        cancel = kind == 3
        status = np.where(cancel, CANCELED, ACTIVE)
        rows.add(go, plan[go], at[go], when, 1, interval[go], status)
        plan_rows.add(go, plan[go], at[go], when, 1, interval[go], status)
        change, k = go[~cancel], kind[~cancel]
        plan[change] += (k == 0).astype(np.int64) - (k == 1)
        interval[change] = np.where(k == 2, YEARLY, interval[change])
        interval[change[plan[change] == 0]] = MONTHLY
        at[change] = when[~cancel]
        # Cancellations; some come back later (a new life).
        gone, gone_at = go[cancel], when[cancel]
        segments.add(gone, 0, life[gone], gone_at, 0, 0, CANCELED)
        alive[gone] = False
        back_at = gone_at + np.ceil(rng.exponential(REACTIVATION_DAYS * DAY, len(gone))).astype(
            np.int64
        )
        chance = np.where(plan[gone] > 0, REACTIVATES[1], REACTIVATES[0])
        back = (rng.random(len(gone)) < chance) & (returns[gone] < MAX_REACTIVATIONS)
        back &= back_at < end
        b, b_at = gone[back], back_at[back]
        lower = (plan[b] > 1) & (rng.random(len(b)) < 0.4)
        plan[b] -= lower.astype(np.int64)
        at[b] = life[b] = b_at
        returns[b] += 1
        alive[b] = True

    # The extra_seats_5 add-on: bought during a paid basic/pro period (an exponential wait from
    # its start), it ends with its plan row; its quantity may change once or twice before (the row
    # ends and one of the same item with another quantity starts at the same instant).
    pr = plan_rows.arrays()
    a = {k: v[np.isin(pr["item"], (1, 2))] for k, v in pr.items()}
    a_end = np.where(a["end"] < 0, end, a["end"])
    a_start = a["start"] + _wait(rng, ADD_ON_MONTHS, len(a_end))
    a = {k: v[a_start < a_end] for k, v in a.items()}
    a_start, a_end = a_start[a_start < a_end], a_end[a_start < a_end]
    m = len(a_start)
    q0 = rng.choice([1, 2, 3], m, p=[0.6, 0.3, 0.1])
    q1 = np.where(q0 == 2, np.where(rng.random(m) < 0.5, 1, 3), 2)
    q2 = np.where(q1 == 2, np.where(rng.random(m) < 0.5, 1, 3), 2)
    c1 = a_start + _wait(rng, QUANTITY_MONTHS, m)
    c2 = c1 + _wait(rng, QUANTITY_MONTHS, m)
    k = (c1 < a_end).astype(np.int64) + (c2 < a_end)  # quantity changes: 0, 1 or 2
    for piece, (begin, quantity) in enumerate(((a_start, q0), (c1, q1), (c2, q2))):
        keep = k >= piece
        last = k == piece
        stop_at = np.where(last, a["end"], c1 if piece == 0 else c2)
        status = np.where(last, a["status"], ACTIVE)
        rows.add(a["account"][keep], ADD_ON, begin[keep], stop_at[keep], quantity[keep],
                 a["interval"][keep], status[keep])  # fmt: skip

    # Products: bought during an account's life (an exponential wait from its start), until the
    # life ends (cancellation) or cancelled on their own.
    seg = segments.arrays()
    seg_end = np.where(seg["end"] < 0, end, seg["end"])
    for item, months in PRODUCTS:
        p_start = seg["start"] + _wait(rng, months, len(seg_end))
        take = p_start < seg_end
        acct, p_start, p_end = seg["account"][take], p_start[take], seg_end[take]
        p_interval = (rng.random(len(acct)) < PRODUCT_YEARLY).astype(np.int64)
        own = p_start + _wait(rng, PRODUCT_KEPT_MONTHS, len(acct))
        alone = own < p_end
        p_stop = np.where(alone, own, seg["end"][take])
        p_status = np.where(alone, CANCELED, seg["status"][take])
        rows.add(acct, item, p_start, p_stop, 1, p_interval, p_status)

    r = rows.arrays()
    order = np.lexsort((r["item"], r["start"], r["account"]))
    r = {k: v[order] for k, v in r.items()}
    ids = pa.array([f"acct-{i:07d}" for i in range(n)], pa.string())
    prices = pa.array(_price_texts(load_catalog()), pa.string())
    cur = currency[r["account"]]
    price_index = (r["item"] * len(INTERVALS) + r["interval"]) * len(CURRENCIES) + cur
    us = pa.timestamp("us", tz="UTC")
    open_row = r["end"] < 0
    table = pa.table(
        [
            ids.take(pa.array(r["account"])),
            pa.array(ITEMS, pa.string()).take(pa.array(r["item"])),
            pa.array(r["start"] * 1_000_000, us),
            pa.array(np.where(open_row, 0, r["end"]) * 1_000_000, us, mask=open_row),
            pa.array(r["quantity"], pa.int64()),
            pa.array(INTERVALS, pa.string()).take(pa.array(r["interval"])),
            prices.take(pa.array(price_index)),
            pa.array(CURRENCIES, pa.string()).take(pa.array(cur)),
            pa.array(STATUSES, pa.string()).take(pa.array(r["status"])),
        ],
        schema=SUBSCRIPTION_SCHEMA,
    )
    if table.column("unit_price").null_count:
        raise AssertionError("a generated row has no price in the catalog")
    return table


def _manifest(accounts: int) -> dict[str, Any]:
    return {"generator": GENERATOR_VERSION, "seed": SEED, "accounts": accounts,
            "first": FIRST.isoformat(), "end": END.isoformat()}  # fmt: skip


def dataset(accounts: int, log: Callable[[str], None] = _print) -> tuple[Path, dict[str, Any]]:
    """bench/.data/metrics-N/subscriptions.parquet, generated unless its manifest (generator
    version, seed, size, and the row count the file holds) says it is already there; the file and
    the manifest (with `rows`, and `generated_seconds` when generated now)."""
    import pyarrow.parquet as pq

    folder = DATA / f"metrics-{accounts}"
    path, stamp = folder / "subscriptions.parquet", folder / "manifest.json"
    wanted = _manifest(accounts)
    try:
        manifest = json.loads(stamp.read_text("utf-8"))
        same = {k: manifest[k] for k in wanted} == wanted
        if same and pq.ParquetFile(path).metadata.num_rows == manifest["rows"]:
            return path, manifest
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"  generating {accounts:,} accounts' subscriptions into {path} (not measured) ...")
    started = time.perf_counter()
    table = generate(accounts)
    pq.write_table(table, path, compression="zstd")
    manifest = wanted | {
        "rows": table.num_rows,
        "generated_seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps(manifest, indent=1), "utf-8")
    return path, manifest


def describe(path: Path) -> dict[str, Any]:
    """Counts of the generated file, for the report (DuckDB over the Parquet file)."""
    import duckdb

    con = duckdb.connect()
    f = f"read_parquet('{path}')"

    def one(sql: str) -> Any:
        row = con.sql(sql).fetchone()
        assert row is not None
        return row[0]

    def pairs(sql: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in con.sql(sql).fetchall()}

    return {
        "rows": one(f"SELECT count(*) FROM {f}"),
        "accounts": one(f"SELECT count(DISTINCT account_id) FROM {f}"),
        "bytes": path.stat().st_size,
        "items": pairs(f"SELECT item_id, count(*) FROM {f} GROUP BY 1 ORDER BY 2 DESC"),
        "statuses": pairs(f"SELECT status, count(*) FROM {f} GROUP BY 1 ORDER BY 2 DESC"),
        "currencies": pairs(
            f"SELECT currency, count(DISTINCT account_id) FROM {f} GROUP BY 1 ORDER BY 2 DESC"
        ),
        "intervals": pairs(f"SELECT interval, count(*) FROM {f} GROUP BY 1 ORDER BY 2 DESC"),
        "open": one(f"SELECT count(*) FROM {f} WHERE ended_at IS NULL"),
        "quantity_changes": one(
            f"SELECT count(*) FROM {f} a JOIN {f} b ON a.account_id = b.account_id "
            "AND a.item_id = b.item_id AND a.ended_at = b.started_at "
            "AND a.quantity <> b.quantity AND a.status <> 'trialing'"
        ),
    }


# --- the measured steps (child processes) --------------------------------------------------------


def step(kind: str, data: Path, work: Path, backend: str) -> dict[str, Any]:
    """`_step`, with `seconds` (the sum of its timings: the work, without start-up and imports)
    and `vmhwm_kib`, the process's own peak RSS (VmHWM).

    VmHWM rather than the `ru_maxrss` that `os.wait4` gives the parent: Linux starts a child's
    ru_maxrss at the high-water RSS of the process that spawned it (exec records the old memory
    map's peak, and with vfork that is the parent's), so a child of a large parent would report the
    parent's peak. VmHWM belongs to the memory map exec created.
    """
    if kind == "data":  # not measured: generate (or reuse) the input and count what it holds
        path, manifest = dataset(int(str(data)), log=lambda line: print(line, file=sys.stderr))
        result = describe(path) | {"path": str(path), "timings": {}}
        result["generated_seconds"] = manifest.get("generated_seconds")
    else:
        result = _step(kind, data, work, backend)
    result["seconds"] = sum(result["timings"].values())
    result["vmhwm_kib"] = _vmhwm_kib()
    return result


def _vmhwm_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _step(kind: str, data: Path, work: Path, backend: str) -> dict[str, Any]:
    """One measurement, in a child process of its own (`bench/run.py --metrics-step`).

    - `rows`: read `data` (the subscriptions), `mrr_rows`; writes work/rows.parquet after the clock.
    - `rows-period-end`: the same under ``churn_at: period_end`` (nothing written).
    - `summary`: read work/rows.parquet, `changes` executed to Arrow (their number), then
      `monthly_summary` for the 24 months from the rows, as a caller would (it builds the changes
      itself); writes work/changes-BACKEND.parquet after the clock and checks the last month's MRR
      and paying accounts against the open rows.
    - `retention`: read work/changes-BACKEND.parquet, then `retention` for the trailing twelve months
      at each of the last 12 month-ends; then once more on the lazy `changes(rows)` expression.
    """
    import pyarrow.parquet as pq

    from upsell.domain.metrics import MetricSettings
    from upsell.engine.movements import changes, monthly_summary, mrr_rows, retention

    timings: dict[str, float] = {}
    result: dict[str, Any] = {"timings": timings}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    if kind in ("rows", "rows-period-end"):
        from upsell.store.arrow import SUBSCRIPTION_SCHEMA

        catalog = load_catalog()
        lap("catalog")
        subscriptions = pq.read_table(data, columns=SUBSCRIPTION_SCHEMA.names)
        lap("read")
        churn_at = "period_end" if kind == "rows-period-end" else "cancel"
        rows = mrr_rows(subscriptions, catalog, MetricSettings(churn_at=churn_at))
        lap("mrr_rows")
        result |= {"rows_in": subscriptions.num_rows, "rows_out": rows.num_rows}
        if kind == "rows":
            pq.write_table(rows, work / "rows.parquet")
        return result

    from upsell.engine.backends import Backend

    engine = Backend(backend)
    lap("engine")  # for PySpark: starting the JVM and the session
    if kind == "summary":
        rows = pq.read_table(work / "rows.parquet")
        lap("read")
        ch = engine.arrow(changes(engine.table(rows, "mrr_rows_changes")))
        lap("changes")
        # Not timed: keep the changes for (3) and let go of them before the monthly summary.
        pq.write_table(ch, work / f"changes-{backend}.parquet")
        result |= {"changes": ch.num_rows, "types": _type_counts(ch)}
        del ch
        clock = time.perf_counter()
        months = monthly_summary(engine, rows, first=FIRST, last=LAST)
        lap("monthly_summary")
        result |= {"months": [asdict(m) for m in months], "open": _open_rows(rows)}
        return result
    if kind == "retention":
        ch = engine.read_parquet([work / f"changes-{backend}.parquet"], "changes")
        lap("read")
        windows = []
        for month_end in MONTH_ENDS:
            start = month_end.replace(year=month_end.year - 1)
            t0 = time.perf_counter()
            r = retention(engine, ch, start, month_end)
            windows.append(asdict(r) | {"start_at": start.isoformat(), "end_at": month_end.isoformat(),
                                "seconds": time.perf_counter() - t0})  # fmt: skip
        lap("retention x12")
        rows = pq.read_table(work / "rows.parquet")
        lazy = changes(engine.table(rows, "mrr_rows_lazy"))
        lap("read rows")
        last = windows[-1]
        again = retention(engine, lazy, datetime.fromisoformat(last["start_at"]), END)
        lap("retention on lazy changes x1")
        result |= {
            "windows": windows,
            "lazy_same": all(v == last[k] for k, v in asdict(again).items()),
        }
        return result
    raise ValueError(f"unknown metrics step {kind!r}")


def _type_counts(ch: pa.Table) -> dict[str, int]:
    import pyarrow.compute as pc

    from upsell.domain.metrics import MOVEMENT_TYPES

    counts = {
        str(c["values"]): int(c["counts"]) for c in pc.value_counts(ch.column("type")).to_pylist()
    }
    return {t: counts.get(t, 0) for t in MOVEMENT_TYPES}


def _open_rows(rows: pa.Table) -> dict[str, int]:
    """MRR and paying accounts at the end straight from the rows still open (an independent check
    of the last month's mrr_end and paying_accounts)."""
    import pyarrow.compute as pc

    still = rows.filter(pc.is_null(rows.column("ended_at")))
    paying = still.filter(pc.greater(still.column("mrr"), 0))
    return {
        "mrr": int(pc.sum(still.column("mrr")).as_py() or 0),
        "paying": int(pc.count_distinct(paying.column("account_id")).as_py()),
    }


# --- the section (run by bench/run.py) -----------------------------------------------------------


@dataclass
class StepRun:
    label: str
    title: str
    size: str
    kind: str
    backend: str = "duckdb"
    run: Run | None = None
    load: float = 0.0  # the machine's 1-minute load average when the run started
    result: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def timing(self, name: str) -> float | None:
        return self.result.get("timings", {}).get(name)

    @property
    def peak_mib(self) -> float:
        """The higher of the process's own VmHWM and the polled RSS of it and its children (the
        JVM of PySpark); see `step` for why not ru_maxrss."""
        assert self.run is not None
        return max(self.result.get("vmhwm_kib", 0), self.run.tree_peak_kib) / 1024


@dataclass
class Report:
    facts: dict[str, Any]
    spark_facts: dict[str, Any] | None
    steps: list[StepRun]
    checks: list[tuple[str, bool, str]]  # (what, passed, detail)
    spark_note: str | None = None

    def step(self, label: str) -> StepRun | None:
        return next((s for s in self.steps if s.label == label), None)


def _measure(
    log: Callable[[str], None], label: str, title: str, size: str, kind: str, data: Path,
    work: Path, backend: str = "duckdb",
) -> StepRun:  # fmt: skip
    """Run `step(kind, ...)` in a child process (`bench/run.py --metrics-step`), measured like
    the signals' steps: wall time, CPU time, and the peak RSS of it and its children (the JVM)."""
    log(f"  {label}) {title}, {size} ...")
    s = StepRun(label, title, size, kind, backend)
    work.mkdir(parents=True, exist_ok=True)
    s.load = os.getloadavg()[0]
    s.run = run_step("--metrics-step", kind, data, work, backend)
    if s.run.returncode != 0:
        s.problems.append(s.run.failure())
        log(f"     FAILED: {s.problems[-1]}")
        return s
    s.result = json.loads(s.run.stdout.strip().splitlines()[-1])
    steps = ", ".join(f"{k} {v:.1f}" for k, v in s.result["timings"].items())
    log(f"     {s.run.wall_seconds:.1f} s wall ({steps}), peak RSS {s.peak_mib:,.0f} MiB")
    return s


def summary_checks(s: StepRun) -> list[tuple[str, bool, str]]:
    """Every month: mrr_end - mrr_start = new + reactivation + expansion - contraction - churn,
    and the causes add up to the expansion; the last month's MRR and paying accounts equal the
    rows still open."""
    if s.problems or not s.result:
        return [(f"{s.label}) {s.title}", False, "not checked: the run failed")]
    months = s.result["months"]
    bad = [
        m["month"]
        for m in months
        if m["mrr_end"] - m["mrr_start"]
        != m["new"] + m["reactivation"] + m["expansion"] - m["contraction"] - m["churn"]
    ]
    causes = [m["month"] for m in months if sum(m["expansion_by_cause"].values()) != m["expansion"]]
    last, still = months[-1], s.result["open"]
    where = f"{s.label}) {s.size}, {s.backend}"
    return [
        (
            f"{where}: every month, mrr_end - mrr_start = new + reactivation + expansion - "
            "contraction - churn",
            not bad,
            f"{len(months) - len(bad)} of {len(months)} months"
            + (f"; off in {', '.join(bad)}" if bad else ""),
        ),
        (
            f"{where}: every month, the expansion by cause adds up to the expansion",
            not causes,
            f"{len(months) - len(causes)} of {len(months)} months"
            + (f"; off in {', '.join(causes)}" if causes else ""),
        ),
        (
            f"{where}: MRR at the end of {last['month']} equals the sum of the MRR of the rows "
            "still open (pyarrow, from the rows)",
            last["mrr_end"] == still["mrr"],
            f"{_money(last['mrr_end'])} against {_money(still['mrr'])}",
        ),
        (
            f"{where}: paying accounts at the end of {last['month']} equal the accounts with an "
            "open row of MRR > 0",
            last["paying_accounts"] == still["paying"],
            f"{last['paying_accounts']:,} against {still['paying']:,}",
        ),
    ]


def run_section(accounts: int, spark_accounts: int, log: Callable[[str], None] = _print) -> Report:
    """The runs at `accounts` on DuckDB, then (when Java and PySpark are there) at `spark_accounts`
    on PySpark and DuckDB. Intermediate files go to bench/.data/metrics-work/, deleted at the end."""
    root = DATA / "metrics-work"
    shutil.rmtree(root, ignore_errors=True)
    data, facts = _data(log, accounts)
    size = f"{facts['accounts']:,} accounts, {facts['rows']:,} rows"
    work = root / str(accounts)
    steps = [_measure(log, "1", "`mrr_rows` (Python)", size, "rows", data, work)]
    checks: list[tuple[str, bool, str]] = []
    if not steps[0].problems:
        steps.append(_measure(log, "1b", "`mrr_rows`, `churn_at: period_end`", size,
                              "rows-period-end", data, work))  # fmt: skip
        summary = _measure(log, "2", "`changes` + `monthly_summary`, DuckDB", size,
                           "summary", data, work)  # fmt: skip
        steps.append(summary)
        checks += summary_checks(summary)
        if not summary.problems:
            r = _measure(log, "3", "`retention` TTM x 12, DuckDB", size, "retention",
                         data, work)  # fmt: skip
            steps.append(r)
            if not r.problems:
                checks.append((
                    "3) `retention` on the lazy `changes(rows)` expression gives what it gives on "
                    "the materialised changes", bool(r.result["lazy_same"]), "last window"))  # fmt: skip

    spark_facts, note = None, None
    if spark_accounts:
        from upsell.engine.backends import spark_unavailable

        note = spark_unavailable()
        if note is None:
            sdata, spark_facts = _data(log, spark_accounts)
            ssize = f"{spark_facts['accounts']:,} accounts, {spark_facts['rows']:,} rows"
            swork = root / str(spark_accounts)
            rows = _measure(log, "4", "`mrr_rows` (Python)", ssize, "rows", sdata, swork)
            steps.append(rows)
            if not rows.problems:
                for backend, label in (("duckdb", "4a"), ("pyspark", "4b")):
                    s = _measure(log, label, f"`changes` + `monthly_summary`, {backend}",
                                 ssize, "summary", sdata, swork, backend)  # fmt: skip
                    steps.append(s)
                    checks += summary_checks(s)
                    if not s.problems:
                        steps.append(_measure(log, label.replace("4", "5"),
                                              f"`retention` TTM x 12, {backend}", ssize,
                                              "retention", sdata, swork, backend))  # fmt: skip
                checks += _same_results(steps)
    shutil.rmtree(root, ignore_errors=True)
    return Report(facts, spark_facts, steps, checks, note)


def _data(log: Callable[[str], None], accounts: int) -> tuple[Path, dict[str, Any]]:
    """The input at `accounts`, generated or reused and described by a child process, so that this
    process stays small (see `step`)."""
    log(f"  input: {accounts:,} accounts (generated once into {DATA}/metrics-{accounts}/) ...")
    run = run_step("--metrics-step", "data", Path(str(accounts)), DATA, "-")
    if run.returncode != 0:
        raise SystemExit(run.failure())
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    return Path(facts["path"]), facts


def _same_results(steps: Sequence[StepRun]) -> list[tuple[str, bool, str]]:
    """PySpark's monthly summary and retention windows against DuckDB's, at the same size."""
    by = {s.label: s for s in steps}
    out = []
    for duck, spark, what in (("4a", "4b", "monthly summary"), ("5a", "5b", "retention windows")):
        a, b = by.get(duck), by.get(spark)
        if a is None or b is None or a.problems or b.problems:
            out.append((f"PySpark's {what} against DuckDB's", False, "not compared: a run failed"))
            continue
        key = "months" if what == "monthly summary" else "windows"
        drop = {"seconds"}
        left = [{k: v for k, v in x.items() if k not in drop} for x in a.result[key]]
        right = [{k: v for k, v in x.items() if k not in drop} for x in b.result[key]]
        same = left == right
        changes = a.result.get("changes"), b.result.get("changes")
        detail = "equal, every field" if same else "different"
        if key == "months":
            detail += f" ({changes[0]:,} and {changes[1]:,} changes)"
        out.append((f"4-5) PySpark's {what} against DuckDB's at {a.size}", same, detail))
    return out


# --- the report ----------------------------------------------------------------------------------


def _money(micros: int) -> str:
    return f"{micros / 1_000_000:,.0f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f}"


def render(report: Report, command: str, machine: str, started: datetime, seconds: float) -> str:
    """The "## Metrics" section of RESULTS.md."""
    f = report.facts
    failed = [c for c in report.checks if not c[1]] + [
        (s.label, False, "; ".join(s.problems)) for s in report.steps if s.problems
    ]
    one, two, three = report.step("1"), report.step("2"), report.step("3")
    lines = [
        HEADING,
        "",
        "Written by `bench/run.py`; do not edit by hand. This section was produced by "
        f"`{command}` (`--only metrics` rewrites only this section) on {started:%Y-%m-%d %H:%M} "
        f"UTC, in {seconds:,.0f} s, {machine}.",
        "",
        f"**Target** (issue 6: “{ISSUE}”): the issue sets no number; the times and peaks are "
        "reported as measured. "
        + (
            "**Checks: PASS** (below)."
            if not failed
            else f"**Checks: FAIL** ({len(failed)}, below)."
        ),
        "",
    ]
    if one and two and three and not (one.problems or two.problems or three.problems):
        assert one.run and two.run and three.run
        total = one.run.wall_seconds + two.run.wall_seconds + three.run.wall_seconds
        ret = three.timing("retention x12") or 0.0
        lines += [
            f"In short, at {f['accounts']:,} accounts and {f['rows']:,} subscription rows: "
            f"`mrr_rows` {one.timing('mrr_rows'):,.1f} s (peak {one.peak_mib:,.0f} MiB), "
            f"`changes` + `monthly_summary` {two.run.wall_seconds:,.1f} s wall (peak "
            f"{two.peak_mib:,.0f} MiB; {two.result['changes']:,} changes), NDR/GRR over "
            f"the trailing twelve months at 12 month-ends {ret:,.1f} s "
            f"({ret / 12:,.2f} s a window); {total:,.0f} s of wall time for the three processes.",
            "",
        ]
    lines += _input_lines(f, report.spark_facts)
    lines += [
        "",
        "Each row is one child process of `bench/run.py --metrics-step ...`: wall time and CPU "
        "time are that process's (`os.wait4`; for PySpark, the Python driver's without its JVM), "
        "with interpreter start-up and imports; peak RSS is the higher of its own high-water RSS "
        "(`VmHWM`, read by the process at its end: `ru_maxrss` would start at the peak of the "
        "process that spawned it) and the summed RSS of it and its children polled in /proc twice "
        "a second (the JVM of PySpark). *steps* are seconds measured inside: `catalog` parses "
        "saas.yaml; `engine` starts the back end (for PySpark, its JVM and session); `read` reads "
        "the Parquet input into Arrow (in (3), registers the changes' file with the back end). (1) "
        "writes its rows to Parquet after the clock and (2) and (3) start from that file, so (1) + "
        "(2) is the whole pipeline from the subscriptions to the monthly summary. In (2), "
        "`changes` executes `changes(rows)` to Arrow (to count them; they are written to Parquet "
        "for (3) off the clock and let go of), then `monthly_summary` starts again from the rows, "
        "as a caller would: it builds the changes itself, twice (one query for the MRR carried in "
        "before the first month, one for the months). (3) calls `retention` on those changes for "
        "the trailing twelve months at each month-end, then once on the lazy `changes(rows)` "
        "expression, which is what a caller pays for a window without materialising the changes. "
        "*load* is the machine's 1-minute load average when the run started.",
        "",
        "| run | data | wall s | steps (s) | CPU s | peak RSS MiB | load | result |",
        "|---|---|--:|---|--:|--:|--:|---|",
    ]
    for s in report.steps:
        if s.run is None or s.problems:
            lines.append(f"| {s.label}) {s.title} | {s.size} | - | - | - | - | - | "
                         f"{'; '.join(s.problems) or 'not run'} |")  # fmt: skip
            continue
        timed = ", ".join(f"{k} {v:,.1f}" for k, v in s.result["timings"].items())
        lines.append(
            f"| {s.label}) {s.title} | {s.size} | {s.run.wall_seconds:,.1f} | {timed} "
            f"| {s.run.cpu_seconds:,.1f} | {s.peak_mib:,.0f} | {s.load:.1f} "
            f"| {_step_result(s)} |"
        )
    if report.spark_note:
        lines += ["", f"(4) PySpark was not run: {report.spark_note}."]
    if two and not two.problems:
        lines += ["", *_months_lines(two)]
    if three and not three.problems:
        lines += ["", *_retention_lines(three)]
    lines += ["", "### Checks", ""]
    for what, passed, detail in report.checks:
        lines.append(f"- {'PASS' if passed else '**FAIL**'}: {what} ({detail}).")
    return "\n".join(lines) + "\n"


def _step_result(s: StepRun) -> str:
    r = s.result
    if s.kind.startswith("rows"):
        rate = r["rows_in"] / r["timings"]["mrr_rows"]
        return (
            f"{r['rows_in']:,} rows in, {r['rows_out']:,} out (trials left out); {rate:,.0f} rows/s"
        )
    if s.kind == "summary":
        types = ", ".join(f"{k} {v:,}" for k, v in r["types"].items())
        return f"{r['changes']:,} changes ({types}); {len(r['months'])} months"
    calls = [w["seconds"] for w in r["windows"]]
    return (
        f"{len(calls)} windows, {min(calls):,.2f} to {max(calls):,.2f} s a call; "
        f"lazy `changes`: {r['timings']['retention on lazy changes x1']:,.1f} s for one call"
    )


def _input_lines(f: dict[str, Any], spark: dict[str, Any] | None) -> list[str]:
    items = ", ".join(f"{k} {v:,}" for k, v in f["items"].items())
    statuses = ", ".join(f"{k} {v:,}" for k, v in f["statuses"].items())
    currencies = ", ".join(f"{k} {v:,}" for k, v in f["currencies"].items())
    intervals = ", ".join(f"{k} {v:,}" for k, v in f["intervals"].items())
    made = (
        f"generated in {f['generated_seconds']:,.0f} s by this run"
        if f.get("generated_seconds") is not None
        else "reused"
    )
    lines = [
        f"Input: a synthetic subscription history ([metrics.py](metrics.py), numpy, seed {SEED}, "
        f"{made}; `bench/.data/metrics-N/subscriptions.parquet`, "
        f"{_mib(f['bytes'])} MiB) on the simulator's saas catalog: {f['accounts']:,} accounts "
        f"signing up from {FIRST:%Y-%m-%d} to {LAST:%Y-%m-%d}, **{f['rows']:,} rows** "
        f"({f['rows'] / f['accounts']:.2f} per account; {f['open']:,} still open at the end). "
        f"By item: {items}. By status: {statuses}. By interval: {intervals}. Accounts by "
        f"currency: {currencies}. {f['quantity_changes']:,} add-on quantity changes (a row ends "
        "and the same item starts with another quantity at the same instant). Trials, upgrades, "
        "downgrades, switches to yearly billing, cancellations and reactivations: see the "
        "docstring of metrics.py.",
    ]
    if spark:
        lines += [
            "",
            f"(4) and (5) use the same generator at {spark['accounts']:,} accounts "
            f"({spark['rows']:,} rows).",
        ]
    return lines


def _months_lines(s: StepRun) -> list[str]:
    lines = [
        f"### Monthly summary of (2) ({s.size}, base currency USD, whole units)",
        "",
        "| month | MRR start | MRR end | new | reactivation | expansion | contraction | churn "
        "| paying | NDR | GRR | end - start = movements |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for m in s.result["months"]:
        moved = m["new"] + m["reactivation"] + m["expansion"] - m["contraction"] - m["churn"]
        ok = "PASS" if m["mrr_end"] - m["mrr_start"] == moved else "**FAIL**"
        lines.append(
            f"| {m['month']} | {_money(m['mrr_start'])} | {_money(m['mrr_end'])} "
            f"| {_money(m['new'])} | {_money(m['reactivation'])} | {_money(m['expansion'])} "
            f"| {_money(m['contraction'])} | {_money(m['churn'])} | {m['paying_accounts']:,} "
            f"| {_pct(m['ndr'])} | {_pct(m['grr'])} | {ok} |"
        )
    return lines


def _retention_lines(s: StepRun) -> list[str]:
    lines = [
        f"### Trailing-twelve-month retention of (3) ({s.size})",
        "",
        "| window | cohort accounts | MRR at start | its MRR at end | NDR | GRR | s |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for w in s.result["windows"]:
        start = w["start"]
        lines.append(
            f"| {w['start_at'][:10]} to {w['end_at'][:10]} | {w['accounts']:,} "
            f"| {_money(start)} | {_money(w['end'])} "
            f"| {_pct(w['end'] / start if start else None)} "
            f"| {_pct(w['kept'] / start if start else None)} | {w['seconds']:,.2f} |"
        )
    return lines


def section(
    accounts: int,
    spark_accounts: int,
    command: str,
    baseline: Run,
    log: Callable[[str], None] = _print,
) -> tuple[str, list[str]]:
    """Run everything and render the section; the failures for run.py. `baseline` is the measured
    `upsell --version`."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    report = run_section(accounts, spark_accounts, log)
    machine = f"{about(baseline.stdout)}, {versions()}"
    text = render(report, command, machine, started_at, time.perf_counter() - started)
    failures = [f"metrics {s.label}) {s.title}: {'; '.join(s.problems)}"
                for s in report.steps if s.problems]  # fmt: skip
    failures += [
        f"metrics check: {what} ({detail})" for what, ok, detail in report.checks if not ok
    ]
    return text, failures


def versions() -> str:
    import duckdb
    import pyspark

    return (
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"PySpark {pyspark.__version__}"
    )
