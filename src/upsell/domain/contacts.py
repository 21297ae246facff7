"""Contacts (offers made to an account, or withheld from it by a holdout) and the responses to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from upsell.domain.money import Money
from upsell.domain.offers import KINDS, Kind

ContactStatus = Literal["queued", "sent", "failed", "held_out"]
CONTACT_STATUSES: tuple[ContactStatus, ...] = ("queued", "sent", "failed", "held_out")

ResponseKind = Literal["shown", "opened", "clicked", "dismissed", "accepted"]
RESPONSE_KINDS: tuple[ResponseKind, ...] = ("shown", "opened", "clicked", "dismissed", "accepted")


@dataclass(frozen=True)
class Contact:
    """One offer decided for an account at `as_of` on one channel, or recorded as held out.

    The identity of a contact is (account_id, offer_id, channel, as_of): recording it twice is one
    contact. A held-out contact (`held_out` True) has status ``held_out`` and nothing was sent.
    `contact_id` and `created_at` are None until the store has recorded it. A delivery sets
    `status` (``sent`` or ``failed``), `attempts`, `delivered_at` and `detail` (why it failed, or
    the server's answer). `promotion` names the promotion the offer ran under; `decision` keeps the whole decision line
    (data-contract.md) as the run wrote it. An in-app contact's
    `shown_at`, `clicked_at`, `dismissed_at` and `converted_at` are the widget's answers
    (docs/in-app.md). Timestamps are aware UTC.
    """

    account_id: str
    as_of: datetime
    kind: Kind
    offer_id: str
    item_id: str
    channel: str
    user_id: str | None = None
    placement: str | None = None
    playbook: str | None = None
    experiment: str | None = None
    variant: str | None = None
    held_out: bool = False
    status: ContactStatus = "queued"
    message: Mapping[str, Any] = field(default_factory=dict)
    expected_mrr_delta: Money | None = None
    promotion: str | None = None
    detail: str | None = None
    attempts: int = 0
    delivered_at: datetime | None = None
    decision: Mapping[str, Any] | None = None
    created_at: datetime | None = None
    contact_id: int | None = None
    shown_at: datetime | None = None
    clicked_at: datetime | None = None
    dismissed_at: datetime | None = None
    converted_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.status not in CONTACT_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(CONTACT_STATUSES)}, got {self.status!r}"
            )
        if self.held_out != (self.status == "held_out"):
            raise ValueError("a contact is held out exactly when its status is 'held_out'")

    @property
    def key(self) -> tuple[str, str, str, datetime]:
        """The identity of a contact: (account_id, offer_id, channel, as_of)."""
        return (self.account_id, self.offer_id, self.channel, self.as_of)


@dataclass(frozen=True)
class Response:
    """What an account (or one of its users) did with a contact: shown, opened, clicked, ...

    `response_id` is None until the store has recorded it. `at` is aware UTC.
    """

    contact_id: int
    account_id: str
    response: ResponseKind
    at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)
    response_id: int | None = None

    def __post_init__(self) -> None:
        if self.response not in RESPONSE_KINDS:
            raise ValueError(
                f"response must be one of {', '.join(RESPONSE_KINDS)}, got {self.response!r}"
            )
