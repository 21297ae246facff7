"""The offer funnel over whole tables: eligible, contacted, opened, clicked, converted and pending
offers by kind, channel, playbook and variant, beside them the dismissed ones, and the reach of the
offers (metrics.md).

The input is the period's contacts (the store's contact columns) with their outcomes
(`upsell.engine.outcomes.offer_outcomes`: converted, opened, clicked, dismissed, pending) and the
period's refusals (as_of, account_id, playbook). Eligible counts (run, account) pairs: an offer
decided for the account in that run — sent, held out or failed — or, by playbook, refused by a
guardrail. Contacted counts offers that reached the account (not held out, not failed); opened
counts those opened or clicked; dismissed those of them the customer closed.
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from upsell.engine.backends import Backend

#: The funnel's stages after eligible, in order, then pending (contacted, outcome not known yet).
STAGES = ("contacted", "opened", "clicked", "converted", "pending")
#: Counted beside the stages, no step of them: a dismissed offer may still be clicked or convert.
BESIDE = ("dismissed",)
#: Every count of a funnel row, in order.
COUNTS = ("eligible", *STAGES, *BESIDE)
#: The groupings of the report, and the key each groups by (variant: ``experiment/variant``).
GROUPINGS = ("by_kind", "by_channel", "by_playbook", "by_variant")


def _key(t: ir.Table, grouping: str) -> ir.StringValue:
    if grouping == "by_variant":
        return ibis.ifelse(
            t.experiment.notnull(), t.experiment.concat("/", t.variant), ibis.null("string")
        )
    return {"by_kind": t.kind, "by_channel": t.channel, "by_playbook": t.playbook}[grouping]


def funnels(
    backend: Backend, records: pa.Table, refusals: pa.Table
) -> dict[str, dict[str, dict[str, int]]]:
    """Per grouping and key (sorted): the `COUNTS` (``eligible``, the `STAGES`, ``dismissed``)."""
    r = backend.table(records, "funnel_records")
    x = backend.table(refusals, "funnel_refusals")
    out: dict[str, dict[str, dict[str, int]]] = {}
    for grouping in GROUPINGS:
        keyed = r.mutate(key=_key(r, grouping)).filter(lambda t: t.key.notnull())
        pairs = keyed.select("key", "as_of", "account_id")
        if grouping == "by_playbook":
            refused = x.filter(x.playbook.notnull())
            pairs = pairs.union(
                refused.select(
                    key=refused.playbook, as_of=refused.as_of, account_id=refused.account_id
                )
            )
        distinct = pairs.distinct()
        eligible = distinct.group_by("key").aggregate(eligible=distinct.count())
        reached = keyed.filter(~keyed.held_out & (keyed.status != "failed"))
        counts = reached.group_by("key").aggregate(
            contacted=reached.count(),
            opened=(reached.opened | reached.clicked).cast("int64").sum(),
            clicked=reached.clicked.cast("int64").sum(),
            converted=reached.converted.cast("int64").sum(),
            pending=reached.pending.cast("int64").sum(),
            dismissed=reached.dismissed.cast("int64").sum(),
        )
        joined = eligible.left_join(counts, "key").select(
            eligible.key, "eligible", *(counts[s].fill_null(0).name(s) for s in COUNTS[1:])
        )
        rows = backend.arrow(joined).to_pylist()
        out[grouping] = {
            str(row["key"]): {k: int(row[k]) for k in COUNTS}
            for row in sorted(rows, key=lambda row: str(row["key"]))
        }
    return out


def reach(backend: Backend, records: pa.Table, refusals: pa.Table) -> Mapping[str, int]:
    """``eligible``: the accounts with an offer decided or refused in the period; ``saw``: those
    that opened or clicked one."""
    r = backend.table(records, "reach_records")
    x = backend.table(refusals, "reach_refusals")
    accounts = r.select("account_id").union(x.select("account_id")).distinct()
    saw = r.filter(r.opened | r.clicked).select("account_id").distinct()
    row = backend.arrow(
        accounts.aggregate(eligible=accounts.count()).cross_join(saw.aggregate(saw=saw.count()))
    ).to_pylist()[0]
    return {"eligible": int(row["eligible"]), "saw": int(row["saw"])}
