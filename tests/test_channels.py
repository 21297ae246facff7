"""Delivery channels against real local servers: SMTP (aiosmtpd) and HTTP (http.server)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from upsell.channels import base
from upsell.channels.base import (
    Delivery,
    Outcome,
    channel_for,
    channel_names,
    register_channel,
)
from upsell.channels.email import Email
from upsell.channels.in_app import InApp
from upsell.channels.webhook import CsmTask, Webhook
from upsell.domain.offers import CHANNELS
from upsell.errors import ChannelError
from upsell.settings import Settings

KEY = "a-0042:upsell:basic->pro:email:2026-06-01T00:00:00Z"
SECRET = "s3cret"


def message(**changes: Any) -> dict[str, Any]:
    return {
        "locale": "en",
        "subject": "Your team is outgrowing Basic",
        "body": "You used 48 of 50 seats this month.",
        "html": "<p>You used <b>48 of 50</b> seats this month.</p>",
        "cta": "Upgrade to Pro",
        "cta_url": "https://example.com/upgrade?plan=pro",
        "expires_at": "2026-06-15T00:00:00Z",
        **changes,
    }


def delivery(channel: str = "email", key: str = KEY, **changes: Any) -> Delivery:
    fields: dict[str, Any] = {
        "contact_id": 7,
        "account_id": "a-0042",
        "channel": channel,
        "idempotency_key": key,
        "payload": {
            "offer_id": "upsell:basic->pro",
            "account_id": "a-0042",
            "channel": channel,
            "message": message(),
        },
        "email": "owner@acme.example",
        "account_name": "Acme",
        **changes,
    }
    return Delivery(**fields)


def closed_port() -> int:
    """A local port that nothing listens on: bound to learn a free number, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No UPSELL_* variable or proxy of the developer's shell leaks into the settings or requests."""
    import os

    for name in list(os.environ):
        if name.startswith("UPSELL_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


# Email ------------------------------------------------------------------------------------------


@dataclass
class Collector:
    """An aiosmtpd handler that keeps every message it is given."""

    envelopes: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(e.original_content, policy=email.policy.default)  # type: ignore[misc]
            for e in self.envelopes
        ]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Collector, Settings]]:
    from aiosmtpd.controller import Controller

    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=closed_port())
    controller.start()
    try:
        yield collector, Settings(smtp_host="127.0.0.1", smtp_port=controller.port)
    finally:
        controller.stop()


def test_email_arrives_with_address_subject_text_and_html_parts(smtp_server) -> None:
    collector, settings = smtp_server
    outcome = Email(settings).deliver(delivery())
    assert outcome.status == "sent", outcome.detail
    assert outcome.attempts == 1
    assert collector.envelopes[0].rcpt_tos == ["owner@acme.example"]
    (msg,) = collector.messages()
    assert msg["To"] == "owner@acme.example"
    assert msg["From"] == "upsell@localhost"
    assert msg["Subject"] == "Your team is outgrowing Basic"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n").rstrip("\n") == (
        "You used 48 of 50 seats this month.\n\n"
        "Upgrade to Pro: https://example.com/upgrade?plan=pro"
    )
    assert "<b>48 of 50</b>" in html.get_content()


def test_email_carries_contact_offer_and_language_headers(smtp_server) -> None:
    collector, settings = smtp_server
    Email(settings).deliver(delivery())
    (msg,) = collector.messages()
    assert msg["X-Upsell-Contact"] == "7"
    assert msg["X-Upsell-Offer"] == "upsell:basic->pro"
    assert msg["Content-Language"] == "en"


def test_email_message_id_is_the_same_for_the_same_idempotency_key(smtp_server) -> None:
    collector, settings = smtp_server
    channel = Email(settings)
    channel.deliver(delivery())
    channel.deliver(delivery())
    channel.deliver(delivery(key=KEY.replace("2026-06-01", "2026-07-01")))
    first, again, other = (m["Message-ID"] for m in collector.messages())
    assert first == again
    assert first != other
    assert first.startswith("<") and first.endswith("@upsell>")


def test_email_without_html_is_plain_text_only(smtp_server) -> None:
    collector, settings = smtp_server
    d = delivery(payload={"offer_id": "o-1", "message": message(html=None)})
    assert Email(settings).deliver(d).status == "sent"
    (msg,) = collector.messages()
    assert msg.get_content_type() == "text/plain"


