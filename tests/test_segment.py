"""Segment-compatible ingestion on a live `upsell serve` (docs/service.md, "Segment"), on SQLite and
PostgreSQL: the official `segment-analytics-python` client, every kind of bad input, gzip, limits."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from segment.analytics.client import Client
from segment.analytics.request import APIError

from conftest import Served


def store(served: Served) -> sa.Engine:
    """The served workspace's database."""
    return sa.create_engine(served.store_url)


def query(served: Served, sql: str) -> list[tuple[Any, ...]]:
    engine = store(served)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def stored_ids(served: Served) -> list[str]:
    return [
        r[0]
        for r in query(
            served, "SELECT message_id FROM events UNION ALL SELECT message_id FROM pending_events"
        )
    ]


def client(served: Served, **kw: Any) -> Client:
    return Client(served.write_key, host=served.url, sync_mode=True, max_retries=0, **kw)


def now() -> str:
    return datetime.now(UTC).isoformat()


def post(served: Served, path: str, body: Any, **kw: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **kw.pop("headers", {})}
    auth = kw.pop("auth", (served.write_key, ""))
    return httpx.post(served.url + path, content=content, headers=headers, auth=auth, **kw)


def test_the_official_client_sends_calls_that_are_stored_and_attributed(served: Served) -> None:
    analytics = client(served)
    analytics.track("u1", "Feature Used", {"feature": "reports"}, message_id="t1")
    assert query(served, "SELECT message_id, user_id FROM pending_events") == [("t1", "u1")]
    analytics.identify("u1", {"email": "ann@acme.io", "language": "nl"})
    analytics.group("u1", "acme", {"name": "Acme", "seats": 23, "industry": "Retail"})
    analytics.page("u1", "Docs", "Pricing", {"url": "https://acme.io/pricing"}, message_id="p1")
    analytics.screen("u1", name="Home", message_id="s1")
    analytics.track(anonymous_id="anon-7", event="Signed Up", message_id="t2")
    analytics.alias("anon-7", "u1")
    rows = query(served, "SELECT message_id, account_id, user_id, event, properties FROM events")
    found = {
        r[0]: (r[1], r[2], r[3], json.loads(r[4]) if isinstance(r[4], str) else r[4]) for r in rows
    }
    assert found == {
        "t1": ("acme", "u1", "Feature Used", {"feature": "reports"}),
        "p1": (
            "acme",
            "u1",
            "Page Viewed",
            {"url": "https://acme.io/pricing", "name": "Pricing", "category": "Docs"},
        ),
        "s1": ("acme", "u1", "Screen Viewed", {"name": "Home"}),
        "t2": ("acme", "u1", "Signed Up", {}),
    }
    assert query(served, "SELECT count(*) FROM pending_events") == [(0,)]
    assert query(served, "SELECT user_id, account_id, email, language FROM identities") == [
        ("u1", "acme", "ann@acme.io", "nl")
    ]
    assert query(served, "SELECT name, industry FROM accounts WHERE account_id = 'acme'") == [
        ("Acme", "Retail")
    ]
    assert query(served, "SELECT alias, user_id FROM aliases") == [("anon-7", "u1")]
    scraped = httpx.get(f"{served.url}/metrics").text
    assert 'upsell_events_ingested_total{source="segment"} 4.0' in scraped


def test_gzip_batches_and_the_body_write_key_are_accepted_and_duplicates_stored_once(
    served: Served,
) -> None:
    client(served, gzip=True).track(
        "u1", "Feature Used", context={"groupId": "acme"}, message_id="m1"
    )
    items = [
        {
            "type": "track",
            "userId": "u2",
            "event": "A",
            "messageId": "m2",
            "anonymousId": None,
            "integrations": {},
            "timestamp": now(),
        },
        {"type": "track", "userId": "u2", "event": "A", "timestamp": "2026-01-01T00:00:00"},
    ]
    body = {"batch": items, "context": {"groupId": "beta"}, "writeKey": served.write_key}
    for _ in range(2):
        answer = post(
            served,
            "/v1/batch",
            gzip.compress(json.dumps(body).encode()),
            auth=None,
            headers={"content-encoding": "gzip"},
        )
        assert (answer.status_code, answer.json()) == (200, {"success": True})
    ids = sorted(stored_ids(served))
    assert len(ids) == 3 and ids[:2] == ["m1", "m2"] and ids[2].startswith("sha256:")
    assert query(served, "SELECT DISTINCT account_id FROM events ORDER BY 1") == [
        ("acme",),
        ("beta",),
    ]


