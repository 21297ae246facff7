"""``GET /demo``: a host page that plays a customer of the demo company (docs/in-app.md, "The demo
page"). It is on when config.yaml says ``in_app: {demo_page: true}``, which ``upsell init --demo``
writes.

The page embeds the widget exactly as a company's web app would, with a publishable key named
"demo page" that the server makes the first time the page is asked for (revoking the one a previous
start made: a key's text is shown once and never stored). It lists the accounts whose in-app offer
the widget would show now (`upsell.flows.demo`); picking one signs in as one of its users.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from upsell.domain.offers import PLACEMENTS
from upsell.flows.demo import DemoCustomer, demo_customers
from upsell.service.errors import ApiError
from upsell.store.keys import create_key, list_keys, revoke_key
from upsell.workspace import Workspace

log = logging.getLogger("upsell.service")

router = APIRouter(tags=["in-app"], include_in_schema=False)

KEY_NAME = "demo page"
_lock = threading.Lock()


@cache
def _template() -> jinja2.Template:
    text = files("upsell.service").joinpath("static/demo.html").read_text(encoding="utf-8")
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(text)


def demo_key(request: Request) -> str:
    """The publishable key of the demo page, made once per server: a new "demo page" key, the
    previous ones revoked."""
    state = request.app.state
    with _lock:
        key: str | None = getattr(state, "demo_key", None)
        if key is None:
            ws: Workspace = state.workspace
            with ws.db.begin() as conn:
                for old in list_keys(conn=conn):
                    if old.name == KEY_NAME and old.active and old.kind == "publishable":
                        revoke_key(conn=conn, key_id=old.key_id)
                made, key = create_key(conn=conn, kind="publishable", name=KEY_NAME)
            log.info("the demo page's publishable key is %s", made.key_id)
            state.demo_key = key
        return key


def _page(
    request: Request, user: str | None, account: str | None
) -> tuple[str, list[DemoCustomer]]:
    ws: Workspace = request.app.state.workspace
    if not ws.config.in_app.demo_page:
        raise ApiError(
            404,
            "not_found",
            "the demo page is off: set in_app: {demo_page: true} in config.yaml (upsell init "
            "--demo writes it) and restart the server",
        )
    return demo_key(request), demo_customers(ws, now=datetime.now(UTC))


@router.get("/demo", response_class=HTMLResponse)
async def demo_page(
    request: Request,
    user: Annotated[str | None, Query(max_length=255)] = None,
    account: Annotated[str | None, Query(max_length=255)] = None,
) -> HTMLResponse:
    """The demo host page; ``?user=U&account=A`` signs in as user U of account A."""
    key, customers = await run_in_threadpool(_page, request, user, account)
    me: dict[str, Any] | None = None
    if user:
        me = {"userId": user, "accountId": account or None}
    current = next(
        (c for c in customers if c.user_id == user and c.account_id == (account or c.account_id)),
        None,
    )
    groups = [
        (placement, [c for c in customers if c.placement == placement])
        for placement in PLACEMENTS["in_app"]
    ]
    html = _template().render(
        key=key,
        me=me,
        user=user,
        account=account,
        current=current,
        reasons=_reasons(current),
        groups=groups,
        any_customer=bool(customers),
        workspace=request.app.state.workspace.folder.name,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _reasons(current: DemoCustomer | None) -> list[str]:
    """Why the account got its offer: the decision's reasons, as the report words them."""
    if current is None:
        return []
    reasons = (current.message.decision or {}).get("reasons") or []
    return [str(r["text"]) for r in reasons if isinstance(r, dict) and r.get("text")][:4]
