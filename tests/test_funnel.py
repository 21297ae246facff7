"""The offer funnel and reach over whole tables (engine/funnel.py), on a hand-built run: every count
worked out by hand, on DuckDB and PySpark."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from upsell.columns import TIMESTAMP
from upsell.engine.backends import Backend
from upsell.engine.funnel import funnels, reach
from upsell.store.arrow import CONTACT_SCHEMA, REFUSAL_SCHEMA

JUNE, JULY = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
OUTCOMES = pa.schema(
    [
        ("converted", pa.bool_()),
        ("opened", pa.bool_()),
        ("clicked", pa.bool_()),
        ("dismissed", pa.bool_()),
        ("pending", pa.bool_()),
    ]
)


def contact(
    account: str, when: datetime, kind: str, channel: str, playbook: str, **kw: object
) -> dict[str, object]:
    return {
        "account_id": account, "as_of": when, "kind": kind, "offer_id": f"{kind}:x",
        "item_id": "x", "channel": channel, "placement": "modal", "playbook": playbook,
        "experiment": None, "variant": None, "held_out": False, "status": "queued",
        "decision": None, "converted": False, "opened": False, "clicked": False,
        "dismissed": False, "pending": False, **kw,
    }  # fmt: skip


TRIAL_B = {"experiment": "trial", "variant": "B"}

# Two runs. In June: a converted in-app upsell (clicked) for a; b held out; c's email failed;
# d's in-app add-on opened and dismissed, still pending; e refused by a guardrail of playbook
# "limits". In July: a again, an in-app upsell (variant B of experiment "trial") seen and
# dismissed, not converted.
CONTACTS = [
    contact("a", JUNE, "upsell", "in_app", "limits", converted=True, opened=True, clicked=True),
    contact("b", JUNE, "upsell", "in_app", "limits", held_out=True, status="held_out"),
    contact("c", JUNE, "upsell", "email", "mail", status="failed"),
    contact("d", JUNE, "add_on", "in_app", "limits", opened=True, dismissed=True, pending=True),
    contact("a", JULY, "upsell", "in_app", "limits", opened=True, dismissed=True, **TRIAL_B),
]
REFUSALS = [{"as_of": JUNE, "account_id": "e", "playbook": "limits"}]


def tables() -> tuple[pa.Table, pa.Table]:
    schema = pa.schema([*CONTACT_SCHEMA, *OUTCOMES])
    assert schema.field("as_of").type == TIMESTAMP
    return pa.Table.from_pylist(CONTACTS, schema=schema), pa.Table.from_pylist(
        REFUSALS, schema=REFUSAL_SCHEMA
    )


def test_the_funnel_counts_each_stage_by_hand(backend: Backend) -> None:
    records, refusals = tables()
    f = funnels(backend, records, refusals)
    # upsell: eligible (run, account) pairs a/June, b/June, c/June, a/July = 4; contacted: a/June,
    # a/July (b held out, c failed) = 2; opened 2, clicked 1, converted 1, pending 0; dismissed
    # 1 (a/July). Dismissed is no stage: the add-on has more dismissed (1) than clicked (0).
    assert f["by_kind"] == {
        "add_on": dict(
            eligible=1, contacted=1, opened=1, clicked=0, converted=0, pending=1, dismissed=1
        ),
        "upsell": dict(
            eligible=4, contacted=2, opened=2, clicked=1, converted=1, pending=0, dismissed=1
        ),
    }
    assert f["by_channel"] == {
        "email": dict(
            eligible=1, contacted=0, opened=0, clicked=0, converted=0, pending=0, dismissed=0
        ),
        "in_app": dict(
            eligible=4, contacted=3, opened=3, clicked=1, converted=1, pending=1, dismissed=2
        ),
    }
    # By playbook, the refusal of e makes it eligible too.
    assert f["by_playbook"]["limits"] == dict(
        eligible=5, contacted=3, opened=3, clicked=1, converted=1, pending=1, dismissed=2
    )
    assert f["by_variant"] == {
        "trial/B": dict(
            eligible=1, contacted=1, opened=1, clicked=0, converted=0, pending=0, dismissed=1
        )
    }


def test_reach_is_accounts_that_saw_an_offer_over_accounts_eligible(backend: Backend) -> None:
    records, refusals = tables()
    # Eligible accounts: a, b, c, d (an offer decided) and e (refused): 5. Saw one: a, d.
    assert reach(backend, records, refusals) == {"eligible": 5, "saw": 2}
