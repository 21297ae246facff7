"""The messages API, the in-app widget's door (docs/in-app.md): what to show a user now, and what
the user did with it.

``GET /v1/messages`` and ``POST /v1/messages/{id}/events`` take a publishable key (``key=`` in
the query, so that a browser sends a simple request without a CORS preflight; or HTTP Basic, or
``Authorization: Bearer``), the user's id and, when config.yaml's ``in_app.require_user_token``
is set, the user token that the company's backend signed. Browsers may call them only from
config.yaml's ``in_app.origins`` (or the server's own origin): another origin gets 403, and the
CORS headers name only allowed origins.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from upsell.config.playbooks import PLAYBOOKS_FILE
from upsell.domain.checkout import click_key, click_payload, sign
from upsell.domain.contacts import Contact
from upsell.domain.in_app import WIDGET_EVENTS
from upsell.domain.money import Money, format_money, to_decimal
from upsell.domain.playbooks import Cap, DecisionSettings
from upsell.domain.tokens import valid_user_token
from upsell.errors import UpsellError
from upsell.flows.messages import MessageNotFound, record_event
from upsell.service.auth import basic_user, bearer, keys
from upsell.service.errors import ApiError, error_response
from upsell.service.inbox import Inbox
from upsell.service.intake import decode, read_body
from upsell.store.secrets import signing_secret
from upsell.workspace import Workspace

log = logging.getLogger(__name__)
PUBLISHABLE: tuple[Any, ...] = ("publishable",)
WHAT = "the messages API"
#: Seconds the server keeps playbooks.yaml's caps and the user-token secret before reading them
#: again (a change reaches a running server within that time).
TTL = 5.0
MAX_ID = 255
#: Days a call to action's link stays valid when its message has no expiry.
CLICK_DAYS = 30
MAX_EVENT_BYTES = 8 * 1024
#: The paths whose browser callers config.yaml's ``in_app.origins`` lists.
BROWSER_PATHS = ("/v1/messages", "/v1/offers/")

router = APIRouter(
    prefix="/v1/messages",
    tags=["in-app"],
    responses={
        400: {"description": "A bad parameter or body: `{code, message}` names it"},
        401: {"description": "No publishable key, an unknown or revoked one, or no user token"},
        403: {"description": "Not a publishable key, a user token that does not match, or an "
              "origin config.yaml's in_app.origins does not list"},
    },
)  # fmt: skip


class _Cached:
    """playbooks.yaml's caps and settings (parsed again when the file's content changes), and the
    user-token and checkout secrets (read again every `TTL` seconds), so that a request parses
    nothing. A playbooks.yaml that no longer reads keeps the last good one, with a warning."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self._at = -TTL
        self._stamp: bytes | None = None
        self._caps: tuple[Cap, ...] = ()
        self._secret = ""
        self._checkout_secret = ""
        self._settings = DecisionSettings()

    def _file_stamp(self) -> bytes:
        try:
            return hashlib.sha256((self.ws.folder / PLAYBOOKS_FILE).read_bytes()).digest()
        except OSError:
            return b""

    def _refresh(self) -> None:
        if time.monotonic() - self._at < TTL:
            return
        with self.ws.db.begin() as conn:
            self._secret = signing_secret(conn=conn, purpose="user_token")
            self._checkout_secret = signing_secret(conn=conn, purpose="checkout")
        stamp = self._file_stamp()
        if stamp != self._stamp:
            try:
                playbooks = self.ws.load_playbooks(None).playbooks
            except UpsellError as exc:
                if self._stamp is None:
                    raise
                log.warning("playbooks.yaml changed but does not read; keeping the last: %s", exc)
            else:
                self._caps = playbooks.guardrails.caps
                self._settings = playbooks.settings
            self._stamp = stamp
        self._at = time.monotonic()

    def get(self) -> tuple[tuple[Cap, ...], str]:
        """The caps and the user-token secret."""
        with self._lock:
            self._refresh()
            return self._caps, self._secret

    def checkout(self) -> tuple[str, DecisionSettings]:
        """The checkout secret and playbooks.yaml's settings (the checkout and save URLs)."""
        with self._lock:
            self._refresh()
            return self._checkout_secret, self._settings


def cached(request: Request) -> _Cached:
    return _cached(request.app)


def _cached(app: Any) -> _Cached:
    found: _Cached | None = getattr(app.state, "in_app_cache", None)
    if found is None:
        found = app.state.in_app_cache = _Cached(app.state.workspace)
    return found


def inbox(request: Request) -> Inbox:
    """The server's read model of the in-app messages (`upsell.service.inbox`)."""
    return _inbox(request.app)


def _inbox(app: Any) -> Inbox:
    found: Inbox | None = getattr(app.state, "inbox", None)
    if found is None:
        found = app.state.inbox = Inbox(app.state.workspace)
    return found


