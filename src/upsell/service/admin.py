"""The admin API (docs/service.md, "Admin API"): opportunities, decisions, contacts, the report and
runs of the daily job, as JSON, for an admin token (``Authorization: Bearer usa_...``).

Each route calls the flow or store function the matching command calls, and answers the same JSON
the command writes (``upsell opportunities --json``, ``upsell report --out x.json``). Flows that
compute with the analytics back end run one at a time (`Jobs.analytics`) in the threadpool, so the
ingestion routes keep answering meanwhile.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from upsell.domain.calendar import day_start, iso, month_starts
from upsell.domain.contacts import CONTACT_STATUSES, Contact
from upsell.domain.messages import known_locale
from upsell.errors import UnknownAccount, UpsellError
from upsell.flows.runs import RunBusy, claim_run
from upsell.service.auth import require_admin
from upsell.service.errors import ApiError
from upsell.service.scheduler import Jobs
from upsell.store.accounts import get_account
from upsell.store.contacts import contacts_at, find_contacts
from upsell.store.runs import Run, get_run, list_runs
from upsell.store.summary import data_span
from upsell.workspace import Workspace

T = TypeVar("T")
MAX_LIMIT = 500
#: The days the admin API accepts (the engine's arithmetic needs room on both sides).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)
MAX_ID = 2**31 - 1
#: Who decided a contact: the daily run, or a real-time trigger.
SOURCES = ("batch", "trigger")
#: Seconds a computation waits for the analytics back end before answering 429 (so that waiting
#: requests cannot fill the threadpool the other routes need).
ANALYTICS_WAIT = 10.0
#: The longest report the API computes, in months (a longer one takes minutes: ask in parts).
MAX_MONTHS = 120

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={
        400: {"description": "A bad parameter: `{code, message}` names it"},
        401: {"description": "No admin token, or an unknown or revoked one"},
        403: {"description": "A key that is not an admin token"},
        404: {"description": "No such account or run"},
        409: {"description": "A run in progress, or a workspace without the data to compute"},
        429: {"description": "The engine stayed busy (a run): try again after Retry-After"},
    },
)

AsOf = Annotated[date, Query(description="The day (YYYY-MM-DD)")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1 to 500)")]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; omitted: the first page")
]


def _jobs(request: Request) -> Jobs:
    jobs: Jobs = request.app.state.jobs
    return jobs


def _ws(request: Request) -> Workspace:
    ws: Workspace = request.app.state.workspace
    return ws


async def _computed(request: Request, compute: Callable[[], T]) -> T:
    """`compute` in the threadpool, alone on the analytics back end; upsell's errors as 404/409."""
    jobs = _jobs(request)

    def alone() -> T:
        if not jobs.analytics.acquire(timeout=ANALYTICS_WAIT):
            raise ApiError(
                429,
                "busy",
                f"the engine has been busy for {ANALYTICS_WAIT:g}s (a run, or another "
                "computation); try again shortly",
                headers={"Retry-After": "5"},
            )
        try:
            return compute()
        finally:
            jobs.analytics.release()

    try:
        return await run_in_threadpool(alone)
    except UnknownAccount as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except UpsellError as exc:
        raise ApiError(409, "conflict", str(exc)) from None


def _checked(**params: date | str | None) -> None:
    """400 for a day out of range, or text with a NUL (no database stores it)."""
    for name, value in params.items():
        if isinstance(value, date) and not FIRST_DAY <= value <= LAST_DAY:
            raise ApiError(400, "bad_request", f"{name}: {value} is not between 1970 and 2999")
        if isinstance(value, str) and "\x00" in value:
            raise ApiError(400, "bad_request", f"{name}: must not contain NUL characters")


