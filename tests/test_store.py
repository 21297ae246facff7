"""The store on SQLite and PostgreSQL: round trips, idempotent upserts, migrations, transactions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from upsell.domain.accounts import Account, User
from upsell.domain.contacts import CONTACT_STATUSES, RESPONSE_KINDS, Contact, Response
from upsell.domain.events import Event
from upsell.domain.money import INTERVALS, Money
from upsell.domain.offers import KINDS
from upsell.domain.subscriptions import STATUSES, SubscriptionItem
from upsell.errors import WorkspaceError
from upsell.store import db, schema
from upsell.store.accounts import (
    account_currencies,
    count_accounts,
    existing_account_ids,
    get_account,
    owners,
    upsert_accounts,
    upsert_users,
)
from upsell.store.catalogs import latest_catalog, save_catalog_version
from upsell.store.contacts import contacts_for, record_contact, record_response, responses_for
from upsell.store.events import count_events, events_for, insert_events
from upsell.store.subscriptions import subscription_items, upsert_subscription_items
from upsell.store.types import DecimalText, UTCDateTime
from upsell.store.watermarks import Watermark, get_watermark, set_watermark

T0 = datetime(2026, 1, 1, 9, 30, 15, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def account(account_id: str = "a-1", **changes: Any) -> Account:
    values: dict[str, Any] = {
        "account_id": account_id,
        "created_at": T0,
        "name": "Acme",
        "industry": "ecommerce",
        "employees": 40,
        "country": "NL",
        "currency": "EUR",
        "language": "nl",
        "email": "ops@acme.example",
        "traits": {"seats": 23, "tags": ["a", "b"], "nested": {"x": 1.5, "ok": True}},
    }
    values.update(changes)
    return Account(**values)


def item(
    account_id: str = "a-1", item_id: str = "basic", started: float = 0, **changes: Any
) -> SubscriptionItem:
    values: dict[str, Any] = {
        "account_id": account_id,
        "item_id": item_id,
        "started_at": at(started),
        "unit_price": Money.of("29.00", "USD"),
    }
    values.update(changes)
    return SubscriptionItem(**values)


def event(message_id: str, account_id: str = "a-1", day: float = 0, **changes: Any) -> Event:
    values: dict[str, Any] = {
        "message_id": message_id,
        "account_id": account_id,
        "event": "Project Created",
        "timestamp": at(day),
        "user_id": "u-1",
        "properties": {"feature": "automation", "n": 3},
    }
    values.update(changes)
    return Event(**values)


def contact(**changes: Any) -> Contact:
    values: dict[str, Any] = {
        "account_id": "a-1",
        "as_of": at(30),
        "kind": "upsell",
        "offer_id": "upsell:basic->pro",
        "item_id": "pro",
        "channel": "in_app",
    }
    values.update(changes)
    return Contact(**values)


# --- column types ---------------------------------------------------------------------------

probe = sa.Table(
    "probe",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime),
    sa.Column("amount", DecimalText),
    sa.Column("doc", sa.JSON),
)


@pytest.fixture
def probe_engine(db: sa.Engine) -> sa.Engine:
    probe.create(db)
    return db


def test_datetimes_come_back_aware_utc_at_the_same_instant(probe_engine: sa.Engine) -> None:
    local = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=CET)
    with probe_engine.begin() as conn:
        conn.execute(sa.insert(probe), [{"id": 1, "at": local}, {"id": 2, "at": None}])
        stored = conn.execute(sa.select(probe.c.at).order_by(probe.c.id)).scalars().all()
    assert stored[0] == local
    assert stored[0].tzinfo is UTC
    assert stored[0].hour == 11 and stored[0].microsecond == 654321
    assert stored[1] is None


def test_naive_datetime_is_refused(probe_engine: sa.Engine) -> None:
    with probe_engine.begin() as conn, pytest.raises(sa.exc.StatementError) as error:
        conn.execute(sa.insert(probe).values(id=1, at=datetime(2026, 1, 1)))
    assert isinstance(error.value.orig, ValueError)


def test_datetime_comparisons_in_sql_use_utc(probe_engine: sa.Engine) -> None:
    with probe_engine.begin() as conn:
        conn.execute(sa.insert(probe).values(id=1, at=datetime(2026, 1, 1, 12, tzinfo=UTC)))
        later = conn.execute(
            sa.select(probe.c.id).where(probe.c.at > datetime(2026, 1, 1, 12, 30, tzinfo=CET))
        ).all()
    assert later == [(1,)]


@pytest.mark.parametrize(
    "amount",
    ["70.00", "0.1000000000000000000000000001", "-0.00", "1E+3", "123456789012345678901234.5"],
)
def test_decimals_round_trip_exactly(probe_engine: sa.Engine, amount: str) -> None:
    with probe_engine.begin() as conn:
        conn.execute(sa.insert(probe).values(id=1, amount=Decimal(amount)))
        stored = conn.execute(sa.select(probe.c.amount)).scalar_one()
    assert isinstance(stored, Decimal)
    assert str(stored) == amount


@pytest.mark.parametrize("bad", [1.5, Decimal("NaN"), Decimal("Infinity"), "ten"])
def test_decimal_column_refuses_floats_and_non_finite(probe_engine: sa.Engine, bad: Any) -> None:
    with probe_engine.begin() as conn, pytest.raises(sa.exc.StatementError):
        conn.execute(sa.insert(probe).values(id=1, amount=bad))


def test_json_round_trips_and_refuses_nan_on_every_database(probe_engine: sa.Engine) -> None:
    doc = {"s": "héllo \u2603", "n": 1, "f": 0.1, "b": False, "z": None, "l": [1, {"k": "v"}]}
    with probe_engine.begin() as conn:
        conn.execute(sa.insert(probe).values(id=1, doc=doc))
        assert conn.execute(sa.select(probe.c.doc)).scalar_one() == doc
    # SQLite reports it wrapped in StatementError; psycopg serialises inside the driver, so the
    # ValueError comes through as it is.
    with probe_engine.begin() as conn, pytest.raises((sa.exc.StatementError, ValueError)):
        conn.execute(sa.insert(probe).values(id=2, doc={"x": float("nan")}))


# --- connecting and migrating ---------------------------------------------------------------


def test_sqlite_url_points_at_the_workspace_file(tmp_path: Path) -> None:
    url = db.sqlite_url(tmp_path)
    assert sa.make_url(url).database == str(tmp_path.resolve() / "upsell.db")


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    """And wait for another process's write lock as long as the lock timeout."""
    opened = db.connect(db.sqlite_url(tmp_path), lock_timeout=12.5)
    try:
        with opened.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
    finally:
        opened.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 12500,
        "synchronous": 1,
    }
    assert (tmp_path / "upsell.db").exists()