def test_email_to_an_account_without_address_fails_without_contacting_the_server() -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=closed_port())
    outcome = Email(settings).deliver(delivery(email=None))
    assert outcome == Outcome("failed", attempts=0, detail="account has no email address")


def test_email_to_an_unreachable_server_fails_with_a_detail_and_does_not_raise() -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=closed_port(), smtp_timeout=5)
    outcome = Email(settings).deliver(delivery())
    assert outcome.status == "failed"
    assert outcome.attempts == 1
    assert outcome.detail and "refused" in outcome.detail.lower()


def test_email_with_a_malformed_message_fails_instead_of_raising() -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=closed_port())
    injected = delivery(payload={"message": message(subject="Hi\nBcc: all@acme.example")})
    missing = delivery(payload={"message": {"subject": "no body"}})
    for d in (injected, missing):
        outcome = Email(settings).deliver(d)
        assert outcome.status == "failed"
        assert outcome.attempts == 0
        assert outcome.detail and outcome.detail.startswith("cannot build the message")


def test_email_without_a_host_reports_the_problem_and_fails() -> None:
    channel = Email(Settings())
    assert channel.problems() == ["UPSELL_SMTP_HOST is not set"]
    outcome = channel.deliver(delivery())
    assert outcome == Outcome("failed", attempts=0, detail="UPSELL_SMTP_HOST is not set")


def test_email_settings_come_from_upsell_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UPSELL_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("UPSELL_SMTP_PORT", "587")
    monkeypatch.setenv("UPSELL_SMTP_STARTTLS", "true")
    settings = Settings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
        "mail.example.com",
        587,
        True,
    )
    assert Email(settings).problems() == []


# Webhook ----------------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class HttpServer:
    """A local HTTP server that records each request and answers from a script of statuses; a
    status may come with headers, as ``(503, {"Retry-After": "7"})``; 200 once the script ends."""

    script: list[int | tuple[int, dict[str, str]]]
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def answer(self) -> tuple[int, dict[str, str]]:
        step = self.script.pop(0) if self.script else 200
        return step if isinstance(step, tuple) else (step, {})


@pytest.fixture
def http_server() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start(*script: int | tuple[int, dict[str, str]]) -> HttpServer:
        state = HttpServer(list(script))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                state.received.append(Received(dict(self.headers.items()), body))
                status, headers = state.answer()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        thread.start()
        servers.append(server)
        threads.append(thread)
        state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/upsell"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join()


def webhook_settings(url: str, **changes: Any) -> Settings:
    fields: dict[str, Any] = {
        "webhook_url": url,
        "webhook_secret": SECRET,
        "webhook_backoff_seconds": 0.5,
        "webhook_retries": 4,
        **changes,
    }
    return Settings(**fields)


