"""The signal tables as hand-written DuckDB SQL: the baseline bench/signals.py compares the engine with.

The issue (4, "Measure") asks for the engine's signals to run within 1.5x of the same features
written directly as SQL. This module is that SQL, written the way one would by hand for the
simulated SaaS company (`upsell simulate`'s catalog): the catalog's metrics, named signals, activation
rule and usage pricing are spelled out in the queries (`check_catalog` refuses any other catalog),
only the plans' tiers, limits and add-on grants are read from the catalog as data.

It does what the engine's path does, on the same Parquet files, with the duckdb Python API:

1. the daily rollups (src/upsell/engine/rollups.py): `usage` per (account, day, event, key) and
   `users` per (account, day, user), each written to a Parquet file;
2. the seven signal tables of src/upsell/engine/signals.py from those files, as of a date, each
   fetched to Arrow and sorted by its keys.

Small shared pieces (the plan held, the billing periods, the metrics that the usage table reuses)
are materialised once as temporary tables, as a person writing this SQL would.

`differences` compares two sets of tables (the engine's and these) by their keys, doubles to a
relative 1e-9; bench/signals.py uses it to check that both compute the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from upsell.domain.catalog import ActivationRule, Catalog, Condition, Metric, UsageSignal
from upsell.engine.rollups import RollupSpec
from upsell.engine.signals import KEYS

#: What the queries below spell out; `check_catalog` compares the catalog with it.
METRICS = {
    "seats": Metric("seats", "gauge", source_trait="seats", up_event="User Invited",
                    down_event="User Removed"),
    "projects": Metric("projects", "gauge", source_trait="projects", up_event="Project Created",
                       down_event="Project Archived"),
    "api_calls": Metric("api_calls", "counter", source_event="API Calls Used",
                        source_property="count", window="billing_period"),
    "storage_gb": Metric("storage_gb", "gauge", source_event="Storage Measured",
                         source_property="gb"),
    "assessments": Metric("assessments", "counter", source_event="Assessment Used",
                          window="billing_period"),
}  # fmt: skip
SIGNALS = {
    "inbound_leads": UsageSignal("inbound_leads", "Lead Captured", {"source": "inbound"}, 10, 30),
    "time_tracking": UsageSignal("time_tracking", "Timer Started", {}, 20, 30),
}
ACTIVATION = ActivationRule(all_of=(Condition("Report Shared", 1), Condition("Board Created", 3)))
USAGE_PRICING = {"assessment_credit": "assessments"}  # item -> metric
ROLLUP_KEYS = {
    "Feature Used": "feature",
    "Feature Blocked": "feature",
    "Limit Reached": "metric",
    "Downgrade Requested": "to_plan",
    "Usage Charged": "item_id",
    "Lead Captured": "source",
}
ROLLUP_VALUES = {
    "Usage Charged": "quantity",
    "Survey Answered": "score",
    "API Calls Used": "count",
    "Storage Measured": "gb",
}


def check_catalog(catalog: Catalog) -> None:
    """Raise ValueError unless `catalog` defines the features the queries below spell out."""
    spec = RollupSpec.from_catalog(catalog)
    found = (
        dict(catalog.metrics),
        dict(catalog.signals),
        catalog.activation,
        {u.id: u.metric for u in catalog.usage_pricing},
        dict(spec.keys),
        dict(spec.values),
    )
    wanted = (METRICS, SIGNALS, ACTIVATION, USAGE_PRICING, ROLLUP_KEYS, ROLLUP_VALUES)
    if found != wanted:
        raise ValueError("signals_sql.py is written for the simulated SaaS catalog only")


# --- 1. the rollups ------------------------------------------------------------------------------

ROLLUP_USAGE = """
COPY (
    SELECT account_id, day, event, key,
           count(*) AS n,
           sum(value) AS total,
           max(ts) AS last_at,
           arg_max_null(value, ts) AS last_value  -- the latest event's value, null or not
    FROM (
        SELECT account_id,
               CAST("timestamp" AS DATE) AS day,
               event,
               coalesce(CASE event
                   WHEN 'Feature Used' THEN properties ->> '$.feature'
                   WHEN 'Feature Blocked' THEN properties ->> '$.feature'
                   WHEN 'Limit Reached' THEN properties ->> '$.metric'
                   WHEN 'Downgrade Requested' THEN properties ->> '$.to_plan'
                   WHEN 'Usage Charged' THEN properties ->> '$.item_id'
                   WHEN 'Lead Captured' THEN properties ->> '$.source'
               END, '') AS key,
               TRY_CAST(CASE event
                   WHEN 'Usage Charged' THEN properties ->> '$.quantity'
                   WHEN 'Survey Answered' THEN properties ->> '$.score'
                   WHEN 'API Calls Used' THEN properties ->> '$.count'
                   WHEN 'Storage Measured' THEN properties ->> '$.gb'
               END AS DOUBLE) AS value,
               "timestamp" AS ts
        FROM read_parquet({events})
        WHERE account_id IS NOT NULL
    )
    GROUP BY ALL
) TO {out} (FORMAT parquet, COMPRESSION zstd)
"""

ROLLUP_USERS = """
COPY (
    SELECT account_id, CAST("timestamp" AS DATE) AS day, user_id, count(*) AS n
    FROM read_parquet({events})
    WHERE account_id IS NOT NULL AND user_id IS NOT NULL
    GROUP BY ALL
) TO {out} (FORMAT parquet, COMPRESSION zstd)
"""

# --- 2. the signals ------------------------------------------------------------------------------
# {as_of} is the date, {at} its midnight UTC; {d7}, {d30}, {d60}: the dates 7, 30, 60 days before.

INPUTS = """
CREATE TEMP VIEW accounts AS
    SELECT account_id, created_at, industry, employees, country, currency, language, traits
    FROM read_parquet({accounts}) WHERE created_at < {at};
