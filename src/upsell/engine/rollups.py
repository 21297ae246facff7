"""Per-account daily usage rollups, kept incrementally (architecture.md, "Incremental").

Two tables, both additive so that parts computed from different batches of events merge into exactly
what one pass over all events gives:

- ``usage``: one row per (account_id, day, event, key) with the number of events `n`, the sum of the
  event's value property `total`, and the value of the latest event (`last_value` at `last_at`).
  `key` is the one property the catalog cares about for that event (``feature`` of
  ``Feature Blocked``, ``metric`` of ``Limit Reached``, the property a signal's `where` names), or ''.
- ``users``: one row per (account_id, day, user_id) with its number of events.

A run rolls up only the events after the watermark into a new part (two Parquet files) and records
the new watermark; reading merges the parts. A catalog change that alters which properties are kept
(the spec's fingerprint) makes the parts unusable: they are rebuilt from all events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from upsell.domain.catalog import Catalog
from upsell.domain.events import (
    CANCEL_REQUESTED,
    DOWNGRADE_REQUESTED,
    FEATURE_BLOCKED,
    FEATURE_USED,
    LIMIT_REACHED,
    SURVEY_ANSWERED,
    USAGE_CHARGED,
)
from upsell.engine.backends import Backend, EngineError

#: The reserved events of data-contract.md and the property each is keyed or measured by.
RESERVED_KEYS = {
    FEATURE_USED: "feature",
    FEATURE_BLOCKED: "feature",
    LIMIT_REACHED: "metric",
    DOWNGRADE_REQUESTED: "to_plan",
    CANCEL_REQUESTED: "reason",
    USAGE_CHARGED: "item_id",
}
RESERVED_VALUES = {USAGE_CHARGED: "quantity", SURVEY_ANSWERED: "score"}


@dataclass(frozen=True)
class RollupSpec:
    """Which property keys each event's rows and which numeric property they add up."""

    keys: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> RollupSpec:
        keys: dict[str, str] = dict(RESERVED_KEYS)
        values: dict[str, str] = dict(RESERVED_VALUES)

        def claim(table: dict[str, str], event: str, prop: str, where: str) -> None:
            if table.setdefault(event, prop) != prop:
                raise EngineError(
                    f"{where}: the engine keeps one property per event and {event!r} already uses "
                    f"{table[event]!r}; {prop!r} cannot be kept as well"
                )

        for metric in catalog.metrics.values():
            if metric.source_event and metric.source_property:
                claim(values, metric.source_event, metric.source_property, f"metrics.{metric.id}")
        wheres = [(f"signals.{s.id}", s.event, s.where) for s in catalog.signals.values()]
        if catalog.activation is not None:
            wheres += [("activation", c.event, c.where) for c in catalog.activation.conditions()]
        for where, event, props in wheres:
            if len(props) > 1:
                raise EngineError(
                    f"{where}: `where` on more than one property is not supported yet"
                )
            for prop in props:
                claim(keys, event, prop, where)
        return cls(keys=keys, values=values)

    @property
    def fingerprint(self) -> str:
        text = json.dumps({"keys": self.keys, "values": self.values}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def rollup(backend: Backend, events: ir.Table, spec: RollupSpec) -> tuple[ir.Table, ir.Table]:
    """The (usage, users) rollups of an events table with columns account_id, user_id, event,
    timestamp and properties (JSON text)."""
    e = events.filter(events.account_id.notnull())

    def per_event(table: Mapping[str, str]) -> ir.StringValue | None:
        if not table:
            return None
        return ibis.cases(
            *(
                (e.event == event, backend.json_text(e.properties, prop))
                for event, prop in table.items()
            )
        )

    key = per_event(spec.keys)
    value = per_event(spec.values)
    facts = e.select(
        account_id=e.account_id,
        user_id=e.user_id,
        day=e.timestamp.date(),
        event=e.event,
        key=(key if key is not None else ibis.null(str)).fill_null(""),
        value=(value if value is not None else ibis.null(str)).try_cast("float64"),
        ts=e.timestamp,
    )
    usage = facts.group_by("account_id", "day", "event", "key").aggregate(
        n=facts.count(),
        total=facts.value.sum(),
        last_at=facts.ts.max(),
        last_value=facts.value.argmax(facts.ts),
    )
    active = facts.filter(facts.user_id.notnull())
    users = active.group_by("account_id", "day", "user_id").aggregate(n=active.count())
    return usage, users


def merge_usage(parts: ir.Table) -> ir.Table:
    """Parts merged into one row per key: counts and totals add, the latest value wins."""
    return parts.group_by("account_id", "day", "event", "key").aggregate(
        n=parts.n.sum(),
        total=parts.total.sum(),
        last_value=parts.last_value.argmax(parts.last_at),
        last_at=parts.last_at.max(),
    )


def merge_users(parts: ir.Table) -> ir.Table:
    return parts.group_by("account_id", "day", "user_id").aggregate(n=parts.n.sum())


USAGE_COLUMNS = ("account_id", "day", "event", "key", "n", "total", "last_at", "last_value")
USERS_COLUMNS = ("account_id", "day", "user_id", "n")


def account_rollups(
    backend: Backend,
    events: ir.Table,
    accounts: ir.Table,
    spec: RollupSpec,
    parts: tuple[ir.Table, ir.Table] | None,
) -> tuple[ir.Table, ir.Table]:
    """The (usage, users) rollups of a few accounts (`accounts`, a table of account_id), from
    `parts` (the stored parts' usage and users rows, `Rollups.part_rows`; None when there are
    none) and `events` (theirs stored since the parts' watermark): the rows a refresh and a read
    would give for those accounts, without writing a part (a real-time trigger's)."""
    usage, users = rollup(backend, events, spec)
    if parts is not None:
        stored_usage, stored_users = (t.semi_join(accounts, "account_id") for t in parts)

        def like(fresh: ir.Table, stored: ir.Table) -> ir.Table:
            types = stored.schema()
            return fresh.select(*(fresh[c].cast(types[c]).name(c) for c in stored.columns))

        usage = merge_usage(stored_usage.union(like(usage, stored_usage)))
        users = merge_users(stored_users.union(like(users, stored_users)))
    # One order of columns, with parts or without: what reads them may be prepared already.
    return usage.select(*USAGE_COLUMNS), users.select(*USERS_COLUMNS)


STATE = "state.json"


class Rollups:
    """The rollup parts in a folder, with the watermark of the events they cover."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state: dict[str, Any] = {"fingerprint": None, "watermark": None, "parts": []}
        path = folder / STATE
        if path.exists():
            self.state = json.loads(path.read_text())

    @property
    def watermark(self) -> Any:
        return self.state["watermark"]

    def usable(self, spec: RollupSpec) -> bool:
        return bool(self.state["parts"]) and self.state["fingerprint"] == spec.fingerprint

    def reset(self) -> None:
        """Forget every part: their files and the state (nothing else in the folder)."""
        for pattern in (STATE, "usage-*.parquet", "users-*.parquet"):
            for path in self.folder.glob(pattern):
                path.unlink()
        self.state = {"fingerprint": None, "watermark": None, "parts": []}

    def add(
        self,
        backend: Backend,
        events: ir.Table,
        spec: RollupSpec,
        *,
        watermark: Any,
        events_read: int,
    ) -> None:
        """Roll up `events` into a new part; the state (and its watermark) is written last, so an
        interrupted run leaves the previous parts and watermark as they were."""
        if self.state["parts"] and self.state["fingerprint"] != spec.fingerprint:
            raise EngineError("the rollups were built for another catalog: rebuild them")
        number = max((p["number"] for p in self.state["parts"]), default=0) + 1
        usage, users = rollup(backend, events, spec)
        backend.write_parquet(usage, self.folder / f"usage-{number:05d}.parquet")
        backend.write_parquet(users, self.folder / f"users-{number:05d}.parquet")
        self.state = {
            "fingerprint": spec.fingerprint,
            "watermark": watermark,
            "parts": [*self.state["parts"], {"number": number, "events": events_read}],
        }
        self._save()

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / (STATE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.folder / STATE)

    def _files(self, kind: str) -> Iterator[Path]:
        for part in self.state["parts"]:
            yield self.folder / f"{kind}-{part['number']:05d}.parquet"

    def usage(self, backend: Backend) -> ir.Table:
        table = self.part_rows(backend, "usage")
        return table if len(self.state["parts"]) == 1 else merge_usage(table)

    def users(self, backend: Backend) -> ir.Table:
        table = self.part_rows(backend, "users")
        return table if len(self.state["parts"]) == 1 else merge_users(table)

    def part_rows(self, backend: Backend, kind: str) -> ir.Table:
        """Every part's rows of `kind` (usage or users), not merged: the view ``usage_parts`` or
        ``users_parts``, (re)pointed at the parts' files."""
        return backend.read_parquet(list(self._files(kind)), f"{kind}_parts")

    @property
    def events(self) -> int:
        return sum(int(p["events"]) for p in self.state["parts"])
