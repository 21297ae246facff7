"""`upsell run` end to end on a small simulated company, delivering to real local servers.

Email goes to an SMTP server on localhost (aiosmtpd), CSM tasks and webhooks to an HTTP server on
localhost; the tests read what arrived, and what the workspace recorded.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import date
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from cli_runner import run
from upsell.store.schema import accounts, contacts, refusals

AS_OF = "2026-04-15"
SECRET = "s3cret"
CONTRACT_KEYS = {
    "account_id", "as_of", "kind", "offer_id", "item_id", "from_item_id", "channel", "placement",
    "variant", "experiment", "expected_mrr_delta", "currency", "score", "reasons", "message",
    "trial_days",
}  # fmt: skip
MESSAGE_KEYS = {"locale", "subject", "body", "cta", "cta_url", "expires_at"}

# Every expansion offer by email, saves to the webhook, cross-sells as CSM tasks: all three
# delivering channels are exercised, with a 20 % holdout and no cap on these.
PLAYBOOKS = """\
settings:
  holdout: {share: 0.2, key: test}
  contact_cost: {email: 0, csm_task: 0, webhook: 0}
  checkout_url: "https://shop.example.com/buy?a={account_id}&i={item_id}"
guardrails:
  caps: []
playbooks:
  - {id: mail, trigger: {kind: [upsell, add_on]}, channel: email, placement: email,
     template: limit_reached, offer: {trial_days: 14}}
  - {id: keep, trigger: {kind: save}, channel: webhook, placement: event, template: save}
  - {id: qbr, trigger: {kind: cross_sell}, channel: csm_task, placement: qbr_agenda,
     template: qbr_cross_sell}
