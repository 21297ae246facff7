"""In-app messages (docs/in-app.md): the display-time rules, and the messages API on a live
`upsell serve`, on SQLite and PostgreSQL — keys, user tokens, CORS, idempotent answers, caps."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import empty_database, new_workspace
from live_server import LiveServer, child_env, live_server
from upsell.domain.calendar import iso
from upsell.domain.contacts import Contact, Response
from upsell.domain.in_app import Queued, Shown, servable
from upsell.domain.playbooks import Cap
from upsell.domain.tokens import user_token
from upsell.ingest.live import ingest
from upsell.ingest.messages import Message
from upsell.settings import Settings
from upsell.store.contacts import histories, record_contact, record_response
from upsell.store.secrets import signing_secret
from upsell.workspace import Workspace

NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)
DAY = timedelta(days=1)
ORIGIN = "https://app.example.com"


# -- the display-time rules (pure) ----------------------------------------------------------------


def q(cid: int, days_ago: float = 1, placement: str = "banner", **kw: Any) -> Queued:
    return Queued(cid, kw.pop("account_id", "a1"), NOW - days_ago * DAY, placement, **kw)


def ids(found: list[Queued]) -> list[int]:
    return [x.contact_id for x in found]


def test_only_the_newest_contact_of_an_account_is_served() -> None:
    older, newer, other = q(1, 3), q(2, 1), q(3, 5, account_id="a2")
    assert ids(servable([older, newer, other], [], [], user_id="u", now=NOW)) == [2, 3]
    # An answered newest contact does not bring back the one it superseded.
    dismissed = q(2, 1, dismissed_at=NOW - DAY / 2)
    assert ids(servable([older, dismissed], [], [], user_id="u", now=NOW)) == []


def test_answered_expired_or_other_users_messages_are_not_served() -> None:
    for gone in (
        q(1, clicked_at=NOW),
        q(1, converted_at=NOW),
        q(1, dismissed_at=NOW),
        q(1, expires_at=NOW),
        q(1, user_id="someone-else"),
        q(1, placement="modal", shown_at=NOW - DAY / 2),
    ):
        assert servable([gone], [], [], user_id="u", now=NOW) == [], gone
    assert ids(servable([q(1, user_id="u", expires_at=NOW + DAY)], [], [], user_id="u", now=NOW))
    # A banner already shown stays until it is answered: it is not counted twice by the caps.
    shown = q(1, shown_at=NOW - DAY / 2)
    seen = [Shown(1, "a1", "in_app", "banner", NOW - DAY / 2)]
    assert ids(servable([shown], seen, [Cap(1, 14, "in_app")], user_id="u", now=NOW)) == [1]


def test_the_in_app_caps_count_the_messages_shown_in_their_window() -> None:
    modal = q(5, 0.1, placement="modal")
    modal_cap, in_app_cap = Cap(1, 14, "in_app", "modal"), Cap(2, 14, "in_app")
    shown_modal = Shown(4, "a1", "in_app", "modal", NOW - 3 * DAY)
    shown_banner = Shown(3, "a1", "in_app", "banner", NOW - 2 * DAY)
    assert servable([modal], [shown_modal], [modal_cap], user_id="u", now=NOW) == []
    assert ids(servable([modal], [shown_banner], [modal_cap], user_id="u", now=NOW)) == [5]
    both = [shown_modal, shown_banner]
    assert servable([q(5, 0.1)], both, [in_app_cap], user_id="u", now=NOW) == []
    # Out of the window, or on another channel, a showing does not count.
    old = Shown(4, "a1", "in_app", "modal", NOW - 15 * DAY)
    assert ids(servable([modal], [old], [modal_cap], user_id="u", now=NOW)) == [5]
    emailed = Shown(4, "a1", "email", None, NOW - DAY)
    assert ids(servable([modal], [emailed], [Cap(1, 14, "in_app")], user_id="u", now=NOW)) == [5]
    assert servable([modal], [emailed], [Cap(1, 14)], user_id="u", now=NOW) == []


# -- the messages API on a live server ------------------------------------------------------------


@dataclass
class Site:
    server: LiveServer
    ws: Workspace
    publishable: str
    write: str

    def get(self, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.server.url}/v1/messages", params=params, timeout=10)

    def answer(self, message_id: str, event: str, **body: Any) -> httpx.Response:
        return httpx.post(
            f"{self.server.url}/v1/messages/{message_id}/events",
            params={"key": self.publishable},
            content=json.dumps({"event": event, **body}),
            headers={"content-type": "text/plain"},
            timeout=10,
        )

    def offer(self, account_id: str, offer_id: str, *, days_ago: float = 0, **kw: Any) -> str:
        """Queue an in-app contact as `upsell run` records it; its message id."""
        at = datetime.now(UTC) - timedelta(days=days_ago)
        placement = kw.pop("placement", "banner")
        message = {
            "locale": "nl_BE",
            "subject": f"Upgrade {account_id}",
            "body": "You used 10 of 10 seats.",
            "cta": "Upgrade",
            "cta_url": "https://app.example.com/billing",
            "expires_at": kw.pop("expires_at", iso(at + 14 * DAY)),
        }
        decision = {"expected_mrr_delta": "30.00", "currency": "EUR", "price": "49.00",
                    "price_currency": "EUR", "trial_days": 14, "anchor": kw.pop("anchor", None)}  # fmt: skip
        contact = Contact(
            account_id=account_id, as_of=at, kind="upsell", offer_id=offer_id, item_id="pro",
            channel="in_app", placement=placement, message=message, decision=decision, **kw,
        )  # fmt: skip
        with self.ws.db.begin() as conn:
            contact_id, _ = record_contact(conn=conn, contact=contact)
        return str(contact_id)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self.ws.db.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]


CONFIG = f"""\
in_app:
  origins: ["{ORIGIN}"]
  poll_seconds: 30
