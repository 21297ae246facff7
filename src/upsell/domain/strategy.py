"""Strategy by business model (domain.md S3): which kinds of offer to consider, and which first.

A strategy does not qualify an account (that is the gates' job in opportunities/); it says which
kinds of offer a business model makes at all, at what stage of the customer's life, and how much it
prefers one kind to another. The opportunity rules rank candidates by expected value x the
strategy's weight for the candidate's kind.

The stages are read off the account: *paying* (it holds a paid item or has paid before) and *large*
(`Policy.large`: at least `csm_min_employees` employees). S3, as encoded in `STRATEGIES`:

- **saas**: upsell to higher tiers first; cross-sell complementary modules to the bigger (enterprise)
  accounts, whose cross-sell weight rises to that of an upsell.
- **freemium**: single premium features (add-ons) first; the full plan once the account pays.
- **game**: the premium edition (upsell) at launch, even before activation; DLC (add-ons) and
  companion products only after the first purchase, and then first.
- **software**: the edition (upsell) at first purchase, even before activation; specialist add-ons
  and complementary products once the account is activated, whatever the policy says.

Plugins add or replace a model's strategy with `register_strategy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from upsell.domain.offers import KINDS, Kind


@dataclass(frozen=True)
class Strategy:
    """Which kinds of offer a business model makes, and how much it prefers each.

    `preference` weighs each kind (a kind missing from it weighs 1.0); `paying_preference` and
    `large_preference` override it for paying and for large accounts (large wins where both say
    something). Kinds in `after_first_purchase` are only considered for accounts that pay or have
    paid; kinds in `at_first_purchase` skip the timing gates (before_activation, too_new) while the
    account has never paid — the checkout offer; kinds in `after_activation` wait for activation
    even when the policy does not require it.
    """

    kinds: tuple[Kind, ...]
    preference: Mapping[Kind, float] = field(default_factory=dict)
    paying_preference: Mapping[Kind, float] = field(default_factory=dict)
    large_preference: Mapping[Kind, float] = field(default_factory=dict)
    after_first_purchase: frozenset[Kind] = frozenset()
    at_first_purchase: frozenset[Kind] = frozenset()
    after_activation: frozenset[Kind] = frozenset()

    def __post_init__(self) -> None:
        named = {
            *self.kinds,
            *self.preference,
            *self.paying_preference,
            *self.large_preference,
            *self.after_first_purchase,
            *self.at_first_purchase,
            *self.after_activation,
        }
        unknown = sorted(k for k in named if k not in KINDS)
        if unknown:
            raise ValueError(f"unknown offer kinds {unknown}: expected {', '.join(KINDS)}")
        for weights in (self.preference, self.paying_preference, self.large_preference):
            for kind, weight in weights.items():
                if not weight >= 0:
                    raise ValueError(f"the weight of {kind} must be >= 0, got {weight}")

    def allows(self, kind: Kind, *, paying: bool) -> bool:
        """Whether this strategy considers `kind` for an account at this stage."""
        if kind not in self.kinds:
            return False
        return paying or kind not in self.after_first_purchase

    def weight(self, kind: Kind, *, paying: bool, large: bool) -> float:
        """The ranking weight of `kind` for an account at this stage."""
        for weights, applies in (
            (self.large_preference, large),
            (self.paying_preference, paying),
            (self.preference, True),
        ):
            if applies and kind in weights:
                return float(weights[kind])
        return 1.0

    def skips_timing_gates(self, kind: Kind, *, paying: bool) -> bool:
        """True for a first-purchase offer (S3: the edition at checkout, before activation)."""
        return not paying and kind in self.at_first_purchase

    def waits_for_activation(self, kind: Kind) -> bool:
        return kind in self.after_activation


_ALL: tuple[Kind, ...] = ("upsell", "add_on", "cross_sell", "save")

_registry: dict[str, Strategy] = {
    "saas": Strategy(
        kinds=_ALL,
        preference={"upsell": 1.0, "add_on": 0.8, "cross_sell": 0.5, "save": 1.0},
        large_preference={"cross_sell": 1.0},
    ),
    "freemium": Strategy(
        kinds=_ALL,
        preference={"add_on": 1.0, "upsell": 0.6, "cross_sell": 0.5, "save": 1.0},
        paying_preference={"upsell": 1.0},
    ),
    "game": Strategy(
        kinds=_ALL,
        preference={"upsell": 1.0, "add_on": 0.9, "cross_sell": 0.6, "save": 1.0},
        paying_preference={"add_on": 1.0, "upsell": 0.8, "cross_sell": 0.8},
        after_first_purchase=frozenset({"add_on", "cross_sell"}),
        at_first_purchase=frozenset({"upsell"}),
    ),
    "software": Strategy(
        kinds=_ALL,
        preference={"upsell": 1.0, "add_on": 0.8, "cross_sell": 0.6, "save": 1.0},
        at_first_purchase=frozenset({"upsell"}),
        after_activation=frozenset({"add_on", "cross_sell"}),
    ),
}

#: The strategy of each business model, read-only; `register_strategy` adds to it.
STRATEGIES: Mapping[str, Strategy] = MappingProxyType(_registry)


def register_strategy(model: str, strategy: Strategy) -> None:
    """Add (or replace) the strategy of business model `model`: the plugin hook."""
    if not model:
        raise ValueError("a business model needs a name")
    _registry[model] = strategy


def strategy_for(model: str) -> Strategy:
    """The strategy registered for `model`; KeyError naming the known models otherwise."""
    try:
        return _registry[model]
    except KeyError:
        raise KeyError(
            f"no strategy for business model {model!r}: known {', '.join(sorted(_registry))}"
        ) from None
