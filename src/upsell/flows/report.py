"""`upsell report`: the numbers of metrics.md for a period, as a typed `Report`.

Reads the store as Arrow, runs the engine over whole tables (MRR movements and retention,
`upsell.engine.movements`; upgrades, `upsell.engine.upgrades`; offer outcomes and cohorts,
`upsell.engine.outcomes`; the funnel, `upsell.engine.funnel`), and applies the domain's formulas
(`upsell.domain.metrics`, `upsell.domain.experiments`) to their totals. Money leaves in the base
currency, rounded half-even to cents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from upsell.domain.calendar import add_months, month_start, month_starts, next_month
from upsell.domain.events import RESPONSE_EVENTS
from upsell.domain.experiments import stratified_lift
from upsell.domain.metrics import (
    CAUSES,
    CENT,
    MOVEMENT_TYPES,
    MetricSettings,
    arpa,
    arr,
    cents,
    from_micros,
    ltv,
    quick_ratio,
    ratio,
    revenue_churn,
    time_to_upsell,
)
from upsell.domain.report import (
    Cohort,
    CohortAge,
    Funnel,
    Incremental,
    Month,
    Offers,
    Report,
    Summary,
    TopOpportunity,
)
from upsell.engine.backends import Backend
from upsell.engine.funnel import funnels, reach
from upsell.engine.movements import (
    MonthTotals,
    Retention,
    materialised_changes,
    monthly_summary,
    mrr_rows,
    retention,
)
from upsell.engine.outcomes import (
    cohorts,
    expansion_since_first_decision,
    offer_outcomes,
    response_offer_ids,
)
from upsell.engine.upgrades import days_to_first_upsell, upgrades_by_month, upsell_totals
from upsell.errors import WorkspaceError
from upsell.flows.opportunities import refresh_rollups
from upsell.store.arrow import (
    accounts_table,
    contacts_arrow,
    events_named,
    refusals_arrow,
    subscriptions_table,
)
from upsell.store.summary import data_span
from upsell.workspace import Workspace


def build_report(
    ws: Workspace,
    *,
    first: date | None = None,
    last: date | None = None,
    locale: str | None = None,
    top: Iterable[Mapping[str, Any]] = (),
) -> Report:
    """The report for the months from `first`'s to `last`'s (UTC; by default the first and the
    last month the workspace has data for), with config.yaml's metric settings, formatted for
    `locale` (by default config.yaml's). `top` are the opportunity or decision lines to list as
    the top opportunities (by default those of the latest `upsell run`)."""
    catalog = ws.catalog()
    settings = ws.config.metrics
    backend = ws.backend
    with ws.db.connect() as conn:
        span = data_span(conn=conn)
        if span is None:
            raise WorkspaceError(f"{ws.folder} has no subscriptions to report on")
        start, end = month_start(first or span[0]), next_month(last or span[1])
        if end <= start:
            raise WorkspaceError(
                f"no month to report from {start.date()} to {end.date() - timedelta(days=1)}: "
                f"the data runs from {span[0]} to {span[1]}"
            )
        data_end = datetime.combine(span[1] + timedelta(days=1), time(), UTC)
        rows = mrr_rows(subscriptions_table(conn=conn), catalog, settings)
        ch = materialised_changes(backend, rows, settings)
        engine_months = monthly_summary(
            backend, first=start, last=end - timedelta(days=1), changes_table=ch
        )
        upgrades = upgrades_by_month(backend, ch)
        months = tuple(
            _month(m, _ttm(backend, ch, m.month), upgrades.get(m.month, 0)) for m in engine_months
        )
        contacts = _within(contacts_arrow(conn=conn), start, end)
        refused = _within(refusals_arrow(conn=conn), start, end)
        responses = events_named(conn=conn, names=list(RESPONSE_EVENTS))
        offers, seen, incremental = _offers(
            backend, contacts, refused, responses, rows, ch, settings, end, min(end, data_end)
        )
        rolled, _ = refresh_rollups(backend, conn=conn, catalog=catalog, folder=ws.rollups)
        usage = rolled.usage(backend) if rolled.state["parts"] else None
        boundaries = month_starts(start, end)
        cohort_rows = cohorts(backend, accounts_table(conn=conn), ch, usage, boundaries)
    top_lines = list(top) or _latest_decisions(contacts)
    return Report(
        currency=catalog.currency,
        locale=locale or ws.config.locale,
        first=start.date(),
        last=(end - timedelta(days=1)).date(),
        generated_at=datetime.now(UTC),
        workspace=str(ws.folder),
        settings=settings,
        summary=_summary(engine_months, months, backend, ch, settings, start, end, seen),
        months=months,
        offers=offers,
        incremental=incremental,
        cohorts=_cohorts(cohort_rows, boundaries),
        top_opportunities=tuple(TopOpportunity.from_line(x) for x in top_lines[:10]),
    )


def _within(table: pa.Table, start: datetime, end: datetime) -> pa.Table:
    """The rows whose ``as_of`` is in [start, end)."""
    at = table.column("as_of")
    return table.filter(
        pc.and_(pc.greater_equal(at, pa.scalar(start)), pc.less(at, pa.scalar(end)))
    )


def _ttm(backend: Backend, ch: Any, month: str) -> Retention:
    """Retention over the twelve months that end with `month` (YYYY-MM)."""
    end = next_month(date.fromisoformat(f"{month}-01"))
    return retention(backend, ch, add_months(end, -12), end)


def _month(m: MonthTotals, ttm: Retention, upgrades: int) -> Month:
    average = arpa(m.mrr_end, m.paying_accounts)
    return Month(
        month=m.month,
        mrr_start=cents(m.mrr_start),
        mrr_end=cents(m.mrr_end),
        new=cents(m.new),
        reactivation=cents(m.reactivation),
        expansion=cents(m.expansion),
        expansion_by_cause={c: cents(m.expansion_by_cause[c]) for c in CAUSES},
        contraction=cents(m.contraction),
        churn=cents(m.churn),
        paying_accounts=m.paying_accounts,
        ndr=m.ndr,
        grr=m.grr,
        arr=arr(cents(m.mrr_end)),
        arpa=None if average is None else cents(average),
        quick_ratio=quick_ratio(m.new + m.reactivation + m.expansion, m.contraction + m.churn),
        ndr_ttm=ratio(ttm.end, ttm.start),
        grr_ttm=ratio(ttm.kept, ttm.start),
        upgrades=upgrades,
        upsell_conversion=ratio(upgrades, m.paying_accounts_start),
    )


def _summary(
    engine_months: Sequence[MonthTotals],
    months: Sequence[Month],
    backend: Backend,
    ch: Any,
    settings: MetricSettings,
    start: datetime,
    end: datetime,
    seen: float | None,
) -> Summary:
    last = engine_months[-1] if engine_months else None
    mrr = last.mrr_end if last else 0
    paying = last.paying_accounts if last else 0
    average = arpa(mrr, paying) or 0.0
    totals = {t: sum(m.movement(t) for m in engine_months) for t in MOVEMENT_TYPES}
    starts = sum(m.mrr_start for m in engine_months)
    lost = totals["churn"] + totals["contraction"]
    without = ltv(average, settings.gross_margin, revenue_churn(lost, starts))
    with_expansion = ltv(
        average, settings.gross_margin, revenue_churn(lost - totals["expansion"], starts)
    )
    upsells, upsell_value = upsell_totals(backend, ch, start, end)
    return Summary(
        mrr=cents(mrr),
        arr=arr(cents(mrr)),
        paying_accounts=paying,
        arpa=cents(average) if paying else None,
        ndr_ttm=months[-1].ndr_ttm if months else None,
        grr_ttm=months[-1].grr_ttm if months else None,
        quick_ratio=quick_ratio(totals["new"] + totals["reactivation"] + totals["expansion"], lost),
        ltv=None if without is None else cents(without),
        ltv_uplift=None
        if without is None or with_expansion is None
        else cents(with_expansion - without),
        upsell_conversion=months[-1].upsell_conversion if months else None,
        average_upgrade_value=cents(upsell_value / upsells) if upsells else None,
        time_to_upsell_days=time_to_upsell(days_to_first_upsell(backend, ch, start, end)),
        reach=seen,
    )


def _offers(
    backend: Backend,
    contacts: pa.Table,
    refused: pa.Table,
    responses: pa.Table,
    rows: pa.Table,
    ch: Any,
    settings: MetricSettings,
    end: datetime,
    data_end: datetime,
) -> tuple[Offers, float | None, Incremental | None]:
    """The offer funnel by kind, channel, playbook and variant; reach; incremental expansion."""
    if contacts.num_rows == 0:
        return Offers(), None, None
    trial = [
        int((json.loads(d) if d else {}).get("trial_days") or 0)
        for d in contacts.column("decision").to_pylist()
    ]
    contacts = contacts.append_column("trial_days", pa.array(trial, pa.int64()))
    outcome = offer_outcomes(
        backend,
        contacts,
        rows,
        ch,
        response_offer_ids(responses),
        window_days=settings.attribution_days,
        data_end=data_end,
    )
    records = contacts
    for name in outcome.column_names:
        records = records.append_column(name, outcome.column(name))
    counted = funnels(backend, records, refused)
    offers = Offers(
        **{
            grouping: {
                key: Funnel(
                    **counts,
                    conversion=ratio(counts["converted"], counts["contacted"] - counts["pending"]),
                )
                for key, counts in by_key.items()
            }
            for grouping, by_key in counted.items()
        }
    )
    reached = reach(backend, records, refused)
    groups = expansion_since_first_decision(backend, contacts, ch, end=end).to_pylist()
    strata: dict[float | None, tuple[list[float], list[float]]] = {}
    for r in groups:
        treated, holdout = strata.setdefault(r["holdout_share"], ([], []))
        (treated if r["group"] == "treated" else holdout).append(
            float(from_micros(int(r["expansion"])))
        )
    return offers, ratio(reached["saw"], reached["eligible"]), _incremental(strata)


def _incremental(
    strata: Mapping[float | None, tuple[list[float], list[float]]],
) -> Incremental | None:
    """Incremental expansion MRR of the treated accounts over the holdout, with Welch's interval,
    compared within each holdout share (`stratified_lift`: a save held out at 5 % is compared with
    saves, not with upsells held out at 10 %)."""
    result = stratified_lift([strata[k] for k in sorted(strata, key=lambda k: k or 0.0)])
    if result is None:
        return None

    def dec(x: float) -> Decimal:
        return Decimal(x).quantize(CENT, rounding=ROUND_HALF_EVEN)

    low, high = result.incremental_low, result.incremental_high
    return Incremental(
        expansion_mrr=dec(result.incremental),
        ci_low=None if low is None else dec(low),
        ci_high=None if high is None else dec(high),
        treated_accounts=result.treated,
        holdout_accounts=result.holdout,
        per_account_treated=dec(result.mean_treated),
        per_account_holdout=dec(result.mean_holdout),
        confidence=result.confidence,
    )


def _cohorts(table: pa.Table, boundaries: list[datetime]) -> tuple[Cohort, ...]:
    by_cohort: dict[int, list[dict[str, Any]]] = {}
    for r in table.to_pylist():
        by_cohort.setdefault(int(r["cohort"]), []).append(r)
    out = []
    for k, ages in sorted(by_cohort.items()):
        ages.sort(key=lambda r: r["age"])
        base = ages[0]
        out.append(
            Cohort(
                cohort=boundaries[k].strftime("%Y-%m"),
                accounts=int(base["accounts"]),
                ages=tuple(
                    CohortAge(
                        age=int(r["age"]),
                        ndr=ratio(int(r["kept_mrr"]), int(base["mrr"])),
                        logo_retention=ratio(int(r["retained"]), int(base["paying"])),
                        mrr=cents(int(r["mrr"])),
                        paying_accounts=int(r["paying"]),
                        feature_adoption=ratio(int(r["adopting"]), int(r["accounts"])),
                    )
                    for r in ages
                ),
            )
        )
    return tuple(out)


def _latest_decisions(contacts: pa.Table) -> list[dict[str, Any]]:
    """The decision lines of the latest run, by expected value."""
    if contacts.num_rows == 0:
        return []
    latest = max(contacts.column("as_of").to_pylist())
    lines = [
        json.loads(r["decision"])
        for r in contacts.to_pylist()
        if r["as_of"] == latest and r["decision"] and not r["held_out"]
    ]
    lines.sort(key=lambda x: -float(x.get("expected_value") or 0))
    return lines
