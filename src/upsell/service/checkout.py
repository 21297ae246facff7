"""The checkout handshake (docs/in-app.md, "The checkout handshake"): the call to action of an
in-app message links to ``GET /v1/offers/{offer_id}/accept?token=…``, which records the click and
redirects (303) to playbooks.yaml's ``settings.checkout_url`` with ``upsell_token=<offer token>``
appended: a signed, expiring description of the offer (`upsell.domain.checkout`), that the
company's backend verifies with the ``checkout`` secret before applying the change.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from upsell.domain.checkout import BadToken, click_key, offer_payload, sign, verify
from upsell.flows.messages import MessageNotFound, accept_offer
from upsell.service.errors import ApiError
from upsell.service.messages import cached, inbox
from upsell.templates import build_url
from upsell.workspace import Workspace

router = APIRouter(
    prefix="/v1/offers",
    tags=["in-app"],
    responses={
        400: {"description": "No token, or one that is not a token: `{code, message}`"},
        403: {"description": "A token not signed by this workspace, or expired"},
        404: {"description": "The token's message is not an offer of this id for its user"},
    },
)


def with_token(url: str, token: str) -> str:
    """`url` with ``upsell_token=`` appended to its query (before any fragment)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"upsell_token": token})) if q)
    return urlunsplit(parts._replace(query=query))


@router.get(
    "/{offer_id}/accept",
    summary="The click on an in-app offer: recorded, then redirected to the checkout",
    status_code=303,
    response_class=RedirectResponse,
    responses={303: {"description": "To the checkout URL, with upsell_token"}},
)
async def accept(
    request: Request,
    offer_id: Annotated[str, Path(max_length=255)],
    token: Annotated[str | None, Query(max_length=2048)] = None,
) -> RedirectResponse:
    """Record ``clicked`` on the message the click token names (once), and redirect to the
    workspace's checkout URL (its save URL for a save that keeps the plan held) with a signed
    offer token (``upsell_token``), valid one hour."""
    if not token:
        raise ApiError(400, "missing_token", "token is required: follow the message's cta.url")
    secret, settings = cached(request).checkout()
    try:
        click = verify(click_key(secret), token, now=time.time())
    except BadToken as exc:
        if exc.reason == "malformed":
            raise ApiError(400, "bad_token", str(exc)) from None
        code = "token_expired" if exc.reason == "expired" else "bad_token"
        raise ApiError(403, code, str(exc)) from None
    contact_id, user_id = click.get("contact_id"), click.get("user_id")
    if click.get("typ") != "click" or not isinstance(contact_id, int):
        raise ApiError(400, "bad_token", "not a click token")
    if not isinstance(user_id, str):
        raise ApiError(400, "bad_token", "the click token names no user")
    ws: Workspace = request.app.state.workspace
    now = datetime.now(UTC)
    try:
        contact, due = await run_in_threadpool(
            accept_offer, ws, message_id=contact_id, user_id=user_id, offer_id=offer_id, at=now
        )
    except MessageNotFound:
        raise ApiError(404, "not_found", f"no offer {offer_id} for this message") from None
    await run_in_threadpool(inbox(request).answered, contact_id)  # clicked: served no more
    decision = {**(contact.decision or {})}
    decision.setdefault("account_id", contact.account_id)
    decision.setdefault("offer_id", contact.offer_id)
    decision.setdefault("item_id", contact.item_id)
    decision.setdefault("kind", contact.kind)
    payload = offer_payload(
        decision,
        contact_id=contact_id,
        due_today=None if due is None else {"amount": due.as_string(), "currency": due.currency},
        iat=int(now.timestamp()),
    )
    fields = {
        "account_id": contact.account_id,
        "item_id": contact.item_id,
        "offer_id": contact.offer_id,
        "from_item_id": decision.get("from_item_id") or "",
        "kind": contact.kind,
        "trial_days": str(payload["trial_days"]),
        "variant": contact.variant or "",
    }
    template = settings.cta_url(contact.kind, contact.item_id, decision.get("from_item_id"))
    url = with_token(build_url(template, fields), sign(secret, payload))
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
