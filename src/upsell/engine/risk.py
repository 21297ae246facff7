"""Churn risk per account: payment failures in the 30 days, open support tickets, the last NPS
answer, a downgrade or a cancellation asked for in the 30 days and the latest cancellation's reason
(domain/signals.py's `Risk`), for the accounts table."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from upsell.domain.events import (
    CANCEL_REQUESTED,
    DOWNGRADE_REQUESTED,
    PAYMENT_FAILED,
    SUPPORT_TICKET_CLOSED,
    SUPPORT_TICKET_OPENED,
    SURVEY_ANSWERED,
)
from upsell.engine._as_of import AsOf, attach, window


def risk(at: AsOf) -> ir.Table:
    """One row per account; a column is null when the account has no such event (the accounts
    table fills the counts with 0 and `cancel_requested` with false)."""
    u = at.usage
    failures = _count(window(at.events(PAYMENT_FAILED), at.d30), "payment_failures_30d")
    tickets = u.filter(u.event.isin([SUPPORT_TICKET_OPENED, SUPPORT_TICKET_CLOSED]))
    open_ = tickets.group_by("account_id").aggregate(
        open_tickets=ibis.greatest(
            ibis.ifelse(tickets.event == SUPPORT_TICKET_OPENED, tickets.n, -tickets.n).sum(), 0
        )
    )
    s = u.filter((u.event == SURVEY_ANSWERED) & u.last_value.notnull())
    nps = s.group_by("account_id").aggregate(nps_score=s.last_value.argmax(s.last_at))
    d = window(at.events(DOWNGRADE_REQUESTED), at.d30)
    down = d.group_by("account_id").aggregate(downgrade_requested_to=d.key.argmax(d.last_at))
    c = window(at.events(CANCEL_REQUESTED), at.d30)
    cancel = c.group_by("account_id").aggregate(
        cancel_requested=c.count() > 0, cancel_reason=c.key.argmax(c.last_at).nullif("")
    )
    return attach(at.accounts.select("account_id"), failures, open_, nps, down, cancel)


def _count(table: ir.Table, name: str) -> ir.Table:
    """Per account, the sum of the rollup rows' event counts, as column `name`."""
    return table.group_by("account_id").aggregate(**{name: table.n.sum()})