CREATE TEMP VIEW subs AS
    SELECT account_id, item_id, started_at, ended_at, quantity, "interval", unit_price, status
    FROM read_parquet({subscriptions}) WHERE started_at < {at};
CREATE TEMP VIEW held AS SELECT * FROM subs WHERE ended_at IS NULL OR ended_at > {at};
CREATE TEMP VIEW usage_all AS SELECT * FROM read_parquet({usage});
CREATE TEMP VIEW usage AS SELECT * FROM usage_all WHERE day < {as_of};
CREATE TEMP VIEW users AS SELECT * FROM read_parquet({users}) WHERE day < {as_of};

CREATE TEMP TABLE plan AS
    SELECT account_id, item_id AS plan_id, status AS plan_status, "interval" AS plan_interval,
           started_at AS plan_started_at
    FROM held JOIN items USING (item_id)
    WHERE item_kind = 'plan'
    QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY tier DESC, started_at DESC) = 1;

-- The billing period: the monthly anniversary of the plan row (of signup without a plan).
CREATE TEMP TABLE periods AS
    WITH a AS (
        SELECT account_id, CAST(coalesce(plan_started_at, created_at) AS DATE) AS anchor
        FROM accounts LEFT JOIN plan USING (account_id)
    ), m AS (
        SELECT account_id, anchor,
               (year({as_of}) - year(anchor)) * 12 + month({as_of}) - month(anchor)
               - CASE WHEN day({as_of}) < day(anchor) THEN 1 ELSE 0 END AS months
        FROM a
    )
    SELECT account_id, anchor + to_months(months) AS period_start,
           anchor + to_months(months - 1) AS last_start
    FROM m;