def test_unreachable_database_is_a_workspace_error_without_the_password() -> None:
    url = "postgresql+psycopg://upsell:s3cret@127.0.0.1:1/upsell"
    with pytest.raises(WorkspaceError) as error:
        db.connect(url)
    message = str(error.value)
    assert "127.0.0.1:1/upsell" in message
    assert "s3cret" not in message


def test_sqlite_file_in_a_missing_folder_is_a_workspace_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="cannot open database"):
        db.connect(db.sqlite_url(tmp_path / "missing"))


def test_malformed_url_is_a_workspace_error() -> None:
    with pytest.raises(WorkspaceError):
        db.connect("nosuchdb://x")


def test_migrate_brings_a_new_database_to_head_and_is_then_a_no_op(database_url: str) -> None:
    opened = db.connect(database_url)
    try:
        assert db.current_revision(opened) is None
        assert not db.is_current(opened)
        db.migrate(opened)
        assert db.current_revision(opened) == db.head_revision() == "0008"
        assert db.is_current(opened)
        with opened.begin() as conn:
            upsert_accounts(conn=conn, accounts=[account()])
        db.migrate(opened)
        assert db.is_current(opened)
        with opened.connect() as conn:
            assert count_accounts(conn=conn) == 1
    finally:
        opened.dispose()


def _differences(db: sa.Engine, metadata: sa.MetaData) -> list[Any]:
    with db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_migrations_create_exactly_the_tables_of_the_schema(db: sa.Engine) -> None:
    assert _differences(db, schema.metadata) == []


def test_schema_comparison_would_notice_a_drift(db: sa.Engine) -> None:
    drifted = sa.MetaData(naming_convention=schema.NAMING_CONVENTION)
    for table in schema.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["accounts"].append_column(sa.Column("plan", sa.String))
    drifted.tables["events"].c.account_id.type = sa.Integer()
    kinds = {
        diff[0] if isinstance(diff, tuple) else diff[0][0] for diff in _differences(db, drifted)
    }
    assert kinds == {"add_column", "modify_type"}


