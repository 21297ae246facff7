"""A simulated subscription business whose customers follow hidden, known rules.

`World` advances one day at a time over all accounts at once (numpy arrays, one element per account)
and writes what happens in the shapes of data-contract.md: events in Segment's track shape, one
subscription row per period an item was held, and account rows with their gauges as traits.

Every random draw is a hash of (seed, purpose, account, day, n) (see `_random`), so an account's life
depends only on its own state: `counterfactual()` replays the same seed without offers, and any
difference between the two worlds is caused by the offers. The rules are documented in
docs/simulator.md; `responses.py` holds the hidden model of how customers answer offers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from upsell.columns import TIMESTAMP, input_schema
from upsell.config.catalog import parse_catalog
from upsell.domain.calendar import add_months
from upsell.domain.catalog import AddOn, BusinessModel, Catalog, Condition, Plan, Product
from upsell.domain.events import (
    CANCEL_REQUESTED,
    DOWNGRADE_REQUESTED,
    FEATURE_BLOCKED,
    LIMIT_REACHED,
    PAYMENT_FAILED,
    SUPPORT_TICKET_CLOSED,
    SUPPORT_TICKET_OPENED,
    SURVEY_ANSWERED,
)
from upsell.domain.money import INTERVALS
from upsell.domain.subscriptions import STATUSES, row_mrr
from upsell.errors import UpsellError
from upsell.simulator import _random as rnd
from upsell.simulator import responses
from upsell.simulator.population import COUNTRIES, INDUSTRIES, RESPONSE_TYPES, Population
from upsell.simulator.profiles import PROFILES, Profile, catalog_text

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

NEVER = -(10**6)
#: Share of would-be uses of a locked feature that are actually attempted (and blocked).
LOCKED_TRY = 0.3
#: Statuses by number, in `STATUSES`' order: what the world's row arrays hold.
TRIALING, ACTIVE, PAST_DUE, CANCELED = (
    STATUSES.index(s) for s in ("trialing", "active", "past_due", "canceled")
)
_DAY_US = 86_400_000_000
_SATISFACTION_REASONS = {
    "detractor": ("too expensive", "missing features", "hard to use", "slow support"),
    "passive": ("does the job", "some features missing", "price is fair"),
    "promoter": ("saves us time", "easy to use", "great support", "the team loves it"),
}
_CANCEL_REASONS = ("too expensive", "not using it enough", "switching tool", "company closed")

EVENT_SCHEMA = input_schema("events")
SUBSCRIPTION_SCHEMA = input_schema("subscriptions")
ACCOUNT_SCHEMA = input_schema("accounts")


class SimulationError(UpsellError, ValueError):
    """A simulation was asked for something impossible (bad size, unknown model, bad decision)."""


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. The same config always gives the same world, byte for byte."""

    accounts: int = 5000
    months: int = 12
    model: BusinessModel = "saas"
    seed: int = 0
    start: date = date(2025, 11, 1)

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise SimulationError(f"accounts must be at least 1, got {self.accounts}")
        if self.months < 1:
            raise SimulationError(f"months must be at least 1, got {self.months}")
        if self.model not in PROFILES:
            known = ", ".join(sorted(PROFILES))
            raise SimulationError(f"unknown business model {self.model!r}; choose one of {known}")
        if self.seed < 0:
            raise SimulationError(f"seed must not be negative, got {self.seed}")

    @property
    def days(self) -> int:
        return (add_months(self.start, self.months) - self.start).days


@dataclass
class _Events:
    """One generator's events of a day: parallel arrays plus properties (None = no properties)."""

    account: I64
    name: str
    second: I64
    nth: I64
    user: I64 | None = None
    properties: pa.Array | str | None = None


@dataclass
class StepResult:
    """What happened during a step: new events, subscription rows started or changed, and the rows
    of accounts that signed up or whose traits changed (all in data-contract.md's shapes)."""

    events: pa.Table
    subscriptions: pa.Table
    accounts: pa.Table
    offers_accepted: int = 0


class _Rows:
    """Subscription rows, column by column (growable arrays; ``end`` -1 while the item is held)."""

    def __init__(self) -> None:
        self.n = 0
        cap = 1024
        self.account = np.zeros(cap, np.int64)
        self.item = np.zeros(cap, np.int64)
        self.start = np.zeros(cap, np.int64)
        self.end = np.full(cap, -1, np.int64)
        self.interval = np.zeros(cap, np.int64)
        self.status = np.zeros(cap, np.int64)
        self.changed_day = np.zeros(cap, np.int64)

    def _grow(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.account):
            return
        cap = max(need, 2 * len(self.account))
        for name in ("account", "item", "start", "end", "interval", "status", "changed_day"):
            old = getattr(self, name)
            new = np.full(cap, -1 if name == "end" else 0, np.int64)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def add(
        self, account: I64, item: int | I64, start: I64, interval: I64, status: int, day: int
    ) -> I64:
        k = len(account)
        self._grow(k)
        rows = np.arange(self.n, self.n + k, dtype=np.int64)
        self.account[rows], self.item[rows], self.start[rows] = account, item, start
        self.end[rows], self.interval[rows], self.status[rows] = -1, interval, status
        self.changed_day[rows] = day
        self.n += k
        return rows

    def close(self, rows: I64, at: I64, day: int, status: int | None = None) -> None:
        rows = np.asarray(rows, np.int64)
        keep = rows >= 0
        rows, at = rows[keep], np.broadcast_to(at, keep.shape)[keep]
        self.end[rows] = at
        self.changed_day[rows] = day
        if status is not None:
            self.status[rows] = status


