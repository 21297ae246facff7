"""Decisions: a contact's promotion, decision line and delivery outcome; the refusals of each run.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Written by hand and frozen, like 0001: plain column types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("promotion", sa.String(), nullable=True))
        batch.add_column(sa.Column("detail", sa.String(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("delivered_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("decision", sa.JSON(), nullable=True))
    op.create_table(
        "refusals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("offer_id", sa.String(), nullable=False),
        sa.Column("playbook", sa.String(), nullable=True),
        sa.Column("guardrail", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refusals")),
    )
    op.create_index(op.f("ix_refusals_as_of"), "refusals", ["as_of"])
    op.create_index(op.f("ix_refusals_account_id"), "refusals", ["account_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refusals_account_id"), table_name="refusals")
    op.drop_index(op.f("ix_refusals_as_of"), table_name="refusals")
    op.drop_table("refusals")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("decision")
        batch.drop_column("delivered_at")
        batch.drop_column("attempts")
        batch.drop_column("detail")
        batch.drop_column("promotion")
