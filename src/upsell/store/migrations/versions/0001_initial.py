"""Initial schema: accounts, users, subscription items, events, catalogs, contacts, watermarks.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written by hand and frozen: it spells out plain column types (naive-UTC DATETIME for UTCDateTime, TEXT
for DecimalText) instead of importing the application's types, so later changes to the code cannot
change what this migration creates. tests/test_store.py checks it against upsell.store.schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("industry", sa.String(), nullable=True),
        sa.Column("employees", sa.Integer(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("language", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("traits", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "users",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "user_id", name=op.f("pk_users")),
    )
    op.create_table(
        "subscription_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("interval", sa.String(), nullable=False),
        sa.Column("unit_price", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "interval IN ('month', 'year')", name=op.f("ck_subscription_items_interval")
        ),
        sa.CheckConstraint(
            "status IN ('trialing', 'active', 'past_due', 'canceled')",
            name=op.f("ck_subscription_items_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_items")),
        sa.UniqueConstraint(
            "account_id",
            "item_id",
            "started_at",
            name=op.f("uq_subscription_items_account_id_item_id_started_at"),
        ),
    )
    op.create_index(op.f("ix_subscription_items_account_id"), "subscription_items", ["account_id"])
    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("message_id", name=op.f("uq_events_message_id")),
    )
    op.create_index(op.f("ix_events_account_id_timestamp"), "events", ["account_id", "timestamp"])
    op.create_index(op.f("ix_events_event_timestamp"), "events", ["event", "timestamp"])
    op.create_table(
        "catalog_versions",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_catalog_versions")),
        sa.UniqueConstraint("sha256", name=op.f("uq_catalog_versions_sha256")),
    )
    op.create_table(
        "contacts",
        sa.Column("contact_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("offer_id", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("placement", sa.String(), nullable=True),
        sa.Column("playbook", sa.String(), nullable=True),
        sa.Column("experiment", sa.String(), nullable=True),
        sa.Column("variant", sa.String(), nullable=True),
        sa.Column("held_out", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("expected_mrr_delta", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('upsell', 'cross_sell', 'add_on', 'save')", name=op.f("ck_contacts_kind")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'failed', 'held_out')", name=op.f("ck_contacts_status")
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_contacts")),
        sa.UniqueConstraint(
            "account_id",
            "offer_id",
            "channel",
            "as_of",
            name=op.f("uq_contacts_account_id_offer_id_channel_as_of"),
        ),
    )
    op.create_table(
        "responses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("response", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "response IN ('shown', 'opened', 'clicked', 'dismissed', 'accepted')",
            name=op.f("ck_responses_response"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.contact_id"],
            name=op.f("fk_responses_contact_id_contacts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
    )
    op.create_index(op.f("ix_responses_contact_id"), "responses", ["contact_id"])
    op.create_index(op.f("ix_responses_account_id"), "responses", ["account_id"])
    op.create_table(
        "import_watermarks",
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("rows_done", sa.BigInteger(), nullable=False),
        sa.Column("prefix_sha256", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "source", name=op.f("pk_import_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("import_watermarks")
    op.drop_index(op.f("ix_responses_account_id"), table_name="responses")
    op.drop_index(op.f("ix_responses_contact_id"), table_name="responses")
    op.drop_table("responses")
    op.drop_table("contacts")
    op.drop_table("catalog_versions")
    op.drop_index(op.f("ix_events_event_timestamp"), table_name="events")
    op.drop_index(op.f("ix_events_account_id_timestamp"), table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_subscription_items_account_id"), table_name="subscription_items")
    op.drop_table("subscription_items")
    op.drop_table("users")
    op.drop_table("accounts")
