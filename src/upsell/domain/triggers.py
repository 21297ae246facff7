"""Real-time triggers: what, in an ingested message, may turn a playbook's trigger true for an
account now (docs/in-app.md, "Real-time triggers").

The decision step itself says whether an offer is made (`upsell.domain.decisions.decide`, with
every guardrail); these rules only say which accounts to decide for right away instead of at the
next daily run: an account that sent one of `TRIGGER_EVENTS` (a limit hit, a locked feature tried,
a downgrade or a cancellation asked for) or an event that measures one of the catalog's gauges,
and an account whose gauge trait (``seats`` on a ``group`` call) went up. An event older than
`MAX_AGE` (a backfill, a replayed file) triggers nothing: the daily run sees it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from upsell.domain.catalog import Catalog
from upsell.domain.events import (
    CANCEL_REQUESTED,
    DOWNGRADE_REQUESTED,
    FEATURE_BLOCKED,
    LIMIT_REACHED,
)

#: The reserved events that put their account on the trigger queue.
TRIGGER_EVENTS: tuple[str, ...] = (
    LIMIT_REACHED,
    FEATURE_BLOCKED,
    DOWNGRADE_REQUESTED,
    CANCEL_REQUESTED,
)
#: An event with an older timestamp (than the server's clock when it arrives) triggers nothing.
MAX_AGE = timedelta(hours=24)


def trait_reason(trait: str) -> str:
    """The reason recorded for a gauge trait that went up: ``trait seats``."""
    return f"trait {trait}"


@dataclass(frozen=True)
class TriggerRules:
    """Which events and account traits may make a playbook trigger true (module docstring)."""

    events: frozenset[str] = frozenset(TRIGGER_EVENTS)
    traits: frozenset[str] = frozenset()

    @classmethod
    def of(cls, catalog: Catalog | None) -> TriggerRules:
        """The reserved events, plus the events and traits the catalog's gauges are read from."""
        if catalog is None:
            return cls()
        gauges = [m for m in catalog.metrics.values() if m.kind == "gauge"]
        return cls(
            events=frozenset(TRIGGER_EVENTS)
            | {m.source_event for m in gauges if m.source_event is not None},
            traits=frozenset(m.source_trait for m in gauges if m.source_trait is not None),
        )

    def fires(self, event: str, timestamp: datetime, now: datetime) -> bool:
        """Whether a tracked event puts its account on the queue."""
        return event in self.events and timestamp >= now - MAX_AGE

    def risen(self, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        """The gauge traits whose number went up from `before` to `after` (an account's traits),
        or appeared."""
        out = []
        for name in sorted(self.traits):
            new = _number(after.get(name))
            if new is None:
                continue
            old = _number(before.get(name))
            if old is None or new > old:
                out.append(name)
        return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