"""

METRICS_SQL = """
CREATE TEMP TABLE metrics AS
WITH counters AS (  -- api_calls (sum of `count`) and assessments (events), per billing period
    SELECT u.account_id,
           CASE u.event WHEN 'API Calls Used' THEN 'api_calls' ELSE 'assessments' END AS metric,
           sum(CASE u.event WHEN 'API Calls Used' THEN coalesce(u.total, 0) ELSE u.n END)
               FILTER (WHERE u.day >= p.period_start) AS cur,
           sum(CASE u.event WHEN 'API Calls Used' THEN coalesce(u.total, 0) ELSE u.n END)
               FILTER (WHERE u.day < p.period_start) AS last
    FROM usage u JOIN periods p USING (account_id)
    WHERE u.event IN ('API Calls Used', 'Assessment Used') AND u.day >= p.last_start
    GROUP BY ALL
), billing AS (
    SELECT p.account_id, m.metric, 'counter' AS kind,
           coalesce(c.cur, 0) AS value,
           coalesce(c.cur, 0) / greatest(date_diff('day', p.period_start, {as_of}), 1) AS slope,
           coalesce(c.last, 0) AS last_units
    FROM periods p
    CROSS JOIN (VALUES ('api_calls'), ('assessments')) m(metric)
    LEFT JOIN counters c ON c.account_id = p.account_id AND c.metric = m.metric
), moves AS (  -- seats and projects: the trait today, minus the moves since as_of
    SELECT account_id,
           CASE WHEN event IN ('User Invited', 'User Removed') THEN 'seats' ELSE 'projects' END
               AS metric,
           sum(CASE WHEN event IN ('User Invited', 'Project Created') THEN n ELSE -n END)
               FILTER (WHERE day >= {as_of}) AS after,
           sum(CASE WHEN event IN ('User Invited', 'Project Created') THEN n ELSE -n END)
               FILTER (WHERE day < {as_of}) AS recent
    FROM usage_all
    WHERE event IN ('User Invited', 'User Removed', 'Project Created', 'Project Archived')
      AND day >= {d30}
    GROUP BY ALL
), traits AS (
    SELECT account_id, 'seats' AS metric, TRY_CAST(traits ->> '$.seats' AS DOUBLE) AS now
    FROM accounts
    UNION ALL
    SELECT account_id, 'projects', TRY_CAST(traits ->> '$.projects' AS DOUBLE) FROM accounts
), trait_gauges AS (
    SELECT t.account_id, t.metric, 'gauge' AS kind,
           greatest(t.now - coalesce(mv.after, 0), 0) AS value,
           coalesce(mv.recent, 0) / 30 AS slope,
           NULL AS last_units
    FROM traits t LEFT JOIN moves mv USING (account_id, metric)
    WHERE t.now IS NOT NULL
), storage AS (  -- storage_gb: the latest `gb`, its trend over the last 30 days
    SELECT account_id,
           arg_max(last_value, last_at) AS value,
           arg_min(last_value, day) FILTER (WHERE day >= {d30}) AS first,
           arg_max(last_value, day) FILTER (WHERE day >= {d30}) AS last,
           date_diff('day', min(day) FILTER (WHERE day >= {d30}),
                     max(day) FILTER (WHERE day >= {d30})) AS span
    FROM usage
    WHERE event = 'Storage Measured' AND last_value IS NOT NULL
    GROUP BY account_id
), vals AS (
    SELECT * FROM billing
    UNION ALL SELECT * FROM trait_gauges
    UNION ALL
    SELECT account_id, 'storage_gb', 'gauge', value,
           CASE WHEN span > 0 THEN (last - first) / span END, NULL
    FROM storage
), grants AS (
    SELECT h.account_id, l.metric, sum(l.amount * h.quantity) AS extra
    FROM held h JOIN limits l ON l.item_id = h.item_id AND l.is_grant
    GROUP BY ALL
), limits_held AS (
    SELECT p.account_id, l.metric, l.amount + coalesce(g.extra, 0) AS "limit"
    FROM plan p
    JOIN limits l ON l.item_id = p.plan_id
    LEFT JOIN grants g ON g.account_id = p.account_id AND g.metric = l.metric
), reached AS (
    SELECT account_id, key AS metric, sum(n) AS limit_reached_30d
    FROM usage WHERE event = 'Limit Reached' AND day >= {d30}
    GROUP BY ALL
)
SELECT v.account_id, v.metric, v.kind,
       CAST(v.value AS DOUBLE) AS value,
       CAST(l."limit" AS DOUBLE) AS "limit",
       CAST(v.slope AS DOUBLE) AS slope_per_day,
       CAST(CASE
           WHEN l."limit" IS NULL THEN NULL
           WHEN l."limit" - v.value <= 0 THEN 0
           WHEN v.slope > 0 THEN (l."limit" - v.value) / v.slope
       END AS DOUBLE) AS days_to_limit,
       CAST(coalesce(r.limit_reached_30d, 0) AS BIGINT) AS limit_reached_30d,
       CAST(v.last_units AS DOUBLE) AS last_units
