"""The customers of the demo page (docs/in-app.md, "The demo page"): accounts with an in-app
message the widget would show now, each with one of its users to sign in as."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from upsell.domain.contacts import Contact
from upsell.domain.in_app import IN_APP
from upsell.domain.offers import PLACEMENTS
from upsell.flows.messages import caps_of, messages_for
from upsell.store.accounts import names_and_emails
from upsell.store.messages import a_user_of, unanswered_in_app
from upsell.workspace import Workspace

#: The in-app contacts the page looks through, newest first.
SCAN = 2000


@dataclass(frozen=True)
class DemoCustomer:
    """A user to sign in as, and the message `GET /v1/messages` serves that user now."""

    account_id: str
    account_name: str | None
    user_id: str
    message: Contact

    @property
    def placement(self) -> str:
        return self.message.placement or "banner"


def demo_customers(ws: Workspace, *, now: datetime, per_placement: int = 8) -> list[DemoCustomer]:
    """Up to `per_placement` customers for each in-app placement (banner, tooltip, modal) whose
    newest in-app message is servable at `now` (`messages_for`, the widget's own answer), in
    placement order, then by account."""
    with ws.db.connect() as conn:
        newest: dict[str, Contact] = {}
        for contact in unanswered_in_app(conn=conn, limit=SCAN):
            newest.setdefault(contact.account_id, contact)
        users = a_user_of(conn=conn, account_ids=newest)
        names = names_and_emails(conn=conn)
    order = {p: i for i, p in enumerate(PLACEMENTS[IN_APP])}
    caps = caps_of(ws)
    found: list[DemoCustomer] = []
    taken: Counter[str] = Counter()
    for account, contact in sorted(
        newest.items(), key=lambda item: (order.get(item[1].placement or "", 99), item[0])
    ):
        placement = contact.placement or "banner"
        user = contact.user_id or users.get(account)
        if taken[placement] >= per_placement or user is None:
            continue
        served = messages_for(ws, user_id=user, account_id=account, now=now, caps=caps)
        if served and served[0].contact.contact_id == contact.contact_id:
            taken[placement] += 1
            found.append(DemoCustomer(account, names.get(account, (None, None))[0], user, contact))
    return found
