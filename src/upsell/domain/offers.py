"""What an offer is made of: its kind (what is offered), and the channel and placement it reaches the
customer through. Every layer names these the same way: the playbooks, the store's constraints, the
delivery channels, the simulator and the docs (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

#: upsell: a higher plan; cross_sell: a standalone product; add_on: an extra for the plan held;
#: save: keep an account that may shrink or leave (its plan, or a lower one instead of cancelling).
Kind = Literal["upsell", "cross_sell", "add_on", "save"]
KINDS: tuple[Kind, ...] = get_args(Kind)

#: The built-in channels and the placements each offers. A channel a plugin registers takes any
#: placement.
PLACEMENTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "in_app": ("banner", "tooltip", "modal"),
        "email": ("email",),
        "csm_task": ("task", "qbr_agenda"),
        "webhook": ("event",),
    }
)
CHANNELS: tuple[str, ...] = tuple(PLACEMENTS)