"""
PLAYBOOKS = """\
guardrails:
  caps:
    - {max: 1, days: 14, channel: in_app, placement: modal}
playbooks:
  - {id: app, channel: in_app, placement: banner, template: limit_reached}
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("in-app")
    with empty_database(request.param, folder) as url:
        keys = new_workspace(folder / "ws", url)
        (folder / "ws" / "config.yaml").write_text(CONFIG)
        (folder / "ws" / "playbooks.yaml").write_text(PLAYBOOKS)
        settings = Settings(database_url=None if url.startswith("sqlite") else url)
        with Workspace.open(folder / "ws", settings) as ws:
            users = [("acme", "ann"), ("acme", "bob"), ("globex", "gus"), ("initech", "ian")]
            ingest(
                db=ws.db,
                messages=[
                    Message("group", f"g-{u}", NOW, user_id=u, group_id=a, traits={"name": a})
                    for a, u in users
                ],
            )
            # The tests store offers from this process and ask at once: the server looks for them
            # at every request (test_offers_stored_elsewhere_are_served_within_the_refresh below
            # checks the default).
            env = child_env(url) | {"UPSELL_SERVICE_MESSAGES_REFRESH_SECONDS": "0"}
            with live_server(folder / "ws", env) as server:
                yield Site(server, ws, keys["publishable"], keys["write"])


def test_keys_and_users_are_checked(site: Site) -> None:
    assert site.get(userId="ann").status_code == 401
    wrong = site.get(userId="ann", key=site.write)
    assert wrong.status_code == 403 and wrong.json()["code"] == "forbidden"
    missing = site.get(key=site.publishable)
    assert missing.status_code == 400 and "userId" in missing.json()["message"]
    # Nothing queued for this user: 204 with no body.
    nothing = site.get(key=site.publishable, userId="ian")
    assert nothing.status_code == 204 and nothing.content == b""
    # The key may also come as HTTP Basic, as the other doors take it.
    assert (
        httpx.get(
            f"{site.server.url}/v1/messages", params={"userId": "ian"}, auth=(site.publishable, "")
        ).status_code
        == 204
    )


def test_a_user_reads_the_newest_message_of_its_account_with_its_numbers(site: Site) -> None:
    site.offer("acme", "upsell:old", days_ago=2)
    mid = site.offer("acme", "upsell:basic->pro", placement="tooltip", anchor="#invite")
    answer = site.get(key=site.publishable, userId="ann")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["poll_seconds"] == 30 and len(body["messages"]) == 1
    m = body["messages"][0]
    assert m["id"] == mid and m["offer_id"] == "upsell:basic->pro" and m["kind"] == "upsell"
    assert (m["placement"], m["anchor"], m["locale"]) == ("tooltip", "#invite", "nl_BE")
    assert (m["title"], m["body"]) == ("Upgrade acme", "You used 10 of 10 seats.")
    assert m["cta"]["label"] == "Upgrade"  # its url: the checkout handshake (test_checkout.py)
    assert m["cta"]["url"].startswith(f"{site.server.url}/v1/offers/upsell%3Abasic-%3Epro/accept?")
    assert m["numbers"]["due_today"] is None  # no plan row to prorate
    price = m["numbers"]["price"]
    assert price["amount"] == "49.00" and price["currency"] == "EUR" and "49,00" in price["text"]
    assert m["numbers"]["delta"]["amount"] == "30.00" and m["numbers"]["trial_days"] == 14
    assert m["events_url"] == f"/v1/messages/{mid}/events"
    # Another account's user sees nothing of it; accountId narrows, and must be the user's.
    assert site.get(key=site.publishable, userId="gus").status_code == 204
    assert site.get(key=site.publishable, userId="ann", accountId="globex").status_code == 204
    assert site.get(key=site.publishable, userId="ann", accountId="acme").status_code == 200


