"""What to simulate (`SimConfig`), the simulator's error, and the world's clock.

Its own module so that every part of the simulator (the world, its rules, the response model) can
import them without importing the world.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from upsell.domain.calendar import add_months
from upsell.domain.catalog import BusinessModel
from upsell.errors import UpsellError
from upsell.simulator.profiles import PROFILES

#: Microseconds in a day: the world's times are microseconds since the epoch.
DAY_US = 86_400_000_000


class SimulationError(UpsellError, ValueError):
    """A simulation was asked for something impossible (bad size, unknown model, bad decision)."""


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. The same config always gives the same world, byte for byte."""

    accounts: int = 5000
    months: int = 12
    model: BusinessModel = "saas"
    seed: int = 0
    start: date = date(2025, 11, 1)

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise SimulationError(f"accounts must be at least 1, got {self.accounts}")
        if self.months < 1:
            raise SimulationError(f"months must be at least 1, got {self.months}")
        if self.model not in PROFILES:
            known = ", ".join(sorted(PROFILES))
            raise SimulationError(f"unknown business model {self.model!r}; choose one of {known}")
        if self.seed < 0:
            raise SimulationError(f"seed must not be negative, got {self.seed}")

    @property
    def days(self) -> int:
        return (add_months(self.start, self.months) - self.start).days
