"""The per-account opportunity rules: candidates, gates, explanations, ranking and strategies."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upsell.config.catalog import parse_catalog
from upsell.domain.catalog import Catalog
from upsell.domain.money import Money
from upsell.domain.opportunities import (
    GATES,
    Opportunity,
    Policy,
    Reason,
    find_opportunities,
)
from upsell.domain.opportunities.saves import cancel_motive
from upsell.domain.signals import (
    AccountSignals,
    CoAdoption,
    Engagement,
    FeatureUse,
    MetricUsage,
    Population,
    Risk,
    UpgradePattern,
    UsageSpend,
)
from upsell.domain.strategy import STRATEGIES, Strategy, register_strategy, strategy_for
from upsell.domain.subscriptions import SubscriptionItem

CATALOGS = Path(__file__).resolve().parents[1] / "src" / "upsell" / "simulator" / "catalogs"
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
SIGNED_UP = datetime(2026, 1, 1, tzinfo=UTC)


@cache
def catalog(model: str = "saas") -> Catalog:
    path = CATALOGS / f"{model}.yaml"
    return parse_catalog(path.read_text(), str(path)).catalog


def row(item_id: str, price: str, currency: str = "USD", **kw: Any) -> SubscriptionItem:
    return SubscriptionItem("a-1", item_id, SIGNED_UP, Money.of(price, currency), **kw)


def account(
    plan: str | None = "basic",
    price: str = "29",
    *,
    currency: str = "USD",
    interval: str = "month",
    extra: tuple[SubscriptionItem, ...] = (),
    **kw: Any,
) -> AccountSignals:
    """An activated, established, 10-person account paying list price for `plan`."""
    holdings = (row(plan, price, currency, interval=interval),) if plan else ()
    fields: dict[str, Any] = {
        "account_id": "a-1",
        "as_of": AS_OF,
        "created_at": SIGNED_UP,
        "tenure_days": 151,
        "mrr": Money.of(price, "USD"),
        "currency": currency,
        "employees": 10,
        "plan_id": plan,
        "plan_status": "active" if plan else None,
        "plan_interval": interval if plan else None,
        "paid_before": Decimal(price) > 0,
        "activated": True,
        "holdings": holdings + extra,
    }
    fields.update(kw)
    return AccountSignals(**fields)


def seats(value: float, limit: float, **kw: Any) -> dict[str, MetricUsage]:
    return {"seats": MetricUsage("seats", "gauge", value, limit, **kw)}


def offers(signals: AccountSignals, model: str = "saas", **kw: Any) -> dict[str, Opportunity]:
    return {o.offer_id: o for o in find_opportunities(signals, catalog(model), **kw)}


def texts(o: Opportunity) -> list[str]:
    return [r.text for r in o.reasons]


# -- upsell -------------------------------------------------------------------------------------


def test_a_limit_that_binds_soon_offers_the_next_plan_with_the_accounts_numbers() -> None:
    found = offers(account(metrics=seats(4, 5, slope_per_day=0.11, days_to_limit=8.2)))
    up = found["upsell:basic->pro"]
    assert (up.kind, up.item_id, up.from_item_id) == ("upsell", "pro", "basic")
    assert up.expected_mrr_delta == Money.of("70", "USD")
    assert up.route == "self_serve"
    # 5 extra seats at $20 answer the same need for less: they are the offer, the plan waits.
    assert found["add_on:extra_seats_5"].qualified
    assert up.qualified and up.smaller == "add_on:extra_seats_5"
    assert up.reasons[0].to_json() == {
        "code": "near_limit",
        "metric": "seats",
        "used": 4,
        "limit": 5,
        "days_to_limit": 9,
        "text": "4 of 5 seats used; at this pace the limit is reached in 9 days",
    }


def test_a_limit_far_from_binding_offers_nothing() -> None:
    assert offers(account(metrics=seats(2, 5, slope_per_day=0.01, days_to_limit=300))) == {}


def test_a_limit_hit_in_the_last_30_days_counts_even_below_it() -> None:
    api = MetricUsage("api_calls", "counter", 1200, 10000, slope_per_day=40, limit_reached_30d=2)
    up = offers(account(metrics={"api_calls": api}))["upsell:basic->pro"]
    assert up.reasons[0].code == "limit_reached"
    assert "hit 2 times in the last 30 days" in up.reasons[0].text


def test_a_need_beyond_the_next_plan_skips_a_tier() -> None:
    # Plus allows 3 members, Premium 5, Team is unlimited: 3 now + 0.1/day x 60 days = 9.
    members = {"members": MetricUsage("members", "gauge", 3, 3, slope_per_day=0.1, days_to_limit=0)}
    found = offers(account("plus", "8", metrics=members), "freemium")
    assert "upsell:plus->premium" not in found
    up = found["upsell:plus->team"]
    assert up.expected_mrr_delta == Money.of("37", "USD")
    projected = next(r for r in up.reasons if r.code == "projected_need")
    assert projected.values["needed"] == 9
    assert "need about 9 members within 60 days; Premium allows 5, Team has no limit" in (
        projected.text
    )


def test_blocked_features_ask_for_the_lowest_plan_that_includes_them_all() -> None:
    features = {
        "export": FeatureUse("export", blocked_30d=3),
        "automation": FeatureUse("automation", blocked_30d=6),
    }
    found = offers(account("free", "0", features=features))
    pro = found["upsell:free->pro"]
    assert "tried Automation 6 times this month — it is in Pro" in texts(pro)
    assert "tried Export 3 times this month — it is in Pro" in texts(pro)
    basic = found["upsell:free->basic"]  # the export need alone
    assert texts(basic) == ["tried Export 3 times this month — it is in Basic"]
    assert pro.score > basic.score


def test_a_feature_blocked_once_is_not_a_need() -> None:
    assert offers(account(features={"automation": FeatureUse("automation", blocked_30d=1)})) == {}


def test_features_used_during_a_trial_support_converting_it() -> None:
    trial = row("pro", "99", status="trialing")
    signals = account(
        plan_id="pro",
        plan_status="trialing",
        extra=(trial,),
        features={"automation": FeatureUse("automation", used_in_trial=12)},
    )
    up = offers(signals)["upsell:basic->pro"]
    assert up.expected_mrr_delta == Money.of("70", "USD")  # the trial counts 0 MRR
    assert texts(up) == [
        "used Automation 12 times during the trial — it is in Pro; Basic does not include it"
    ]


def test_a_feature_whose_use_preceded_upgrades_raises_the_score_and_says_so() -> None:
    signals = account(
        metrics=seats(4, 5, slope_per_day=0.1, days_to_limit=10),
        features={"export": FeatureUse("export", used_30d=30)},
    )
    plain = offers(signals)["upsell:basic->pro"]
    patterns = Population(upgrade_patterns=(UpgradePattern("export", "basic", 140, 2.5),))
    boosted = offers(signals, population=patterns)["upsell:basic->pro"]
    assert boosted.score > plain.score
    assert boosted.reasons[-1].code == "upgrade_pattern"
    assert "upgrade 2.5 times as often" in boosted.reasons[-1].text
    weak = Population(upgrade_patterns=(UpgradePattern("export", "basic", 140, 1.1),))
    assert offers(signals, population=weak)["upsell:basic->pro"].score == plain.score


def test_growing_activity_raises_an_upsells_score_but_never_makes_one() -> None:
    growing = Engagement(events_30d=900, events_prev_30d=500, tenure_days=151)
    assert offers(account(engagement=growing)) == {}
    need = seats(4, 5, slope_per_day=0.1, days_to_limit=10)
    plain = offers(account(metrics=need))["upsell:basic->pro"]
    boosted = offers(account(metrics=need, engagement=growing))["upsell:basic->pro"]
    assert boosted.score > plain.score
    assert "activity grew from 500 to 900 events in 30 days" in texts(boosted)


# -- S13: pay-as-you-go break-even ---------------------------------------------------------------


def test_pay_as_you_go_spend_past_the_next_plans_price_offers_it_with_the_numbers() -> None:
    # Standard $79 + 2,600 render minutes at $0.05 = $209 > Professional $199 (3,000 included).
    spend = UsageSpend("render_credit", "render_minutes", units_current=400, units_last=2600)
    up = offers(account("standard", "79", usage=(spend,)), "software")[
        "upsell:standard->professional"
    ]
    reason = up.reasons[0]
    assert reason.code == "break_even"
    assert reason.values["bill"] == "209.00" and reason.values["price"] == "199.00"
    assert reason.text == (
        "your bill was $209.00 last month ($79.00 for Standard and $130.00 for 2,600 units of "
        "Cloud rendering (per minute)); Professional is $199.00 a month and includes them"
    )
    assert up.expected_mrr_delta == Money.of("120", "USD")  # usage is never MRR


def test_spend_below_the_break_even_is_no_reason_to_upgrade() -> None:
    spend = UsageSpend("render_credit", "render_minutes", units_last=2000)  # $79 + $100 < $199
    assert offers(account("standard", "79", usage=(spend,)), "software") == {}


def test_spend_on_an_item_no_plan_includes_is_no_reason_to_upgrade() -> None:
    gems = UsageSpend("gem_pack", "gem_packs", units_last=10)  # $49.90 of in-game currency
    assert offers(account("standard", "4.99", usage=(gems,)), "game") == {}


# -- add-ons --------------------------------------------------------------------------------------


def test_an_add_on_cheaper_than_the_plan_change_quotes_both_prices() -> None:
    found = offers(account(metrics=seats(5, 5, slope_per_day=0.05, days_to_limit=0)))
    add_on = found["add_on:extra_seats_5"]
    assert add_on.expected_mrr_delta == Money.of("20", "USD")
    cheaper = next(r for r in add_on.reasons if r.code == "add_on_cheaper")
    assert cheaper.values["add_on_price"] == "20.00" and cheaper.values["plan_change"] == "70.00"
    assert cheaper.text == (
        "5 extra seats: $20.00 a month for 5 more seats; moving to Pro would cost $70.00 more a month"
    )
    assert "upsell:basic->pro" in found


def test_several_units_of_an_add_on_are_priced_together() -> None:
    # 5 + 0.2/day x 60 = 17 seats: 12 more = 3 units of 5 seats, $60 < $70 for Pro.
    add_on = offers(account(metrics=seats(5, 5, slope_per_day=0.2, days_to_limit=0)))[
        "add_on:extra_seats_5"
    ]
    assert add_on.expected_mrr_delta == Money.of("60", "USD")
    assert "5 extra seats x 3: $60.00 a month for 15 more seats" in add_on.sentence


def test_an_add_on_dearer_than_the_plan_change_is_not_offered() -> None:
    # 5 + 0.3/day x 60 = 23 seats: 18 more = 4 units = $80 > $70 for Pro.
    found = offers(account(metrics=seats(5, 5, slope_per_day=0.3, days_to_limit=0)))
    assert "add_on:extra_seats_5" not in found
    assert "upsell:basic->pro" in found


def test_an_add_on_for_a_blocked_feature() -> None:
    blocked = {"advanced_scheduling": FeatureUse("advanced_scheduling", blocked_30d=4)}
    add_on = offers(account("pro", "99", features=blocked))["add_on:advanced_scheduling"]
    assert add_on.qualified
    assert texts(add_on) == [
        "tried Advanced scheduling 4 times this month — Advanced scheduling unlocks it"
    ]


def test_an_add_on_is_offered_even_where_no_plan_change_can_lift_the_limit() -> None:
    # Ultimate is the top edition; the character slots add-on requires Standard or Deluxe.
    chars = {"characters": MetricUsage("characters", "gauge", 16, 16, limit_reached_30d=2)}
    add_on = offers(account("ultimate", "14.99", metrics=chars), "game")["add_on:character_slots_4"]
    assert add_on.gates == ("not_on_required_plan",)
    assert "4 extra character slots: $1.99 a month for 4 more characters" in add_on.sentence
    assert "moving to" not in add_on.sentence


# -- cross-sell -----------------------------------------------------------------------------------


def test_a_product_whose_fits_signal_holds_is_cross_sold_for_its_goal() -> None:
    cross = offers(account("pro", "99", signals=frozenset({"time_tracking"})))[
        "cross_sell:timetracker"
    ]
    assert cross.qualified and cross.expected_mrr_delta == Money.of("15", "USD")
    assert cross.reasons[0].code == "fits_signal"
    assert cross.reasons[0].text == (
        "at least 20 Timer Started events in the last 30 days — TimeTracker helps you save time"
    )


def test_customers_like_you_also_bought_quotes_confidence_and_lift() -> None:
    rule = CoAdoption("pro", "timetracker", accounts=180, support=0.05, confidence=0.62, lift=2.4)
    cross = offers(account("pro", "99"), population=Population(co_adoption=(rule,)))[
        "cross_sell:timetracker"
    ]
    assert cross.reasons[0].to_json() == {
        "code": "co_adoption",
        "antecedent": "pro",
        "confidence": 0.62,
        "lift": 2.4,
        "support": 0.05,
        "accounts": 180,
        "text": "62% of customers with Pro also have TimeTracker — 2.4 times the usual rate "
        "(180 accounts)",
    }
    assert cross.score == pytest.approx(0.62)


@pytest.mark.parametrize(
    "change",
    [
        {"support": 0.001},
        {"confidence": 0.1},
        {"lift": 1.1},
        {"accounts": 3},
        {"antecedent": "enterprise"},
    ],
)
def test_a_co_adoption_rule_below_any_threshold_or_not_held_is_ignored(
    change: dict[str, Any],
) -> None:
    rule = replace(CoAdoption("pro", "timetracker", 180, 0.05, 0.62, 2.4), **change)
    assert offers(account("pro", "99"), population=Population(co_adoption=(rule,))) == {}


def test_co_adoption_can_recommend_an_add_on() -> None:
    rule = CoAdoption("pro", "advanced_scheduling", 40, 0.02, 0.3, 1.5)
    add_on = offers(account("pro", "99"), population=Population(co_adoption=(rule,)))[
        "add_on:advanced_scheduling"
    ]
    assert add_on.reasons[0].code == "co_adoption"


# -- save -----------------------------------------------------------------------------------------

USED = {
    "automation": FeatureUse("automation", used_30d=42),
    "export": FeatureUse("export", used_30d=3),
    "sso": FeatureUse("sso", used_30d=9),  # not in Pro: never "lost"
}


def test_a_cancel_request_gets_a_save_offer_listing_the_features_lost() -> None:
    signals = account(
        "pro",
        "99",
        risk=Risk(cancel_requested=True),
        features=USED,
        metrics=seats(4, 25),
        engagement=Engagement(active_users_30d=4, events_30d=900, tenure_days=151),
    )
    found = offers(signals)
    keep = found["save:pro"]
    assert (keep.kind, keep.item_id, keep.from_item_id) == ("save", "pro", "pro")
    assert keep.expected_mrr_delta == Money.of("99", "USD")  # kept against cancelling
    assert texts(keep) == [
        "asked to cancel",
        "you used Automation 42 times in 30 days; it ends if you cancel",
        "you used Export 3 times in 30 days; it ends if you cancel",
        "4 active users and 900 actions in Pro in the last 30 days",
    ]
    lower = found["save:pro->basic"]  # 4 seats fit Basic's 5
    assert lower.expected_mrr_delta == Money.of("29", "USD")
    assert "Basic at $29.00 a month still covers your 4 seats (up to 5)" in texts(lower)
    assert "you used Automation 42 times in 30 days; Basic does not include it" in texts(lower)
    assert keep.qualified and lower.qualified


def test_a_downgrade_request_is_answered_with_what_the_lower_plan_lacks() -> None:
    signals = account(
        "pro", "99", risk=Risk(downgrade_requested_to="basic"), features=USED, metrics=seats(8, 25)
    )
    found = offers(signals)
    keep = found["save:pro"]
    assert keep.expected_mrr_delta == Money.of("70", "USD")  # against moving to Basic
    assert texts(keep)[:3] == [
        "asked to downgrade to Basic",
        "you used Automation 42 times in 30 days; Basic does not include it",
        "you have 8 seats; Basic allows 5",
    ]
    assert not any(o.startswith("save:pro->") for o in found)  # nothing between Basic and Pro


def test_a_downgrade_to_free_is_offered_the_paid_plan_that_still_fits() -> None:
    found = offers(
        account("pro", "99", risk=Risk(downgrade_requested_to="free"), metrics=seats(4, 25))
    )
    assert found["save:pro->basic"].expected_mrr_delta == Money.of("29", "USD")
    assert found["save:pro"].expected_mrr_delta == Money.of("99", "USD")


def test_churn_risk_gates_expansion_and_offers_a_save_instead() -> None:
    signals = account(
        "pro",
        "99",
        risk=Risk(nps_score=3, open_tickets=3),
        features={"advanced_scheduling": FeatureUse("advanced_scheduling", blocked_30d=5)},
    )
    found = offers(signals)
    assert found["add_on:advanced_scheduling"].gates == ("churn_risk",)
    save = found["save:pro"]
    assert save.qualified
    assert save.reasons[0].text == "at risk of leaving: NPS 3; 3 open support tickets"
    assert next(iter(found)) == "save:pro"  # qualified first
    # It asked for nothing: a cheaper plan would only lose the revenue it was not giving up.
    assert [o for o in found if o.startswith("save:pro->")] == []


def test_one_churn_signal_alone_is_not_a_risk() -> None:
    blocked = {"advanced_scheduling": FeatureUse("advanced_scheduling", blocked_30d=5)}
    found = offers(account("pro", "99", risk=Risk(nps_score=3), features=blocked))
    assert list(found) == ["add_on:advanced_scheduling"]
    assert found["add_on:advanced_scheduling"].qualified


def test_declining_usage_counts_as_a_churn_signal() -> None:
    declining = Engagement(events_30d=100, events_prev_30d=400, tenure_days=151)
    found = offers(account("pro", "99", risk=Risk(nps_score=5), engagement=declining))
    assert "activity fell from 400 to 100 events" in found["save:pro"].sentence


@pytest.mark.parametrize(
    ("said", "motive"),
    [
        ("too_expensive", "too_expensive"),  # Stripe's cancellation feedback
        ("too expensive", "too_expensive"),
        ("The price went up", "too_expensive"),
        ("missing_features", "missing_feature"),
        ("lacks a feature we need", "missing_feature"),
        ("unused", "not_using"),
        ("not using it enough", "not_using"),
        ("switching tool", None),
        ("", None),
        (None, None),
    ],
)
def test_a_cancel_reason_is_read_from_stripes_codes_or_plain_words(
    said: str | None, motive: str | None
) -> None:
    assert cancel_motive(said) == motive


def test_too_expensive_offers_the_plan_kept_and_the_lower_plan_with_what_it_keeps() -> None:
    risk = Risk(cancel_requested=True, cancel_reason="too_expensive")
    found = offers(account("pro", "99", risk=risk, features=USED, metrics=seats(4, 25)))
    keep, lower = found["save:pro"], found["save:pro->basic"]
    assert [r.code for r in keep.reasons][:2] == ["cancel_requested", "too_expensive"]
    assert keep.reasons[0].values == {"reason": "too_expensive"}
    assert "too_expensive" in {r.code for r in lower.reasons}
    assert "fits_usage" in {r.code for r in lower.reasons}
    assert keep.route == lower.route == "self_serve"


def test_a_missing_feature_is_answered_with_the_item_that_has_it() -> None:
    """Cancelling for a missing feature: the add-on or plan with the feature the account tried."""
    tried = {"advanced_scheduling": FeatureUse("advanced_scheduling", blocked_30d=4)}
    risk = Risk(cancel_requested=True, cancel_reason="missing_features")
    found = offers(account("pro", "99", risk=risk, features=tried))
    add = found["save:pro+advanced_scheduling"]
    assert (add.kind, add.item_id, add.from_item_id) == ("save", "advanced_scheduling", "pro")
    assert add.expected_mrr_delta == Money.of("107", "USD")  # Pro and the add-on, against 0
    assert [r.code for r in add.reasons][:3] == [
        "cancel_requested",
        "missing_feature",
        "blocked_feature",
    ]
    assert add.qualified
    automation = {"automation": FeatureUse("automation", blocked_30d=2)}
    up = offers(account("basic", "29", risk=risk, features=automation))["save:basic->pro"]
    assert (up.item_id, up.expected_mrr_delta) == ("pro", Money.of("99", "USD"))


def test_not_using_it_gets_help_from_a_csm_not_a_cheaper_plan() -> None:
    risk = Risk(cancel_requested=True, cancel_reason="not using it enough")
    found = offers(account("pro", "99", risk=risk, features=USED, metrics=seats(4, 25)))
    assert list(found) == ["save:pro"]
    help_ = found["save:pro"]
    assert help_.route == "csm"
    assert "not_using" in {r.code for r in help_.reasons}


def test_a_free_account_gets_no_save_offer() -> None:
    assert offers(account("free", "0", risk=Risk(cancel_requested=True))) == {}


# -- gates ----------------------------------------------------------------------------------------

NEED = seats(4, 5, slope_per_day=0.1, days_to_limit=10)
#: A need only a plan answers (no add-on grants projects): Basic's 3 projects all in use.
PLAN_NEED = {"projects": MetricUsage("projects", "gauge", 3, 3, days_to_limit=0)}


def gates(
    signals: AccountSignals, offer_id: str = "upsell:basic->pro", **kw: Any
) -> tuple[str, ...]:
    return offers(signals, **kw)[offer_id].gates


def test_before_activation_gates_expansion() -> None:
    assert gates(account(metrics=PLAN_NEED, activated=False)) == ("before_activation",)
    relaxed = Policy(require_activation=False)
    assert gates(account(metrics=PLAN_NEED, activated=False), policy=relaxed) == ()


def test_too_new_gates_expansion() -> None:
    assert gates(account(metrics=NEED, tenure_days=5)) == ("too_new",)


def test_payment_failures_gate_as_cannot_afford() -> None:
    assert gates(account(metrics=NEED, risk=Risk(payment_failures_30d=1))) == ("cannot_afford",)


def test_a_tiny_company_is_not_asked_for_more_than_the_small_company_maximum() -> None:
    assert gates(account(metrics=PLAN_NEED, employees=1)) == ("cannot_afford",)
    assert gates(account(metrics=NEED, employees=1), "add_on:extra_seats_5") == ()  # $20 < $50


def test_price_anchor_gates_a_cross_sell_above_30_percent_of_mrr() -> None:
    leads = frozenset({"inbound_leads"})
    assert gates(account("pro", "99", signals=leads), "cross_sell:leadbooster") == ("price_anchor",)
    assert gates(account("enterprise", "299", signals=leads), "cross_sell:leadbooster") == ()
    assert gates(account("free", "0", signals=leads), "cross_sell:leadbooster") == ()  # no anchor
    loose = Policy(price_anchor_share=Decimal("0.5"))
    assert gates(account("pro", "99", signals=leads), "cross_sell:leadbooster", policy=loose) == ()


def test_price_anchor_applies_to_feature_add_ons_not_to_limit_add_ons() -> None:
    # Game: Standard $4.99; the Frostfall DLC at $2.99 is 60 % of it.
    dlc = {"frost_campaign": FeatureUse("frost_campaign", blocked_30d=3)}
    assert gates(
        account("standard", "4.99", features=dlc), "add_on:frost_expansion", model="game"
    ) == ("price_anchor",)
    chars = {"characters": MetricUsage("characters", "gauge", 4, 4, limit_reached_30d=1)}
    assert (
        gates(account("standard", "4.99", metrics=chars), "add_on:character_slots_4", model="game")
        == ()
    )


def test_not_on_required_plan_gates_an_add_on_the_plan_cannot_take() -> None:
    blocked = {"advanced_scheduling": FeatureUse("advanced_scheduling", blocked_30d=4)}
    assert gates(account(features=blocked), "add_on:advanced_scheduling") == (
        "not_on_required_plan",
    )


def test_already_has_item_gates_a_held_product() -> None:
    held = (row("timetracker", "15"),)
    signals = account("enterprise", "299", extra=held, signals=frozenset({"time_tracking"}))
    assert gates(signals, "cross_sell:timetracker") == ("already_has_item",)


def test_a_held_limit_add_on_can_still_be_bought_again() -> None:
    held = (row("extra_seats_5", "20"),)
    signals = account(extra=held, metrics=seats(10, 10, slope_per_day=0.05, days_to_limit=0))
    assert gates(signals, "add_on:extra_seats_5") == ()


def test_a_sales_assisted_plan_is_gated_for_small_accounts_and_routed_to_a_csm_for_large() -> None:
    sso = {"sso": FeatureUse("sso", blocked_30d=5)}
    assert gates(account("pro", "99", features=sso), "upsell:pro->enterprise") == (
        "sales_assisted",
    )
    big = offers(account("pro", "99", features=sso, employees=400))["upsell:pro->enterprise"]
    assert big.qualified and big.route == "csm"
    # csm_min_employees says which company is large: a smaller one qualifies when it is lowered.
    mid = account("pro", "99", features=sso, employees=20)
    assert gates(mid, "upsell:pro->enterprise") == ("sales_assisted",)
    lowered = offers(mid, policy=Policy(csm_min_employees=20))["upsell:pro->enterprise"]
    assert lowered.qualified and lowered.route == "csm"


def test_a_large_company_has_at_least_csm_min_employees_and_an_unknown_size_is_not_large() -> None:
    assert Policy().large(50) and not Policy().large(49) and not Policy().large(None)
    assert Policy(csm_min_employees=10).large(10) and not Policy(csm_min_employees=10).large(9)


def test_save_offers_ignore_timing_and_affordability_gates() -> None:
    signals = account(
        "pro",
        "99",
        activated=False,
        tenure_days=3,
        employees=1,
        risk=Risk(cancel_requested=True, payment_failures_30d=2),
    )
    assert offers(signals)["save:pro"].gates == ()


def test_a_candidate_collects_every_gate_that_applies() -> None:
    signals = account(
        metrics=NEED, activated=False, tenure_days=3, risk=Risk(payment_failures_30d=3)
    )
    assert gates(signals) == ("before_activation", "too_new", "cannot_afford")


# -- money ----------------------------------------------------------------------------------------


def test_a_eur_account_is_quoted_the_price_book_price() -> None:
    up = offers(account("basic", "27", currency="EUR", metrics=NEED))["upsell:basic->pro"]
    assert up.expected_mrr_delta == Money.of("65", "EUR")  # Pro €92 - Basic €27
    assert up.expected_mrr_delta_base == Money.of("70.20", "USD")  # at 1.08
    assert up.to_json()["currency"] == "EUR"
    add_on = offers(account("basic", "27", currency="EUR", metrics=seats(5, 5, days_to_limit=0)))[
        "add_on:extra_seats_5"
    ]
    assert "€18.52 a month" in add_on.sentence  # no EUR price: $20 converted


def test_a_yearly_account_is_quoted_monthly_mrr() -> None:
    up = offers(account("basic", "290", interval="year", metrics=NEED))["upsell:basic->pro"]
    assert up.expected_mrr_delta.as_string() == "58.33"  # (990 - 290) / 12


def test_a_discounted_plan_raises_the_upsell_delta() -> None:
    up = offers(account("basic", "19", metrics=NEED))["upsell:basic->pro"]
    assert up.expected_mrr_delta == Money.of("80", "USD")


def test_add_ons_that_do_not_work_with_the_new_plan_end_with_the_old_one() -> None:
    held = (row("extra_seats_5", "20"),)
    sso = {"sso": FeatureUse("sso", blocked_30d=5)}
    up = offers(account("pro", "99", extra=held, features=sso, employees=400))[
        "upsell:pro->enterprise"
    ]
    assert up.expected_mrr_delta == Money.of("180", "USD")  # 299 - 99 - 20


# -- ranking, output, determinism -----------------------------------------------------------------


def test_candidates_are_sorted_qualified_first_then_by_priority_then_offer_id() -> None:
    signals = account(
        metrics=seats(5, 5, slope_per_day=0.05, days_to_limit=0),
        features={"automation": FeatureUse("automation", blocked_30d=6)},
        signals=frozenset({"inbound_leads", "time_tracking"}),
    )
    found = find_opportunities(signals, catalog())
    keys = [(not o.qualified, -o.priority, o.offer_id) for o in found]
    assert keys == sorted(keys)
    assert found[0].offer_id == "upsell:basic->pro"
    assert not found[-1].qualified


def test_the_same_signals_in_any_order_give_the_same_list() -> None:
    rules = (
        CoAdoption("basic", "timetracker", 50, 0.05, 0.4, 2.0),
        CoAdoption("basic", "leadbooster", 50, 0.05, 0.4, 2.0),
    )
    features = {
        "automation": FeatureUse("automation", blocked_30d=6),
        "export": FeatureUse("export", used_30d=6),
    }
    metrics = {**seats(5, 5, days_to_limit=0), "projects": MetricUsage("projects", "gauge", 3, 3)}
    one = find_opportunities(
        account(features=features, metrics=metrics), catalog(), population=Population(rules)
    )
    other = find_opportunities(
        account(features=dict(reversed(features.items())), metrics=dict(reversed(metrics.items()))),
        catalog(),
        population=Population(tuple(reversed(rules))),
    )
    assert [o.to_json() for o in one] == [o.to_json() for o in other]


def test_the_json_line_has_the_contracts_fields() -> None:
    up = offers(account(metrics=PLAN_NEED))["upsell:basic->pro"]
    line = up.to_json()
    assert list(line) == [
        "account_id",
        "as_of",
        "kind",
        "offer_id",
        "item_id",
        "from_item_id",
        "expected_mrr_delta",
        "currency",
        "score",
        "reasons",
        "qualified",
        "gates",
        "route",
    ]
    assert line["as_of"] == "2026-06-01T00:00:00Z"
    assert line["expected_mrr_delta"] == "70.00"
    assert line["qualified"] is True and line["gates"] == []
    json.dumps(line)  # serialisable as it is


def test_a_sentence_joins_the_reasons() -> None:
    up = offers(
        account(metrics=NEED, features={"automation": FeatureUse("automation", blocked_30d=6)})
    )["upsell:basic->pro"]
    assert up.sentence == (
        "4 of 5 seats used; at this pace the limit is reached in 10 days; "
        "tried Automation 6 times this month — it is in Pro"
    )


def test_the_example_line_in_the_docs_is_what_the_rules_write() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "opportunities.md").read_text()
    example = json.loads(docs.split("## Example", 1)[1].split("```json\n", 1)[1].split("```")[0])
    signals = account(
        account_id="a-0042",
        employees=18,
        metrics=seats(4, 5, slope_per_day=0.11, days_to_limit=9),
        features={"automation": FeatureUse("automation", blocked_30d=6)},
    )
    assert offers(signals)["upsell:basic->pro"].to_json() == example


def test_a_limit_hit_is_stronger_evidence_than_a_limit_merely_full() -> None:
    full = offers(account(metrics=seats(5, 5, days_to_limit=0)))["upsell:basic->pro"]
    hit = offers(account(metrics=seats(5, 5, limit_reached_30d=1)))["upsell:basic->pro"]
    soon = offers(account(metrics=seats(4, 5, slope_per_day=0.1, days_to_limit=2)))[
        "upsell:basic->pro"
    ]
    assert full.score < soon.score < hit.score


def test_reason_json_puts_code_first_and_text_last() -> None:
    reason = Reason("near_limit", "t", metric="seats", values={"used": 1, "limit": 2})
    assert list(reason.to_json()) == ["code", "metric", "used", "limit", "text"]
    assert Reason("x", "y").to_json() == {"code": "x", "text": "y"}


# -- strategies -----------------------------------------------------------------------------------


def test_every_business_model_has_a_strategy() -> None:
    for model in ("saas", "freemium", "game", "software"):
        assert strategy_for(model) is STRATEGIES[model]
    with pytest.raises(KeyError, match="known"):
        strategy_for("retail")


def test_freemium_sells_a_single_premium_feature_before_the_full_plan() -> None:
    blocked = {
        "ai_assist": FeatureUse("ai_assist", blocked_30d=4),
        "offline_access": FeatureUse("offline_access", blocked_30d=4),
    }
    found = find_opportunities(account("free", "0", features=blocked), catalog("freemium"))
    assert [o.offer_id for o in found] == ["add_on:ai_assist", "upsell:free->plus"]
    weights = {o.kind: o.weight for o in found}
    assert weights["add_on"] > weights["upsell"]
    paying = find_opportunities(account("plus", "8"), catalog("freemium"))
    assert paying == []
    assert STRATEGIES["freemium"].weight("upsell", paying=True, large=False) == 1.0


def test_games_cross_sell_dlc_only_after_a_first_purchase() -> None:
    never_paid = account(
        "free_to_play",
        "0",
        signals=frozenset({"ranked_grinder"}),
        features={"ranked_play": FeatureUse("ranked_play", blocked_30d=3)},
    )
    assert list(offers(never_paid, "game")) == ["upsell:free_to_play->standard"]
    paid = replace(never_paid, paid_before=True)
    assert "cross_sell:arena_stats_pro" in offers(paid, "game")


def test_games_and_software_offer_the_edition_at_first_purchase_before_activation() -> None:
    trial = row("standard", "79", status="trialing")
    signals = account(
        None,
        "0",
        plan_id="standard",
        plan_status="trialing",
        activated=False,
        tenure_days=3,
        extra=(trial,),
        features={"simulation": FeatureUse("simulation", blocked_30d=4)},
        signals=frozenset({"design_reviews"}),
    )
    found = offers(signals, "software")
    assert found["upsell:professional"].qualified
    assert found["upsell:professional"].expected_mrr_delta == Money.of("199", "USD")
    # Add-ons and products wait for activation (and tenure).
    assert found["cross_sell:pdm_vault"].gates == ("before_activation", "too_new")


def test_software_add_ons_wait_for_activation_even_when_the_policy_does_not() -> None:
    cad = {"cad_toolkit": FeatureUse("cad_toolkit", blocked_30d=4)}
    signals = account("professional", "199", features=cad, activated=False)
    relaxed = Policy(require_activation=False)
    assert gates(signals, "add_on:cad_toolkit", model="software", policy=relaxed) == (
        "before_activation",
    )


def test_saas_weighs_cross_sell_more_for_large_accounts() -> None:
    saas = STRATEGIES["saas"]
    assert saas.weight("cross_sell", paying=True, large=True) > saas.weight(
        "cross_sell", paying=True, large=False
    )
    assert saas.weight("upsell", paying=True, large=False) == 1.0


def test_a_strategy_leaves_out_the_kinds_it_does_not_make() -> None:
    only_upsell = Strategy(kinds=("upsell",))
    signals = account(metrics=seats(5, 5, days_to_limit=0), signals=frozenset({"time_tracking"}))
    found = find_opportunities(signals, catalog(), strategy=only_upsell)
    assert {o.kind for o in found} == {"upsell"}


def test_a_plugin_can_register_a_strategy() -> None:
    mine = Strategy(kinds=("upsell", "save"), preference={"upsell": 0.5})
    register_strategy("marketplace", mine)
    try:
        assert strategy_for("marketplace") is mine
        assert STRATEGIES["marketplace"] is mine
    finally:
        from upsell.domain import strategy as module

        module._registry.pop("marketplace")


def test_a_strategy_refuses_unknown_kinds_and_negative_weights() -> None:
    with pytest.raises(ValueError, match="unknown offer kinds"):
        Strategy(kinds=("upsell", "bundle"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        Strategy(kinds=("upsell",), preference={"upsell": -1.0})


# -- policy ---------------------------------------------------------------------------------------


def test_the_default_policy_is_valid_and_bad_values_are_named() -> None:
    assert Policy().check() == []
    bad = Policy(min_tenure_days=-1, price_anchor_share=Decimal("1.5"), churn_min_signals=0)
    assert {p.key for p in bad.check()} == {
        "min_tenure_days",
        "price_anchor_share",
        "churn_min_signals",
    }


# -- properties -----------------------------------------------------------------------------------

MODELS = ("saas", "freemium", "game", "software")
small = st.integers(min_value=0, max_value=50)
ratio = st.floats(min_value=0, max_value=1)


@st.composite
def metric_usage(draw: st.DrawFn, metric: str, kind: str) -> MetricUsage:
    return MetricUsage(
        metric,
        kind,  # type: ignore[arg-type]
        draw(st.floats(min_value=0, max_value=200_000)),
        draw(st.none() | st.integers(min_value=0, max_value=100_000).map(float)),
        draw(st.none() | st.floats(min_value=-100, max_value=1000)),
        draw(st.none() | st.floats(min_value=0, max_value=400)),
        draw(small),
    )


@st.composite
def random_account(draw: st.DrawFn, model: str) -> tuple[AccountSignals, Population]:
    """Any account of `model`'s catalog: any plan (or none, or an unknown one), held items, usage
    against any limits, wanted features, signals, risk, metered spend, and population rules."""
    cat = catalog(model)
    plans = [p.id for p in cat.plans]
    items = sorted(cat.item_ids)
    features = sorted(
        {f for p in cat.plans for f in p.features} | {f for a in cat.add_ons for f in a.features}
    )
    plan = draw(st.sampled_from([None, "retired", *plans]))
    currency = draw(st.sampled_from(["USD", "EUR", "NOK", "GBP"]))
    extra = tuple(
        row(item, draw(st.sampled_from(["0", "5", "15.50", "39"])), currency)
        for item in draw(st.sets(st.sampled_from(items), max_size=3))
    )
    metrics = {
        m: draw(metric_usage(m, cat.metrics[m].kind))
        for m in draw(st.sets(st.sampled_from(sorted(cat.metrics))))
    }
    uses = {
        f: FeatureUse(f, draw(small), draw(small), draw(small), draw(small))
        for f in draw(st.sets(st.sampled_from(features)))
    }
    signals = account(
        plan,
        draw(st.sampled_from(["0", "9.99", "29", "99", "290"])),
        currency=currency,
        interval=draw(st.sampled_from(["month", "year"])),
        extra=extra,
        plan_status=draw(st.sampled_from(["active", "trialing", "past_due"])),
        tenure_days=draw(st.integers(0, 400)),
        employees=draw(st.none() | st.integers(0, 1000)),
        activated=draw(st.booleans()),
        paid_before=draw(st.booleans()),
        metrics=metrics,
        features=uses,
        signals=frozenset(draw(st.sets(st.sampled_from(sorted(cat.signals))))),
        engagement=Engagement(
            active_users_30d=draw(small),
            events_30d=draw(st.integers(0, 5000)),
            events_prev_30d=draw(st.integers(0, 5000)),
            tenure_days=draw(st.integers(0, 400)),
        ),
        risk=Risk(
            payment_failures_30d=draw(st.integers(0, 3)),
            open_tickets=draw(st.integers(0, 5)),
            nps_score=draw(st.none() | st.integers(0, 10)),
            downgrade_requested_to=draw(st.none() | st.sampled_from([*plans, "retired"])),
            cancel_requested=draw(st.booleans()),
        ),
        usage=tuple(
            UsageSpend(u.id, u.metric, draw(st.floats(0, 5000)), draw(st.floats(0, 5000)))
            for u in cat.usage_pricing
        ),
    )
    population = Population(
        co_adoption=tuple(
            CoAdoption(a, c, draw(small), draw(ratio), draw(ratio), draw(st.floats(0, 10)))
            for a, c in draw(
                st.lists(st.tuples(st.sampled_from(items), st.sampled_from(items)), max_size=4)
            )
        ),
        upgrade_patterns=tuple(
            UpgradePattern(f, p, draw(small), draw(st.floats(0, 10)))
            for f, p in draw(
                st.lists(st.tuples(st.sampled_from(features), st.sampled_from(plans)), max_size=3)
            )
        ),
    )
    return signals, population


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(MODELS).flatmap(lambda m: st.tuples(st.just(m), random_account(m))))
def test_scores_are_probabilities_and_qualified_means_no_gates(
    case: tuple[str, tuple[AccountSignals, Population]],
) -> None:
    model, (signals, population) = case
    found = find_opportunities(signals, catalog(model), population=population)
    for o in found:
        assert 0.0 <= o.score <= 1.0
        assert o.qualified == (not o.gates)
        assert set(o.gates) <= set(GATES)
        assert o.reasons, o.offer_id
        assert o.expected_mrr_delta.currency == o.to_json()["currency"]
        json.dumps(o.to_json())
    assert len({o.offer_id for o in found}) == len(found)
    keys = [(not o.qualified, -o.priority, o.offer_id) for o in found]
    assert keys == sorted(keys)
