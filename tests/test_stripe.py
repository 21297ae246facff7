"""Stripe webhooks against a live `upsell serve` (SQLite and PostgreSQL), with payloads signed and
checked by the official `stripe` package; and the backfill, `upsell import --stripe-events`."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import stripe_payloads as sp
from live_server import BIN, LiveServer, child_env, live_server
from upsell.config.catalog import parse_catalog
from upsell.domain.events import CANCEL_REQUESTED, PAYMENT_FAILED
from upsell.domain.money import Money
from upsell.domain.subscriptions import mrr_at
from upsell.engine.backends import Backend
from upsell.engine.movements import changes, mrr_rows
from upsell.store.accounts import get_account
from upsell.store.arrow import subscriptions_table
from upsell.store.db import connect, sqlite_url
from upsell.store.events import events_for
from upsell.store.schema import stripe_events, stripe_items
from upsell.store.subscriptions import subscription_items

OLD_SECRET = "whsec_old_0123456789"
SECRET = "whsec_new_abcdefghij"
T0 = 1767225600  # 2026-01-01T00:00:00Z
DAY = 86400
CATALOG = parse_catalog(sp.CATALOG).catalog


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Billing:
    """A live server on a workspace with the Stripe catalog, receiving Stripe's webhooks."""

    server: LiveServer
    folder: Path
    env: dict[str, str]
    db: sa.Engine

    def post(self, content: bytes, signature: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return httpx.post(f"{self.server.url}/webhooks/stripe", content=content, headers=headers)

    def send(self, event: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
        payload = sp.body(event)
        answer = self.post(payload, sp.sign(payload, secret))
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        assert found["received"] is True
        return found

    def upsell(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "upsell"), *map(str, args)],
            env=self.env,
            capture_output=True,
            text=True,
        )