def _batch(n: int, **item: Any) -> dict[str, Any]:
    one = {"type": "track", "userId": "u", "event": "E", **item}
    return {"batch": [{**one, "messageId": f"m{i}"} for i in range(n)]}


FUTURE = (datetime.now(UTC) + timedelta(days=3)).isoformat()
BAD: list[tuple[str, str, Any, dict[str, str], str, str]] = [
    ("malformed JSON", "/v1/batch", b'{"batch": [', {}, "invalid_json", "not valid JSON"),
    ("bad UTF-8", "/v1/track", b'{"userId": "\xff"}', {}, "invalid_utf8", "byte 0xff"),
    ("bad gzip", "/v1/batch", b"not gzip", {"content-encoding": "gzip"}, "invalid_gzip", "gzip"),
    (
        "NaN",
        "/v1/track",
        b'{"userId": "u", "event": "E", "properties": {"x": NaN}}',
        {},
        "invalid_json",
        "not valid JSON",
    ),
    ("not an object", "/v1/batch", [1], {}, "invalid_message", "body: expected a JSON object"),
    (
        "no batch array",
        "/v1/batch",
        {"batch": {}},
        {},
        "invalid_message",
        "batch: expected an array",
    ),
    (
        "wrong type",
        "/v1/track",
        {"userId": {"a": 1}, "event": "E"},
        {},
        "invalid_message",
        "body.userId: expected a string, got an object",
    ),
    (
        "wrong properties",
        "/v1/batch",
        _batch(2, properties=[1]),
        {},
        "invalid_message",
        "batch[0].properties: expected an object",
    ),
    (
        "missing ids",
        "/v1/track",
        {"event": "E"},
        {},
        "invalid_message",
        "needs a userId or an anonymousId",
    ),
    ("missing event", "/v1/track", {"userId": "u"}, {}, "invalid_message", "body.event: required"),
    (
        "missing groupId",
        "/v1/group",
        {"userId": "u"},
        {},
        "invalid_message",
        "body.groupId: required",
    ),
    ("alias without previousId", "/v1/alias", {"userId": "u"}, {}, "invalid_message", "previousId"),
    (
        "unknown type",
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "userId": "u", "event": "E"},
                {"type": "bogus", "userId": "u"},
            ]
        },
        {},
        "invalid_message",
        "batch[1].type: unknown type 'bogus'",
    ),
    (
        "no type",
        "/v1/batch",
        {"batch": [{"userId": "u"}]},
        {},
        "invalid_message",
        "batch[0].type: required",
    ),
    (
        "bad timestamp",
        "/v1/track",
        {"userId": "u", "event": "E", "timestamp": "yesterday"},
        {},
        "invalid_message",
        "body.timestamp: not an ISO-8601 timestamp",
    ),
    (
        "clock skew",
        "/v1/batch",
        _batch(1, timestamp=FUTURE),
        {},
        "clock_skew",
        "more than 24 hours ahead of the server's clock",
    ),
    (
        "sentAt skew",
        "/v1/batch",
        {**_batch(1), "sentAt": "2020-01-01T00:00:00Z"},
        {},
        "clock_skew",
        "sentAt: 2020-01-01T00:00:00+00:00 is",
    ),
    ("too many", "/v1/batch", _batch(2501), {}, "too_large", "at most 2,500"),
    (
        "message over 32 KB",
        "/v1/batch",
        _batch(2, properties={"x": "y" * 33_000}),
        {},
        "too_large",
        "batch[0]: ",
    ),
    (
        "call over 32 KB",
        "/v1/track",
        {"userId": "u", "event": "E", "properties": {"x": "y" * 33_000}},
        {},
        "too_large",
        "over 32 KB",
    ),
    (
        "body over 500 KB",
        "/v1/batch",
        _batch(30, properties={"x": "y" * 20_000}),
        {},
        "too_large",
        "over 500 KB",
    ),
]


