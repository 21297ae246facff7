"""Wording: how numbers, metrics and features read in a sentence.

The opportunity rules write their reasons with these (domain/opportunities), the message facts
label the offer's metrics and features with them (domain/messages.py), and the message templates
list the catalog's metric and feature names for translation (upsell.templates). A number reads
``1,340`` or ``2.5``; a metric id ``api_calls`` reads ``api calls``; a feature id
``private_boards`` reads ``Private boards``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def as_value(x: float) -> int | float:
    """A number for a reason's values: an int when whole."""
    if math.isfinite(x) and float(x).is_integer():
        return int(x)
    return round(float(x), 2)


def number(x: float) -> str:
    """A number for a sentence: ``1,340``, ``2.5``."""
    v = as_value(x)
    return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


def times(n: int) -> str:
    """How often: ``once``, ``3 times``."""
    return "once" if n == 1 else f"{number(n)} times"


def plural(n: int, noun: str) -> str:
    """A count of `noun`: ``1 day``, ``9 days``."""
    return f"{number(n)} {noun}" + ("" if n == 1 else "s")


def goals_phrase(goals: Sequence[str]) -> str:
    """Goal ids as a phrase: ``grow_revenue``, ``save_time`` -> ``grow revenue and save time``."""
    return " and ".join(g.replace("_", " ") for g in goals)


def feature_name(feature: str) -> str:
    """A feature id as people read it: ``private_boards`` -> ``Private boards``."""
    return feature.replace("_", " ").capitalize()


def metric_name(metric: str) -> str:
    """A metric id as people read it: ``api_calls`` -> ``api calls``."""
    return metric.replace("_", " ")