def test_answers_are_recorded_once_and_only_by_the_messages_users(site: Site) -> None:
    mid = site.offer("globex", "add_on:storage")
    assert site.answer(mid, "shown", userId="ann").status_code == 404  # not ann's account
    assert site.answer("999999", "shown", userId="gus").status_code == 404
    assert site.answer("abc", "shown", userId="gus").status_code == 404
    bad = site.answer(mid, "liked", userId="gus")
    assert bad.status_code == 400 and bad.json()["code"] == "bad_event"
    first = site.answer(mid, "shown", userId="gus", page="/projects")
    assert first.status_code == 200 and first.json() == {"recorded": True}
    assert site.answer(mid, "shown", userId="gus").json() == {"recorded": False}
    where = f"WHERE contact_id = {mid}"
    assert site.rows(f"SELECT response FROM responses {where}") == [("shown",)]
    assert site.rows(f"SELECT status FROM contacts {where}") == [("sent",)]
    viewed = site.rows("SELECT event, account_id, user_id FROM events WHERE event = 'Offer Viewed'")
    assert viewed == [("Offer Viewed", "globex", "gus")]
    # Dismissed: recorded, never served again, and the decision step's cooldown sees it.
    assert site.answer(mid, "dismissed", userId="gus").json() == {"recorded": True}
    assert site.get(key=site.publishable, userId="gus").status_code == 204
    with site.ws.db.connect() as conn:
        past = histories(conn=conn, before=datetime.now(UTC) + DAY, since=NOW - 30 * DAY)
    assert "dismissed" in {r.response for r in past["globex"].responses}


def test_a_modal_is_shown_once_and_the_caps_hold_at_display_time(site: Site) -> None:
    first = site.offer("initech", "upsell:a", placement="modal", days_ago=1)
    assert site.answer(first, "shown", userId="ian").json() == {"recorded": True}
    assert (
        site.get(key=site.publishable, userId="ian").status_code == 204
    )  # a modal interrupts once
    second = site.offer("initech", "upsell:b", placement="modal")
    assert site.get(key=site.publishable, userId="ian").status_code == 204  # 1 modal per 14 days
    # The first showing moved 30 days back, out of the cap's window, as an answer is stored (the
    # contact's column and a response: the server reads an account again when it has a new one).
    with site.ws.db.begin() as conn:
        conn.execute(sa.text("UPDATE contacts SET shown_at = :t WHERE contact_id = :c"),
                     {"t": NOW - 30 * DAY, "c": int(first)})  # fmt: skip
        record_response(
            conn=conn, response=Response(int(first), "initech", "shown", NOW - 30 * DAY)
        )
    assert site.get(key=site.publishable, userId="ian").json()["messages"][0]["id"] == second
    expired = site.offer("initech", "upsell:c", expires_at=iso(datetime.now(UTC) - DAY))
    assert expired and site.get(key=site.publishable, userId="ian").status_code == 204


def test_user_tokens_sign_the_user_id(site: Site) -> None:
    with site.ws.db.begin() as conn:
        secret = signing_secret(conn=conn, purpose="user_token")
    site.offer("acme", "upsell:token")
    good = site.get(key=site.publishable, userId="bob", token=user_token(secret, "bob"))
    assert good.status_code == 200
    forged = site.get(key=site.publishable, userId="bob", token=user_token(secret, "ann"))
    assert forged.status_code == 403 and forged.json()["code"] == "bad_user_token"
    mid = good.json()["messages"][0]["id"]
    bad = site.answer(mid, "clicked", userId="bob", token="00" * 32)
    assert bad.status_code == 403


