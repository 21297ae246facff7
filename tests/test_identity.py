"""Identity resolution and the store of live messages (ingest/live.py), on SQLite and PostgreSQL:
which account an event belongs to, events waiting for their account, aliases, de-duplication."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from upsell.ingest.live import Stored, ingest, ingest_together
from upsell.ingest.messages import Message
from upsell.store.accounts import get_account
from upsell.store.identities import count_pending, get_identities

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def track(mid: str, who: str | None, minute: int = 0, **kw: Any) -> Message:
    return Message(
        "track", mid, at(minute), user_id=who, event="Feature Used", properties={"n": mid}, **kw
    )


def group(mid: str, who: str, account: str, minute: int = 0, **traits: Any) -> Message:
    return Message("group", mid, at(minute), user_id=who, group_id=account, traits=traits)


def rows(db: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def events(db: sa.Engine) -> list[tuple[Any, ...]]:
    return rows(db, "SELECT message_id, account_id, user_id FROM events ORDER BY message_id")


def pending(db: sa.Engine) -> list[str]:
    return [r[0] for r in rows(db, "SELECT message_id FROM pending_events ORDER BY message_id")]


def test_an_event_waits_for_its_account_and_is_attributed_by_the_group_call(db) -> None:
    assert ingest(db=db, messages=[track("e1", "u1", 1), track("e2", "u1", 2)]) == Stored(pending=2)
    assert events(db) == [] and pending(db) == ["e1", "e2"]
    with db.connect() as conn:
        assert count_pending(conn=conn) == 2
    done = ingest(db=db, messages=[group("g1", "u1", "acme", 3, name="Acme", seats=12)])
    assert done == Stored(attributed=2)
    assert events(db) == [("e1", "acme", "u1"), ("e2", "acme", "u1")] and pending(db) == []
    # Later events of the user go straight to the account; its users row spans them all.
    assert ingest(db=db, messages=[track("e3", "u1", 9)]) == Stored(new=1)
    assert rows(db, "SELECT account_id, user_id FROM users") == [("acme", "u1")]
    with db.connect() as conn:
        user = conn.exec_driver_sql("SELECT first_seen, last_seen FROM users").one()
        account = get_account(conn=conn, account_id="acme")
    assert [str(v)[:16] for v in user] == ["2026-05-01 09:01", "2026-05-01 09:09"]
    assert account is not None and account.name == "Acme" and account.traits == {"seats": 12}


def test_in_one_batch_each_event_goes_to_the_account_of_the_group_call_before_it(db) -> None:
    batch = [
        track("e0", "u1", 0),
        group("g1", "u1", "a", 1),
        track("e1", "u1", 2),
        group("g2", "u1", "b", 3),
        track("e2", "u1", 4),
        track("e3", "u2", 5, group_id="c"),  # context.groupId names the account directly
    ]
    assert ingest(db=db, messages=batch) == Stored(new=4)
    assert events(db) == [
        ("e0", "b", "u1"),
        ("e1", "a", "u1"),
        ("e2", "b", "u1"),
        ("e3", "c", "u2"),
    ]
    with db.connect() as conn:
        assert get_account(conn=conn, account_id="c") is not None  # created on first sight
        assert get_identities(conn=conn, user_ids=["u1", "u2"])["u1"].account_id == "b"


def test_an_alias_brings_an_anonymous_users_events_to_their_account(db) -> None:
    anonymous = Message("track", "e1", at(1), anonymous_id="anon", event="Page Viewed")
    ingest(db=db, messages=[anonymous, group("g1", "u1", "acme", 2)])
    assert pending(db) == ["e1"]
    alias = Message("alias", "al", at(3), user_id="u1", previous_id="anon")
    assert ingest(db=db, messages=[alias]) == Stored(attributed=1)
    assert events(db) == [("e1", "acme", "u1")]
    # An identify with both ids aliases them too; a chain anon2 → anon → u1 is followed.
    ident = Message("identify", "i1", at(4), user_id="anon", anonymous_id="anon2")
    later = Message("track", "e2", at(5), anonymous_id="anon2", event="Feature Used")
    assert ingest(db=db, messages=[ident, later]) == Stored(new=1)
    assert events(db)[-1] == ("e2", "acme", "u1")


def test_identify_keeps_email_language_and_traits(db) -> None:
    first = Message(
        "identify", "i1", at(0), user_id="u1", traits={"email": "a@x.io", "language": "pt_BR"}
    )
    second = Message(
        "identify", "i2", at(1), user_id="u1", traits={"plan": "pro", "language": "x!"}
    )
    once = Message("identify", "i3", at(2), user_id="u1", traits={"plan": "free"}, set_once=True)
    ingest(db=db, messages=[first, second, once])
    with db.connect() as conn:
        user = get_identities(conn=conn, user_ids=["u1"])["u1"]
    assert (user.email, user.language, user.account_id) == ("a@x.io", "pt-BR", None)
    assert user.traits == {"email": "a@x.io", "language": "x!", "plan": "pro"}


def test_group_traits_fill_the_account_and_keep_what_they_cannot_read(db) -> None:
    ingest(db=db, messages=[group("g1", "u1", "acme", 0, name="Acme", seats=5, country="NL")])
    traits = {"employees": 40, "country": "Netherlands", "createdAt": "2025-01-02T00:00:00Z"}
    ingest(db=db, messages=[group("g2", "u2", "acme", 1, seats=7, **traits)])
    with db.connect() as conn:
        account = get_account(conn=conn, account_id="acme")
    assert account is not None
    assert (account.name, account.employees, account.country) == ("Acme", 40, "NL")
    assert account.created_at == datetime(2025, 1, 2, tzinfo=UTC)
    assert account.traits == {"seats": 7, "country": "Netherlands"}


def test_a_message_id_is_stored_once_across_events_and_pending_events(db) -> None:
    assert ingest(db=db, messages=[track("e1", "u1"), track("e1", "u1")]) == Stored(
        pending=1, duplicates=1
    )
    assert ingest(db=db, messages=[track("e1", "u1")]) == Stored(duplicates=1)
    # Sent again naming its account: it moves out of pending_events rather than being copied.
    assert ingest(db=db, messages=[track("e1", "u1", group_id="acme")]) == Stored(attributed=1)
    assert events(db) == [("e1", "acme", "u1")] and pending(db) == []
    assert ingest(db=db, messages=[track("e1", "u1", group_id="acme")]) == Stored(duplicates=1)
    assert ingest(db=db, messages=[track("e1", "u9")]) == Stored(duplicates=1)
    assert pending(db) == []


def test_an_events_file_in_segments_shape_imports_as_it_is(db, tmp_path) -> None:
    from upsell.ingest.importer import import_table, rejects_path

    lines = [
        {
            "type": "track",
            "userId": "u1",
            "event": "Feature Used",
            "messageId": "s1",
            "timestamp": "2026-05-01T09:00:00Z",
            "properties": {"feature": "api"},
            "anonymousId": None,
            "integrations": {},
        },
        {
            "userId": "u2",
            "event": "Feature Used",
            "context": {"groupId": "beta"},
            "timestamp": "2026-05-01T09:05:00Z",
            "messageId": "s2",
        },
        {
            "type": "group",
            "userId": "u1",
            "groupId": "acme",
            "traits": {"seats": 3},
            "timestamp": "2026-05-01T09:10:00Z",
        },
        {"type": "track", "userId": 7, "event": ["not", "text"], "messageId": "s3"},
        {"type": "bogus", "userId": "u1"},
        {
            "account_id": "beta",
            "event": "Feature Used",
            "timestamp": "2026-05-01T10:00:00Z",
            "message_id": "f1",
        },
    ]
    path = tmp_path / "segment.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = import_table(db=db, kind="events", path=path)
    assert (done.read, done.new, done.rejected, done.pending) == (6, 3, 2, 0)
    assert events(db) == [("f1", "beta", None), ("s1", "acme", "u1"), ("s2", "beta", "u2")]
    reasons = [json.loads(line)["reason"] for line in rejects_path(path).read_text().splitlines()]
    assert reasons == [
        "message.event: expected a string, got an array ['not', 'text']",
        "message.type: unknown type 'bogus': expected one of identify, track, page, screen, "
        "group, alias",
    ]
    again = import_table(db=db, kind="events", path=path)
    assert again.new == 0


def test_the_import_command_says_how_many_events_wait_for_their_account(tmp_path) -> None:
    from cli_runner import run

    ws = tmp_path / "ws"
    assert run("init", ws).exit_code == 0
    path = tmp_path / "segment.jsonl"
    line = {"type": "track", "userId": "u9", "event": "Feature Used", "messageId": "w1"}
    path.write_text(json.dumps(line | {"timestamp": "2026-05-01T09:00:00Z"}) + "\n")
    done = run("import", "-w", ws, "--events", path)
    assert done.exit_code == 0, done.output
    assert "events waiting for their account: 1 " in " ".join(done.output.split())


def test_an_account_of_a_transaction_rolled_back_is_created_by_the_next(db) -> None:
    """Ingestion remembers the accounts it stored, to skip their INSERT next time: only once the
    transaction committed. Here the first one fails after creating `acme` (a user id the driver
    cannot take), so the second must create it again."""
    broken = track("e1", None, group_id="acme")
    broken.user_id = object()  # type: ignore[assignment]
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error, which varies
        ingest(db=db, messages=[broken])
    assert rows(db, "SELECT account_id FROM accounts") == []
    assert ingest(db=db, messages=[track("e2", "u1", group_id="acme")]) == Stored(new=1)
    assert rows(db, "SELECT account_id FROM accounts") == [("acme",)]
    assert events(db) == [("e2", "acme", "u1")]


def test_batches_stored_together_or_each_alone_as_one_after_the_other(db) -> None:
    """`ingest_together` (the service's group commit): batches of tracks in one transaction; a
    batch with a group call, or repeating another's message id, alone; and when the transaction
    fails, each batch alone, so that only the one that cannot be stored fails."""
    tracks = [track("e1", "u1", group_id="acme"), track("e2", "u2")]
    done = ingest_together(db=db, batches=[tracks, [track("e3", "u1", group_id="acme")]])
    assert done == [Stored(new=2, pending=1)] * 2 and done[0] is done[1]
    # e4 repeated: stored as two requests one after the other would be (the second copy names
    # its account, so the waiting first one goes); the group call attributes e2 in its own.
    waits, named = [track("e4", "u3")], [track("e4", "u3", group_id="acme")]
    done = ingest_together(db=db, batches=[waits, named, [group("g1", "u2", "beta")]])
    assert done == [Stored(pending=1, attributed=2)] * 3
    broken = track("e6", None, group_id="gamma")
    broken.user_id = object()  # type: ignore[assignment]
    five, seven = track("e5", "u1", group_id="acme"), track("e7", "u1", group_id="acme")
    done = ingest_together(db=db, batches=[[five], [broken], [seven]])
    assert isinstance(done[1], Exception) and done[0] == done[2] == Stored(new=2)
    assert events(db) == [
        ("e1", "acme", "u1"),
        ("e2", "beta", "u2"),
        ("e3", "acme", "u1"),
        ("e4", "acme", "u3"),
        ("e5", "acme", "u1"),
        ("e7", "acme", "u1"),
    ]
    assert pending(db) == [] and rows(db, "SELECT account_id FROM accounts ORDER BY 1") == [
        ("acme",),
        ("beta",),
    ]
