"""The ``signals`` table: the catalog's named signals that hold per account (an account sent the
signal's event, with its `where`, at least `at_least` times in its last `window_days`)."""

from __future__ import annotations

from datetime import timedelta
from functools import reduce

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from upsell.engine._as_of import AsOf, window


def named_signals(at: AsOf) -> ir.Table:
    """``account_id, signal``: one row per account and catalog signal that holds."""
    parts = []
    for s in at.catalog.signals.values():
        key = str(next(iter(s.where.values()))) if s.where else None
        rows = at.events(s.event, key)
        rows = window(rows, ibis.literal(at.as_of - timedelta(days=s.window_days)))
        n = rows.group_by("account_id").aggregate(n=rows.n.sum())
        n = n.filter(n.n >= s.at_least)
        parts.append(n.select(account_id=n.account_id, signal=ibis.literal(s.id)))
    if not parts:
        empty = pa.table(
            {"account_id": pa.array([], pa.string()), "signal": pa.array([], pa.string())}
        )
        return at.backend.table(empty, "no_signals")
    return reduce(lambda a, b: a.union(b), parts)
