"""API keys: a key is shown once when it is made; the store keeps only its id and a SHA-256 of its
secret (docs/service.md, "Keys").

A key reads ``us<kind letter>_<key id>_<secret>`` (``usw_4f1c9a20b6d3_9e…``): the id finds the row,
the secret's hash is compared in constant time. The kind letter is only a hint for people; the
stored kind is what counts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import sqlalchemy as sa

from upsell.store.schema import KEY_KINDS
from upsell.store.schema import api_keys as keys_table

KeyKind = Literal["write", "publishable", "admin"]
_LETTER: dict[str, str] = {"write": "w", "publishable": "p", "admin": "a"}


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    kind: KeyKind
    name: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        kind=cast(KeyKind, row.kind),
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def create_key(*, conn: sa.Connection, kind: str, name: str | None = None) -> tuple[ApiKey, str]:
    """A new key of `kind`; returns it with the full key text, which is not stored anywhere."""
    if kind not in KEY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(KEY_KINDS)}, got {kind!r}")
    key_id, secret = secrets.token_hex(6), secrets.token_hex(24)
    now = datetime.now(UTC)
    conn.execute(
        sa.insert(keys_table).values(
            key_id=key_id, kind=kind, name=name, secret_sha256=_sha256(secret), created_at=now
        )
    )
    key = ApiKey(key_id, cast(KeyKind, kind), name, now, None)
    return key, f"us{_LETTER[kind]}_{key_id}_{secret}"


def split_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of a key's text; None when it does not have a key's shape."""
    parts = text.strip().split("_")
    if len(parts) != 3 or len(parts[0]) != 3 or not parts[0].startswith("us"):
        return None
    return parts[1], parts[2]


def verify_key(*, conn: sa.Connection, text: str) -> ApiKey | None:
    """The active key `text` is, or None (unknown, malformed, wrong secret or revoked)."""
    parts = split_key(text)
    if parts is None:
        return None
    key_id, secret = parts
    row = conn.execute(sa.select(keys_table).where(keys_table.c.key_id == key_id)).first()
    if row is None or not hmac.compare_digest(row.secret_sha256, _sha256(secret)):
        return None
    key = _key(row)
    return key if key.active else None


def list_keys(*, conn: sa.Connection) -> list[ApiKey]:
    query = sa.select(keys_table).order_by(keys_table.c.created_at, keys_table.c.key_id)
    return [_key(row) for row in conn.execute(query)]


def revoke_key(*, conn: sa.Connection, key_id: str) -> ApiKey | None:
    """Revoke the key with `key_id` (or the id inside a full key's text); None when there is no
    such key. Revoking a revoked key keeps its first revocation time."""
    parts = split_key(key_id)
    key_id = parts[0] if parts else key_id.strip()
    table = keys_table
    conn.execute(
        sa.update(table)
        .where(table.c.key_id == key_id, table.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    row = conn.execute(sa.select(table).where(table.c.key_id == key_id)).first()
    return _key(row) if row is not None else None
