"""Stripe's webhook signature (``Stripe-Signature``), checked without the network or the store.

The header is ``t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]``. Each ``v1`` is the
HMAC-SHA256, keyed with an endpoint secret (``whsec_...``), of ``<t>.<raw body>``. While a secret is
rolled, Stripe sends one ``v1`` per live secret, and upsell may be given several secrets: the
request is authentic when any ``v1`` matches any secret (compared in constant time). ``v0`` is
Stripe's test scheme and is ignored. A timestamp more than `TOLERANCE_SECONDS` from the server's
clock, in either direction, is refused: a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The header is missing or malformed, no signature matches, or it is too old or too new.

    `code` is the service's error code: ``missing_signature``, ``bad_signature`` or
    ``signature_expired``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_secrets(setting: str) -> tuple[str, ...]:
    """The secrets of ``UPSELL_STRIPE_WEBHOOK_SECRET``: one, or several separated by commas."""
    return tuple(s.strip() for s in setting.split(",") if s.strip())


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The hex ``v1`` signature of `payload` at `timestamp` with `secret`."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """Check `header` against the raw `payload`; returns its timestamp, or raises SignatureError."""
    if not header or not header.strip():
        raise SignatureError("missing_signature", "the Stripe-Signature header is missing")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamps.append(value.strip())
        elif name == "v1":
            signatures.append(value.strip())
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        raise SignatureError(
            "bad_signature", "the Stripe-Signature header has no valid t=<unix seconds>"
        )
    if not signatures:
        raise SignatureError(
            "bad_signature", "the Stripe-Signature header has no v1 signature (v0 is not accepted)"
        )
    timestamp = int(timestamps[0])
    expected = [sign(payload, secret, timestamp).encode() for secret in secrets]
    given = [s.encode("utf-8", "replace") for s in signatures]
    # Every comparison is made (no short cut), each in constant time.
    matches = [hmac.compare_digest(e, g) for e in expected for g in given]
    if not any(matches):
        raise SignatureError(
            "bad_signature",
            "no v1 signature in the Stripe-Signature header matches the body with the endpoint "
            "secret (check UPSELL_STRIPE_WEBHOOK_SECRET, and that the body reaches upsell unchanged)",
        )
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance:
        raise SignatureError(
            "signature_expired",
            f"the Stripe-Signature timestamp t={timestamp} is {abs(int(skew))} s "
            f"{'old' if skew > 0 else 'in the future'}: at most {tolerance} s is accepted",
        )
    return timestamp
