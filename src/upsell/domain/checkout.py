"""The checkout handshake (docs/in-app.md): where a call to action leads, and the signed,
expiring tokens it carries.

A token is ``base64url(JSON payload) + "." + base64url(HMAC-SHA256(secret, first part))``, without
``=`` padding; the payload's ``exp`` (and ``iat``) are Unix seconds. Two kinds are signed with the
workspace's ``checkout`` secret:

- the *offer token* handed to the company's checkout (`offer_payload`): what was offered, so that
  the company's backend can verify it and apply the change;
- the *click token* inside each in-app message's CTA link (`click_payload`): which contact and
  which user, so that ``GET /v1/offers/{offer_id}/accept`` records the click of the right message.
  Click tokens are signed with a key derived from the secret (`click_key`), so one can never pass
  for an offer token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import string
from collections.abc import Mapping
from typing import Any

from upsell.errors import Problem, UpsellError

#: Where playbooks.yaml's `settings.checkout_url` leads by default: the company's checkout.
DEFAULT_CHECKOUT_URL = (
    "https://app.example.com/billing/checkout?account={account_id}&item={item_id}&offer={offer_id}"
)
#: Where a save that keeps the plan held leads: nothing to buy, the request to withdraw.
DEFAULT_SAVE_URL = (
    "https://app.example.com/billing/keep?account={account_id}&item={item_id}&offer={offer_id}"
)
#: The placeholders a checkout URL template may use.
CHECKOUT_FIELDS = (
    "account_id",
    "item_id",
    "offer_id",
    "from_item_id",
    "kind",
    "trial_days",
    "variant",
)

#: How long an offer token is valid, in seconds.
OFFER_TOKEN_SECONDS = 3600


class BadToken(UpsellError):
    """A token that does not verify; `reason` says why (malformed, bad_signature, expired)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def click_key(secret: str) -> str:
    """The key click tokens are signed with: derived from the checkout secret."""
    return hmac.new(secret.encode(), b"upsell click token", hashlib.sha256).hexdigest()


def sign(secret: str, payload: Mapping[str, Any]) -> str:
    """The token of `payload` (a JSON object with an integer ``exp``)."""
    body = _b64(json.dumps(dict(payload), separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret.encode(), body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(secret: str, token: str, *, now: float) -> dict[str, Any]:
    """The payload of `token` if `secret` signed it and it has not expired at `now` (Unix
    seconds); BadToken otherwise. The signature is compared in constant time."""
    body, dot, mac = token.partition(".")
    if not dot or not body or not mac:
        raise BadToken("malformed", "the token is not two base64url parts joined by a dot")
    expected = hmac.new(secret.encode(), body.encode("ascii", "replace"), hashlib.sha256).digest()
    try:
        given = _unb64(mac)
    except (binascii.Error, ValueError):
        raise BadToken("malformed", "the token's signature is not base64url") from None
    if not hmac.compare_digest(expected, given):
        raise BadToken("bad_signature", "the token's signature does not match: not signed here")
    try:
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        raise BadToken("malformed", "the token's payload is not base64url JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
        raise BadToken("malformed", "the token's payload has no integer exp")
    if now >= payload["exp"]:
        raise BadToken("expired", "the token has expired")
    return payload


def click_payload(*, contact_id: int, user_id: str, exp: int) -> dict[str, Any]:
    return {"typ": "click", "contact_id": contact_id, "user_id": user_id, "exp": exp}


def offer_payload(
    decision: Mapping[str, Any],
    *,
    contact_id: int,
    due_today: Mapping[str, str] | None,
    iat: int,
    seconds: int = OFFER_TOKEN_SECONDS,
) -> dict[str, Any]:
    """The offer token's payload from a contact's decision line (flows/offers.py)."""
    return {
        "account_id": decision.get("account_id"),
        "offer_id": decision.get("offer_id"),
        "item_id": decision.get("item_id"),
        "from_item_id": decision.get("from_item_id"),
        "kind": decision.get("kind"),
        "trial_days": int(decision.get("trial_days") or 0),
        "discount_percent": decision.get("discount_percent"),
        "discount_months": decision.get("discount_months"),
        "due_today": None if due_today is None else dict(due_today),
        "contact_id": contact_id,
        "iat": iat,
        "exp": iat + seconds,
    }


def check_url_template(url: str, key: str = "settings.checkout_url") -> list[Problem]:
    """Problems of a checkout or save URL template (playbooks.yaml's `settings.checkout_url`,
    `settings.save_url`): not http(s), not a valid template, or a placeholder not in
    `CHECKOUT_FIELDS`; `key` names the setting."""
    problems = []
    if not url.startswith(("https://", "http://")):
        problems.append(Problem(f"must be an http(s) URL, got {url!r}", key))
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(url) if name is not None]
    except ValueError as e:
        return [*problems, Problem(f"is not a valid template: {e}", key)]
    for name in names:
        if name not in CHECKOUT_FIELDS:
            problems.append(
                Problem(
                    f"unknown placeholder {{{name}}}; known: {', '.join(CHECKOUT_FIELDS)}",
                    key,
                )
            )
    return problems
