"""Offer outcomes, holdout groups and cohorts in the engine, on hand-built tables (DuckDB and
PySpark give the same answers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa

from upsell.config.catalog import parse_catalog
from upsell.engine.backends import Backend
from upsell.engine.movements import changes, mrr_rows
from upsell.engine.outcomes import (
    cohorts,
    expansion_since_first_decision,
    offer_outcomes,
    response_offer_ids,
)
from upsell.store.arrow import ACCOUNT_SCHEMA, CONTACT_SCHEMA, RESPONSE_SCHEMA, SUBSCRIPTION_SCHEMA

CATALOG = parse_catalog(
    """\
currency: USD
plans:
  - {id: basic, price: {month: 29}}
  - {id: pro, price: {month: 99}}
add_ons:
  - {id: seats, price: {month: 20}}
""",
    "c.yaml",
).catalog


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def subscription(account: str, item: str, start: str, end: str | None, price: str, **kw: object):
    return {
        "account_id": account, "item_id": item, "started_at": at(start),
        "ended_at": at(end) if end else None, "quantity": 1, "interval": "month",
        "unit_price": price, "currency": "USD", "status": "active", **kw,
    }  # fmt: skip


def contact(account: str, day: str, kind: str, offer: str, item: str, **kw: object):
    return {
        "account_id": account, "as_of": at(day), "kind": kind, "offer_id": offer, "item_id": item,
        "channel": "in_app", "placement": "modal", "playbook": "p", "experiment": None,
        "variant": None, "held_out": False, "status": "queued", "decision": None, **kw,
    }  # fmt: skip


SUBSCRIPTIONS = pa.Table.from_pylist(
    [
        # a: Basic, offered Pro on Mar 1, took it on Mar 10 (within 14 days)
        subscription("a", "basic", "2026-01-01", "2026-03-10", "29"),
        subscription("a", "pro", "2026-03-10", None, "99"),
        # b: Basic, offered Pro on Mar 1, took it on Mar 20 (too late)
        subscription("b", "basic", "2026-01-01", "2026-03-20", "29"),
        subscription("b", "pro", "2026-03-20", None, "99"),
        # c: Pro, asked to cancel, offered to stay on Mar 1, still pays on Mar 15
        subscription("c", "pro", "2026-01-01", None, "99"),
        # d: Pro, offered to stay on Mar 1, left on Mar 5
        subscription("d", "pro", "2026-01-01", "2026-03-05", "99", status="canceled"),
        # e: held out, bought seats on Mar 3 anyway
        subscription("e", "basic", "2026-01-01", None, "29"),
        subscription("e", "seats", "2026-03-03", None, "20"),
        # f: offered seats with a 14-day trial on Mar 1; paid from Mar 25 (14 + 14 days)
        subscription("f", "basic", "2026-01-01", None, "29"),
        subscription("f", "seats", "2026-03-11", "2026-03-25", "20", status="trialing"),
        subscription("f", "seats", "2026-03-25", None, "20"),
    ],
    schema=SUBSCRIPTION_SCHEMA,
)
CONTACTS = pa.Table.from_pylist(
    [
        contact("a", "2026-03-01", "upsell", "upsell:basic->pro", "pro"),
        contact("b", "2026-03-01", "upsell", "upsell:basic->pro", "pro"),
        contact("c", "2026-03-01", "save", "save:pro", "pro"),
        contact("d", "2026-03-01", "save", "save:pro", "pro"),
        contact(
            "e", "2026-03-01", "add_on", "add_on:seats", "seats", held_out=True, status="held_out"
        ),
        contact("f", "2026-03-01", "add_on", "add_on:seats", "seats"),
    ],
    schema=CONTACT_SCHEMA,
).append_column("trial_days", pa.array([0, 0, 0, 0, 0, 14], pa.int64()))
RESPONSES = response_offer_ids(
    pa.Table.from_pylist(
        [
            {
                "account_id": "a",
                "event": "Offer Viewed",
                "timestamp": at("2026-03-02"),
                "properties": '{"offer_id": "upsell:basic->pro"}',
            },
            {
                "account_id": "a",
                "event": "Offer Clicked",
                "timestamp": at("2026-03-02"),
                "properties": '{"offer_id": "upsell:basic->pro"}',
            },
            {
                "account_id": "b",
                "event": "Offer Viewed",
                "timestamp": at("2026-04-01"),
                "properties": '{"offer_id": "upsell:basic->pro"}',
            },
            {
                "account_id": "c",
                "event": "Offer Dismissed",
                "timestamp": at("2026-03-02"),
                "properties": "not json",
            },
        ],
        schema=RESPONSE_SCHEMA,
    )
)


def test_an_offer_converts_when_its_item_is_taken_within_the_window(backend: Backend) -> None:
    rows = mrr_rows(SUBSCRIPTIONS, CATALOG)
    ch = changes(backend.table(rows, "outcome_rows"))
    found = offer_outcomes(backend, CONTACTS, rows, ch, RESPONSES, window_days=14).to_pylist()
    assert [r["converted"] for r in found] == [True, False, True, False, True, True]
    assert [r["opened"] for r in found] == [True, False, False, False, False, False]
    assert [r["clicked"] for r in found] == [True, False, False, False, False, False]
    # c's dismissal has no offer id: it counts for no offer.
    assert [r["dismissed"] for r in found] == [False] * 6


def test_a_response_without_an_offer_id_counts_for_no_offer() -> None:
    assert RESPONSES.column("offer_id").to_pylist()[-1] is None


def test_treated_and_held_out_accounts_get_their_expansion_since_the_first_decision(
    backend: Backend,
) -> None:
    rows = mrr_rows(SUBSCRIPTIONS, CATALOG)
    ch = changes(backend.table(rows, "group_rows"))
    groups = expansion_since_first_decision(backend, CONTACTS, ch, end=at("2026-04-01"))
    found = {r["account_id"]: (r["group"], r["expansion"]) for r in groups.to_pylist()}
    assert found == {
        "a": ("treated", 70_000_000),
        "b": ("treated", 70_000_000),
        "c": ("treated", 0),
        "d": ("treated", 0),
        "e": ("holdout", 20_000_000),
        "f": ("treated", 20_000_000),
    }


def test_cohorts_follow_signup_months(backend: Backend) -> None:
    accounts = pa.Table.from_pylist(
        [
            {"account_id": x, "created_at": at("2026-01-01" if x in "abcd" else "2026-02-10")}
            for x in "abcdef"
        ],
        schema=ACCOUNT_SCHEMA,
    )
    rows = mrr_rows(SUBSCRIPTIONS, CATALOG)
    ch = changes(backend.table(rows, "cohort_rows"))
    months = [at("2026-01-01"), at("2026-02-01"), at("2026-03-01"), at("2026-04-01")]
    table = cohorts(backend, accounts, ch, None, months).to_pylist()
    by = {(r["cohort"], r["age"]): r for r in table}
    # January: a, b (Basic 29), c, d (Pro 99) = 256; in March a and b are on Pro, d left: 297.
    assert Decimal(by[(0, 0)]["mrr"]) / 10**6 == 256 and by[(0, 0)]["paying"] == 4
    assert Decimal(by[(0, 2)]["mrr"]) / 10**6 == 99 + 99 + 99 and by[(0, 2)]["paying"] == 3
    assert by[(0, 2)]["kept_mrr"] == by[(0, 2)]["mrr"] and by[(0, 2)]["retained"] == 3
    # February's signups (e, f) pay from January in this made-up data: they count from February.
    assert by[(1, 0)]["accounts"] == 2 and (1, 2) not in by


def test_an_account_that_starts_paying_later_is_not_in_its_cohorts_retention(
    backend: Backend,
) -> None:
    subscriptions = pa.Table.from_pylist(
        [
            subscription("p", "basic", "2026-01-05", None, "29"),
            subscription("q", "basic", "2026-02-05", None, "29"),  # signed up in January, free
        ],
        schema=SUBSCRIPTION_SCHEMA,
    )
    accounts = pa.Table.from_pylist(
        [{"account_id": x, "created_at": at("2026-01-02")} for x in "pq"], schema=ACCOUNT_SCHEMA
    )
    rows = mrr_rows(subscriptions, CATALOG)
    ch = changes(backend.table(rows, "late_rows"))
    months = [at("2026-01-01"), at("2026-02-01"), at("2026-03-01")]
    by = {r["age"]: r for r in cohorts(backend, accounts, ch, None, months).to_pylist()}
    assert (by[0]["paying"], by[1]["paying"]) == (1, 2)
    assert (by[1]["retained"], by[1]["kept_mrr"]) == (1, 29_000_000)


def test_an_offer_still_in_its_window_is_pending_and_an_offer_made_twice_converts_once(
    backend: Backend,
) -> None:
    subscriptions = pa.Table.from_pylist(
        [
            subscription("g", "basic", "2026-01-01", "2026-03-12", "29"),
            subscription("g", "pro", "2026-03-12", None, "99"),
            subscription("h", "basic", "2026-01-01", None, "29"),
        ],
        schema=SUBSCRIPTION_SCHEMA,
    )
    contacts = pa.Table.from_pylist(
        [
            contact("g", "2026-03-01", "upsell", "upsell:basic->pro", "pro"),
            contact("g", "2026-03-08", "upsell", "upsell:basic->pro", "pro"),
            contact("h", "2026-03-25", "upsell", "upsell:basic->pro", "pro"),
        ],
        schema=CONTACT_SCHEMA,
    ).append_column("trial_days", pa.array([0, 0, 0], pa.int64()))
    rows = mrr_rows(subscriptions, CATALOG)
    ch = changes(backend.table(rows, "pending_rows"))
    found = offer_outcomes(
        backend, contacts, rows, ch, RESPONSES.slice(0, 0), window_days=14,
        data_end=at("2026-04-01"),
    ).to_pylist()  # fmt: skip
    # g took Pro on Mar 12: credited to the latest offer before it (Mar 8), not to both.
    assert [r["converted"] for r in found] == [False, True, False]
    # h's window (Mar 25 + 14 days) ends after the data (Apr 1): not known yet.
    assert [r["pending"] for r in found] == [False, False, True]


def test_an_account_that_expanded_only_before_its_first_offer_counts_with_zero(
    backend: Backend,
) -> None:
    subscriptions = pa.Table.from_pylist(
        [
            subscription("k", "basic", "2026-01-01", None, "29"),
            subscription("k", "seats", "2026-02-01", None, "20"),
        ],
        schema=SUBSCRIPTION_SCHEMA,
    )
    contacts = pa.Table.from_pylist(
        [contact("k", "2026-03-01", "upsell", "upsell:basic->pro", "pro")],
        schema=CONTACT_SCHEMA,
    )
    ch = changes(backend.table(mrr_rows(subscriptions, CATALOG), "before_rows"))
    groups = expansion_since_first_decision(backend, contacts, ch, end=at("2026-04-01"))
    assert groups.to_pylist() == [
        {"account_id": "k", "group": "treated", "expansion": 0, "holdout_share": None}
    ]


def test_each_account_is_in_the_stratum_of_its_first_decisions_holdout_share(
    backend: Backend,
) -> None:
    """A save held out at 5 % and then an upsell at 10 %: the account's group was drawn at 5 %."""
    subscriptions = pa.Table.from_pylist(
        [subscription(x, "basic", "2026-01-01", None, "29") for x in "st"],
        schema=SUBSCRIPTION_SCHEMA,
    )

    def decided(account: str, day: str, share: float | None, **kw: object) -> dict[str, object]:
        line = json.dumps({} if share is None else {"holdout_share": share})
        return contact(account, day, "save", "save:basic", "basic", decision=line, **kw)

    contacts = pa.Table.from_pylist(
        [
            decided("s", "2026-03-08", 0.10),
            decided("s", "2026-03-01", 0.05, held_out=True, status="held_out"),
            decided("t", "2026-03-01", None),
        ],
        schema=CONTACT_SCHEMA,
    )
    ch = changes(backend.table(mrr_rows(subscriptions, CATALOG), "strata_rows"))
    groups = expansion_since_first_decision(backend, contacts, ch, end=at("2026-04-01"))
    found = {r["account_id"]: (r["group"], r["holdout_share"]) for r in groups.to_pylist()}
    assert found == {"s": ("treated", 0.05), "t": ("treated", None)}


