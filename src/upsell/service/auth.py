"""Who is calling: the API key of a request, checked against the workspace's keys (docs/service.md).

Write keys come as HTTP Basic user names with an empty password (Segment), or in the body
(Segment's ``writeKey``, PostHog's ``api_key``); admin tokens as ``Authorization: Bearer``. A
missing, unknown or revoked key is 401; a key of the wrong kind is 403. Checked keys are remembered
for `TTL` seconds, so a revocation reaches a running server within that time.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Collection

import sqlalchemy as sa
from fastapi import Request

from upsell.service.errors import ApiError
from upsell.store.keys import ApiKey, KeyKind, verify_key

TTL = 5.0


class Keys:
    """The key check of one server, with a short memory of the keys it checked."""

    def __init__(self, db: sa.Engine, ttl: float = TTL) -> None:
        self.db = db
        self.ttl = ttl
        self._seen: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, text: str) -> ApiKey | None:
        now = time.monotonic()
        with self._lock:
            hit = self._seen.get(text)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with self.db.connect() as conn:
            key = verify_key(conn=conn, text=text)
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[text] = (now, key)
        return key

    def check(self, text: str | None, kinds: Collection[KeyKind], *, what: str) -> ApiKey:
        """The key `text` if it is active and one of `kinds`; ApiError 401/403 otherwise. `what`
        names the call for the message (``Segment ingestion``)."""
        allowed = " or ".join(kinds)
        if not text:
            raise ApiError(
                401,
                "unauthorized",
                f"{what} needs a {allowed} key; make one with `upsell keys create --kind "
                f"{next(iter(kinds))}`",
                headers={"WWW-Authenticate": 'Basic realm="upsell"'},
            )
        key = self.lookup(text)
        if key is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key")
        if key.kind not in kinds:
            raise ApiError(
                403, "forbidden", f"a {key.kind} key cannot call {what}: it needs a {allowed} key"
            )
        return key


def keys(request: Request) -> Keys:
    found: Keys = request.app.state.keys
    return found


def basic_user(request: Request) -> str | None:
    """The user name of ``Authorization: Basic`` (Segment's write key), or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "bad_request", "Authorization: Basic is not valid base64") from None
    return decoded.partition(":")[0] or None


def bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer``, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def require_admin(request: Request) -> ApiKey:
    """A dependency: the request's admin token (``Authorization: Bearer``)."""
    admin: tuple[KeyKind, ...] = ("admin",)
    return keys(request).check(bearer(request), admin, what="the admin API")
