"""PostHog's capture API (docs/service.md, "PostHog"): ``POST /batch/``, ``/capture/`` and
``/i/v0/e/``, with the project key (an upsell write key) in the body.

PostHog's clients count only an exact 200 as success and do not read its body; upsell answers
``{"status": 1}`` as PostHog does, after the request is committed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from upsell.ingest import posthog
from upsell.ingest.messages import Clock, Message
from upsell.service.intake import receive
from upsell.workspace import Workspace

router = APIRouter(tags=["PostHog"])

WHAT = "PostHog capture"
_EVENT = {
    "type": "object",
    "required": ["event"],
    "properties": {
        "event": {
            "type": "string",
            "description": "$identify, $set, $groupidentify, $create_alias, $pageview, or any",
        },
        "distinct_id": {"type": "string", "description": "here or in properties"},
        "properties": {
            "type": "object",
            "additionalProperties": True,
            "properties": {
                "$groups": {"type": "object", "description": "group type → key: the account"},
                "$set": {"type": "object"},
            },
        },
        "uuid": {"type": "string", "description": "de-duplication key"},
        "timestamp": {"type": "string", "format": "date-time"},
        "api_key": {"type": "string"},
    },
    "additionalProperties": True,
}
_BODY = {
    "requestBody": {
        "required": True,
        "description": "One event, an array of events, or {api_key, batch: [...], sent_at}; "
        "JSON, optionally gzip; at most 5 MB",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {
                                "api_key": {"type": "string"},
                                "batch": {"type": "array", "items": _EVENT},
                                "sent_at": {"type": "string", "format": "date-time"},
                            },
                        },
                        {"type": "array", "items": _EVENT},
                        _EVENT,
                    ]
                }
            }
        },
    }
}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Stored (committed)",
        "content": {"application/json": {"example": {"status": 1}}},
    },
    400: {"description": "Invalid body, over a limit, or clock skew: `{code, message}`"},
    401: {"description": "No, unknown or revoked write key"},
    403: {"description": "Not a write key"},
}


async def _capture(request: Request) -> dict[str, int]:
    """PostHog events, stored all or none."""
    ws: Workspace = request.app.state.workspace
    group_type = ws.settings.service_posthog_group_type

    def parse(body: Any, clock: Clock, size: int) -> list[Message]:
        return posthog.parse_body(body, clock, size, group_type)

    await receive(
        request,
        source="posthog",
        key=posthog.api_key,
        parse=parse,
        what=WHAT,
        limit=posthog.MAX_BODY_BYTES,
    )
    return {"status": 1}


for _path, _summary in (
    ("/batch/", "PostHog batch"),
    ("/capture/", "PostHog capture"),
    ("/i/v0/e/", "PostHog capture (posthog-js)"),
):
    router.post(_path, responses=_ANSWERS, openapi_extra=_BODY, summary=_summary)(_capture)
