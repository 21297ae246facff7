"""Stripe events into the store: the mapping shared by ``POST /webhooks/stripe`` and ``upsell import
--stripe-events`` (docs/service.md, "Stripe").

`apply_event` applies one event inside the caller's transaction:

- ``customer.created|updated``: the account's email, currency and country (the account is created
  when the customer names it in its metadata and it is unknown);
- ``customer.subscription.created|updated|deleted``: subscription rows, one per period a Stripe
  subscription item held a catalog item on the same terms. A change of item, quantity, interval,
  price or trial ends the row at the event's instant and starts a new one; a deletion ends them;
  turning on ``cancel_at_period_end`` (or ``cancel_at``) stores a ``Cancel Requested`` event;
- ``invoice.paid`` and ``invoice.payment_failed``: an ``Invoice Paid`` or ``Payment Failed`` event.

Every event is recorded once with its outcome (`upsell.store.schema.STRIPE_OUTCOMES`). An event
received again changes nothing, unless it could not be applied in full the first time; an event
older than the latest applied to its customer or subscription changes nothing (``stale``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from upsell.config.catalog import parse_catalog
from upsell.domain.accounts import Account
from upsell.domain.catalog import Catalog
from upsell.domain.events import CANCEL_REQUESTED, INVOICE_PAID, PAYMENT_FAILED, Event
from upsell.domain.money import Money
from upsell.domain.subscriptions import SubscriptionItem
from upsell.ingest.stripe_objects import (
    STATUSES,
    ItemTerms,
    StripeError,
    StripeEvent,
    account_in_metadata,
    currency_of,
    from_minor,
    instant,
    object_id,
    parse_customer,
    parse_event,
    subscription_items,
    text,
)
from upsell.store import accounts as account_store
from upsell.store import catalogs as catalog_store
from upsell.store import events as event_store
from upsell.store import stripe as store

#: The event a paid invoice becomes (``Payment Failed`` is `upsell.domain.events.PAYMENT_FAILED`).
CUSTOMER_EVENTS = ("customer.created", "customer.updated")
SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_failed")
HANDLED = (*CUSTOMER_EVENTS, *SUBSCRIPTION_EVENTS, *INVOICE_EVENTS)
#: Of two events of one object in the same second, a creation comes before an update, an update
#: before a deletion.
_RANK = {"created": 0, "updated": 1, "deleted": 2}
#: Outcomes after which an event received again is a replay; after the others it is applied again.
FINAL = ("applied", "stale", "ignored")


@dataclass(frozen=True)
class Outcome:
    """What became of one event: an outcome of `STRIPE_OUTCOMES`, or ``duplicate`` for a replay."""

    event_id: str
    type: str
    outcome: str
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@functools.lru_cache(maxsize=4)
def _parsed(text: str, source: str) -> Catalog:
    return parse_catalog(text, source).catalog


def current_catalog(*, conn: sa.Connection) -> Catalog | None:
    """The workspace's current catalog (parsed once per version), or None before the first."""
    latest = catalog_store.latest_catalog(conn=conn)
    return None if latest is None else _parsed(latest[1], latest[2])


