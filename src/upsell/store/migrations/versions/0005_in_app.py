"""In-app messages: when each contact was shown, clicked, dismissed or converted (the widget's
answers), and the workspace's signing secrets (user tokens, checkout tokens).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Written by hand and frozen, like 0001: plain column types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ANSWERS = ("shown_at", "clicked_at", "dismissed_at", "converted_at")


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        for name in _ANSWERS:
            batch.add_column(sa.Column(name, sa.DateTime(), nullable=True))
    # GET /v1/messages: a user's accounts, an account's newest in-app contact.
    op.create_index(op.f("ix_users_user_id"), "users", ["user_id"])
    op.create_index(op.f("ix_contacts_account_id_as_of"), "contacts", ["account_id", "as_of"])
    op.create_table(
        "signing_secrets",
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("secret", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("purpose", name=op.f("pk_signing_secrets")),
    )


def downgrade() -> None:
    op.drop_table("signing_secrets")
    op.drop_index(op.f("ix_contacts_account_id_as_of"), table_name="contacts")
    op.drop_index(op.f("ix_users_user_id"), table_name="users")
    with op.batch_alter_table("contacts") as batch:
        for name in reversed(_ANSWERS):
            batch.drop_column(name)
