"""Real-time triggers: the trigger queue, and which trigger decided a contact.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Written by hand and frozen, like 0001: plain column types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("trigger", sa.String(), nullable=True))
    op.create_table(
        "trigger_queue",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("requeued_at", sa.DateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("cool_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_trigger_queue")),
    )
    op.create_index(op.f("ix_trigger_queue_due_at"), "trigger_queue", ["due_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_trigger_queue_due_at"), table_name="trigger_queue")
    op.drop_table("trigger_queue")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("trigger")
