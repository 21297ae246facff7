"""Segment's HTTP tracking API payloads (track, identify, group, page, screen, alias, batch) as
`Message`s (docs/service.md, "Segment"; an events file in Segment's shape, docs/data-formats.md).

What Segment's own API accepts is accepted: ids as strings or numbers, explicit nulls
(``"anonymousId": null``, ``"integrations": {}``), a missing messageId (one is derived from the
content), a missing timestamp (``originalTimestamp`` corrected by ``sentAt``, else the time it
arrived). A batch's top-level ``context`` applies to each of its messages (an item's own keys win):
upsell reads ``context.groupId`` from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from upsell.ingest.messages import (
    MAX_BATCH_MESSAGES,
    Clock,
    Message,
    MessageError,
    TooLarge,
    check_sizes,
    derived_id,
    ident,
    instant,
    obj,
    page_event,
    text,
)

#: The calls of Segment's spec, in the order its docs list them.
TYPES = ("identify", "track", "page", "screen", "group", "alias")


def _timestamp(
    item: dict[str, Any], where: str, clock: Clock, sent_at: datetime | None
) -> datetime:
    at = instant(item.get("timestamp"), f"{where}.timestamp")
    if at is None:
        original = instant(item.get("originalTimestamp"), f"{where}.originalTimestamp")
        sent = instant(item.get("sentAt"), f"{where}.sentAt") or sent_at
        if original is None:
            at = clock.now
        elif sent is None:
            at = original
        else:  # Segment's clock-skew correction: the device's offset from the server's clock
            at = clock.now - (sent - original)
    clock.check(at, f"{where}.timestamp")
    return at


def parse_message(
    item: Any,
    where: str,
    clock: Clock,
    *,
    kind: str | None = None,
    default: str | None = None,
    context: dict[str, Any] | None = None,
    sent_at: datetime | None = None,
) -> Message:
    """One call of `kind` (else of its own ``type``, else of `default`) as a Message; MessageError
    naming `where`."""
    if not isinstance(item, dict):
        raise MessageError(f"{where}: expected an object, got {type(item).__name__}")
    if kind is None:
        kind = item.get("type", default)
        if kind is None:
            raise MessageError(f"{where}.type: required in a batch: one of {', '.join(TYPES)}")
        if kind not in TYPES:
            raise MessageError(
                f"{where}.type: unknown type {kind!r}: expected one of {', '.join(TYPES)}"
            )
    user_id = ident(item.get("userId"), f"{where}.userId")
    message_id = ident(item.get("messageId"), f"{where}.messageId") or derived_id(item)
    at = _timestamp(item, where, clock, sent_at)
    if kind == "alias":
        previous = ident(item.get("previousId"), f"{where}.previousId")
        if previous is None or user_id is None:
            missing = "previousId" if previous is None else "userId"
            raise MessageError(f"{where}.{missing}: required in an alias call")
        return Message("alias", message_id, at, user_id=user_id, previous_id=previous)
    anonymous_id = ident(item.get("anonymousId"), f"{where}.anonymousId")
    if user_id is None and anonymous_id is None:
        raise MessageError(f"{where}: needs a userId or an anonymousId")
    if kind == "identify":
        traits = obj(item.get("traits"), f"{where}.traits")
        return Message("identify", message_id, at, user_id, anonymous_id, traits=traits)
    if kind == "group":
        group_id = ident(item.get("groupId"), f"{where}.groupId")
        if group_id is None:
            raise MessageError(f"{where}.groupId: required in a group call")
        traits = obj(item.get("traits"), f"{where}.traits")
        return Message(
            "group", message_id, at, user_id, anonymous_id, traits=traits, group_id=group_id
        )
    own = obj(item.get("context"), f"{where}.context")
    group_id = ident(own.get("groupId", (context or {}).get("groupId")), f"{where}.context.groupId")
    properties = obj(item.get("properties"), f"{where}.properties")
    if kind == "track":
        event = text(item.get("event"), f"{where}.event")
        if event is None:
            raise MessageError(f"{where}.event: required in a track call")
    else:
        properties = dict(properties)
        page = own.get("page")
        url = page.get("url") if kind == "page" and isinstance(page, dict) else None
        if isinstance(url, str) and "url" not in properties:
            properties["url"] = url
        event = page_event(
            kind,
            text(item.get("name"), f"{where}.name"),
            text(item.get("category"), f"{where}.category"),
            properties,
        )
    return Message(
        "track", message_id, at, user_id, anonymous_id, event, properties, group_id=group_id
    )


def parse_batch(body: Any, clock: Clock, body_bytes: int) -> tuple[list[Message], str | None]:
    """A ``/v1/batch`` body: its messages, and its ``writeKey`` if it has one."""
    if not isinstance(body, dict):
        raise MessageError(f"body: expected a JSON object, got {type(body).__name__}")
    items = body.get("batch")
    if not isinstance(items, list):
        got = "nothing" if items is None else type(items).__name__
        raise MessageError(f"batch: expected an array of messages, got {got}")
    if len(items) > MAX_BATCH_MESSAGES:
        raise TooLarge(
            f"batch: {len(items):,} messages; a batch may hold at most {MAX_BATCH_MESSAGES:,}"
        )
    check_sizes(items, body_bytes, "batch")
    context = obj(body.get("context"), "context")
    sent_at = instant(body.get("sentAt"), "sentAt")
    if sent_at is not None:
        clock.check_sent(sent_at, "sentAt")
    messages = [
        parse_message(item, f"batch[{i}]", clock, context=context, sent_at=sent_at)
        for i, item in enumerate(items)
    ]
    return messages, write_key(body)


def parse_call(kind: str, body: Any, clock: Clock) -> tuple[list[Message], str | None]:
    """The body of ``/v1/<kind>``: one message, and its ``writeKey`` if it has one."""
    if not isinstance(body, dict):
        raise MessageError(f"body: expected a JSON object, got {type(body).__name__}")
    sent_at = instant(body.get("sentAt"), "sentAt")
    if sent_at is not None:
        clock.check_sent(sent_at, "sentAt")
    return [parse_message(body, "body", clock, kind=kind, sent_at=sent_at)], write_key(body)


def write_key(body: dict[str, Any]) -> str | None:
    key = body.get("writeKey")
    return key if isinstance(key, str) and key else None


def is_segment_row(values: dict[str, Any]) -> bool:
    """Whether a row of an events file is in Segment's shape rather than upsell's flat one."""
    return "account_id" not in values and any(
        k in values for k in ("type", "userId", "anonymousId", "messageId", "context")
    )
