"""The candidates the opportunity rules give: `Opportunity`, its `Reason`s, gates and routes.

An `Opportunity` is one offer considered for one account, qualified or not; a `Reason` is one piece
of evidence for it in plain English with the numbers it quotes. `GATES` are what can disqualify an
opportunity (S5), `ROUTES` how it reaches the account, and `REASON_CODES` the codes of the reasons
the rules give (docs/opportunities.md says what each means).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from upsell.domain.calendar import iso
from upsell.domain.money import Money
from upsell.domain.offers import Kind

Gate = Literal[
    "before_activation",
    "too_new",
    "churn_risk",
    "cannot_afford",
    "price_anchor",
    "not_on_required_plan",
    "already_has_item",
    "sales_assisted",
]
GATES: tuple[Gate, ...] = get_args(Gate)
Route = Literal["self_serve", "csm"]
ROUTES: tuple[Route, ...] = get_args(Route)
#: The codes of `Reason`s the rules give (docs/opportunities.md says what each means).
REASON_CODES: tuple[str, ...] = (
    "near_limit",
    "limit_reached",
    "projected_need",
    "blocked_feature",
    "trial_feature",
    "break_even",
    "upgrade_pattern",
    "growing_usage",
    "add_on_cheaper",
    "goal_match",
    "co_adoption",
    "fits_signal",
    "cancel_requested",
    "downgrade_requested",
    "churn_risk",
    "too_expensive",
    "missing_feature",
    "not_using",
    "feature_lost",
    "over_limit",
    "value_received",
    "fits_usage",
)


@dataclass(frozen=True)
class Reason:
    """One piece of evidence in plain English, with the numbers it quotes as `values`."""

    code: str
    text: str
    metric: str | None = None
    feature: str | None = None
    values: Mapping[str, int | float | str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """data-contract.md's reason: ``{"code", "metric"/"feature" when set, **values, "text"}``."""
        out: dict[str, object] = {"code": self.code}
        if self.metric is not None:
            out["metric"] = self.metric
        if self.feature is not None:
            out["feature"] = self.feature
        out.update({k: v for k, v in self.values.items() if k not in ("code", "text")})
        out["text"] = self.text
        return out


@dataclass(frozen=True)
class Opportunity:
    """One candidate offer for one account, qualified or not.

    `offer_id` names the move: ``upsell:basic->pro`` (``upsell:pro`` for an account without a
    plan), ``add_on:extra_seats_5``, ``cross_sell:leadbooster``, ``save:pro`` (keep the plan) and
    ``save:pro->basic`` (move to a lower plan instead of leaving). `expected_mrr_delta` is in the
    account's currency, `expected_mrr_delta_base` in the catalog's; for a save offer it is the MRR
    kept compared with what the account asked for (or with cancelling). `score` in [0, 1] is the
    strength of the evidence; `weight` the strategy's preference for this kind for this account.
    `smaller` names the cheapest qualified offer that answers every need this one answers (with
    its `smaller_delta_base`): the decision step prefers it unless evidence says otherwise.
    """

    account_id: str
    as_of: datetime
    kind: Kind
    offer_id: str
    item_id: str
    from_item_id: str | None
    expected_mrr_delta: Money
    expected_mrr_delta_base: Money
    score: float
    reasons: tuple[Reason, ...]
    gates: tuple[Gate, ...] = ()
    route: Route = "self_serve"
    weight: float = 1.0
    smaller: str | None = None
    smaller_delta_base: Money | None = None

    @property
    def qualified(self) -> bool:
        return not self.gates

    @property
    def expected_value(self) -> float:
        """Score x the MRR delta in the base currency: what the offer is worth, for ranking."""
        return self.score * float(self.expected_mrr_delta_base.amount)

    @property
    def priority(self) -> float:
        """Expected value x the strategy's weight: the ranking key (S3)."""
        return self.expected_value * self.weight

    @property
    def sentence(self) -> str:
        return "; ".join(r.text for r in self.reasons)

    def to_json(self) -> dict[str, object]:
        """data-contract.md's opportunities line, plus `route` (and `smaller`, the cheaper offer
        that answers every need this one answers, when there is one)."""
        out: dict[str, object] = {
            "account_id": self.account_id,
            "as_of": iso(self.as_of),
            "kind": self.kind,
            "offer_id": self.offer_id,
            "item_id": self.item_id,
            "from_item_id": self.from_item_id,
            "expected_mrr_delta": self.expected_mrr_delta.as_string(),
            "currency": self.expected_mrr_delta.currency,
            "score": round(self.score, 4),
            "reasons": [r.to_json() for r in self.reasons],
            "qualified": self.qualified,
            "gates": list(self.gates),
            "route": self.route,
        }
        if self.smaller is not None:
            out["smaller"] = self.smaller
        return out
