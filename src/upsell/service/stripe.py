"""``POST /webhooks/stripe``: Stripe's webhook events, authenticated by their ``Stripe-Signature``
(no API key), mapped by `upsell.ingest.stripe` (docs/service.md, "Stripe").

Each event is applied in one transaction: it is stored whole or not at all. 400 on a missing,
wrong or expired signature and on a body that is not a Stripe event; 200 ``{"received": true}``
for every authentic event, also one upsell ignores or has seen before (so Stripe does not retry
it), with its ``outcome``.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from upsell.ingest.stripe import Outcome, apply_event, current_catalog
from upsell.ingest.stripe_objects import StripeError, parse_event
from upsell.ingest.stripe_signature import SignatureError, parse_secrets, verify
from upsell.service.errors import ApiError
from upsell.service.metrics import count_ingested
from upsell.workspace import Workspace

router = APIRouter(tags=["stripe"])

#: Stripe's events are far smaller; a larger body is refused before it is read whole.
MAX_BODY = 1 << 20

_BODY = {
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "t=<unix seconds>,v1=<HMAC-SHA256 hex>[,v1=...]",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "A Stripe event object, exactly as Stripe sends it (signed).",
    },
}


@router.post(
    "/webhooks/stripe",
    openapi_extra=_BODY,
    responses={
        400: {"description": "Missing, wrong or expired signature; not a Stripe event"},
        409: {"description": "Two deliveries raced; Stripe retries"},
        413: {"description": "A body over 1 MB"},
        404: {"description": "Stripe webhooks are off: UPSELL_STRIPE_WEBHOOK_SECRET is not set"},
    },
)
async def stripe_webhook(request: Request) -> dict[str, Any]:
    """Receive one Stripe event (docs/service.md, "Stripe")."""
    ws: Workspace = request.app.state.workspace
    secret = ws.settings.stripe_webhook_secret
    secrets = parse_secrets(secret.get_secret_value()) if secret else ()
    if not secrets:
        raise ApiError(
            404,
            "not_configured",
            "Stripe webhooks are off: set UPSELL_STRIPE_WEBHOOK_SECRET to the endpoint's signing "
            "secret (whsec_...)",
        )
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY} bytes")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY} bytes")
    try:
        verify(body, request.headers.get("stripe-signature"), secrets)
    except SignatureError as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    try:
        event = parse_event(payload)
    except StripeError as exc:
        raise ApiError(400, "invalid_event", str(exc)) from None
    key = ws.settings.stripe_account_metadata_key

    def apply() -> Outcome:
        with ws.db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            return apply_event(conn, event, catalog=current_catalog(conn=conn), metadata_key=key)

    try:
        outcome = await run_in_threadpool(apply)
    except StripeError as exc:
        raise ApiError(400, "invalid_event", f"event {event.id}: {exc}") from None
    except sa.exc.IntegrityError:
        raise ApiError(
            409, "conflict", f"event {event.id} raced another delivery; retry it"
        ) from None
    if outcome.outcome in ("applied", "partial"):
        count_ingested(request.app, "stripe", 1)
    return {"received": True, **outcome.as_dict()}
