"""The catalog as the world uses it: what it sells, as arrays indexed by item number.

An item's number is its position in `Items.ids`: the plans first (in the catalog's order, so a
higher number is a higher tier), then the add-ons, then the products. Features, limits, grants and
prices are numpy arrays over those numbers, so the world's rules can look them up for all accounts
at once. Built once per world from the catalog and the business model's profile.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from upsell.domain.catalog import AddOn, Catalog, Condition, Plan, Product
from upsell.domain.money import INTERVALS
from upsell.domain.subscriptions import row_mrr
from upsell.simulator.population import COUNTRIES
from upsell.simulator.profiles import Profile

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


class Items:
    """Plans, add-ons and products by number, with their features, limits, grants and prices."""

    def __init__(self, catalog: Catalog, profile: Profile) -> None:
        cat = self.catalog = catalog
        self.plans: tuple[Plan, ...] = cat.plans
        self.add_ons: tuple[AddOn, ...] = cat.add_ons
        self.products: tuple[Product, ...] = cat.products
        self.ids: list[str] = (
            [p.id for p in self.plans]
            + [a.id for a in self.add_ons]
            + [p.id for p in self.products]
        )
        self.index = {item: k for k, item in enumerate(self.ids)}
        self.n_plans = len(self.plans)
        self.addon_base = self.n_plans
        self.product_base = self.n_plans + len(self.add_ons)
        self.plan_free: B = np.array([p.prices["month"].amount == 0 for p in self.plans])
        self.top_self_serve = max(k for k, p in enumerate(self.plans) if not p.sales_assisted)
        # Features: every feature any plan or add-on unlocks, with the tier that first has it.
        features: dict[str, float] = {}
        for k, plan in enumerate(self.plans):
            for f in sorted(plan.features):
                features.setdefault(f, float(k))
        for a in self.add_ons:
            lowest = min(self.index[r] for r in a.requires) if a.requires else 0
            for f in sorted(a.features):
                features.setdefault(f, lowest + 0.5)
        self.features = list(features)
        self.feature_tier: F64 = np.array([features[f] for f in self.features])
        self.plan_has: B = np.array(
            [[f in p.features for f in self.features] for p in self.plans], dtype=bool
        )
        self.addon_has: B = np.array(
            [[f in a.features for f in self.features] for a in self.add_ons], dtype=bool
        ).reshape(len(self.add_ons), len(self.features))
        # Limits per plan for the simulated metrics (inf = unlimited), and add-on grants.
        self.metrics = (
            [g.metric for g in profile.trait_gauges]
            + [g.metric for g in profile.measured_gauges]
            + [c.metric for c in profile.counters]
        )
        self.plan_limit = {
            m: np.array(
                [float(p.limits[m]) if p.limits.get(m) is not None else np.inf for p in self.plans]
            )
            for m in self.metrics
        }
        self.addon_grant = {
            m: np.array([float(a.grants.get(m, 0)) for a in self.add_ons]) for m in self.metrics
        }
        self.currencies = sorted({c[1] for c in COUNTRIES})
        # Unit prices as strings, [item][interval][currency]; None where the item has no such price.
        self.price_text: list[list[list[str | None]]] = []
        self.price_value: F64 = np.zeros((len(self.ids), 2, len(self.currencies)))
        for item in self.ids:
            per_interval: list[list[str | None]] = []
            for v, interval in enumerate(INTERVALS):
                row: list[str | None] = []
                for c, cur in enumerate(self.currencies):
                    money = cat.price(item, interval, self.currency(cur))
                    row.append(f"{money.amount:.2f}" if money else None)
                    if money:
                        mrr = row_mrr(money, 1, interval, "active", cat.fx)
                        self.price_value[self.index[item], v, c] = float(mrr.amount)
                per_interval.append(row)
            self.price_text.append(per_interval)
        #: The catalog's activation rule as (event, properties, count) steps: all its ``all_of``
        #: conditions and the first of its ``any_of``.
        self.activation_steps = _activation_steps(cat)

    def currency(self, currency: str) -> str:
        """The currency an account of `currency` is charged in: its own if it is the catalog's or the
        catalog has an exchange rate for it, the catalog's otherwise."""
        return (
            currency
            if currency == self.catalog.currency or currency in self.catalog.fx.rates
            else self.catalog.currency
        )


def _activation_steps(catalog: Catalog) -> list[tuple[str, str | None, int]]:
    rule = catalog.activation
    if rule is None:
        return []
    steps = []
    parts = list(rule.all_of) + list(rule.any_of[:1])
    for part in parts:
        for cond in [part] if isinstance(part, Condition) else list(part.conditions()):
            props = json.dumps(dict(cond.where)) if cond.where else None
            steps.append((cond.event, props, cond.at_least))
    return steps