FROM vals v
LEFT JOIN limits_held l USING (account_id, metric)
LEFT JOIN reached r USING (account_id, metric)
"""

ACCOUNTS_SQL = """
WITH paid AS (
    SELECT DISTINCT account_id, true AS paid_before
    FROM subs WHERE status <> 'trialing' AND TRY_CAST(unit_price AS DOUBLE) > 0
), activation AS (  -- the day both conditions were met: 1 `Report Shared`, 3 `Board Created`
    SELECT account_id, CASE WHEN d1 IS NOT NULL AND d2 IS NOT NULL THEN greatest(d1, d2) END
               AS activated_on
    FROM (
        SELECT account_id,
               min(day) FILTER (WHERE event = 'Report Shared' AND cum >= 1) AS d1,
               min(day) FILTER (WHERE event = 'Board Created' AND cum >= 3) AS d2
        FROM (
            SELECT account_id, event, day,
                   sum(sum(n)) OVER (PARTITION BY account_id, event ORDER BY day) AS cum
            FROM usage WHERE event IN ('Report Shared', 'Board Created')
            GROUP BY account_id, event, day
        )
        GROUP BY account_id
    )
), events AS (
    SELECT account_id,
           sum(n) FILTER (WHERE day >= {d30}) AS events_30d,
           count(DISTINCT day) FILTER (WHERE day >= {d30}) AS active_days_30d,
           sum(n) FILTER (WHERE day < {d30}) AS events_prev_30d,
           count(DISTINCT key) FILTER (WHERE day >= {d30} AND event = 'Feature Used' AND key <> '')
               AS breadth_30d
    FROM usage WHERE day >= {d60}
    GROUP BY account_id
), per_user AS (
    SELECT account_id, user_id, sum(n) AS n, count(*) AS days
    FROM users WHERE day >= {d30}
    GROUP BY ALL
), people AS (  -- power users: in the top decile of all users' 30-day activity
    SELECT account_id, count(*) AS active_users_30d, sum(days) AS user_days,
           count(*) FILTER (WHERE rank >= 0.9) AS power_users
    FROM (SELECT *, percent_rank() OVER (ORDER BY n) AS rank FROM per_user)
    GROUP BY account_id
), risk AS (
    SELECT account_id,
           sum(n) FILTER (WHERE event = 'Payment Failed' AND day >= {d30}) AS payment_failures_30d,
           greatest(sum(CASE event WHEN 'Support Ticket Opened' THEN n
                                   WHEN 'Support Ticket Closed' THEN -n END), 0) AS open_tickets,
           arg_max(last_value, last_at) FILTER (WHERE event = 'Survey Answered') AS nps_score,
           arg_max(key, last_at) FILTER (WHERE event = 'Downgrade Requested' AND day >= {d30})
               AS downgrade_requested_to,
           bool_or(event = 'Cancel Requested' AND day >= {d30}) AS cancel_requested
    FROM usage
    WHERE event IN ('Payment Failed', 'Support Ticket Opened', 'Support Ticket Closed',
                    'Survey Answered', 'Downgrade Requested', 'Cancel Requested')
    GROUP BY account_id
)
SELECT a.account_id,
       CAST(a.created_at AS DATE) AS created_day,
       CAST(date_diff('day', CAST(a.created_at AS DATE), {as_of}) AS BIGINT) AS tenure_days,
       a.industry, CAST(a.employees AS BIGINT) AS employees, a.country, a.currency, a.language,
       p.plan_id, p.plan_status, p.plan_interval,
       CAST(p.plan_started_at AS DATE) AS plan_started_day,
       coalesce(paid.paid_before, false) AS paid_before,
       act.activated_on IS NOT NULL AS activated,
       act.activated_on,
       CASE WHEN pe.active_users_30d > 0
            THEN pe.user_days / 30 / pe.active_users_30d END AS dau_mau,
       CASE WHEN pe.active_users_30d > 0
            THEN pe.user_days / pe.active_users_30d END AS days_per_user,
       CAST(r.nps_score AS BIGINT) AS nps_score,
       r.downgrade_requested_to,
       coalesce(r.cancel_requested, false) AS cancel_requested,
       CAST(coalesce(e.events_30d, 0) AS BIGINT) AS events_30d,
       CAST(coalesce(e.events_prev_30d, 0) AS BIGINT) AS events_prev_30d,
       CAST(coalesce(e.active_days_30d, 0) AS BIGINT) AS active_days_30d,
       CAST(coalesce(e.breadth_30d, 0) AS BIGINT) AS breadth_30d,
       CAST(coalesce(pe.active_users_30d, 0) AS BIGINT) AS active_users_30d,
       CAST(coalesce(pe.power_users, 0) AS BIGINT) AS power_users,
       CAST(coalesce(r.payment_failures_30d, 0) AS BIGINT) AS payment_failures_30d,
       CAST(coalesce(r.open_tickets, 0) AS BIGINT) AS open_tickets
