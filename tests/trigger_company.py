"""A small company for the real-time trigger tests (tests/test_triggers.py, bench/triggers.py):
one account per case, each set up so that exactly one thing decides what a trigger does for it.

Every account is on Basic (5 seats) with 3 seats in use, signed up 90 days ago and active on ten
of the last 30 days, and reached the 'aha moment' (a ``Project Created``) — unless its case says
otherwise. Nothing qualifies it for an offer until a ``Limit Reached`` of today (or a rise of its
``seats`` trait to the limit) does: so an offer made by a trigger shows that the triggering event
of today was counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from upsell.config.playbooks import parse_playbooks
from upsell.domain.accounts import Account
from upsell.domain.contacts import Contact
from upsell.domain.decisions import held_out
from upsell.domain.events import Event
from upsell.domain.money import Money
from upsell.domain.playbooks import Playbooks
from upsell.domain.subscriptions import SubscriptionItem

CATALOG = """\
currency: USD
business_model: saas
metrics:
  seats: {kind: gauge, source: {trait: seats}}
activation:
  all_of:
    - {event: "Project Created", at_least: 1}
plans:
  - id: basic
    name: Basic
    price: {month: 29}
    limits: {seats: 5}
    features: [boards]
  - id: pro
    name: Pro
    price: {month: 99}
    limits: {seats: 25}
    features: [boards, automation]
"""

PLAYBOOKS = """\
settings:
  holdout: {share: 0.10, key: holdout}
playbooks:
  - id: limit-reached-modal
    trigger: {kind: upsell, reasons: [limit_reached], country: [US]}
    offer: {trial_days: 14}
    channel: in_app
    placement: modal
    template: limit_reached
    experiment:
      id: limit-modal-trial-length
      variants:
        - {id: A}
        - {id: B, offer: {trial_days: 21}}
"""

OFFER = "upsell:basic->pro"
#: The cases: what each account has that decides a trigger's outcome.
CASES = (
    "offer",  # nothing in the way: an in-app modal
    "gauge",  # no event: its seats trait rises to the limit on a group call
    "quiet",  # a support ticket open: quiet_period
    "dismissed",  # dismissed an offer 3 days ago: dismissed_cooldown
    "capped",  # an in-app modal 5 days ago (another offer): frequency_cap
    "holdout",  # in the holdout: recorded held out, nothing shown
    "no_playbook",  # in Germany, where no playbook runs: no_playbook
    "pre_aha",  # never created a project: gated before activation, nothing decided
)


def playbooks() -> Playbooks:
    return parse_playbooks(PLAYBOOKS)


def account_ids(tag: str = "") -> dict[str, str]:
    """Case → account id: `tag` + the case + the first suffix that puts it in the holdout
    exactly when the case is "holdout" (the holdout is a hash of the id)."""
    books = playbooks()
    out = {}
    for case in CASES:
        n = 0
        while held_out(f"{tag}{case}-{n}", books) != (case == "holdout"):
            n += 1
        out[case] = f"{tag}{case}-{n}"
    return out


@dataclass(frozen=True)
class Seeded:
    accounts: list[Account]
    items: list[SubscriptionItem]
    events: list[Event]
    contacts: list[Contact]


def seed(ids: dict[str, str], now: datetime) -> Seeded:
    """The store's rows for the cases of `ids` (case → account id), as of `now`."""
    created = now - timedelta(days=90)
    accounts: list[Account] = []
    items: list[SubscriptionItem] = []
    events: list[Event] = []
    contacts: list[Contact] = []
    for case, account_id in ids.items():
        accounts.append(
            Account(
                account_id,
                created,
                name=f"{case} Inc",
                industry="software",
                employees=12,
                country="DE" if case == "no_playbook" else "US",
                currency="USD",
                language="en",
                email=f"{case}@example.com",
                traits={"seats": 3},
            )
        )
        items.append(
            SubscriptionItem(
                account_id=account_id,
                item_id="basic",
                started_at=created,
                ended_at=None,
                unit_price=Money(Decimal("29"), "USD"),
                quantity=1,
                interval="month",
                status="active",
            )
        )
        events.extend(_history(case, account_id, now))
        if case == "capped":
            contacts.append(
                Contact(
                    account_id=account_id,
                    as_of=now - timedelta(days=5),
                    kind="upsell",
                    offer_id="upsell:basic->enterprise",
                    item_id="enterprise",
                    channel="in_app",
                    placement="modal",
                    playbook="an-earlier-modal",
                    status="sent",
                    message={"subject": "an earlier offer"},
                )
            )
    return Seeded(accounts, items, events, contacts)


def _history(case: str, account_id: str, now: datetime) -> Iterator[Event]:
    def event(name: str, at: datetime, **properties: object) -> Event:
        key = f"{account_id}:{name}:{at.isoformat()}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return Event(f"seed-{digest}", account_id, name, at, f"{account_id}-u1", properties)

    for day in range(1, 30, 3):  # active on ten of the last 30 days
        yield event("Board Viewed", now - timedelta(days=day, hours=1))
    if case != "pre_aha":
        yield event("Project Created", now - timedelta(days=60))
    if case == "quiet":
        yield event("Support Ticket Opened", now - timedelta(days=2), ticket_id="t-1")
    if case == "dismissed":
        yield event("Offer Dismissed", now - timedelta(days=3), offer_id="upsell:basic->pro")


def create(folder: Path, database_url: str, ids: dict[str, str], now: datetime) -> dict[str, str]:
    """A new workspace at `folder` on `database_url` holding the cases of `ids` as of `now`, with
    one key of each kind; returns the keys' text by kind."""
    from upsell.settings import Settings
    from upsell.store.accounts import upsert_accounts
    from upsell.store.catalogs import save_catalog_version
    from upsell.store.contacts import record_contact
    from upsell.store.events import add_events
    from upsell.store.keys import create_key
    from upsell.store.subscriptions import upsert_subscription_items
    from upsell.workspace import Workspace

    url = None if database_url.startswith("sqlite") else database_url
    seeded = seed(ids, now)
    with Workspace.create(folder, Settings(database_url=url)) as ws, ws.db.begin() as conn:
        sha = hashlib.sha256(CATALOG.encode()).hexdigest()
        save_catalog_version(conn=conn, text=CATALOG, sha256=sha, source="catalog.yaml")
        upsert_accounts(conn=conn, accounts=seeded.accounts)
        upsert_subscription_items(conn=conn, items=seeded.items)
        add_events(conn=conn, events=seeded.events, now=now)
        for contact in seeded.contacts:
            record_contact(conn=conn, contact=contact)
        kinds = ("write", "publishable", "admin")
        keys = {kind: create_key(conn=conn, kind=kind)[1] for kind in kinds}
    (folder / "playbooks.yaml").write_text(PLAYBOOKS)
    return keys


def with_seats(account: Account, seats: int) -> Account:
    return replace(account, traits={**account.traits, "seats": seats})
