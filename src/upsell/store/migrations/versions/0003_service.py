"""The service: API keys, identities and aliases, events waiting for their account, runs, locks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Written by hand and frozen, like 0001: plain column types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("secret_sha256", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('write', 'publishable', 'admin')", name=op.f("ck_api_keys_kind")
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "identities",
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("language", sa.String(), nullable=True),
        sa.Column("traits", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_identities")),
    )
    op.create_index(op.f("ix_identities_account_id"), "identities", ["account_id"])
    op.create_table(
        "aliases",
        sa.Column("alias", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("alias", name=op.f("pk_aliases")),
    )
    op.create_index(op.f("ix_aliases_user_id"), "aliases", ["user_id"])
    op.create_table(
        "pending_events",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("anonymous_id", sa.String(), nullable=True),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_pending_events")),
        sa.UniqueConstraint("message_id", name=op.f("uq_pending_events_message_id")),
    )
    op.create_index(op.f("ix_pending_events_user_id"), "pending_events", ["user_id"])
    op.create_index(op.f("ix_pending_events_anonymous_id"), "pending_events", ["anonymous_id"])
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f("ck_runs_status")
        ),
        sa.CheckConstraint("trigger IN ('schedule', 'api', 'cli')", name=op.f("ck_runs_trigger")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_as_of"), "runs", ["as_of"])
    op.create_table(
        "locks",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_locks")),
    )


def downgrade() -> None:
    op.drop_table("locks")
    op.drop_index(op.f("ix_runs_as_of"), table_name="runs")
    op.drop_table("runs")
    op.drop_index(op.f("ix_pending_events_anonymous_id"), table_name="pending_events")
    op.drop_index(op.f("ix_pending_events_user_id"), table_name="pending_events")
    op.drop_table("pending_events")
    op.drop_index(op.f("ix_aliases_user_id"), table_name="aliases")
    op.drop_table("aliases")
    op.drop_index(op.f("ix_identities_account_id"), table_name="identities")
    op.drop_table("identities")
    op.drop_table("api_keys")
