"""Delivery claims: the process delivering a contact (`claimed_by`) and until when its claim
holds (`lease_until`), so that two processes never deliver one contact at once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

Written by hand and frozen, like 0001: plain column types only. Columns are only added (no table
is rebuilt on SQLite), so the migration is quick on a large contacts table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("claimed_by")
