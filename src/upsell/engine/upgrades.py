"""Upgrades over the changes table (`upsell.engine.movements.changes`): who moved to a higher plan,
when, for how much, and how long after first paying (metrics.md, "Expansion and offers").

An upgrade is a change whose expansion has an ``upsell`` share (a higher plan started). Money is in
micro-units, times are compared in the back end; the domain turns these counts into rates
(`upsell.domain.metrics`).
"""

from __future__ import annotations

from datetime import datetime

import ibis
import ibis.expr.types as ir

from upsell.engine.backends import Backend


def upgrades_by_month(backend: Backend, changes: ir.Table) -> dict[str, int]:
    """Per month (``YYYY-MM``), the accounts that moved to a higher plan among those paying at the
    month's start (the upsell conversion rate's numerator: a subset of its denominator)."""
    c = changes.mutate(month=changes.at.truncate("M"))
    first = ibis.window(group_by=[c.account_id, c.month], order_by=c.at)
    c = c.mutate(rank=ibis.row_number().over(first))
    c = c.mutate(
        start=ibis.cases((c.rank == 0, c.before), else_=None)
        .max()
        .over(ibis.window(group_by=[c.account_id, c.month]))
    )
    up = c.filter((c.upsell > 0) & (c.start > 0))
    table = backend.arrow(up.group_by("month").aggregate(n=up.account_id.nunique()))
    return {r["month"].strftime("%Y-%m"): int(r["n"]) for r in table.to_pylist()}


def upsell_totals(
    backend: Backend, changes: ir.Table, start: datetime, end: datetime
) -> tuple[int, int]:
    """(upgrades, their expansion MRR in micro-units) in [start, end): the changes with an
    upsell share, and the sum of those shares."""
    window = changes.filter((changes.at >= start) & (changes.at < end))
    up = window.filter(window.upsell > 0)
    row = backend.arrow(up.aggregate(n=up.account_id.count(), value=up.upsell.sum())).to_pylist()[0]
    return int(row["n"] or 0), int(row["value"] or 0)


def days_to_first_upsell(
    backend: Backend, changes: ir.Table, start: datetime, end: datetime
) -> list[float]:
    """For each account whose first upgrade falls in [start, end): the days from its first paid
    change (MRR from 0 to more) to that upgrade (never negative)."""
    paid = changes.filter((changes.before == 0) & (changes.after > 0))
    paid = paid.group_by("account_id").aggregate(paid=paid.at.min())
    up = changes.filter(changes.upsell > 0).group_by("account_id").aggregate(up=changes.at.min())
    up = up.filter((up.up >= start) & (up.up < end))
    both = paid.join(up, "account_id")
    return [
        (r["up"] - r["paid"]).total_seconds() / 86_400
        for r in backend.arrow(both.select("paid", "up")).to_pylist()
        if r["up"] >= r["paid"]
    ]