"""


@pytest.fixture
def workspace(demo_workspace: Path) -> Path:
    """A fresh copy of the shared demo company (tests/conftest.py), with the test playbooks."""
    (demo_workspace / "playbooks.yaml").write_text(PLAYBOOKS)
    return demo_workspace


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[_Mailbox, int]]:
    box = _Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


class _Hooks:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.lock = threading.Lock()


@pytest.fixture
def hooks() -> Iterator[tuple[_Hooks, str]]:
    state = _Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.requests.append((self.path, dict(self.headers), body))
                status = state.status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def channels(
    monkeypatch: pytest.MonkeyPatch, mailbox: tuple[_Mailbox, int], hooks: tuple[_Hooks, str]
) -> tuple[_Mailbox, _Hooks]:
    monkeypatch.setenv("UPSELL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("UPSELL_SMTP_PORT", str(mailbox[1]))
    monkeypatch.setenv("UPSELL_SMTP_FROM", "offers@example.com")
    monkeypatch.setenv("UPSELL_WEBHOOK_URL", hooks[1] + "/hook")
    monkeypatch.setenv("UPSELL_CSM_TASK_URL", hooks[1] + "/tasks")
    monkeypatch.setenv("UPSELL_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("UPSELL_WEBHOOK_RETRIES", "0")
    return mailbox[0], hooks[0]


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "UPSELL_DATABASE_URL", "UPSELL_WORKSPACE", "UPSELL_SMTP_HOST", "UPSELL_WEBHOOK_URL",
        "UPSELL_CSM_TASK_URL", "UPSELL_WEBHOOK_SECRET",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def stored(ws: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    engine = sa.create_engine(f"sqlite:///{ws / 'upsell.db'}")
    try:
        with engine.connect() as conn:
            c = [dict(r._mapping) for r in conn.execute(sa.select(contacts))]
            r = [dict(r._mapping) for r in conn.execute(sa.select(refusals))]
        return c, r
    finally:
        engine.dispose()


def test_a_dry_run_writes_the_decisions_and_records_nothing(
    workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "decisions.jsonl"
    result = run("run", "-w", workspace, "--as-of", AS_OF, "--dry-run", "--out", out)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines
    assert len({x["account_id"] for x in lines}) == len(lines), "one offer per account"
    for x in lines:
        assert x.keys() >= CONTRACT_KEYS
        assert x["message"].keys() >= MESSAGE_KEYS
        assert x["as_of"] == "2026-04-15T00:00:00Z"
        assert x["message"]["subject"] and x["message"]["body"] and x["message"]["cta"]
        assert x["message"]["cta_url"].startswith("https://shop.example.com/buy?a=")
    assert {x["channel"] for x in lines} <= {"email", "webhook", "csm_task"}
    assert "dry run" in result.stderr and "Offers by kind" in result.stderr
    assert stored(workspace) == ([], [])


def test_a_save_that_keeps_the_plan_links_to_the_save_url_not_a_checkout(
    workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "decisions.jsonl"
    day = "2026-05-15"  # saves to make (2026-04-15 has too few)
    assert run("run", "-w", workspace, "--as-of", day, "--dry-run", "--out", out).exit_code == 0
    saves = [x for x in map(json.loads, out.read_text().splitlines()) if x["kind"] == "save"]
    keep = [x for x in saves if x["item_id"] == x["from_item_id"]]
    assert keep
    for x in saves:
        url = x["message"]["cta_url"]
        kept = x in keep
        assert url.startswith("https://app.example.com/billing/keep?" if kept else "https://shop")


def test_a_run_delivers_records_and_holds_out(
    workspace: Path, tmp_path: Path, channels: tuple[_Mailbox, _Hooks]
) -> None:
    mail, hooks = channels
    out = tmp_path / "decisions.jsonl"
    result = run("run", "-w", workspace, "--as-of", AS_OF, "--out", out)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    rows, _ = stored(workspace)
    held = [r for r in rows if r["held_out"]]
    sent = [r for r in rows if not r["held_out"]]
    assert held and sent
    assert {r["status"] for r in held} == {"held_out"}
    assert {r["status"] for r in sent} == {"sent"}
    assert {x["account_id"] for x in lines} == {r["account_id"] for r in sent}
    assert not {r["account_id"] for r in held} & {x["account_id"] for x in lines}
    assert 0.05 < len(held) / len(rows) < 0.4, "about the 20 % holdout"

    emails = [x for x in lines if x["channel"] == "email"]
    assert len(mail.messages) == len(emails) > 0
    plain = []
    for m in mail.messages:
        text, page = m.get_body(("plain",)), m.get_body(("html",))
        assert text is not None and page is not None
        plain.append((m["Subject"], text.get_content()))
    for x in emails:
        url = x["message"]["cta_url"] + "\r\n"
        arrived = [subject for subject, text in plain if url in text]
        assert arrived == [x["message"]["subject"]]
    posted = [x for x in lines if x["channel"] in ("webhook", "csm_task")]
    assert len(hooks.requests) == len(posted)
    for path, headers, body in hooks.requests:
        stamp = headers["X-Upsell-Timestamp"]
        expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        assert headers["X-Upsell-Signature"] == "sha256=" + expected.hexdigest()
        payload = json.loads(body)
        assert path == ("/tasks" if payload["type"] == "csm_task" else "/hook")
    assert "Deliveries" in result.stderr


def test_running_the_same_day_twice_sends_nothing_twice(
    workspace: Path, tmp_path: Path, channels: tuple[_Mailbox, _Hooks]
) -> None:
    mail, hooks = channels
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    assert run("run", "-w", workspace, "--as-of", AS_OF, "--out", first).exit_code == 0
    rows, refused = stored(workspace)
    sent = (len(mail.messages), len(hooks.requests))
    result = run("run", "-w", workspace, "--as-of", AS_OF, "--out", second)
    assert result.exit_code == 0, result.output
    assert stored(workspace) == (rows, refused)
    assert (len(mail.messages), len(hooks.requests)) == sent
    assert sorted(first.read_text().splitlines()) == sorted(second.read_text().splitlines())
    assert "kept the decision of an earlier run" in result.stderr


def test_a_failed_delivery_is_recorded_and_retried_by_the_next_run(
    workspace: Path, channels: tuple[_Mailbox, _Hooks]
) -> None:
    _, hooks = channels
    hooks.status = 503
    result = run("run", "-w", workspace, "--as-of", AS_OF)
    assert result.exit_code == 1, result.output  # cron and monitoring see the failure
    rows, _ = stored(workspace)
    failed = [r for r in rows if r["channel"] in ("webhook", "csm_task") and not r["held_out"]]
    assert failed and {r["status"] for r in failed} == {"failed"}
    assert all("503" in r["detail"] for r in failed)
    assert "run the same --as-of again to retry" in result.stderr
    hooks.status = 200
    before = len(hooks.requests)
    assert run("run", "-w", workspace, "--as-of", AS_OF).exit_code == 0
    rows, _ = stored(workspace)
    again = [r for r in rows if r["channel"] in ("webhook", "csm_task") and not r["held_out"]]
    assert {r["status"] for r in again} == {"sent"}
    assert len(hooks.requests) - before == len(failed)
    assert all(r["attempts"] == 2 for r in again)


@pytest.mark.parametrize(
    ("day", "message"),
    [("0001-01-01", "is out of range"), ("2026-06-01T25:00", "is not a date")],
)
def test_a_day_out_of_range_or_not_a_day_is_a_usage_error(
    workspace: Path, day: str, message: str
) -> None:
    result = run("run", "-w", workspace, "--as-of", day, "--dry-run")
    assert result.exit_code == 2 and message in result.output, result.output


def test_the_run_summary_says_how_many_failures_it_does_not_list() -> None:
    import io

    from rich.console import Console

    from upsell.cli.run import print_run
    from upsell.flows.offers import RunResult

    result = RunResult(date(2026, 4, 15), SimpleNamespace(accounts=12))  # type: ignore[arg-type]
    result.failures = [(f"a-{n}", "email", "451 try later") for n in range(12)]
    out = io.StringIO()
    print_run(Console(file=out, width=200), result)
    text = out.getvalue()
    assert text.count("failed: a-") == 10 and "…and 2 more" in text
    assert "12 deliveries failed" in text


def test_a_later_run_respects_the_caps_of_the_first(
    workspace: Path, channels: tuple[_Mailbox, _Hooks]
) -> None:
    (workspace / "playbooks.yaml").write_text(
        PLAYBOOKS.replace("caps: []", "caps: [{channel: email, max: 1, days: 30}]")
    )
    assert run("run", "-w", workspace, "--as-of", AS_OF).exit_code == 0
    rows, _ = stored(workspace)
    emailed = {r["account_id"] for r in rows if r["channel"] == "email" and not r["held_out"]}
    result = run("run", "-w", workspace, "--as-of", "2026-04-22")
    assert result.exit_code == 0, result.output
    rows, refused = stored(workspace)
    week2 = [r for r in rows if r["as_of"].date().isoformat() == "2026-04-22"]
    assert not {r["account_id"] for r in week2 if r["channel"] == "email"} & emailed
    capped = [r for r in refused if r["guardrail"] == "frequency_cap"]
    assert capped and {r["account_id"] for r in capped} <= emailed
    assert "frequency_cap" in result.stderr
    held = re.search(r"(\d+) held out", result.stderr)
    again = run("run", "-w", workspace, "--as-of", "2026-04-22")
    assert again.exit_code == 0, again.output

    def same(rows: list[dict[str, Any]]) -> list[str]:
        return sorted(str({k: v for k, v in r.items() if k != "id"}) for r in rows)

    assert same(stored(workspace)[1]) == same(refused), "the refusals are kept"
    assert held is not None and f"{held.group(1)} held out" in again.stderr


def test_an_owned_account_with_an_open_csm_task_gets_no_automated_offer(
    workspace: Path, channels: tuple[_Mailbox, _Hooks]
) -> None:
    assert run("run", "-w", workspace, "--as-of", AS_OF).exit_code == 0
    rows, _ = stored(workspace)
    tasked = {r["account_id"] for r in rows if r["channel"] == "csm_task" and not r["held_out"]}
    assert tasked
    engine = sa.create_engine(f"sqlite:///{workspace / 'upsell.db'}")
    try:
        with engine.begin() as conn:
            for (account_id,) in conn.execute(sa.select(accounts.c.account_id)):
                if account_id in tasked:
                    owned = accounts.c.account_id == account_id
                    conn.execute(
                        sa.update(accounts).where(owned).values(traits={"csm_owner": "dana"})
                    )
    finally:
        engine.dispose()
    by_email = PLAYBOOKS.replace(
        "channel: csm_task, placement: qbr_agenda,\n     template: qbr_cross_sell",
        "channel: email, placement: email,\n     template: cross_sell",
    )
    assert by_email != PLAYBOOKS
    (workspace / "playbooks.yaml").write_text(by_email)
    result = run("run", "-w", workspace, "--as-of", "2026-04-22")
    assert result.exit_code == 0, result.output
    rows, refused = stored(workspace)
    week2 = [r for r in rows if r["as_of"].date().isoformat() == "2026-04-22"]
    automated = {r["account_id"] for r in week2 if r["channel"] != "csm_task"}
    assert not automated & tasked
    owned_refusals = [r for r in refused if r["guardrail"] == "csm_owned"]
    assert owned_refusals and {r["account_id"] for r in owned_refusals} <= tasked
    assert "csm_owned" in result.stderr


def test_a_channel_that_is_not_set_up_stops_the_run_before_anything_is_recorded(
    workspace: Path,
) -> None:
    result = run("run", "-w", workspace, "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "cannot deliver" in result.stderr and "UPSELL_" in result.stderr
    assert stored(workspace) == ([], [])


def test_invalid_playbooks_are_refused_with_file_line_and_key(workspace: Path) -> None:
    (workspace / "playbooks.yaml").write_text(PLAYBOOKS.replace("placement: event", "placement: x"))
    result = run("run", "-w", workspace, "--as-of", AS_OF, "--dry-run")
    assert result.exit_code == 2
    assert "playbooks.yaml:10: playbooks[1].placement" in result.stderr
    check = run("playbooks", "check", "-w", workspace)
    assert check.exit_code == 2 and "playbooks[1].placement" in check.stderr


def test_playbooks_check_renders_every_template_and_reports_translations(
    workspace: Path,
) -> None:
    (workspace / "playbooks.yaml").unlink()
    result = run("playbooks", "check", "-w", workspace)
    assert result.exit_code == 0, result.output
    assert "built-in defaults" in result.stderr
    assert "limit-reached-modal" in result.stderr
    assert "Every message is translated in every language." in result.stderr
    assert "The playbooks are valid." in result.stderr


def test_a_language_without_translations_falls_back_to_english_and_is_reported(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "locale").mkdir()
    (workspace / "locale" / "es.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Upgrade to %(plan)s"\nmsgstr "Mejora a %(plan)s"\n'
    )
    result = run("playbooks", "check", "-w", workspace)
    assert result.exit_code == 0, result.output
    assert "es:" in result.stderr and "without a translation" in result.stderr
    assert "You use %(used)s of your %(limit)s %(metric)s." in result.stderr


def test_a_template_that_does_not_parse_is_a_usage_error(workspace: Path) -> None:
    (workspace / "templates").mkdir()
    (workspace / "templates" / "save.j2").write_text("{% macro subject() %}{% if %}")
    result = run("run", "-w", workspace, "--as-of", AS_OF, "--dry-run")
    assert result.exit_code == 2
    assert "template save" in result.stderr


def test_a_template_error_for_one_account_is_its_refusal_and_the_others_go_out(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "templates").mkdir()
    (workspace / "templates" / "limit_reached.j2").write_text(
        "{% macro subject() %}Grow{% endmacro %}{% macro cta() %}Go{% endmacro %}"
        "{% macro body() %}{{ 1 // (account.id[-1] != '3')|int }}{% endmacro %}"
    )
    out = tmp_path / "d.jsonl"
    result = run("run", "-w", workspace, "--as-of", AS_OF, "--dry-run", "--out", out)
    assert result.exit_code == 0, result.output
    emailed = [json.loads(x) for x in out.read_text().splitlines()]
    assert any(x["channel"] == "email" for x in emailed)
    assert not any(x["account_id"].endswith("3") and x["channel"] == "email" for x in emailed)
    assert "template_error" in result.stderr


def test_workspace_templates_and_translations_override_the_built_in_ones(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "templates").mkdir()
    (workspace / "templates" / "limit_reached.j2").write_text(
        "{% macro subject() %}{% trans %}Grow with us{% endtrans %}{% endmacro %}"
        "{% macro body() %}{{ account.name }} needs {{ item.name }}{% endmacro %}"
        "{% macro cta() %}Go{% endmacro %}"
    )
    (workspace / "locale").mkdir()
    (workspace / "locale" / "de.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Grow with us"\nmsgstr "Wachse mit uns"\n'
    )
    out = tmp_path / "d.jsonl"
    assert run("run", "-w", workspace, "--as-of", AS_OF, "--dry-run", "--out", out).exit_code == 0
    emails = [
        json.loads(x) for x in out.read_text().splitlines() if json.loads(x)["channel"] == "email"
    ]
    assert emails
    for x in emails:
        m = x["message"]
        german = m["locale"].startswith("de")
        assert m["subject"] == ("Wachse mit uns" if german else "Grow with us")
        assert m["cta"] == "Go" and " needs " in m["body"]


def test_playbooks_copy_puts_the_defaults_in_the_workspace(workspace: Path) -> None:
    (workspace / "playbooks.yaml").unlink()
    result = run("playbooks", "copy", "-w", workspace)
    assert result.exit_code == 0, result.output
    assert (workspace / "playbooks.yaml").is_file()
    assert (workspace / "templates" / "limit_reached.j2").is_file()
    again = run("playbooks", "copy", "-w", workspace)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert run("playbooks", "check", "-w", workspace).exit_code == 0
