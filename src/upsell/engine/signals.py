"""Signals per account as of a date, over whole tables (issue 4; domain.md S4, S5, S9, S13).

Written once in Ibis; DuckDB runs it by default and PySpark gives the same tables. Inputs are the
store's accounts and subscriptions (store/arrow.py's shapes) and the daily rollups (rollups.py).
`as_of` is a date: the signals see the whole days before it, and "30d" is the 30 days before it.

The outputs (`SignalTables`) are long tables keyed by account: one wide ``accounts`` table, and
``metrics``, ``features``, ``signals`` and ``usage`` with one row per account and metric, feature,
named signal or usage-priced item; plus the population statistics ``co_adoption`` and
``upgrade_patterns``. The meaning of every column is domain/signals.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from upsell.domain.calendar import day_start
from upsell.domain.catalog import ActivationRule, AddOn, Catalog, Condition, Metric, Plan, Product
from upsell.domain.events import (
    CANCEL_REQUESTED,
    DOWNGRADE_REQUESTED,
    FEATURE_BLOCKED,
    FEATURE_USED,
    LIMIT_REACHED,
    PAYMENT_FAILED,
    SUPPORT_TICKET_CLOSED,
    SUPPORT_TICKET_OPENED,
    SURVEY_ANSWERED,
    USAGE_CHARGED,
)
from upsell.engine.backends import Backend

WINDOW = 30
POWER_USER_RANK = 0.9


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


def _catalog_items(catalog: Catalog) -> pa.Table:
    """Every plan, add-on and product with its kind, and the tier of a plan (-1 otherwise)."""
    rows: list[tuple[str, str, int]] = []
    items: tuple[Plan | AddOn | Product, ...] = (
        *catalog.plans,
        *catalog.add_ons,
        *catalog.products,
    )
    for item in items:
        tier = item.tier if isinstance(item, Plan) else -1
        rows.append((item.id, str(catalog.kind_of(item.id)), tier))
    return pa.table(
        {
            "item_id": pa.array([r[0] for r in rows], pa.string()),
            "item_kind": pa.array([r[1] for r in rows], pa.string()),
            "tier": pa.array([r[2] for r in rows], pa.int64()),
        }
    )


def _catalog_limits(catalog: Catalog) -> pa.Table:
    rows: list[tuple[str, str, float, bool]] = []
    for plan in catalog.plans:
        rows += [(plan.id, m, float(v), False) for m, v in plan.limits.items()]
    for add_on in catalog.add_ons:
        rows += [(add_on.id, m, float(v), True) for m, v in add_on.grants.items()]
    return pa.table(
        {
            "item_id": pa.array([r[0] for r in rows], pa.string()),
            "metric": pa.array([r[1] for r in rows], pa.string()),
            "amount": pa.array([r[2] for r in rows], pa.float64()),
            "grant": pa.array([r[3] for r in rows], pa.bool_()),
        }
    )


def _plan_features(catalog: Catalog) -> pa.Table:
    pairs = [(p.id, f) for p in catalog.plans for f in sorted(p.features)]
    return pa.table(
        {
            "plan_id": pa.array([p for p, _ in pairs], pa.string()),
            "feature": pa.array([f for _, f in pairs], pa.string()),
        }
    )


def catalog_items(backend: Backend, catalog: Catalog) -> ir.Table:
    """The catalog's plans, add-ons and products as a table: ``item_id, item_kind, tier``."""
    return backend.table(_catalog_items(catalog), "catalog_items")


def highest_plans(held: ir.Table, items: ir.Table) -> ir.Table:
    """Per account, the plan of the highest tier among its `held` subscription rows (the latest
    started when it holds that tier twice): its plan, by the domain's rule
    (`upsell.domain.catalog.Catalog.highest_plan`), with the row's status, interval and start.
    `items` is `catalog_items`."""
    h = held.join(items, "item_id").filter(lambda t: t.item_kind == "plan")
    ranked = h.mutate(
        rank=ibis.row_number().over(
            group_by=h.account_id, order_by=[ibis.desc(h.tier), ibis.desc(h.started_at)]
        )
    )
    top = ranked.filter(ranked["rank"] == 0)
    return top.select(
        account_id=top.account_id,
        plan_id=top.item_id,
        plan_status=top.status,
        plan_interval=top.interval,
        plan_started_at=top.started_at,
    )


