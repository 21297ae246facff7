"""Signed user ids (identity verification, as Intercom's): the company's backend signs the id of
the logged-in user with the workspace's secret, and the widget passes the signature along, so a
user cannot read another user's offers by changing ``userId``.

A user token is the lower-case hex HMAC-SHA256 of the user id (UTF-8) keyed with the secret
(UTF-8): in Python ``hmac.new(secret.encode(), user_id.encode(), "sha256").hexdigest()``.
"""

from __future__ import annotations

import hashlib
import hmac


def user_token(secret: str, user_id: str) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def valid_user_token(secret: str, user_id: str, token: str) -> bool:
    """Whether `token` signs `user_id`, compared in constant time."""
    return hmac.compare_digest(user_token(secret, user_id), token.strip().lower())
