"""`upsell run`: opportunities → decisions → messages → delivery → contacts, for one as-of date.

The flow of architecture.md, from the opportunity step on: every account's qualified opportunities
go through the playbooks and guardrails (`upsell.domain.decisions.decide`); each decision gets its
message in the account's language (`upsell.templates`) and is recorded as a contact, then handed
to its channel (`upsell.channels`). A run is idempotent: contacts are keyed by (account, offer,
channel, as-of), the guardrails read only what happened before the as-of instant, and an account
already decided at that instant keeps its stored decision — running twice sends nothing twice. A
delivery that failed (or that a crash interrupted) is retried by the next run at the same as-of.
Each delivery is claimed first (`deliver`), so that two processes delivering the same day (a run
that lost the job's lock, a trigger worker) never send one contact twice.
Held-out accounts are recorded with status ``held_out`` and get nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upsell.channels.base import Channel, Delivery, Outcome
from upsell.domain.answers import Answers
from upsell.domain.calendar import day_start, iso
from upsell.domain.catalog import Catalog
from upsell.domain.contacts import Contact
from upsell.domain.decisions import Choice, Decision, Refusal, decide
from upsell.domain.history import History
from upsell.domain.messages import expires_at, locale_for, message_facts
from upsell.domain.money import Money
from upsell.domain.opportunities import Opportunity, Policy
from upsell.domain.playbooks import DEFAULT_ANCHOR, Playbooks
from upsell.domain.signals import AccountSignals
from upsell.flows.learn import answers_for, stored_answers
from upsell.flows.opportunities import OpportunityRun, find_all
from upsell.store.accounts import names_and_emails, owners
from upsell.store.contacts import (
    claim_delivery,
    contacts_at,
    histories,
    record_contact,
    refusals_at,
    replace_refusals,
    set_delivery,
    trigger_contacts,
)
from upsell.store.locks import holder_alive, holder_id
from upsell.templates import MessageTemplates, RenderError
from upsell.workspace import Workspace

#: How far back the guardrails look (the promotion calendar's 12 months).
HISTORY_DAYS = 366


@dataclass
class RunResult:
    """What a run decided and did. `lines` are data-contract.md's decision lines (held-out
    accounts have none); `held_out` the decisions withheld; `refusals` every guardrail refusal;
    `gates` how many accounts each opportunity gate stopped (each gate once per account with no
    qualified opportunity); `delivered` (channel, status) counts of this run's deliveries;
    `reused` how many accounts kept a decision stored by an earlier run at the same as-of (their
    refusals are kept too), `held_out_reused` how many of those were held out; `elsewhere` how
    many deliveries another process had claimed (and this run left to it)."""

    as_of: date
    opportunities: OpportunityRun
    lines: list[dict[str, Any]] = field(default_factory=list)
    held_out: list[Decision] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    gates: Counter[str] = field(default_factory=Counter)
    delivered: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    reused: int = 0
    held_out_reused: int = 0
    elsewhere: int = 0
    dry_run: bool = False


def decision_line(
    d: Decision, message: Mapping[str, Any], as_of: datetime, price: Money | None = None
) -> dict[str, Any]:
    """data-contract.md's decision line, plus the playbook, P(accept), the expected value (base
    currency), the holdout share the account was drawn at, the promotion, the offered item's
    monthly `price` in the account's currency, and a tooltip's anchor."""
    o = d.opportunity
    line: dict[str, Any] = {
        "account_id": o.account_id,
        "as_of": iso(as_of),
        "kind": o.kind,
        "offer_id": o.offer_id,
        "item_id": o.item_id,
        "from_item_id": o.from_item_id,
        "channel": d.channel,
        "placement": d.placement,
        "variant": d.variant,
        "experiment": d.experiment,
        "expected_mrr_delta": o.expected_mrr_delta.as_string(),
        "currency": o.expected_mrr_delta.currency,
        "score": round(o.score, 4),
        "reasons": [r.to_json() for r in o.reasons],
        "message": dict(message),
        "trial_days": d.trial_days if o.kind != "save" else 0,
        "playbook": d.playbook.id,
        "p_accept": round(d.p_accept, 4),
        "p_source": {"source": "prior"} if d.estimate is None else d.estimate.provenance(),
        "features": {k: round(v, 4) for k, v in (d.features or {}).items()},
        "expected_value": f"{d.expected_value:.2f}",
        "holdout_share": d.holdout_share,
    }
    if price is not None:
        line["price"] = price.as_string()
        line["price_currency"] = price.currency
    if o.smaller is not None:
        line["smaller"] = o.smaller
    if d.placement == "tooltip":
        line["anchor"] = d.playbook.anchor or DEFAULT_ANCHOR
    if d.promotion is not None:
        line["promotion"] = d.promotion.id
    if d.discount_percent is not None:
        line["discount_percent"] = d.discount_percent
        line["discount_months"] = d.discount_months
    return line


@dataclass
class Decider:
    """Decide → render → record → deliver, the one code path of the daily run (`run_offers`) and
    of real-time triggers (flows/triggers.py): the workspace's catalog, playbooks, templates and
    opportunity policy, read once, the accounts' names and emails, and who owns which account
    (`owners`: playbooks.yaml's `guardrails.csm_owner_trait`)."""

    catalog: Catalog
    playbooks: Playbooks
    templates: MessageTemplates
    policy: Policy
    people: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    answers: Answers | None = None
    owners: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, ws: Workspace, catalog: Catalog | None = None) -> Decider:
        """The workspace's decider, with the newest stored answers (docs/learning.md)."""
        catalog = catalog or ws.catalog()
        playbooks = ws.playbooks(catalog)
        answers = stored_answers(ws, playbooks.settings.learning)
        return cls(catalog, playbooks, ws.templates, ws.config.opportunities, answers=answers)

    def decide(
        self,
        signals: AccountSignals,
        opportunities: Sequence[Opportunity],
        history: History,
        at: datetime,
        *,
        trigger: Mapping[str, Any] | None = None,
    ) -> Decided:
        """`upsell.domain.decisions.decide` for one account at `at` (every guardrail, the holdout,
        the experiments), and for its decision the message in the account's language, the
        decision line and the contact to record. `trigger` (``reason``, ``enqueued_at``) marks a
        real-time trigger's decision: its line carries it, its contact the reason."""
        account_id = signals.account_id
        name, email = self.people.get(account_id, (None, None))
        choice: Choice = decide(
            signals,
            opportunities,
            self.playbooks,
            history,
            email=email,
            owner=self.owners.get(account_id),
            policy=self.policy,
            triggered=trigger is not None,
            answers=self.answers,
            explore=self.playbooks.settings.learning.explore,
        )
        d = choice.decision
        if d is None:
            return Decided(choice)
        locale = locale_for(signals.language, signals.country)
        facts = message_facts(d, signals, self.catalog, account_name=name)
        try:
            message = self.templates.render(
                d.playbook.template,
                facts,
                locale=locale,
                checkout_url=self.playbooks.settings.cta_url(
                    d.opportunity.kind, d.opportunity.item_id, d.opportunity.from_item_id
                ),
                expires_at=expires_at(d.deadline),
                html_part=d.channel == "email",
            )
        except RenderError as e:  # this account's facts break the template: the others go on
            refused = Refusal(
                account_id, d.opportunity.offer_id, "template_error", str(e), d.playbook.id
            )
            return Decided(replace(choice, decision=None, refusals=(*choice.refusals, refused)))
        line = decision_line(d, message, at, facts["item"]["price"])
        if trigger is not None:
            line["trigger"] = dict(trigger)
        reason = None if trigger is None else str(trigger["reason"])
        return Decided(choice, line, _contact(d, line, at, trigger=reason))


