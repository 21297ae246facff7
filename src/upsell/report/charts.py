"""What every section of the page shares: its value types, and the look of its Plotly figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upsell.domain.metrics import CAUSES
from upsell.report.numbers import Numbers

#: How the page names the causes of expansion, in their order.
CAUSE_LABELS: dict[str, str] = dict(
    zip(CAUSES, ("Upsell", "Add-on", "Cross-sell", "Quantity", "Price"), strict=True)
)
STAGES = ("Eligible", "Contacted", "Opened or clicked", "Converted")
COLOURS = {
    "new": "#2e7d32",
    "reactivation": "#66bb6a",
    "expansion": "#1e88e5",
    "contraction": "#fb8c00",
    "churn": "#e53935",
    "net": "#212121",
    "ndr": "#1e88e5",
    "grr": "#8e24aa",
    "treated": "#1e88e5",
    "holdout": "#9e9e9e",
    "incremental": "#2e7d32",
}
CAUSE_COLOURS = ("#1e88e5", "#43a047", "#8e24aa", "#fb8c00", "#00897b", "#6d4c41", "#546e7a")
STAGE_COLOURS = ("#bbdefb", "#64b5f6", "#1e88e5", "#0d47a1")


@dataclass
class Table:
    """A table of the numbers under a chart; `numeric[i]` right-aligns column i."""

    caption: str
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]


@dataclass
class Section:
    """One section of the page: its charts (element ids), the tables of their numbers, and the
    sentences that replace a chart when there is nothing to draw."""

    id: str
    title: str
    reading: str
    charts: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)


def label(key: str) -> str:
    """A key as the page names it: ``add_on`` -> ``Add-on``, ``by_kind`` -> ``By kind``."""
    return CAUSE_LABELS.get(key) or key.replace("_", " ").capitalize()


def layout(numbers: Numbers, **extra: Any) -> dict[str, Any]:
    """A figure's layout: plain, with the locale's separators, the legend under it."""
    out: dict[str, Any] = {
        "template": "plotly_white",
        "separators": numbers.separators(),
        "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        "font": {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12},
        "hovermode": "x unified",
    }
    out.update(extra)
    return out
