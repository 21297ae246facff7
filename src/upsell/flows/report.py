"""`upsell report`: the numbers of metrics.md for a period, as the report's JSON-able dict.

Reads the store as Arrow, runs the engine (`upsell.engine.movements`, `upsell.engine.outcomes`) and
the experiment statistics (`upsell.domain.experiments`), and assembles data-contract.md's report
shape plus the headline numbers, the offer funnel, cohorts and the top offers of the latest run.
Money leaves as decimal strings in the base currency, rounded half-even to cents.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import sqlalchemy as sa

from upsell.domain.calendar import add_months, month_start, next_month
from upsell.domain.catalog import Catalog
from upsell.domain.events import RESPONSE_EVENTS
from upsell.domain.experiments import lift
from upsell.domain.metrics import CAUSES, MOVEMENT_TYPES, MetricSettings, from_micros
from upsell.engine.backends import Backend
from upsell.engine.movements import (
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
from upsell.errors import WorkspaceError
from upsell.flows.opportunities import refresh_rollups
from upsell.store.arrow import (
    accounts_table,
    contacts_arrow,
    events_named,
    refusals_arrow,
    subscriptions_table,
)
from upsell.store.schema import events, subscription_items
from upsell.workspace import Workspace

CENT = Decimal("0.01")


def _money(micros: int | float | None) -> str:
    if micros is None:
        return "0.00"
    return str(from_micros(int(micros)).quantize(CENT, rounding=ROUND_HALF_EVEN))


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def data_span(*, conn: sa.Connection) -> tuple[date, date] | None:
    """The first and last day the store has data for (subscriptions and events)."""
    s = subscription_items.c
    first = conn.execute(sa.select(sa.func.min(s.started_at))).scalar_one()
    if first is None:
        return None
    last = max(
        x
        for x in (
            conn.execute(sa.select(sa.func.max(s.started_at))).scalar_one(),
            conn.execute(sa.select(sa.func.max(s.ended_at))).scalar_one(),
            conn.execute(sa.select(sa.func.max(events.c.timestamp))).scalar_one(),
        )
        if x is not None
    )
    return first.date(), last.date()


def build_report(
    ws: Workspace,
    *,
    first: date | None = None,
    last: date | None = None,
    locale: str | None = None,
    top: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report for the months from `first`'s to `last`'s (UTC; by default the first and the
    last month the workspace has data for), with config.yaml's metric settings, formatted for
    `locale` (by default config.yaml's). `top` are the opportunity or decision lines to list as
    the top opportunities (by default those of the latest `upsell run`)."""
    catalog = ws.catalog()
    with ws.db.connect() as conn:
        span = data_span(conn=conn)
        if span is None:
            raise WorkspaceError(f"{ws.folder} has no subscriptions to report on")
        return _build(
            ws.backend,
            conn=conn,
            catalog=catalog,
            rollups=ws.rollups,
            settings=ws.config.metrics,
            first=first or span[0],
            last=last or span[1],
            locale=locale or ws.config.locale,
            workspace=str(ws.folder),
            top=top,
        )


