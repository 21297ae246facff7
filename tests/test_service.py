"""The service's frame: keys, health, errors (docs/service.md), on a live `upsell serve`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cli_runner import run
from conftest import Served
from upsell.service.auth import Keys
from upsell.service.errors import ApiError
from upsell.store.keys import create_key, revoke_key, verify_key


def test_a_key_is_printed_once_and_only_its_hash_is_stored(db: sa.Engine) -> None:
    with db.begin() as conn:
        key, text = create_key(conn=conn, kind="write", name="segment")
    assert text.startswith(f"usw_{key.key_id}_")
    with db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT * FROM api_keys").mappings().one()
        assert text.split("_")[2] not in json.dumps({k: str(v) for k, v in stored.items()})
        assert verify_key(conn=conn, text=text) == key
        assert verify_key(conn=conn, text=text[:-1] + ("0" if text[-1] != "0" else "1")) is None
        assert verify_key(conn=conn, text="not a key") is None


def test_a_revoked_key_is_refused_and_the_wrong_kind_is_forbidden(db: sa.Engine) -> None:
    with db.begin() as conn:
        _write, write_text = create_key(conn=conn, kind="write")
        admin, admin_text = create_key(conn=conn, kind="admin")
    keys = Keys(db, ttl=0)
    assert keys.check(admin_text, ("admin",), what="the admin API") == admin
    with pytest.raises(ApiError) as wrong_kind:
        keys.check(write_text, ("admin",), what="the admin API")
    assert wrong_kind.value.status == 403
    assert "a write key cannot call the admin API" in wrong_kind.value.message
    with db.begin() as conn:
        assert revoke_key(conn=conn, key_id=admin.key_id) is not None
    with pytest.raises(ApiError) as revoked:
        keys.check(admin_text, ("admin",), what="the admin API")
    assert revoked.value.status == 401
    with pytest.raises(ApiError) as missing:
        keys.check(None, ("write",), what="Segment ingestion")
    assert (
        missing.value.status == 401 and "upsell keys create --kind write" in missing.value.message
    )


def test_the_keys_commands_create_list_and_revoke(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run("init", ws).exit_code == 0
    created = run("keys", "create", "-w", ws, "--kind", "admin", "--name", "ops")
    assert created.exit_code == 0, created.output
    text = created.stdout.strip().splitlines()[0]
    listed = json.loads(run("keys", "list", "-w", ws, "--json").stdout)
    assert [(k["kind"], k["name"], k["revoked_at"]) for k in listed] == [("admin", "ops", None)]
    assert text.split("_")[2] not in json.dumps(listed)
    assert run("keys", "revoke", "-w", ws, listed[0]["key_id"]).exit_code == 0
    assert json.loads(run("keys", "list", "-w", ws, "--json").stdout)[0]["revoked_at"]
    missing = run("keys", "revoke", "-w", ws, "nope")
    assert missing.exit_code == 2 and "no key 'nope'" in missing.output
    bad = run("keys", "create", "-w", ws, "--kind", "root")
    assert bad.exit_code == 2 and "must be one of write, publishable, admin" in bad.output
    with sa.create_engine(f"sqlite:///{ws / 'upsell.db'}").connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM api_keys").scalar_one() == 1
    # Signing secrets: made on first use, the same until rotated.
    first = run("keys", "secret", "-w", ws, "user_token").stdout.strip()
    assert (
        len(first) == 64 and run("keys", "secret", "-w", ws, "user_token").stdout.strip() == first
    )
    rotated = run("keys", "secret", "-w", ws, "user_token", "--rotate").stdout.strip().splitlines()
    assert rotated[0] != first and len(rotated[0]) == 64
    unknown = run("keys", "secret", "-w", ws, "oauth")
    assert unknown.exit_code == 2 and "user_token, checkout" in unknown.output


def test_the_server_is_healthy_ready_and_answers_errors_as_json(served: Served) -> None:
    assert httpx.get(f"{served.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{served.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    missing = httpx.get(f"{served.url}/no/such/route")
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": "Not Found"}
    assert httpx.get(f"{served.url}/openapi.json").json()["info"]["title"] == "upsell"
