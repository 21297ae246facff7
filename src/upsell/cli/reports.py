"""`upsell report`: the headline numbers on the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from upsell.domain.money import Money, format_money


def _pct(x: object) -> str:
    return "—" if x is None else f"{float(x):.1%}"  # type: ignore[arg-type]


def print_report(console: Console, report: Mapping[str, Any]) -> None:
    currency, locale = report["currency"], report.get("locale", "en")

    def money(x: object) -> str:
        if x is None:
            return "—"
        return format_money(Money(Decimal(str(x)), currency), locale)

    s = report["summary"]
    settings = report["settings"]
    window = settings["reactivation_window_days"]
    console.print(
        f"\nRevenue from {report['from']} to {report['to']} ({currency}; churn at "
        f"{settings['churn_at']}, reactivation "
        f"{'any time' if window is None else f'within {window} days'}, gross margin "
        f"{settings['gross_margin']:.0%}, attribution {settings['attribution_days']} days):",
        highlight=False,
        soft_wrap=True,
    )
    t = Table(box=box.SIMPLE_HEAD, show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("metric")
    t.add_column("value", justify="right")
    time = s.get("time_to_upsell_days") or {}
    pairs = [
        ("MRR", money(s["mrr"])), ("ARR", money(s["arr"])),
        ("paying accounts", f"{s['paying_accounts']:,}"), ("ARPA", money(s["arpa"])),
        ("NDR (TTM)", _pct(s["ndr_ttm"])), ("GRR (TTM)", _pct(s["grr_ttm"])),
        ("quick ratio", "—" if s["quick_ratio"] is None else f"{s['quick_ratio']:.2f}"),
        ("upsell conversion", _pct(s["upsell_conversion"])),
        ("average upgrade", money(s["average_upgrade_value"])),
        ("time to upsell", "—" if time.get("median") is None else f"{time['median']} days"),
        ("LTV", money(s["ltv"])), ("LTV uplift", money(s["ltv_uplift"])),
        ("reach", _pct(s["reach"])), ("", ""),
    ]  # fmt: skip
    for k in range(0, len(pairs), 2):
        t.add_row(*pairs[k], *pairs[k + 1])
    console.print(t)
    months = Table(
        title=f"MRR movements by month ({currency}, whole units)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("month", "new", "react.", "expansion", "contraction", "churn", "MRR", "NDR"):
        months.add_column(name, justify="left" if name == "month" else "right", no_wrap=True)
    for m in report["months"][-6:]:
        months.add_row(
            m["month"],
            *(
                f"{Decimal(m[k]):,.0f}"
                for k in ("new", "reactivation", "expansion", "contraction", "churn", "mrr_end")
            ),
            _pct(m["ndr"]),
        )
    console.print(months)
    inc = report.get("incremental") or {}
    if inc:
        console.print(
            f"Offers earned {money(inc['expansion_mrr'])} of expansion MRR over the holdout "
            f"({inc['confidence']:.0%} interval {money(inc['ci_low'])} to {money(inc['ci_high'])}; "
            f"{inc['treated_accounts']:,} treated, {inc['holdout_accounts']:,} held out).",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print("No offers recorded in the period: run `upsell run` to make some.")
