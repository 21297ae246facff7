"""Opportunities: every offer worth considering for one account, with its evidence and its gates.

`find_opportunities` turns one account's signals (domain/signals.py) into candidates of four kinds —
an upsell to a higher plan, an add-on, a cross-sell of a complementary product, a save offer for an
account that may shrink or leave — each with the account's own numbers as reasons (S6), a score for
the strength of that evidence, the MRR it would add, and the gates that disqualify it (S5). The rules
are those of domain.md S3, S4, S5, S8, S9, S11, S12 and S13; docs/opportunities.md states each one
with its numbers, and `Policy` holds every threshold.

Money follows metrics.md's MRR rules: an item's MRR is ``unit_price x quantity / months_in_interval``,
trialing items count 0, and the delta of an offer is the account's MRR with the offer taken minus its
MRR now, in the account's currency at the catalog's price for that currency (price book, otherwise
converted) and the account's billing interval, then converted to the catalog's base currency.

Scores combine independent pieces of evidence as ``1 - prod(1 - strength)``: each piece alone gives
its own strength, and more evidence only raises the score, never past 1.

The package has one module per rule family (upsells.py, add_ons.py, cross_sells.py, saves.py) over
the account view and the evidence they share (_account.py); the candidates' types are in
candidates.py, `Policy` in policy.py, and how numbers, metrics and features read in
domain/wording.py.
"""

from __future__ import annotations

from dataclasses import replace

from upsell.domain.catalog import Catalog
from upsell.domain.offers import Kind
from upsell.domain.opportunities._account import Account
from upsell.domain.opportunities.add_ons import find_add_ons
from upsell.domain.opportunities.candidates import (
    GATES,
    REASON_CODES,
    ROUTES,
    Gate,
    Opportunity,
    Reason,
    Route,
)
from upsell.domain.opportunities.cross_sells import find_cross_sells
from upsell.domain.opportunities.policy import Policy
from upsell.domain.opportunities.saves import find_saves
from upsell.domain.opportunities.upsells import find_upsells
from upsell.domain.signals import AccountSignals, Population
from upsell.domain.strategy import Strategy, strategy_for

__all__ = [
    "GATES",
    "REASON_CODES",
    "ROUTES",
    "Gate",
    "Opportunity",
    "Policy",
    "Reason",
    "Route",
    "find_opportunities",
]


def find_opportunities(
    signals: AccountSignals,
    catalog: Catalog,
    *,
    policy: Policy = Policy(),  # noqa: B008 - frozen: a shared default is safe
    population: Population = Population(),  # noqa: B008 - frozen: a shared default is safe
    strategy: Strategy | None = None,
) -> list[Opportunity]:
    """Every candidate for this account, qualified first, then by priority, then by offer_id.

    `strategy` defaults to the one registered for `catalog.business_model`; kinds it does not
    consider for this account are left out (they are not gated: a strategy is not a
    qualification).
    """
    chosen = strategy if strategy is not None else strategy_for(catalog.business_model)
    account = Account(signals, catalog, policy, population)
    drafts = [
        *find_upsells(account),
        *find_add_ons(account),
        *find_cross_sells(account),
        *find_saves(account),
    ]
    kept = [d for d in drafts if chosen.allows(d.kind, paying=account.paying)]
    found = _smallest_sufficient([(account.finish(d, chosen), d.answers) for d in kept])
    found.sort(key=lambda o: (not o.qualified, -o.priority, o.offer_id))
    return found


#: The kinds that answer the same needs (a limit, a wanted feature) and so compete on price.
_ANSWERING: frozenset[Kind] = frozenset({"upsell", "add_on"})


def _smallest_sufficient(found: list[tuple[Opportunity, frozenset[str]]]) -> list[Opportunity]:
    """Name on an upsell or add-on the cheapest qualified one that costs less a month (base
    currency) and answers every need it answers (`Opportunity.smaller`): the add-on when it
    suffices, the next plan before the one after it. A plan that answers a need the cheaper offer
    does not (a feature only it has, usage the next plan's limit would not hold) has none. The
    decision step makes the smaller offer unless evidence says otherwise (docs/decisions.md)."""
    cheaper = sorted(
        (
            (o.expected_mrr_delta_base.amount, o.offer_id, needs, o)
            for o, needs in found
            if o.qualified and o.kind in _ANSWERING and needs
        ),
        key=lambda t: (t[0], t[1]),
    )
    out = []
    for o, needs in found:
        price = o.expected_mrr_delta_base.amount
        if o.kind in _ANSWERING and needs:
            smaller = next((c for p, _, other, c in cheaper if p < price and needs <= other), None)
            if smaller is not None:
                o = replace(
                    o, smaller=smaller.offer_id, smaller_delta_base=smaller.expected_mrr_delta_base
                )
        out.append(o)
    return out