def apply_event(
    conn: sa.Connection, event: StripeEvent, *, catalog: Catalog | None, metadata_key: str
) -> Outcome:
    """Apply `event` in the caller's transaction; StripeError when a field is not Stripe's shape
    (the caller rolls back: nothing of the event is stored)."""
    customer = None
    if event.type in CUSTOMER_EVENTS:
        customer = event.object_id
    elif event.type in HANDLED:
        customer = object_id(event.object.get("customer"), "data.object.customer")
    store.lock(conn=conn, keys=[k for k in (event.id, event.object_id, customer) if k])
    recorded = store.recorded_outcome(conn=conn, event_id=event.id)
    if recorded in FINAL:
        return Outcome(event.id, event.type, "duplicate", f"received before: {recorded}")
    mapped_before = customer is not None and _mapped(conn, customer)
    if event.type not in HANDLED:
        outcome = Outcome(event.id, event.type, "ignored", "upsell does not map this event type")
    elif event.object_id is None:
        raise StripeError("data.object.id: expected non-empty text, missing")
    elif event.type not in INVOICE_EVENTS and _stale(conn, event, recorded is not None):
        outcome = Outcome(event.id, event.type, "stale", "older than the event applied before")
    elif event.type in CUSTOMER_EVENTS:
        outcome = _customer(conn, event, metadata_key)
    elif event.type in SUBSCRIPTION_EVENTS:
        outcome = _subscription(conn, event, catalog, metadata_key, customer)
    else:
        outcome = _invoice(conn, event, metadata_key, customer)
    if outcome.outcome in ("applied", "partial") and event.type not in INVOICE_EVENTS:
        assert event.object_id is not None
        store.set_last_applied(
            conn=conn,
            object_id=event.object_id,
            applied=store.Applied(event.id, event.type, event.created),
        )
    mapped = customer is not None and (mapped_before or _mapped(conn, customer))
    waits = outcome.outcome == "unmapped" and customer is not None and not mapped
    store.record_event(
        conn=conn,
        event_id=event.id,
        type=event.type,
        object_id=event.object_id,
        customer_id=customer,
        created=event.created,
        outcome=outcome.outcome,
        detail=outcome.detail,
        payload=event.as_dict() if waits else None,
    )
    if customer is not None and mapped and not mapped_before:
        # The customer's account is known now: apply the events that waited for it, in order.
        # One that turns out not to be Stripe's shape is set aside (ignored, with the reason), in
        # a savepoint of its own, so that it cannot keep the customer unmapped for good.
        for raw in store.waiting_for_customer(conn=conn, customer_id=customer):
            savepoint = conn.begin_nested()
            try:
                apply_event(conn, parse_event(raw), catalog=catalog, metadata_key=metadata_key)
            except StripeError as exc:
                savepoint.rollback()
                kept = raw.get("id") if isinstance(raw, Mapping) else None
                if not isinstance(kept, str):
                    raise
                detail = f"kept until its customer was mapped, then invalid: {exc}"
                store.set_aside(conn=conn, event_id=kept, detail=detail[:500])
            else:
                savepoint.commit()
    return outcome


def _mapped(conn: sa.Connection, customer: str) -> bool:
    return store.account_of_customer(conn=conn, customer_id=customer) is not None


def _rank(event_type: str) -> int:
    return _RANK.get(event_type.rsplit(".", 1)[-1], 1)


def _stale(conn: sa.Connection, event: StripeEvent, again: bool) -> bool:
    """Older than the latest event applied to the object. Of two in the same second, the later
    type wins (`_RANK`); two of one type apply in the order they arrive, but an event received
    again never overrides another one of its second."""
    assert event.object_id is not None
    last = store.last_applied(conn=conn, object_id=event.object_id)
    if last is None or last.event_id == event.id:
        return False
    mine, theirs = (event.created, _rank(event.type)), (last.created, _rank(last.event_type))
    return mine < theirs or (mine == theirs and again)


def _account_id(
    conn: sa.Connection, customer: str | None, sources: list[tuple[Any, str]], key: str
) -> str | None:
    """The account of a Stripe customer: the stored mapping, else the first of `sources` (objects
    with their field path) that names it in its metadata, which is then stored."""
    if customer is not None:
        known = store.account_of_customer(conn=conn, customer_id=customer)
        if known is not None:
            return known
    for obj, where in sources:
        if isinstance(obj, Mapping):
            account_id = account_in_metadata(obj, key, where)
            if account_id is not None:
                if customer is not None:
                    store.map_customer(conn=conn, customer_id=customer, account_id=account_id)
                return account_id
    return None


def _unmapped_customer(event: StripeEvent, customer: str | None, key: str) -> Outcome:
    return Outcome(
        event.id,
        event.type,
        "unmapped",
        f"customer {customer!r} is not mapped to an account: set metadata.{key} on the Stripe "
        "customer (the event is kept, and applied once it is)",
    )


def _ensure_account(conn: sa.Connection, account_id: str, created_at: datetime) -> Account:
    account = account_store.get_account(conn=conn, account_id=account_id)
    if account is None:
        account = Account(account_id, created_at)
        account_store.upsert_accounts(conn=conn, accounts=[account])
    return account


# -- customers ------------------------------------------------------------------------------------


def _customer(conn: sa.Connection, event: StripeEvent, key: str) -> Outcome:
    customer = parse_customer(event.object)
    account_id = _account_id(conn, customer.id, [(event.object, "data.object")], key)
    if account_id is None:
        return _unmapped_customer(event, customer.id, key)
    account = account_store.get_account(conn=conn, account_id=account_id)
    if account is None:
        account = Account(account_id, customer.created or event.created, name=customer.name)
    # Stripe's values win where it has one; an empty field in Stripe keeps what upsell knew.
    account = replace(
        account,
        email=customer.email or account.email,
        currency=customer.currency or account.currency,
        country=customer.country or account.country,
    )
    account_store.upsert_accounts(conn=conn, accounts=[account])
    return Outcome(event.id, event.type, "applied")


