"""The in-app channel: the stored contact row is the queue entry that the widget is served."""

from __future__ import annotations

from upsell.channels.base import Delivery, Outcome
from upsell.settings import Settings


class InApp:
    """Delivers nothing itself: the stored contact row IS the in-app queue entry, served to the
    widget by the service when the user next shows up. `deliver` always returns "queued"."""

    name = "in_app"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def deliver(self, delivery: Delivery) -> Outcome:
        return Outcome("queued")

    def problems(self) -> list[str]:
        return []
