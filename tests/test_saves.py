"""Save offers through the domain with upsell's default playbooks: the opportunity a cancel or
downgrade request gives, the playbook that answers its reason, and where its call to action leads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from upsell.config.catalog import parse_catalog
from upsell.config.playbooks import DEFAULT_PLAYBOOKS, parse_playbooks
from upsell.domain.checkout import DEFAULT_SAVE_URL
from upsell.domain.decisions import Decision, decide
from upsell.domain.money import Money
from upsell.domain.opportunities import find_opportunities
from upsell.domain.playbooks import DecisionSettings
from upsell.domain.signals import AccountSignals, Engagement, FeatureUse, MetricUsage, Risk
from upsell.domain.subscriptions import SubscriptionItem

SAAS = (
    Path(__file__).resolve().parents[1] / "src" / "upsell" / "simulator" / "catalogs" / "saas.yaml"
)
CATALOG = parse_catalog(SAAS.read_text(), str(SAAS)).catalog
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
SIGNED_UP = datetime(2025, 6, 1, tzinfo=UTC)
BOOKS = parse_playbooks(DEFAULT_PLAYBOOKS.read_text(), str(DEFAULT_PLAYBOOKS), catalog=CATALOG)
NO_HOLDOUT = replace(BOOKS, settings=replace(BOOKS.settings, holdout_share=0.0))


def pro(risk: Risk, **kw: object) -> AccountSignals:
    """A 10-person Pro account, active, 4 of 25 seats used, automation used a lot."""
    fields: dict[str, object] = {
        "account_id": "a-1",
        "as_of": AS_OF,
        "created_at": SIGNED_UP,
        "tenure_days": 365,
        "mrr": Money.of("99", "USD"),
        "currency": "USD",
        "employees": 10,
        "plan_id": "pro",
        "plan_status": "active",
        "plan_interval": "month",
        "paid_before": True,
        "activated": True,
        "holdings": (SubscriptionItem("a-1", "pro", SIGNED_UP, Money.of("99", "USD")),),
        "metrics": {"seats": MetricUsage("seats", "gauge", 4, 25)},
        "features": {"automation": FeatureUse("automation", used_30d=40)},
        "engagement": Engagement(active_users_30d=4, active_days_30d=12, events_30d=600),
        "risk": risk,
    }
    fields.update(kw)
    return AccountSignals(**fields)  # type: ignore[arg-type]


def chosen(signals: AccountSignals) -> Decision:
    found = find_opportunities(signals, CATALOG)
    choice = decide(signals, found, NO_HOLDOUT, email="owner@example.com")
    assert choice.decision is not None, choice.refusals
    return choice.decision


def test_too_expensive_keeps_the_plan_at_a_discount_for_a_few_months() -> None:
    d = chosen(pro(Risk(cancel_requested=True, cancel_reason="too expensive")))
    assert (d.offer_id, d.playbook.id) == ("save:pro", "save-discount")
    assert (d.discount_percent, d.discount_months) == (20.0, 3)
    assert d.deadline is not None


def test_not_using_it_goes_to_a_csm_for_help_without_a_coupon() -> None:
    d = chosen(pro(Risk(cancel_requested=True, cancel_reason="not using it enough")))
    assert (d.channel, d.playbook.template) == ("csm_task", "save_help")
    assert d.discount_percent is None


def test_a_missing_feature_is_offered_the_item_that_has_it() -> None:
    tried = {"advanced_scheduling": FeatureUse("advanced_scheduling", blocked_30d=5)}
    d = chosen(pro(Risk(cancel_requested=True, cancel_reason="missing_features"), features=tried))
    assert (d.offer_id, d.playbook.id) == ("save:pro+advanced_scheduling", "save-modal")
    assert d.discount_percent is None


@pytest.mark.parametrize(
    "risk", [Risk(cancel_requested=True), Risk(downgrade_requested_to="basic")]
)
def test_a_save_without_a_reason_gets_no_discount(risk: Risk) -> None:
    d = chosen(pro(risk))
    assert d.playbook.id == "save-modal" and d.discount_percent is None


def test_keeping_the_plan_leads_to_the_save_url_not_to_a_checkout_of_what_it_holds() -> None:
    s = DecisionSettings()
    assert s.cta_url("save", "pro", "pro") == DEFAULT_SAVE_URL
    assert s.cta_url("save", "basic", "pro") == s.checkout_url
    assert s.cta_url("upsell", "pro", "basic") == s.checkout_url
    books = parse_playbooks('settings:\n  save_url: "https://x.example/keep?a={account_id}"\n')
    assert books.settings.save_url == "https://x.example/keep?a={account_id}"