def test_every_domain_choice_passes_the_check_constraints(db: sa.Engine) -> None:
    with db.begin() as conn:
        for i, (status, interval) in enumerate((s, i) for s in STATUSES for i in INTERVALS):
            upsert_subscription_items(
                conn=conn, items=[item(item_id=f"x{i}", status=status, interval=interval)]
            )
        contact_ids = []
        for kind in KINDS:
            for status in CONTACT_STATUSES:
                contact_id, _ = record_contact(
                    conn=conn,
                    contact=contact(
                        kind=kind,
                        status=status,
                        held_out=status == "held_out",
                        offer_id=f"{kind}:{status}",
                    ),
                )
                contact_ids.append(contact_id)
        for response in RESPONSE_KINDS:
            record_response(
                conn=conn,
                response=Response(
                    contact_id=contact_ids[0], account_id="a-1", response=response, at=T0
                ),
            )
        assert len(responses_for(conn=conn, account_id="a-1")) == len(RESPONSE_KINDS)


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("contacts", "status", "delivered"),
        ("contacts", "kind", "discount"),
        ("subscription_items", "status", "paused"),
        ("subscription_items", "interval", "week"),
    ],
)
def test_the_database_refuses_values_outside_the_domain(
    db: sa.Engine, table: str, column: str, value: str
) -> None:
    with db.begin() as conn:
        upsert_subscription_items(conn=conn, items=[item()])
        record_contact(conn=conn, contact=contact())
    target = schema.metadata.tables[table]
    with db.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.update(target).values({column: value}))


# --- transactions ---------------------------------------------------------------------------


def test_a_failed_transaction_stores_nothing(db: sa.Engine) -> None:
    with pytest.raises(RuntimeError), db.begin() as conn:
        upsert_accounts(conn=conn, accounts=[account("a-1"), account("a-2")])
        insert_events(conn=conn, events=[event("m-1")])
        upsert_subscription_items(conn=conn, items=[item()])
        raise RuntimeError("importer gave up")
    with db.connect() as conn:
        assert count_accounts(conn=conn) == 0
        assert count_events(conn=conn) == 0
        assert subscription_items(conn=conn) == []


def test_a_constraint_violation_rolls_back_the_whole_batch(db: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), db.begin() as conn:
        insert_events(conn=conn, events=[event("m-1")])
        conn.execute(sa.insert(schema.accounts).values(_raw_account("a-1")))
        conn.execute(sa.insert(schema.accounts).values(_raw_account("a-1")))
    with db.connect() as conn:
        assert count_events(conn=conn) == 0
        assert count_accounts(conn=conn) == 0


def _raw_account(account_id: str) -> dict[str, Any]:
    return {"account_id": account_id, "created_at": T0, "traits": {}, "updated_at": T0}


def test_savepoints_roll_back_only_their_part(db: sa.Engine) -> None:
    with db.begin() as conn:
        upsert_accounts(conn=conn, accounts=[account("a-1")])
        with pytest.raises(RuntimeError), conn.begin_nested():
            upsert_accounts(conn=conn, accounts=[account("a-2")])
            raise RuntimeError("bad batch")
    with db.connect() as conn:
        assert existing_account_ids(conn=conn, ids=["a-1", "a-2"]) == {"a-1"}


def test_a_transaction_can_take_the_write_lock_up_front(db: sa.Engine) -> None:
    with db.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            upsert_accounts(conn=conn, accounts=[account()])
    with db.connect() as conn:
        assert count_accounts(conn=conn) == 1


# --- accounts and users ---------------------------------------------------------------------


def test_accounts_round_trip(db: sa.Engine) -> None:
    original = account(created_at=datetime(2025, 12, 31, 23, 0, tzinfo=CET))
    sparse = Account(account_id="a-2", created_at=T0)
    with db.begin() as conn:
        assert upsert_accounts(conn=conn, accounts=[original, sparse]) == (2, 0)
    with db.connect() as conn:
        stored = get_account(conn=conn, account_id="a-1")
        assert stored == original
        assert stored is not None and stored.created_at.tzinfo is UTC
        assert get_account(conn=conn, account_id="a-2") == sparse
        assert get_account(conn=conn, account_id="nope") is None
        assert count_accounts(conn=conn) == 2


