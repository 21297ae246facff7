"""Product usage events in Segment's ``track`` shape, and the event names upsell understands."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from upsell.domain.contacts import ResponseKind

# Reserved event names the engine understands without configuration (data-contract.md, events;
# docs/data-formats.md lists each with its properties).
FEATURE_USED = "Feature Used"
FEATURE_BLOCKED = "Feature Blocked"
LIMIT_REACHED = "Limit Reached"
DOWNGRADE_REQUESTED = "Downgrade Requested"
CANCEL_REQUESTED = "Cancel Requested"
USAGE_CHARGED = "Usage Charged"
SURVEY_ANSWERED = "Survey Answered"
SUPPORT_TICKET_OPENED = "Support Ticket Opened"
SUPPORT_TICKET_CLOSED = "Support Ticket Closed"
PAYMENT_FAILED = "Payment Failed"
INVOICE_PAID = "Invoice Paid"
#: Answers to an offer (property ``offer_id``): the widget, the email provider or the simulator
#: sends them; the decision step reads them (a dismissal starts a cooldown).
OFFER_VIEWED = "Offer Viewed"
EMAIL_OPENED = "Email Opened"
OFFER_CLICKED = "Offer Clicked"
OFFER_DISMISSED = "Offer Dismissed"

RESERVED_EVENTS: tuple[str, ...] = (
    FEATURE_USED,
    FEATURE_BLOCKED,
    LIMIT_REACHED,
    DOWNGRADE_REQUESTED,
    CANCEL_REQUESTED,
    USAGE_CHARGED,
    SURVEY_ANSWERED,
    SUPPORT_TICKET_OPENED,
    SUPPORT_TICKET_CLOSED,
    PAYMENT_FAILED,
    INVOICE_PAID,
    OFFER_VIEWED,
    EMAIL_OPENED,
    OFFER_CLICKED,
    OFFER_DISMISSED,
)

#: The events that answer an offer (they carry its ``offer_id``), and the response each stands for.
RESPONSE_EVENTS: Mapping[str, ResponseKind] = MappingProxyType(
    {
        OFFER_VIEWED: "shown",
        EMAIL_OPENED: "opened",
        OFFER_CLICKED: "clicked",
        OFFER_DISMISSED: "dismissed",
    }
)
#: The responses that show the customer saw an offer: the funnel's "opened" (metrics.md).
SEEN_RESPONSES: tuple[ResponseKind, ...] = ("shown", "opened")


@dataclass(frozen=True)
class Event:
    """One tracked action of an account (and optionally of one of its users). `timestamp` is UTC."""

    message_id: str
    account_id: str
    event: str
    timestamp: datetime
    user_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


def default_message_id(
    account_id: str,
    user_id: str | None,
    event: str,
    timestamp: datetime,
    properties: Mapping[str, Any],
) -> str:
    """The de-duplication key of an event that came without one: a hash of its content.

    Two rows with the same account, user, event, instant and properties are the same event, so
    importing a file twice stores it once.
    """
    canonical = json.dumps(
        [account_id, user_id, event, timestamp.isoformat(), properties],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]
