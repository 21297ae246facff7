"""Signals per account as of a date, over whole tables (issue 4; domain.md S4, S5, S9, S13).

Written once in Ibis; DuckDB runs it by default and PySpark gives the same tables. Inputs are the
store's accounts and subscriptions (store/arrow.py's shapes) and the daily rollups (rollups.py).
`as_of` is a date: the signals see the whole days before it, and "30d" is the 30 days before it.

The outputs (`SignalTables`) are long tables keyed by account: one wide ``accounts`` table, and
``metrics``, ``features``, ``signals`` and ``usage`` with one row per account and metric, feature,
named signal or usage-priced item; plus the population statistics ``co_adoption`` and
``upgrade_patterns``. The meaning of every column is domain/signals.py's.

This module is the entry point and assembles the wide ``accounts`` table; each part is computed in
its own module from the inputs as of the date (`_as_of.AsOf`): holdings.py (the plan held, paid
before, effective limits), usage_metrics.py (``metrics``, ``usage``), feature_use.py
(``features``), named_signals.py (``signals``), activation.py, engagement.py, risk.py and
population.py (``co_adoption``, ``upgrade_patterns``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import ibis.expr.types as ir
import pyarrow as pa

from upsell.domain.catalog import Catalog
from upsell.engine._as_of import AsOf, attach
from upsell.engine.activation import activation
from upsell.engine.backends import Backend
from upsell.engine.engagement import engagement, power_user_floor
from upsell.engine.feature_use import features
from upsell.engine.holdings import paid_before, plan_held
from upsell.engine.named_signals import named_signals
from upsell.engine.population import co_adoption, upgrade_patterns
from upsell.engine.risk import risk
from upsell.engine.usage_metrics import billing_periods, metrics, usage_spend


@dataclass(frozen=True)
class SignalTables:
    accounts: ir.Table
    metrics: ir.Table
    features: ir.Table
    signals: ir.Table
    usage: ir.Table
    co_adoption: ir.Table
    upgrade_patterns: ir.Table

    def names(self) -> tuple[str, ...]:
        return (
            "accounts",
            "metrics",
            "features",
            "signals",
            "usage",
            "co_adoption",
            "upgrade_patterns",
        )


#: The sort order that makes every table's rows comparable across back ends.
KEYS = {
    "accounts": ("account_id",),
    "metrics": ("account_id", "metric"),
    "features": ("account_id", "feature"),
    "signals": ("account_id", "signal"),
    "usage": ("account_id", "item_id"),
    "co_adoption": ("antecedent", "consequent"),
    "upgrade_patterns": ("from_plan", "feature"),
}


def accounts_table(at: AsOf, plan: ir.Table) -> ir.Table:
    """The wide ``accounts`` table: one row per account created before as_of, its firmographics
    with its plan (`plan` is `upsell.engine.holdings.plan_held`), paid before, activation,
    engagement and risk; counts are 0 and flags false when the account has no such data."""
    a = at.accounts
    t = attach(a, plan, paid_before(at), activation(at), engagement(at), risk(at))
    zero = ("events_30d", "events_prev_30d", "active_days_30d", "breadth_30d",
            "active_users_30d", "power_users", "payment_failures_30d", "open_tickets")  # fmt: skip
    return t.select(
        account_id=t.account_id,
        created_day=t.created_at.date(),
        tenure_days=at.today.delta(t.created_at.date(), unit="day").cast("int64"),
        industry=t.industry,
        employees=t.employees.cast("int64"),
        country=t.country,
        currency=t.currency,
        language=t.language,
        plan_id=t.plan_id,
        plan_status=t.plan_status,
        plan_interval=t.plan_interval,
        plan_started_day=t.plan_started_at.date(),
        paid_before=t.paid_before.fill_null(False),
        activated=t.activated.fill_null(False),
        activated_on=t.activated_on,
        dau_mau=t.dau_mau.cast("float64"),
        days_per_user=t.days_per_user.cast("float64"),
        nps_score=t.nps_score.cast("int64"),
        downgrade_requested_to=t.downgrade_requested_to,
        cancel_requested=t.cancel_requested.fill_null(False),
        cancel_reason=t.cancel_reason,
        **{name: t[name].fill_null(0).cast("int64") for name in zero},
    )


def build_signals(
    backend: Backend,
    *,
    accounts: ir.Table,
    subscriptions: ir.Table,
    usage: ir.Table,
    users: ir.Table,
    catalog: Catalog,
    as_of: date,
    instant: datetime | ir.TimestampValue | None = None,
    power_floor: ir.NumericValue | None = None,
) -> SignalTables:
    """The signal tables as Ibis expressions (nothing runs until they are executed); as of the
    first instant of `as_of`, or as of `instant` on that day (a trigger's: that day's rows count
    too, _as_of.py's docstring). `power_floor`: for the tables of a few accounts, everyone's
    `engagement.power_user_floor` (their users are not ranked among themselves)."""
    at = AsOf.at(
        backend,
        accounts=accounts,
        subscriptions=subscriptions,
        usage=usage,
        users=users,
        catalog=catalog,
        as_of=as_of,
        instant=instant,
        power_floor=power_floor,
    )
    plan = plan_held(at)
    periods = billing_periods(at, plan)
    metric_table = metrics(at, plan, periods)
    return SignalTables(
        accounts=accounts_table(at, plan),
        metrics=metric_table,
        features=features(at),
        signals=named_signals(at),
        usage=usage_spend(at, metric_table, periods),
        co_adoption=co_adoption(at),
        upgrade_patterns=upgrade_patterns(at),
    )


def power_users_floor(
    backend: Backend,
    *,
    accounts: ir.Table,
    subscriptions: ir.Table,
    usage: ir.Table,
    users: ir.Table,
    catalog: Catalog,
    as_of: date,
) -> ir.Table:
    """One row, `floor`: the fewest events in 30 days of a power user among every account's
    users as of `as_of` (`engagement.power_user_floor`), for `build_signals`' `power_floor`."""
    at = AsOf.at(
        backend,
        accounts=accounts,
        subscriptions=subscriptions,
        usage=usage,
        users=users,
        catalog=catalog,
        as_of=as_of,
    )
    return power_user_floor(at)


def execute(
    backend: Backend, tables: SignalTables, names: tuple[str, ...] | None = None
) -> dict[str, pa.Table]:
    """Run every table (or those `names`); rows sorted by their keys so that back ends can be
    compared."""
    out: dict[str, pa.Table] = {}
    for name in names if names is not None else tables.names():
        expr: ir.Table = getattr(tables, name)
        out[name] = backend.arrow(expr.order_by(list(KEYS[name])))
    return out