def test_upserting_accounts_again_updates_in_place(db: sa.Engine) -> None:
    with db.begin() as conn:
        assert upsert_accounts(conn=conn, accounts=[account("a-1"), account("a-2")]) == (2, 0)
    with db.begin() as conn:
        assert upsert_accounts(conn=conn, accounts=[account("a-1"), account("a-2")]) == (0, 0)
        moved = account("a-2", country="DE", traits={"seats": 24})
        assert upsert_accounts(conn=conn, accounts=[account("a-1"), moved, account("a-3")]) == (
            1,
            1,
        )
    with db.connect() as conn:
        assert count_accounts(conn=conn) == 3
        assert get_account(conn=conn, account_id="a-2") == moved


def test_owners_are_the_accounts_with_the_trait_set(db: sa.Engine) -> None:
    owned = account("a-1", traits={"csm_owner": "dana@vendor.example", "seats": 3})
    other = account("a-2", traits={"owner": "sam"})
    empty = account("a-3", traits={"csm_owner": ""})
    with db.begin() as conn:
        upsert_accounts(conn=conn, accounts=[owned, other, empty, account("a-4", traits={})])
    with db.connect() as conn:
        assert owners(conn=conn, trait="csm_owner") == {"a-1": "dana@vendor.example"}
        assert owners(conn=conn, trait="owner", account_ids=["a-1", "a-2"]) == {"a-2": "sam"}
        assert owners(conn=conn, trait="owner", account_ids=["a-1"]) == {}


def test_the_last_of_two_rows_for_one_account_wins(db: sa.Engine) -> None:
    with db.begin() as conn:
        batch = [account(name="First"), account(name="Second")]
        assert upsert_accounts(conn=conn, accounts=batch) == (1, 0)
        stored = get_account(conn=conn, account_id="a-1")
    assert stored is not None and stored.name == "Second"


def test_existing_ids_and_currencies_work_past_the_in_limit(db: sa.Engine) -> None:
    many = [account(f"a-{i:04d}", currency="USD" if i % 2 else None) for i in range(2000)]
    with db.begin() as conn:
        assert upsert_accounts(conn=conn, accounts=many) == (2000, 0)
    asked = [f"a-{i:04d}" for i in range(1500, 2600)]
    with db.connect() as conn:
        assert existing_account_ids(conn=conn, ids=iter(asked)) == set(asked[:500])
        currencies = account_currencies(conn=conn, ids=asked)
    assert len(currencies) == 500
    assert currencies["a-1501"] == "USD"
    assert currencies["a-1500"] is None
    assert "a-2500" not in currencies