FROM accounts a
LEFT JOIN plan p USING (account_id)
LEFT JOIN paid USING (account_id)
LEFT JOIN activation act USING (account_id)
LEFT JOIN events e USING (account_id)
LEFT JOIN people pe USING (account_id)
LEFT JOIN risk r USING (account_id)
ORDER BY a.account_id
"""

FEATURES_SQL = """
WITH f AS (
    SELECT account_id, key AS feature,
           sum(CASE WHEN event = 'Feature Used' AND day >= {d30} THEN n ELSE 0 END) AS used_30d,
           sum(CASE WHEN event = 'Feature Blocked' AND day >= {d7} THEN n ELSE 0 END)
               AS blocked_7d,
           sum(CASE WHEN event = 'Feature Blocked' AND day >= {d30} THEN n ELSE 0 END)
               AS blocked_30d
    FROM usage
    WHERE event IN ('Feature Used', 'Feature Blocked') AND key <> ''
    GROUP BY ALL
), trials AS (
    SELECT account_id, CAST(started_at AS DATE) AS t_start,
           coalesce(CAST(ended_at AS DATE), {as_of}) AS t_end
    FROM subs JOIN items USING (item_id)
    WHERE status = 'trialing' AND item_kind = 'plan'
), in_trial AS (
    SELECT u.account_id, u.key AS feature, sum(u.n) AS used_in_trial
    FROM usage u
    JOIN trials t ON t.account_id = u.account_id AND u.day >= t.t_start AND u.day < t.t_end
    WHERE u.event = 'Feature Used' AND u.key <> ''
    GROUP BY ALL
)
SELECT account_id, feature,
       CAST(used_30d AS BIGINT) AS used_30d,
       CAST(blocked_7d AS BIGINT) AS blocked_7d,
       CAST(blocked_30d AS BIGINT) AS blocked_30d,
       CAST(coalesce(used_in_trial, 0) AS BIGINT) AS used_in_trial
FROM f LEFT JOIN in_trial USING (account_id, feature)
WHERE used_30d > 0 OR blocked_30d > 0 OR used_in_trial > 0
ORDER BY account_id, feature
"""

SIGNALS_SQL = """
SELECT account_id, 'inbound_leads' AS signal
FROM usage
WHERE event = 'Lead Captured' AND key = 'inbound' AND day >= {as_of} - INTERVAL 30 DAY
GROUP BY account_id HAVING sum(n) >= 10
UNION ALL
SELECT account_id, 'time_tracking'
FROM usage
WHERE event = 'Timer Started' AND day >= {as_of} - INTERVAL 30 DAY
GROUP BY account_id HAVING sum(n) >= 20
ORDER BY account_id, signal
"""

USAGE_SQL = """
WITH charged AS (  -- `Usage Charged` events, in the same billing periods
    SELECT u.account_id, u.key AS item_id,
           sum(CASE WHEN u.day >= p.period_start THEN u.total ELSE 0 END) AS units_current,
           sum(CASE WHEN u.day >= p.last_start AND u.day < p.period_start
                    THEN u.total ELSE 0 END) AS units_last
    FROM usage u JOIN periods p USING (account_id)
    WHERE u.event = 'Usage Charged'
    GROUP BY ALL
), parts AS (
    SELECT account_id, 'assessment_credit' AS item_id, metric, value AS units_current,
           coalesce(last_units, 0) AS units_last
    FROM metrics WHERE metric = 'assessments'
    UNION ALL
    SELECT account_id, item_id, '', coalesce(units_current, 0), coalesce(units_last, 0)
    FROM charged
)
SELECT account_id, item_id, max(metric) AS metric, sum(units_current) AS units_current,
       sum(units_last) AS units_last