def signature_is_valid(received: Received, secret: str = SECRET) -> bool:
    timestamp = received.headers["X-Upsell-Timestamp"]
    digest = hmac.new(
        secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(f"sha256={digest}", received.headers["X-Upsell-Signature"])


def test_webhook_retries_server_errors_with_exponential_backoff_until_success(
    http_server,
) -> None:
    server = http_server(503, 500, 200)
    sleeps: list[float] = []
    outcome = Webhook(webhook_settings(server.url), sleep=sleeps.append).deliver(
        delivery("webhook")
    )
    assert outcome == Outcome("sent", attempts=3, detail="HTTP 200")
    assert sleeps == [0.5, 1.0]
    assert len(server.received) == 3
    assert len({r.body for r in server.received}) == 1


def test_webhook_posts_the_decision_as_json_with_idempotency_key_and_valid_signature(
    http_server,
) -> None:
    server = http_server(200)
    Webhook(webhook_settings(server.url), sleep=pytest.fail).deliver(delivery("webhook"))
    (received,) = server.received
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["Idempotency-Key"] == KEY
    assert received.headers["X-Upsell-Timestamp"].isdigit()
    assert signature_is_valid(received)
    assert not signature_is_valid(received, secret="another secret")
    body = received.json()
    assert body["type"] == "decision"
    assert body["idempotency_key"] == KEY
    assert body["contact_id"] == 7
    assert body["account_id"] == "a-0042"
    assert body["offer_id"] == "upsell:basic->pro"
    assert body["message"]["cta_url"] == "https://example.com/upgrade?plan=pro"
    assert "task" not in body
    assert received.body == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def test_the_documented_receiver_check_accepts_a_post_and_refuses_a_replay_or_a_change(
    http_server,
) -> None:
    """The verification code of docs/decisions.md, run as a receiver would run it."""
    text = (Path(__file__).parent.parent / "docs" / "decisions.md").read_text()
    code = text.split("A receiver checks both", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(code, scope)
    verify = scope["verify"]
    server = http_server(200)
    Webhook(webhook_settings(server.url), sleep=pytest.fail).deliver(delivery("webhook"))
    (received,) = server.received
    headers = dict(received.headers)
    assert verify(SECRET.encode(), headers, received.body)
    assert not verify(b"another secret", headers, received.body)
    assert not verify(SECRET.encode(), headers, received.body + b" ")
    # The same POST, signed properly but six minutes ago: a replay.
    old = str(int(headers["X-Upsell-Timestamp"]) - 360)
    digest = hmac.new(SECRET.encode(), old.encode() + b"." + received.body, hashlib.sha256)
    replay = {
        **headers,
        "X-Upsell-Timestamp": old,
        "X-Upsell-Signature": f"sha256={digest.hexdigest()}",
    }
    assert not verify(SECRET.encode(), replay, received.body)
    assert verify(SECRET.encode(), replay, received.body, tolerance=400)


def test_webhook_gives_up_at_once_on_a_client_error(http_server) -> None:
    server = http_server(400, 200)
    outcome = Webhook(webhook_settings(server.url), sleep=pytest.fail).deliver(delivery("webhook"))
    assert outcome.status == "failed"
    assert outcome.attempts == 1
    assert outcome.detail and outcome.detail.startswith("HTTP 400")
    assert len(server.received) == 1


def test_webhook_fails_after_the_first_attempt_and_every_retry_answer_server_errors(
    http_server,
) -> None:
    server = http_server(500, 502, 503, 504)
    sleeps: list[float] = []
    settings = webhook_settings(server.url, webhook_retries=3, webhook_backoff_seconds=1)
    outcome = Webhook(settings, sleep=sleeps.append).deliver(delivery("webhook"))
    assert outcome.status == "failed"
    assert outcome.attempts == 4
    assert outcome.detail and outcome.detail.startswith("HTTP 504")
    assert sleeps == [1, 2, 4]
    assert len(server.received) == 4


def test_webhook_waits_as_long_as_retry_after_says_capped_at_a_minute(http_server) -> None:
    server = http_server((429, {"Retry-After": "7"}), (503, {"Retry-After": "3600"}), 200)
    sleeps: list[float] = []
    outcome = Webhook(webhook_settings(server.url), sleep=sleeps.append).deliver(
        delivery("webhook")
    )
    assert outcome == Outcome("sent", attempts=3, detail="HTTP 200")
    assert sleeps == [7, 60]


def test_webhook_to_a_closed_port_is_retried_then_fails_without_raising() -> None:
    settings = webhook_settings(f"http://127.0.0.1:{closed_port()}/hook", webhook_retries=2)
    sleeps: list[float] = []
    outcome = Webhook(settings, sleep=sleeps.append).deliver(delivery("webhook"))
    assert outcome.status == "failed"
    assert outcome.attempts == 3
    assert outcome.detail and "refused" in outcome.detail.lower()
    assert sleeps == [0.5, 1.0]


def test_webhook_without_a_secret_sends_no_signature(http_server) -> None:
    server = http_server(200)
    settings = Settings(webhook_url=server.url)
    assert Webhook(settings).deliver(delivery("webhook")).status == "sent"
    (received,) = server.received
    assert "X-Upsell-Signature" not in received.headers
    assert received.headers["Idempotency-Key"] == KEY


def test_webhook_does_not_follow_a_redirect(http_server) -> None:
    server = http_server((302, {"Location": "/elsewhere"}))
    outcome = Webhook(webhook_settings(server.url), sleep=pytest.fail).deliver(delivery("webhook"))
    assert outcome.status == "failed"
    assert outcome.detail and outcome.detail.startswith("HTTP 302")
    assert len(server.received) == 1


def test_csm_task_posts_a_task_with_the_talking_points(http_server) -> None:
    server = http_server(200)
    points = ["48 of 50 seats used", "Pro adds SSO, asked for in ticket #311"]
    d = delivery(
        "csm_task",
        payload={"offer_id": "o-1", "message": message(html=None, talking_points=points)},
    )
    settings = Settings(csm_task_url=server.url, webhook_secret=SECRET)
    assert CsmTask(settings).deliver(d) == Outcome("sent", attempts=1, detail="HTTP 200")
    (received,) = server.received
    assert signature_is_valid(received)
    body = received.json()
    assert body["type"] == "csm_task"
    assert body["task"] == {
        "title": "Your team is outgrowing Basic",
        "talking_points": points,
        "body": "You used 48 of 50 seats this month.",
    }


def test_csm_task_falls_back_to_the_webhook_url(http_server) -> None:
    server = http_server(200)
    channel = CsmTask(Settings(webhook_url=server.url))
    assert channel.problems() == []
    assert channel.deliver(delivery("csm_task")).status == "sent"
    assert server.received[0].json()["task"]["talking_points"] == []


def test_csm_task_without_a_message_fails_before_posting(http_server) -> None:
    server = http_server(200)
    outcome = CsmTask(Settings(webhook_url=server.url)).deliver(
        delivery("csm_task", payload={"offer_id": "o-1"})
    )
    assert outcome.status == "failed"
    assert outcome.attempts == 0
    assert server.received == []


def test_webhook_without_a_url_reports_the_problem_and_fails() -> None:
    channel = Webhook(Settings(), sleep=pytest.fail)
    assert channel.problems() == ["UPSELL_WEBHOOK_URL is not set"]
    outcome = channel.deliver(delivery("webhook"))
    assert outcome == Outcome("failed", attempts=0, detail="UPSELL_WEBHOOK_URL is not set")
    assert CsmTask(Settings()).problems() == [
        "UPSELL_CSM_TASK_URL (or UPSELL_WEBHOOK_URL) is not set"
    ]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/hook", "example.com"])
def test_webhook_refuses_a_url_that_is_not_http(url: str) -> None:
    channel = Webhook(Settings(webhook_url=url), sleep=pytest.fail)
    assert channel.problems() == ["UPSELL_WEBHOOK_URL is not an http(s) URL"]
    assert channel.deliver(delivery("webhook")).status == "failed"


# In-app and the registry ------------------------------------------------------------------------


def test_in_app_queues_without_io_and_is_always_ready() -> None:
    channel = InApp(Settings())
    assert channel.problems() == []
    assert channel.deliver(delivery("in_app")) == Outcome("queued")


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test are forgotten after it."""
    monkeypatch.setattr(base, "_plugins", {})


def test_channel_for_builds_each_built_in_channel() -> None:
    settings = Settings()
    assert channel_names()[:4] == CHANNELS  # the vocabulary of domain/offers.py, in its order
    assert isinstance(channel_for("in_app", settings), InApp)
    assert isinstance(channel_for("email", settings), Email)
    assert isinstance(channel_for("webhook", settings), Webhook)
    assert isinstance(channel_for("csm_task", settings), CsmTask)
    for name in ("in_app", "email", "webhook", "csm_task"):
        assert channel_for(name, settings).name == name


def test_an_unknown_channel_is_an_error_naming_the_known_ones(plugins: None) -> None:
    with pytest.raises(ChannelError) as raised:
        channel_for("sms", Settings())
    assert raised.value.channel == "sms"
    assert raised.value.known == CHANNELS
    assert "in_app, email, csm_task, webhook" in str(raised.value)
    assert isinstance(raised.value, ValueError)


@dataclass
class Sms:
    settings: Settings
    name: str = "sms"

    def deliver(self, delivery: Delivery) -> Outcome:
        return Outcome("sent", detail=f"texted {delivery.account_id}")

    def problems(self) -> list[str]:
        return []


def test_a_registered_channel_is_built_by_channel_for(plugins: None) -> None:
    register_channel("sms", Sms)
    register_channel("sms", Sms)
    channel = channel_for("sms", Settings())
    assert isinstance(channel, Sms)
    assert channel.deliver(delivery("sms")) == Outcome("sent", detail="texted a-0042")
    assert channel_names() == (*CHANNELS, "sms")


def test_a_built_in_channel_cannot_be_registered_again(plugins: None) -> None:
    with pytest.raises(ValueError, match="built-in"):
        register_channel("email", Sms)
    assert isinstance(channel_for("email", Settings()), Email)


def test_a_taken_name_or_a_malformed_name_cannot_be_registered(plugins: None) -> None:
    register_channel("sms", Sms)
    with pytest.raises(ChannelError, match="already registered"):
        register_channel("sms", lambda settings: Sms(settings))
    with pytest.raises(ChannelError):
        register_channel("Push Notification", Sms)
