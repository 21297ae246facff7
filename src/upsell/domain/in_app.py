"""What the in-app widget may show a user now: display-time guardrails over stored contacts (S10).

The decision step queues an in-app offer as a contact; the widget asks for it later, maybe days
later. What held when the offer was decided may not hold when it would be shown, so the rules are
applied again at display time:

- only the newest live in-app contact of an account is served: an older one is *superseded*;
- a contact that was dismissed, converted or clicked is never served again, nor one whose offer
  has expired (the message's ``expires_at``);
- a modal interrupts once: shown, it is not served again; a banner or a tooltip stays until it is
  answered or expires;
- a contact addressed to one user (``user_id``) is served only to that user;
- the in-app caps of playbooks.yaml (``guardrails.caps`` on ``in_app``, per placement or not, and
  the caps over all channels) count the messages *shown* in their window: a message not yet shown
  is served only if showing it keeps every cap.

Pure: the caller reads the contacts and the recent showings from the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from upsell.domain.playbooks import Cap

IN_APP = "in_app"
#: What the widget reports, and the response each is recorded as (`domain.contacts.Response`).
WIDGET_EVENTS: dict[str, str] = {
    "shown": "shown",
    "clicked": "clicked",
    "dismissed": "dismissed",
    "converted": "accepted",
}


@dataclass(frozen=True)
class Queued:
    """A stored in-app contact as the display rules see it."""

    contact_id: int
    account_id: str
    as_of: datetime
    placement: str
    user_id: str | None = None
    expires_at: datetime | None = None
    shown_at: datetime | None = None
    clicked_at: datetime | None = None
    dismissed_at: datetime | None = None
    converted_at: datetime | None = None


@dataclass(frozen=True)
class Shown:
    """A message shown to an account: which contact, on which placement, when."""

    contact_id: int
    account_id: str
    channel: str
    placement: str | None
    at: datetime


def servable(
    queued: Iterable[Queued],
    shown: Sequence[Shown],
    caps: Iterable[Cap],
    *,
    user_id: str,
    now: datetime,
) -> list[Queued]:
    """The contacts to show `user_id` at `now`, newest first, at most one per account (the
    module's rules). `shown` holds the account's showings within the longest cap's window."""
    newest: dict[str, Queued] = {}
    for q in queued:
        held = newest.get(q.account_id)
        if held is None or (q.as_of, q.contact_id) > (held.as_of, held.contact_id):
            newest[q.account_id] = q
    in_app_caps = [c for c in caps if c.channel in (None, IN_APP)]
    out: list[Queued] = []
    for q in newest.values():
        if q.user_id is not None and q.user_id != user_id:
            continue
        if q.dismissed_at or q.clicked_at or q.converted_at:
            continue
        if q.expires_at is not None and q.expires_at <= now:
            continue
        if q.shown_at is not None:
            if q.placement == "modal":
                continue
            out.append(q)  # already counted by the caps when it was first shown
            continue
        if _capped(q, [s for s in shown if s.account_id == q.account_id], in_app_caps, now):
            continue
        out.append(q)
    return sorted(out, key=lambda q: (q.as_of, q.contact_id), reverse=True)


def _capped(q: Queued, shown: Sequence[Shown], caps: Sequence[Cap], now: datetime) -> bool:
    for cap in caps:
        if cap.placement is not None and cap.placement != q.placement:
            continue
        since = now - timedelta(days=cap.days)
        n = sum(
            1
            for s in shown
            if s.contact_id != q.contact_id
            and since <= s.at <= now
            and (cap.channel is None or s.channel == cap.channel)
            and (cap.placement is None or s.placement == cap.placement)
        )
        if n + 1 > cap.max:
            return True
    return False


def longest_window(caps: Iterable[Cap]) -> int:
    """Days of showings `servable` needs: the longest in-app (or all-channel) cap's window."""
    return max((c.days for c in caps if c.channel in (None, IN_APP)), default=0)
