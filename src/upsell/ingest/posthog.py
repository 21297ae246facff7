"""PostHog's capture API payloads (``/batch/``, ``/capture/``, ``/i/v0/e/``) as `Message`s
(docs/service.md, "PostHog").

- Every event needs a ``distinct_id``, at the top level or in ``properties``; its ``uuid`` is the
  message id (derived from the content when absent).
- ``$identify`` (``$set``, ``$set_once``, ``$anon_distinct_id``), ``$set`` and ``$set_once`` are
  identify calls; an event's own ``properties.$set`` is one too, before the event.
- ``$groupidentify`` (``$group_type``, ``$group_key``, ``$group_set``) is a group call; an event's
  ``properties.$groups`` names its account. With a group type configured, only that type's groups
  are accounts; without one, an event's first group is.
- ``$create_alias``: ``distinct_id`` now means ``properties.alias``.
- ``$pageview`` and ``$screen`` are stored as ``Page Viewed`` (``url`` from ``$current_url``) and
  ``Screen Viewed`` (``name`` from ``$screen_name``); other events under their own names.
  PostHog's own ``$`` properties are not stored with the events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
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

#: PostHog's own client's limits (posthog-python: 900 KiB per event, 5 MiB per batch), so that a
#: batch its client sends is never refused for its size.
MAX_EVENT_BYTES = 900 * 1024
MAX_BODY_BYTES = 5 * 1024 * 1024

_IDENTIFY = ("$identify", "$set", "$set_once")


def _timestamp(item: dict[str, Any], where: str, clock: Clock) -> datetime:
    at = instant(item.get("timestamp"), f"{where}.timestamp")
    if at is None:
        offset = item.get("offset")  # posthog-js: milliseconds before the request was sent
        if offset is not None and (
            isinstance(offset, bool)
            or not isinstance(offset, int | float)
            or not 0 <= offset < 2**40  # NaN fails too
        ):
            raise MessageError(
                f"{where}.offset: expected milliseconds from 0 to 2**40, got {offset!r}"[:200]
            )
        at = clock.now - timedelta(milliseconds=offset or 0)
    clock.check(at, f"{where}.timestamp")
    return at


def _account(groups: dict[str, Any], group_type: str | None, where: str) -> str | None:
    if group_type is not None:
        return ident(groups.get(group_type), f"{where}.properties.$groups.{group_type}")
    for name, key in groups.items():
        return ident(key, f"{where}.properties.$groups.{name}")
    return None


def parse_event(item: Any, where: str, clock: Clock, group_type: str | None) -> list[Message]:
    """One captured event as the messages it stands for (none for a group of another type)."""
    if not isinstance(item, dict):
        raise MessageError(f"{where}: expected an object, got {type(item).__name__}")
    event = text(item.get("event"), f"{where}.event")
    if event is None:
        raise MessageError(f"{where}.event: required")
    props = obj(item.get("properties"), f"{where}.properties")
    who = ident(item.get("distinct_id", props.get("distinct_id")), f"{where}.distinct_id")
    if who is None:
        raise MessageError(f"{where}.distinct_id: required (at the top level or in properties)")
    mid = ident(item.get("uuid"), f"{where}.uuid") or derived_id(item)
    at = _timestamp(item, where, clock)
    if event == "$groupidentify":
        kind = ident(props.get("$group_type"), f"{where}.properties.$group_type")
        key = ident(props.get("$group_key"), f"{where}.properties.$group_key")
        if key is None:
            raise MessageError(f"{where}.properties.$group_key: required in $groupidentify")
        if group_type is not None and kind != group_type:
            return []
        traits = obj(props.get("$group_set"), f"{where}.properties.$group_set")
        return [Message("group", mid, at, who, traits=traits, group_id=key)]
    if event == "$create_alias":
        alias = ident(props.get("alias"), f"{where}.properties.alias")
        if alias is None:
            raise MessageError(f"{where}.properties.alias: required in $create_alias")
        return [Message("alias", mid, at, user_id=alias, previous_id=who)]
    messages: list[Message] = []
    anon = ident(props.get("$anon_distinct_id"), f"{where}.properties.$anon_distinct_id")
    for name, once in (("$set", False), ("$set_once", True)):
        traits = obj(item.get(name, props.get(name)), f"{where}.{name}")
        if traits or event == name or (event == "$identify" and not once):
            identify = Message("identify", f"{mid}{name}", at, who, anon, traits=traits)
            identify.set_once = once
            messages.append(identify)
    if event in _IDENTIFY:
        return messages
    groups = obj(props.get("$groups"), f"{where}.properties.$groups")
    properties = {k: v for k, v in props.items() if not k.startswith("$") and k != "token"}
    properties.pop("distinct_id", None)
    if event == "$pageview":
        if isinstance(props.get("$current_url"), str):
            properties.setdefault("url", props["$current_url"])
        event = page_event("page", None, None, properties)
    elif event == "$screen":
        screen = text(props.get("$screen_name"), f"{where}.properties.$screen_name")
        event = page_event("screen", screen, None, properties)
    account = _account(groups, group_type, where)
    messages.append(Message("track", mid, at, who, None, event, properties, group_id=account))
    return messages


def parse_body(body: Any, clock: Clock, body_bytes: int, group_type: str | None) -> list[Message]:
    """A capture body: ``{"batch": [...]}``, an array of events, or one event."""
    if isinstance(body, dict) and "batch" in body:
        items, where = body["batch"], "batch"
        if not isinstance(items, list):
            raise MessageError(f"batch: expected an array of events, got {type(items).__name__}")
    elif isinstance(body, list):
        items, where = body, "body"
    elif isinstance(body, dict):
        items, where = [body], "body"
    else:
        raise MessageError(f"body: expected a JSON object or array, got {type(body).__name__}")
    if len(items) > MAX_BATCH_MESSAGES:
        raise TooLarge(
            f"{where}: {len(items):,} events; a batch may hold at most {MAX_BATCH_MESSAGES:,}"
        )
    check_sizes(items, body_bytes, where, MAX_EVENT_BYTES)
    if isinstance(body, dict):
        sent = instant(body.get("sent_at"), "sent_at")
        if sent is not None:
            clock.check_sent(sent, "sent_at")
    messages: list[Message] = []
    for i, item in enumerate(items):
        name = f"{where}[{i}]" if where == "batch" or isinstance(body, list) else where
        messages.extend(parse_event(item, name, clock, group_type))
    return messages


def api_key(body: Any) -> str | None:
    """The project key: ``api_key`` or ``token`` in the body, else in the first event (or its
    properties, as posthog-js sends it)."""
    first = body
    if isinstance(body, dict) and isinstance(body.get("batch"), list) and body["batch"]:
        first = body["batch"][0]
    elif isinstance(body, list) and body:
        first = body[0]
    for where in (body, first, first.get("properties") if isinstance(first, dict) else None):
        if isinstance(where, dict):
            for name in ("api_key", "token"):
                key = where.get(name)
                if isinstance(key, str) and key:
                    return key
    return None
