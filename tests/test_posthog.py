"""PostHog-compatible capture on a live `upsell serve` (docs/service.md, "PostHog"), on SQLite and
PostgreSQL: the official `posthog` client, the shapes posthog-js sends, bad input."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
from posthog import Posthog

from conftest import Served
from test_segment import query, stored_ids


def capture(served: Served, path: str, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        served.url + path,
        content=content,
        headers={"content-type": "application/json", **headers},
    )


def props(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_the_official_client_captures_identifies_and_groups(served: Served) -> None:
    failures: list[Any] = []
    client = Posthog(
        served.write_key,
        host=served.url,
        sync_mode=True,
        on_error=lambda error, batch: failures.append(error),
    )
    client.capture(
        "Feature Used",
        distinct_id="u1",
        properties={"feature": "api"},
        uuid="00000000-0000-4000-8000-000000000001",
    )
    assert query(served, "SELECT user_id FROM pending_events") == [("u1",)]
    client.set(distinct_id="u1", properties={"email": "bo@acme.io", "language": "de"})
    client.group_identify("company", "acme", {"name": "Acme", "seats": 9}, distinct_id="u1")
    client.capture(
        "Feature Used",
        distinct_id="u2",
        groups={"company": "beta"},
        uuid="00000000-0000-4000-8000-000000000002",
    )
    client.capture(
        "$pageview",
        distinct_id="u1",
        properties={"$current_url": "https://acme.io/pricing"},
        uuid="00000000-0000-4000-8000-000000000003",
    )
    client.capture(
        "$identify",
        distinct_id="u3",
        properties={"$set": {"email": "cy@beta.io"}, "$anon_distinct_id": "anon-3"},
    )
    client.alias(previous_id="anon-4", distinct_id="u3")
    client.group_identify("company", "beta", {"name": "Beta"}, distinct_id="u3")
    client.capture(
        "Offer Viewed",
        distinct_id="anon-4",
        properties={"offer_id": "o1"},
        uuid="00000000-0000-4000-8000-000000000004",
    )
    client.shutdown()
    assert failures == []
    rows = query(served, "SELECT message_id, account_id, user_id, event, properties FROM events")
    found = {r[0][-1]: (r[1], r[2], r[3], props(r[4])) for r in rows}
    assert found == {
        "1": ("acme", "u1", "Feature Used", {"feature": "api"}),
        "2": ("beta", "u2", "Feature Used", {}),
        "3": ("acme", "u1", "Page Viewed", {"url": "https://acme.io/pricing"}),
        "4": ("beta", "u3", "Offer Viewed", {"offer_id": "o1"}),
    }
    assert query(
        served, "SELECT user_id, account_id, email, language FROM identities ORDER BY 1"
    ) == [
        ("u1", "acme", "bo@acme.io", "de"),
        ("u3", "beta", "cy@beta.io", None),
    ]
    assert query(served, "SELECT alias, user_id FROM aliases ORDER BY 1") == [
        ("anon-3", "u3"),
        ("anon-4", "u3"),
    ]
    assert query(served, "SELECT name FROM accounts ORDER BY 1") == [("Acme",), ("Beta",)]


def test_the_shapes_posthog_js_sends_and_bad_input(served: Served) -> None:
    key = served.write_key
    event = {
        "event": "Clicked",
        "properties": {"distinct_id": "u1", "token": key, "$groups": {"company": "acme"}},
    }
    for path, body, headers in [
        ("/i/v0/e/", [event, {**event, "uuid": "e2"}], {}),
        ("/capture/", {**event, "uuid": "e3", "api_key": key}, {}),
        (
            "/batch/",
            gzip.compress(
                json.dumps({"api_key": key, "batch": [{**event, "uuid": "e4"}]}).encode()
            ),
            {"content-encoding": "gzip"},
        ),
    ]:
        answer = capture(served, path, body, **headers)
        assert (answer.status_code, answer.json()) == (200, {"status": 1}), answer.text
    assert len(stored_ids(served)) == 4
    assert capture(served, "/i/v0/e/", [event]).status_code == 200  # the same event again
    assert len(stored_ids(served)) == 4
    bad = [
        ({"api_key": key, "batch": [{"event": "E"}]}, "batch[0].distinct_id: required"),
        ({"api_key": key, "batch": [{"distinct_id": "u"}]}, "batch[0].event: required"),
        (
            {"api_key": key, "event": "E", "distinct_id": ["u"]},
            "body.distinct_id: expected a string",
        ),
        (
            {"api_key": key, "event": "E", "distinct_id": "u", "timestamp": "2999-01-01T00:00:00Z"},
            "ahead of the server's clock",
        ),
        ({"api_key": key, "batch": {}}, "batch: expected an array"),
        (
            {"api_key": key, "batch": [{"event": "E", "distinct_id": "u", "offset": 10**20}]},
            "batch[0].offset: expected milliseconds",
        ),
        (
            {"api_key": key, "batch": [{"event": "E", "distinct_id": "u", "offset": "x"}]},
            "batch[0].offset: expected milliseconds",
        ),
    ]
    for body, message in bad:
        answer = capture(served, "/batch/", body)
        assert answer.status_code == 400 and message in answer.json()["message"], answer.text
    assert capture(served, "/batch/", b"{oops").json()["code"] == "invalid_json"
    huge = f'{{"api_key": "{key}", "event": "E", "distinct_id": "u", "properties": {{"x": 1e400}}}}'
    answer = capture(served, "/batch/", huge.encode())
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "code": "invalid_json",
        "message": "body.properties.x: a number too large to store (over 1.8e308)",
    }
    assert capture(served, "/batch/", {"batch": [event | {"properties": {}}]}).status_code == 401
    assert capture(served, "/batch/", {"api_key": served.admin_key, "batch": []}).status_code == 403
    assert len(stored_ids(served)) == 4