FROM parts
GROUP BY account_id, item_id
HAVING sum(units_current) > 0 OR sum(units_last) > 0
ORDER BY account_id, item_id
"""

CO_ADOPTION_SQL = """
WITH h AS (SELECT DISTINCT account_id, item_id FROM held),
holders AS (SELECT item_id, count(*) AS n FROM h GROUP BY item_id),
total AS (SELECT count(DISTINCT account_id) AS n FROM h),
pairs AS (
    SELECT a.item_id AS antecedent, b.item_id AS consequent, count(*) AS accounts
    FROM h a JOIN h b ON a.account_id = b.account_id AND a.item_id <> b.item_id
    GROUP BY ALL
)
SELECT antecedent, consequent, accounts,
       accounts / total.n AS support,
       accounts / ha.n AS confidence,
       (accounts / ha.n) / (hb.n / total.n) AS lift
FROM pairs
JOIN holders ha ON ha.item_id = antecedent
JOIN holders hb ON hb.item_id = consequent
CROSS JOIN total
ORDER BY antecedent, consequent
"""

UPGRADE_PATTERNS_SQL = """
WITH s AS (  -- plan rows that were paid for or free, not trials
    SELECT account_id, item_id AS plan, tier, started_at, ended_at
    FROM subs JOIN items USING (item_id)
    WHERE item_kind = 'plan' AND status <> 'trialing'
), up AS (  -- a move to a higher tier: the next row starts when this one ends
    SELECT f.account_id, f.plan AS from_plan, CAST(t.started_at AS DATE) AS up_day
    FROM s f JOIN s t ON t.account_id = f.account_id AND t.started_at = f.ended_at
                     AND t.tier > f.tier
), used AS (
    SELECT account_id, day, key AS feature FROM usage WHERE event = 'Feature Used' AND key <> ''
), before_up AS (
    SELECT up.from_plan, used.feature, count(DISTINCT used.account_id) AS upgrades
    FROM used JOIN up ON up.account_id = used.account_id
                     AND used.day >= up.up_day - INTERVAL 30 DAY AND used.day < up.up_day
    GROUP BY ALL
), on_plan AS (
    SELECT s.plan AS from_plan, used.feature, count(DISTINCT used.account_id) AS users
    FROM used JOIN s ON s.account_id = used.account_id
                    AND used.day >= CAST(s.started_at AS DATE)
                    AND (s.ended_at IS NULL OR used.day < CAST(s.ended_at AS DATE))
    GROUP BY ALL
), plan_holders AS (SELECT plan AS from_plan, count(DISTINCT account_id) AS holders FROM s GROUP BY 1),
plan_ups AS (SELECT from_plan, count(DISTINCT account_id) AS upgraders FROM up GROUP BY 1)
SELECT from_plan, feature, CAST(upgrades AS BIGINT) AS upgrades,
       CAST((upgrades / users) / (upgraders / holders) AS DOUBLE) AS lift