def _build(
    backend: Backend,
    *,
    conn: sa.Connection,
    catalog: Catalog,
    rollups: Path,
    settings: MetricSettings,
    first: date,
    last: date,
    locale: str,
    workspace: str,
    top: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    start, end = month_start(first), next_month(last)
    subscriptions = subscriptions_table(conn=conn)
    rows = mrr_rows(subscriptions, catalog, settings)
    ch = materialised_changes(backend, rows, settings)
    months = monthly_summary(backend, first=start, last=end - timedelta(days=1), changes_table=ch)
    upgrades = _upgrades_by_month(backend, ch)
    shown = []
    for m in months:
        month_end = next_month(datetime.strptime(f"{m['month']}-01", "%Y-%m-%d"))
        ttm = retention(backend, ch, add_months(month_end, -12), month_end)
        shown.append(_month(m, ttm, upgrades.get(str(m["month"]), 0)))

    contacts = contacts_arrow(conn=conn)
    contacts = contacts.filter(
        pa.compute.and_(
            pa.compute.greater_equal(contacts.column("as_of"), pa.scalar(start)),
            pa.compute.less(contacts.column("as_of"), pa.scalar(end)),
        )
    )
    span = data_span(conn=conn)
    data_end = datetime.combine(span[1] + timedelta(days=1), time(), UTC) if span else end
    offers, reach, incremental = _offers(
        backend, contacts, rows, ch, conn, settings, start, end, data_end
    )
    usage = None
    rolled, _ = refresh_rollups(backend, conn=conn, catalog=catalog, folder=rollups)
    if rolled.state["parts"]:
        usage = rolled.usage(backend)
    boundaries = [start]
    while boundaries[-1] < end:
        boundaries.append(next_month(boundaries[-1]))
    cohort_rows = cohorts(backend, accounts_table(conn=conn), ch, usage, boundaries)
    top_lines = list(top) or _latest_decisions(contacts)
    return {
        "currency": catalog.currency,
        "locale": locale,
        "from": start.date().isoformat(),
        "to": (end - timedelta(days=1)).date().isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "workspace": workspace,
        "settings": {
            "reactivation_window_days": settings.reactivation_window_days,
            "churn_at": settings.churn_at,
            "usage_in_mrr": settings.usage_in_mrr,
            "gross_margin": settings.gross_margin,
            "attribution_days": settings.attribution_days,
        },
        "summary": _summary(months, shown, backend, ch, settings, start, end, reach),
        "months": shown,
        "offers": offers,
        "incremental": incremental,
        "cohorts": _cohorts(cohort_rows, boundaries),
        "top_opportunities": [_top(x) for x in top_lines[:10]],
    }


def _month(m: Mapping[str, Any], ttm: Mapping[str, int], upgrades: int) -> dict[str, Any]:
    gained = sum(int(m[t]) for t in ("new", "reactivation", "expansion"))
    lost = sum(int(m[t]) for t in ("contraction", "churn"))
    out: dict[str, Any] = {
        "month": m["month"],
        "mrr_start": _money(m["mrr_start"]),
        "mrr_end": _money(m["mrr_end"]),
        **{t: _money(m[t]) for t in MOVEMENT_TYPES},
        "expansion_by_cause": {c: _money(m["expansion_by_cause"][c]) for c in CAUSES},
        "paying_accounts": m["paying_accounts"],
        "ndr": m["ndr"],
        "grr": m["grr"],
        "arr": str(Decimal(_money(m["mrr_end"])) * 12),
        "arpa": _money(int(m["mrr_end"]) / m["paying_accounts"]) if m["paying_accounts"] else None,
        "quick_ratio": _ratio(gained, lost),
        "ndr_ttm": _ratio(ttm["end"], ttm["start"]),
        "grr_ttm": _ratio(ttm["kept"], ttm["start"]),
        "upgrades": upgrades,
        "upsell_conversion": _ratio(upgrades, int(m["paying_accounts_start"])),
    }
    order = [
        "month", "mrr_start", "mrr_end", "new", "reactivation", "expansion", "expansion_by_cause",
        "contraction", "churn", "paying_accounts", "ndr", "grr",
    ]  # fmt: skip
    return {k: out[k] for k in order} | {k: v for k, v in out.items() if k not in order}


def _upgrades_by_month(backend: Backend, ch: Any) -> dict[str, int]:
    """Accounts that moved to a higher plan each month among those paying at its start (the
    upsell conversion rate's numerator: a subset of its denominator)."""
    c = ch.mutate(month=ch.at.truncate("M"))
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


def _summary(
    months: list[dict[str, Any]],
    shown: list[dict[str, Any]],
    backend: Backend,
    ch: Any,
    settings: MetricSettings,
    start: datetime,
    end: datetime,
    reach: float | None,
) -> dict[str, Any]:
    last = months[-1] if months else None
    mrr = int(last["mrr_end"]) if last else 0
    paying = int(last["paying_accounts"]) if last else 0
    arpa = mrr / paying if paying else 0.0
    totals = {t: sum(int(m[t]) for m in months) for t in MOVEMENT_TYPES}
    starts = sum(int(m["mrr_start"]) for m in months)
    gross = _ratio(totals["churn"] + totals["contraction"], starts)
    net = _ratio(totals["churn"] + totals["contraction"] - totals["expansion"], starts)
    ltv = arpa * settings.gross_margin / gross if gross else None
    ltv_with = arpa * settings.gross_margin / net if net and net > 0 else None
    window = ch.filter((ch.at >= start) & (ch.at < end))
    upsells = backend.arrow(
        window.filter(window.upsell > 0).aggregate(
            n=window.account_id.count(),
            value=window.upsell.sum(),
            accounts=window.account_id.nunique(),
        )
    ).to_pylist()[0]
    return {
        "mrr": _money(mrr),
        "arr": str(Decimal(_money(mrr)) * 12),
        "paying_accounts": paying,
        "arpa": _money(arpa) if paying else None,
        "ndr_ttm": shown[-1]["ndr_ttm"] if shown else None,
        "grr_ttm": shown[-1]["grr_ttm"] if shown else None,
        "quick_ratio": _ratio(
            totals["new"] + totals["reactivation"] + totals["expansion"],
            totals["contraction"] + totals["churn"],
        ),
        "ltv": None if ltv is None else _money(ltv),
        "ltv_uplift": None if ltv is None or ltv_with is None else _money(ltv_with - ltv),
        "upsell_conversion": shown[-1]["upsell_conversion"] if shown else None,
        "average_upgrade_value": _money(int(upsells["value"] or 0) / upsells["n"])
        if upsells["n"]
        else None,
        "time_to_upsell_days": _time_to_upsell(backend, ch, start, end),
        "reach": reach,
    }


def _time_to_upsell(backend: Backend, ch: Any, start: datetime, end: datetime) -> dict[str, Any]:
    """Days from each account's first paid change to its first upgrade (metrics.md), for the
    accounts whose first upgrade falls in the period; quartiles by the inclusive method."""
    paid = ch.filter((ch.before == 0) & (ch.after > 0))
    paid = paid.group_by("account_id").aggregate(paid=paid.at.min())
    up = ch.filter(ch.upsell > 0).group_by("account_id").aggregate(up=ch.at.min())
    up = up.filter((up.up >= start) & (up.up < end))
    both = paid.join(up, "account_id")
    days = sorted(
        (r["up"] - r["paid"]).total_seconds() / 86_400
        for r in backend.arrow(both.select("paid", "up")).to_pylist()
        if r["up"] >= r["paid"]
    )
    if not days:
        return {"median": None, "p25": None, "p75": None, "upsells": 0}
    q = statistics.quantiles(days, n=4, method="inclusive") if len(days) > 1 else [days[0]] * 3
    return {"median": round(q[1]), "p25": round(q[0]), "p75": round(q[2]), "upsells": len(days)}


def _offers(
    backend: Backend,
    contacts: pa.Table,
    rows: pa.Table,
    ch: Any,
    conn: sa.Connection,
    settings: MetricSettings,
    start: datetime,
    end: datetime,
    data_end: datetime,
) -> tuple[dict[str, Any], float | None, dict[str, Any]]:
    """The offer funnel by kind, channel, playbook and variant; reach; incremental expansion."""
    empty: dict[str, Any] = {"by_kind": {}, "by_channel": {}, "by_playbook": {}, "by_variant": {}}
    if contacts.num_rows == 0:
        return empty, None, {}
    trial = [
        int((json.loads(d) if d else {}).get("trial_days") or 0)
        for d in contacts.column("decision").to_pylist()
    ]
    contacts = contacts.append_column("trial_days", pa.array(trial, pa.int64()))
    responses = response_offer_ids(events_named(conn=conn, names=list(RESPONSE_EVENTS)))
    outcome = offer_outcomes(
        backend,
        contacts,
        rows,
        ch,
        responses,
        window_days=settings.attribution_days,
        data_end=min(end, data_end),
    )
    records = [{**c, **o} for c, o in zip(contacts.to_pylist(), outcome.to_pylist(), strict=True)]
    refused = refusals_arrow(conn=conn).to_pylist()
    refused = [r for r in refused if start <= r["as_of"] < end]
    out: dict[str, Any] = {}
    for name, key in (
        ("by_kind", lambda r: r["kind"]),
        ("by_channel", lambda r: r["channel"]),
        ("by_playbook", lambda r: r["playbook"]),
        (
            "by_variant",
            lambda r: f"{r['experiment']}/{r['variant']}" if r["experiment"] else None,
        ),
    ):
        groups: dict[str, Counter[str]] = {}
        eligible_of: dict[str, set[tuple[datetime, str]]] = {}
        for r in records:
            k = key(r)
            if k is None:
                continue
            g = groups.setdefault(k, Counter())
            eligible_of.setdefault(k, set()).add((r["as_of"], r["account_id"]))
            if r["held_out"] or r["status"] == "failed":
                continue
            g["contacted"] += 1
            g["opened"] += bool(r["opened"] or r["clicked"])
            g["clicked"] += bool(r["clicked"])
            g["pending"] += bool(r["pending"])
            g["converted"] += bool(r["converted"])
        if name == "by_playbook":
            for x in refused:
                if x["playbook"]:
                    groups.setdefault(x["playbook"], Counter())
                    eligible_of.setdefault(x["playbook"], set()).add((x["as_of"], x["account_id"]))
        for k, g in groups.items():
            g["eligible"] = len(eligible_of.get(k, ()))
        fields = ("eligible", "contacted", "opened", "clicked", "converted", "pending")
        out[name] = {
            k: {
                **{f: g[f] for f in fields},
                "conversion": _ratio(g["converted"], g["contacted"] - g["pending"]),
            }
            for k, g in sorted(groups.items())
        }
    eligible = {r["account_id"] for r in records} | {x["account_id"] for x in refused}
    saw = {r["account_id"] for r in records if r["opened"] or r["clicked"]}
    reach = _ratio(len(saw), len(eligible))
    groups_table = expansion_since_first_decision(backend, contacts, ch, end=end)
    treated = [
        float(from_micros(int(r["expansion"])))
        for r in groups_table.to_pylist()
        if r["group"] == "treated"
    ]
    holdout = [
        float(from_micros(int(r["expansion"])))
        for r in groups_table.to_pylist()
        if r["group"] == "holdout"
    ]
    result = lift(treated, holdout)
    incremental: dict[str, Any] = {}
    if result is not None:

        def dec(x: float | None) -> str | None:
            return None if x is None else str(Decimal(x).quantize(CENT, rounding=ROUND_HALF_EVEN))

        incremental = {
            "expansion_mrr": dec(result.incremental),
            "ci_low": dec(result.incremental_low),
            "ci_high": dec(result.incremental_high),
            "treated_accounts": result.treated,
            "holdout_accounts": result.holdout,
            "per_account_treated": dec(result.mean_treated),
            "per_account_holdout": dec(result.mean_holdout),
            "confidence": result.confidence,
        }
    return out, reach, incremental


def _cohorts(table: pa.Table, boundaries: list[datetime]) -> list[dict[str, Any]]:
    by_cohort: dict[int, list[dict[str, Any]]] = {}
    for r in table.to_pylist():
        by_cohort.setdefault(int(r["cohort"]), []).append(r)
    out = []
    for k, ages in sorted(by_cohort.items()):
        ages.sort(key=lambda r: r["age"])
        base = ages[0]
        out.append(
            {
                "cohort": boundaries[k].strftime("%Y-%m"),
                "accounts": int(base["accounts"]),
                "ages": [
                    {
                        "age": int(r["age"]),
                        "ndr": _ratio(int(r["kept_mrr"]), int(base["mrr"])),
                        "logo_retention": _ratio(int(r["retained"]), int(base["paying"])),
                        "mrr": _money(int(r["mrr"])),
                        "paying_accounts": int(r["paying"]),
                        "feature_adoption": _ratio(int(r["adopting"]), int(r["accounts"])),
                    }
                    for r in ages
                ],
            }
        )
    return out


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


def _top(line: Mapping[str, Any]) -> dict[str, Any]:
    reasons = line.get("reasons") or []
    sentence = line.get("sentence") or "; ".join(str(r.get("text", "")) for r in reasons)
    return {
        "account_id": line["account_id"],
        "kind": line["kind"],
        "offer_id": line["offer_id"],
        "expected_mrr_delta": line["expected_mrr_delta"],
        "currency": line["currency"],
        "score": line["score"],
        "sentence": sentence,
    }
