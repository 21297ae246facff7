"""Segment's HTTP tracking API (docs/service.md, "Segment"): ``POST /v1/track``, ``/v1/identify``,
``/v1/group``, ``/v1/page``, ``/v1/screen``, ``/v1/alias`` and ``/v1/batch``.

The write key is the HTTP Basic user name (empty password) or ``writeKey`` in the body. A request
is stored whole or not at all; ``{"success": true}`` means it is committed.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request

from upsell.ingest import segment
from upsell.ingest.messages import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, Clock, Message
from upsell.service.intake import receive

router = APIRouter(tags=["Segment"])

WHAT = "Segment ingestion"
_ID = {"type": ["string", "null"]}
_OBJECT = {"type": ["object", "null"], "additionalProperties": True}
_MESSAGE = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": list(segment.TYPES), "description": "in a batch"},
        "userId": _ID,
        "anonymousId": _ID,
        "messageId": {**_ID, "description": "de-duplication key; derived when absent"},
        "timestamp": {"type": ["string", "null"], "format": "date-time"},
        "event": {"type": "string", "description": "track"},
        "name": {"type": "string", "description": "page, screen"},
        "properties": _OBJECT,
        "traits": {**_OBJECT, "description": "identify (email, language), group (name, seats…)"},
        "groupId": {"type": "string", "description": "group: the account"},
        "previousId": {"type": "string", "description": "alias"},
        "context": {
            **_OBJECT,
            "properties": {"groupId": {"type": "string", "description": "the event's account"}},
        },
        "integrations": _OBJECT,
        "writeKey": {"type": "string"},
    },
    "additionalProperties": True,
}
_BATCH = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "items": _MESSAGE, "maxItems": 2500},
        "context": _OBJECT,
        "sentAt": {"type": "string", "format": "date-time"},
        "writeKey": {"type": "string"},
    },
}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Stored (committed)",
        "content": {"application/json": {"example": {"success": True}}},
    },
    400: {"description": "Invalid body, over a limit, or clock skew: `{code, message}`"},
    401: {"description": "No, unknown or revoked write key"},
    403: {"description": "Not a write key"},
}


def _body(schema: dict[str, Any], limit: int) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": f"JSON, optionally with Content-Encoding: gzip; at most {limit // 1024} KB",
            "content": {"application/json": {"schema": schema}},
        }
    }


def _call(kind: str, body: Any, clock: Clock, size: int) -> list[Message]:
    return segment.parse_call(kind, body, clock)[0]


def _batch(body: Any, clock: Clock, size: int) -> list[Message]:
    return segment.parse_batch(body, clock, size)[0]


def _key(body: Any) -> str | None:
    return segment.write_key(body) if isinstance(body, dict) else None


@router.post(
    "/v1/batch",
    responses=_ANSWERS,
    openapi_extra=_body(_BATCH, MAX_BATCH_BYTES),
    summary="Segment batch",
)
async def batch(request: Request) -> dict[str, bool]:
    """Up to 2,500 messages (500 KB) of any type, stored all or none."""
    await receive(
        request, source="segment", key=_key, parse=_batch, what=WHAT, limit=MAX_BATCH_BYTES
    )
    return {"success": True}


def _route(kind: str) -> None:
    async def call(request: Request) -> dict[str, bool]:
        parse = partial(_call, kind)
        await receive(
            request, source="segment", key=_key, parse=parse, what=WHAT, limit=MAX_MESSAGE_BYTES
        )
        return {"success": True}

    call.__name__ = kind
    call.__doc__ = f"One Segment {kind} call (at most 32 KB)."
    router.post(
        f"/v1/{kind}",
        responses=_ANSWERS,
        openapi_extra=_body(_MESSAGE, MAX_MESSAGE_BYTES),
        summary=f"Segment {kind}",
    )(call)


for _kind in ("track", "identify", "group", "page", "screen", "alias"):
    _route(_kind)