class World:
    """The simulated company. Advance it with `advance` (no offers) or `step` (apply decisions)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.profile: Profile = PROFILES[config.model]
        self.catalog_yaml = catalog_text(config.model)
        self.catalog: Catalog = parse_catalog(
            self.catalog_yaml, f"<{config.model} catalog>"
        ).catalog
        self.day = 0
        self._start_us = (
            int(
                datetime(
                    config.start.year, config.start.month, config.start.day, tzinfo=UTC
                ).timestamp()
            )
            * 1_000_000
        )
        self._decisions_seen: dict[tuple[int, str], int] = {}
        self._setup_catalog()
        self._setup_population()
        self._setup_state()

    # ----------------------------------------------------------------- set-up

    def _setup_catalog(self) -> None:
        cat = self.catalog
        self.plans: tuple[Plan, ...] = cat.plans
        self.add_ons: tuple[AddOn, ...] = cat.add_ons
        self.products: tuple[Product, ...] = cat.products
        self.items: list[str] = (
            [p.id for p in self.plans]
            + [a.id for a in self.add_ons]
            + [p.id for p in self.products]
        )
        self.item_index = {item: k for k, item in enumerate(self.items)}
        self.n_plans = len(self.plans)
        self.addon_base = self.n_plans
        self.product_base = self.n_plans + len(self.add_ons)
        self.plan_free = np.array([p.prices["month"].amount == 0 for p in self.plans])
        self.top_self_serve = max(k for k, p in enumerate(self.plans) if not p.sales_assisted)
        # Features: every feature any plan or add-on unlocks, with the tier that first has it.
        features: dict[str, float] = {}
        for k, plan in enumerate(self.plans):
            for f in sorted(plan.features):
                features.setdefault(f, float(k))
        for a in self.add_ons:
            lowest = min(self.item_index[r] for r in a.requires) if a.requires else 0
            for f in sorted(a.features):
                features.setdefault(f, lowest + 0.5)
        self.features = list(features)
        self.feature_tier = np.array([features[f] for f in self.features])
        self.plan_has = np.array(
            [[f in p.features for f in self.features] for p in self.plans], dtype=bool
        )
        self.addon_has = np.array(
            [[f in a.features for f in self.features] for a in self.add_ons], dtype=bool
        ).reshape(len(self.add_ons), len(self.features))
        # Limits per plan for the simulated metrics (inf = unlimited), and add-on grants.
        self.metrics = (
            [g.metric for g in self.profile.trait_gauges]
            + [g.metric for g in self.profile.measured_gauges]
            + [c.metric for c in self.profile.counters]
        )
        self.plan_limit = {
            m: np.array(
                [float(p.limits[m]) if p.limits.get(m) is not None else np.inf for p in self.plans]
            )
            for m in self.metrics
        }
        self.addon_grant = {
            m: np.array([float(a.grants.get(m, 0)) for a in self.add_ons]) for m in self.metrics
        }
        self.currencies = sorted({c[1] for c in COUNTRIES})
        # Unit prices as strings, [item][interval][currency]; None where the item has no such price.
        self.price_text: list[list[list[str | None]]] = []
        self.price_value: F64 = np.zeros((len(self.items), 2, len(self.currencies)))
        for item in self.items:
            per_interval: list[list[str | None]] = []
            for v, interval in enumerate(INTERVALS):
                row: list[str | None] = []
                for c, cur in enumerate(self.currencies):
                    money = cat.price(item, interval, self._currency(cur))
                    row.append(f"{money.amount:.2f}" if money else None)
                    if money:
                        mrr = row_mrr(money, 1, interval, "active", cat.fx)
                        self.price_value[self.item_index[item], v, c] = float(mrr.amount)
                per_interval.append(row)
            self.price_text.append(per_interval)

    def _currency(self, currency: str) -> str:
        return (
            currency
            if currency == self.catalog.currency or currency in self.catalog.fx.rates
            else self.catalog.currency
        )

    def _setup_population(self) -> None:
        cfg, prof = self.config, self.profile
        self.pop = Population.draw(
            seed=cfg.seed,
            size=cfg.accounts,
            days=cfg.days,
            goals=len(prof.goal_signals),
            activation_share=prof.activation_share,
            activation_days=prof.activation_days,
            users_per_employee=prof.users_per_employee,
        )
        n = cfg.accounts
        j = np.arange(n, dtype=np.int64)
        width = max(5, len(str(n)))
        self.account_ids = pa.array([f"a-{k + 1:0{width}d}" for k in range(n)], pa.string())
        self.currency_index = np.array(
            [self.currencies.index(self._currency(COUNTRIES[c][1])) for c in range(len(COUNTRIES))]
        )[self.pop.country]

        def u(purpose: str) -> F64:
            return rnd.uniform(rnd.stream(cfg.seed, purpose), j)

        # Entry plan by company size, and billing interval.
        small = self.pop.employees < 20
        entry = np.zeros(n, np.int64)
        for mix, mask in ((prof.entry_small, small), (prof.entry_large, ~small)):
            shares = tuple(mix.get(p.id, 0.0) for p in self.plans)
            entry[mask] = rnd.choose(
                u("entry")[mask], np.tile(np.asarray(shares), (int(mask.sum()), 1))
            )
        self.entry_plan = entry
        self.yearly = (u("yearly") < prof.yearly_share) & ~self.plan_free[entry]
        # Which features each account wants, how much, and when it discovers them.
        nf = len(self.features)
        want_u = np.stack([u(f"want:{f}") for f in self.features], axis=1)
        big = (self.pop.employees >= 50)[:, None]
        tier = self.feature_tier[None, :]
        p_want = np.where(
            tier < 0.5, 1.0, prof.wants_higher_features * 0.6 ** np.maximum(tier - 1, 0)
        ) * np.where(big & (tier >= self.n_plans - 1), 2.0, 1.0)
        self.wants = want_u < p_want
        weight_u = np.stack([u(f"weight:{f}") for f in self.features], axis=1)
        self.feature_weight = np.where(self.wants, 0.3 + 0.7 * weight_u, 0.0)
        rank = np.argsort(np.argsort(self.feature_tier, kind="stable"), kind="stable")
        disc_u = np.stack([u(f"discover:{f}") for f in self.features], axis=1)
        self.discover_day = np.ceil(-15.0 * (1 + rank[None, :]) * np.log1p(-disc_u)).astype(
            np.int64
        )
        self.discover_day[:, self.feature_tier < 0.5] = 0
        assert self.discover_day.shape == (n, nf)
        # Counter-metric adopters and their level.
        self.counter_adopts = {
            c.metric: u(f"adopts:{c.metric}") < c.adopters for c in prof.counters
        }
        self.counter_level = {
            c.metric: np.exp(0.8 * rnd.normal(rnd.stream(cfg.seed, f"level:{c.metric}"), j) - 0.32)
            for c in prof.counters
        }

    def _setup_state(self) -> None:
        n = self.config.accounts
        self.joined = np.zeros(n, bool)
        self.using = np.zeros(n, bool)  # uses the product (not dormant, not churned)
        self.plan = np.full(n, -1, np.int64)
        self.interval = self.yearly.astype(np.int64)
        self.plan_row = np.full(n, -1, np.int64)
        self.plan_since = np.zeros(n, np.int64)
        self.addon_row = np.full((n, len(self.add_ons)), -1, np.int64)
        self.product_row = np.full((n, len(self.products)), -1, np.int64)
        self.gauge = {g.metric: np.zeros(n, np.int64) for g in self.profile.trait_gauges}
        self.measured = {g.metric: np.zeros(n) for g in self.profile.measured_gauges}
        self.period_use = {c.metric: np.zeros(n, np.int64) for c in self.profile.counters}
        self.period_index = np.zeros(n, np.int64)
        self.last_limit_hit = {m: np.full(n, NEVER, np.int64) for m in self.metrics}
        self.pressure = np.zeros(n)
        self.need_tier = np.zeros(n, np.int64)
        self.bound_metric = np.full(
            n, -1, np.int64
        )  # index into self.metrics of the latest limit hit
        self.activated = np.zeros(n, bool)
        self.activation_day = np.full(n, -1, np.int64)
        self.payfail_until = np.full(n, NEVER, np.int64)
        self.bad_support_until = np.full(n, NEVER, np.int64)
        self.ticket_close_day = np.full(n, -1, np.int64)
        self.ticket_open_day = np.full(n, -1, np.int64)
        self.detractor = np.zeros(n, bool)
        self.contacts = np.full((n, 4), NEVER, np.int64)  # days of the four latest contacts
        self.pushed_until = np.full(n, NEVER, np.int64)  # a sleeping dog was pushed: churn risk up
        self.cancel_day = np.full(n, -1, np.int64)
        self.downgrade_day = np.full(n, -1, np.int64)
        self.downgrade_to = np.full(n, -1, np.int64)
        self.trial_item = np.full(n, -1, np.int64)
        self.trial_row = np.full(n, -1, np.int64)
        self.trial_end = np.full(n, -1, np.int64)
        self.trial_converts = np.zeros(n, bool)
        self.ever_paid = np.zeros(n, bool)
        self.churned_day = np.full(n, -1, np.int64)
        self.traits_changed = np.full(n, -1, np.int64)
        self.rows = _Rows()
        self._day_events: list[_Events] = []
        #: (day, account, offer_id, P(accept), accepted) for every offer made: the hidden truth.
        self.offer_log: list[tuple[int, int, str, float, bool]] = []

    # ----------------------------------------------------------------- public API

    @property
    def today(self) -> date:
        return self.config.start + timedelta(days=self.day)

    @property
    def finished(self) -> bool:
        return self.day >= self.config.days

    def advance(self, days: int, on_events: Callable[[pa.Table], None] | None = None) -> None:
        """Simulate `days` days with no offers, handing each day's events to `on_events`."""
        for _ in range(days):
            table = self._simulate_day()
            if on_events is not None and table.num_rows:
                on_events(table)

    def step(self, decisions: Iterable[Mapping[str, Any]], days: int = 7) -> StepResult:
        """Apply `decisions` (data-contract.md's decision lines) today, then simulate `days` days.

        Returns the events of those days, the subscription rows that started or changed, and the
        accounts that signed up or whose traits changed.
        """
        if days < 1:
            raise SimulationError(f"a step lasts at least one day, got {days}")
        first_day = self.day
        accepted = self._apply_decisions(list(decisions))
        tables = []
        for _ in range(days):
            tables.append(self._simulate_day())
        events = pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()
        rows = np.flatnonzero(self.rows.changed_day[: self.rows.n] >= first_day)
        changed = np.flatnonzero(self.traits_changed >= first_day)
        return StepResult(
            events=events,
            subscriptions=self._subscription_table(rows),
            accounts=self._account_table(changed),
            offers_accepted=accepted,
        )

    def counterfactual(self) -> World:
        """The same world, replayed from the same seed to the same day, with no offers made."""
        other = World(self.config)
        other.advance(self.day)
        return other

    def accounts_table(self) -> pa.Table:
        """Every account that has signed up so far, with its current traits."""
        return self._account_table(np.flatnonzero(self.joined))

    def subscriptions_table(self) -> pa.Table:
        return self._subscription_table(np.arange(self.rows.n))

    def mrr(self) -> F64:
        """Each account's MRR now, in the catalog's base currency (metrics.md)."""
        out = np.zeros(self.config.accounts)
        held = np.arange(self.rows.n)
        np.add.at(out, self.rows.account[held], self._row_mrr(held))
        return out

    def mrr_of(self, account: int) -> float:
        """One account's MRR now, in the base currency: `mrr` of one account, from its own rows."""
        rows = [
            int(self.plan_row[account]),
            *self.addon_row[account].tolist(),
            *self.product_row[account].tolist(),
        ]
        return float(sum(self._row_mrr(np.array([row for row in rows if row >= 0], np.int64))))

    def _row_mrr(self, rows: I64) -> F64:
        """The MRR of rows now: the value a month of their item, interval and currency
        (`upsell.domain.subscriptions.row_mrr` of the catalog's price), 0 for a row that ended or
        is in its trial."""
        r = self.rows
        held = (r.end[rows] < 0) & (r.status[rows] != TRIALING)
        value = self.price_value[
            r.item[rows], r.interval[rows], self.currency_index[r.account[rows]]
        ]
        return np.where(held, value, 0.0)

    def account_index(self, account_id: str) -> int:
        try:
            k = int(account_id.rsplit("-", 1)[1]) - 1
        except (IndexError, ValueError):
            k = -1
        if not 0 <= k < self.config.accounts or self.account_ids[k].as_py() != account_id:
            raise SimulationError(f"unknown account {account_id!r}")
        return k

    # ----------------------------------------------------------------- one day

    def _u(self, purpose: str, accounts: I64, n: npt.ArrayLike = 0) -> F64:
        return rnd.uniform(rnd.stream(self.config.seed, purpose), accounts, self.day, n)

    def _emit(
        self,
        accounts: I64,
        name: str,
        *,
        properties: pa.Array | str | None = None,
        user: I64 | None = None,
        nth: I64 | None = None,
    ) -> None:
        if not len(accounts):
            return
        nth = np.zeros(len(accounts), np.int64) if nth is None else nth
        second = np.floor(self._u(f"second:{name}", accounts, nth) * 86_400).astype(np.int64)
        self._day_events.append(_Events(accounts, name, second, nth, user, properties))

    def _simulate_day(self) -> pa.Table:
        if self.finished:
            raise SimulationError(
                f"the simulation ends after {self.config.days} days ({self.config.months} months)"
            )
        d = self.day
        self._signups(d)
        self._scheduled(d)
        act = np.flatnonzero(self.using)
        if len(act):
            self._usage(d, act)
            self._lifecycle(d, np.flatnonzero(self.using))
        self._returns(d)
        table = self._events_table(d)
        self.day += 1
        return table

    def _at(self, accounts: I64, purpose: str) -> I64:
        """A moment during today for each account (microseconds since the epoch)."""
        second = np.floor(self._u(f"at:{purpose}", accounts) * 86_400).astype(np.int64)
        return self._start_us + self.day * _DAY_US + second * 1_000_000

    def _signups(self, d: int) -> None:
        lo, hi = np.searchsorted(self.pop.signup_day, [d, d + 1])
        new = np.arange(lo, hi, dtype=np.int64)
        if not len(new):
            return
        self.joined[new] = self.using[new] = True
        self.traits_changed[new] = d
        for g in self.profile.trait_gauges:
            self.gauge[g.metric][new] = 1
        at = (
            self._start_us
            + d * _DAY_US
            + np.floor(self._u("signup_at", new) * 43_200).astype(np.int64) * 1_000_000
        )
        self._start_plan(new, self.entry_plan[new], at, d)
        plans = pa.array([f'{{"plan": "{p.id}"}}' for p in self.plans])
        self._emit(
            new,
            self.profile.signup_event,
            properties=plans.take(self.entry_plan[new]),
            user=np.zeros(len(new), np.int64),
        )
        # First steps towards activation: all but one of each counted condition.
        for event, props, count in self._activation_steps():
            if count > 1:
                self._repeat(
                    new,
                    np.full(len(new), count - 1),
                    event,
                    props,
                    user_max=np.ones(len(new), np.int64),
                )

    def _activation_steps(self) -> list[tuple[str, str | None, int]]:
        rule = self.catalog.activation
        if rule is None:
            return []
        steps = []
        parts = list(rule.all_of) + list(rule.any_of[:1])
        for part in parts:
            for cond in [part] if isinstance(part, Condition) else list(part.conditions()):
                props = json.dumps(dict(cond.where)) if cond.where else None
                steps.append((cond.event, props, cond.at_least))
        return steps

    def _repeat(
        self,
        accounts: I64,
        counts: I64,
        event: str,
        properties: str | pa.Array | None,
        user_max: I64 | None = None,
    ) -> None:
        counts = np.asarray(counts, np.int64)
        keep = counts > 0
        accounts, counts = accounts[keep], counts[keep]
        if not len(accounts):
            return
        acct = np.repeat(accounts, counts)
        starts = np.cumsum(counts) - counts
        nth = np.arange(len(acct), dtype=np.int64) - np.repeat(starts, counts)
        users = None
        if user_max is not None:
            um = np.repeat(user_max[keep], counts)
            users = np.floor(self._u(f"user:{event}", acct, nth) * um).astype(np.int64)
        if isinstance(properties, pa.Array):
            array: Any = properties
            properties = array.filter(pa.array(keep)).take(
                pa.array(np.repeat(np.arange(len(counts)), counts))
            )
        self._emit(acct, event, properties=properties, user=users, nth=nth)

    # ----------------------------------------------------------------- plans and rows

    def _start_plan(self, accounts: I64, plans: I64, at: I64, d: int) -> None:
        """Close each account's current plan row (if any) and open one for `plans` at `at`."""
        self.rows.close(self.plan_row[accounts], at, d)
        self.plan_row[accounts] = self.rows.add(
            accounts, plans, at, self.interval[accounts], ACTIVE, d
        )
        self.plan[accounts] = plans
        self.plan_since[accounts] = d
        self.period_index[accounts] = 0
        paid = ~self.plan_free[plans]
        self.ever_paid[accounts[paid]] = True
        # Add-ons the new plan does not allow end with the change.
        for k, a in enumerate(self.add_ons):
            allowed = (
                np.isin(plans, [self.item_index[r] for r in a.requires])
                if a.requires
                else np.ones(len(plans), bool)
            )
            drop = accounts[(self.addon_row[accounts, k] >= 0) & ~allowed]
            if len(drop):
                self.rows.close(self.addon_row[drop, k], at[np.isin(accounts, drop)], d)
                self.addon_row[drop, k] = -1
        # A lower limit than the account uses: it removes what the plan no longer allows.
        for g in self.profile.trait_gauges:
            value = self.gauge[g.metric][accounts]
            limit = self._limit(g.metric, accounts)
            excess = np.where(value > limit, value - np.minimum(value, limit), 0).astype(np.int64)
            if excess.any():
                self._repeat(
                    accounts, excess, g.down_event, None, user_max=np.ones(len(accounts), np.int64)
                )
                self.gauge[g.metric][accounts] = value - excess
                self.traits_changed[accounts[excess > 0]] = d

    def _limit(self, metric: str, accounts: I64) -> F64:
        plans = self.plan[accounts]
        limit = self.plan_limit[metric][np.maximum(plans, 0)].copy()
        grants = self.addon_grant[metric]
        for k in np.flatnonzero(grants):
            limit += grants[k] * (self.addon_row[accounts, k] >= 0)
        return limit

    def _available(self, accounts: I64) -> B:
        have = self.plan_has[np.maximum(self.plan[accounts], 0)].copy()
        for k in range(len(self.add_ons)):
            have |= (self.addon_row[accounts, k] >= 0)[:, None] & self.addon_has[k][None, :]
        return have

    def _hit_limit(self, accounts: I64, metric: str, weight: float, every_days: int = 7) -> None:
        d = self.day
        last = self.last_limit_hit[metric]
        fresh = accounts[last[accounts] <= d - every_days]
        self.pressure[accounts] += weight
        self.bound_metric[accounts] = self.metrics.index(metric)
        if len(fresh):
            last[fresh] = d
            props = json.dumps({"metric": metric})
            self._emit(fresh, LIMIT_REACHED, properties=props, user=np.zeros(len(fresh), np.int64))

    # ----------------------------------------------------------------- usage

    def _usage(self, d: int, act: I64) -> None:
        prof, pop = self.profile, self.pop
        tenure = d - pop.signup_day[act]
        settled = 1.0 - np.exp(-tenure / 45.0)
        activity = pop.engagement[act] * np.where(self.activated[act], 1.0, 0.5)
        self.pressure[act] *= np.exp(-1.0 / 10.0)
        seats_gauge = next((g.metric for g in prof.trait_gauges if g.driver == "team"), None)
        team = self.gauge[seats_gauge][act] if seats_gauge else np.ones(len(act), np.int64)

        # Trait gauges: grow towards the account's target, blocked by the plan's limit.
        for g in prof.trait_gauges:
            value = self.gauge[g.metric][act]
            if g.driver == "team":
                target = 1 + (pop.team_target[act] - 1) * (1 - np.exp(-tenure / 60.0))
            else:
                target = (
                    (g.base + g.per_user * team)
                    * pop.work_factor[act]
                    * (1 - np.exp(-(tenure + 1) / 90.0))
                )
            wants_more = (value + 1 <= target) & (self._u(f"grow:{g.metric}", act) < 0.25)
            limit = self._limit(g.metric, act)
            blocked = wants_more & (value + 1 > limit)
            grow = wants_more & ~blocked
            shrink = ~wants_more & (value > 1) & (self._u(f"shrink:{g.metric}", act) < 0.002)
            self._hit_limit(act[blocked], g.metric, 1.0)
            self.gauge[g.metric][act[grow]] += 1
            self.gauge[g.metric][act[shrink]] -= 1
            changed = act[grow | shrink]
            self.traits_changed[changed] = d
            users = np.zeros(len(act), np.int64)
            self._emit(act[grow], g.up_event, user=users[grow])
            self._emit(act[shrink], g.down_event, user=users[shrink])

        # Measured gauges: a weekly measurement, capped at the limit.
        for m in prof.measured_gauges:
            due = act[(tenure % m.every_days) == 0]
            if not len(due):
                continue
            t_due = d - pop.signup_day[due]
            team_due = self.gauge[seats_gauge][due] if seats_gauge else 1
            value = m.per_user * team_due * pop.work_factor[due] * (0.2 + t_due / 120.0)
            limit = self._limit(m.metric, due)
            over = value > limit
            self._hit_limit(due[over], m.metric, 1.0)
            value = np.round(np.minimum(value, limit), 1)
            self.measured[m.metric][due] = value
            metric = self.catalog.metrics.get(m.metric)
            if metric is None or metric.source_event is None:
                continue
            props = pc.binary_join_element_wise(
                f'{{"{metric.source_property}": ', pc.cast(pa.array(value), pa.string()), "}", ""
            )
            self._emit(due, metric.source_event, properties=props)

        # Counters: daily usage by adopters, throttled at the limit of the billing period.
        period = (d - self.plan_since[act]) // 30
        new_period = period != self.period_index[act]
        self.period_index[act] = period
        for c in prof.counters:
            use = self.period_use[c.metric]
            use[act[new_period]] = 0
            users = act[self.counter_adopts[c.metric][act]]
            if not len(users):
                continue
            k = np.searchsorted(act, users)
            lam = (
                c.per_user_day
                * team[k]
                * self.counter_level[c.metric][users]
                * activity[k]
                * (0.3 + 0.7 * settled[k])
            )
            n = rnd.poisson(self._u(f"count:{c.metric}", users), lam)
            limit = self._limit(c.metric, users)
            room = np.maximum(limit - use[users], 0)
            over = n > room
            self._hit_limit(users[over], c.metric, 1.5, every_days=30)
            n = np.minimum(n, room).astype(np.int64)
            use[users] += n
            metric = self.catalog.metrics.get(c.metric)
            if metric is None or metric.source_event is None:
                continue
            if metric.source_property:
                positive = n > 0
                props = pc.binary_join_element_wise(
                    f'{{"{metric.source_property}": ',
                    pc.cast(pa.array(n[positive]), pa.string()),
                    "}",
                    "",
                )
                self._emit(users[positive], metric.source_event, properties=props)
            else:
                self._repeat(users, n, metric.source_event, None, user_max=team[k])

        # Feature use: active users, each doing a few things; features above the plan are blocked.
        active_users = np.minimum(
            rnd.poisson(self._u("active_users", act), team * prof.user_active_day * activity), team
        )
        n_events = rnd.poisson(
            self._u("feature_events", act),
            active_users * prof.events_per_user_day * (0.5 + 0.5 * settled),
        )
        some = np.flatnonzero(n_events > 0)
        if len(some):
            acct = np.repeat(act[some], n_events[some])
            starts = np.cumsum(n_events[some]) - n_events[some]
            nth = np.arange(len(acct), dtype=np.int64) - np.repeat(starts, n_events[some])
            weights = self.feature_weight[acct] * (
                self.discover_day[acct] <= (d - pop.signup_day[acct])[:, None]
            )
            feature = rnd.choose(self._u("feature", acct, nth), weights + 1e-12)
            available = self._available(act[some])
            avail = np.repeat(available, n_events[some], axis=0)[np.arange(len(acct)), feature]
            # People learn what is locked: most attempts at a locked feature are not made at all.
            tried = avail | (self._u("try_locked", acct, nth) < LOCKED_TRY)
            acct, nth, feature, avail = acct[tried], nth[tried], feature[tried], avail[tried]
            per_acct = np.repeat(active_users[some], n_events[some])[tried]
            user = np.floor(self._u("feature_user", acct, nth) * per_acct).astype(np.int64)
            table = pa.array([json.dumps({"feature": f}) for f in self.features])
            used, blocked = avail, ~avail
            self._emit(
                acct[used],
                prof.feature_used_event,
                properties=table.take(feature[used]),
                user=user[used],
                nth=nth[used],
            )
            if blocked.any():
                b_acct = acct[blocked]
                self._emit(
                    b_acct,
                    FEATURE_BLOCKED,
                    properties=table.take(feature[blocked]),
                    user=user[blocked],
                    nth=nth[blocked],
                )
                np.add.at(self.pressure, b_acct, 0.5)
                # A plan feature calls for that plan; an add-on's feature for the add-on, not a plan.
                tier = self.feature_tier[feature[blocked]]
                is_plan = tier == np.floor(tier)
                np.maximum.at(self.need_tier, b_acct[is_plan], tier[is_plan].astype(np.int64))

        # Activation: the rule's remaining steps on the day the account gets there.
        reach = act[
            pop.activates[act] & ~self.activated[act] & (tenure == pop.activation_delay[act])
        ]
        if len(reach):
            self.activated[reach] = True
            self.activation_day[reach] = d
            for event, props, _count in self._activation_steps():
                self._emit(reach, event, properties=props, user=np.zeros(len(reach), np.int64))

        # Goals show in usage (inbound leads, time tracking): what makes a product relevant.
        for gi, gs in enumerate(prof.goal_signals):
            mine = act[pop.goal[act] == gi]
            if not len(mine):
                continue
            k = np.searchsorted(act, mine)
            n = rnd.poisson(
                self._u(f"goal:{gs.goal}", mine),
                gs.per_day * activity[k] * (0.3 + 0.7 * settled[k]) * np.sqrt(team[k]),
            )
            main = json.dumps(dict(gs.properties)) if gs.properties else None
            if gs.other_share and gs.other_properties:
                acct = np.repeat(mine, n)
                starts = np.cumsum(n) - n
                nth = np.arange(len(acct), dtype=np.int64) - np.repeat(starts, n)
                other = self._u(f"goal_other:{gs.goal}", acct, nth) < gs.other_share
                options = pa.array([main, json.dumps(dict(gs.other_properties))])
                self._emit(acct, gs.event, properties=options.take(other.astype(np.int64)), nth=nth)
            else:
                self._repeat(mine, n, gs.event, main)

        # Support: tickets opened and closed, some badly.
        opening = act[
            (self.ticket_close_day[act] < 0) & (self._u("ticket", act) < 0.004 * (1 + team / 20))
        ]
        if len(opening):
            self.ticket_open_day[opening] = d
            self.ticket_close_day[opening] = (
                d + 1 + np.floor(self._u("ticket_days", opening) * 6).astype(np.int64)
            )
            ids = pc.binary_join_element_wise(self.account_ids.take(opening), str(d), "-")
            props = pc.binary_join_element_wise('{"ticket_id": "', ids, '"}', "")
            self._emit(
                opening,
                SUPPORT_TICKET_OPENED,
                properties=props,
                user=np.zeros(len(opening), np.int64),
            )
        closing = act[self.ticket_close_day[act] == d]
        if len(closing):
            bad = self._u("ticket_bad", closing) < np.where(
                self.pop.satisfaction[closing] < -0.5, 0.35, 0.15
            )
            self.bad_support_until[closing[bad]] = d + 60
            self.ticket_close_day[closing] = -1
            verdict = pa.array(['", "satisfaction": "good"}', '", "satisfaction": "bad"}'])
            ids = pc.binary_join_element_wise(
                self.account_ids.take(closing),
                pc.cast(pa.array(self.ticket_open_day[closing]), pa.string()),
                "-",
            )
            props = pc.binary_join_element_wise(
                '{"ticket_id": "', ids, verdict.take(bad.astype(np.int64)), ""
            )
            self._emit(closing, SUPPORT_TICKET_CLOSED, properties=props)

        # Surveys: NPS after 30 days and every 90 days after that, answered by some.
        asked = act[(tenure >= 30) & ((tenure - 30) % 90 == 0)]
        answer = asked[self._u("survey", asked) < 0.35]
        if len(answer):
            support = (self.bad_support_until[answer] > d).astype(float)
            score = np.clip(
                np.rint(
                    7.6
                    + 1.8 * pop.satisfaction[answer]
                    - 2.5 * support
                    - 0.3 * np.minimum(self.pressure[answer], 5)
                ),
                0,
                10,
            ).astype(np.int64)
            self.detractor[answer] = score <= 6
            band = np.where(score <= 6, 0, np.where(score <= 8, 1, 2))
            texts = []
            for s, b, r in zip(
                score.tolist(),
                band.tolist(),
                self._u("survey_reason", answer).tolist(),
                strict=True,
            ):
                options = _SATISFACTION_REASONS[("detractor", "passive", "promoter")[b]]
                texts.append(
                    json.dumps(
                        {"survey": "nps", "score": s, "reason": options[int(r * len(options))]}
                    )
                )
            self._emit(
                answer,
                SURVEY_ANSWERED,
                properties=pa.array(texts),
                user=np.zeros(len(answer), np.int64),
            )

    # ----------------------------------------------------------------- lifecycle

    def _hazard(self, monthly: F64 | float) -> F64:
        return 1.0 - np.power(1.0 - np.asarray(monthly, dtype=np.float64), 1.0 / 30.0)

    def _lifecycle(self, d: int, act: I64) -> None:
        prof, pop = self.profile, self.pop
        plan = self.plan[act]
        paid = act[(plan >= 0) & ~self.plan_free[np.maximum(plan, 0)]]
        free = act[(plan >= 0) & self.plan_free[np.maximum(plan, 0)]]

        # Payment failures.
        failing = paid[self._u("payment", paid) < 0.0015]
        if len(failing):
            self.payfail_until[failing] = d + 30
            self._emit(failing, PAYMENT_FAILED, properties='{"reason": "card_declined"}')

        # Churn of paying accounts: likelier before activation, after payment failures and bad
        # support, for detractors, and after pushing a sleeping dog or contacting too often.
        recent = (self.contacts[paid] > d - 28).sum(axis=1)
        risk = (
            np.where(self.activated[paid], 1.0, 3.0)
            * np.where(self.payfail_until[paid] > d, 3.0, 1.0)
            * np.where(self.bad_support_until[paid] > d, 2.0, 1.0)
            * np.where(self.detractor[paid], 1.5, 1.0)
            * np.where(self.pushed_until[paid] > d, 4.0, 1.0)
            * np.where(recent >= 3, 1.5, 1.0)
        )
        leaving = paid[
            (self.cancel_day[paid] < 0)
            & (
                self._u("churn", paid)
                < self._hazard(np.minimum(prof.paid_churn_monthly * risk, 0.9))
            )
        ]
        if len(leaving):
            self.cancel_day[leaving] = d + 3
            reasons = pa.array([json.dumps({"reason": r}) for r in _CANCEL_REASONS])
            pick = np.floor(self._u("cancel_reason", leaving) * len(_CANCEL_REASONS)).astype(
                np.int64
            )
            self._emit(
                leaving,
                CANCEL_REQUESTED,
                properties=reasons.take(pick),
                user=np.zeros(len(leaving), np.int64),
            )

        # Downgrades: paying for a tier the account does not use.
        tier = self.plan[paid]
        fits_lower = (tier >= 2) & (self.need_tier[paid] < tier) & (self.pressure[paid] < 0.05)
        for g in prof.trait_gauges:
            lower = self.plan_limit[g.metric][np.maximum(tier - 1, 0)]
            fits_lower &= self.gauge[g.metric][paid] <= lower
        down = paid[
            fits_lower
            & (self.downgrade_day[paid] < 0)
            & (self.cancel_day[paid] < 0)
            & (self._u("downgrade", paid) < 0.004)
        ]
        if len(down):
            self.downgrade_day[down] = d + 3
            self.downgrade_to[down] = self.plan[down] - 1
            names = pa.array([json.dumps({"to_plan": p.id}) for p in self.plans])
            self._emit(
                down,
                DOWNGRADE_REQUESTED,
                properties=names.take(self.downgrade_to[down]),
                user=np.zeros(len(down), np.int64),
            )

        # Organic upgrades when limits bind or features are missing.
        cand = act[
            (self.pressure[act] > 0.05)
            & (self.plan[act] >= 0)
            & (self.cancel_day[act] < 0)
            & (self.trial_item[act] < 0)
        ]
        if len(cand):
            rate = np.array([prof.upgrade_hazard[name] for name, _ in RESPONSE_TYPES])[
                pop.response_type[cand]
            ]
            affordable = np.where(pop.employees[cand] < 3, 0.5, 1.0)
            h = (
                rate
                * np.minimum(self.pressure[cand], 5.0)
                * np.where(self.activated[cand], 1.0, 0.3)
                * affordable
            )
            go = cand[self._u("upgrade", cand) < h]
            if len(go):
                self._organic_upgrade(d, go)

        # Free accounts drift away, much faster before they reach the 'aha' moment.
        if len(free):
            on, off = prof.free_dormancy_monthly
            h = self._hazard(np.where(self.activated[free], on, off))
            gone = free[self._u("dormant", free) < h]
            self.using[gone] = False

    def _organic_upgrade(self, d: int, go: I64) -> None:
        at = self._at(go, "upgrade")
        plan = self.plan[go]
        # A binding gauge that an add-on for this plan lifts: some buy the add-on instead.
        bought = np.zeros(len(go), bool)
        for k, a in enumerate(self.add_ons):
            if not a.grants:
                continue
            lifts = np.isin(
                self.bound_metric[go],
                [self.metrics.index(m) for m in a.grants if m in self.metrics],
            )
            ok = (
                lifts
                & np.isin(plan, [self.item_index[r] for r in a.requires])
                & (self.addon_row[go, k] < 0)
                & ~bought
            )
            ok &= self._u(f"buy_addon:{a.id}", go) < 0.4
            sel = go[ok]
            if len(sel):
                self._add_item(sel, self.addon_base + k, at[ok], d)
                bought |= ok
        rest = ~bought
        target = np.maximum(plan + 1, self.need_tier[go])
        big = self.pop.employees[go] >= 100
        target = np.where(
            big, np.minimum(target, self.n_plans - 1), np.minimum(target, self.top_self_serve)
        )
        up = rest & (target > plan)
        if up.any():
            self._start_plan(go[up], target[up], at[up], d)
            self.pressure[go[up]] = 0.0
            self.traits_changed[go[up]] = d

    def _add_item(self, accounts: I64, item: int, at: I64, d: int, status: int = ACTIVE) -> I64:
        rows = self.rows.add(accounts, item, at, self.interval[accounts], status, d)
        if item >= self.product_base:
            self.product_row[accounts, item - self.product_base] = rows
        elif item >= self.addon_base:
            self.addon_row[accounts, item - self.addon_base] = rows
        self.pressure[accounts] = 0.0
        self.ever_paid[accounts] = True
        return rows

    def _scheduled(self, d: int) -> None:
        # Trials end: convert (the trial row ends, a paid row starts) or lapse.
        ending = np.flatnonzero(self.trial_end == d)
        if len(ending):
            at = self._start_us + d * _DAY_US + np.zeros(len(ending), np.int64)
            self.rows.close(self.trial_row[ending], at, d)
            conv = ending[self.trial_converts[ending] & self.using[ending]]
            item = self.trial_item[conv]
            for it in np.unique(item):
                sel = conv[item == it]
                if it < self.n_plans:
                    self._start_plan(sel, np.full(len(sel), it), at[: len(sel)], d)
                else:
                    self._add_item(sel, int(it), at[: len(sel)], d)
            self.trial_item[ending] = self.trial_row[ending] = self.trial_end[ending] = -1
        # Downgrades take effect.
        down = np.flatnonzero(self.downgrade_day == d)
        down = down[self.using[down] & (self.plan[down] > self.downgrade_to[down])]
        if len(down):
            self._start_plan(down, self.downgrade_to[down], self._at(down, "downgrade"), d)
        self.downgrade_day[self.downgrade_day == d] = -1
        # Cancellations take effect: every item ends.
        leave = np.flatnonzero(self.cancel_day == d)
        self.cancel_day[leave] = -1
        leave = leave[self.using[leave]]
        if len(leave):
            at = self._at(leave, "cancel")
            self.rows.close(self.plan_row[leave], at, d, CANCELED)
            for k in range(len(self.add_ons)):
                self.rows.close(self.addon_row[leave, k], at, d, CANCELED)
            for k in range(len(self.products)):
                self.rows.close(self.product_row[leave, k], at, d, CANCELED)
            self.rows.close(self.trial_row[leave], at, d, CANCELED)
            self.plan_row[leave] = self.plan[leave] = -1
            self.addon_row[leave] = self.product_row[leave] = -1
            self.trial_item[leave] = self.trial_row[leave] = self.trial_end[leave] = -1
            self.using[leave] = False
            self.churned_day[leave] = d

    def _returns(self, d: int) -> None:
        """Some activated accounts that cancelled come back on the plan below the one they left."""
        gone = np.flatnonzero(
            (self.churned_day >= 0) & (self.churned_day < d - 30) & self.activated
        )
        back = gone[self._u("return", gone) < 0.0008]
        if len(back):
            self.using[back] = True
            self.churned_day[back] = -1
            first_paid = int(np.flatnonzero(~self.plan_free)[0])
            self._start_plan(back, np.full(len(back), first_paid), self._at(back, "return"), d)
            self._emit(back, "Signed In", user=np.zeros(len(back), np.int64))

    # ----------------------------------------------------------------- offers

    def _apply_decisions(self, decisions: Sequence[Mapping[str, Any]]) -> int:
        d = self.day
        parsed = []
        for position, decision in enumerate(decisions):
            parsed.append(responses.Offer.parse(decision, position=position, world=self))
        parsed.sort(key=lambda o: (o.account, o.offer_id, o.channel))
        accepted = 0
        for n, offer in enumerate(parsed):
            seen = self._decisions_seen.get((offer.account, offer.offer_id), 0)
            self._decisions_seen[(offer.account, offer.offer_id)] = seen + 1
            if accepted_now := responses.respond(self, offer, repeats=seen, nth=n, day=d):
                accepted += accepted_now
            self.contacts[offer.account] = np.roll(self.contacts[offer.account], 1)
            self.contacts[offer.account, 0] = d
        return accepted

    # ----------------------------------------------------------------- tables

    def _events_table(self, d: int) -> pa.Table:
        parts, self._day_events = self._day_events, []
        if not parts:
            return EVENT_SCHEMA.empty_table()
        names = sorted({p.name for p in parts})
        code = {name: k for k, name in enumerate(names)}
        account = np.concatenate([p.account for p in parts])
        second = np.concatenate([p.second for p in parts])
        gen = np.concatenate([np.full(len(p.account), code[p.name], np.int64) for p in parts])
        user = np.concatenate(
            [p.user if p.user is not None else np.full(len(p.account), -1, np.int64) for p in parts]
        )
        props = pa.concat_arrays(
            [
                p.properties
                if isinstance(p.properties, pa.Array)
                else pa.array([p.properties] * len(p.account), pa.string())
                for p in parts
            ]
        )
        # An event's serial number counts the account's events of the day in the order they were
        # made, which depends on nothing but the account's own life: stable across worlds.
        by_account = np.argsort(account, kind="stable")
        sorted_acct = account[by_account]
        first = np.searchsorted(sorted_acct, sorted_acct)
        serial = np.empty(len(account), np.int64)
        serial[by_account] = np.arange(len(account)) - first
        order = np.lexsort((serial, account, second))
        account, second, gen, user, serial = (
            account[order],
            second[order],
            gen[order],
            user[order],
            serial[order],
        )
        ids = self.account_ids.take(account)
        has_user = pa.array(user >= 0)
        user_ids = pc.if_else(
            has_user,
            pc.binary_join_element_wise(
                ids, pc.cast(pa.array(np.maximum(user, 0)), pa.string()), "-u"
            ),
            pa.nulls(len(user), pa.string()),
        )
        stamp = self._start_us + d * _DAY_US + second * 1_000_000
        number = pc.cast(pa.array(d * 10**6 + serial), pa.string())
        return pa.table(
            [
                ids,
                user_ids,
                pa.array(names, pa.string()).take(gen),
                pa.array(stamp, TIMESTAMP),
                props.take(pa.array(order)),
                pc.binary_join_element_wise(ids, number, "-"),
            ],
            schema=EVENT_SCHEMA,
        )

    def _subscription_table(self, rows: I64) -> pa.Table:
        r = self.rows
        rows = np.asarray(rows, np.int64)
        acct = r.account[rows]
        order = np.lexsort((r.item[rows], r.start[rows], acct))
        rows, acct = rows[order], acct[order]
        cur = self.currency_index[acct]
        item, interval = r.item[rows], r.interval[rows]
        prices = [
            self.price_text[i][v][c] or self.price_text[i][0][c]
            for i, v, c in zip(item.tolist(), interval.tolist(), cur.tolist(), strict=True)
        ]
        end = r.end[rows]
        return pa.table(
            [
                self.account_ids.take(acct),
                pa.array(self.items, pa.string()).take(item),
                pa.array(r.start[rows], TIMESTAMP),
                pa.array(np.where(end < 0, 0, end), TIMESTAMP, mask=end < 0),
                pa.array(np.ones(len(rows), np.int64)),
                pa.array(list(INTERVALS), pa.string()).take(interval),
                pa.array(prices, pa.string()),
                pa.array(self.currencies, pa.string()).take(cur),
                pa.array(list(STATUSES), pa.string()).take(r.status[rows]),
            ],
            schema=SUBSCRIPTION_SCHEMA,
        )

    def _account_table(self, accounts: I64) -> pa.Table:
        pop = self.pop
        accounts = np.asarray(accounts, np.int64)
        ids = self.account_ids.take(accounts)
        created = self._start_us + pop.signup_day[accounts] * _DAY_US
        traits: pa.Array = pa.array(["{"] * len(accounts), pa.string())
        gauges = list(self.profile.trait_gauges)
        for k, g in enumerate(gauges):
            piece = pc.binary_join_element_wise(
                f'"{g.metric}": ',
                pc.cast(pa.array(self.gauge[g.metric][accounts]), pa.string()),
                "",
            )
            traits = pc.binary_join_element_wise(traits, piece, ", " if k else "")
        traits = pc.binary_join_element_wise(traits, "}", "")
        country = pop.country[accounts]
        names = [pop.names[k] for k in accounts.tolist()]
        email = pc.binary_join_element_wise("billing@", pc.utf8_lower(ids), ".example.com", "")
        return pa.table(
            [
                ids,
                pa.array(created, TIMESTAMP),
                pa.array(names, pa.string()),
                pa.array([i for i, _ in INDUSTRIES], pa.string()).take(pop.industry[accounts]),
                pa.array(pop.employees[accounts]),
                pa.array([c[0] for c in COUNTRIES], pa.string()).take(country),
                pa.array(self.currencies, pa.string()).take(self.currency_index[accounts]),
                pa.array([c[2] for c in COUNTRIES], pa.string()).take(country),
                email,
                traits,
            ],
            schema=ACCOUNT_SCHEMA,
        )
