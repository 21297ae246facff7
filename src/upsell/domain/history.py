"""What upsell already did with an account, and what the account answered: the history the
guardrails and the acceptance prior read (`upsell.domain.decisions.decide`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from upsell.domain.contacts import ResponseKind


@dataclass(frozen=True)
class PastContact:
    """A contact already recorded for the account (held out or failed ones count for no cap);
    `trigger` when a real-time trigger made it, not the daily run."""

    as_of: datetime
    offer_id: str
    channel: str
    placement: str | None = None
    promotion: str | None = None
    held_out: bool = False
    failed: bool = False
    trigger: bool = False

    @property
    def reached(self) -> bool:
        return not self.held_out and not self.failed


@dataclass(frozen=True)
class PastResponse:
    at: datetime
    offer_id: str
    response: ResponseKind


@dataclass(frozen=True)
class History:
    """What upsell did with an account before the run's as-of instant, and what it answered.

    `later` holds the contacts real-time triggers made at or after the as-of instant, that the
    daily run of that day cannot see otherwise: they count only for ``already_offered`` (a
    trigger and the daily run never both make one offer to an account)."""

    contacts: tuple[PastContact, ...] = ()
    responses: tuple[PastResponse, ...] = ()
    later: tuple[PastContact, ...] = ()

    def reached_since(self, since: datetime, before: datetime) -> list[PastContact]:
        return [c for c in self.contacts if c.reached and since <= c.as_of < before]
