"""The report page (issue 6): self-contained, every number formatted, every chart drawn offline."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.numbers import format_currency
from plotly.offline import get_plotlyjs

from upsell.domain.report import Offers, Report
from upsell.report import page

CHROMIUM = Path("/usr/bin/chromium")
MARKS = '.cartesianlayer .trace path[d]:not([d=""]), .cartesianlayer .hm image'
CAUSES = ("upsell", "add_on", "cross_sell", "quantity", "price")


def money(value: Decimal | int | str) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01')):f}"


def sample_report(**overrides: Any) -> dict[str, Any]:
    """A realistic report of eight months (January to August 2026), every section filled."""
    months = []
    mrr = Decimal("120000.00")
    for i in range(8):
        new = Decimal(4200 + 310 * i) + Decimal("0.50")
        reactivation = Decimal(150 + 20 * i)
        by_cause = {
            "upsell": Decimal(1800 + 95 * i),
            "add_on": Decimal(420 + 30 * i) + Decimal("0.25"),
            "cross_sell": Decimal(260 + 12 * i),
            "quantity": Decimal(610 + 40 * i),
            "price": Decimal(0 if i < 5 else 180),
        }
        expansion = sum(by_cause.values(), Decimal(0))
        contraction = Decimal(700 + 25 * i)
        churn = Decimal(2100 + 60 * i) + Decimal("0.75")
        start, mrr = mrr, mrr + new + reactivation + expansion - contraction - churn
        accounts = 1000 + 30 * i
        ndr = (start + expansion - contraction - churn) / start
        grr = (start - contraction - churn) / start
        months.append(
            {
                "month": f"2026-{i + 1:02d}",
                "mrr_start": money(start),
                "mrr_end": money(mrr),
                "new": money(new),
                "reactivation": money(reactivation),
                "expansion": money(expansion),
                "expansion_by_cause": {k: money(v) for k, v in by_cause.items()},
                "contraction": money(contraction),
                "churn": money(churn),
                "paying_accounts": accounts,
                "ndr": None if i == 0 else round(float(ndr), 4),
                "grr": None if i == 0 else round(float(grr), 4),
                "arr": money(mrr * 12),
                "arpa": money(mrr / accounts),
                "quick_ratio": round(
                    float((new + reactivation + expansion) / (contraction + churn)), 2
                ),
                "ndr_ttm": None if i < 2 else 1.01 + i / 100,
                "grr_ttm": None if i < 2 else 0.93 - i / 200,
                "upgrades": 20 + i,
                "upsell_conversion": None if i == 0 else 0.02 + i / 400,
            }
        )
    funnel = {
        "eligible": 900,
        "contacted": 640,
        "opened": 400,
        "clicked": 120,
        "converted": 60,
        "pending": 0,
        "dismissed": 50,
        "conversion": 0.094,
    }

    def scaled(factor: float) -> dict[str, Any]:
        row = {k: int(v * factor) for k, v in funnel.items() if k != "conversion"}
        row["conversion"] = round(row["converted"] / row["contacted"], 3)
        return row

    report: dict[str, Any] = {
        "currency": "USD",
        "locale": "en",
        "from": "2026-01-01",
        "to": "2026-08-31",
        "generated_at": "2026-11-21T14:00:00Z",
        "workspace": "demo-workspace",
        "settings": {
            "reactivation_window_days": None,
            "churn_at": "cancel",
            "usage_in_mrr": False,
            "gross_margin": 0.8,
            "attribution_days": 14,
        },
        "summary": {
            "mrr": "150164.28",
            "arr": "1801971.36",
            "paying_accounts": 1234,
            "arpa": "121.69",
            "ndr_ttm": 1.04,
            "grr_ttm": 0.91,
            "quick_ratio": 2.3,
            "ltv": "2950.10",
            "ltv_uplift": "310.00",
            "upsell_conversion": 0.031,
            "average_upgrade_value": "68.20",
            "time_to_upsell_days": {"median": 74, "p25": 40, "p75": 130, "upsells": 321},
            "reach": 0.42,
        },
        "months": months,
        "offers": {
            "by_kind": {"upsell": funnel, "add_on": scaled(0.4), "cross_sell": scaled(0.25)},
            "by_channel": {"email": scaled(0.9), "in_app": scaled(0.6), "csm": scaled(0.15)},
            "by_playbook": {
                "limit-reached": scaled(0.8),
                "limit-approaching": scaled(0.5),
                "feature-gate": scaled(0.3),
                "qbr-cross-sell": scaled(0.1),
            },
            "by_variant": {
                "limit-modal-trial-length/A": scaled(0.3),
                "limit-modal-trial-length/B": scaled(0.28),
            },
        },
        "incremental": {
            "expansion_mrr": "1200.50",
            "ci_low": "300.00",
            "ci_high": "2100.00",
            "treated_accounts": 1789,
            "holdout_accounts": 220,
            "per_account_treated": "7.10",
            "per_account_holdout": "6.43",
            "confidence": 0.95,
        },
        "cohorts": [
            {
                "cohort": f"2026-{c + 1:02d}",
                "accounts": 120 + 7 * c,
                "ages": [
                    {
                        "age": age,
                        "ndr": round(1.0 + 0.015 * age - 0.01 * c, 3),
                        "logo_retention": round(1.0 - 0.03 * age, 3),
                        "mrr": money(10000 + 100 * age),
                        "paying_accounts": 100 - 3 * age,
                        "feature_adoption": round(0.35 + 0.04 * age, 3),
                    }
                    for age in range(8 - c)
                ],
            }
            for c in range(8)
        ],
        "top_opportunities": [
            {
                "account_id": f"a-{66 + n:05d}",
                "kind": kind,
                "offer_id": offer,
                "expected_mrr_delta": delta,
                "currency": "USD",
                "score": score,
                "sentence": sentence,
            }
            for n, (kind, offer, delta, score, sentence) in enumerate(
                [
                    (
                        "upsell",
                        "upsell:basic->pro",
                        "70.00",
                        0.81,
                        "23 of 25 seats used; grew 4 seats in 30 days.",
                    ),
                    (
                        "add_on",
                        "add_on:sso",
                        "45.00",
                        0.74,
                        "Opened the SSO settings page 6 times.",
                    ),
                    (
                        "cross_sell",
                        "cross_sell:analytics",
                        "39.00",
                        0.66,
                        "Exports to CSV every week.",
                    ),
                    (
                        "upsell",
                        "upsell:pro->business",
                        "210.00",
                        0.58,
                        "API calls at 92 % of the limit.",
                    ),
                ]
            )
        ],
    }
    report.update(overrides)
    return report


def empty_report(**overrides: Any) -> dict[str, Any]:
    """A workspace that never ran ``upsell run``: no offers, holdout, cohorts or opportunities."""
    return sample_report(
        offers=Offers().to_json(), incremental={}, cohorts=[], top_opportunities=[], **overrides
    )


class Page(HTMLParser):
    """What the tests look at: attributes, charts, table cells and text (not script contents)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.charts: list[str] = []
        self.cells: list[str] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        for name, value in attrs:
            self.attributes.append((tag, name, value or ""))
        if tag == "div" and "chart" in (values.get("class") or "").split():
            self.charts.append(values.get("id") or "")
        if tag in ("td", "th"):
            self._cell = []
        if tag == "tr":
            self.rows.append([])
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            if self.rows:
                self.rows[-1].append(self.cells[-1])
            self._cell = None
        if tag in ("script", "style"):
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def all_text(self) -> str:
        return re.sub(r"[ \t\r\n]+", " ", "".join(self.text))  # keeps no-break spaces