@dataclass(frozen=True)
class Decided:
    """One account's choice, and for its decision the decision line and the contact to record."""

    choice: Choice
    line: dict[str, Any] | None = None
    contact: Contact | None = None


def record(conn: sa.Connection, contacts: Iterable[Contact]) -> None:
    """Record decided contacts (once each: `record_contact`) on `conn`'s transaction."""
    for contact in contacts:
        record_contact(conn=conn, contact=contact)


#: How long a delivery's claim holds (store/contacts.py, `claim_delivery`): longer than the
#: slowest delivery (a webhook's retries take about a minute at the default settings). A process
#: that died while it delivered on this host frees its claim at once; on another host, after this.
CLAIM_LEASE = timedelta(minutes=10)


def _immediate(db: sa.Engine) -> AbstractContextManager[sa.Connection]:
    """A transaction that reads, then writes: IMMEDIATE takes SQLite's write lock up front."""

    @contextmanager
    def begin() -> Iterator[sa.Connection]:
        with db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            yield conn

    return begin()


def _gone(holder: str) -> bool:
    return holder_alive(holder) is False


def deliver(
    db: sa.Engine,
    channels: Mapping[str, Channel],
    contacts: Iterable[Contact],
    people: Mapping[str, tuple[str | None, str | None]],
    *,
    begin: Callable[[], AbstractContextManager[sa.Connection]] | None = None,
    claimer: str | None = None,
) -> list[tuple[Contact, Outcome]]:
    """Hand recorded contacts to their channels and record how each delivery went. Each contact
    is first claimed by this process (`claimer`), in a transaction of its own, and skipped when
    it is not to be delivered any more or another live process claimed it: two processes
    delivering one day never send one contact twice. The outcome is recorded in a transaction
    each, after the channel answered (`begin`'s, else the database's)."""
    claimer = claimer or holder_id()
    out = []
    for contact in contacts:
        assert contact.contact_id is not None
        with begin() if begin is not None else _immediate(db) as conn:
            claimed = claim_delivery(
                conn=conn,
                contact_id=contact.contact_id,
                claimer=claimer,
                now=datetime.now(UTC),
                lease=CLAIM_LEASE,
                gone=_gone,
            )
        if not claimed:
            continue
        outcome = _deliver(channels, contact, people)
        with (begin or db.begin)() as conn:
            set_delivery(
                conn=conn,
                contact_id=contact.contact_id,
                status=outcome.status,
                attempts=max(outcome.attempts, 1),
                detail=outcome.detail,
                at=datetime.now(UTC),
            )
        out.append((contact, outcome))
    return out