def start(app: Any) -> None:
    """Read the in-app messages into memory before the server takes requests (the first request
    would do it otherwise; a playbooks.yaml that does not read leaves it to that request, which
    then says what is wrong), and start looking for changes."""
    found = _inbox(app)
    try:
        caps, _ = _cached(app).get()
    except UpsellError as exc:
        log.warning("the messages API waits for a playbooks.yaml that reads: %s", exc)
    else:
        found.load(datetime.now(UTC), caps)
    found.start()


def stop(app: Any) -> None:
    _inbox(app).stop()


def _user(request: Request, key: str | None, user_id: str | None, token: str | None) -> str:
    """Check the publishable key and the user (token); the user id."""
    keys(request).check(key or basic_user(request) or bearer(request), PUBLISHABLE, what=WHAT)
    if not isinstance(user_id, str) or not user_id.strip():
        raise ApiError(400, "missing_user", "userId is required: the id of the logged-in user")
    if len(user_id) > MAX_ID:
        raise ApiError(400, "bad_request", f"userId is over {MAX_ID} characters")
    ws: Workspace = request.app.state.workspace
    _, secret = cached(request).get()
    if token is None or token == "":
        if ws.config.in_app.require_user_token:
            raise ApiError(
                401,
                "missing_user_token",
                "this workspace requires a user token (config.yaml in_app.require_user_token): "
                "sign the user id with `upsell keys secret user_token` on your backend",
            )
        return user_id
    if not isinstance(token, str) or not valid_user_token(secret, user_id, token):
        raise ApiError(403, "bad_user_token", "the user token does not sign this userId")
    return user_id


def _money(amount: Any, currency: Any, locale: str) -> dict[str, str] | None:
    if not isinstance(amount, str) or not isinstance(currency, str):
        return None
    text = _money_text(amount, currency, locale)
    return None if text is None else {"amount": amount, "currency": currency, "text": text}


@functools.lru_cache(maxsize=4096)
def _money_text(amount: str, currency: str, locale: str) -> str | None:
    """An amount formatted for a locale (Babel is slow, and offers repeat a few prices)."""
    try:
        return format_money(Money(to_decimal(amount), currency), locale)
    except ValueError:
        return None


def message_json(
    c: Contact, *, accept_url: str | None = None, due_today: Money | None = None
) -> dict[str, Any]:
    """One in-app contact as the widget reads it (docs/in-app.md, "Messages API"): `accept_url`
    is the call to action's link (``GET /v1/offers/{offer_id}/accept``; the message's own URL
    when None), `due_today` the prorated amount of a mid-period upgrade."""
    m, d = dict(c.message or {}), dict(c.decision or {})
    locale = str(m.get("locale") or "en")
    due = None if due_today is None else _money(due_today.as_string(), due_today.currency, locale)
    return {
        "id": str(c.contact_id),
        "offer_id": c.offer_id,
        "kind": c.kind,
        "placement": c.placement,
        "anchor": d.get("anchor"),
        "title": m.get("subject", ""),
        "body": m.get("body", ""),
        "cta": {"label": m.get("cta", ""), "url": accept_url or m.get("cta_url", "")},
        "expires_at": m.get("expires_at"),
        "locale": locale,
        "numbers": {
            "price": _money(d.get("price"), d.get("price_currency"), locale),
            "delta": _money(d.get("expected_mrr_delta"), d.get("currency"), locale),
            "due_today": due,
            "trial_days": d.get("trial_days", 0),
            "discount_percent": d.get("discount_percent"),
            "discount_months": d.get("discount_months"),
        },
        "events_url": f"/v1/messages/{c.contact_id}/events",
    }


