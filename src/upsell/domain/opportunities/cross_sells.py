"""Cross-sells: a complementary product whose fits signals hold (S12: personalised by usage), that
unlocks a wanted feature, or that customers like this one bought.
"""

from __future__ import annotations

from upsell.domain.catalog import Product
from upsell.domain.opportunities._account import Account, Draft, Evidence, combine
from upsell.domain.opportunities.candidates import Reason
from upsell.domain.wording import goals_phrase, number


def find_cross_sells(a: Account) -> list[Draft]:
    """Complementary products whose fits signals hold (S12: personalised by usage), that unlock
    a wanted feature, or that customers like this one bought."""
    drafts = []
    for product in a.catalog.products:
        price = a.list_mrr(product.id)
        if price is None:
            continue
        evidence: list[Evidence] = []
        holding = [sig for sig in product.fits_signals if sig in a.s.signals]
        for i, sig in enumerate(holding):
            strength = 0.5 if i == 0 else 0.15
            evidence.append(Evidence(_signal_reason(a, sig, product), strength))
        for f, how in a.wanted(product.features):
            evidence.append(a.feature_evidence(f, how, f"{product.name} unlocks it"))
        evidence += a.co_adoption(product.id)
        if not evidence:
            continue
        draft = Draft(
            kind="cross_sell",
            offer_id=f"cross_sell:{product.id}",
            item_id=product.id,
            from_item_id=None,
            delta=price,
            score=min(0.9, combine(e.strength for e in evidence)),
            reasons=[e.reason for e in evidence],
        )
        if product.id in a.held:
            draft.gates.add("already_has_item")
        if a.anchored(price):
            draft.gates.add("price_anchor")
        if a.plan is not None and a.plan.sales_assisted and a.large:
            draft.route = "csm"
        drafts.append(draft)
    return drafts


def _signal_reason(a: Account, signal_id: str, product: Product) -> Reason:
    sig = a.catalog.signals.get(signal_id)
    serves = (
        f"{product.name} helps you {goals_phrase(sorted(product.goals))}"
        if product.goals
        else (f"{product.name} is made for that")
    )
    if sig is None:
        return Reason(
            "fits_signal", f"your usage shows {signal_id}; {serves}", values={"signal": signal_id}
        )
    where = "".join(f" with {k} {v}" for k, v in sorted(sig.where.items()))
    text = (
        f"at least {number(sig.at_least)} {sig.event} events{where} in the last "
        f"{sig.window_days} days — {serves}"
    )
    values: dict[str, int | float | str] = {
        "signal": signal_id,
        "at_least": sig.at_least,
        "window_days": sig.window_days,
    }
    return Reason("fits_signal", text, values=values)
