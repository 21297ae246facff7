"""One message of live product data, whichever door it came through (Segment, PostHog, a file).

`segment.py` and `posthog.py` turn their payloads into `Message`s; `live.py` stores a list of
them in one transaction, resolving who each event's account is. The helpers here check one value
of a payload and raise `MessageError` naming where it is (``batch[3].userId``) and what is wrong.

Page and screen calls are stored as track events named ``Page Viewed`` and ``Screen Viewed``
(PostHog's ``$pageview`` and ``$screen`` too), with the page's ``name``, ``category`` and ``url``
among their properties, so that signals can count them like any other event.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pydantic_core

Kind = Literal["track", "identify", "group", "alias"]

PAGE_VIEWED = "Page Viewed"
SCREEN_VIEWED = "Screen Viewed"

#: Segment's limits, also applied to PostHog: one message, one request body, messages per batch.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2_500


class MessageError(ValueError):
    """A payload is invalid; the message names where (``batch[3].userId``) and what. `code` is
    the word the service answers with."""

    code = "invalid_message"


class TooLarge(MessageError):
    code = "too_large"


class ClockSkew(MessageError):
    code = "clock_skew"


@dataclass(slots=True)
class Message:
    """One normalized call. `timestamp` is aware UTC.

    - track: `event` and `properties` of `user_id` (else `anonymous_id`); `group_id` names the
      account directly when the payload did (Segment's ``context.groupId``, PostHog's ``$groups``).
    - identify: the user's `traits` (``email`` and ``language`` are read into their own columns);
      with `set_once` the traits only fill in what the user has not set yet (PostHog ``$set_once``).
      An identify that carries both a user id and an anonymous id also aliases the anonymous one.
    - group: `user_id` (else `anonymous_id`) belongs to account `group_id`, whose `traits` these are.
    - alias: `previous_id` now means `user_id`.
    """

    kind: Kind
    message_id: str
    timestamp: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    event: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    group_id: str | None = None
    previous_id: str | None = None
    set_once: bool = False

    @property
    def who(self) -> str | None:
        """The id the message's user is known by: the user id, else the anonymous id."""
        return self.user_id or self.anonymous_id


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def ident(value: Any, where: str) -> str | None:
    """An id: a string (a number is taken as its text); None for null or an empty string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if "\x00" in value:
            raise MessageError(f"{where}: contains a NUL character")
        if len(value) > 1024:
            raise MessageError(f"{where}: longer than 1024 characters")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MessageError(f"{where}: expected a string, got {_kind(value)} {_show(value)}")


def text(value: Any, where: str) -> str | None:
    """Free text (an event name); None for null or an empty string."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MessageError(f"{where}: expected a string, got {_kind(value)} {_show(value)}")
    if "\x00" in value:
        raise MessageError(f"{where}: contains a NUL character")
    return value


def obj(value: Any, where: str) -> dict[str, Any]:
    """A JSON object; {} for null."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(f"{where}: expected an object, got {_kind(value)} {_show(value)}")
    return value


def instant(value: Any, where: str) -> datetime | None:
    """An ISO-8601 timestamp as aware UTC (without an offset it is UTC); None for null."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MessageError(
            f"{where}: expected an ISO-8601 timestamp string, got {_kind(value)} {_show(value)}"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MessageError(
            f"{where}: not an ISO-8601 timestamp: {_show(value)} (e.g. 2026-06-01T09:30:00Z)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise MessageError(f"{where}: {_show(value)} is out of range in UTC") from None


def derived_id(item: dict[str, Any]) -> str:
    """The messageId of a message that came without one: a hash of its content, so that the same
    message sent twice is stored once."""
    content = {k: v for k, v in item.items() if k not in ("messageId", "sentAt", "receivedAt")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Clock:
    """The server's `now` and how far ahead of it a timestamp may be (the allowed clock skew)."""

    now: datetime
    max_skew: timedelta | None

    def check(self, at: datetime, where: str) -> None:
        if self.max_skew is not None and at - self.now > self.max_skew:
            hours = self.max_skew.total_seconds() / 3600
            raise ClockSkew(
                f"{where}: {at.isoformat()} is more than {hours:g} hours ahead of the server's "
                f"clock ({self.now.isoformat(timespec='seconds')}); is the sender's clock wrong? "
                "(the window is UPSELL_SERVICE_MAX_CLOCK_SKEW_HOURS)"
            )

    def check_sent(self, sent: datetime, where: str) -> None:
        """A request's own send time (``sentAt``, ``sent_at``) must be within the window."""
        if self.max_skew is not None and abs(sent - self.now) > self.max_skew:
            hours = self.max_skew.total_seconds() / 3600
            off = (sent - self.now).total_seconds() / 3600
            raise ClockSkew(
                f"{where}: {sent.isoformat()} is {abs(off):.1f} hours "
                f"{'ahead of' if off > 0 else 'behind'} the server's clock; upsell accepts up to "
                f"{hours:g} hours (UPSELL_SERVICE_MAX_CLOCK_SKEW_HOURS): is the sender's clock right?"
            )


def check_sizes(
    items: list[Any], body_bytes: int, where: str, limit: int = MAX_MESSAGE_BYTES
) -> None:
    """Every item of a batch is at most `limit` bytes of JSON (measured only when the whole body
    is larger than that)."""
    if body_bytes <= limit:
        return
    for i, item in enumerate(items):
        size = len(pydantic_core.to_json(item))
        if size > limit:
            raise TooLarge(f"{where}[{i}]: {size:,} bytes; a message may be at most {limit:,}")


def no_clock(now: datetime | None = None) -> Clock:
    """No skew check (files are history): `now` fills in missing timestamps."""
    return Clock(now=now or datetime.now(UTC), max_skew=None)


def page_event(kind: str, name: str | None, category: str | None, props: dict[str, Any]) -> str:
    """The event a page or screen call is stored as; its name and category join `props`."""
    if name is not None:
        props.setdefault("name", name)
    if category is not None:
        props.setdefault("category", category)
    return PAGE_VIEWED if kind == "page" else SCREEN_VIEWED


def first_non_finite(value: Any, where: str = "body") -> str | None:
    """Where in a decoded JSON value a number is infinite (``1e400`` decodes to ``inf``), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    if isinstance(value, dict):
        for key, item in value.items():
            found = first_non_finite(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = first_non_finite(item, f"{where}[{i}]")
            if found:
                return found
    return None


def check_finite(value: Any) -> None:
    """MessageError when a decoded JSON value holds a number too large for a float (``1e400``
    decodes to ``inf``, which no JSON column holds). Serializing is the fast test (0.3 ms for 500
    events); only a value whose JSON shows ``Infinity`` is walked to say where."""
    if b"Infinity" in pydantic_core.to_json(value, inf_nan_mode="constants"):
        where = first_non_finite(value)
        if where:
            raise MessageError(f"{where}: a number too large to store (over 1.8e308)")