@router.get(
    "",
    summary="What to show a user now",
    responses={204: {"description": "Nothing to show"}},
)
async def get_messages(
    request: Request,
    user_id: Annotated[str | None, Query(alias="userId", max_length=MAX_ID)] = None,
    account_id: Annotated[str | None, Query(alias="accountId", max_length=MAX_ID)] = None,
    token: Annotated[str | None, Query(max_length=256)] = None,
    key: Annotated[str | None, Query(max_length=256)] = None,
    page: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """The in-app messages to show this user now (at most one per account), newest first, or 204.
    `page` is where the widget runs; it is recorded with the answers, not used to choose.
    (`FastMessages` answers this route before FastAPI's routing; this declaration describes it.)"""
    return await answer(request, user_id, account_id, token, key)


#: The query parameters of ``GET /v1/messages`` and their longest values, as declared above.
_PARAMS = {"userId": MAX_ID, "accountId": MAX_ID, "token": 256, "key": 256, "page": 2048}


async def answer(
    request: Request,
    user_id: str | None,
    account_id: str | None,
    token: str | None,
    key: str | None,
) -> Response:
    # On the event loop, with no thread hop: the answer comes from memory (`upsell.service.inbox`);
    # the store is read only when the key and secret caches expire (every few seconds), and at
    # every request only with UPSELL_SERVICE_MESSAGES_REFRESH_SECONDS=0.
    return _messages(request, user_id, account_id, token, key)


class FastMessages:
    """``GET /v1/messages`` answered before FastAPI's routing (pure ASGI), with the route's own
    checks: every browser of a customer's web app polls it, and routing, validation and dependency
    solving cost more than the answer itself. Inside the CORS and request-log middlewares, which
    treat it as the route it is; every other request goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route = _route()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != router.prefix or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        scope["route"] = self.route
        params = request.query_params
        too_long = [(k, n) for k, n in _PARAMS.items() if len(params.get(k) or "") > n]
        response: Response
        if too_long:
            problems = [f"{k}: String should have at most {n} characters" for k, n in too_long]
            response = error_response(400, "invalid_request", "; ".join(problems))
        else:
            try:
                response = await answer(
                    request,
                    params.get("userId"),
                    params.get("accountId"),
                    params.get("token"),
                    params.get("key"),
                )
            except ApiError as exc:
                response = error_response(exc.status, exc.code, exc.message, exc.headers)
        await response(scope, receive, send)


def _route() -> Any:
    """The declared route of ``GET /v1/messages`` (its template labels the metrics)."""
    return next(r for r in router.routes if getattr(r, "path", None) == router.prefix)


def _messages(
    request: Request,
    user_id: str | None,
    account_id: str | None,
    token: str | None,
    key: str | None,
) -> Response:
    user = _user(request, key, user_id, token)
    ws: Workspace = request.app.state.workspace
    caps, _ = cached(request).get()
    now = datetime.now(UTC)
    found = inbox(request).messages(user_id=user, account_id=account_id, now=now, caps=caps)
    if not found:
        return Response(status_code=204)
    secret, _ = cached(request).checkout()
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "messages": [
                message_json(
                    m.contact,
                    accept_url=accept_link(base, m.contact, user, secret, now),
                    due_today=m.due_today,
                )
                for m in found
            ],
            "poll_seconds": ws.config.in_app.poll_seconds,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/{message_id}/events", summary="What the user did with a message")
async def post_event(
    request: Request,
    message_id: Annotated[str, Path(max_length=20)],
    key: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, bool]:
    """Record ``shown``, ``clicked``, ``dismissed`` or ``converted`` once per message; the body
    is JSON (``application/json`` or ``text/plain``): ``{"event", "userId", "token"?, "page"?}``.
    ``{"recorded": false}`` when that event was already recorded for the message."""
    body = await read_body(request, MAX_EVENT_BYTES)
    payload, _ = decode(body, request.headers.get("content-encoding", ""), MAX_EVENT_BYTES)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    event = payload.get("event")
    if event not in WIDGET_EVENTS:
        raise ApiError(
            400, "bad_event", f"event must be one of {', '.join(WIDGET_EVENTS)}, got {event!r}"
        )
    token, page = payload.get("token"), payload.get("page")
    if page is not None and (not isinstance(page, str) or len(page) > 2048):
        raise ApiError(400, "bad_request", "page must be text of at most 2,048 characters")
    user = _user(request, key or payload.get("key"), payload.get("userId"), token)
    ws: Workspace = request.app.state.workspace
    properties = {"source": "widget", **({"page": page} if page else {})}
    try:
        recorded = await run_in_threadpool(
            record_event,
            ws,
            message_id=message_id,
            user_id=user,
            event=event,
            at=datetime.now(UTC),
            properties=properties,
        )
    except MessageNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    if recorded:
        await run_in_threadpool(inbox(request).answered, int(message_id))
    return {"recorded": recorded}


def accept_link(base: str, c: Contact, user_id: str, secret: str, now: datetime) -> str:
    """The call to action's link: ``GET /v1/offers/{offer_id}/accept`` with a click token naming
    the contact and the user, expiring with the message (in `CLICK_DAYS` without an expiry)."""
    assert c.contact_id is not None
    expires = (c.message or {}).get("expires_at")
    try:
        until = datetime.fromisoformat(expires) if isinstance(expires, str) else None
    except ValueError:
        until = None
    until = until or (now + timedelta(days=CLICK_DAYS)).replace(minute=0, second=0, microsecond=0)
    token = _click_token(secret, c.contact_id, user_id, int(until.timestamp()))
    return f"{base}/v1/offers/{quote(c.offer_id, safe='')}/accept?token={token}"


@functools.lru_cache(maxsize=16384)
def _click_token(secret: str, contact_id: int, user_id: str, exp: int) -> str:
    """A click token (the same for a message and user until it expires: signed once)."""
    return sign(click_key(secret), click_payload(contact_id=contact_id, user_id=user_id, exp=exp))


class BrowserOrigins:
    """CORS for the widget's paths (pure ASGI): preflights answered, allowed origins echoed, other
    origins refused with 403 (a simple request would otherwise reach the server)."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(BROWSER_PATHS):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        if origin.lower() != own and origin.lower() not in self.origins:
            refused = error_response(
                403,
                "origin_not_allowed",
                f"the origin {origin} may not call the messages API: add it to config.yaml "
                "in_app.origins",
            )
            await refused(scope, receive, send)
            return
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if scope["method"] == "OPTIONS":
            preflight = Response(
                status_code=204,
                headers={
                    **cors,
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": "authorization, content-type",
                    "Access-Control-Max-Age": "600",
                },
            )
            await preflight(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in cors.items():
                    out[name] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)
