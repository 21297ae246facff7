"""The checkout handshake (docs/in-app.md) on a live `upsell serve`, on SQLite and PostgreSQL:
the CTA link records the click once and redirects to the checkout with an offer token that the
documented Python and JavaScript snippets verify (both run for real, taken from the page)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from conftest import empty_database, new_workspace
from live_server import LiveServer, child_env, live_server
from upsell.domain.calendar import add_months, iso
from upsell.domain.checkout import click_key, click_payload, sign
from upsell.domain.contacts import Contact
from upsell.ingest.live import ingest
from upsell.ingest.messages import Message
from upsell.settings import Settings
from upsell.store.contacts import record_contact
from upsell.store.schema import subscription_items
from upsell.store.secrets import signing_secret
from upsell.workspace import Workspace

DOC = Path(__file__).parent.parent / "docs" / "in-app.md"
NODE = shutil.which("node") or "/usr/bin/node"
CHECKOUT = "https://shop.example.com/upgrade?account={account_id}&to={item_id}&trial={trial_days}"
SAVE_URL = "https://shop.example.com/keep?account={account_id}&offer={offer_id}"
OFFER = "upsell:basic->pro"
STARTED = timedelta(days=10)  # the basic plan row started 10 days ago, monthly, at 19.00 EUR


def snippet(language: str) -> str:
    """The code block in `language` of docs/in-app.md's "The checkout handshake"."""
    section = DOC.read_text().split("## The checkout handshake", 1)[1].split("\n## ", 1)[0]
    found = re.findall(rf"```{language}\n(.*?)```", section, re.S)
    assert len(found) == 1, f"one {language} block in the checkout handshake, found {len(found)}"
    code: str = found[0]
    assert len(code.strip().splitlines()) <= 12, "the snippet is meant to stay about 10 lines"
    return code


def verify_in_python(token: str, secret: str) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    exec(snippet("python"), scope)
    payload: dict[str, Any] = scope["verify_upsell_token"](token, secret)
    return payload


