"""MRR movements, monthly totals and retention over whole tables (metrics.md), written once in Ibis.

`mrr_rows` prepares the subscription rows: each row's MRR in micro-units of the base currency
(`upsell.domain.subscriptions.row_mrr`), its item's kind and tier, and — under
``churn_at: period_end`` — a cancelled row's end moved to the end of its billing period. Everything
after is integer arithmetic in Ibis, so DuckDB and Spark give the same cents.

`changes` turns rows into one line per (account, instant) where the account's MRR changes: the MRR
just before and just after, the movement type (new, reactivation, expansion, contraction, churn)
and, for an expansion, its amount split by cause. `months` sums them per calendar month (UTC) with
the MRR at the month's start and end, the paying accounts, NDR and GRR of the month's starting
cohort — without a dense account x month grid: an account's MRR only differs between a month's start
and end if it changed during the month, so the cohort sums come from its first and last change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from upsell.columns import TIMESTAMP
from upsell.domain.calendar import month_start, month_starts
from upsell.domain.catalog import Catalog
from upsell.domain.metrics import (
    CAUSES,
    DEFAULT_SETTINGS,
    Cause,
    MetricSettings,
    MovementType,
    period_end,
    to_micros,
)
from upsell.domain.money import Money
from upsell.domain.subscriptions import row_mrr
from upsell.engine.backends import Backend

ROW_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("item_id", pa.string()),
        ("kind", pa.string()),
        ("started_at", TIMESTAMP),
        ("ended_at", TIMESTAMP),
        ("quantity", pa.int64()),
        ("mrr", pa.int64()),
    ]
)


def _kind(catalog: Catalog, item_id: str) -> str:
    """A row's item as a cause sees it: a plan, an add-on, or a product (anything else)."""
    kind = catalog.kind_of(item_id)
    return kind if kind in ("plan", "add_on") else "product"


def mrr_rows(
    subscriptions: pa.Table, catalog: Catalog, settings: MetricSettings = DEFAULT_SETTINGS
) -> pa.Table:
    """The subscription rows (data-contract.md's columns, ``unit_price`` as text) with their MRR
    in micro-units of the base currency, their item's kind, and the end at which they stop counting.
    Trialing rows are left out (they count 0 and take no part in a change's cause); a free row
    stays, so that its item's later price is a ``price`` cause (a 100 % discount ending)."""
    keys = ("unit_price", "quantity", "interval", "currency", "status")
    # One Decimal computation per distinct (price, quantity, interval, currency, status): a
    # company has few, whatever its rows.
    text = [pc.cast(subscriptions.column(k), pa.string()) for k in keys]
    encoded = pc.binary_join_element_wise(*text, "\x1f").combine_chunks().dictionary_encode()
    values = []
    for combo in encoded.dictionary.to_pylist():
        price, quantity, interval, currency, status = combo.split("\x1f")
        row = row_mrr(Money(Decimal(price), currency), int(quantity), interval, status, catalog.fx)
        values.append(to_micros(row.amount))
    mrr = pc.take(pa.array(values, pa.int64()), encoded.indices)
    ended = subscriptions.column("ended_at").combine_chunks()
    if settings.churn_at == "period_end":
        status = subscriptions.column("status").combine_chunks()
        cancelled = pc.and_(pc.equal(status, "canceled"), pc.is_valid(ended))
        where = pc.indices_nonzero(cancelled).to_pylist()
        if where:
            started = subscriptions.column("started_at").take(where).to_pylist()
            interval = subscriptions.column("interval").take(where).to_pylist()
            moved = [
                period_end(s0, e0, iv)
                for s0, e0, iv in zip(started, ended.take(where).to_pylist(), interval, strict=True)
            ]
            ended = pc.replace_with_mask(ended, cancelled, pa.array(moved, TIMESTAMP))
    item = subscriptions.column("item_id").combine_chunks().dictionary_encode()
    kinds = pa.array([_kind(catalog, i) for i in item.dictionary.to_pylist()], pa.string())
    table = pa.table(
        {
            "account_id": subscriptions.column("account_id"),
            "item_id": subscriptions.column("item_id"),
            "kind": pc.take(kinds, item.indices),
            "started_at": subscriptions.column("started_at"),
            "ended_at": ended,
            "quantity": pc.cast(subscriptions.column("quantity"), pa.int64()),
            "mrr": mrr,
        },
        schema=ROW_SCHEMA,
    )
    trial = pc.equal(subscriptions.column("status"), "trialing")
    return table.filter(pc.invert(trial))


