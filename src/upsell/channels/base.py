"""The value types of delivery, the `Channel` protocol, and the registry of channels by name.

The four built-in channels (``in_app``, ``email``, ``webhook``, ``csm_task``) are always known;
`register_channel` adds others (plugins) under names of their own. Built-ins are imported on first
use, so that importing this module stays cheap and free of cycles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from upsell.domain.offers import CHANNELS
from upsell.errors import ChannelError
from upsell.settings import Settings


@dataclass(frozen=True)
class Delivery:
    """One decided offer to deliver.

    `idempotency_key` is unique per account, offer, channel and decision time (for example
    ``a-0042:upsell:basic->pro:email:2026-06-01T00:00:00Z``): channels pass it on (Message-ID,
    ``Idempotency-Key`` header) so that the receiving end can drop a delivery sent twice.

    `payload` is the decision line, a JSON-able dict; ``payload["message"]`` is a dict with the keys
    ``locale``, ``subject``, ``body`` (plain text), ``html`` (str or None), ``cta``, ``cta_url``,
    ``expires_at`` (str or None) and, for a CSM task, ``talking_points`` (a list of str).
    """

    contact_id: int | None
    account_id: str
    channel: str
    idempotency_key: str
    payload: Mapping[str, Any]
    email: str | None = None
    account_name: str | None = None


Status = Literal["queued", "sent", "failed"]


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery.

    "queued": stored for a pull (the in-app widget) rather than pushed; "sent": the other end
    accepted it; "failed": it did not, and `detail` says why. `attempts` counts the tries to reach
    the other end: 0 when the channel gave up before trying (no address, no URL configured).
    """

    status: Status
    attempts: int = 1
    detail: str | None = None


class Channel(Protocol):
    """A way to deliver; `deliver` never raises on a failed delivery, it returns a failed Outcome."""

    name: str

    def deliver(self, delivery: Delivery) -> Outcome:
        """Deliver one offer, and say what became of it."""
        ...

    def problems(self) -> list[str]:
        """What is missing to deliver (``UPSELL_SMTP_HOST is not set``); empty when ready."""
        ...


ChannelFactory = Callable[[Settings], Channel]

#: Always known; `register_channel` adds others.
BUILTIN_CHANNELS: tuple[str, ...] = CHANNELS
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_plugins: dict[str, ChannelFactory] = {}


def _builtin(name: str) -> ChannelFactory:
    from upsell.channels.email import Email
    from upsell.channels.in_app import InApp
    from upsell.channels.webhook import CsmTask, Webhook

    factories: dict[str, ChannelFactory] = {
        "in_app": InApp,
        "email": Email,
        "webhook": Webhook,
        "csm_task": CsmTask,
    }
    return factories[name]


def register_channel(name: str, factory: ChannelFactory) -> None:
    """Make `channel_for(name, ...)` build channels with `factory` (the plugin extension point).

    A name is lower-case letters, digits and underscores, starting with a letter. Registering a
    built-in name, or a taken name with another factory, raises ChannelError (a ValueError);
    registering the same factory under the same name again does nothing.
    """
    if not _NAME.fullmatch(name):
        raise ChannelError(name, "a channel name is lower-case letters, digits and underscores")
    if name in BUILTIN_CHANNELS:
        raise ChannelError(name, "is a built-in channel and cannot be replaced")
    if name in _plugins and _plugins[name] is not factory:
        raise ChannelError(name, "is already registered with another factory")
    _plugins[name] = factory


def channel_for(name: str, settings: Settings) -> Channel:
    """A channel of that name, built from `settings`; an unknown name raises ChannelError."""
    if name in BUILTIN_CHANNELS:
        return _builtin(name)(settings)
    if name in _plugins:
        return _plugins[name](settings)
    raise ChannelError(name, "no such channel", known=channel_names())


def channel_names() -> tuple[str, ...]:
    """The names `channel_for` knows: the built-ins, then plugins in the order registered."""
    return BUILTIN_CHANNELS + tuple(_plugins)
