"""The catalog as tables of the back end, for the signal tables to join: its items with their kind
and tier, and the limits plans set and add-ons grant."""

from __future__ import annotations

import ibis.expr.types as ir
import pyarrow as pa

from upsell.domain.catalog import AddOn, Catalog, Plan, Product
from upsell.engine.backends import Backend


def _catalog_items(catalog: Catalog) -> pa.Table:
    """Every plan, add-on and product with its kind, and the tier of a plan (-1 otherwise)."""
    rows: list[tuple[str, str, int]] = []
    items: tuple[Plan | AddOn | Product, ...] = (
        *catalog.plans,
        *catalog.add_ons,
        *catalog.products,
    )
    for item in items:
        tier = item.tier if isinstance(item, Plan) else -1
        rows.append((item.id, str(catalog.kind_of(item.id)), tier))
    return pa.table(
        {
            "item_id": pa.array([r[0] for r in rows], pa.string()),
            "item_kind": pa.array([r[1] for r in rows], pa.string()),
            "tier": pa.array([r[2] for r in rows], pa.int64()),
        }
    )


def _catalog_limits(catalog: Catalog) -> pa.Table:
    rows: list[tuple[str, str, float, bool]] = []
    for plan in catalog.plans:
        rows += [(plan.id, m, float(v), False) for m, v in plan.limits.items()]
    for add_on in catalog.add_ons:
        rows += [(add_on.id, m, float(v), True) for m, v in add_on.grants.items()]
    return pa.table(
        {
            "item_id": pa.array([r[0] for r in rows], pa.string()),
            "metric": pa.array([r[1] for r in rows], pa.string()),
            "amount": pa.array([r[2] for r in rows], pa.float64()),
            "grant": pa.array([r[3] for r in rows], pa.bool_()),
        }
    )


def catalog_items(backend: Backend, catalog: Catalog) -> ir.Table:
    """The catalog's plans, add-ons and products as a table: ``item_id, item_kind, tier``."""
    return backend.table(_catalog_items(catalog), "catalog_items")


def catalog_limits(backend: Backend, catalog: Catalog) -> ir.Table:
    """Each plan's limits (``grant`` false) and each add-on's grants (``grant`` true) as a table:
    ``item_id, metric, amount, grant``."""
    return backend.table(_catalog_limits(catalog), "catalog_limits")