def changes(rows: ir.Table, settings: MetricSettings = DEFAULT_SETTINGS) -> ir.Table:
    """One line per (account, instant) at which the account's MRR changes: `before`, `after`,
    `delta`, `type`, `amount` (> 0) and, for expansions, one column per cause (micro-units).

    Changes at the same instant are one change. A cause comes per item: an item that both ends and
    starts at the instant changed its quantity (``quantity``) or its price or interval (``price``);
    one that only starts or ends is an ``upsell`` (plan), ``add_on`` or ``cross_sell`` (product).
    The expansion is split in proportion to the causes' positive deltas; each gets the floor of its
    share and the cause with the largest delta the remainder (metrics.md: "split by the causes' own
    MRR deltas").
    """
    starts = rows.select(
        "account_id",
        "item_id",
        "kind",
        at=rows.started_at,
        started=rows.mrr,
        ended=ibis.literal(0, "int64"),
        q_start=rows.quantity,
        q_end=ibis.null("int64"),
    )
    ended = rows.filter(rows.ended_at.notnull())
    ends = ended.select(
        "account_id",
        "item_id",
        "kind",
        at=ended.ended_at,
        started=ibis.literal(0, "int64"),
        ended=ended.mrr,
        q_start=ibis.null("int64"),
        q_end=ended.quantity,
    )
    edges = starts.union(ends)
    items = edges.group_by(["account_id", "at", "item_id", "kind"]).aggregate(
        delta=(edges.started - edges.ended).sum(),
        n_start=edges.q_start.count(),
        n_end=edges.q_end.count(),
        q_start=edges.q_start.sum(),
        q_end=edges.q_end.sum(),
    )
    cause = ibis.cases(
        ((items.n_start > 0) & (items.n_end > 0) & (items.q_start != items.q_end), "quantity"),
        ((items.n_start > 0) & (items.n_end > 0), "price"),
        (items.kind == "plan", "upsell"),
        (items.kind == "add_on", "add_on"),
        else_="cross_sell",
    )
    items = items.mutate(cause=cause)
    by_cause = items.group_by(["account_id", "at", "cause"]).aggregate(delta=items.delta.sum())

    total = items.group_by(["account_id", "at"]).aggregate(delta=items.delta.sum())
    total = total.filter(total.delta != 0)
    upto = ibis.window(group_by=total.account_id, order_by=total.at, rows=(None, 0))
    total = total.mutate(after=total.delta.sum().over(upto))
    total = total.mutate(before=total.after - total.delta)
    earlier = ibis.window(group_by=total.account_id, order_by=total.at, rows=(None, -1))
    churned_at = ibis.cases(((total.after == 0) & (total.before > 0), total.at.epoch_seconds()))
    total = total.mutate(
        paid_before=total.after.max().over(earlier).fill_null(0) > 0,
        last_churn=churned_at.max().over(earlier),
    )
    window = settings.reactivation_window_days
    returns = total.paid_before
    if window is not None:
        returns = returns & (total.at.epoch_seconds() - total.last_churn <= window * 86_400)
    kind = ibis.cases(
        ((total.before == 0) & returns, "reactivation"),
        (total.before == 0, "new"),
        (total.after > total.before, "expansion"),
        (total.after > 0, "contraction"),
        else_="churn",
    )
    total = total.mutate(type=kind, amount=(total.after - total.before).abs())

    # The split of expansions by cause.
    exp = total.filter(total.type == "expansion").select("account_id", "at", "amount")
    parts = by_cause.join(exp, ["account_id", "at"])
    parts = parts.mutate(pos=ibis.greatest(parts.delta, 0))
    per = ibis.window(group_by=[parts.account_id, parts.at])
    parts = parts.mutate(total_pos=parts.pos.sum().over(per))
    parts = parts.mutate(share=ibis.cases((parts.total_pos > 0, _floor_share(parts)), else_=0))
    rank = ibis.window(
        group_by=[parts.account_id, parts.at], order_by=[ibis.desc(parts.pos), parts.cause]
    )
    parts = parts.mutate(rank=ibis.row_number().over(rank), given=parts.share.sum().over(per))
    parts = parts.mutate(
        share=ibis.cases(
            (parts.rank == 0, parts.share + parts.amount - parts.given), else_=parts.share
        )
    )
    wide = parts.group_by(["account_id", "at"]).aggregate(
        **{c: ibis.cases((parts.cause == c, parts.share), else_=0).sum() for c in CAUSES}
    )
    out = total.left_join(wide, ["account_id", "at"]).select(
        total.account_id,
        total.at,
        total.type,
        total.amount,
        total.before,
        total.after,
        total.delta,
        *[wide[c].fill_null(0).name(c) for c in CAUSES],
    )
    return out