def render(report: dict[str, Any]) -> str:
    """The page of a report given in its JSON form (report.json)."""
    return page.render_html(Report.from_json(report))


def write(report: dict[str, Any], path: Path) -> None:
    page.write_html(Report.from_json(report), path)


def usd(amount: str) -> str:
    return str(format_currency(Decimal(amount), "USD", locale="en"))


# -- pure tests -----------------------------------------------------------------------------------


def test_the_page_points_nowhere_outside_itself() -> None:
    html = render(sample_report())
    page = Page(html)
    for tag, name, value in page.attributes:
        if name in ("src", "href", "srcset", "action", "data", "poster"):
            assert not re.match(r"\s*(https?:)?//", value), f"<{tag} {name}={value!r}>"
    assert "link" not in page.tags, "a <link> would load a stylesheet or font from elsewhere"
    assert "iframe" not in page.tags
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html.split("<script", 1)[0])
    assert "cdn.plot.ly" not in html.split("<script", 1)[0]
    assert html.count(get_plotlyjs()) == 1  # the installed package's plotly.js, inlined once
    assert "MathJaxConfig" in html


def test_every_section_has_a_title_a_reading_sentence_a_chart_and_its_numbers() -> None:
    page = Page(render(sample_report()))
    assert page.charts == [
        "chart-movements",
        "chart-mrr",
        "chart-retention",
        "chart-causes",
        "chart-funnel-playbook",
        "chart-funnel-channel",
        "chart-incremental",
        "chart-cohorts",
    ]
    assert page.tags.count("section") == 7
    assert page.tags.count("h2") == 7
    assert page.tags.count("table") >= 11
    text = page.all_text
    for title in (
        "MRR movements per month",
        "MRR, NDR and GRR",
        "Expansion by cause",
        "Offer funnel",
        "Incremental revenue vs holdout",
        "Cohorts",
        "Top opportunities of the latest run",
    ):
        assert title in text
    assert "No offers yet" not in text


