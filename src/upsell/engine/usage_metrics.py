"""Usage against limits: the ``metrics`` table (each catalog metric's value, trend and effective limit
per account) and the ``usage`` table (units of usage-priced items in the current and last billing
periods), with the billing periods both count in. docs/engine.md says how each kind of metric is
read; the meaning of every column is domain/signals.py's (`MetricUsage`, `UsageSpend`).
"""

from __future__ import annotations

from datetime import timedelta
from functools import reduce

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from upsell.domain.catalog import Metric
from upsell.domain.events import LIMIT_REACHED, USAGE_CHARGED
from upsell.engine._as_of import WINDOW, AsOf, float64, window
from upsell.engine.backends import Backend
from upsell.engine.holdings import effective_limits


def billing_periods(at: AsOf, plan: ir.Table) -> ir.Table:
    """Billing-period start per account: the monthly anniversary of its plan row (of signup when
    it holds no plan) on or before as_of (a trigger's day, `AsOf.today`); month ends clamp (Jan 31 -> Feb 28).
    ``account_id, period_start, last_start`` (the start of the period before)."""
    a = at.accounts.left_join(plan, "account_id")
    anchor = a.plan_started_at.fill_null(a.created_at).date()
    months = (
        (at.today.year() - anchor.year()) * 12
        + (at.today.month() - anchor.month())
        - ibis.ifelse(at.today.day() < anchor.day(), 1, 0)
    )
    start = anchor + months.as_interval("M")
    return a.select(
        account_id=a.account_id,
        period_start=start,
        last_start=anchor + (months - 1).as_interval("M"),
    )


def metric_values(at: AsOf, metric: Metric, periods: ir.Table) -> ir.Table:
    """account_id, value, slope, last_units for one catalog metric."""
    m = metric
    if m.kind == "counter":
        assert m.source_event is not None
        rows = at.events(m.source_event)
        amount = rows.total if m.source_property else rows.n.cast("float64")
        rows = rows.mutate(amount=amount.fill_null(0.0))
        if m.window == "billing_period":
            j = rows.join(periods, "account_id")
            cur = j.filter(j.day >= j.period_start)
            last = j.filter((j.day >= j.last_start) & (j.day < j.period_start))
            c = cur.group_by("account_id").aggregate(value=cur.amount.sum())
            lst = last.group_by("account_id").aggregate(last_units=last.amount.sum())
            base = periods.left_join(c, "account_id").left_join(lst, "account_id")
            elapsed = ibis.greatest(at.day.delta(base.period_start, unit="day"), 1)
            value = base.value.fill_null(0.0)
            return base.select(
                account_id=base.account_id,
                value=value,
                slope=value / elapsed.cast("float64"),
                last_units=base.last_units.fill_null(0.0),
            )
        days = m.window if isinstance(m.window, int) else None
        w = window(rows, ibis.literal(at.as_of - timedelta(days=days))) if days else rows
        agg = w.group_by("account_id").aggregate(value=w.amount.sum())
        per_day = (agg.value / float64(days)) if days else ibis.null("float64")
        return agg.select(
            account_id=agg.account_id,
            value=agg.value,
            slope=per_day,
            last_units=ibis.null("float64"),
        )
    if m.source_event is not None:
        rows = at.events(m.source_event).filter(lambda t: t.last_value.notnull())
        latest = rows.group_by("account_id").aggregate(value=rows.last_value.argmax(rows.last_at))
        w = window(rows, at.d30)
        trend = w.group_by("account_id").aggregate(
            first=w.last_value.argmin(w.day),
            last=w.last_value.argmax(w.day),
            span=w.day.max().delta(w.day.min(), unit="day"),
        )
        out = latest.left_join(trend, "account_id")
        return out.select(
            account_id=out.account_id,
            value=out.value,
            slope=ibis.ifelse(
                out.span > 0,
                (out["last"] - out["first"]) / out.span.cast("float64"),
                ibis.null(),
            ).cast("float64"),
            last_units=ibis.null("float64"),
        )
    # A trait gauge: today's trait, minus the moves since as_of.
    assert m.source_trait is not None
    acc = at.accounts
    now = acc.select(
        account_id=acc.account_id,
        now=at.backend.json_text(acc.traits, m.source_trait).try_cast("float64"),
    ).filter(lambda t: t.now.notnull())
    if not (m.up_event or m.down_event):
        return now.select(
            account_id=now.account_id,
            value=now.now,
            slope=ibis.null("float64"),
            last_units=ibis.null("float64"),
        )
    moves = at.all_usage.filter(at.all_usage.event.isin([m.up_event, m.down_event]))
    sign = ibis.ifelse(moves.event == m.up_event, 1.0, -1.0)
    moves = moves.mutate(delta=sign * moves.n.cast("float64"))
    after = moves.filter(moves.day >= at.day)
    recent = moves.filter((moves.day >= at.d30) & (moves.day < at.day))
    a = after.group_by("account_id").aggregate(after=after.delta.sum())
    r = recent.group_by("account_id").aggregate(recent=recent.delta.sum())
    out = now.left_join(a, "account_id").left_join(r, "account_id")
    return out.select(
        account_id=out.account_id,
        value=ibis.greatest(out.now - out.after.fill_null(0.0), 0.0),
        slope=out.recent.fill_null(0.0) / float64(WINDOW),
        last_units=ibis.null("float64"),
    )