def test_browsers_may_call_only_from_the_configured_origins(site: Site) -> None:
    url = f"{site.server.url}/v1/messages"
    params = {"key": site.publishable, "userId": "ian"}
    ok = httpx.get(url, params=params, headers={"Origin": ORIGIN})
    assert ok.headers["access-control-allow-origin"] == ORIGIN and ok.headers["vary"] == "Origin"
    other = httpx.get(url, params=params, headers={"Origin": "https://evil.example"})
    assert other.status_code == 403 and other.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in other.headers
    preflight = httpx.options(
        f"{url}/1/events",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    # The ingestion doors are not the widget's: no CORS headers there.
    track = httpx.post(f"{site.server.url}/v1/track", json={}, headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in track.headers


def test_a_workspace_can_require_user_tokens(tmp_path: Path) -> None:
    with empty_database("sqlite", tmp_path) as url:
        keys = new_workspace(tmp_path / "ws", url)
        (tmp_path / "ws" / "config.yaml").write_text("in_app: {require_user_token: true}\n")
        with live_server(tmp_path / "ws", child_env(url)) as server:
            answer = httpx.get(
                f"{server.url}/v1/messages", params={"key": keys["publishable"], "userId": "u"}
            )
    assert answer.status_code == 401 and answer.json()["code"] == "missing_user_token"
    assert "upsell keys secret user_token" in answer.json()["message"]


def test_offers_stored_elsewhere_are_served_within_the_refresh(tmp_path: Path) -> None:
    """The server answers from memory (service/inbox.py), at the default refresh (0.25 s): an
    offer another process stores is served within it, an answer through the API at once."""
    with empty_database("sqlite", tmp_path) as url:
        keys = new_workspace(tmp_path / "ws", url)
        with (
            Workspace.open(tmp_path / "ws", Settings()) as ws,
            live_server(tmp_path / "ws", child_env(url)) as server,
        ):
            ingest(db=ws.db, messages=[Message("group", "g", NOW, user_id="u", group_id="a")])
            site = Site(server, ws, keys["publishable"], keys["write"])
            mid, start = site.offer("a", "upsell:x"), time.monotonic()
            while (answer := site.get(key=site.publishable, userId="u")).status_code == 204:
                assert time.monotonic() - start < 5, "not served within 5 s"
                time.sleep(0.05)
            assert answer.json()["messages"][0]["id"] == mid
            assert site.answer(mid, "dismissed", userId="u").json() == {"recorded": True}
            assert site.get(key=site.publishable, userId="u").status_code == 204
            # Answered before FastAPI's routing, with the route's checks and metrics label.
            long = site.get(key=site.publishable, userId="u" * 256)
            assert long.status_code == 400 and long.json() == {
                "code": "invalid_request",
                "message": "userId: String should have at most 255 characters",
            }
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'route="/v1/messages"' in metrics and "<unmatched>" not in metrics


def test_the_server_rereads_playbooks_yaml_when_it_changes_and_keeps_the_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from upsell.service import messages as door

    monkeypatch.setattr(door, "TTL", 0.0)
    new_workspace(tmp_path / "ws", "sqlite")
    (tmp_path / "ws" / "playbooks.yaml").write_text(PLAYBOOKS)
    with Workspace.open(tmp_path / "ws", Settings()) as ws:
        cache = door._Cached(ws)
        caps, secret = cache.get()
        assert caps == (Cap(1, 14, "in_app", "modal"),) and len(secret) == 64
        (tmp_path / "ws" / "playbooks.yaml").write_text(PLAYBOOKS.replace("max: 1", "max: 3"))
        assert cache.get()[0] == (Cap(3, 14, "in_app", "modal"),)
        (tmp_path / "ws" / "playbooks.yaml").write_text("guardrails: [not, a, mapping]\n")
        assert cache.get()[0] == (Cap(3, 14, "in_app", "modal"),)  # the last good one


def test_upsell_messages_shows_what_a_user_would_be_served(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_runner import run

    if site.ws.db.dialect.name != "sqlite":
        monkeypatch.setenv("UPSELL_DATABASE_URL", site.ws.url)
    mid = site.offer("acme", "upsell:cli", placement="banner")
    shown = run("messages", "-w", site.ws.folder, "--user", "bob", "--json")
    assert shown.exit_code == 0, shown.output
    served = json.loads(shown.stdout)["messages"]
    assert [m["id"] for m in served] == [mid]
    assert served[0] == {**site.get(key=site.publishable, userId="bob").json()["messages"][0],
                         "cta": served[0]["cta"]}  # fmt: skip
    text = run("messages", "-w", site.ws.folder, "--user", "nobody")
    assert text.exit_code == 0 and "Nothing to show nobody" in text.output