def _floor_share(parts: ir.Table) -> ir.IntegerValue:
    """floor(amount x pos / total_pos), exactly: a float estimate (off by at most one at these
    magnitudes) corrected with exact decimal products, which neither back end rounds."""
    dec = "decimal(38, 0)"
    guess = (
        (parts.amount.cast("float64") * parts.pos.cast("float64") / parts.total_pos.cast("float64"))
        .floor()
        .cast("int64")
    )
    product = parts.amount.cast(dec) * parts.pos.cast(dec)
    total = parts.total_pos.cast(dec)
    return ibis.cases(
        (guess.cast(dec) * total > product, guess - 1),
        ((guess + 1).cast(dec) * total <= product, guess + 1),
        else_=guess,
    )


def months(changes: ir.Table, first: datetime, last: datetime) -> ir.Table:
    """Monthly totals from `first`'s month to `last`'s month (UTC): ``mrr_start``, ``mrr_end``,
    one column per movement type and per expansion cause, ``paying_accounts`` (MRR > 0 at the
    month's end), and the month's starting cohort: ``cohort_start`` (its MRR at the start),
    ``cohort_end`` (at the end) and ``cohort_kept`` (sum of min(start, end)): NDR and GRR are
    their ratios. Money in micro-units. Months without any change are included."""
    c = changes.mutate(month=changes.at.truncate("M"))
    sums = c.group_by("month").aggregate(
        net=c.delta.sum(),
        opened=ibis.cases(((c.before == 0) & (c.after > 0), 1), else_=0).sum(),
        closed=ibis.cases(((c.before > 0) & (c.after == 0), 1), else_=0).sum(),
        **{
            t: ibis.cases((c.type == t, c.amount), else_=0).sum()
            for t in ("new", "reactivation", "expansion", "contraction", "churn")
        },
        **{cause: c[cause].sum() for cause in CAUSES},
    )
    # Per account and month: its MRR before the first change and after the last.
    ordered = ibis.window(group_by=[c.account_id, c.month], order_by=c.at)
    c = c.mutate(
        first=ibis.row_number().over(ordered),
        last=ibis.row_number().over(
            ibis.window(group_by=[c.account_id, c.month], order_by=ibis.desc(c.at))
        ),
    )
    edges = c.group_by(["account_id", "month"]).aggregate(
        start=ibis.cases((c.first == 0, c.before), else_=0).sum(),
        end=ibis.cases((c.last == 0, c.after), else_=0).sum(),
    )
    cohort = edges.filter(edges.start > 0)
    moved = cohort.group_by("month").aggregate(
        gained=(cohort.end - cohort.start).sum(),
        lost=ibis.greatest(cohort.start - cohort.end, 0).sum(),
    )
    calendar = ibis.memtable(
        {"month": month_starts(first, last)}, schema={"month": "timestamp('UTC', 6)"}
    )
    m = calendar.left_join(sums, "month").select(
        calendar.month,
        *[
            sums[name].fill_null(0).name(name)
            for name in (
                "net", "opened", "closed", "new", "reactivation", "expansion", "contraction",
                "churn", *CAUSES,
            )
        ],
    )  # fmt: skip
    m = m.left_join(moved, "month").select(
        m, moved.gained.fill_null(0).name("gained"), moved.lost.fill_null(0).name("lost")
    )
    return m


def materialised_changes(
    backend: Backend, rows: pa.Table, settings: MetricSettings = DEFAULT_SETTINGS
) -> ir.Table:
    """`changes` computed once and held by the back end: callers that query them many times (a
    report, retention windows) pay for them once."""
    return backend.table(
        backend.arrow(changes(backend.table(rows, "mrr_rows"), settings)), "changes"
    )