# -- subscriptions --------------------------------------------------------------------------------


def _subscription(
    conn: sa.Connection,
    event: StripeEvent,
    catalog: Catalog | None,
    key: str,
    customer: str | None,
) -> Outcome:
    sub = event.object
    sub_id = event.object_id
    assert sub_id is not None
    sources = [(sub.get("customer"), "data.object.customer"), (sub, "data.object")]
    account_id = _account_id(conn, customer, sources, key)
    if account_id is None:
        return _unmapped_customer(event, customer, key)
    stripe_status = str(text(sub, "status", "data.object"))
    if stripe_status not in STATUSES:
        raise StripeError(f"data.object.status: unknown subscription status {stripe_status!r}")
    status = STATUSES[stripe_status]
    at = event.created
    ended = event.type.endswith(".deleted") or status == "canceled"
    ended_at = (instant(sub, "ended_at", "data.object") or at) if ended else at
    _ensure_account(conn, account_id, instant(sub, "created", "data.object") or at)
    terms = subscription_items(sub, catalog, at)
    stored = store.items_of_subscription(conn=conn, subscription_id=sub_id)
    was_cancelling = any(i.cancel_at_period_end for i in stored.values())
    cancelling = bool(sub.get("cancel_at_period_end")) or sub.get("cancel_at") is not None
    start = instant(sub, "start_date", "data.object")
    problems: list[str] = []
    applied = 0
    for t in terms:
        old = stored.pop(t.stripe_item_id, None)
        held = status is not None and not ended and t.quantity > 0 and t.problem is None
        if t.problem is not None:
            problems.append(t.problem)
            if old is None:
                continue  # never held: nothing to remember of it
        row_id = old.row_id if old else None
        if old is not None and old.row is not None and old.row_id is not None:
            if not held and t.problem is not None and old.price_id == t.price_id:
                pass  # its price left the catalog: the row stays as it was
            elif not held:
                _end(conn, old.row_id, old.row, ended_at, "canceled" if ended else None)
                row_id = None
            else:
                row_id = _change(conn, old.row_id, old.row, _wanted(account_id, t, status, at))
        elif held:  # a new item from its creation; one held again (resumed) from now
            started = (t.created or start or at) if old is None else at
            row_id = _start(conn, _wanted(account_id, t, status, started))
        elif old is None and ended and t.problem is None and t.quantity > 0:
            # First seen deleted (a backfill of Stripe's last 30 days): the row it held.
            begun = t.created or start or at
            was = replace(_wanted(account_id, t, "canceled", begun), ended_at=max(ended_at, begun))
            _start(conn, was)
        if held and row_id is None:
            problems.append(
                f"item {t.stripe_item_id!r}: account {account_id!r} has a row of "
                f"{t.item_id!r} starting at the same instant already"
            )
        elif t.problem is None:
            applied += 1
        store.save_item(
            conn=conn,
            item=store.StripeItem(
                stripe_item_id=t.stripe_item_id,
                subscription_id=sub_id,
                account_id=account_id,
                price_id=t.price_id,
                cancel_at_period_end=cancelling,
                current_period_start=t.period_start,
                current_period_end=t.period_end,
                row_id=row_id,
                row=None,
            ),
        )
    for gone in stored.values():  # items no longer on the subscription
        if gone.row is not None and gone.row_id is not None:
            _end(conn, gone.row_id, gone.row, ended_at, "canceled" if ended else None)
            store.save_item(conn=conn, item=replace(gone, row_id=None, row=None))
    if cancelling and not was_cancelling and not ended:
        _cancel_requested(conn, event, account_id, terms)
    if problems and not applied:
        return Outcome(event.id, event.type, "unmapped", "; ".join(problems))
    detail = "; ".join(problems) or None
    return Outcome(event.id, event.type, "partial" if problems else "applied", detail)


def _wanted(account_id: str, t: ItemTerms, status: Any, started_at: datetime) -> SubscriptionItem:
    assert t.item_id is not None and t.unit_price is not None and t.interval is not None
    return SubscriptionItem(
        account_id=account_id,
        item_id=t.item_id,
        started_at=started_at,
        unit_price=t.unit_price,
        quantity=t.quantity,
        interval=t.interval,
        status=status,
    )


def _start(conn: sa.Connection, item: SubscriptionItem) -> int | None:
    """A new row; None when the account has a row of the item from that instant already (another
    Stripe item, or a subscriptions file)."""
    if store.row_taken(conn=conn, item=item):
        return None
    return store.start_row(conn=conn, item=item)