def metrics(at: AsOf, plan: ir.Table, periods: ir.Table) -> ir.Table:
    """The ``metrics`` table: one row per account and catalog metric with a value; `plan` is
    `upsell.engine.holdings.plan_held`, `periods` `billing_periods`."""
    parts = []
    for m in at.catalog.metrics.values():
        v = metric_values(at, m, periods)
        parts.append(v.mutate(metric=ibis.literal(m.id), kind=ibis.literal(m.kind)))
    if not parts:
        return _empty_metrics(at.backend)
    values = reduce(lambda a, b: a.union(b), parts)
    limits = effective_limits(at, plan)
    reached = limit_hits(at, plan)
    j = values.left_join(limits, ["account_id", "metric"]).left_join(
        reached, ["account_id", "metric"]
    )
    room = j["limit"] - j.value
    days = ibis.cases(
        (j["limit"].isnull(), ibis.null("float64")),
        (room <= 0, 0.0),
        (j.slope > 0, room / j.slope),
        else_=ibis.null("float64"),
    )
    return j.select(
        account_id=j.account_id,
        metric=j.metric,
        kind=j.kind,
        value=j.value.cast("float64"),
        limit=j["limit"].cast("float64"),
        slope_per_day=j.slope.cast("float64"),
        days_to_limit=days.cast("float64"),
        limit_reached_30d=j.limit_reached_30d.fill_null(0).cast("int64"),
        last_units=j.last_units.cast("float64"),
    )


def limit_hits(at: AsOf, plan: ir.Table) -> ir.Table:
    """``account_id, metric, limit_reached_30d``: the ``Limit Reached`` events of the last 30 days
    that hit the limit of the plan held (`plan`): those of the days after its row started. A hit
    under an earlier plan (before an upgrade or a trial, or on the day of the change) was a hit of
    that plan's limit, not of this one's."""
    r = window(at.events(LIMIT_REACHED), at.d30)
    since = plan.select(account_id=plan.account_id, since=plan.plan_started_at.date())
    r = r.left_join(since, "account_id")
    r = r.filter(r.since.isnull() | (r.day > r.since))
    return r.group_by(metric=r.key, account_id=r.account_id).aggregate(limit_reached_30d=r.n.sum())


def usage_spend(at: AsOf, metrics: ir.Table, periods: ir.Table) -> ir.Table:
    """The ``usage`` table: per account and usage-priced item, the current and last period's units:
    its metric's value and last units (the `metrics` table) plus the ``Usage Charged`` events of the
    billing periods (`periods`). Items with no units in either period are left out."""
    parts = []
    for item in at.catalog.usage_pricing:
        m = metrics.filter(metrics.metric == item.metric)
        parts.append(
            m.select(
                account_id=m.account_id,
                item_id=ibis.literal(item.id),
                metric=m.metric,
                units_current=m.value,
                units_last=m.last_units.fill_null(0.0),
            )
        )
    # Charges recorded as `Usage Charged` events, in the same billing periods.
    c = at.usage.filter(at.usage.event == USAGE_CHARGED).join(periods, "account_id")
    charged = c.group_by(account_id=c.account_id, item_id=c.key).aggregate(
        units_current=ibis.ifelse(c.day >= c.period_start, c.total, 0.0).sum(),
        units_last=ibis.ifelse(
            (c.day >= c.last_start) & (c.day < c.period_start), c.total, 0.0
        ).sum(),
    )
    parts.append(
        charged.select(
            account_id=charged.account_id,
            item_id=charged.item_id,
            metric=ibis.literal(""),
            units_current=charged.units_current.fill_null(0.0),
            units_last=charged.units_last.fill_null(0.0),
        )
    )
    u = reduce(lambda a, b: a.union(b), parts)
    u = u.group_by("account_id", "item_id").aggregate(
        metric=u.metric.max(),
        units_current=u.units_current.sum(),
        units_last=u.units_last.sum(),
    )
    return u.filter((u.units_current > 0) | (u.units_last > 0))


def _empty_metrics(backend: Backend) -> ir.Table:
    schema = pa.schema(
        [("account_id", pa.string()), ("metric", pa.string()), ("kind", pa.string()),
         ("value", pa.float64()), ("limit", pa.float64()), ("slope_per_day", pa.float64()),
         ("days_to_limit", pa.float64()), ("limit_reached_30d", pa.int64()),
         ("last_units", pa.float64())]
    )  # fmt: skip
    return backend.table(schema.empty_table(), "no_metrics")
