"""The admin API (docs/service.md, "Admin API") on a live `upsell serve` of the demo company, on
SQLite and on PostgreSQL: the same JSON as the commands, runs in the background under the job's
lock, pagination, and a 4xx `{code, message}` for every bad parameter."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_runner import run
from companies import Company, demo_company_on
from live_server import LiveServer, live_server
from upsell.flows.runs import JOB_LOCK
from upsell.store.db import connect
from upsell.store.locks import try_lock

AS_OF = "2026-04-15"


class Admin:
    def __init__(self, company: Company, server: LiveServer) -> None:
        self.company = company
        self.server = server
        self.http = httpx.Client(
            base_url=f"{server.url}/v1/admin",
            headers={"Authorization": f"Bearer {company.admin_key}"},
            timeout=60,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def ok(self, path: str, **params: Any) -> Any:
        answer = self.get(path, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_for(self, run_id: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found: dict[str, Any] = self.ok(f"/runs/{run_id}")
            if found["status"] in ("succeeded", "failed"):
                return found
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} did not finish in {timeout}s")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def admin(
    request: pytest.FixtureRequest, demo_company: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Admin]:
    """One live server a module on the demo company, on each database."""
    where = tmp_path_factory.mktemp(f"admin-{request.param}")
    with (
        demo_company_on(request.param, demo_company, where) as company,
        live_server(company.folder, company.env) as server,
    ):
        client = Admin(company, server)
        yield client
        client.http.close()


@pytest.fixture
def cli_env(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment for the in-process CLI on the served workspace; its folder."""
    url = admin.company.database_url
    if url.startswith("sqlite"):
        monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("UPSELL_DATABASE_URL", url)
    return admin.company.folder


def _error(answer: httpx.Response, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"code", "message"}, body
    for word in words:
        assert word in body["message"], body


def test_the_admin_api_needs_an_admin_token(admin: Admin) -> None:
    url = f"{admin.server.url}/v1/admin/runs"
    _error(httpx.get(url), 401, "admin")
    _error(httpx.get(url, headers={"Authorization": "Bearer usa_nope_nope"}), 401, "unknown")
    write = {"Authorization": f"Bearer {admin.company.write_key}"}
    _error(httpx.get(url, headers=write), 403, "a write key cannot call the admin API")
    _error(httpx.post(url, headers=write, json={"as_of": AS_OF}), 403)
    paths = httpx.get(f"{admin.server.url}/openapi.json").json()["paths"]
    assert {"/v1/admin/opportunities", "/v1/admin/runs/{run_id}"} <= set(paths)


def test_opportunities_are_the_lines_of_upsell_opportunities(admin: Admin, cli_env: Path) -> None:
    served = admin.ok("/opportunities", as_of=AS_OF)
    printed = run("opportunities", "-w", cli_env, "--as-of", AS_OF, "--json")
    assert printed.exit_code == 0, printed.output
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert served["opportunities"] == lines and len(lines) > 100
    assert served["accounts"] > 0 and served["as_of"] == AS_OF
    one = lines[0]["account_id"]
    mine = admin.ok("/opportunities", as_of=AS_OF, account=one)["opportunities"]
    assert mine == [line for line in lines if line["account_id"] == one]
    _error(admin.get("/opportunities", as_of=AS_OF, account="nope"), 404, "'nope'")
    _error(admin.get("/opportunities", as_of="2026-02-30"), 400, "as_of")
    _error(admin.get("/opportunities"), 400, "as_of")
    _error(admin.get("/opportunities", as_of="0001-01-01"), 400, "as_of")


def test_the_report_is_the_json_of_upsell_report(
    admin: Admin, cli_env: Path, tmp_path: Path
) -> None:
    served = admin.ok("/report", **{"from": "2026-01-01", "to": "2026-03-31"})
    out = tmp_path / "report.json"
    done = run("report", "-w", cli_env, "--from", "2026-01-01", "--to", "2026-03-31", "--out", out)
    assert done.exit_code == 0, done.output
    written = json.loads(out.read_text())
    assert served.pop("generated_at") and written.pop("generated_at")
    assert served == written and served["from"] == "2026-01-01"
    _error(admin.get("/report", **{"from": "2026-03-01", "to": "2026-01-01"}), 400, "before")
    _error(admin.get("/report", locale="xx_nope"), 400, "locale")
    _error(admin.get("/report", to="2183-03-13"), 400, "at most 120 months", "the data runs")
    _error(admin.get("/report", to="2000-01-01"), 409, "no month to report")


