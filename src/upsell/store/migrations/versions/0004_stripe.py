"""Stripe: customers to accounts, subscription items to rows, the latest event per object, events
(with the payloads of those waiting for their customer's account).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10

Written by hand and frozen, like 0001: plain column types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_customers",
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_stripe_customers")),
    )
    op.create_index(op.f("ix_stripe_customers_account_id"), "stripe_customers", ["account_id"])
    op.create_table(
        "stripe_items",
        sa.Column("stripe_item_id", sa.String(), nullable=False),
        sa.Column("subscription_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=True),
        sa.Column("price_id", sa.String(), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("current_period_start", sa.DateTime(), nullable=True),
        sa.Column("current_period_end", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stripe_item_id", name=op.f("pk_stripe_items")),
    )
    op.create_index(op.f("ix_stripe_items_subscription_id"), "stripe_items", ["subscription_id"])
    op.create_table(
        "stripe_objects",
        sa.Column("object_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("event_created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("object_id", name=op.f("pk_stripe_objects")),
    )
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("object_id", sa.String(), nullable=True),
        sa.Column("customer_id", sa.String(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('applied', 'partial', 'unmapped', 'stale', 'ignored')",
            name=op.f("ck_stripe_events_outcome"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_stripe_events")),
    )
    op.create_index(op.f("ix_stripe_events_outcome"), "stripe_events", ["outcome"])
    op.create_index(op.f("ix_stripe_events_customer_id"), "stripe_events", ["customer_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_stripe_events_customer_id"), table_name="stripe_events")
    op.drop_index(op.f("ix_stripe_events_outcome"), table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_table("stripe_objects")
    op.drop_index(op.f("ix_stripe_items_subscription_id"), table_name="stripe_items")
    op.drop_table("stripe_items")
    op.drop_index(op.f("ix_stripe_customers_account_id"), table_name="stripe_customers")
    op.drop_table("stripe_customers")
