"""bench/decisions.py's rules and oracle policies (issue 15's measurement) keep their invariants on a
tiny simulated company, so that the benchmark keeps working between its runs."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from upsell.simulator.world import SimConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import decisions  # (bench/decisions.py, which imports bench/host.py beside it)


def _quiet(message: str) -> None:
    pass


def test_the_oracle_contacts_only_persuadable_accounts(tmp_path: Path) -> None:
    done = decisions.replay("oracle", SimConfig(accounts=100, months=3), 2, tmp_path, _quiet)

    assert done.contacts > 0
    assert set(done.contact_types) == {"persuadable"}
    assert set(done.contacted_types) == {"persuadable"}
    assert done.uncontacted_delta == 0


def test_the_rules_policy_contacts_an_account_at_most_once_in_28_days(tmp_path: Path) -> None:
    done = decisions.replay("rules", SimConfig(accounts=100, months=3), 3, tmp_path, _quiet)

    assert done.contacts > 0
    assert all(name.startswith("rules:") for name in done.playbooks)
    gaps = [
        (later - earlier).days
        for days in done.contact_days.values()
        for earlier, later in itertools.pairwise(sorted(days))
    ]
    assert all(gap >= decisions.RULES_COOLDOWN_DAYS for gap in gaps)
    assert done.uncontacted_delta == 0