def test_money_and_percentages_are_formatted_in_the_locale() -> None:
    report = sample_report()
    page = Page(render(report))
    cells = set(page.cells)
    assert "$1,200.50" in cells  # incremental expansion MRR
    assert "$300.00 to $2,100.00" in cells
    assert "$7.10" in cells and "$6.43" in cells
    assert "1,789" in cells
    first = report["months"][0]
    assert usd(first["new"]) in cells and usd(first["mrr_end"]) in cells
    assert "-" + usd(first["churn"]) in cells  # churn takes MRR away
    assert usd(first["expansion_by_cause"]["add_on"]) in cells
    assert "9.4%" in cells  # the upsell funnel's conversion
    assert "$70.00" in cells and "$210.00" in cells
    text = page.all_text
    for headline in ("$150,164.28", "$1,801,971.36", "1,234", "$121.69", "104%", "91%", "3.1%"):
        assert headline in text
    assert "74 daysmiddle half 40 to 130 days, 321 upsells" in text
    # No raw decimal string of money is left in a table: every amount went through Babel.
    raw = {
        m[key]
        for m in report["months"]
        for key in ("mrr_start", "mrr_end", "new", "expansion", "churn", "arr", "arpa")
    }
    assert not raw & cells


def test_the_funnel_tables_show_the_dismissed_offers_and_their_share_of_the_contacted() -> None:
    report = sample_report()
    report["offers"]["by_channel"]["sms"] = dict(
        eligible=3, contacted=0, opened=0, clicked=0, converted=0, pending=0, dismissed=0,
        conversion=None,
    )  # fmt: skip
    page = Page(render(report))
    headers = ["Eligible", "Contacted", "Opened", "Clicked", "Converted", "Conversion", "Dismissed"]
    assert page.rows.count(["Kind", *headers]) == 1
    assert page.rows.count(["Channel", *headers]) == 1
    # upsell: 50 of the 640 contacted were dismissed, 7.8 %; nothing contacted, no share.
    assert ["upsell", "900", "640", "400", "120", "60", "9.4%", "50 (7.8%)"] in page.rows
    assert ["sms", "3", "0", "0", "0", "0", "—", "0"] in page.rows
    german = Page(render(sample_report(locale="de")))
    assert ["upsell", "900", "640", "400", "120", "60", "9,4\xa0%", "50 (7,8\xa0%)"] in german.rows


def test_a_report_written_before_dismissed_reads_back_with_none_dismissed() -> None:
    report = sample_report()
    for rows in report["offers"].values():
        for row in rows.values():
            del row["dismissed"]
    offers = Report.from_json(report).offers
    assert offers.by_kind["upsell"].dismissed == 0
    assert offers.by_kind["upsell"].dismissal == 0.0
    assert offers.to_json()["by_kind"]["upsell"] == {
        "eligible": 900, "contacted": 640, "opened": 400, "clicked": 120, "converted": 60,
        "pending": 0, "dismissed": 0, "conversion": 0.094,
    }  # fmt: skip
    assert "0 (0%)" in Page(render(report)).cells


def test_german_locale_and_euros() -> None:
    page = Page(render(sample_report(locale="de", currency="EUR")))
    cells = set(page.cells)
    euros = str(format_currency(Decimal("1200.50"), "EUR", locale="de"))
    assert euros == "1.200,50\xa0€"
    assert euros in cells
    assert "9,4\xa0%" in cells
    assert "150.164,28\xa0€" in page.all_text
    assert "gross margin 80\xa0%" in page.all_text


def test_the_settings_sentence() -> None:
    text = Page(render(sample_report())).all_text
    assert (
        "Settings: churn at cancel, reactivation any time, usage not in MRR, gross margin 80%, "
        "attribution 14 days." in text
    )
    report = sample_report()
    report["settings"] |= {"reactivation_window_days": 90, "usage_in_mrr": True}
    text = Page(render(report)).all_text
    assert "reactivation within 90 days, usage in MRR" in text