def test_users_keep_the_earliest_first_seen_and_latest_last_seen(db: sa.Engine) -> None:
    with db.begin() as conn:
        batch = [
            User("a-1", "u-1", at(5), at(6)),
            User("a-1", "u-1", at(3), at(4)),
            User("a-1", "u-2", at(1), at(1)),
            User("a-2", "u-1", at(2), at(2)),
        ]
        assert upsert_users(conn=conn, users=batch) == 3
    with db.begin() as conn:
        later = [User("a-1", "u-1", at(4), at(9)), User("a-1", "u-2", at(0), at(0.5))]
        assert upsert_users(conn=conn, users=[*later, User("a-3", "u-9", at(1), at(1))]) == 1
        rows = conn.execute(
            sa.select(schema.users).order_by(schema.users.c.account_id, schema.users.c.user_id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("a-1", "u-1", at(3), at(9)),
        ("a-1", "u-2", at(0), at(1)),
        ("a-2", "u-1", at(2), at(2)),
        ("a-3", "u-9", at(1), at(1)),
    ]


def test_many_users_across_many_accounts(db: sa.Engine) -> None:
    batch = [User(f"a-{i % 50}", f"u-{i}", at(1), at(2)) for i in range(1200)]
    with db.begin() as conn:
        assert upsert_users(conn=conn, users=batch) == 1200
        assert upsert_users(conn=conn, users=batch) == 0
        count = conn.execute(sa.select(sa.func.count()).select_from(schema.users)).scalar_one()
    assert count == 1200


# --- subscriptions --------------------------------------------------------------------------


def test_subscription_items_round_trip_with_exact_prices(db: sa.Engine) -> None:
    items = [
        item(unit_price=Money.of("26.1234567890123456789", "EUR"), quantity=3, interval="year"),
        item(item_id="extra_seats_5", started=2, ended_at=at(40), status="canceled"),
        item(account_id="a-0", item_id="pro", status="trialing"),
    ]
    with db.begin() as conn:
        assert upsert_subscription_items(conn=conn, items=items) == (3, 0, 0)
    with db.connect() as conn:
        stored = subscription_items(conn=conn)
        assert stored == [items[2], items[0], items[1]]
        assert str(stored[1].unit_price.amount) == "26.1234567890123456789"
        assert stored[2].ended_at is not None and stored[2].ended_at.tzinfo is UTC
        assert subscription_items(conn=conn, account_id="a-0") == [items[2]]
        assert subscription_items(conn=conn, account_id="nope") == []


def test_a_known_subscription_key_updates_the_stored_row(db: sa.Engine) -> None:
    with db.begin() as conn:
        assert upsert_subscription_items(conn=conn, items=[item(), item(item_id="pro")]) == (
            2,
            0,
            0,
        )
    ended = item(ended_at=at(31))
    # The same instant in another zone is the same key.
    same_key = item(item_id="pro", started_at=at(0).astimezone(CET))
    with db.begin() as conn:
        result = upsert_subscription_items(conn=conn, items=[ended, same_key, item(item_id="x")])
        assert result == (1, 1, 1)
        assert upsert_subscription_items(conn=conn, items=[ended, same_key]) == (0, 0, 2)
    with db.connect() as conn:
        stored = subscription_items(conn=conn, account_id="a-1")
    assert [(s.item_id, s.ended_at) for s in stored] == [
        ("basic", at(31)),
        ("pro", None),
        ("x", None),
    ]


def test_the_last_of_two_rows_for_one_subscription_key_wins(db: sa.Engine) -> None:
    with db.begin() as conn:
        batch = [item(quantity=2), item(quantity=5)]
        assert upsert_subscription_items(conn=conn, items=batch) == (1, 0, 0)
        assert [s.quantity for s in subscription_items(conn=conn)] == [5]


def test_subscription_items_sort_by_code_point_on_every_database(db: sa.Engine) -> None:
    ids = ["b", "A-2", "a-10", "Z"]
    with db.begin() as conn:
        upsert_subscription_items(conn=conn, items=[item(account_id=a) for a in ids])
        assert [s.account_id for s in subscription_items(conn=conn)] == sorted(ids)


# --- events ---------------------------------------------------------------------------------


def test_events_round_trip_in_time_order(db: sa.Engine) -> None:
    events = [
        event("m-2", day=2, properties={"gb": 1.25, "tags": ["x"], "deep": {"a": None}}),
        event("m-1", day=1, user_id=None, properties={}),
        event("m-3", day=2, event="Feature Blocked"),
        event("m-4", account_id="a-2"),
    ]
    with db.begin() as conn:
        assert insert_events(conn=conn, events=events) == (4, 0)
    with db.connect() as conn:
        assert events_for(conn=conn, account_id="a-1") == [events[1], events[0], events[2]]
        assert events_for(conn=conn, account_id="a-2")[0].timestamp.tzinfo is UTC
        assert events_for(conn=conn, account_id="nope") == []
        assert count_events(conn=conn) == 4


def test_events_are_deduplicated_within_and_across_batches(db: sa.Engine) -> None:
    with db.begin() as conn:
        first = [event("m-1"), event("m-2"), event("m-1", event="Other")]
        assert insert_events(conn=conn, events=first) == (2, 1)
        assert events_for(conn=conn, account_id="a-1")[0].event == "Project Created"
    with db.begin() as conn:
        second = [event("m-2"), event("m-3"), event("m-3"), event("m-1")]
        assert insert_events(conn=conn, events=second) == (1, 3)
        assert insert_events(conn=conn, events=[]) == (0, 0)
        assert count_events(conn=conn) == 3


def test_large_event_batches_are_counted_exactly(db: sa.Engine) -> None:
    batch = [event(f"m-{i}", account_id=f"a-{i % 7}", day=i / 1000) for i in range(2500)]
    with db.begin() as conn:
        assert insert_events(conn=conn, events=batch[:1000]) == (1000, 0)
        assert insert_events(conn=conn, events=batch) == (1500, 1000)
        assert count_events(conn=conn) == 2500


# --- catalogs -------------------------------------------------------------------------------


def test_catalog_versions_are_deduplicated_by_hash(db: sa.Engine) -> None:
    with db.begin() as conn:
        assert latest_catalog(conn=conn) is None
        v1, created = save_catalog_version(
            conn=conn, text="currency: USD\n", sha256="a" * 64, source="c.yaml"
        )
        assert created
        assert save_catalog_version(
            conn=conn, text="currency: USD\n", sha256="a" * 64, source="x"
        ) == (v1, False)
        v2, created = save_catalog_version(
            conn=conn, text="currency: EUR\n", sha256="b" * 64, source="d.yaml"
        )
        assert created and v2 > v1
        assert latest_catalog(conn=conn) == (v2, "currency: EUR\n", "d.yaml")


# --- contacts and responses -----------------------------------------------------------------


def test_contacts_round_trip_and_are_recorded_once(db: sa.Engine) -> None:
    full = contact(
        user_id="u-1",
        placement="modal",
        playbook="near-limit",
        experiment="limit-modal-copy",
        variant="B",
        status="sent",
        message={"locale": "en", "subject": "Grow", "cta": "Try Pro"},
        expected_mrr_delta=Money.of("70.00", "USD"),
        created_at=at(30.5),
    )
    held = contact(account_id="a-2", held_out=True, status="held_out")
    with db.begin() as conn:
        contact_id, created = record_contact(conn=conn, contact=full)
        assert created
        assert record_contact(conn=conn, contact=full) == (contact_id, False)
        assert record_contact(conn=conn, contact=contact(channel="email"))[1]
        assert record_contact(conn=conn, contact=held)[1]
    with db.connect() as conn:
        stored = contacts_for(conn=conn, account_id="a-1")
        assert [c.channel for c in stored] == ["in_app", "email"]
        assert stored[0] == Contact(**{**full.__dict__, "contact_id": contact_id})
        assert stored[0].expected_mrr_delta is not None
        assert str(stored[0].expected_mrr_delta.amount) == "70.00"
        assert stored[1].created_at is not None and stored[1].created_at.tzinfo is UTC
        [stored_held] = contacts_for(conn=conn, account_id="a-2")
        assert stored_held.held_out and stored_held.expected_mrr_delta is None


def test_the_same_contact_at_the_same_instant_in_another_zone_is_one_contact(
    db: sa.Engine,
) -> None:
    with db.begin() as conn:
        contact_id, _ = record_contact(conn=conn, contact=contact())
        again = contact(as_of=at(30).astimezone(CET))
        assert record_contact(conn=conn, contact=again) == (contact_id, False)


def test_responses_are_recorded_against_their_contact(db: sa.Engine) -> None:
    with db.begin() as conn:
        contact_id, _ = record_contact(conn=conn, contact=contact())
        clicked = Response(contact_id, "a-1", "clicked", at(31), {"cta": "Try Pro"})
        shown = Response(contact_id, "a-1", "shown", at(30.1))
        clicked_id = record_response(conn=conn, response=clicked)
        shown_id = record_response(conn=conn, response=shown)
        assert clicked_id != shown_id
        assert responses_for(conn=conn, account_id="a-1") == [
            Response(contact_id, "a-1", "shown", at(30.1), {}, shown_id),
            Response(contact_id, "a-1", "clicked", at(31), {"cta": "Try Pro"}, clicked_id),
        ]


def test_a_response_to_an_unknown_contact_is_refused(db: sa.Engine) -> None:
    with db.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        record_response(conn=conn, response=Response(999, "a-1", "shown", T0))


def test_contact_invariants() -> None:
    with pytest.raises(ValueError, match="held out"):
        contact(held_out=True)
    with pytest.raises(ValueError, match="held out"):
        contact(status="held_out")
    with pytest.raises(ValueError, match="kind"):
        contact(kind="discount")
    with pytest.raises(ValueError, match="response"):
        Response(1, "a-1", "liked", T0)  # type: ignore[arg-type]


# --- watermarks -----------------------------------------------------------------------------


def test_watermarks_are_upserted_per_kind_and_source(db: sa.Engine) -> None:
    first = Watermark("events", "/data/events.jsonl", 1024, 10, "c" * 64)
    with db.begin() as conn:
        assert get_watermark(conn=conn, kind="events", source="/data/events.jsonl") is None
        set_watermark(conn=conn, watermark=first)
        set_watermark(conn=conn, watermark=Watermark("accounts", "/data/events.jsonl", 1, 1, "d"))
        assert get_watermark(conn=conn, kind="events", source="/data/events.jsonl") == first
    moved = Watermark("events", "/data/events.jsonl", 5_000_000_000, 3_000_000_000, "e" * 64)
    with db.begin() as conn:
        set_watermark(conn=conn, watermark=moved)
    with db.connect() as conn:
        assert get_watermark(conn=conn, kind="events", source="/data/events.jsonl") == moved
        assert get_watermark(conn=conn, kind="accounts", source="/data/events.jsonl") is not None
        total = conn.execute(
            sa.select(sa.func.count()).select_from(schema.import_watermarks)
        ).scalar_one()
    assert total == 2


def test_watermark_counts_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        Watermark("events", "f", -1, 0, "")


def test_live_events_are_stored_once_in_batches_of_every_size(db: sa.Engine) -> None:
    """`add_events` (the service's writer): executemany on SQLite, one INSERT from arrays on
    PostgreSQL; duplicates in the batch or in the store are skipped, and a rollback leaves nothing
    behind."""
    from upsell.store.events import add_events

    at = datetime(2026, 5, 1, tzinfo=UTC)

    def batch(tag: str, n: int) -> list[Event]:
        return [
            Event(f"{tag}-{i}", f"a{i % 3}", "Seat Added", at + timedelta(seconds=i),
                  user_id=None if i % 4 == 0 else f"u{i}", properties={"n": i, "s": "é\t\\"})
            for i in range(n)
        ]  # fmt: skip

    with db.begin() as conn:
        assert add_events(conn=conn, events=batch("small", 10), now=at) == 10
        big = batch("big", 120)
        assert add_events(conn=conn, events=big + big[:30] + batch("small", 10), now=at) == 120
        # Twice in one transaction.
        assert add_events(conn=conn, events=batch("more", 60), now=at) == 60
    with pytest.raises(RuntimeError), db.begin() as conn:
        add_events(conn=conn, events=batch("lost", 80), now=at)
        raise RuntimeError("roll back")
    with db.begin() as conn:
        assert add_events(conn=conn, events=batch("after", 70), now=at) == 70
        rows = conn.exec_driver_sql(
            "SELECT message_id, user_id, properties FROM events WHERE message_id = 'big-5'"
        ).one()
        total = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
    assert total == 10 + 120 + 60 + 70
    props = rows[2] if isinstance(rows[2], dict) else json.loads(rows[2])
    assert rows[:2] == ("big-5", "u5") and props == {"n": 5, "s": "é\t\\"}


def test_fitted_answers_are_stored_and_the_newest_is_read_back(database_url: str) -> None:
    from datetime import UTC, datetime

    from upsell.domain.answers import Answers, Linear, Outcome, count
    from upsell.store.models import latest_model, save_model

    opened = db.connect(database_url)
    try:
        db.migrate(opened)
        linear = Linear({"score": 0.5}, {"score": 0.4}, {"score": 0.2}, intercept=-0.1)
        answers = Answers(
            count([Outcome("upsell", "in_app", "modal", "p", 0.1, False, True)]),
            treated_model=linear,
        )
        at = datetime(2026, 6, 1, tzinfo=UTC)
        with opened.begin() as conn:
            assert latest_model(conn=conn, name="answers") is None
            first = save_model(
                conn=conn, name="answers", fitted_at=at, data_end=at, decisions=1,
                params=answers.to_json(), evaluation={"auc": None},
            )  # fmt: skip
            second = save_model(
                conn=conn, name="answers", fitted_at=at, data_end=at, decisions=2,
                params=answers.to_json(), evaluation=None,
            )  # fmt: skip
        with opened.connect() as conn:
            stored = latest_model(conn=conn, name="answers")
        assert stored is not None and second > first and stored.version == second
        assert stored.decisions == 2 and stored.data_end == at
        again = Answers.from_json(stored.params, version=stored.version)
        assert again.counts == answers.counts and again.treated_model == linear
    finally:
        opened.dispose()
