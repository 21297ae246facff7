"""The messages API's read model (service/inbox.py) on a real store: it answers as
`messages_for` does, follows what other processes store, and never serves an answered message."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import empty_database, new_workspace
from upsell.domain.calendar import iso
from upsell.domain.contacts import Contact
from upsell.domain.playbooks import Cap
from upsell.flows.messages import messages_for, record_event
from upsell.ingest.live import ingest
from upsell.ingest.messages import Message
from upsell.service.inbox import Inbox
from upsell.settings import Settings
from upsell.store.contacts import record_contact
from upsell.workspace import Workspace

DAY = timedelta(days=1)
CAPS = (Cap(1, 14, "in_app", "modal"),)
USERS = [("acme", "ann"), ("acme", "bob"), ("globex", "gus"), ("initech", "ian")]


@pytest.fixture(params=["sqlite", "postgresql"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    with empty_database(request.param, tmp_path) as url:
        new_workspace(tmp_path / "ws", url)
        settings = Settings(database_url=None if url.startswith("sqlite") else url)
        with Workspace.open(tmp_path / "ws", settings) as ws:
            join(ws, USERS)
            yield ws


def join(ws: Workspace, pairs: list[tuple[str, str]]) -> None:
    now = datetime.now(UTC)
    ingest(
        db=ws.db,
        messages=[Message("group", f"g-{a}-{u}", now, user_id=u, group_id=a) for a, u in pairs],
    )


def offer(ws: Workspace, account: str, *, conn: sa.Connection | None = None, **kw: Any) -> int:
    """An in-app contact as `upsell run` records it; its id."""
    at = kw.pop("as_of", datetime.now(UTC) - DAY / 24)
    contact = Contact(
        account_id=account, as_of=at, kind="upsell", offer_id=kw.pop("offer_id", "upsell:a"),
        item_id="pro", channel="in_app", placement=kw.pop("placement", "banner"),
        message={"locale": "en", "subject": "Upgrade", "body": "10 of 10 seats", "cta": "Go",
                 "cta_url": "https://app.example.com", "expires_at": kw.pop("expires_at", None)},
        decision={"price": "49.00", "price_currency": "USD"}, **kw,
    )  # fmt: skip
    if conn is not None:
        return record_contact(conn=conn, contact=contact)[0]
    with ws.db.begin() as c:
        return record_contact(conn=c, contact=contact)[0]


def ids(served: list[Any]) -> list[int]:
    return [s.contact.contact_id for s in served]


def test_the_inbox_answers_as_messages_for_does(ws: Workspace) -> None:
    now = datetime.now(UTC)
    offer(ws, "acme", as_of=now - 3 * DAY)
    newest = offer(ws, "acme", offer_id="upsell:b", placement="modal")
    offer(ws, "globex", user_id="someone-else")
    offer(ws, "initech", expires_at=iso(now - DAY))
    inbox = Inbox(ws, refresh=0)
    for user in ("ann", "bob", "gus", "ian", "nobody"):
        for account in (None, "acme", "globex"):
            expected = messages_for(ws, user_id=user, account_id=account, now=now, caps=CAPS)
            got = inbox.messages(user_id=user, account_id=account, now=now, caps=CAPS)
            assert ids(got) == ids(expected), (user, account)
    assert ids(inbox.messages(user_id="ann", account_id=None, now=now, caps=CAPS)) == [newest]
    # A modal shown is not served again, and the cap keeps the next one out for 14 days.
    record_event(ws, message_id=str(newest), user_id="ann", event="shown", at=now)
    later = offer(ws, "acme", offer_id="upsell:c", placement="modal", as_of=now)
    assert inbox.messages(user_id="bob", account_id=None, now=now, caps=CAPS) == []
    assert messages_for(ws, user_id="bob", now=now, caps=CAPS) == []
    soon = now + 15 * DAY
    assert ids(inbox.messages(user_id="bob", account_id=None, now=soon, caps=CAPS)) == [later]


def test_an_answer_is_seen_at_once_and_other_writes_at_the_next_look(ws: Workspace) -> None:
    first = offer(ws, "acme")
    inbox = Inbox(ws, refresh=3600)  # not started: it looks when told to
    now = datetime.now(UTC)
    assert ids(inbox.messages(user_id="ann", account_id=None, now=now, caps=CAPS)) == [first]
    offer(ws, "globex")  # stored by another process: not seen before the next look
    assert inbox.messages(user_id="gus", account_id=None, now=now, caps=CAPS) == []
    # An answer this process stores is read at once: a dismissed message is never served again.
    assert record_event(ws, message_id=str(first), user_id="ann", event="dismissed", at=now)
    inbox.answered(first)
    assert inbox.messages(user_id="ann", account_id=None, now=now, caps=CAPS) == []
    inbox.look()
    assert len(inbox.messages(user_id="gus", account_id=None, now=now, caps=CAPS)) == 1


def test_a_user_who_joins_an_account_sees_its_message_once_the_view_is_read_again(
    ws: Workspace,
) -> None:
    offer(ws, "acme")
    inbox = Inbox(ws, refresh=0, max_age=0.3)
    now = datetime.now(UTC)
    assert inbox.messages(user_id="dan", account_id=None, now=now, caps=CAPS) == []
    join(ws, [("acme", "dan")])
    time.sleep(0.4)
    assert len(inbox.messages(user_id="dan", account_id=None, now=now, caps=CAPS)) == 1


def test_a_contact_committed_after_a_newer_one_is_found(ws: Workspace) -> None:
    """PostgreSQL takes ids when rows are inserted, and transactions commit in any order."""
    if ws.db.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids are committed in order")
    inbox = Inbox(ws, refresh=0)
    now = datetime.now(UTC)
    assert inbox.messages(user_id="gus", account_id=None, now=now, caps=CAPS) == []
    with ws.db.connect() as slow:
        slow.begin()
        late = offer(ws, "globex", conn=slow)
        early = offer(ws, "initech")
        assert late < early
        assert ids(inbox.messages(user_id="ian", account_id=None, now=now, caps=CAPS)) == [early]
        slow.commit()
    assert ids(inbox.messages(user_id="gus", account_id=None, now=now, caps=CAPS)) == [late]
