"""The world's output tables, in data-contract.md's shapes (the input schemas of `upsell.columns`).

The rules (usage.py, lifecycle.py, responses.py) record a day's events as `DayEvents`, one per call
of `World._emit`; `events_table` turns them into Segment's track shape in a stable order. The
subscription rows (rows.py) and the accounts' traits become their tables the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from upsell.columns import TIMESTAMP, input_schema
from upsell.domain.money import INTERVALS
from upsell.domain.subscriptions import STATUSES
from upsell.simulator.config import DAY_US
from upsell.simulator.population import COUNTRIES, INDUSTRIES

if TYPE_CHECKING:
    from upsell.simulator.world import World

I64 = npt.NDArray[np.int64]

EVENT_SCHEMA = input_schema("events")
SUBSCRIPTION_SCHEMA = input_schema("subscriptions")
ACCOUNT_SCHEMA = input_schema("accounts")


@dataclass
class DayEvents:
    """One generator's events of a day: parallel arrays plus properties (None = no properties)."""

    account: I64
    name: str
    second: I64
    nth: I64
    user: I64 | None = None
    properties: pa.Array | str | None = None


def events_table(world: World, parts: list[DayEvents], d: int) -> pa.Table:
    """Day `d`'s events (`parts`, in the order they were made), ordered by time and account."""
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
    ids = world.account_ids.take(account)
    has_user = pa.array(user >= 0)
    user_ids = pc.if_else(
        has_user,
        pc.binary_join_element_wise(ids, pc.cast(pa.array(np.maximum(user, 0)), pa.string()), "-u"),
        pa.nulls(len(user), pa.string()),
    )
    stamp = world.start_us + d * DAY_US + second * 1_000_000
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


def subscription_table(world: World, rows: I64) -> pa.Table:
    """The subscription rows `rows`, ordered by account, start and item."""
    r = world.rows
    rows = np.asarray(rows, np.int64)
    acct = r.account[rows]
    order = np.lexsort((r.item[rows], r.start[rows], acct))
    rows, acct = rows[order], acct[order]
    cur = world.currency_index[acct]
    item, interval = r.item[rows], r.interval[rows]
    prices = [
        world.items.price_text[i][v][c] or world.items.price_text[i][0][c]
        for i, v, c in zip(item.tolist(), interval.tolist(), cur.tolist(), strict=True)
    ]
    end = r.end[rows]
    return pa.table(
        [
            world.account_ids.take(acct),
            pa.array(world.items.ids, pa.string()).take(item),
            pa.array(r.start[rows], TIMESTAMP),
            pa.array(np.where(end < 0, 0, end), TIMESTAMP, mask=end < 0),
            pa.array(np.ones(len(rows), np.int64)),
            pa.array(list(INTERVALS), pa.string()).take(interval),
            pa.array(prices, pa.string()),
            pa.array(world.items.currencies, pa.string()).take(cur),
            pa.array(list(STATUSES), pa.string()).take(r.status[rows]),
        ],
        schema=SUBSCRIPTION_SCHEMA,
    )


def account_table(world: World, accounts: I64) -> pa.Table:
    """The accounts `accounts` with their current traits (the trait gauges, as a JSON object)."""
    pop = world.pop
    accounts = np.asarray(accounts, np.int64)
    ids = world.account_ids.take(accounts)
    created = world.start_us + pop.signup_day[accounts] * DAY_US
    traits: pa.Array = pa.array(["{"] * len(accounts), pa.string())
    gauges = list(world.profile.trait_gauges)
    for k, g in enumerate(gauges):
        piece = pc.binary_join_element_wise(
            f'"{g.metric}": ',
            pc.cast(pa.array(world.gauge[g.metric][accounts]), pa.string()),
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
            pa.array(world.items.currencies, pa.string()).take(world.currency_index[accounts]),
            pa.array([c[2] for c in COUNTRIES], pa.string()).take(country),
            email,
            traits,
        ],
        schema=ACCOUNT_SCHEMA,
    )