def verify_in_node(token: str, secret: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    if not Path(NODE).exists():
        pytest.skip(f"no Node.js at {NODE}: the JavaScript snippet cannot run")
    script = tmp / "verify.js"
    script.write_text(
        snippet("javascript")
        + "\nconsole.log(JSON.stringify(verifyUpsellToken(process.argv[2], process.argv[3])));\n"
    )
    return subprocess.run(
        [NODE, str(script), token, secret], capture_output=True, text=True, timeout=20
    )


@dataclass
class Shop:
    server: LiveServer
    ws: Workspace
    publishable: str
    secret: str
    message_id: str

    def message(self, user_id: str = "ann") -> dict[str, Any]:
        answer = httpx.get(
            f"{self.server.url}/v1/messages",
            params={"key": self.publishable, "userId": user_id},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()["messages"][0]
        return found

    def follow(self, url: str) -> httpx.Response:
        return httpx.get(url, follow_redirects=False, timeout=10)

    def accept(self, token: str, offer_id: str = OFFER) -> httpx.Response:
        url = f"{self.server.url}/v1/offers/{offer_id.replace('>', '%3E')}/accept"
        return httpx.get(url, params={"token": token}, follow_redirects=False, timeout=10)

    def click_token(self, contact_id: int, user_id: str, exp: datetime) -> str:
        payload = click_payload(contact_id=contact_id, user_id=user_id, exp=int(exp.timestamp()))
        return sign(click_key(self.secret), payload)

    def count(self, sql: str) -> int:
        with self.ws.db.connect() as conn:
            return int(conn.exec_driver_sql(sql).scalar_one())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    folder = tmp_path_factory.mktemp("checkout")
    with empty_database(request.param, folder) as url:
        keys = new_workspace(folder / "ws", url)
        (folder / "ws" / "playbooks.yaml").write_text(
            f'settings:\n  checkout_url: "{CHECKOUT}"\n  save_url: "{SAVE_URL}"\n'
            "playbooks:\n  - {id: app, channel: in_app, placement: banner, template: limit_reached}\n"
        )
        settings = Settings(database_url=None if url.startswith("sqlite") else url)
        with Workspace.open(folder / "ws", settings) as ws:
            now = datetime.now(UTC).replace(microsecond=0)
            ingest(
                db=ws.db,
                messages=[
                    Message("group", f"g-{u}", now, user_id=u, group_id=a, traits={"name": a})
                    for a, u in [("acme", "ann"), ("globex", "gus")]
                ],
            )
            with ws.db.begin() as conn:
                conn.execute(
                    sa.insert(subscription_items).values(
                        account_id="acme", item_id="basic", started_at=now - STARTED,
                        ended_at=None, quantity=1, interval="month", unit_price=Decimal("19.00"),
                        currency="EUR", status="active", updated_at=now,
                    )
                )  # fmt: skip
                secret = signing_secret(conn=conn, purpose="checkout")
            decision = {"account_id": "acme", "kind": "upsell", "offer_id": OFFER,
                        "item_id": "pro", "from_item_id": "basic", "trial_days": 14,
                        "discount_percent": 20, "discount_months": 3, "price": "49.00",
                        "price_currency": "EUR", "expected_mrr_delta": "30.00", "currency": "EUR"}  # fmt: skip
            message = {"locale": "en", "subject": "Go Pro", "body": "10 of 10 seats.",
                       "cta": "Upgrade", "cta_url": "https://shop.example.com/x",
                       "expires_at": iso(now + timedelta(days=14))}  # fmt: skip
            contact = Contact(
                account_id="acme", as_of=now, kind="upsell", offer_id=OFFER, item_id="pro",
                channel="in_app", placement="banner", message=message, decision=decision,
                variant="b",
            )  # fmt: skip
            keep = Contact(
                account_id="globex", as_of=now, kind="save", offer_id="save:pro", item_id="pro",
                channel="in_app", placement="banner", message={**message, "cta": "Keep Pro"},
                decision={"account_id": "globex", "kind": "save", "offer_id": "save:pro",
                          "item_id": "pro", "from_item_id": "pro"},
            )  # fmt: skip
            with ws.db.begin() as conn:
                contact_id, _ = record_contact(conn=conn, contact=contact)
                record_contact(conn=conn, contact=keep)
            with live_server(folder / "ws", child_env(url)) as server:
                yield Shop(server, ws, keys["publishable"], secret, str(contact_id))


def expected_due(at: datetime) -> Decimal:
    """(49 - 19) x the share of the plan row's month left at `at`, to the second."""
    start = (at - STARTED).replace(microsecond=0)
    end = add_months(start, 1)
    left, whole = (end - at).total_seconds(), (end - start).total_seconds()
    return Decimal(30) * Decimal(left) / Decimal(whole)


def test_the_message_links_to_the_accept_door_and_shows_the_amount_due(shop: Shop) -> None:
    m = shop.message()
    assert m["id"] == shop.message_id
    url = m["cta"]["url"]
    assert url.startswith(f"{shop.server.url}/v1/offers/upsell%3Abasic-%3Epro/accept?token=")
    due = m["numbers"]["due_today"]
    assert due["currency"] == "EUR" and "€" in due["text"]
    assert abs(Decimal(due["amount"]) - expected_due(datetime.now(UTC))) <= Decimal("0.01")
    assert Decimal(due["amount"]) > 0


def test_a_click_is_recorded_once_and_redirected_with_a_token_that_verifies(
    shop: Shop, tmp_path: Path
) -> None:
    url = shop.message()["cta"]["url"]
    answer = shop.follow(url)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("https://shop.example.com/upgrade?account=acme&to=pro&trial=14&")
    token = parse_qs(urlsplit(location).query)["upsell_token"][0]
    payload = verify_in_python(token, shop.secret)
    assert {k: payload[k] for k in ("account_id", "offer_id", "item_id", "from_item_id", "kind")} == {
        "account_id": "acme", "offer_id": OFFER, "item_id": "pro", "from_item_id": "basic",
        "kind": "upsell",
    }  # fmt: skip
    assert (payload["trial_days"], payload["discount_percent"], payload["discount_months"]) == (
        14,
        20,
        3,
    )
    assert payload["contact_id"] == int(shop.message_id)
    assert payload["exp"] - payload["iat"] == 3600
    assert payload["due_today"]["currency"] == "EUR"
    at = datetime.fromtimestamp(payload["iat"], UTC)
    assert abs(Decimal(payload["due_today"]["amount"]) - expected_due(at)) <= Decimal("0.01")
    node = verify_in_node(token, shop.secret, tmp_path)
    assert node.returncode == 0, node.stderr
    assert json.loads(node.stdout) == payload
    # The click is recorded once: a second click still leads to the checkout.
    again = shop.follow(url)
    assert again.status_code == 303 and again.headers["location"].startswith(CHECKOUT[:30])
    where = f"WHERE contact_id = {shop.message_id}"
    assert shop.count(f"SELECT count(*) FROM responses {where} AND response = 'clicked'") == 1
    assert shop.count(f"SELECT count(*) FROM contacts {where} AND clicked_at IS NOT NULL") == 1
    assert shop.count("SELECT count(*) FROM events WHERE event = 'Offer Clicked'") == 1


def test_a_save_that_keeps_the_plan_leads_to_the_save_url_not_a_checkout(shop: Shop) -> None:
    answer = shop.follow(shop.message("gus")["cta"]["url"])
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("https://shop.example.com/keep?account=globex&")


def test_the_snippets_refuse_a_tampered_a_foreign_or_an_expired_offer_token(
    shop: Shop, tmp_path: Path
) -> None:
    now = int(datetime.now(UTC).timestamp())
    good = sign(shop.secret, {"account_id": "acme", "iat": now, "exp": now + 60})
    mac = good.partition(".")[2]
    forged = sign(shop.secret, {"account_id": "globex", "iat": now, "exp": now + 60})
    cases = {
        "tampered": f"{forged.partition('.')[0]}.{mac}",
        "foreign": sign("not-the-secret", {"account_id": "acme", "exp": now + 60}),
        "expired": sign(shop.secret, {"account_id": "acme", "iat": now - 7200, "exp": now - 1}),
    }
    assert verify_in_python(good, shop.secret)["account_id"] == "acme"
    for name, token in cases.items():
        with pytest.raises(ValueError, match="expired" if name == "expired" else "signature"):
            verify_in_python(token, shop.secret)
        node = verify_in_node(token, shop.secret, tmp_path)
        assert node.returncode != 0, name
        assert ("expired" if name == "expired" else "bad signature") in node.stderr, name


def test_bad_expired_or_foreign_click_tokens_are_refused(shop: Shop) -> None:
    contact_id = int(shop.message_id)
    later = datetime.now(UTC) + timedelta(days=1)
    good = shop.click_token(contact_id, "ann", later)
    mac = good.partition(".")[2]
    other = shop.click_token(contact_id, "gus", later).partition(".")[0]
    tampered = shop.accept(f"{other}.{mac}")
    assert tampered.status_code == 403 and tampered.json()["code"] == "bad_token"
    foreign = sign(click_key("another-secret"), {"typ": "click", "contact_id": contact_id,
                                                 "user_id": "ann", "exp": 2**40})  # fmt: skip
    assert shop.accept(foreign).status_code == 403
    expired = shop.accept(shop.click_token(contact_id, "ann", datetime.now(UTC) - timedelta(1)))
    assert expired.status_code == 403 and expired.json()["code"] == "token_expired"
    assert shop.accept("garbage").status_code == 400
    missing = shop.accept("")
    assert missing.status_code == 400 and missing.json()["code"] == "missing_token"
    # An offer token does not pass for a click token: it is signed with another key.
    offer = sign(shop.secret, {"typ": "click", "contact_id": contact_id, "user_id": "ann",
                               "exp": 2**40})  # fmt: skip
    assert shop.accept(offer).status_code == 403
    # Another offer id, or a user who does not belong to the message's account: 404.
    wrong = shop.accept(good, offer_id="upsell:basic->max")
    assert wrong.status_code == 404 and wrong.json()["code"] == "not_found"
    assert shop.accept(shop.click_token(contact_id, "gus", later)).status_code == 404
    assert shop.accept(shop.click_token(999999, "ann", later)).status_code == 404
