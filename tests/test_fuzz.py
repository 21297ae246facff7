"""Schemathesis against the live server's OpenAPI description (issue 13, "Security and bad input").

Every operation the server describes at ``/openapi.json`` is fuzzed, so a route added later is
covered without a change here: valid and invalid inputs (schemathesis' positive and negative
modes), each request sent with no key, the admin token or the write key in turn. The server must
answer no 5xx, every 4xx must be JSON ``{"code", "message"}``, and it must still answer afterwards.
Bounded: `EXAMPLES` cases an operation and mode, no shrinking, so a run stays well under a minute.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error

from conftest import Served

EXAMPLES = 25


def errors_are_json(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A 4xx answer is JSON with a `code` and a `message` (docs/service.md, "Errors")."""
    if 400 <= response.status_code < 500:
        body = json.loads(response.content)
        if not (isinstance(body, dict) and {"code", "message"} <= body.keys()):
            raise AssertionError(f"{response.status_code} without code and message: {body!r}")
    return None


def test_no_operation_answers_a_server_error(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    write = base64.b64encode(f"{served.write_key}:".encode()).decode()
    keys = itertools.cycle(
        [{}, {"Authorization": f"Bearer {served.admin_key}"}, {"Authorization": f"Basic {write}"}]
    )
    failures: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations.append(operation.label)
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=2 * EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def fuzz(case: Case) -> None:
            headers: dict[str, Any] = {**(case.headers or {}), **next(keys)}
            response = case.call(base_url=served.url, headers=headers, timeout=30)
            case.validate_response(response, checks=[not_a_server_error, errors_are_json])

        try:
            fuzz()
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # one operation's failure does not hide the next one's
            failures.append(f"{operation.label}: {exc}")
    assert {"GET /healthz", "GET /readyz", "GET /metrics"} <= set(operations)
    assert not failures, "\n\n".join(failures)
    assert httpx.get(f"{served.url}/healthz").status_code == 200
    access = [json.loads(line) for line in served.server.output().splitlines() if line.strip()]
    answered = [line["status"] for line in access if line["logger"] == "upsell.access"]
    assert len(answered) > len(operations) and max(answered) < 500