def test_missing_ratios_show_a_dash() -> None:
    report = sample_report()
    report["summary"]["ndr_ttm"] = None
    page = Page(render(report))
    january = next(row for row in page.rows if row[0] == "2026-01" and len(row) == 11)
    assert january[5:9] == ["—", "—", "—", "—"]  # NDR, GRR and their TTM: no earlier month
    assert january[10] == "—"  # upsell conversion
    assert "NDR (TTM)—" in page.all_text


def test_empty_sections_say_so_instead_of_drawing() -> None:
    page = Page(render(empty_report()))
    text = page.all_text
    assert "No offers yet" in text
    assert "No holdout comparison yet" in text
    assert "No cohorts to show" in text
    assert "No opportunities yet" in text
    assert page.charts == ["chart-movements", "chart-mrr", "chart-retention", "chart-causes"]
    assert page.tags.count("section") == 7


def test_no_months_no_charts() -> None:
    page = Page(render(empty_report(months=[])))
    assert page.charts == []
    assert "There are no months in this period to show." in page.all_text


def test_account_ids_and_sentences_are_escaped() -> None:
    report = sample_report()
    report["top_opportunities"][0] |= {
        "account_id": "<b>a-1</b>",
        "sentence": "<script>alert('x')</script> & more",
    }
    report["workspace"] = "<i>ws</i>"
    html = render(report)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(" in html
    assert "<b>a-1</b>" not in html and "&lt;b&gt;a-1&lt;/b&gt;" in html
    assert "<i>ws</i>" not in html
    page = Page(html)
    assert "<script>alert('x')</script> & more" in page.cells


def test_figure_data_cannot_close_the_script() -> None:
    report = sample_report()
    playbooks = report["offers"]["by_playbook"]
    playbooks["</script><script>alert(1)</script>"] = playbooks.pop("feature-gate")
    html = render(report)
    assert "<script>alert(1)" not in html
    # PlotlyConfig, plotly.js, the figures' JSON and the drawing code; nothing injected.
    assert html.lower().count("</script") == 4


def test_write_html_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    write(sample_report(), target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_the_json_form_reads_back_to_the_same_json() -> None:
    for report in (sample_report(), empty_report()):
        text = json.dumps(report, indent=2)
        assert json.dumps(Report.from_json(report).to_json(), indent=2) == text


# -- the browser test -----------------------------------------------------------------------------


def _chromium_or_skip() -> Any:
    required = bool(os.environ.get("UPSELL_REQUIRE_CHROMIUM"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - dev extras always have it
        if required:
            pytest.fail("UPSELL_REQUIRE_CHROMIUM is set but the playwright package is missing")
        pytest.skip("the playwright package is not installed: pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        if required:
            pytest.fail(f"UPSELL_REQUIRE_CHROMIUM is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (as .ci/run does)")
    return sync_playwright


def _render_in_chromium(html_path: Path, screenshot: Path) -> dict[str, Any]:
    sync_playwright = _chromium_or_skip()
    errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def route(r: Any) -> None:
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.goto(html_path.as_uri())
            # Drawn: the chart's SVG is laid out and its traces left marks (bar and line paths,
            # the heatmap's image), or a WebGL chart drew on a canvas.
            page.wait_for_function(
                f"""() => [...document.querySelectorAll('.chart')].every(c => {{
                    const svg = c.querySelector('svg.main-svg');
                    const canvas = c.querySelector('canvas');
                    return (svg && svg.getBoundingClientRect().width > 0
                            && c.querySelectorAll('{MARKS}').length > 0)
                        || (canvas && canvas.width > 0);
                }})""",
                timeout=30_000,
            )
            drawn = page.evaluate(
                f"""() => [...document.querySelectorAll('.chart')].map(c => ({{
                    id: c.id, marks: c.querySelectorAll('{MARKS}').length,
                }}))"""
            )
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"errors": errors, "outside": outside, "drawn": drawn}


@pytest.mark.slow
@pytest.mark.parametrize("make", [sample_report, empty_report], ids=["full", "empty"])
def test_every_chart_draws_in_chromium_offline(tmp_path: Path, make: Any) -> None:
    report = make()
    html_path = tmp_path / "report.html"
    write(report, html_path)
    screenshot = tmp_path / "report.png"
    result = _render_in_chromium(html_path, screenshot)
    assert result["outside"] == [], "the page asked the network for something"
    assert result["errors"] == []
    expected = Page(html_path.read_text(encoding="utf-8")).charts
    assert [d["id"] for d in result["drawn"]] == expected
    for chart in result["drawn"]:
        assert chart["marks"] > 0, f"{chart['id']} drew nothing"
    assert screenshot.exists()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 50_000
