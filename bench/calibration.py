"""Print the simulated company's calibration figures (docs/simulator.md; tests/test_simulator.py
asserts the ranges). Usage: .venv/bin/python bench/calibration.py [ACCOUNTS] [MODEL] [SEED]"""

from __future__ import annotations

import sys

import numpy as np

from upsell.simulator.usage import limit_of
from upsell.simulator.world import SimConfig, World


def main() -> None:
    accounts = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    model = sys.argv[2] if len(sys.argv) > 2 else "saas"
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    w = World(SimConfig(accounts=accounts, model=model, seed=seed))  # type: ignore[arg-type]
    events = [0]
    w.advance(w.config.days, lambda t: events.__setitem__(0, events[0] + t.num_rows))
    r, n = w.rows, w.rows.n
    is_plan = r.item[:n] < w.items.n_plans
    paid = np.zeros(n, bool)
    paid[is_plan] = ~w.items.plan_free[r.item[:n][is_plan]]
    ever_paid = np.zeros(accounts, bool)
    ever_paid[r.account[:n][paid]] = True
    mature = w.pop.signup_day < w.config.days // 2
    started_free = w.items.plan_free[w.entry_plan]
    cancelled = np.zeros(accounts, bool)
    cancelled[r.account[:n][r.status[:n] == 3]] = True
    paying = ~started_free & mature
    print(f"model {model}, {accounts:,} accounts, seed {seed}: {events[0]:,} events")
    if (started_free & mature).any():
        print(f"free signups (first half) who paid: {ever_paid[started_free & mature].mean():.1%}")
    print(
        f"paying signups (first half) cancelled, activated: {cancelled[paying & w.activated].mean():.1%}"
    )
    print(
        f"paying signups (first half) cancelled, never activated: {cancelled[paying & ~w.activated].mean():.1%}"
    )
    for g in w.profile.trait_gauges:
        limit = limit_of(w, g.metric, np.arange(accounts))
        ok = w.using & np.isfinite(limit)
        util = w.gauge[g.metric][ok] / limit[ok]
        q = ", ".join(f"{v:.2f}" for v in np.quantile(util, [0.1, 0.25, 0.5, 0.75, 0.9]))
        print(
            f"{g.metric} utilisation p10/p25/p50/p75/p90: {q}; at the limit: {(util >= 1).mean():.1%}"
        )
    print(
        f"MRR at the end: {w.mrr().sum():,.2f} {w.catalog.currency}, paying accounts: {(w.mrr() > 0).sum():,}"
    )


if __name__ == "__main__":
    main()
