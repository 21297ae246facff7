"""The workspace's signing secrets (HMAC keys), one per purpose, made on first use.

``user_token`` signs user ids for the widget (docs/in-app.md, "User tokens"); ``checkout`` signs
the offer token handed to the company's checkout. `upsell keys secret PURPOSE` prints one, and
``--rotate`` replaces it (tokens signed with the old secret stop verifying).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa

from upsell.store.schema import signing_secrets as table

PURPOSES = ("user_token", "checkout")


def _check(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"no signing secret {purpose!r}: one of {', '.join(PURPOSES)}")


def signing_secret(*, conn: sa.Connection, purpose: str) -> str:
    """The secret for `purpose`, made and stored the first time it is asked for (commit the
    connection's transaction to keep it)."""
    _check(purpose)
    found = conn.execute(
        sa.select(table.c.secret).where(table.c.purpose == purpose)
    ).scalar_one_or_none()
    if found is not None:
        return str(found)
    value = secrets.token_hex(32)
    try:
        with conn.begin_nested():
            conn.execute(
                sa.insert(table).values(purpose=purpose, secret=value, created_at=datetime.now(UTC))
            )
    except sa.exc.IntegrityError:  # another process made it first: theirs is the secret
        return str(
            conn.execute(sa.select(table.c.secret).where(table.c.purpose == purpose)).scalar_one()
        )
    return value


def rotate_secret(*, conn: sa.Connection, purpose: str) -> str:
    """A new secret for `purpose`, replacing the old one."""
    _check(purpose)
    value = secrets.token_hex(32)
    conn.execute(sa.delete(table).where(table.c.purpose == purpose))
    conn.execute(
        sa.insert(table).values(purpose=purpose, secret=value, created_at=datetime.now(UTC))
    )
    return value