def test_a_run_starts_in_the_background_under_the_lock_and_is_seen_through(
    admin: Admin,
) -> None:
    db = connect(admin.company.database_url)
    try:
        held = try_lock(db, JOB_LOCK)
        assert held is not None
        _error(admin.http.post("/runs", json={"as_of": AS_OF}), 409, "in progress")
        held.release()
    finally:
        db.dispose()
    started = admin.http.post("/runs", json={"as_of": AS_OF})
    assert started.status_code == 202, started.text
    queued = started.json()
    assert (queued["status"], queued["trigger"], queued["as_of"]) == ("queued", "api", AS_OF)
    assert started.headers["location"] == f"/v1/admin/runs/{queued['run_id']}"
    done = admin.wait_for(queued["run_id"])
    assert done["status"] == "succeeded", done
    summary = done["summary"]
    assert summary["offers"] > 0 and summary["delivered"] == {"in_app: queued": summary["offers"]}
    listed = admin.ok("/runs")["runs"]
    assert listed[0] == done

    decided = admin.ok("/decisions", as_of=AS_OF)["decisions"]
    assert len(decided) == summary["offers"] + summary["held_out"]
    assert sum(not d["held_out"] for d in decided) == summary["offers"]
    assert {d["status"] for d in decided} == {"queued", "held_out"}
    assert all(d["as_of"] == f"{AS_OF}T00:00:00Z" and d["contact_id"] for d in decided)
    assert admin.ok("/decisions", as_of="2026-04-16")["decisions"] == []

    again = admin.http.post("/runs", json={"as_of": AS_OF, "dry_run": True})
    assert again.status_code == 202
    rerun = admin.wait_for(again.json()["run_id"])
    assert rerun["summary"]["dry_run"] is True and rerun["summary"]["reused"] > 0
    _error(admin.http.post("/runs", json={"as_of": "x"}), 400, "as_of")
    _error(admin.http.post("/runs", json={"as_of": AS_OF, "what": 1}), 400, "what")
    _error(admin.http.post("/runs", json={"as_of": AS_OF, "dry_run": "yes"}), 400, "dry_run")
    _error(admin.get("/runs/999999"), 404, "999999")
    _error(admin.get("/runs/abc"), 400, "run_id")


def test_contacts_come_a_page_at_a_time_with_filters(admin: Admin) -> None:
    if not admin.ok("/contacts", limit=1)["contacts"]:
        started = admin.http.post("/runs", json={"as_of": AS_OF})
        assert admin.wait_for(started.json()["run_id"])["status"] == "succeeded"
    every = admin.ok("/decisions", as_of=AS_OF)["decisions"]
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page = admin.ok("/contacts", limit=40, **({"cursor": cursor} if cursor else {}))
        seen.extend(page["contacts"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [c["contact_id"] for c in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == len(every)
    assert pages == max(1, -(-len(ids) // 40)), "the last page has no next_cursor"
    held = admin.ok("/contacts", status="held_out", limit=500)["contacts"]
    assert held and all(c["held_out"] and c["status"] == "held_out" for c in held)
    one = seen[0]["account_id"]
    theirs = admin.ok("/contacts", account=one, as_of=AS_OF, channel="in_app")["contacts"]
    assert theirs == [c for c in seen if c["account_id"] == one]
    assert admin.ok("/contacts", channel="email")["contacts"] == []
    _error(admin.get("/contacts", account="nope"), 404, "'nope'")
    _error(admin.get("/contacts", status="lost"), 400, "status", "held_out")
    _error(admin.get("/contacts", cursor="not-a-cursor"), 400, "cursor")
    _error(admin.get("/contacts", limit=0), 400, "limit")
    _error(admin.get("/contacts", limit=501), 400, "limit")
    _error(admin.get("/contacts", account="a\x00b"), 400, "account")


def test_the_server_keeps_answering_while_the_engine_computes(admin: Admin) -> None:
    """A slow admin call (the whole report) runs in the threadpool: health and key checks answer
    meanwhile."""
    answers: list[int] = []
    slow = threading.Thread(target=lambda: answers.append(admin.get("/report").status_code))
    slow.start()
    quick = []
    while slow.is_alive() and len(quick) < 20:
        began = time.monotonic()
        assert httpx.get(f"{admin.server.url}/healthz").status_code == 200
        quick.append(time.monotonic() - began)
        time.sleep(0.05)
    slow.join()
    assert answers == [200]
    assert quick and max(quick) < 0.5, quick


def test_upsell_run_is_recorded_with_trigger_cli(admin: Admin, cli_env: Path) -> None:
    done = run("run", "-w", cli_env, "--as-of", "2026-04-22", "--dry-run")
    assert done.exit_code == 0, done.output
    assert "offers decided (dry run" in done.stderr
    latest = admin.ok("/runs", limit=1)
    (recorded,) = latest["runs"]
    assert (recorded["trigger"], recorded["status"], recorded["as_of"]) == (
        "cli",
        "succeeded",
        "2026-04-22",
    )
    assert recorded["summary"]["dry_run"] is True
    if latest["next_cursor"] is not None:
        older = admin.ok("/runs", limit=1, cursor=latest["next_cursor"])["runs"]
        assert older[0]["run_id"] < recorded["run_id"]