@dataclass(frozen=True)
class MonthTotals:
    """One calendar month (``YYYY-MM``) over the changes, money in micro-units: MRR at its start and
    end, each movement type and the expansion split by cause, the accounts paying at its end and at
    its start, and NDR and GRR of the accounts paying at its start (None when none did)."""

    month: str
    mrr_start: int
    mrr_end: int
    new: int
    reactivation: int
    expansion: int
    contraction: int
    churn: int
    expansion_by_cause: Mapping[Cause, int]
    paying_accounts: int
    paying_accounts_start: int
    ndr: float | None
    grr: float | None

    def movement(self, kind: MovementType) -> int:
        """The month's total of one movement type."""
        return int(getattr(self, kind))


def monthly_summary(
    backend: Backend,
    rows: pa.Table | None = None,
    *,
    first: datetime,
    last: datetime,
    settings: MetricSettings = DEFAULT_SETTINGS,
    changes_table: ir.Table | None = None,
) -> list[MonthTotals]:
    """Each month from `first` to `last`. Give the `rows` of `mrr_rows`, or `changes_table`
    already computed.

    MRR before `first` is carried in: the first month's start is the sum of every change before it.
    """
    if changes_table is None:
        if rows is None:
            raise ValueError("monthly_summary needs rows or changes_table")
        changes_table = materialised_changes(backend, rows, settings)
    ch = changes_table
    # Everything before the first month adds up to its starting MRR and paying accounts.
    boundary = month_start(first)
    before = ch.filter(ch.at < boundary)
    carried = backend.arrow(
        before.aggregate(
            mrr=before.delta.sum(),
            paying=(
                ibis.cases(((before.before == 0) & (before.after > 0), 1), else_=0)
                - ibis.cases(((before.before > 0) & (before.after == 0), 1), else_=0)
            ).sum(),
        )
    ).to_pylist()[0]
    m = backend.arrow(months(ch.filter(ch.at >= boundary), first, last).order_by("month"))
    mrr = int(carried["mrr"] or 0)
    paying = int(carried["paying"] or 0)
    out: list[MonthTotals] = []
    for row in m.to_pylist():
        start, paying_start = mrr, paying
        mrr = start + int(row["net"])
        paying += int(row["opened"]) - int(row["closed"])
        cohort_end = start + int(row["gained"])
        kept = start - int(row["lost"])
        out.append(
            MonthTotals(
                month=row["month"].strftime("%Y-%m"),
                mrr_start=start,
                mrr_end=mrr,
                new=int(row["new"]),
                reactivation=int(row["reactivation"]),
                expansion=int(row["expansion"]),
                contraction=int(row["contraction"]),
                churn=int(row["churn"]),
                expansion_by_cause={cause: int(row[cause]) for cause in CAUSES},
                paying_accounts=paying,
                paying_accounts_start=paying_start,
                ndr=None if start == 0 else cohort_end / start,
                grr=None if start == 0 else kept / start,
            )
        )
    return out


def account_mrr(changes: ir.Table, before: datetime) -> ir.Table:
    """Each account's MRR just before `before` (micro-units): ``account_id, mrr``, for every
    account that changed before it (an MRR of 0 included)."""
    c = changes.filter(changes.at < before)
    return c.group_by("account_id").aggregate(mrr=c.after.argmax(c.at))


@dataclass(frozen=True)
class Retention:
    """The accounts paying at a window's start and their MRR at its start and at its end
    (micro-units); `kept` is the sum of min(start, end) per account. NDR = end / start, GRR =
    kept / start (metrics.md, "Retention")."""

    accounts: int
    start: int
    end: int
    kept: int


def retention(backend: Backend, changes: ir.Table, start: datetime, end: datetime) -> Retention:
    """Retention of the cohort paying at `start`, from `start` to `end`."""
    s = account_mrr(changes, start)
    s = s.filter(s.mrr > 0)
    e = account_mrr(changes, end)
    joined = s.left_join(e, "account_id").select(s.account_id, start=s.mrr, end=e.mrr.fill_null(0))
    row = backend.arrow(
        joined.aggregate(
            accounts=joined.account_id.count(),
            start=joined.start.sum(),
            end=joined.end.sum(),
            kept=ibis.least(joined.start, joined.end).sum(),
        )
    ).to_pylist()[0]
    return Retention(**{k: int(v or 0) for k, v in row.items()})