@pytest.fixture
def billing(database_url: str, tmp_path: Path) -> Iterator[Billing]:
    folder = tmp_path / "ws"
    env = child_env(database_url)
    subprocess.run([str(BIN / "upsell"), "init", folder], env=env, check=True, capture_output=True)
    (tmp_path / "catalog.yaml").write_text(sp.CATALOG)
    imported = subprocess.run(
        [str(BIN / "upsell"), "import", "-w", folder, "--catalog", tmp_path / "catalog.yaml"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
    server_env = {**env, "UPSELL_STRIPE_WEBHOOK_SECRET": f"{OLD_SECRET}, {SECRET}"}
    db = connect(sqlite_url(folder) if database_url.startswith("sqlite") else database_url)
    try:
        with live_server(folder, server_env) as server:
            yield Billing(server, folder, env, db)
    finally:
        db.dispose()


def outcomes(db: sa.Engine) -> dict[str, str]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(stripe_events.c.event_id, stripe_events.c.outcome))
        return {row.event_id: row.outcome for row in rows}


def lifecycle() -> list[dict[str, Any]]:
    """Acme: a customer, a basic plan from T0, three seats and two extra-seat add-ons ten days
    later, the subscription deleted on day 40."""
    basic = sp.price("price_basic_month", 2900)
    seat = sp.price("price_seat_month", 1000)
    t1, t2 = T0 + 10 * DAY, T0 + 40 * DAY
    one = [sp.item("si_basic", basic, 1, T0, period=(T0, T0 + 31 * DAY))]
    three = [
        sp.item("si_basic", basic, 3, T0, period=(T0, T0 + 31 * DAY)),
        sp.item("si_seat", seat, 2, t1, period=(t1, T0 + 31 * DAY)),
    ]
    return [
        sp.event("customer.created", sp.customer("cus_acme", "acme", T0 - 60), T0 - 60),
        sp.event(
            "customer.subscription.created", sp.subscription("sub_1", "cus_acme", one, T0), T0
        ),
        sp.event(
            "customer.subscription.updated", sp.subscription("sub_1", "cus_acme", three, T0), t1
        ),
        sp.event(
            "customer.subscription.deleted",
            sp.subscription("sub_1", "cus_acme", three, T0, status="canceled", ended_at=t2),
            t2,
        ),
    ]


def check_lifecycle(db: sa.Engine) -> None:
    t1, t2 = at(T0 + 10 * DAY), at(T0 + 40 * DAY)
    with db.connect() as conn:
        rows = subscription_items(conn=conn, account_id="acme")
        account = get_account(conn=conn, account_id="acme")
        table = subscriptions_table(conn=conn)
    assert account is not None
    assert (account.created_at, account.email, account.currency, account.country) == (
        at(T0 - 60),
        "billing@acme.test",
        "USD",
        "NL",
    )
    found = [
        (r.item_id, r.quantity, r.unit_price.amount, r.started_at, r.ended_at, r.status)
        for r in rows
    ]
    assert found == [
        ("basic", 1, Decimal("29.00"), at(T0), t1, "active"),
        ("basic", 3, Decimal("29.00"), t1, t2, "canceled"),
        ("extra_seats", 2, Decimal("10.00"), t1, t2, "canceled"),
    ]
    assert mrr_at(rows, at(T0 + DAY), CATALOG.fx).amount == 29
    assert mrr_at(rows, at(T0 + 11 * DAY), CATALOG.fx).amount == 3 * 29 + 2 * 10
    assert mrr_at(rows, at(T0 + 41 * DAY), CATALOG.fx).amount == 0
    duckdb = Backend("duckdb")
    moves = duckdb.arrow(
        changes(duckdb.table(mrr_rows(table, CATALOG), "stripe_rows")).order_by("at")
    ).to_pylist()
    assert [(m["at"], m["type"], m["delta"]) for m in moves] == [
        (at(T0), "new", 29_000_000),
        (t1, "expansion", 78_000_000),
        (t2, "churn", -107_000_000),
    ]
    assert moves[1]["quantity"] == 58_000_000 and moves[1]["add_on"] == 20_000_000


# -- the subscription lifecycle ------------------------------------------------------------------


def test_a_subscription_lifecycle_becomes_rows_and_mrr_movements(billing: Billing) -> None:
    answers = [billing.send(e) for e in lifecycle()]
    assert [a["outcome"] for a in answers] == ["applied"] * 4
    check_lifecycle(billing.db)


def test_replayed_and_out_of_order_events_change_nothing(billing: Billing) -> None:
    events = lifecycle()
    for e in events[:3]:
        billing.send(e)
    # An update older than the one applied (quantity 5, day 5) arrives late: stale.
    basic = sp.price("price_basic_month", 2900)
    late = sp.event(
        "customer.subscription.updated",
        sp.subscription("sub_1", "cus_acme", [sp.item("si_basic", basic, 5, T0)], T0),
        T0 + 5 * DAY,
    )
    assert billing.send(late)["outcome"] == "stale"
    # The same events again (Stripe retries, re-signed at a new instant): replays.
    assert [billing.send(e)["outcome"] for e in events[:3]] == ["duplicate"] * 3
    # A creation in the same second as the update that followed it loses to it.
    again = sp.event("customer.subscription.created", events[1]["data"]["object"], T0 + 10 * DAY)
    assert billing.send(again)["outcome"] == "stale"
    billing.send(events[3])
    check_lifecycle(billing.db)
    assert outcomes(billing.db)[late["id"]] == "stale"
    scraped = httpx.get(f"{billing.server.url}/metrics").text
    assert 'upsell_events_ingested_total{source="stripe"} 4.0' in scraped


def test_the_period_is_read_from_items_since_api_2025_03_31_and_from_the_subscription_before(
    billing: Billing,
) -> None:
    billing.send(sp.event("customer.created", sp.customer("cus_acme", "acme", T0), T0))
    pro = sp.price("price_pro_month", 9900)
    period = (T0, T0 + 31 * DAY)
    new = sp.subscription(
        "sub_new",
        "cus_acme",
        [sp.item("si_new", pro, 1, T0, period=period)],
        T0,
        cancel_at_period_end=True,
    )
    old = sp.subscription(
        "sub_old",
        "cus_acme",
        [sp.item("si_old", pro, 1, T0)],
        T0,
        period=(T0, T0 + 28 * DAY),
        cancel_at_period_end=True,
    )
    assert "current_period_end" not in new
    billing.send(sp.event("customer.subscription.updated", new, T0 + DAY, api_version=sp.BASIL))
    billing.send(sp.event("customer.subscription.updated", old, T0 + DAY, api_version=sp.OLD))
    with billing.db.connect() as conn:
        stored = {
            r.stripe_item_id: (r.current_period_start, r.current_period_end, r.cancel_at_period_end)
            for r in conn.execute(sa.select(stripe_items))
        }
        events = events_for(conn=conn, account_id="acme")
    assert stored == {
        "si_new": (at(T0), at(T0 + 31 * DAY), True),
        "si_old": (at(T0), at(T0 + 28 * DAY), True),
    }
    cancels = {e.properties["subscription_id"]: e for e in events if e.event == CANCEL_REQUESTED}
    assert cancels["sub_new"].properties["period_end"] == at(T0 + 31 * DAY).isoformat()
    assert cancels["sub_old"].properties["period_end"] == at(T0 + 28 * DAY).isoformat()
    assert cancels["sub_new"].timestamp == at(T0 + DAY)


def test_a_cancellation_carries_stripes_feedback_as_its_reason(billing: Billing) -> None:
    billing.send(sp.event("customer.created", sp.customer("cus_acme", "acme", T0), T0))
    pro = sp.price("price_pro_month", 9900)
    period = (T0, T0 + 31 * DAY)
    sub = sp.subscription(
        "sub_1", "cus_acme", [sp.item("si_1", pro, 1, T0, period=period)], T0,
        cancel_at_period_end=True,
    )  # fmt: skip
    sub["cancellation_details"] = {"feedback": "too_expensive", "comment": None, "reason": None}
    billing.send(sp.event("customer.subscription.updated", sub, T0 + DAY, api_version=sp.BASIL))
    with billing.db.connect() as conn:
        events = events_for(conn=conn, account_id="acme")
    (cancel,) = [e for e in events if e.event == CANCEL_REQUESTED]
    assert cancel.properties["reason"] == "too_expensive"


def test_prices_by_lookup_key_zero_decimal_currencies_and_discounts(billing: Billing) -> None:
    billing.send(sp.event("customer.created", sp.customer("cus_jp", "jp", T0), T0))
    yearly = sp.price("price_2", 29000, interval="year", lookup_key="basic_yearly")
    seat_jpy = sp.price("price_seat_month", 1500, currency="jpy")
    coupon = {"object": "discount", "coupon": {"percent_off": 20, "duration": "forever"}}
    items = [sp.item("si_y", yearly, 1, T0), sp.item("si_s", seat_jpy, 4, T0)]
    sub = sp.subscription("sub_jp", "cus_jp", items, T0, discount=coupon)
    assert billing.send(sp.event("customer.subscription.created", sub, T0))["outcome"] == "applied"
    with billing.db.connect() as conn:
        rows = subscription_items(conn=conn, account_id="jp")
    assert [(r.item_id, r.interval, r.quantity, r.unit_price) for r in rows] == [
        ("basic", "year", 1, Money.of("232.00", "USD")),
        ("extra_seats", "month", 4, Money.of("1200", "JPY")),
    ]


def test_unmapped_prices_and_unknown_event_types_are_acknowledged_and_recorded(
    billing: Billing,
) -> None:
    billing.send(sp.event("customer.created", sp.customer("cus_acme", "acme", T0), T0))
    items = [
        sp.item("si_ok", sp.price("price_pro_month", 9900), 1, T0),
        sp.item("si_unknown", sp.price("price_mystery", 500), 1, T0),
        sp.item("si_quarter", sp.price("price_pro_month", 27000, interval="month", count=3), 1, T0),
    ]
    answer = billing.send(
        sp.event("customer.subscription.created", sp.subscription("s", "cus_acme", items, T0), T0)
    )
    assert answer["outcome"] == "partial"
    assert "'price_mystery': not in the catalog" in answer["detail"]
    assert "bills every 3 month(s)" in answer["detail"]
    unknown = billing.send(sp.event("charge.refunded", {"id": "ch_1", "object": "charge"}, T0))
    assert unknown["outcome"] == "ignored"
    with billing.db.connect() as conn:
        rows = subscription_items(conn=conn, account_id="acme")
    assert [(r.item_id, r.unit_price.amount) for r in rows] == [("pro", Decimal("99.00"))]
    assert sorted(outcomes(billing.db).values()) == ["applied", "ignored", "partial"]


# -- customers and invoices ---------------------------------------------------------------------


def test_customers_map_to_accounts_through_metadata_then_the_stored_mapping(
    billing: Billing,
) -> None:
    nameless = sp.event("customer.created", sp.customer("cus_x", None, T0), T0)
    answer = billing.send(nameless)
    assert answer["outcome"] == "unmapped"
    assert "set metadata.upsell_account_id" in answer["detail"]
    billing.send(sp.event("customer.created", sp.customer("cus_acme", "acme", T0), T0))
    # Later updates need no metadata: the mapping is stored. Stripe's empty fields keep upsell's.
    moved = sp.customer("cus_acme", None, T0, email="ap@acme.test", currency=None, country="BE")
    billing.send(sp.event("customer.updated", moved, T0 + DAY))
    with billing.db.connect() as conn:
        account = get_account(conn=conn, account_id="acme")
        assert get_account(conn=conn, account_id="cus_x") is None
    assert account is not None
    assert (account.email, account.currency, account.country) == ("ap@acme.test", "USD", "BE")


def test_invoices_become_payment_events_that_the_risk_gates_read(billing: Billing) -> None:
    billing.send(sp.event("customer.created", sp.customer("cus_acme", "acme", T0), T0))
    failed = sp.event(
        "invoice.payment_failed", sp.invoice("in_1", "cus_acme", 2900, sub_id="sub_1"), T0 + DAY
    )
    paid = sp.event(
        "invoice.paid", sp.invoice("in_1", "cus_acme", 2900, sub_id="sub_1"), T0 + 2 * DAY
    )
    billing.send(paid)  # out of order: facts at their own instants
    billing.send(failed)
    assert billing.send(failed)["outcome"] == "duplicate"
    with billing.db.connect() as conn:
        events = events_for(conn=conn, account_id="acme")
    assert [(e.message_id, e.event, e.timestamp) for e in events] == [
        (failed["id"], PAYMENT_FAILED, at(T0 + DAY)),
        (paid["id"], "Invoice Paid", at(T0 + 2 * DAY)),
    ]
    assert events[0].properties == {
        "source": "stripe",
        "invoice_id": "in_1",
        "amount": "29.00",
        "currency": "USD",
        "subscription_id": "sub_1",
        "billing_reason": "subscription_cycle",
        "attempt_count": 1,
    }


# -- signatures and bad input -------------------------------------------------------------------


def test_signatures_are_checked_like_stripe_does(billing: Billing) -> None:
    event = sp.event("customer.created", sp.customer("cus_acme", "acme", T0), T0)
    payload = sp.body(event)
    now = int(time.time())
    forged = sp.sign(payload, "whsec_someone_else")
    v0_only = sp.sign(payload, SECRET).replace("v1=", "v0=")
    expired = sp.sign(payload, SECRET, now - 330)
    future = sp.sign(payload, SECRET, now + 330)
    tampered = sp.sign(payload, SECRET)
    cases = [
        (payload, None, "missing_signature"),
        (payload, forged, "bad_signature"),
        (payload, v0_only, "bad_signature"),
        (payload, "t=abc,v1=00", "bad_signature"),
        (payload, expired, "signature_expired"),
        (payload, future, "signature_expired"),
        (payload.replace(b"acme", b"evil"), tampered, "bad_signature"),
    ]
    for content, header, code in cases:
        answer = billing.post(content, header)
        assert (answer.status_code, answer.json()["code"]) == (400, code), (header, answer.text)
    assert outcomes(billing.db) == {}
    # Several v1 (Stripe rolling its secret), one of them right; v0 beside them is ignored; the
    # old secret, still configured, is accepted too.
    two = sp.sign(payload, "whsec_someone_else", now) + f",v1={sp.sign(payload, SECRET, now)[-64:]}"
    assert billing.post(payload, two + ",v0=deadbeef").json()["outcome"] == "applied"
    other = sp.event("customer.updated", sp.customer("cus_acme", "acme", T0), T0 + 1)
    assert billing.send(other, secret=OLD_SECRET)["outcome"] == "applied"
    # Four minutes old is within the five minutes' tolerance.
    late = sp.body(sp.event("customer.updated", sp.customer("cus_acme", "acme", T0), T0 + 2))
    assert billing.post(late, sp.sign(late, SECRET, int(time.time()) - 240)).status_code == 200


def test_bodies_that_are_not_stripe_events_are_refused_and_nothing_is_stored(
    billing: Billing,
) -> None:
    no_items = sp.subscription("sub_1", "cus_acme", [], T0)
    del no_items["items"]
    bad_status = sp.subscription("sub_1", "cus_acme", [], T0, status="exploded")
    billing.send(sp.event("customer.created", sp.customer("cus_acme", "acme", T0), T0))
    cases = [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_event"),
        (json.dumps({"id": "evt_1", "type": "x", "data": {}}).encode(), "invalid_event"),
        (sp.body(sp.event("customer.subscription.created", no_items, T0)), "invalid_event"),
        (sp.body(sp.event("customer.subscription.updated", bad_status, T0)), "invalid_event"),
        (
            b'{"id": "evt_9", "type": "invoice.paid", "created": 1, "data": {"object": '
            b'{"id": "in_9", "customer": "cus_acme", "amount_paid": 1e999}}}',
            "invalid_event",
        ),
        (
            json.dumps(sp.event("x.y", {"id": "o"}, T0) | {"id": "evt_" + "x" * 300}).encode(),
            "invalid_event",
        ),
    ]
    for content, code in cases:
        answer = billing.post(content, sp.sign(content, SECRET))
        assert (answer.status_code, answer.json()["code"]) == (400, code), answer.text
    assert list(outcomes(billing.db).values()) == ["applied"]
    assert httpx.get(f"{billing.server.url}/healthz").status_code == 200


def test_without_a_secret_the_endpoint_is_off_404(served: Any) -> None:
    answer = httpx.post(f"{served.url}/webhooks/stripe", content=b"{}")
    assert answer.status_code == 404
    assert "UPSELL_STRIPE_WEBHOOK_SECRET" in answer.json()["message"]


# -- the backfill ---------------------------------------------------------------------------------


def test_import_of_a_dump_applies_events_in_created_order(billing: Billing, tmp_path: Path) -> None:
    events = lifecycle()
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    assert shuffled != events
    dump = tmp_path / "events.jsonl"
    lines = [json.dumps(e) for e in shuffled]
    lines.insert(2, "{broken")
    dump.write_text("\n".join(lines) + "\n")
    done = billing.upsell("import", "-w", billing.folder, "--stripe-events", dump, "--json")
    assert done.returncode == 1, done.stderr  # a line was rejected
    report = json.loads(done.stdout)["stripe_events"]
    assert (report["read"], report["applied"], report["rejected"]) == (5, 4, 1)
    rejects_file = tmp_path / "events.jsonl.rejects.jsonl"
    rejects = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert [(r["line"], r["reason"][:8]) for r in rejects] == [(3, "not JSON")]
    check_lifecycle(billing.db)
    # The webhook delivering the same events afterwards changes nothing; nor does a second import.
    assert billing.send(events[2])["outcome"] == "duplicate"
    dump.write_text("\n".join(json.dumps(e) for e in shuffled) + "\n")
    again = billing.upsell("import", "-w", billing.folder, "--stripe-events", dump, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["stripe_events"]["duplicate"] == 4
    assert not (tmp_path / "events.jsonl.rejects.jsonl").exists()
    check_lifecycle(billing.db)


def test_concurrent_deliveries_apply_each_event_once(billing: Billing) -> None:
    billing.send(sp.event("customer.created", sp.customer("cus_acme", "acme", T0), T0))
    basic = sp.price("price_basic_month", 2900)
    updates = [
        sp.event(
            "customer.subscription.updated",
            sp.subscription("sub_1", "cus_acme", [sp.item("si_basic", basic, q, T0)], T0),
            T0 + q * DAY,
        )
        for q in range(1, 9)
    ]
    deliveries = [*updates, *updates]  # every event twice, at once
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda e: billing.send(e)["outcome"], deliveries))
    assert answers.count("duplicate") >= 8 and "applied" in answers
    with billing.db.connect() as conn:
        rows = subscription_items(conn=conn, account_id="acme")
    # Whatever the order they were applied in, the latest update holds now.
    assert rows[-1].quantity == 8 and rows[-1].ended_at is None
    assert all(r.ended_at is not None for r in rows[:-1])
    assert set(outcomes(billing.db).values()) <= {"applied", "stale"}