def _end(
    conn: sa.Connection, row_id: int, row: SubscriptionItem, at: datetime, status: Any
) -> None:
    ended = replace(row, ended_at=max(at, row.started_at), status=status or row.status)
    store.replace_row(conn=conn, row_id=row_id, item=ended)


def _same_terms(a: SubscriptionItem, b: SubscriptionItem) -> bool:
    """Two rows with the same MRR terms: item, quantity, interval, price, and trial or not."""
    return (
        (a.item_id, a.quantity, a.interval, a.unit_price.currency)
        == (b.item_id, b.quantity, b.interval, b.unit_price.currency)
        and a.unit_price.amount == b.unit_price.amount
        and (a.status == "trialing") == (b.status == "trialing")
    )


def _change(
    conn: sa.Connection, row_id: int, row: SubscriptionItem, wanted: SubscriptionItem
) -> int | None:
    """Bring an item's current row to `wanted` (whose `started_at` is the event's instant): the
    same terms keep the row (its status follows: active, past due); new terms end it and start a
    new row, unless it started at that instant (then it is rewritten)."""
    if _same_terms(row, wanted):
        if row.status != wanted.status:
            store.replace_row(conn=conn, row_id=row_id, item=replace(row, status=wanted.status))
        return row_id
    if row.started_at >= wanted.started_at:
        store.replace_row(conn=conn, row_id=row_id, item=replace(wanted, started_at=row.started_at))
        return row_id
    if store.row_taken(conn=conn, item=wanted):
        return None
    _end(conn, row_id, row, wanted.started_at, None)
    return store.start_row(conn=conn, item=wanted)


def _cancel_requested(
    conn: sa.Connection, event: StripeEvent, account_id: str, terms: list[ItemTerms]
) -> None:
    """``cancel_at_period_end`` (or ``cancel_at``) just turned on: a ``Cancel Requested`` event
    (the risk gates read it), with the instant the subscription will end and, as its `reason`,
    the customer's ``cancellation_details.feedback`` (what save offers answer)."""
    sub = event.object
    ends = instant(sub, "cancel_at", "data.object") or max(
        (t.period_end for t in terms if t.period_end is not None), default=None
    )
    properties: dict[str, Any] = {"source": "stripe", "subscription_id": event.object_id}
    if ends is not None:
        properties["period_end"] = ends.isoformat()
    details = sub.get("cancellation_details")
    feedback = details.get("feedback") if isinstance(details, dict) else None
    if isinstance(feedback, str) and feedback:  # too_expensive, missing_features, unused, ...
        properties["reason"] = feedback
    at = instant(sub, "canceled_at", "data.object") or event.created
    cancel = Event(f"{event.id}:cancel", account_id, CANCEL_REQUESTED, at, None, properties)
    event_store.insert_events(conn=conn, events=[cancel])


# -- invoices -------------------------------------------------------------------------------------


def _invoice(conn: sa.Connection, event: StripeEvent, key: str, customer: str | None) -> Outcome:
    invoice = event.object
    sources = [(invoice.get("customer"), "data.object.customer"), (invoice, "data.object")]
    account_id = _account_id(conn, customer, sources, key)
    if account_id is None:
        return _unmapped_customer(event, customer, key)
    _ensure_account(conn, account_id, event.created)
    paid = event.type == "invoice.paid"
    properties: dict[str, Any] = {"source": "stripe", "invoice_id": event.object_id}
    currency = currency_of(invoice, "currency", "data.object")
    minor = invoice.get("amount_paid" if paid else "amount_due")
    if currency is not None and isinstance(minor, int) and not isinstance(minor, bool):
        amount: Money = from_minor(Decimal(minor), currency)
        properties.update(amount=amount.as_string(), currency=currency)
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    subscription = invoice.get("subscription") or (
        details.get("subscription") if isinstance(details, Mapping) else None
    )
    if object_id(subscription, "data.object.subscription") is not None:
        properties["subscription_id"] = object_id(subscription, "data.object.subscription")
    for name in ("billing_reason", "attempt_count"):
        if isinstance(invoice.get(name), str | int):
            properties[name] = invoice[name]
    name = INVOICE_PAID if paid else PAYMENT_FAILED
    stored = Event(event.id, account_id, name, event.created, None, properties)
    event_store.insert_events(conn=conn, events=[stored])
    return Outcome(event.id, event.type, "applied")