def test_a_dismissal_counts_for_the_latest_offer_of_its_id_within_the_window(
    backend: Backend,
) -> None:
    subscriptions = pa.Table.from_pylist(
        [subscription(x, "basic", "2026-01-01", None, "29") for x in "mnpq"],
        schema=SUBSCRIPTION_SCHEMA,
    )
    contacts = pa.Table.from_pylist(
        [
            contact("m", "2026-03-01", "upsell", "upsell:basic->pro", "pro"),
            contact("m", "2026-03-08", "upsell", "upsell:basic->pro", "pro"),
            contact("n", "2026-03-01", "upsell", "upsell:basic->pro", "pro"),
            contact("p", "2026-03-01", "upsell", "upsell:basic->pro", "pro"),
            contact("q", "2026-03-01", "add_on", "add_on:seats", "seats"),
        ],
        schema=CONTACT_SCHEMA,
    ).append_column("trial_days", pa.array([0, 0, 0, 0, 14], pa.int64()))

    def dismissed(account: str, day: str, offer: str) -> dict[str, object]:
        return {
            "account_id": account, "event": "Offer Dismissed", "timestamp": at(day),
            "properties": json.dumps({"offer_id": offer}),
        }  # fmt: skip

    responses = response_offer_ids(
        pa.Table.from_pylist(
            [
                # m: the offer made twice; the dismissal on Mar 10 is the Mar 8 offer's only.
                dismissed("m", "2026-03-10", "upsell:basic->pro"),
                # n: dismissed another offer than the one made to it.
                dismissed("n", "2026-03-03", "add_on:seats"),
                # p: dismissed after the window (Mar 1 + 14 days).
                dismissed("p", "2026-03-16", "upsell:basic->pro"),
                # q: after the attribution window, within the trial: the window is 14 days.
                dismissed("q", "2026-03-20", "add_on:seats"),
            ],
            schema=RESPONSE_SCHEMA,
        )
    )
    rows = mrr_rows(subscriptions, CATALOG)
    ch = changes(backend.table(rows, "dismissed_rows"))
    found = offer_outcomes(backend, contacts, rows, ch, responses, window_days=14).to_pylist()
    assert [r["dismissed"] for r in found] == [False, True, False, False, False]
    assert not any(r["opened"] or r["clicked"] or r["converted"] for r in found)