class _Builder:
    def __init__(
        self,
        backend: Backend,
        *,
        accounts: ir.Table,
        subscriptions: ir.Table,
        usage: ir.Table,
        users: ir.Table,
        catalog: Catalog,
        as_of: date,
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.as_of = as_of
        self.instant = ibis.literal(day_start(as_of))
        self.day = ibis.literal(as_of)
        self.d30 = ibis.literal(as_of - timedelta(days=WINDOW))
        self.d60 = ibis.literal(as_of - timedelta(days=2 * WINDOW))
        self.d7 = ibis.literal(as_of - timedelta(days=7))
        self.accounts = accounts.filter(accounts.created_at < self.instant)
        self.subs = subscriptions.filter(subscriptions.started_at < self.instant)
        self.usage = usage.filter(usage.day < self.day)
        self._all_usage = usage  # trait moves after as_of are needed too
        self.users = users.filter(users.day < self.day)
        self.items = catalog_items(backend, catalog)
        self.limits = backend.table(_catalog_limits(catalog), "catalog_limits")
        self.plan_features = backend.table(_plan_features(catalog), "catalog_plan_features")

    # -- helpers ---------------------------------------------------------------------------------
    def _events(self, event: str, key: str | None = None) -> ir.Table:
        u = self.usage.filter(self.usage.event == event)
        return u if key is None else u.filter(u.key == key)

    def _window(
        self, table: ir.Table, start: ir.DateValue, end: ir.DateValue | None = None
    ) -> ir.Table:
        t = table.filter(table.day >= start)
        return t if end is None else t.filter(t.day < end)

    def _count(self, table: ir.Table, name: str) -> ir.Table:
        return table.group_by("account_id").aggregate(**{name: table.n.sum()})

    # -- subscriptions ---------------------------------------------------------------------------
    def held(self) -> ir.Table:
        s = self.subs
        return s.filter(s.ended_at.isnull() | (s.ended_at > self.instant))

    def plan(self) -> ir.Table:
        """The plan held at as_of, with its row."""
        return highest_plans(self.held(), self.items)

    def paid_before(self) -> ir.Table:
        s = self.subs
        paid = s.filter((s.status != "trialing") & (s.unit_price.try_cast("float64") > 0))
        return paid.group_by("account_id").aggregate(paid_before=paid.count() > 0)

    def effective_limits(self, plan: ir.Table) -> ir.Table:
        """Per account and metric: the plan's limit plus the held add-ons' grants x quantity."""
        lim = self.limits
        base = plan.join(lim, plan.plan_id == lim.item_id).select(
            account_id=plan.account_id, metric=lim.metric, base=lim.amount
        )
        held = self.held()
        grants = held.join(lim.filter(lim.grant), held.item_id == lim.item_id)
        extra = grants.group_by(grants.account_id, grants.metric).aggregate(
            extra=(grants.amount * grants.quantity).sum()
        )
        out = base.left_join(extra, ["account_id", "metric"])
        return out.select(
            account_id=out.account_id,
            metric=out.metric,
            limit=out.base + out.extra.fill_null(0.0),
        )

    # -- metrics ---------------------------------------------------------------------------------
    def period_start(self, plan: ir.Table) -> ir.Table:
        """Billing-period start per account: the monthly anniversary of its plan row (of signup when
        it holds no plan) on or before as_of; month ends clamp (Jan 31 -> Feb 28)."""
        a = self.accounts.left_join(plan, "account_id")
        anchor = a.plan_started_at.fill_null(a.created_at).date()
        months = (
            (self.day.year() - anchor.year()) * 12
            + (self.day.month() - anchor.month())
            - ibis.ifelse(self.day.day() < anchor.day(), 1, 0)
        )
        start = anchor + months.as_interval("M")
        return a.select(
            account_id=a.account_id,
            period_start=start,
            last_start=anchor + (months - 1).as_interval("M"),
        )

    def metric_values(self, metric: Metric, periods: ir.Table) -> ir.Table:
        """account_id, value, slope, last_units for one catalog metric."""
        m = metric
        if m.kind == "counter":
            assert m.source_event is not None
            rows = self._events(m.source_event)
            amount = rows.total if m.source_property else rows.n.cast("float64")
            rows = rows.mutate(amount=amount.fill_null(0.0))
            if m.window == "billing_period":
                j = rows.join(periods, "account_id")
                cur = j.filter(j.day >= j.period_start)
                last = j.filter((j.day >= j.last_start) & (j.day < j.period_start))
                c = cur.group_by("account_id").aggregate(value=cur.amount.sum())
                lst = last.group_by("account_id").aggregate(last_units=last.amount.sum())
                base = periods.left_join(c, "account_id").left_join(lst, "account_id")
                elapsed = ibis.greatest(self.day.delta(base.period_start, unit="day"), 1)
                value = base.value.fill_null(0.0)
                return base.select(
                    account_id=base.account_id,
                    value=value,
                    slope=value / elapsed.cast("float64"),
                    last_units=base.last_units.fill_null(0.0),
                )
            days = m.window if isinstance(m.window, int) else None
            w = (
                self._window(rows, ibis.literal(self.as_of - timedelta(days=days)))
                if days
                else rows
            )
            agg = w.group_by("account_id").aggregate(value=w.amount.sum())
            per_day = (agg.value / _f(days)) if days else ibis.null("float64")
            return agg.select(
                account_id=agg.account_id,
                value=agg.value,
                slope=per_day,
                last_units=ibis.null("float64"),
            )
        if m.source_event is not None:
            rows = self._events(m.source_event).filter(lambda t: t.last_value.notnull())
            latest = rows.group_by("account_id").aggregate(
                value=rows.last_value.argmax(rows.last_at)
            )
            w = self._window(rows, self.d30)
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
        acc = self.accounts
        now = acc.select(
            account_id=acc.account_id,
            now=self.backend.json_text(acc.traits, m.source_trait).try_cast("float64"),
        ).filter(lambda t: t.now.notnull())
        if not (m.up_event or m.down_event):
            return now.select(
                account_id=now.account_id,
                value=now.now,
                slope=ibis.null("float64"),
                last_units=ibis.null("float64"),
            )
        moves = self._all_usage.filter(self._all_usage.event.isin([m.up_event, m.down_event]))
        sign = ibis.ifelse(moves.event == m.up_event, 1.0, -1.0)
        moves = moves.mutate(delta=sign * moves.n.cast("float64"))
        after = moves.filter(moves.day >= self.day)
        recent = moves.filter((moves.day >= self.d30) & (moves.day < self.day))
        a = after.group_by("account_id").aggregate(after=after.delta.sum())
        r = recent.group_by("account_id").aggregate(recent=recent.delta.sum())
        out = now.left_join(a, "account_id").left_join(r, "account_id")
        return out.select(
            account_id=out.account_id,
            value=ibis.greatest(out.now - out.after.fill_null(0.0), 0.0),
            slope=out.recent.fill_null(0.0) / _f(WINDOW),
            last_units=ibis.null("float64"),
        )

    def metrics(self, plan: ir.Table, periods: ir.Table) -> ir.Table:
        parts = []
        for m in self.catalog.metrics.values():
            v = self.metric_values(m, periods)
            parts.append(v.mutate(metric=ibis.literal(m.id), kind=ibis.literal(m.kind)))
        if not parts:
            return _empty_metrics(self.backend)
        values = reduce(lambda a, b: a.union(b), parts)
        limits = self.effective_limits(plan)
        reached = self._window(self._events(LIMIT_REACHED), self.d30)
        reached = reached.group_by(metric=reached.key, account_id=reached.account_id).aggregate(
            limit_reached_30d=reached.n.sum()
        )
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

    # -- features, signals, usage ----------------------------------------------------------------
    def features(self) -> ir.Table:
        f = self.usage.filter(self.usage.event.isin([FEATURE_USED, FEATURE_BLOCKED]))
        f = f.filter(f.key != "")
        used = f.event == FEATURE_USED
        blocked = f.event == FEATURE_BLOCKED
        out = f.group_by(account_id=f.account_id, feature=f.key).aggregate(
            used_30d=ibis.ifelse(used & (f.day >= self.d30), f.n, 0).sum(),
            blocked_7d=ibis.ifelse(blocked & (f.day >= self.d7), f.n, 0).sum(),
            blocked_30d=ibis.ifelse(blocked & (f.day >= self.d30), f.n, 0).sum(),
        )
        s = self.subs
        trials = s.filter(s.status == "trialing").join(self.items, "item_id")
        trials = trials.filter(trials.item_kind == "plan").select(
            account_id=trials.account_id,
            t_start=trials.started_at.date(),
            t_end=trials.ended_at.date().fill_null(self.day),
        )
        fu = f.filter(used)
        during = fu.join(
            trials,
            (fu.account_id == trials.account_id)
            & (fu.day >= trials.t_start)
            & (fu.day < trials.t_end),
        )
        in_trial = during.group_by(account_id=during.account_id, feature=during.key).aggregate(
            used_in_trial=during.n.sum()
        )
        j = out.left_join(in_trial, ["account_id", "feature"])
        j = j.select(
            account_id=j.account_id,
            feature=j.feature,
            used_30d=j.used_30d.cast("int64"),
            blocked_7d=j.blocked_7d.cast("int64"),
            blocked_30d=j.blocked_30d.cast("int64"),
            used_in_trial=j.used_in_trial.fill_null(0).cast("int64"),
        )
        return j.filter((j.used_30d > 0) | (j.blocked_30d > 0) | (j.used_in_trial > 0))

    def named_signals(self) -> ir.Table:
        parts = []
        for s in self.catalog.signals.values():
            key = str(next(iter(s.where.values()))) if s.where else None
            rows = self._events(s.event, key)
            rows = self._window(rows, ibis.literal(self.as_of - timedelta(days=s.window_days)))
            n = rows.group_by("account_id").aggregate(n=rows.n.sum())
            n = n.filter(n.n >= s.at_least)
            parts.append(n.select(account_id=n.account_id, signal=ibis.literal(s.id)))
        if not parts:
            empty = pa.table(
                {"account_id": pa.array([], pa.string()), "signal": pa.array([], pa.string())}
            )
            return self.backend.table(empty, "no_signals")
        return reduce(lambda a, b: a.union(b), parts)

    def usage_spend(self, metrics: ir.Table, periods: ir.Table) -> ir.Table:
        parts = []
        for item in self.catalog.usage_pricing:
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
        c = self.usage.filter(self.usage.event == USAGE_CHARGED).join(periods, "account_id")
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

    # -- activation ------------------------------------------------------------------------------
    def condition_day(self, c: Condition) -> ir.Table:
        key = str(next(iter(c.where.values()))) if c.where else None
        rows = self._events(c.event, key)
        if c.within_days is not None:
            acc = self.accounts.select("account_id", signup=self.accounts.created_at.date())
            rows = rows.join(acc, "account_id")
            rows = rows.filter(
                rows.day < rows.signup + ibis.literal(c.within_days).as_interval("D")
            )
        daily = rows.group_by("account_id", "day").aggregate(n=rows.n.sum())
        cum = daily.mutate(
            cum=daily.n.sum().over(group_by=daily.account_id, order_by=daily.day, rows=(None, 0))
        )
        hit = cum.filter(cum.cum >= c.at_least)
        return hit.group_by("account_id").aggregate(day=hit.day.min())

    def rule_day(self, rule: ActivationRule, base: ir.Table, n: list[int]) -> ir.Table:
        """account_id, day: when the rule was first met (null: not yet)."""

        def part(p: Condition | ActivationRule) -> ir.Table:
            return (
                self.rule_day(p, base, n)
                if isinstance(p, ActivationRule)
                else self.condition_day(p)
            )

        def combine(parts: Sequence[ir.Table], all_: bool) -> ir.Table:
            t = base
            names = []
            for p in parts:
                n[0] += 1
                name = f"d{n[0]}"
                names.append(name)
                t = t.left_join(p.rename(**{name: "day"}), "account_id").select(*t.columns, name)
            cols = [t[x] for x in names]
            if all_:
                any_null = reduce(lambda a, b: a | b, (c.isnull() for c in cols))
                day = ibis.ifelse(
                    any_null, ibis.null("date"), ibis.greatest(*cols) if len(cols) > 1 else cols[0]
                )
            else:
                day = ibis.least(*cols) if len(cols) > 1 else cols[0]
            return t.select(account_id=t.account_id, day=day)

        parts: list[ir.Table] = []
        if rule.all_of:
            parts.append(combine([part(p) for p in rule.all_of], True))
        if rule.any_of:
            parts.append(combine([part(p) for p in rule.any_of], False))
        if len(parts) == 1:
            return parts[0]
        return combine(parts, True)

    def activation(self) -> ir.Table:
        base = self.accounts.select("account_id")
        rule = self.catalog.activation
        if rule is None or not list(rule.conditions()):
            return base.select(
                account_id=base.account_id, activated_on=ibis.null("date"), activated=True
            )
        days = self.rule_day(rule, base, [0])
        return days.select(
            account_id=days.account_id, activated_on=days.day, activated=days.day.notnull()
        )

    # -- engagement and risk ---------------------------------------------------------------------
    def engagement(self) -> ir.Table:
        u = self.usage
        recent = u.filter(u.day >= self.d30)
        prev = u.filter((u.day >= self.d60) & (u.day < self.d30))
        ev = recent.group_by("account_id").aggregate(
            events_30d=recent.n.sum(), active_days_30d=recent.day.nunique()
        )
        pv = prev.group_by("account_id").aggregate(events_prev_30d=prev.n.sum())
        fu = recent.filter((recent.event == FEATURE_USED) & (recent.key != ""))
        br = fu.group_by("account_id").aggregate(breadth_30d=fu.key.nunique())
        us = self.users.filter(self.users.day >= self.d30)
        per_user = us.group_by("account_id", "user_id").aggregate(n=us.n.sum(), days=us.count())
        ranked = per_user.mutate(rank=ibis.percent_rank().over(order_by=per_user.n))
        ua = ranked.group_by("account_id").aggregate(
            active_users_30d=ranked.count(),
            user_days=ranked.days.sum(),
            power_users=ibis.ifelse(ranked["rank"] >= POWER_USER_RANK, 1, 0).sum(),
        )
        t = _attach(self.accounts.select("account_id"), ev, pv, br, ua)
        users = t.active_users_30d.fill_null(0)
        return t.select(
            account_id=t.account_id,
            events_30d=t.events_30d.fill_null(0).cast("int64"),
            events_prev_30d=t.events_prev_30d.fill_null(0).cast("int64"),
            active_days_30d=t.active_days_30d.fill_null(0).cast("int64"),
            breadth_30d=t.breadth_30d.fill_null(0).cast("int64"),
            active_users_30d=users.cast("int64"),
            power_users=t.power_users.fill_null(0).cast("int64"),
            days_per_user=ibis.ifelse(
                users > 0, t.user_days / users.cast("float64"), ibis.null("float64")
            ),
            dau_mau=ibis.ifelse(
                users > 0,
                t.user_days.cast("float64") / _f(WINDOW) / users.cast("float64"),
                ibis.null("float64"),
            ),
        )

    def risk(self) -> ir.Table:
        u = self.usage
        failures = self._count(
            self._window(self._events(PAYMENT_FAILED), self.d30), "payment_failures_30d"
        )
        tickets = u.filter(u.event.isin([SUPPORT_TICKET_OPENED, SUPPORT_TICKET_CLOSED]))
        open_ = tickets.group_by("account_id").aggregate(
            open_tickets=ibis.greatest(
                ibis.ifelse(tickets.event == SUPPORT_TICKET_OPENED, tickets.n, -tickets.n).sum(), 0
            )
        )
        s = u.filter((u.event == SURVEY_ANSWERED) & u.last_value.notnull())
        nps = s.group_by("account_id").aggregate(nps_score=s.last_value.argmax(s.last_at))
        d = self._window(self._events(DOWNGRADE_REQUESTED), self.d30)
        down = d.group_by("account_id").aggregate(downgrade_requested_to=d.key.argmax(d.last_at))
        c = self._window(self._events(CANCEL_REQUESTED), self.d30)
        cancel = c.group_by("account_id").aggregate(cancel_requested=c.count() > 0)
        return _attach(self.accounts.select("account_id"), failures, open_, nps, down, cancel)

    # -- the whole ------------------------------------------------------------------------------
    def accounts_table(self, plan: ir.Table) -> ir.Table:
        a = self.accounts
        t = _attach(a, plan, self.paid_before(), self.activation(), self.engagement(), self.risk())
        zero = ("events_30d", "events_prev_30d", "active_days_30d", "breadth_30d",
                "active_users_30d", "power_users", "payment_failures_30d", "open_tickets")  # fmt: skip
        return t.select(
            account_id=t.account_id,
            created_day=t.created_at.date(),
            tenure_days=self.day.delta(t.created_at.date(), unit="day").cast("int64"),
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
            **{name: t[name].fill_null(0).cast("int64") for name in zero},
        )

    def co_adoption(self) -> ir.Table:
        h = self.held().select("account_id", "item_id").distinct()
        total = h.account_id.nunique().as_scalar()
        counts = h.group_by("item_id").aggregate(holders=h.count())
        a = h.rename(antecedent="item_id")
        b = h.rename(consequent="item_id")
        pairs = a.join(b, "account_id").filter(lambda t: t.antecedent != t.consequent)
        both = pairs.group_by("antecedent", "consequent").aggregate(accounts=pairs.count())
        ca = counts.rename(n_a="holders", antecedent="item_id")
        cb = counts.rename(n_b="holders", consequent="item_id")
        j = both.join(ca, "antecedent").join(cb, "consequent")
        n = total.cast("float64")
        return j.select(
            antecedent=j.antecedent,
            consequent=j.consequent,
            accounts=j.accounts.cast("int64"),
            support=j.accounts / n,
            confidence=j.accounts / j.n_a.cast("float64"),
            lift=(j.accounts / j.n_a.cast("float64")) / (j.n_b / n),
        )

    def upgrade_patterns(self) -> ir.Table:
        """Features used in the 30 days before a move to a higher plan, against all accounts that
        used them on that lower plan (lift = upgrade rate among users / base upgrade rate)."""
        s = self.subs.join(self.items, "item_id").filter(lambda t: t.item_kind == "plan")
        s = s.filter(s.status != "trialing")
        frm = s.select(
            account_id=s.account_id, from_plan=s.item_id, from_tier=s.tier,
            f_start=s.started_at, f_end=s.ended_at,
        )  # fmt: skip
        to = s.select(account_id=s.account_id, to_tier=s.tier, t_start=s.started_at)
        up = frm.join(
            to,
            (frm.account_id == to.account_id)
            & (frm.f_end == to.t_start)
            & (to.to_tier > frm.from_tier),
        ).select(account_id=frm.account_id, from_plan=frm.from_plan, up_day=to.t_start.date())
        fu = self.usage.filter((self.usage.event == FEATURE_USED) & (self.usage.key != ""))
        before = fu.join(
            up,
            (fu.account_id == up.account_id)
            & (fu.day >= up.up_day - ibis.literal(WINDOW).as_interval("D"))
            & (fu.day < up.up_day),
        )
        with_f = before.group_by(from_plan=before.from_plan, feature=before.key).aggregate(
            upgrades=before.account_id.nunique()
        )
        on_plan = fu.join(
            frm,
            (fu.account_id == frm.account_id)
            & (fu.day >= frm.f_start.date())
            & (frm.f_end.isnull() | (fu.day < frm.f_end.date())),
        )
        users_f = on_plan.group_by(from_plan=on_plan.from_plan, feature=on_plan.key).aggregate(
            users=on_plan.account_id.nunique()
        )
        plan_accounts = frm.group_by("from_plan").aggregate(holders=frm.account_id.nunique())
        plan_ups = up.group_by("from_plan").aggregate(upgraders=up.account_id.nunique())
        j = (
            with_f.join(users_f, ["from_plan", "feature"])
            .join(plan_accounts, "from_plan")
            .join(plan_ups, "from_plan")
        )
        rate = j.upgrades / j.users.cast("float64")
        base = j.upgraders / j.holders.cast("float64")
        return j.select(
            from_plan=j.from_plan,
            feature=j.feature,
            upgrades=j.upgrades.cast("int64"),
            lift=(rate / base).cast("float64"),
        )

    def build(self) -> SignalTables:
        plan = self.plan()
        periods = self.period_start(plan)
        metrics = self.metrics(plan, periods)
        return SignalTables(
            accounts=self.accounts_table(plan),
            metrics=metrics,
            features=self.features(),
            signals=self.named_signals(),
            usage=self.usage_spend(metrics, periods),
            co_adoption=self.co_adoption(),
            upgrade_patterns=self.upgrade_patterns(),
        )


def _f(x: float) -> ir.FloatingScalar:
    """A float64 literal (a bare Python float is a DECIMAL literal on Spark)."""
    return ibis.literal(float(x), "float64")


def _attach(base: ir.Table, *others: ir.Table) -> ir.Table:
    """`base` with the columns of each of `others` left-joined on account_id."""
    for other in others:
        j = base.left_join(other, base.account_id == other.account_id)
        base = j.select(
            *(base[c] for c in base.columns),
            *(other[c] for c in other.columns if c != "account_id"),
        )
    return base


def _empty_metrics(backend: Backend) -> ir.Table:
    schema = pa.schema(
        [("account_id", pa.string()), ("metric", pa.string()), ("kind", pa.string()),
         ("value", pa.float64()), ("limit", pa.float64()), ("slope_per_day", pa.float64()),
         ("days_to_limit", pa.float64()), ("limit_reached_30d", pa.int64()),
         ("last_units", pa.float64())]
    )  # fmt: skip
    return backend.table(schema.empty_table(), "no_metrics")


def build_signals(
    backend: Backend,
    *,
    accounts: ir.Table,
    subscriptions: ir.Table,
    usage: ir.Table,
    users: ir.Table,
    catalog: Catalog,
    as_of: date,
) -> SignalTables:
    """The signal tables as Ibis expressions (nothing runs until they are executed)."""
    b = _Builder(
        backend,
        accounts=accounts,
        subscriptions=subscriptions,
        usage=usage,
        users=users,
        catalog=catalog,
        as_of=as_of,
    )
    return b.build()


def execute(backend: Backend, tables: SignalTables) -> dict[str, pa.Table]:
    """Run every table; rows sorted by their keys so that back ends can be compared."""
    out: dict[str, pa.Table] = {}
    for name in tables.names():
        expr: ir.Table = getattr(tables, name)
        out[name] = backend.arrow(expr.order_by(list(KEYS[name])))
    return out
