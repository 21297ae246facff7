"""A simulated subscription business whose customers follow hidden, known rules.

`World` advances one day at a time over all accounts at once (numpy arrays, one element per account)
and writes what happens in the shapes of data-contract.md: events in Segment's track shape, one
subscription row per period an item was held, and account rows with their gauges as traits.

Every random draw is a hash of (seed, purpose, account, day, n) (see `_random`), so an account's life
depends only on its own state: `counterfactual()` replays the same seed without offers, and any
difference between the two worlds is caused by the offers. The rules are documented in
docs/simulator.md.

The world holds the accounts' state and runs the day; the rest is split by what it holds: what to
simulate (config.py), the catalog as arrays (items.py), the subscription rows (rows.py), the daily usage (usage.py), the
accounts' lifecycle (lifecycle.py), the hidden model of how customers answer offers (responses.py)
and the output tables (tables.py). Those modules' functions take the world as their first argument
and make their random draws and events through its `_u`, `_at`, `_emit` and `_repeat`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from upsell.config.catalog import parse_catalog
from upsell.domain.catalog import Catalog
from upsell.simulator import _random as rnd
from upsell.simulator import lifecycle, responses, usage
from upsell.simulator.config import DAY_US, SimConfig, SimulationError
from upsell.simulator.items import Items
from upsell.simulator.population import COUNTRIES, Population
from upsell.simulator.profiles import PROFILES, Profile, catalog_text
from upsell.simulator.rows import TRIALING, Rows
from upsell.simulator.tables import (
    EVENT_SCHEMA,
    DayEvents,
    account_table,
    events_table,
    subscription_table,
)

__all__ = [
    "EVENT_SCHEMA",
    "TRIALING",
    "SimConfig",
    "SimulationError",
    "StepResult",
    "World",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

NEVER = -(10**6)


@dataclass
class StepResult:
    """What happened during a step: new events, subscription rows started or changed, and the rows
    of accounts that signed up or whose traits changed (all in data-contract.md's shapes)."""

    events: pa.Table
    subscriptions: pa.Table
    accounts: pa.Table
    offers_accepted: int = 0


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
        #: The first day's midnight (UTC), in microseconds since the epoch.
        self.start_us = (
            int(
                datetime(
                    config.start.year, config.start.month, config.start.day, tzinfo=UTC
                ).timestamp()
            )
            * 1_000_000
        )
        self._decisions_seen: dict[tuple[int, str], int] = {}
        self.items = Items(self.catalog, self.profile)
        self._setup_population()
        self._setup_state()

    # ----------------------------------------------------------------- set-up

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
            [
                self.items.currencies.index(self.items.currency(COUNTRIES[c][1]))
                for c in range(len(COUNTRIES))
            ]
        )[self.pop.country]

        def u(purpose: str) -> F64:
            return rnd.uniform(rnd.stream(cfg.seed, purpose), j)

        # Entry plan by company size, and billing interval.
        small = self.pop.employees < 20
        entry = np.zeros(n, np.int64)
        for mix, mask in ((prof.entry_small, small), (prof.entry_large, ~small)):
            shares = tuple(mix.get(p.id, 0.0) for p in self.items.plans)
            entry[mask] = rnd.choose(
                u("entry")[mask], np.tile(np.asarray(shares), (int(mask.sum()), 1))
            )
        self.entry_plan = entry
        self.yearly = (u("yearly") < prof.yearly_share) & ~self.items.plan_free[entry]
        # Which features each account wants, how much, and when it discovers them.
        nf = len(self.items.features)
        want_u = np.stack([u(f"want:{f}") for f in self.items.features], axis=1)
        big = (self.pop.employees >= 50)[:, None]
        tier = self.items.feature_tier[None, :]
        p_want = np.where(
            tier < 0.5, 1.0, prof.wants_higher_features * 0.6 ** np.maximum(tier - 1, 0)
        ) * np.where(big & (tier >= self.items.n_plans - 1), 2.0, 1.0)
        self.wants = want_u < p_want
        weight_u = np.stack([u(f"weight:{f}") for f in self.items.features], axis=1)
        self.feature_weight = np.where(self.wants, 0.3 + 0.7 * weight_u, 0.0)
        rank = np.argsort(np.argsort(self.items.feature_tier, kind="stable"), kind="stable")
        disc_u = np.stack([u(f"discover:{f}") for f in self.items.features], axis=1)
        self.discover_day = np.ceil(-15.0 * (1 + rank[None, :]) * np.log1p(-disc_u)).astype(
            np.int64
        )
        self.discover_day[:, self.items.feature_tier < 0.5] = 0
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
        self.addon_row = np.full((n, len(self.items.add_ons)), -1, np.int64)
        self.product_row = np.full((n, len(self.items.products)), -1, np.int64)
        self.gauge = {g.metric: np.zeros(n, np.int64) for g in self.profile.trait_gauges}
        self.measured = {g.metric: np.zeros(n) for g in self.profile.measured_gauges}
        self.period_use = {c.metric: np.zeros(n, np.int64) for c in self.profile.counters}
        self.period_index = np.zeros(n, np.int64)
        self.last_limit_hit = {m: np.full(n, NEVER, np.int64) for m in self.items.metrics}
        self.pressure = np.zeros(n)
        self.need_tier = np.zeros(n, np.int64)
        self.bound_metric = np.full(
            n, -1, np.int64
        )  # index into self.items.metrics of the latest limit hit
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
        self.rows = Rows()
        self._day_events: list[DayEvents] = []
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
            subscriptions=subscription_table(self, rows),
            accounts=account_table(self, changed),
            offers_accepted=accepted,
        )

    def counterfactual(self) -> World:
        """The same world, replayed from the same seed to the same day, with no offers made."""
        other = World(self.config)
        other.advance(self.day)
        return other

    def accounts_table(self) -> pa.Table:
        """Every account that has signed up so far, with its current traits."""
        return account_table(self, np.flatnonzero(self.joined))

    def subscriptions_table(self) -> pa.Table:
        return subscription_table(self, np.arange(self.rows.n))

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
        value = self.items.price_value[
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

    def _simulate_day(self) -> pa.Table:
        if self.finished:
            raise SimulationError(
                f"the simulation ends after {self.config.days} days ({self.config.months} months)"
            )
        d = self.day
        lifecycle.signups(self, d)
        lifecycle.scheduled(self, d)
        act = np.flatnonzero(self.using)
        if len(act):
            usage.use(self, d, act)
            lifecycle.moves(self, d, np.flatnonzero(self.using))
        lifecycle.returns(self, d)
        parts, self._day_events = self._day_events, []
        table = events_table(self, parts, d)
        self.day += 1
        return table

    # ----------------------------------------------------------------- draws and events

    def _u(self, purpose: str, accounts: I64, n: npt.ArrayLike = 0) -> F64:
        """A uniform draw in [0, 1) for each account today: a hash of (seed, `purpose`, account,
        day, `n`), the same in any world and whichever module asks."""
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
        """Record today's events `name` of `accounts` (the `nth` of the kind for each), each at a
        second of the day drawn from (name, account, nth). The order of the calls within a day is
        the order the events were made (tables.events_table numbers them by it)."""
        if not len(accounts):
            return
        nth = np.zeros(len(accounts), np.int64) if nth is None else nth
        second = np.floor(self._u(f"second:{name}", accounts, nth) * 86_400).astype(np.int64)
        self._day_events.append(DayEvents(accounts, name, second, nth, user, properties))

    def _at(self, accounts: I64, purpose: str) -> I64:
        """A moment during today for each account (microseconds since the epoch)."""
        second = np.floor(self._u(f"at:{purpose}", accounts) * 86_400).astype(np.int64)
        return self.start_us + self.day * DAY_US + second * 1_000_000

    def _repeat(
        self,
        accounts: I64,
        counts: I64,
        event: str,
        properties: str | pa.Array | None,
        user_max: I64 | None = None,
    ) -> None:
        """`counts[k]` events `event` of `accounts[k]` (nth 0, 1, ...), each by a user drawn below
        `user_max[k]` when it is given (no user otherwise)."""
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

    # ----------------------------------------------------------------- offers

    def _apply_decisions(self, decisions: Sequence[Mapping[str, Any]]) -> int:
        """Make today's offers (responses.py answers them); returns how many were accepted."""
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
