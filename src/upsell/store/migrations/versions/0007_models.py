"""Learning: the fitted models (`upsell learn`), newest last.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Written by hand and frozen, like 0001: plain column types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(), nullable=False),
        sa.Column("data_end", sa.DateTime(), nullable=True),
        sa.Column("decisions", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_models")),
    )
    op.create_index(op.f("ix_models_name"), "models", ["name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_models_name"), table_name="models")
    op.drop_table("models")
