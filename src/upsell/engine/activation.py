"""Activation: the day each account first met the catalog's activation rule (its conditions
combined with `all_of` and `any_of`, nested), for the accounts table's ``activated`` and
``activated_on``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import ibis
import ibis.expr.types as ir

from upsell.domain.catalog import ActivationRule, Condition
from upsell.engine._as_of import AsOf


def condition_day(at: AsOf, c: Condition) -> ir.Table:
    """account_id, day: when the condition was first met (accounts that have not met it are left
    out)."""
    key = str(next(iter(c.where.values()))) if c.where else None
    rows = at.events(c.event, key)
    if c.within_days is not None:
        acc = at.accounts.select("account_id", signup=at.accounts.created_at.date())
        rows = rows.join(acc, "account_id")
        rows = rows.filter(rows.day < rows.signup + ibis.literal(c.within_days).as_interval("D"))
    daily = rows.group_by("account_id", "day").aggregate(n=rows.n.sum())
    cum = daily.mutate(
        cum=daily.n.sum().over(group_by=daily.account_id, order_by=daily.day, rows=(None, 0))
    )
    hit = cum.filter(cum.cum >= c.at_least)
    return hit.group_by("account_id").aggregate(day=hit.day.min())


def rule_day(at: AsOf, rule: ActivationRule, base: ir.Table, n: list[int]) -> ir.Table:
    """account_id, day: when the rule was first met (null: not yet)."""

    def part(p: Condition | ActivationRule) -> ir.Table:
        return rule_day(at, p, base, n) if isinstance(p, ActivationRule) else condition_day(at, p)

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


def activation(at: AsOf) -> ir.Table:
    """``account_id, activated_on, activated``; without an activation rule (or one with no
    conditions) every account is activated, on no particular day."""
    base = at.accounts.select("account_id")
    rule = at.catalog.activation
    if rule is None or not list(rule.conditions()):
        return base.select(
            account_id=base.account_id, activated_on=ibis.null("date"), activated=True
        )
    days = rule_day(at, rule, base, [0])
    return days.select(
        account_id=days.account_id, activated_on=days.day, activated=days.day.notnull()
    )