def _cursor(after: int) -> str:
    return base64.urlsafe_b64encode(f"upsell:{after}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "upsell" or not number.isdigit() or int(number) > MAX_ID:
            raise ValueError(text)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(
            400, "invalid_cursor", "cursor: not a cursor this API gave (use next_cursor as is)"
        ) from None


def _known_account(ws: Workspace, account_id: str) -> None:
    with ws.db.connect() as conn:
        if get_account(conn=conn, account_id=account_id) is None:
            raise ApiError(404, "not_found", f"account: no account {account_id!r}")


def contact_json(c: Contact) -> dict[str, Any]:
    """A stored contact as the admin API shows it."""
    delta = c.expected_mrr_delta

    def when(at: Any) -> str | None:
        return None if at is None else iso(at)

    return {
        "contact_id": c.contact_id,
        "account_id": c.account_id,
        "user_id": c.user_id,
        "as_of": iso(c.as_of),
        "kind": c.kind,
        "offer_id": c.offer_id,
        "item_id": c.item_id,
        "channel": c.channel,
        "placement": c.placement,
        "playbook": c.playbook,
        "experiment": c.experiment,
        "variant": c.variant,
        "held_out": c.held_out,
        "status": c.status,
        "expected_mrr_delta": None if delta is None else delta.as_string(),
        "currency": None if delta is None else delta.currency,
        "promotion": c.promotion,
        "detail": c.detail,
        "attempts": c.attempts,
        "delivered_at": when(c.delivered_at),
        "created_at": when(c.created_at),
        "trigger": None if c.decision is None else c.decision.get("trigger"),
        "message": dict(c.message),
    }


@router.get("/opportunities")
async def opportunities(
    request: Request,
    as_of: AsOf,
    account: Annotated[str | None, Query(description="Only this account's candidates")] = None,
) -> dict[str, Any]:
    """Every account's candidates as of a day, qualified or not: the lines of `upsell
    opportunities --json` (docs/opportunities.md)."""
    _checked(as_of=as_of, account=account)
    ws = _ws(request)
    from upsell.flows.opportunities import find_all

    run = await _computed(request, lambda: find_all(ws, as_of, account_id=account))
    return {
        "as_of": as_of.isoformat(),
        "accounts": run.accounts,
        "opportunities": [o.to_json() for o in run.opportunities],
    }


@router.get("/decisions")
async def decisions(request: Request, as_of: AsOf) -> dict[str, Any]:
    """The decisions recorded by the run at a day: the decision lines of `upsell run --json`,
    each with its `contact_id`, `status` and `held_out` (held-out decisions included)."""
    _checked(as_of=as_of)
    ws = _ws(request)

    def read() -> list[dict[str, Any]]:
        with ws.db.connect() as conn:
            found = contacts_at(conn=conn, as_of=day_start(as_of))
        return [
            {**c.decision, "contact_id": c.contact_id, "status": c.status, "held_out": c.held_out}
            for c in found
            if c.decision is not None
        ]

    return {"as_of": as_of.isoformat(), "decisions": await run_in_threadpool(read)}


@router.get("/contacts")
async def contacts(
    request: Request,
    account: Annotated[str | None, Query(description="One account's contacts")] = None,
    status: Annotated[str | None, Query(description="queued, sent, failed or held_out")] = None,
    channel: Annotated[str | None, Query(description="in_app, email, csm_task, webhook")] = None,
    as_of: Annotated[date | None, Query(description="The run's day (YYYY-MM-DD)")] = None,
    source: Annotated[
        str | None, Query(description="batch (the daily run's) or trigger (real-time triggers')")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Contacts (offers made or held out), oldest first, a page at a time: follow `next_cursor`
    (null on the last page). A real-time trigger's contact has a `trigger` (its reason and when it
    was queued), the daily run's null."""
    _checked(account=account, channel=channel, as_of=as_of)
    if status is not None and status not in CONTACT_STATUSES:
        raise ApiError(400, "bad_request", f"status: must be one of {', '.join(CONTACT_STATUSES)}")
    if source is not None and source not in SOURCES:
        raise ApiError(400, "bad_request", f"source: must be one of {', '.join(SOURCES)}")
    after = _after(cursor)
    ws = _ws(request)

    def read() -> list[Contact]:
        if account is not None:
            _known_account(ws, account)
        with ws.db.connect() as conn:
            return find_contacts(
                conn=conn,
                account_id=account,
                status=status,
                channel=channel,
                as_of=None if as_of is None else day_start(as_of),
                triggered=None if source is None else source == "trigger",
                after=after,
                limit=limit + 1,
            )

    found = await run_in_threadpool(read)
    page = found[:limit]
    more = len(found) > limit and page[-1].contact_id is not None
    return {
        "contacts": [contact_json(c) for c in page],
        "next_cursor": _cursor(page[-1].contact_id or 0) if more else None,
    }


@router.get("/report")
async def report(
    request: Request,
    from_: Annotated[
        date | None, Query(alias="from", description="First month (default: the first data)")
    ] = None,
    to: Annotated[date | None, Query(description="Last month (default: the last data)")] = None,
    locale: Annotated[str | None, Query(description="en, de, nl_BE, ...")] = None,
) -> Any:
    """The report for a period: the JSON of `upsell report --out report.json` (docs/metrics.md)."""
    _checked(**{"from": from_, "to": to, "locale": locale})
    if from_ and to and to < from_:
        raise ApiError(400, "bad_request", f"to: {to} is before from {from_}")
    if locale is not None and not known_locale(locale):
        raise ApiError(400, "bad_request", f"locale: {locale!r} is not a locale such as en or de")
    ws = _ws(request)

    def compute() -> Any:
        with ws.db.connect() as conn:
            span = data_span(conn=conn)
        first, last = from_ or (span and span[0]), to or (span and span[1])
        if first and last and len(month_starts(first, last)) > MAX_MONTHS:
            raise ApiError(
                400,
                "bad_request",
                f"from, to: the report covers at most {MAX_MONTHS} months; {first} to {last} "
                "is more (the data runs "
                + (f"from {span[0]} to {span[1]})" if span else "nowhere yet)"),
            )
        from upsell.flows.report import build_report

        return build_report(ws, first=from_, last=to, locale=locale).to_json()

    return await _computed(request, compute)


class RunRequest(BaseModel):
    """A run of the daily job to start."""

    model_config = ConfigDict(extra="forbid")
    as_of: date = Field(description="The day to decide at (YYYY-MM-DD)")
    dry_run: bool = Field(
        default=False, strict=True, description="Decide, but record and send nothing"
    )


@router.post("/runs", status_code=202)
async def start_run(request: Request, body: RunRequest) -> JSONResponse:
    """Start a run of the daily job (`upsell run`) in the background; poll `GET
    /v1/admin/runs/{run_id}` for its status."""
    _checked(as_of=body.as_of)
    ws, jobs = _ws(request), _jobs(request)
    try:
        claim = await run_in_threadpool(
            lambda: claim_run(ws, body.as_of, trigger="api", dry_run=body.dry_run)
        )
    except RunBusy as exc:
        raise ApiError(409, "run_in_progress", str(exc)) from None
    assert claim is not None
    jobs.start(claim)
    return JSONResponse(
        claim.run.to_json(),
        status_code=202,
        headers={"Location": f"/v1/admin/runs/{claim.run.run_id}"},
    )


@router.get("/runs")
async def runs(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """The runs of the daily job (scheduler, admin API, command line), newest first."""
    before = _after(cursor)
    ws = _ws(request)

    def read() -> list[Run]:
        with ws.db.connect() as conn:
            return list_runs(conn=conn, limit=limit + 1, before=before)

    found = await run_in_threadpool(read)
    page = found[:limit]
    return {
        "runs": [r.to_json() for r in page],
        "next_cursor": _cursor(page[-1].run_id) if len(found) > limit else None,
    }


@router.get("/runs/{run_id}")
async def run(request: Request, run_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> dict[str, Any]:
    """One run: its status, and its summary once it succeeded or its error once it failed."""
    ws = _ws(request)

    def read() -> Run | None:
        with ws.db.connect() as conn:
            return get_run(conn=conn, run_id=run_id)

    found = await run_in_threadpool(read)
    if found is None:
        raise ApiError(404, "not_found", f"run_id: no run {run_id}")
    return found.to_json()
