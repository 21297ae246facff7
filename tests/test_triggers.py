"""Real-time triggers (docs/in-app.md, "Real-time triggers"): an event that may make a playbook
trigger true queues its account in the transaction that stores it, and the worker of `upsell
serve` decides for it at once, through the daily run's code path and guardrails.

The company is tests/trigger_company.py's: one account per case. The live-server tests share one
server per database (module scope): every case's trigger is sent at the start, through `POST
/v1/track` and `/v1/group`, then each test reads what the worker decided.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import ibis
import pytest
import sqlalchemy as sa

import trigger_company as company
from conftest import empty_database
from live_server import LiveServer, child_env, live_server
from upsell.domain.decisions import (
    held_out,
    offered_by_other_path,
    variant_for,
)
from upsell.domain.events import LIMIT_REACHED
from upsell.domain.history import History, PastContact
from upsell.domain.triggers import MAX_AGE, TriggerRules
from upsell.store import triggers as queue
from upsell.store.db import connect, migrate, sqlite_url
from upsell.store.schema import contacts, refusals, trigger_queue

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


# -- the rule: one reason, one contact ------------------------------------------------------------


def _past(days: float, *, trigger: bool, offer: str = company.OFFER, **kw: Any) -> PastContact:
    return PastContact(NOW + timedelta(days=days), offer, "in_app", "modal", trigger=trigger, **kw)


def test_the_daily_run_and_a_trigger_never_both_make_one_offer() -> None:
    # A trigger finds the daily run's offer of this morning; the daily run (as of its day start)
    # finds the one a trigger made since, which its history before the as-of does not hold.
    batch_today = History(contacts=(_past(-0.4, trigger=False),))
    assert offered_by_other_path(batch_today, company.OFFER, NOW, 14, triggered=True)
    assert not offered_by_other_path(batch_today, company.OFFER, NOW, 14, triggered=False)
    trigger_since = History(later=(_past(0.3, trigger=True),))
    assert offered_by_other_path(trigger_since, company.OFFER, NOW, 14, triggered=False)
    assert not offered_by_other_path(trigger_since, company.OFFER, NOW, 14, triggered=True)
    # Another offer, a contact that did not reach the account, or one too long ago: no reason.
    for history in (
        History(contacts=(_past(-1, trigger=False, offer="upsell:basic->enterprise"),)),
        History(contacts=(_past(-1, trigger=False, held_out=True),)),
        History(contacts=(_past(-1, trigger=False, failed=True),)),
        History(contacts=(_past(-14, trigger=False),)),
        History(later=(_past(14, trigger=True),)),
    ):
        assert not offered_by_other_path(history, company.OFFER, NOW, 14, triggered=True)
        assert not offered_by_other_path(history, company.OFFER, NOW, 14, triggered=False)


def test_what_may_make_a_trigger_true() -> None:
    from upsell.config.catalog import parse_catalog

    catalog = parse_catalog(company.CATALOG, "catalog.yaml").catalog
    rules = TriggerRules.of(catalog)
    assert rules.traits == {"seats"} and TriggerRules.of(None).traits == frozenset()
    assert {LIMIT_REACHED, "Feature Blocked", "Cancel Requested", "Downgrade Requested"} <= (
        rules.events
    )
    assert rules.fires(LIMIT_REACHED, NOW, NOW) and not rules.fires("Board Viewed", NOW, NOW)
    # A backfill (an event older than a day) triggers nothing: the daily run sees it.
    assert not rules.fires(LIMIT_REACHED, NOW - MAX_AGE - timedelta(seconds=1), NOW)
    assert rules.risen({"seats": 3}, {"seats": 5}) == ["seats"]
    assert rules.risen({}, {"seats": "5"}) == ["seats"]
    for before, after in (({"seats": 5}, {"seats": 5}), ({"seats": 5}, {"seats": 4}), ({}, {})):
        assert rules.risen(before, after) == []
    assert rules.risen({"seats": 3}, {"seats": "lots"}) == []
    assert rules.risen({"seats": 3}, {"seats": True}) == []


# -- the queue, on each database ------------------------------------------------------------------


def _rows(db: sa.Engine) -> dict[str, Any]:
    with db.connect() as conn:
        return {r.account_id: r for r in conn.execute(sa.select(trigger_queue))}


def test_the_queue_keeps_one_entry_per_account_with_its_earliest_time(db: sa.Engine) -> None:
    t0 = NOW
    with db.begin() as conn:
        queue.enqueue(conn=conn, triggered={"a": (LIMIT_REACHED, t0)})
    with db.begin() as conn:
        queue.enqueue(
            conn=conn,
            triggered={"a": ("Feature Blocked", t0 + timedelta(seconds=1)), "b": ("x", t0)},
        )
    rows = _rows(db)
    assert rows["a"].reason == LIMIT_REACHED and rows["a"].enqueued_at == t0
    assert rows["a"].due_at == t0 and rows["b"].due_at == t0
    with db.connect() as conn:
        assert queue.depth(conn=conn) == 2 and queue.oldest_due(conn=conn) == t0


def test_a_claim_is_a_lease_that_no_other_worker_takes(db: sa.Engine) -> None:
    with db.begin() as conn:
        queue.enqueue(conn=conn, triggered={a: ("r", NOW) for a in ("a", "b", "c")})
    with db.begin() as conn:
        first = queue.claim(conn=conn, holder="one", now=NOW, limit=2)
    with db.begin() as conn:
        second = queue.claim(conn=conn, holder="two", now=NOW + timedelta(seconds=30), limit=10)
    assert [e.account_id for e in first] == ["a", "b"]
    assert [e.account_id for e in second] == ["c"] and second[0].attempts == 1
    with db.begin() as conn:
        assert queue.claim(conn=conn, holder="two", now=NOW, limit=10) == []
    # Worker one died: once its lease is over, another worker takes its entries, and one's
    # late decision finds it no longer holds them (its decision is not recorded).
    later = NOW + queue.LEASE + timedelta(seconds=1)
    with db.begin() as conn:
        taken = queue.claim(conn=conn, holder="three", now=later, limit=10)
    assert [e.account_id for e in taken] == ["a", "b"] and taken[0].attempts == 2
    with db.begin() as conn:
        assert queue.held(conn=conn, holder="one", account_ids=["a", "b"]) == set()
        assert queue.held(conn=conn, holder="three", account_ids=["a", "b", "c"]) == {"a", "b"}
        queue.finish(
            conn=conn, holder="three", account_ids=["a", "b"], now=later, cooldown=timedelta(0)
        )
    rows = _rows(db)
    assert rows["a"].due_at is None and rows["a"].claimed_by is None and rows["a"].attempts == 0
    assert rows["c"].claimed_by == "two"


def test_a_trigger_during_a_decision_is_decided_after_it_and_the_cooldown(db: sa.Engine) -> None:
    cooldown = timedelta(seconds=60)
    with db.begin() as conn:
        queue.enqueue(conn=conn, triggered={"a": (LIMIT_REACHED, NOW)})
        queue.claim(conn=conn, holder="w", now=NOW, limit=10)
    during = NOW + timedelta(milliseconds=200)
    with db.begin() as conn:
        queue.enqueue(conn=conn, triggered={"a": ("Feature Blocked", during)})
    assert _rows(db)["a"].requeued_at == during
    decided = NOW + timedelta(milliseconds=300)
    with db.begin() as conn:
        queue.finish(conn=conn, holder="w", account_ids=["a"], now=decided, cooldown=cooldown)
    row = _rows(db)["a"]
    assert row.enqueued_at == during and row.due_at == decided + cooldown
    assert row.claimed_by is None and row.requeued_at is None
    with db.begin() as conn:
        assert (
            queue.claim(conn=conn, holder="w", now=decided + timedelta(seconds=59), limit=9) == []
        )
        again = queue.claim(conn=conn, holder="w", now=decided + cooldown, limit=9)
    assert [e.account_id for e in again] == ["a"]
    # Decided with nothing new meanwhile: idle; a trigger within the cooldown waits for its end.
    end = decided + cooldown
    with db.begin() as conn:
        queue.finish(conn=conn, holder="w", account_ids=["a"], now=end, cooldown=cooldown)
    assert _rows(db)["a"].due_at is None
    with db.begin() as conn:
        queue.enqueue(conn=conn, triggered={"a": (LIMIT_REACHED, end + timedelta(seconds=5))})
    assert _rows(db)["a"].due_at == end + cooldown
    with db.begin() as conn:
        queue.enqueue(conn=conn, triggered={"a": (LIMIT_REACHED, end + timedelta(seconds=90))})
    assert _rows(db)["a"].due_at == end + cooldown  # still the first one's


def test_workers_claiming_at_once_never_share_an_entry(db: sa.Engine) -> None:
    """Four workers (two servers' worth) claim from one queue at the same time, in the worker's
    own transactions (`flows.triggers.writing`: IMMEDIATE on SQLite, SKIP LOCKED on PostgreSQL):
    every entry is claimed exactly once."""
    import threading

    from upsell.flows.triggers import writing

    accounts = [f"acct-{i:03d}" for i in range(200)]
    with db.begin() as conn:
        queue.enqueue(conn=conn, triggered={a: ("r", NOW) for a in accounts})
    claimed: dict[str, list[str]] = {f"w{i}": [] for i in range(4)}
    start = threading.Barrier(4)

    def work(holder: str) -> None:
        mine = claimed[holder]
        start.wait()
        while True:
            with writing(db) as conn:
                got = queue.claim(conn=conn, holder=holder, now=NOW, limit=7)
            if not got:
                return
            mine.extend(e.account_id for e in got)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [a for found in claimed.values() for a in found]
    assert sorted(every) == accounts
    assert sum(1 for found in claimed.values() if found) >= 2


def test_a_claim_given_back_is_due_again_later_or_dropped(db: sa.Engine) -> None:
    with db.begin() as conn:
        queue.enqueue(conn=conn, triggered={"a": ("r", NOW), "b": ("r", NOW)})
        queue.claim(conn=conn, holder="w", now=NOW, limit=10)
        queue.release(conn=conn, holder="w", account_ids=["a"], due=NOW + timedelta(seconds=5))
        queue.release(conn=conn, holder="w", account_ids=["b"], due=None)
    rows = _rows(db)
    assert rows["a"].due_at == NOW + timedelta(seconds=5) and rows["a"].claimed_by is None
    assert rows["b"].due_at is None and rows["b"].enqueued_at is None


# -- a live server on each database ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of an empty database for a module's server (conftest's `database_url`, module
    scoped)."""
    with empty_database(request.param, tmp_path_factory.mktemp("triggers") / "ws") as url:
        yield url


def _store(folder: Path, database_url: str) -> sa.Engine:
    return connect(sqlite_url(folder) if database_url.startswith("sqlite") else database_url)


def track(url: str, key: str, account_id: str, event: str = LIMIT_REACHED) -> httpx.Response:
    body = {
        "userId": f"{account_id}-u1",
        "event": event,
        "properties": {"metric": "seats", "limit": 5},
        "context": {"groupId": account_id},
        "timestamp": datetime.now(UTC).isoformat(),
    }
    return httpx.post(f"{url}/v1/track", json=body, auth=(key, ""), timeout=10)


def group(url: str, key: str, account_id: str, traits: dict[str, Any]) -> httpx.Response:
    body = {"userId": f"{account_id}-u1", "groupId": account_id, "traits": traits}
    return httpx.post(f"{url}/v1/group", json=body, auth=(key, ""), timeout=10)


def settle(db: sa.Engine, accounts: int, timeout: float = 40.0) -> None:
    """Wait until `accounts` accounts are on the queue and none is pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _rows(db)
        if len(rows) >= accounts and all(r.due_at is None for r in rows.values()):
            return
        time.sleep(0.05)
    raise AssertionError(f"the triggers were not decided in {timeout}s: {_rows(db)}")


@dataclass(frozen=True)
class Decided:
    """The module's server after every case's trigger was decided."""

    server: LiveServer
    db: sa.Engine
    ids: dict[str, str]
    keys: dict[str, str]
    sent_at: datetime

    def contacts(self, case: str) -> list[Any]:
        c = contacts.c
        with self.db.connect() as conn:
            query = sa.select(contacts).where(c.account_id == self.ids[case])
            return list(conn.execute(query.order_by(c.contact_id)))

    def refusals(self, case: str) -> list[str]:
        r = refusals.c
        with self.db.connect() as conn:
            query = sa.select(r.guardrail).where(r.account_id == self.ids[case])
            return list(conn.execute(query.order_by(r.id)).scalars())

    def messages(self, case: str) -> httpx.Response:
        """`GET /v1/messages` for the case's user, as the widget asks."""
        user = f"{self.ids[case]}-u1"
        params = {"key": self.keys["publishable"], "userId": user}
        return httpx.get(f"{self.server.url}/v1/messages", params=params, timeout=10)

    def served(self, case: str, within: float = 5.0) -> httpx.Response:
        """`messages` once the server serves something: the messages API looks for what the
        trigger worker stored every 0.25 s (docs/in-app.md, "How fresh the messages API is")."""
        deadline = time.monotonic() + within
        while (answer := self.messages(case)).status_code == 204 and time.monotonic() < deadline:
            time.sleep(0.05)
        return answer

    def admin(self, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys['admin']}"}
        answer = httpx.get(f"{self.server.url}{path}", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def decided(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Decided]:
    url = module_database_url
    folder = (
        Path(sa.make_url(url).database or "").parent
        if url.startswith("sqlite")
        else tmp_path_factory.mktemp("triggers-pg") / "ws"
    )
    ids = company.account_ids()
    keys = company.create(folder, url, ids, datetime.now(UTC))
    db = _store(folder, url)
    try:
        with live_server(folder, child_env(url)) as server:
            sent_at = datetime.now(UTC)
            for case, account_id in ids.items():
                if case == "gauge":
                    answer = group(server.url, keys["write"], account_id, {"seats": 5})
                else:
                    answer = track(server.url, keys["write"], account_id)
                assert answer.status_code == 200, answer.text
            settle(db, len(ids))
            yield Decided(server, db, ids, keys, sent_at)
    finally:
        db.dispose()


def test_a_limit_reached_through_track_is_served_by_get_messages(decided: Decided) -> None:
    # The widget's next request finds the offer the trigger decided, in its place, in time.
    served = decided.served("offer")
    assert served.status_code == 200, served.text
    [message] = served.json()["messages"]
    [contact] = decided.contacts("offer")
    assert message["id"] == str(contact.contact_id) and message["offer_id"] == company.OFFER
    assert message["placement"] == "modal" and message["kind"] == "upsell"
    assert message["numbers"]["trial_days"] == contact.decision["trial_days"]
    assert message["events_url"] == f"/v1/messages/{contact.contact_id}/events"


def test_a_limit_reached_through_track_queues_an_in_app_offer(decided: Decided) -> None:
    [contact] = decided.contacts("offer")
    books = company.playbooks()
    experiment = books.playbooks[0].experiment
    assert experiment is not None
    variant = variant_for(decided.ids["offer"], experiment).id
    assert contact.offer_id == company.OFFER and contact.trigger == LIMIT_REACHED
    assert (contact.channel, contact.placement, contact.status) == ("in_app", "modal", "queued")
    assert contact.playbook == "limit-reached-modal" and contact.variant == variant
    assert contact.decision["trial_days"] == (21 if variant == "B" else 14)
    # Decided at the instant of the trigger's claim, after the event was sent: its as-of is that
    # instant (the daily run's is a day start), and it saw today's Limit Reached (the only one).
    assert decided.sent_at < contact.as_of < contact.created_at + timedelta(seconds=1)
    assert contact.decision["trigger"]["reason"] == LIMIT_REACHED
    assert any(r["code"] == "limit_reached" for r in contact.decision["reasons"])
    assert decided.refusals("offer") == []


def test_a_gauge_trait_rising_to_its_limit_triggers_too(decided: Decided) -> None:
    [contact] = decided.contacts("gauge")
    assert contact.trigger == "trait seats" and contact.status == "queued"
    assert contact.offer_id == company.OFFER
    [message] = decided.served("gauge").json()["messages"]  # the group call's user
    assert message["id"] == str(contact.contact_id)


@pytest.mark.parametrize(
    ("case", "guardrail"),
    [
        ("quiet", "quiet_period"),
        ("dismissed", "dismissed_cooldown"),
        ("capped", "frequency_cap"),
        ("no_playbook", "no_playbook"),
    ],
)
def test_each_guardrail_stops_a_trigger(decided: Decided, case: str, guardrail: str) -> None:
    made = [c for c in decided.contacts(case) if c.trigger is not None]
    assert made == [] and decided.refusals(case) == [guardrail]
    served = decided.messages(case)  # the capped account's earlier modal may still be served
    shown = served.json()["messages"] if served.status_code == 200 else []
    earlier = {str(c.contact_id) for c in decided.contacts(case)}
    assert {m["id"] for m in shown} <= earlier


def test_a_held_out_account_is_recorded_and_shown_nothing(decided: Decided) -> None:
    [contact] = decided.contacts("holdout")
    assert contact.held_out and contact.status == "held_out" and contact.trigger == LIMIT_REACHED
    assert decided.messages("holdout").status_code == 204


def test_an_account_before_its_aha_moment_is_decided_but_offered_nothing(
    decided: Decided,
) -> None:
    assert decided.contacts("pre_aha") == [] and decided.refusals("pre_aha") == []
    assert decided.messages("pre_aha").status_code == 204
    row = _rows(decided.db)[decided.ids["pre_aha"]]
    assert row.decided_at is not None and row.due_at is None


def test_the_admin_api_and_the_metrics_tell_triggers_apart(decided: Decided) -> None:
    triggered = decided.admin("/v1/admin/contacts", source="trigger")["contacts"]
    assert {c["account_id"] for c in triggered} == {
        decided.ids[c] for c in ("offer", "gauge", "holdout")
    }
    assert all(c["trigger"]["reason"] in (LIMIT_REACHED, "trait seats") for c in triggered)
    batch = decided.admin("/v1/admin/contacts", source="batch")["contacts"]
    assert [c["account_id"] for c in batch] == [decided.ids["capped"]]
    assert batch[0]["trigger"] is None
    # The worker process reports its batches to the server: wait for the last one.
    count = f"upsell_trigger_latency_seconds_count {len(decided.ids)}.0"
    deadline = time.monotonic() + 10
    while count not in (scraped := httpx.get(f"{decided.server.url}/metrics").text):
        assert time.monotonic() < deadline, scraped
        time.sleep(0.1)
    assert "upsell_trigger_queue_depth 0.0" in scraped
    assert 'upsell_triggers_decided_total{outcome="offer"} 2.0' in scraped
    assert 'upsell_triggers_decided_total{outcome="held_out"} 1.0' in scraped
    assert 'upsell_triggers_decided_total{outcome="none"} 5.0' in scraped


# -- durability: acknowledged, not decided, then a restart ----------------------------------------


def test_a_trigger_acknowledged_but_not_decided_survives_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "ws"
    ids = {"offer": company.account_ids("restart-")["offer"]}
    keys = company.create(folder, database_url, ids, datetime.now(UTC))
    db = _store(folder, database_url)
    env = child_env(database_url)
    server = LiveServer(folder, {**env, "UPSELL_SERVICE_TRIGGER_WORKER": "false"})
    try:
        server.start()
        assert track(server.url, keys["write"], ids["offer"]).status_code == 200
        # Acknowledged: the event and its queue entry are committed; nothing decides it here.
        assert _rows(db)[ids["offer"]].due_at is not None
        time.sleep(0.6)
        assert _rows(db)[ids["offer"]].due_at is not None
        server.stop(signal.SIGKILL)
        server.env = env
        server.start()
        settle(db, 1)
        with db.connect() as conn:
            made = conn.execute(sa.select(contacts.c.trigger, contacts.c.status)).all()
        assert made == [(LIMIT_REACHED, "queued")]
    finally:
        if server.process is not None:
            server.stop(signal.SIGKILL)
        db.dispose()


# -- the daily run and a trigger, in both orders --------------------------------------------------


def test_the_daily_run_and_a_trigger_do_not_both_contact_one_account(
    database_url: str, tmp_path: Path
) -> None:
    """In-process: a trigger first, then the daily run of the same day (as of its start, before
    the trigger's instant); and the daily run first, then a trigger."""
    from upsell.channels.in_app import InApp
    from upsell.flows.offers import run_offers
    from upsell.flows.triggers import TriggerDecider
    from upsell.settings import Settings
    from upsell.store.accounts import get_account, upsert_accounts
    from upsell.workspace import Workspace

    folder = tmp_path / "ws"
    ids = {"trigger_first": "tf-0", "batch_first": "bf-0"}
    books = company.playbooks()
    assert not any(held_out(a, books) for a in ids.values())
    now = datetime.now(UTC)
    company.create(folder, database_url, ids, now)
    url = None if database_url.startswith("sqlite") else database_url
    with Workspace.open(folder, Settings(database_url=url)) as ws:
        with ws.db.begin() as conn:  # both at their limit: qualified without today's events
            for account_id in ids.values():
                account = get_account(conn=conn, account_id=account_id)
                assert account is not None
                upsert_accounts(conn=conn, accounts=[company.with_seats(account, 5)])
        decider = TriggerDecider(ws, holder="test", cooldown=timedelta(0))

        def trigger(account_id: str) -> None:
            with ws.db.begin() as conn:
                queue.enqueue(conn=conn, triggered={account_id: (LIMIT_REACHED, now)})
            assert decider.tick() is not None

        today: date = now.date()
        channels = {"in_app": InApp()}
        trigger(ids["trigger_first"])
        ran = run_offers(ws, today, channels=channels)
        # The daily run offered the other account, and refused the one a trigger offered at an
        # instant after its as-of.
        assert [line["account_id"] for line in ran.lines] == [ids["batch_first"]]
        refused = [(r.account_id, r.guardrail) for r in ran.refusals]
        assert refused == [(ids["trigger_first"], "already_offered")]
        trigger(ids["batch_first"])
        with ws.db.connect() as conn:
            made = conn.execute(
                sa.select(contacts.c.account_id, contacts.c.trigger).order_by(contacts.c.as_of)
            ).all()
            last = conn.execute(
                sa.select(refusals.c.account_id, refusals.c.guardrail).order_by(refusals.c.id)
            ).all()
        assert sorted(made) == [(ids["batch_first"], None), (ids["trigger_first"], LIMIT_REACHED)]
        assert last[-1] == (ids["batch_first"], "already_offered")
        decider.close()


def test_migrate_makes_the_queue(db: sa.Engine) -> None:
    migrate(db)  # a no-op at head
    with db.connect() as conn:
        assert queue.depth(conn=conn) == 0 and queue.oldest_due(conn=conn) is None


# -- the signals of a few accounts at an instant, against the whole company's -------------------


def test_a_few_accounts_signals_are_those_the_whole_company_run_gives_them(
    demo_workspace: Path, tmp_path: Path
) -> None:
    """`SignalsAt` (those accounts' rows only, the stored rollups plus the events since, prepared
    queries) gives each account the signals the engine computes over every account at the same
    instant, unprepared, from rollups of every event: today's events (after the rollups were
    stored) included. Power users are counted against the morning's floor (`everyone_at`), which
    is what ranking among everyone gives."""
    from upsell.domain.events import Event
    from upsell.engine.backends import Backend
    from upsell.engine.signals import build_signals, execute, power_users_floor
    from upsell.flows.opportunities import SignalsAt, account_signals, refresh_rollups
    from upsell.store.arrow import accounts_table, subscriptions_table
    from upsell.store.events import add_events
    from upsell.store.summary import data_span
    from upsell.workspace import Workspace

    with Workspace.open(demo_workspace) as ws:
        with ws.db.connect() as conn:
            span = data_span(conn=conn)
            ids = list(conn.exec_driver_sql("SELECT account_id FROM accounts").scalars())
        assert span is not None
        day = span[1] + timedelta(days=1)
        with ws.db.connect() as conn:  # the morning's run: the stored rollups
            refresh_rollups(ws.backend, conn=conn, catalog=ws.catalog(), folder=ws.rollups)
        at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=15)
        catalog, policy = ws.catalog(), ws.config.opportunities
        few = SignalsAt(ws, ws.new_backend(threads=1))
        floor = few.everyone(catalog, day).power_floor
        assert floor is not None and floor > 1
        sample = sorted(ids)[:: max(1, len(ids) // 60)]
        today = [  # events of the trigger's day, after the stored rollups' watermark
            Event(f"today-{i}", a, name, at - timedelta(hours=1 + i % 5), f"{a}-u{i % 3}", props)
            for i, a in enumerate(sample[:20])
            for name, props in (
                (LIMIT_REACHED, {"metric": "seats"}),
                ("Feature Blocked", {"feature": "automation"}),
            )
        ]
        with ws.db.begin() as conn:
            add_events(conn=conn, events=today, now=at)

        backend = Backend("duckdb")
        try:
            with ws.db.connect() as conn:
                rollups, _ = refresh_rollups(
                    backend, conn=conn, catalog=catalog, folder=tmp_path / "rollups"
                )
                subscriptions = subscriptions_table(conn=conn)
                inputs: dict[str, Any] = {
                    "accounts": backend.table(accounts_table(conn=conn), "accounts"),
                    "subscriptions": backend.table(subscriptions, "subscriptions"),
                    "usage": rollups.usage(backend),
                    "users": rollups.users(backend),
                    "catalog": catalog,
                    "as_of": day,
                }
            at_instant = build_signals(
                backend, **inputs, instant=at, power_floor=ibis.literal(floor)
            )
            tables = execute(backend, at_instant)
            expected = {
                s.account_id: s
                for s in account_signals(tables, subscriptions, catalog, day, instant=at)
            }
            # Counting against the floor is ranking among everyone (the daily view).
            daily_floor = backend.arrow(power_users_floor(backend, **inputs))["floor"][0].as_py()
            ranked = execute(backend, build_signals(backend, **inputs), ("accounts",))
            floored = build_signals(backend, **inputs, power_floor=ibis.literal(daily_floor))
            assert ranked["accounts"].equals(execute(backend, floored, ("accounts",))["accounts"])
        finally:
            backend.close()
        for start in range(0, len(sample), 25):
            chunk = sample[start : start + 25]
            found = few(chunk, at, catalog=catalog, policy=policy)
            assert found.signals == {a: expected[a] for a in chunk if a in expected}
        assert any(expected[a].metrics for a in sample)
        assert any(expected[a].engagement.power_users for a in sample)
        assert any(s.features.get("automation") for a, s in expected.items() if a in sample[:20])


def test_ingestion_reads_the_trigger_rules_at_most_every_few_seconds_even_without_a_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace without a catalog has no rules; finding that out once per request cost a
    third of its ingestion rate."""
    from upsell.service import triggers as door
    from upsell.service.metrics import Metrics
    from upsell.settings import Settings
    from upsell.workspace import Workspace

    with Workspace.create(tmp_path / "ws", Settings()) as ws:
        rules = door.Triggers(ws, Metrics(ws.db))
        reads: list[object] = []
        real = rules._read_rules
        monkeypatch.setattr(rules, "_read_rules", lambda known: reads.append(known) or real(known))
        assert [rules.rules() for _ in range(5)] == [None] * 5
        assert len(reads) == 1
        monkeypatch.setattr(door, "RULES_SECONDS", 0.0)
        assert rules.rules() is None and len(reads) == 2
