"""The webhook and CSM-task channels: a signed JSON POST, retried with exponential backoff.

Each request carries ``Content-Type: application/json``, ``Idempotency-Key`` (the delivery's key:
a receiver drops a key it has already seen, since a retry after a lost response sends it again),
``X-Upsell-Timestamp`` (Unix seconds at the attempt) and, when ``UPSELL_WEBHOOK_SECRET`` is set,
``X-Upsell-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with the secret, of the timestamp, a
dot and the raw body bytes. A receiver verifies it so::

    expected = hmac.new(secret, timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(f"sha256={expected}", request.headers["X-Upsell-Signature"])

over the body exactly as received (before any JSON parsing), and refuses timestamps more than a
few minutes away from its own clock, so that a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from email.message import Message
from typing import Any, Literal
from urllib.parse import urlsplit

from upsell import __version__
from upsell.channels.base import Delivery, Outcome
from upsell.settings import Settings

MAX_WAIT_SECONDS = 60.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would be replayed as a GET without its body: report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(headers: Message | None) -> float | None:
    """A Retry-After header given in seconds, capped at a minute; None when absent or a date."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not seconds >= 0:
        return None
    return min(seconds, MAX_WAIT_SECONDS)


def _describe(error: urllib.error.HTTPError) -> str:
    """``HTTP 400 Bad Request: <the start of the response body>``; the body when it can be read."""
    try:
        body = error.read(1000)
    except (OSError, http.client.HTTPException):
        body = b""
    summary = " ".join(body.decode("utf-8", errors="replace").split())[:200]
    return f"HTTP {error.code} {error.reason}" + (f": {summary}" if summary else "")


class _Poster:
    """POSTs one body to one URL: retries connection errors, timeouts, 429 and 5xx, waiting
    ``backoff * 2**retry`` seconds (a Retry-After in seconds instead, when given; both capped at
    60) up to ``webhook_retries`` times; fails at once on any other status outside 2xx."""

    def __init__(self, url: str | None, settings: Settings, sleep: Callable[[float], None]) -> None:
        self.url = url
        self.settings = settings
        self.sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)

    def problems(self, variable: str) -> list[str]:
        if not self.url:
            return [f"{variable} is not set"]
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return [f"{variable} is not an http(s) URL"]
        return []

    def headers(self, body: bytes, idempotency_key: str) -> dict[str, str]:
        """The headers of one attempt, signed with the current time."""
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"upsell/{__version__}",
            "Idempotency-Key": idempotency_key,
            "X-Upsell-Timestamp": timestamp,
        }
        if self.settings.webhook_secret is not None:
            key = self.settings.webhook_secret.get_secret_value().encode("utf-8")
            digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers["X-Upsell-Signature"] = f"sha256={digest}"
        return headers

    def post(self, body: bytes, idempotency_key: str) -> Outcome:
        assert self.url is not None
        retries = self.settings.webhook_retries
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            request = urllib.request.Request(
                self.url, data=body, headers=self.headers(body, idempotency_key), method="POST"
            )
            try:
                with self._opener.open(request, timeout=self.settings.webhook_timeout) as response:
                    response.read()
                    return Outcome("sent", attempts=attempt, detail=f"HTTP {response.status}")
            except urllib.error.HTTPError as exc:
                with exc:
                    error = _describe(exc)
                    if exc.code != 429 and exc.code < 500:
                        return Outcome("failed", attempts=attempt, detail=error)
                    wait = _retry_after(exc.headers)
            except urllib.error.URLError as exc:
                error = f"connection failed: {exc.reason}"
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt > retries:
                return Outcome("failed", attempts=attempt, detail=error)
            if wait is None:
                wait = min(
                    self.settings.webhook_backoff_seconds * 2 ** (attempt - 1), MAX_WAIT_SECONDS
                )
            self.sleep(wait)


def _body(kind: Literal["decision", "csm_task"], delivery: Delivery) -> bytes:
    """The JSON body: the decision line, under the envelope fields (which win a name clash)."""
    document: dict[str, Any] = {
        **delivery.payload,
        "type": kind,
        "idempotency_key": delivery.idempotency_key,
        "contact_id": delivery.contact_id,
        "account_id": delivery.account_id,
    }
    if kind == "csm_task":
        message: Mapping[str, Any] = delivery.payload["message"]
        document["task"] = {
            "title": message["subject"],
            "talking_points": list(message.get("talking_points") or []),
            "body": message["body"],
        }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


class _Posting(ABC):
    """What the webhook and CSM-task channels share: the checks, the body and the poster."""

    name: str
    kind: Literal["decision", "csm_task"]

    def __init__(self, settings: Settings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._poster = _Poster(self.url(), settings, sleep)

    @abstractmethod
    def url(self) -> str | None:
        """Where this channel POSTs (None: not set up)."""

    @abstractmethod
    def url_variable(self) -> str:
        """The environment variable to name when the URL is missing."""

    def problems(self) -> list[str]:
        return self._poster.problems(self.url_variable())

    def deliver(self, delivery: Delivery) -> Outcome:
        if found := self.problems():
            return Outcome("failed", attempts=0, detail="; ".join(found))
        try:
            body = _body(self.kind, delivery)
        except (KeyError, TypeError, ValueError) as exc:
            return Outcome("failed", attempts=0, detail=f"cannot build the request: {exc!r}")
        return self._poster.post(body, delivery.idempotency_key)


class Webhook(_Posting):
    """POSTs each decision to ``UPSELL_WEBHOOK_URL`` as ``{"type": "decision", ...}`` (see the
    module docstring for the headers and the signature); never raises on a failed delivery."""

    name = "webhook"
    kind = "decision"

    def url(self) -> str | None:
        return self.settings.webhook_url

    def url_variable(self) -> str:
        return "UPSELL_WEBHOOK_URL"


class CsmTask(_Posting):
    """POSTs a task for the account's CSM to ``UPSELL_CSM_TASK_URL`` (``UPSELL_WEBHOOK_URL`` when
    unset) as ``{"type": "csm_task", ..., "task": {"title", "talking_points", "body"}}``, with the
    same headers, signature and retries as the webhook; never raises on a failed delivery."""

    name = "csm_task"
    kind = "csm_task"

    def url(self) -> str | None:
        return self.settings.csm_task_url or self.settings.webhook_url

    def url_variable(self) -> str:
        if self.settings.csm_task_url or self.settings.webhook_url:
            return "UPSELL_CSM_TASK_URL" if self.settings.csm_task_url else "UPSELL_WEBHOOK_URL"
        return "UPSELL_CSM_TASK_URL (or UPSELL_WEBHOOK_URL)"