def test_events_that_come_before_their_customer_wait_for_it(billing: Billing) -> None:
    basic = sp.price("price_basic_month", 2900)
    items = [sp.item("si_basic", basic, 2, T0)]
    early = [
        sp.event(
            "customer.subscription.created", sp.subscription("sub_1", "cus_acme", items, T0), T0
        ),
        sp.event("invoice.payment_failed", sp.invoice("in_1", "cus_acme", 5800), T0 + 1),
    ]
    assert [billing.send(e)["outcome"] for e in early] == ["unmapped", "unmapped"]
    with billing.db.connect() as conn:
        assert subscription_items(conn=conn, account_id="acme") == []
    billing.send(sp.event("customer.created", sp.customer("cus_acme", "acme", T0 - 5), T0 + 2))
    with billing.db.connect() as conn:
        rows = subscription_items(conn=conn, account_id="acme")
        events = events_for(conn=conn, account_id="acme")
    assert [(r.item_id, r.quantity, r.started_at) for r in rows] == [("basic", 2, at(T0))]
    assert [(e.message_id, e.event) for e in events] == [(early[1]["id"], PAYMENT_FAILED)]
    assert set(outcomes(billing.db).values()) == {"applied"}
    assert billing.send(early[0])["outcome"] == "duplicate"


def test_a_kept_event_that_is_invalid_is_set_aside_when_its_customer_is_mapped(
    billing: Billing,
) -> None:
    """An event kept for an unmapped customer is checked when it is applied; one that fails then is
    ignored with the reason, and the customer is mapped all the same."""
    basic = sp.price("price_basic_month", 2900)
    bad = sp.subscription("sub_1", "cus_acme", [sp.item("si_basic", basic, 2, T0)], T0)
    bad["items"]["data"][0]["quantity"] = -3
    early = sp.event("customer.subscription.created", bad, T0)
    assert billing.send(early)["outcome"] == "unmapped"
    mapping = sp.event("customer.created", sp.customer("cus_acme", "acme", T0 - 5), T0 + 2)
    assert billing.send(mapping)["outcome"] == "applied"
    found = outcomes(billing.db)
    assert (found[early["id"]], found[mapping["id"]]) == ("ignored", "applied")
    with billing.db.connect() as conn:
        detail = conn.exec_driver_sql(
            f"SELECT detail FROM stripe_events WHERE event_id = '{early['id']}'"
        ).scalar_one()
    assert "then invalid" in detail and "quantity" in detail
