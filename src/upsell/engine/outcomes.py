"""Outcomes over whole tables (metrics.md, "Expansion and offers"; cohorts): what offers led to,
what treated accounts gained against the holdout, and how signup cohorts keep and grow revenue.

Times are compared as Unix seconds (integers), money as micro-units of the base currency, so that
DuckDB and Spark agree. Inputs are the tables of `upsell.engine.movements` (`changes`, the rows of
`mrr_rows`) and the store's contacts and response events as Arrow.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from upsell.columns import TIMESTAMP
from upsell.domain.contacts import ResponseKind
from upsell.domain.events import FEATURE_USED, RESPONSE_EVENTS, SEEN_RESPONSES
from upsell.engine.backends import Backend

DAY = 86_400
#: What a contact's response events say of it, in the order of `offer_outcomes`' columns.
ANSWERS = ("opened", "clicked", "dismissed")


def _responses(kinds: tuple[ResponseKind, ...]) -> list[str]:
    """The response events that stand for any of `kinds`."""
    return [event for event, kind in RESPONSE_EVENTS.items() if kind in kinds]


def _seconds(column: pa.ChunkedArray) -> pa.Array:
    """UTC timestamps as whole Unix seconds."""
    micros = pc.cast(pc.cast(column, TIMESTAMP), pa.int64())
    return pc.cast(pc.divide(micros, 1_000_000), pa.int64())


def offer_outcomes(
    backend: Backend,
    contacts: pa.Table,
    rows: pa.Table,
    changes: ir.Table,
    responses: pa.Table,
    *,
    window_days: int,
    data_end: datetime | None = None,
) -> pa.Table:
    """Per contact (in the order given): ``converted``, ``opened``, ``clicked``, ``dismissed``,
    ``pending``.

    An expansion offer converted when a paid row of its item started within `window_days` (plus the
    offer's trial) after the offer; a save offer when the account still paid at the end of the
    window. Opened: an ``Offer Viewed`` or ``Email Opened`` event with the offer's id within the
    window; clicked: an ``Offer Clicked``; dismissed: an ``Offer Dismissed`` (the customer closed
    it: not a step towards converting, a dismissed offer may still convert). `contacts` has the
    store's contact columns and ``trial_days``; `responses` the response events with ``offer_id``.
    A paid row or a response is credited to the latest contact before it whose window holds it (an
    offer made twice converts once). An offer whose window ends after `data_end` is ``pending``:
    its outcome is not known yet (it is never counted as converted).
    """
    start = _seconds(contacts.column("as_of"))
    extra = pc.multiply(pc.add(contacts.column("trial_days"), window_days), DAY)
    c = backend.table(
        pa.table(
            {
                "n": pa.array(range(contacts.num_rows), pa.int64()),
                "account_id": contacts.column("account_id"),
                "item_id": contacts.column("item_id"),
                "offer_id": contacts.column("offer_id"),
                "kind": contacts.column("kind"),
                "start_s": start,
                "until_s": pc.add(start, extra),
                "window_s": pc.add(start, window_days * DAY),
            }
        ),
        "offer_contacts",
    )
    r = backend.table(
        pa.table(
            {
                "account_id": rows.column("account_id"),
                "item_id": rows.column("item_id"),
                "started_s": _seconds(rows.column("started_at")),
                "mrr": rows.column("mrr"),
            }
        ),
        "offer_rows",
    )
    took = c.join(r, [c.account_id == r.account_id, c.item_id == r.item_id])
    took = took.filter(
        (took.mrr > 0) & (took.started_s >= took.start_s) & (took.started_s <= took.until_s)
    )
    latest = ibis.window(
        group_by=[took.account_id, took.item_id, took.started_s],
        order_by=[ibis.desc(took.start_s), ibis.desc(took.n)],
    )
    took = took.filter(ibis.row_number().over(latest) == 0)
    took = took.group_by("n").aggregate(took=took.n.count())

    ch = changes.select("account_id", "after", at_s=changes.at.epoch_seconds().cast("int64"))
    kept = c.join(ch, c.account_id == ch.account_id).filter(lambda t: t.at_s < t.window_s)
    kept = kept.group_by("n").aggregate(mrr=kept.after.argmax(kept.at_s))

    resp = backend.table(
        pa.table(
            {
                "account_id": responses.column("account_id"),
                "offer_id": responses.column("offer_id"),
                "event": responses.column("event"),
                "ts": _seconds(responses.column("timestamp")),
            }
        ),
        "offer_responses",
    )
    seen = c.join(resp, [c.account_id == resp.account_id, c.offer_id == resp.offer_id])
    seen = seen.filter((seen.ts >= seen.start_s) & (seen.ts <= seen.window_s))
    latest = ibis.window(
        group_by=[seen.account_id, seen.offer_id, seen.ts, seen.event],
        order_by=[ibis.desc(seen.start_s), ibis.desc(seen.n)],
    )
    seen = seen.filter(ibis.row_number().over(latest) == 0)
    seen = seen.group_by("n").aggregate(
        opened=seen.event.isin(_responses(SEEN_RESPONSES)).any(),
        clicked=seen.event.isin(_responses(("clicked",))).any(),
        dismissed=seen.event.isin(_responses(("dismissed",))).any(),
    )
    out = (
        c.left_join(took, "n")
        .select(c.n, c.kind, c.until_s, c.window_s, took.took)
        .left_join(kept, "n")
        .select("n", "kind", "until_s", "window_s", "took", kept.mrr)
        .left_join(seen, "n")
        .select("n", "kind", "until_s", "window_s", "took", "mrr", *(seen[a] for a in ANSWERS))
    )
    end_s = None if data_end is None else int(data_end.astimezone(UTC).timestamp())
    closes = ibis.cases((out.kind == "save", out.window_s), else_=out.until_s)
    pending = ibis.literal(False) if end_s is None else closes > end_s
    converted = ibis.cases(
        (pending, False),
        (out.kind == "save", out.mrr.fill_null(0) > 0),
        else_=out.took.fill_null(0) > 0,
    )
    result = backend.arrow(
        out.select(
            "n",
            converted=converted,
            **{a: out[a].fill_null(False) for a in ANSWERS},
            pending=pending,
        ).order_by("n")
    )
    return result.drop_columns(["n"])


def response_offer_ids(responses: pa.Table) -> pa.Table:
    """The response events with their ``offer_id`` read from the properties (None without one)."""
    ids = []
    for text in responses.column("properties").to_pylist():
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            value = {}
        offer = value.get("offer_id") if isinstance(value, dict) else None
        ids.append(offer if isinstance(offer, str) else None)
    return responses.append_column("offer_id", pa.array(ids, pa.string()))


def expansion_since_first_decision(
    backend: Backend, contacts: pa.Table, changes: ir.Table, *, end: datetime
) -> pa.Table:
    """Per decided account: ``group`` (``treated`` when an offer reached it, ``holdout`` when it
    was only ever held out), ``expansion``: the expansion MRR (micro-units) of its changes from
    its first decision until `end`, and ``holdout_share``: the share its first decision was held
    out at (its decision line's ``holdout_share``; null for lines written before it existed), the
    stratum the holdout comparison puts it in (`upsell.domain.experiments.stratified_lift`)."""
    reached = pc.and_(
        pc.invert(contacts.column("held_out")), pc.not_equal(contacts.column("status"), "failed")
    )
    c = backend.table(
        pa.table(
            {
                "account_id": contacts.column("account_id"),
                "as_s": _seconds(contacts.column("as_of")),
                "reached": pc.cast(reached, pa.int64()),
                "held": pc.cast(contacts.column("held_out"), pa.int64()),
                "share": _holdout_shares(contacts.column("decision")),
            }
        ),
        "decided",
    )
    first = c.group_by("account_id").aggregate(
        first_s=c.as_s.min(),
        reached=c.reached.max(),
        held=c.held.max(),
        holdout_share=c.share.argmin(c.as_s),
    )
    first = first.filter((first.reached > 0) | (first.held > 0))
    end_s = int(end.astimezone(UTC).timestamp())
    ch = changes.filter(changes.type == "expansion").select(
        "account_id", "amount", at_s=changes.at.epoch_seconds().cast("int64")
    )
    joined = first.left_join(
        ch,
        (first.account_id == ch.account_id) & (ch.at_s >= first.first_s) & (ch.at_s < end_s),
    )
    out = joined.group_by([first.account_id, "reached", "holdout_share"]).aggregate(
        expansion=joined.amount.sum().fill_null(0)
    )
    out = out.select(
        "account_id",
        group=ibis.cases((out.reached > 0, "treated"), else_="holdout"),
        expansion=out.expansion,
        holdout_share=out.holdout_share,
    )
    return backend.arrow(out.order_by("account_id"))


def _holdout_shares(decisions: pa.ChunkedArray) -> pa.Array:
    """Each contact's ``holdout_share`` from its decision line (JSON text), null when it has none."""
    out: list[float | None] = []
    for text in decisions.to_pylist():
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            value = {}
        share = value.get("holdout_share") if isinstance(value, dict) else None
        number = isinstance(share, int | float) and not isinstance(share, bool)
        out.append(float(share) if number and share is not None else None)
    return pa.array(out, pa.float64())


def cohorts(
    backend: Backend,
    accounts: pa.Table,
    changes: ir.Table,
    usage: ir.Table | None,
    boundaries: list[datetime],
) -> pa.Table:
    """Per signup month and age (months since signup, 0 = the signup month): the cohort's
    accounts, its MRR at the end of that month (micro-units) and how many of its accounts pay then;
    ``kept_mrr`` and ``retained``: the same for the accounts that paid at the end of the signup
    month (NDR's rule: accounts that start paying later are not in the cohort's retention); and
    how many used a feature (a ``Feature Used`` event) during that month (0 without usage
    rollups). `boundaries` are the first instants of consecutive months; the last one closes
    the last month."""
    created = _seconds(accounts.column("created_at"))
    a = backend.table(
        pa.table({"account_id": accounts.column("account_id"), "created_s": created}),
        "cohort_accounts",
    )
    months = backend.table(
        pa.table(
            {
                "k": pa.array(range(len(boundaries) - 1), pa.int64()),
                "month_s": pa.array([int(b.timestamp()) for b in boundaries[:-1]], pa.int64()),
                "end_s": pa.array([int(b.timestamp()) for b in boundaries[1:]], pa.int64()),
            }
        ),
        "cohort_months",
    )
    signup = a.cross_join(months).filter(
        lambda t: (t.created_s >= t.month_s) & (t.created_s < t.end_s)
    )
    signup = signup.select("account_id", cohort=signup.k)
    grid = signup.cross_join(months.select(age_k="k", end_s="end_s")).filter(
        lambda t: t.age_k >= t.cohort
    )
    ch = changes.select("account_id", "after", at_s=changes.at.epoch_seconds().cast("int64"))
    joined = grid.left_join(ch, (grid.account_id == ch.account_id) & (ch.at_s < grid.end_s))
    mrr = joined.group_by([grid.account_id, "cohort", "age_k"]).aggregate(
        mrr=joined.after.argmax(joined.at_s).fill_null(0)
    )
    table = mrr.mutate(age=mrr.age_k - mrr.cohort)
    if usage is not None:
        used = usage.filter(usage.event == FEATURE_USED)
        used = used.select(
            "account_id", day_s=used.day.cast("timestamp").epoch_seconds().cast("int64")
        )
        per = used.join(months, (used.day_s >= months.month_s) & (used.day_s < months.end_s))
        per = per.group_by(["account_id", "k"]).aggregate(uses=per.day_s.count())
        table = table.left_join(
            per, (table.account_id == per.account_id) & (table.age_k == per.k)
        ).select(table, active=per.uses.notnull())
    else:
        table = table.mutate(active=ibis.literal(False))
    own = ibis.window(group_by=table.account_id)
    table = table.mutate(paid0=ibis.cases((table.age == 0, table.mrr), else_=0).max().over(own) > 0)
    out = table.group_by(["cohort", "age"]).aggregate(
        accounts=table.account_id.count(),
        mrr=table.mrr.sum(),
        paying=(table.mrr > 0).cast("int64").sum(),
        kept_mrr=ibis.cases((table.paid0, table.mrr), else_=0).sum(),
        retained=(table.paid0 & (table.mrr > 0)).cast("int64").sum(),
        adopting=table.active.cast("int64").sum(),
    )
    return backend.arrow(out.order_by(["cohort", "age"]))


def contact_churn(
    backend: Backend, contacts: pa.Table, changes: ir.Table, *, window_days: int
) -> pa.Table:
    """Per contact (in the order given): ``paid``, whether the account's MRR was above 0 just
    before the decision, and ``churned``, whether it paid then and its MRR was 0 at the end of the
    `window_days` window (the learning step's churn push, docs/learning.md)."""
    start = _seconds(contacts.column("as_of"))
    c = backend.table(
        pa.table(
            {
                "n": pa.array(range(contacts.num_rows), pa.int64()),
                "account_id": contacts.column("account_id"),
                "start_s": start,
                "window_s": pc.add(start, window_days * DAY),
            }
        ),
        "churn_contacts",
    )
    ch = changes.select("account_id", "after", at_s=changes.at.epoch_seconds().cast("int64"))
    joined = c.join(ch, c.account_id == ch.account_id)
    before = joined.filter(joined.at_s < joined.start_s)
    before = before.group_by("n").aggregate(before=before.after.argmax(before.at_s))
    after = joined.filter(joined.at_s < joined.window_s)
    after = after.group_by("n").aggregate(after=after.after.argmax(after.at_s))
    out = c.left_join(before, "n").select(c.n, "before").left_join(after, "n")
    paid = out.before.fill_null(0) > 0
    result = backend.arrow(
        out.select(out.n, paid=paid, churned=paid & (out.after.fill_null(0) <= 0)).order_by("n")
    )
    return result.drop_columns(["n"])