def run_offers(
    ws: Workspace,
    as_of: date,
    *,
    channels: Mapping[str, Channel] | None,
    rebuild: bool = False,
) -> RunResult:
    """Decide, record and deliver the offers of `as_of` with the workspace's playbooks, templates
    and policy. `channels` None is a dry run: everything is decided and written, nothing is
    recorded or sent."""
    at = day_start(as_of)
    dry = channels is None
    db = ws.db
    decider = Decider.of(ws)
    decider.answers = answers_for(ws, as_of, decider.playbooks.settings.learning, refit=not dry)
    found = find_all(ws, as_of, rebuild=rebuild, keep_signals=True)
    same_offer = timedelta(days=decider.playbooks.guardrails.same_offer_days)
    with db.connect() as conn:
        stored = {c.account_id: c for c in contacts_at(conn=conn, as_of=at) if c.decision}
        kept_refusals = [r for r in refusals_at(conn=conn, as_of=at) if r.account_id in stored]
        past = histories(conn=conn, before=at, since=at - timedelta(days=HISTORY_DAYS))
        # The triggers' contacts since the as-of instant (already_offered).
        later = trigger_contacts(conn=conn, since=at, until=at + same_offer)
        decider.people = names_and_emails(conn=conn)
        decider.owners = owners(conn=conn, trait=decider.playbooks.guardrails.csm_owner_trait)
    result = RunResult(as_of=as_of, opportunities=found, dry_run=dry)
    # An account decided by an earlier run at this instant keeps that run's refusals too.
    result.refusals.extend(kept_refusals)

    by_account: dict[str, list[Opportunity]] = {}
    for o in found.opportunities:
        by_account.setdefault(o.account_id, []).append(o)
    new: list[Contact] = []
    for account_id, opportunities in sorted(by_account.items()):
        if not any(o.qualified for o in opportunities):
            result.gates.update({g for o in opportunities for g in o.gates})
            continue
        if account_id in stored:
            result.reused += 1
            contact = stored[account_id]
            if contact.held_out:
                result.held_out_reused += 1
            elif contact.decision is not None:
                result.lines.append(dict(contact.decision))
            continue
        history = past.get(account_id) or History()
        if account_id in later:
            history = replace(history, later=later[account_id])
        decided = decider.decide(found.signals[account_id], opportunities, history, at)
        result.refusals.extend(decided.choice.refusals)
        d = decided.choice.decision
        if d is None or decided.line is None or decided.contact is None:
            continue
        if d.held_out:
            result.held_out.append(d)
        else:
            result.lines.append(decided.line)
        new.append(decided.contact)
    if dry:
        return result

    # Reads, then writes, while the service may be writing events: IMMEDIATE takes SQLite's write
    # lock up front (store/db.py) instead of failing when another writer commits in between.
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        record(conn, new)
        # In account order (stable): a run repeated for the instant stores the same rows.
        result.refusals.sort(key=lambda r: r.account_id)
        replace_refusals(conn=conn, as_of=at, refusals=result.refusals)
    with db.connect() as conn:
        pending = [
            c
            for c in contacts_at(conn=conn, as_of=at)
            if c.status == "failed" or (c.status == "queued" and c.attempts == 0)
        ]
    assert channels is not None
    done = deliver(db, channels, pending, decider.people)
    # Left to another process that claimed them first (a run that lost the job's lock).
    result.elsewhere = len(pending) - len(done)
    for contact, outcome in done:
        result.delivered[(contact.channel, outcome.status)] += 1
        if outcome.status == "failed":
            result.failures.append((contact.account_id, contact.channel, outcome.detail or ""))
    return result


def _contact(d: Decision, line: Mapping[str, Any], at: datetime, trigger: str | None) -> Contact:
    o = d.opportunity
    return Contact(
        account_id=o.account_id,
        as_of=at,
        kind=o.kind,
        offer_id=o.offer_id,
        item_id=o.item_id,
        channel=d.channel,
        placement=d.placement,
        playbook=d.playbook.id,
        experiment=d.experiment,
        variant=d.variant,
        held_out=d.held_out,
        status="held_out" if d.held_out else "queued",
        message=line["message"],
        expected_mrr_delta=o.expected_mrr_delta,
        promotion=d.promotion.id if d.promotion is not None else None,
        decision=dict(line),
        trigger=trigger,
    )


def _deliver(
    channels: Mapping[str, Channel],
    contact: Contact,
    people: Mapping[str, tuple[str | None, str | None]],
) -> Outcome:
    channel = channels.get(contact.channel)
    if channel is None:
        return Outcome("failed", attempts=0, detail=f"no channel {contact.channel!r} is set up")
    name, email = people.get(contact.account_id, (None, None))
    key = f"{contact.account_id}:{contact.offer_id}:{contact.channel}:{iso(contact.as_of)}"
    return channel.deliver(
        Delivery(
            contact_id=contact.contact_id,
            account_id=contact.account_id,
            channel=contact.channel,
            idempotency_key=key,
            payload=dict(contact.decision or {}),
            email=email,
            account_name=name,
        )
    )