FROM before_up
JOIN on_plan USING (from_plan, feature)
JOIN plan_holders USING (from_plan)
JOIN plan_ups USING (from_plan)
ORDER BY from_plan, feature
"""

OUTPUTS = {
    "accounts": ACCOUNTS_SQL,
    "metrics": "SELECT * FROM metrics ORDER BY account_id, metric",
    "features": FEATURES_SQL,
    "signals": SIGNALS_SQL,
    "usage": USAGE_SQL,
    "co_adoption": CO_ADOPTION_SQL,
    "upgrade_patterns": UPGRADE_PATTERNS_SQL,
}


def _quote(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _catalog_tables(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """items (item_id, item_kind, tier) and limits (item_id, metric, amount, is_grant)."""
    items = [(p.id, "plan", p.tier) for p in catalog.plans]
    items += [(a.id, "add_on", -1) for a in catalog.add_ons]
    items += [(p.id, "product", -1) for p in catalog.products]
    limits = [(p.id, m, float(v), False) for p in catalog.plans for m, v in p.limits.items()]
    limits += [(a.id, m, float(v), True) for a in catalog.add_ons for m, v in a.grants.items()]
    con.execute("CREATE TEMP TABLE items (item_id VARCHAR, item_kind VARCHAR, tier BIGINT)")
    con.executemany("INSERT INTO items VALUES (?, ?, ?)", items)
    con.execute(
        "CREATE TEMP TABLE limits (item_id VARCHAR, metric VARCHAR, amount DOUBLE, is_grant BOOLEAN)"
    )
    con.executemany("INSERT INTO limits VALUES (?, ?, ?, ?)", limits)


def rollup(con: duckdb.DuckDBPyConnection, events: Path, usage: Path, users: Path) -> None:
    """Write the usage and users rollups of an events Parquet file."""
    con.execute(ROLLUP_USAGE.format(events=_quote(events), out=_quote(usage)))
    con.execute(ROLLUP_USERS.format(events=_quote(events), out=_quote(users)))


def signals(
    con: duckdb.DuckDBPyConnection,
    *,
    accounts: Path,
    subscriptions: Path,
    usage: Path,
    users: Path,
    catalog: Catalog,
    as_of: date,
    timings: dict[str, float] | None = None,
) -> dict[str, pa.Table]:
    """The seven signal tables as Arrow; `timings` gets the seconds each step took."""
    check_catalog(catalog)
    day = as_of.isoformat()
    params = {
        "as_of": f"DATE '{day}'",
        "at": f"TIMESTAMPTZ '{day} 00:00:00+00'",
        "d7": f"DATE '{as_of - timedelta(days=7)}'",
        "d30": f"DATE '{as_of - timedelta(days=30)}'",
        "d60": f"DATE '{as_of - timedelta(days=60)}'",
        "accounts": _quote(accounts),
        "subscriptions": _quote(subscriptions),
        "usage": _quote(usage),
        "users": _quote(users),
    }
    timings = {} if timings is None else timings
    with timed(timings, "inputs (plan, periods)"):
        _catalog_tables(con, catalog)
        con.execute(INPUTS.format(**params))
    with timed(timings, "metrics (temp table)"):
        con.execute(METRICS_SQL.format(**params))
    out = {}
    for name, sql in OUTPUTS.items():
        with timed(timings, name):
            out[name] = con.execute(sql.format(**params)).fetch_arrow_table()
    return out


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """`with timed(timings, name):` records the seconds the block took (the engine's steps in
    bench/signals.py are timed with it too)."""
    started = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - started


# --- comparing two sets of tables ----------------------------------------------------------------


def differences(ours: Mapping[str, pa.Table], theirs: Mapping[str, pa.Table]) -> list[str]:
    """What differs between two sets of signal tables (empty: the same rows and numbers).

    Rows are matched by the table's keys (signals.KEYS); doubles may differ by a relative 1e-9
    (sums in another order), every other value must be equal, nulls included.
    """
    con = duckdb.connect()
    found: list[str] = []
    for name, keys in KEYS.items():
        a, b = ours[name], theirs[name]
        if a.schema.names != b.schema.names:
            found.append(f"{name}: columns {a.schema.names} != {b.schema.names}")
            continue
        types = {f.name: (str(f.type), str(b.schema.field(f.name).type)) for f in a.schema}
        odd = {c: t for c, t in types.items() if t[0] != t[1]}
        if odd:
            found.append(f"{name}: types differ: {odd}")
        con.register("a", a)
        con.register("b", b)
        on = " AND ".join(f'a."{k}" = b."{k}"' for k in keys)
        only = con.execute(
            f'SELECT count(*) FILTER (WHERE b."{keys[0]}" IS NULL), '
            f'count(*) FILTER (WHERE a."{keys[0]}" IS NULL) FROM a FULL JOIN b ON {on}'
        ).fetchone()
        assert only is not None
        if only[0] or only[1]:
            found.append(
                f"{name}: {only[0]:,} rows only in the first, {only[1]:,} only in the second"
            )
        for column in (c for c in a.schema.names if c not in keys):
            same = _same(column, a.schema.field(column).type)
            bad = con.execute(
                f"SELECT count(*) FROM a JOIN b ON {on} WHERE NOT ({same})"
            ).fetchone()
            assert bad is not None
            if bad[0]:
                example = con.execute(
                    f'SELECT {", ".join(f"a.{k}" for k in keys)}, a."{column}", b."{column}" '
                    f"FROM a JOIN b ON {on} WHERE NOT ({same}) LIMIT 1"
                ).fetchone()
                found.append(f"{name}.{column}: {bad[0]:,} rows differ, e.g. {example}")
        con.unregister("a")
        con.unregister("b")
    con.close()
    return found


def _same(column: str, kind: pa.DataType) -> str:
    a, b = f'a."{column}"', f'b."{column}"'
    if pa.types.is_floating(kind):
        return (
            f"({a} IS NULL AND {b} IS NULL) OR "
            f"abs({a} - {b}) <= 1e-9 * greatest(abs({a}), abs({b}), 1)"
        )
    return f"{a} IS NOT DISTINCT FROM {b}"