BAD += [
    (
        "a number past a float, in a message",
        "/v1/track",
        b'{"userId": "u", "event": "E", "properties": {"x": -1e999}}',
        {},
        "invalid_json",
        "body.properties.x: a number too large to store",
    ),
    (
        "a number past a float, in a batch after an account is known",
        "/v1/batch",
        b'{"batch": [{"type": "group", "userId": "u", "groupId": "g"}, '
        b'{"type": "track", "userId": "u", "event": "E", "properties": {"x": 1'
        + b"0" * 400
        + b".5}}]}",
        {},
        "invalid_json",
        "body.batch[1].properties.x: a number too large to store",
    ),
]


def test_bad_input_is_a_clear_400_and_stores_nothing(served: Served) -> None:
    for name, path, body, headers, code, message in BAD:
        answer = post(served, path, body, headers=headers)
        assert answer.status_code == 400, (name, answer.text)
        found = answer.json()
        assert found["code"] == code and message in found["message"], (name, found)
    bomb = gzip.compress(json.dumps({"batch": [], "pad": "x" * 2_000_000}).encode())
    answer = post(served, "/v1/batch", bomb, headers={"content-encoding": "gzip"})
    assert answer.status_code == 400
    assert "decompressed body is over 500 KB" in answer.json()["message"]
    assert stored_ids(served) == []
    assert httpx.get(served.url + "/healthz").status_code == 200
    # One bad message in a batch: none of it is stored; fixed, all of it is.
    batch = _batch(3)
    batch["batch"][2]["userId"] = True
    answer = post(served, "/v1/batch", batch)
    assert answer.status_code == 400 and "batch[2].userId" in answer.json()["message"]
    assert stored_ids(served) == []
    batch["batch"][2]["userId"] = "u"
    assert post(served, "/v1/batch", batch).status_code == 200
    assert sorted(stored_ids(served)) == ["m0", "m1", "m2"]

    # Among concurrent requests (stored together, several to a transaction), a bad one is refused
    # alone, and each good one is stored exactly once and counted once in /metrics.
    sent: list[str] = []

    def send(worker: int) -> list[int]:
        statuses = []
        with httpx.Client(auth=(served.write_key, "")) as http:
            for n in range(5):
                body = _batch(20)
                for item in body["batch"]:
                    item["messageId"] = f"w{worker}-{n}-{item['messageId']}"
                    if worker == 3 and n == 2:
                        item["userId"] = True
                answer = http.post(served.url + "/v1/batch", content=json.dumps(body).encode())
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    sent.extend(item["messageId"] for item in body["batch"])
        return statuses

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for found in pool.map(send, range(8)) for s in found]
    assert sorted(statuses) == [200] * 39 + [400]
    assert sorted(stored_ids(served)) == sorted(["m0", "m1", "m2", *sent]) and len(sent) == 780
    metrics = httpx.get(served.url + "/metrics").text
    assert 'upsell_events_ingested_total{source="segment"} 783.0' in metrics


def test_keys_are_checked(served: Served) -> None:
    body = {"userId": "u", "event": "E"}
    missing = post(served, "/v1/track", body, auth=None)
    assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
    assert post(served, "/v1/track", body, auth=("usw_nope_nope", "")).status_code == 401
    wrong = post(served, "/v1/track", body, auth=(served.admin_key, ""))
    assert wrong.status_code == 403 and "needs a write key" in wrong.json()["message"]
    assert (
        post(served, "/v1/track", {**body, "writeKey": served.write_key}, auth=None).status_code
        == 200
    )
    with pytest.raises(APIError) as refused:
        Client("usw_nope_nope", host=served.url, sync_mode=True, max_retries=0).track("u", "E")
    assert refused.value.status == 401
    spec = httpx.get(served.url + "/openapi.json").json()
    body = spec["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert "batch" in body["schema"]["properties"]
