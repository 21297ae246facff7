"""The decision step's domain rules: one offer per account, expected value, guardrails, holdout,
experiments and the heuristic acceptance model (upsell.domain.decisions).

Opportunities and playbooks are built directly, so that each test controls exactly what it needs.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upsell.domain.acceptance import (
    CSM_LARGE_TERM,
    CSM_SMALL_TERM,
    SEEN,
    TRIAL_CONVERSION,
    TRIAL_TERM,
    acceptance,
)
from upsell.domain.decisions import (
    REFUSALS,
    Choice,
    Decision,
    Refusal,
    decide,
    held_out,
    holdout_share,
    reach_days,
    unit_hash,
    variant_for,
)
from upsell.domain.history import History, PastContact, PastResponse
from upsell.domain.money import Money
from upsell.domain.offers import KINDS, Kind
from upsell.domain.opportunities import Opportunity, Policy, Reason
from upsell.domain.playbooks import (
    Cap,
    Condition,
    DecisionSettings,
    Experiment,
    Guardrails,
    Offer,
    Playbook,
    Playbooks,
    Promotion,
    PromotionRun,
    Variant,
)
from upsell.domain.signals import AccountSignals, Engagement, Risk
from upsell.domain.subscriptions import Purchase, SubscriptionItem, last_purchase

AS_OF = datetime(2026, 6, 1, 12, tzinfo=UTC)
TODAY = AS_OF.date()
SIGNED_UP = datetime(2026, 1, 1, tzinfo=UTC)
EMAIL = "owner@example.com"
NO_HOLDOUT = DecisionSettings(holdout_share=0.0)


# -- builders -----------------------------------------------------------------------------------


def signals(
    account_id: str = "a-1",
    *,
    tenure_days: int = 151,
    employees: int | None = 10,
    active_days: int = 20,
    risk: Risk | None = None,
    engagement: Engagement | None = None,
    **kw: Any,
) -> AccountSignals:
    """An established 10-person account on basic, active 20 days of the last 30."""
    return AccountSignals(
        account_id=account_id,
        as_of=AS_OF,
        created_at=SIGNED_UP,
        tenure_days=tenure_days,
        mrr=Money.of("29", "USD"),
        employees=employees,
        plan_id="basic",
        plan_status="active",
        plan_interval="month",
        activated=True,
        engagement=engagement or Engagement(active_users_30d=5, active_days_30d=active_days),
        risk=risk or Risk(),
        **kw,
    )


def opp(
    offer_id: str = "upsell:basic->pro",
    *,
    kind: Kind | None = None,
    delta: str = "70",
    score: float = 0.8,
    account_id: str = "a-1",
    gates: tuple[Any, ...] = (),
    reasons: tuple[Reason, ...] = (),
    route: Any = "self_serve",
) -> Opportunity:
    """An opportunity of `kind` (by default the offer id's prefix) worth `delta` USD a month."""
    k: Any = kind or offer_id.split(":")[0]
    item = offer_id.split("->")[-1].split(":")[-1]
    return Opportunity(
        account_id=account_id,
        as_of=AS_OF,
        kind=k,
        offer_id=offer_id,
        item_id=item,
        from_item_id="basic" if k == "upsell" else None,
        expected_mrr_delta=Money.of(delta, "USD"),
        expected_mrr_delta_base=Money.of(delta, "USD"),
        score=score,
        reasons=reasons or (Reason("near_limit", "4 of 5 seats used"),),
        gates=gates,
        route=route,
    )


def book(
    playbook_id: str,
    channel: str = "in_app",
    placement: str = "modal",
    *,
    trigger: tuple[Condition, ...] = (),
    offer: Offer | None = None,
    experiment: Experiment | None = None,
    template: str = "tpl",
) -> Playbook:
    return Playbook(
        id=playbook_id,
        channel=channel,
        placement=placement,
        template=template,
        trigger=trigger,
        offer=offer or Offer(),
        experiment=experiment,
    )


def books(
    *playbooks: Playbook,
    promotions: tuple[Promotion, ...] = (),
    guardrails: Guardrails | None = None,
    decision_settings: DecisionSettings = NO_HOLDOUT,
    **guardrail_fields: Any,
) -> Playbooks:
    """Playbooks with default guardrails (changed by `guardrail_fields`) and no holdout."""
    g = guardrails or Guardrails()
    if guardrail_fields:
        g = replace(g, **guardrail_fields)
    return Playbooks(tuple(playbooks), promotions, g, decision_settings)


def ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def contact(
    days_ago: float,
    channel: str = "email",
    placement: str | None = None,
    *,
    offer_id: str = "add_on:other",
    **kw: Any,
) -> PastContact:
    return PastContact(ago(days_ago), offer_id, channel, placement, **kw)


def expected_value(
    p: float,
    delta: float,
    *,
    months: float = 12.0,
    percent: float | None = None,
    discount_months: int | None = None,
    cost: float = 0.0,
) -> float:
    """The module's EV formula, written out: P x delta x months x (1 - discount share) - cost."""
    kept = 1.0
    if percent is not None:
        share = (months if discount_months is None else min(discount_months, months)) / months
        kept = 1.0 - percent / 100 * share
    return p * delta * months * kept - cost


def p_of(
    o: Opportunity,
    s: AccountSignals,
    arm: Playbook,
    history: History = History(),  # noqa: B008 - frozen: a shared default is safe
    deadline: date | None = None,
) -> float:
    return acceptance(o, s, arm, history, AS_OF, deadline)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def logistic(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def only_refusal(choice: Choice) -> Refusal:
    assert choice.decision is None
    assert len(choice.refusals) == 1, choice.refusals
    return choice.refusals[0]


def decision_of(choice: Choice) -> Decision:
    assert choice.decision is not None, choice.refusals
    return choice.decision


MODAL = book("modal", "in_app", "modal")
BANNER = book("banner", "in_app", "banner")
TOOLTIP = book("tooltip", "in_app", "tooltip")
MAIL = book("mail", "email", "email")
CSM = book("csm", "csm_task", "task")
HOOK = book("hook", "webhook", "event")


# -- one decision per account, the highest expected value -----------------------------------------


def test_a_qualified_opportunity_with_a_matching_playbook_becomes_the_accounts_one_decision() -> (
    None
):
    o = opp()
    choice = decide(signals(), [o], books(MODAL))
    d = decision_of(choice)
    assert choice.account_id == "a-1"
    assert choice.refusals == ()
    assert (d.account_id, d.offer_id, d.opportunity) == ("a-1", "upsell:basic->pro", o)
    assert d.playbook == MODAL
    assert d.variant is None and d.experiment is None
    assert d.held_out is False
    assert d.deadline is None and d.promotion is None
    assert 0 < d.p_accept <= 1
    assert d.expected_value > 0


def test_the_opportunity_with_the_highest_expected_value_wins_not_the_first_listed() -> None:
    s = signals()
    small = opp("upsell:basic->pro", delta="70", score=0.8)
    large = opp("upsell:basic->team", delta="200", score=0.5)
    ev_small = expected_value(p_of(small, s, BANNER), 70)
    ev_large = expected_value(p_of(large, s, BANNER), 200)
    assert ev_large > ev_small  # the test's premise: lower evidence, larger delta
    d = decision_of(decide(s, [small, large], books(BANNER)))
    assert d.offer_id == "upsell:basic->team"
    assert d.expected_value == pytest.approx(ev_large)


def test_an_in_app_modal_beats_an_email_for_the_same_offer_on_an_active_account() -> None:
    s, o = signals(active_days=20), opp()
    ev_modal = expected_value(p_of(o, s, MODAL), 70)
    ev_mail = expected_value(p_of(o, s, MAIL), 70, cost=0.10)
    assert ev_modal > ev_mail
    choice = decide(s, [o], books(MAIL, MODAL), email=EMAIL)  # the email is listed first
    d = decision_of(choice)
    assert d.playbook.id == "modal" and d.channel == "in_app"
    assert d.expected_value == pytest.approx(ev_modal)
    assert choice.refusals == ()


def test_an_email_beats_an_in_app_modal_for_an_account_that_rarely_comes_by() -> None:
    s, o = signals(active_days=1), opp()
    ev_modal = expected_value(p_of(o, s, MODAL), 70)
    ev_mail = expected_value(p_of(o, s, MAIL), 70, cost=0.10)
    assert ev_mail > ev_modal
    d = decision_of(decide(s, [o], books(MODAL, MAIL), email=EMAIL))
    assert d.playbook.id == "mail" and d.channel == "email"
    assert d.expected_value == pytest.approx(ev_mail)


def test_the_best_option_across_opportunities_and_playbooks_wins() -> None:
    s = signals(employees=80, active_days=6)
    cost = {"in_app": 0.0, "email": 0.10, "csm_task": 30.0}
    opportunities = [
        opp("upsell:basic->pro", delta="70", score=0.9),
        opp("add_on:seats_5", delta="25", score=0.6),
        opp("cross_sell:crm", delta="120", score=0.3),
    ]
    arms = [MAIL, BANNER, MODAL, CSM]
    evs = {
        (o.offer_id, arm.id): expected_value(
            p_of(o, s, arm), float(o.expected_mrr_delta_base.amount), cost=cost[arm.channel]
        )
        for o in opportunities
        for arm in arms
    }
    best = max(evs, key=lambda k: evs[k])
    d = decision_of(decide(s, opportunities, books(*arms), email=EMAIL))
    assert (d.offer_id, d.playbook.id) == best
    assert d.expected_value == pytest.approx(evs[best])


def test_an_exact_tie_goes_to_the_playbook_listed_first() -> None:
    zulu = book("zulu", "in_app", "banner")
    alpha = book("alpha", "in_app", "banner")
    s, o = signals(), opp()
    first = decision_of(decide(s, [o], books(zulu, alpha)))
    assert first.playbook.id == "zulu"
    second = decision_of(decide(s, [o], books(alpha, zulu)))
    assert second.playbook.id == "alpha"
    assert first.expected_value == second.expected_value


def test_an_exact_tie_in_one_playbook_goes_to_the_lower_offer_id() -> None:
    b, a = opp("upsell:basic->b"), opp("upsell:basic->a")
    d = decision_of(decide(signals(), [b, a], books(BANNER)))
    assert d.offer_id == "upsell:basic->a"
    d = decision_of(decide(signals(), [a, b], books(BANNER)))
    assert d.offer_id == "upsell:basic->a"


def test_playbook_order_breaks_a_tie_before_the_offer_id() -> None:
    for_z = book(
        "for-z", "in_app", "banner", trigger=(Condition("offer_id", "equals", "upsell:z"),)
    )
    for_a = book(
        "for-a", "in_app", "banner", trigger=(Condition("offer_id", "equals", "upsell:a"),)
    )
    opportunities = [opp("upsell:a"), opp("upsell:z")]
    d = decision_of(decide(signals(), opportunities, books(for_z, for_a)))
    assert (d.playbook.id, d.offer_id) == ("for-z", "upsell:z")


# -- qualification and matching ---------------------------------------------------------------------


def test_an_unqualified_opportunity_never_becomes_a_decision_and_is_not_refused_again() -> None:
    gated = opp("upsell:basic->team", delta="500", score=1.0, gates=("too_new",))
    plain = opp("upsell:basic->pro", delta="10", score=0.2)
    choice = decide(signals(), [gated, plain], books(MODAL))
    assert decision_of(choice).offer_id == "upsell:basic->pro"
    assert choice.refusals == ()


def test_no_qualified_opportunity_is_no_decision_and_no_refusal() -> None:
    gated = [opp(gates=("before_activation",)), opp("add_on:seats_5", gates=("cannot_afford",))]
    assert decide(signals(), gated, books(MODAL)) == Choice("a-1", None, ())
    assert decide(signals(), [], books(MODAL)) == Choice("a-1", None, ())


def test_only_unqualified_opportunities_skip_the_account_guardrails_too() -> None:
    quiet = signals(tenure_days=1, risk=Risk(open_tickets=3))
    assert decide(quiet, [opp(gates=("too_new",))], books(MODAL)) == Choice("a-1", None, ())


def test_no_matching_trigger_is_refused_as_no_playbook() -> None:
    saves_only = book("save", trigger=(Condition("kind", "equals", "save"),))
    r = only_refusal(decide(signals(), [opp(), opp("add_on:seats_5")], books(saves_only)))
    assert r.guardrail == "no_playbook"
    assert r.account_id == "a-1"
    assert r.offer_id == "upsell:basic->pro"
    assert r.playbook is None
    assert "trigger" in r.detail


def test_a_trigger_on_the_accounts_signals_selects_the_playbook() -> None:
    large_only = book("large", trigger=(Condition("employees", "at_least", 50),))
    assert only_refusal(decide(signals(employees=10), [opp()], books(large_only))).guardrail == (
        "no_playbook"
    )
    d = decision_of(decide(signals(employees=60), [opp()], books(large_only)))
    assert d.playbook.id == "large"


def test_a_csm_task_costing_more_than_a_tiny_delta_earns_is_not_worth_it() -> None:
    s, o = signals(employees=60), opp("add_on:tiny", delta="1", score=0.9)
    p = p_of(o, s, CSM)
    assert p * 1 * 12 < 30  # the premise: P x delta x months is below the CSM's cost
    r = only_refusal(decide(s, [o], books(CSM)))
    assert r.guardrail == "not_worth_it"
    assert (r.offer_id, r.playbook) == ("add_on:tiny", "csm")
    assert "csm_task" in r.detail
    assert f"{expected_value(p, 1, cost=30):.2f}" in r.detail
    assert f"{p:.3f}" in r.detail


def test_an_in_app_offer_to_an_account_never_active_is_not_worth_it() -> None:
    r = only_refusal(decide(signals(active_days=0), [opp()], books(MODAL)))
    assert r.guardrail == "not_worth_it"
    assert "expected value 0.00" in r.detail


def test_a_refused_option_leaves_the_next_best_one_and_its_refusal_is_kept() -> None:
    s, o = signals(employees=5), opp("add_on:tiny", delta="1")
    choice = decide(s, [o], books(CSM, BANNER))
    assert decision_of(choice).playbook.id == "banner"
    assert [(r.guardrail, r.playbook) for r in choice.refusals] == [("not_worth_it", "csm")]


# -- account guardrails -----------------------------------------------------------------------------


def test_an_account_in_its_first_days_is_in_its_quiet_period() -> None:
    r = only_refusal(decide(signals(tenure_days=3), [opp()], books(MODAL)))
    assert r.guardrail == "quiet_period"
    assert r.detail == "signed up 3 days ago (quiet for 7)"
    assert (r.offer_id, r.playbook) == ("upsell:basic->pro", None)


def test_the_quiet_period_ends_on_its_last_day() -> None:
    assert decide(signals(tenure_days=7), [opp()], books(MODAL)).decision is not None
    r = only_refusal(decide(signals(tenure_days=13), [opp()], books(MODAL, quiet_signup_days=14)))
    assert r.detail == "signed up 13 days ago (quiet for 14)"


def test_an_open_support_ticket_is_a_quiet_period() -> None:
    s = signals(risk=Risk(open_tickets=2))
    r = only_refusal(decide(s, [opp()], books(MODAL)))
    assert r.guardrail == "quiet_period"
    assert r.detail == "2 support ticket(s) open"
    assert decide(s, [opp()], books(MODAL, quiet_open_ticket=False)).decision is not None


def test_a_failed_payment_is_a_quiet_period() -> None:
    s = signals(risk=Risk(payment_failures_30d=1))
    r = only_refusal(decide(s, [opp()], books(MODAL)))
    assert r.guardrail == "quiet_period"
    assert r.detail == "1 failed payment(s) in the last 30 days"
    assert decide(s, [opp()], books(MODAL, quiet_payment_failed=False)).decision is not None


def test_a_dismissed_offer_starts_a_cooldown() -> None:
    history = History(
        responses=(
            PastResponse(ago(20), "add_on:seats_5", "dismissed"),
            PastResponse(ago(10), "upsell:basic->plus", "dismissed"),
            PastResponse(ago(5), "upsell:basic->pro", "clicked"),
        )
    )
    r = only_refusal(decide(signals(), [opp()], books(MODAL), history))
    assert r.guardrail == "dismissed_cooldown"
    assert r.detail == f"dismissed upsell:basic->plus on {ago(10).date()} (cooldown 30 days)"
    assert r.playbook is None


def test_a_dismissal_before_the_cooldown_window_is_forgotten() -> None:
    history = History(responses=(PastResponse(ago(31), "upsell:basic->pro", "dismissed"),))
    choice = decide(signals(), [opp()], books(MODAL), history)
    assert choice.decision is not None and choice.refusals == ()
    r = only_refusal(decide(signals(), [opp()], books(MODAL, dismissed_cooldown_days=45), history))
    assert r.guardrail == "dismissed_cooldown"


def test_other_responses_start_no_cooldown() -> None:
    responses = tuple(
        PastResponse(ago(3), "upsell:basic->pro", kind)
        for kind in ("shown", "opened", "clicked", "accepted")
    )
    choice = decide(signals(), [opp()], books(MODAL), History(responses=responses))
    assert choice.decision is not None and choice.refusals == ()


# -- after a purchase -------------------------------------------------------------------------

TIERS = {"free": 0, "basic": 1, "pro": 2}


def row(item: str, started: float, ended: float | None = None, **kw: Any) -> SubscriptionItem:
    """A row of `item` started `started` days before AS_OF (ended `ended` days before)."""
    price = kw.pop("price", "29")
    end = ago(ended) if ended is not None else None
    return SubscriptionItem("a-1", item, ago(started), Money.of(price, "USD"), end, **kw)


@pytest.mark.parametrize(
    ("rows", "bought"),
    [
        ((row("basic", 200, 6), row("pro", 6)), ("pro", 6)),  # an upgrade
        ((row("pro", 200, 6), row("basic", 6)), ("pro", 200)),  # a downgrade
        ((row("basic", 200), row("storage", 3)), ("storage", 3)),  # an add-on
        ((row("pro", 40, 10, status="trialing"), row("pro", 10)), ("pro", 10)),  # a trial converted
        ((row("pro", 40, 10, quantity=5), row("pro", 10, quantity=8)), ("pro", 10)),  # more seats
        ((row("pro", 40, 10, quantity=8), row("pro", 10, quantity=5)), ("pro", 40)),  # fewer
        ((row("pro", 400, 35), row("pro", 35, price="31")), ("pro", 400)),  # a new price
        ((row("pro", 3, status="trialing"),), None),  # a trial is no purchase
        ((row("free", 3, price="0"),), None),  # nor is a free plan
        ((row("basic", 90), row("pro", -1)), ("basic", 90)),  # not yet started
    ],
)
def test_a_purchase_is_a_paid_row_that_adds_to_what_the_account_held(
    rows: tuple[SubscriptionItem, ...], bought: tuple[str, float] | None
) -> None:
    p = last_purchase(rows, TIERS, AS_OF)
    assert (None if p is None else (p.item_id, (AS_OF - p.at).days)) == bought


def test_no_offer_for_the_cooldown_after_a_purchase() -> None:
    upgraded = signals(last_purchase=Purchase("pro", ago(6)))
    r = only_refusal(decide(upgraded, [opp("cross_sell:leads")], books(MODAL)))
    assert r.guardrail == "recent_purchase"
    assert r.detail == f"bought pro on {ago(6).date()} (cooldown 30 days)"
    assert decide(upgraded, [opp()], books(MODAL, purchase_cooldown_days=5)).decision is not None
    assert decide(upgraded, [opp()], books(MODAL, purchase_cooldown_days=0)).decision is not None
    long_ago = signals(last_purchase=Purchase("pro", ago(31)))
    assert decide(long_ago, [opp()], books(MODAL)).decision is not None


# -- accounts a CSM owns ------------------------------------------------------------------------

ENTERPRISE = "upsell:pro->enterprise"


@pytest.mark.parametrize("arm", [MAIL, MODAL, BANNER, HOOK], ids=lambda b: b.id)
def test_an_owned_account_gets_no_automated_offer_while_its_csm_task_is_open(
    arm: Playbook,
) -> None:
    history = History(contacts=(contact(7, "csm_task", "task", offer_id=ENTERPRISE),))
    choice = decide(signals(), [opp("add_on:ai")], books(arm), history, email=EMAIL, owner="dana")
    r = only_refusal(choice)
    assert (r.guardrail, r.playbook) == ("csm_owned", arm.id)
    assert r.detail == (
        f"dana owns the account and the CSM task {ENTERPRISE} of {ago(7).date()} is open "
        "(no answer yet; open for 30 days)"
    )


def test_the_csm_task_closes_with_an_answer_or_after_its_days() -> None:
    task = contact(7, "csm_task", "task", offer_id=ENTERPRISE)
    answered = History(contacts=(task,), responses=(PastResponse(ago(2), ENTERPRISE, "accepted"),))
    old = History(contacts=(contact(31, "csm_task", "task", offer_id=ENTERPRISE),))
    held = History(contacts=(replace(task, held_out=True),))
    for history in (answered, old, held):
        assert decide(signals(), [opp()], books(MODAL), history, owner="dana").decision
    shorter = books(MODAL, csm_task_open_days=5)
    assert decide(signals(), [opp()], shorter, History(contacts=(task,)), owner="dana").decision


def test_an_account_without_an_owner_or_a_csm_offer_is_not_held_back() -> None:
    history = History(contacts=(contact(7, "csm_task", "task", offer_id=ENTERPRISE),))
    assert decide(signals(), [opp()], books(MODAL), history).decision is not None
    csm_only = books(CSM, guardrails=Guardrails(caps=()))
    s = signals(employees=80)
    assert decide(s, [opp()], csm_only, history, owner="dana").decision is not None


OVERALL_ONLY = Guardrails(caps=(Cap(max=3, days=30),))


def test_the_overall_cap_refuses_an_account_contacted_too_often() -> None:
    history = History(
        contacts=(contact(2, "email"), contact(9, "in_app", "banner"), contact(25, "csm_task"))
    )
    r = only_refusal(decide(signals(), [opp()], books(MODAL, guardrails=OVERALL_ONLY), history))
    assert r.guardrail == "recently_contacted"
    assert r.detail == "3 contacts in 30 days (3 per 30 days on all channels)"
    assert r.playbook is None


def test_held_out_and_failed_contacts_do_not_count_toward_the_overall_cap() -> None:
    history = History(
        contacts=(
            contact(2, "email"),
            contact(9, "in_app", "banner", held_out=True),
            contact(25, "csm_task", failed=True),
        )
    )
    choice = decide(signals(), [opp()], books(MODAL, guardrails=OVERALL_ONLY), history)
    assert choice.decision is not None and choice.refusals == ()


def test_contacts_at_or_after_the_as_of_instant_and_older_than_the_window_do_not_count() -> None:
    history = History(
        contacts=(
            contact(2, "email"),
            contact(0, "email"),  # at as_of: the run being decided, not before it
            contact(-3, "email"),  # after as_of
            contact(31, "email"),  # before the 30-day window
        )
    )
    choice = decide(signals(), [opp()], books(MODAL, guardrails=OVERALL_ONLY), history)
    assert choice.decision is not None and choice.refusals == ()


def test_the_overall_cap_counts_from_the_start_of_its_window() -> None:
    history = History(contacts=(contact(1), contact(2), contact(30)))
    r = only_refusal(decide(signals(), [opp()], books(MODAL, guardrails=OVERALL_ONLY), history))
    assert r.guardrail == "recently_contacted"


# -- option guardrails ------------------------------------------------------------------------------


def test_a_channels_frequency_cap_refuses_that_channel_only() -> None:
    history = History(contacts=(contact(3, "email"), contact(20, "email")))
    choice = decide(signals(), [opp()], books(MAIL, BANNER), history, email=EMAIL)
    assert decision_of(choice).playbook.id == "banner"
    [r] = choice.refusals
    assert (r.guardrail, r.playbook, r.offer_id) == ("frequency_cap", "mail", "upsell:basic->pro")
    assert r.detail == "2 contacts in 30 days (2 per 30 days on email)"


def test_a_frequency_cap_counts_only_that_channels_reached_contacts() -> None:
    history = History(
        contacts=(
            contact(3, "email"),
            contact(5, "email", failed=True),
            contact(6, "email", held_out=True),
            contact(7, "in_app", "banner"),
        )
    )
    choice = decide(signals(), [opp()], books(MAIL), history, email=EMAIL)
    assert decision_of(choice).playbook.id == "mail"
    assert choice.refusals == ()


def test_a_placement_cap_counts_only_contacts_in_that_placement() -> None:
    modal_cap = Guardrails(caps=(Cap(max=1, days=14, channel="in_app", placement="modal"),))
    banners = History(contacts=(contact(2, "in_app", "banner"), contact(4, "in_app", "banner")))
    choice = decide(signals(), [opp()], books(MODAL, guardrails=modal_cap), banners)
    assert decision_of(choice).playbook.id == "modal"

    a_modal = History(contacts=(contact(4, "in_app", "modal"),))
    r = only_refusal(decide(signals(), [opp()], books(MODAL, guardrails=modal_cap), a_modal))
    assert (r.guardrail, r.playbook) == ("frequency_cap", "modal")
    assert r.detail == "1 contacts in 14 days (1 per 14 days on in_app modal)"

    # A banner is not in the modal cap's placement: the modal shown does not stop it.
    choice = decide(signals(), [opp()], books(BANNER, guardrails=modal_cap), a_modal)
    assert decision_of(choice).playbook.id == "banner"


def test_a_channel_cap_without_a_placement_counts_every_placement() -> None:
    history = History(contacts=(contact(2, "in_app", "modal"), contact(4, "in_app", "tooltip")))
    r = only_refusal(decide(signals(), [opp()], books(BANNER), history))
    assert (r.guardrail, r.playbook) == ("frequency_cap", "banner")
    assert r.detail == "2 contacts in 14 days (2 per 14 days on in_app)"


def test_an_email_offer_needs_an_email_address() -> None:
    for address in (None, ""):
        r = only_refusal(decide(signals(), [opp()], books(MAIL), email=address))
        assert (r.guardrail, r.playbook, r.offer_id) == (
            "no_email_address",
            "mail",
            "upsell:basic->pro",
        )
        assert "no email address" in r.detail
    assert decide(signals(), [opp()], books(MAIL), email=EMAIL).decision is not None


def test_an_in_app_offer_needs_no_email_address() -> None:
    choice = decide(signals(), [opp()], books(MODAL), email=None)
    assert choice.decision is not None and choice.refusals == ()


SPRING = Promotion(
    "spring",
    Decimal("20"),
    discount_months=3,
    runs=(
        PromotionRun(date(2025, 9, 1), date(2025, 9, 30)),
        PromotionRun(TODAY - timedelta(days=10), TODAY + timedelta(days=20)),
    ),
)
SPRING_BANNER = book("spring-banner", "in_app", "banner", offer=Offer(promotion="spring"))


def test_an_account_that_received_a_promotion_too_often_is_refused_it() -> None:
    history = History(
        contacts=(
            contact(100, "in_app", "banner", promotion="spring"),
            contact(300, "email", promotion="spring"),
        )
    )
    choice = decide(signals(), [opp()], books(SPRING_BANNER, promotions=(SPRING,)), history)
    r = only_refusal(choice)
    assert (r.guardrail, r.playbook) == ("promotion_limit", "spring-banner")
    assert r.detail == "received spring 2 times in 12 months (at most 2)"


def test_the_promotion_limit_counts_reached_contacts_of_that_promotion_in_365_days() -> None:
    history = History(
        contacts=(
            contact(100, "in_app", "banner", promotion="spring"),
            contact(366, "email", promotion="spring"),  # more than a year ago
            contact(120, "email", promotion="spring", held_out=True),
            contact(150, "email", promotion="spring", failed=True),
            contact(200, "email", promotion="autumn"),  # another promotion
        )
    )
    choice = decide(signals(), [opp()], books(SPRING_BANNER, promotions=(SPRING,)), history)
    assert decision_of(choice).promotion == SPRING
    assert choice.refusals == ()
    stricter = books(SPRING_BANNER, promotions=(SPRING,), promotion_max_per_12_months=1)
    r = only_refusal(decide(signals(), [opp()], stricter, history))
    assert r.detail == "received spring 1 times in 12 months (at most 1)"


def test_a_promotion_that_ends_before_the_channel_can_reach_the_account_is_refused() -> None:
    ending = Promotion(
        "flash",
        Decimal("15"),
        runs=(PromotionRun(TODAY - timedelta(days=20), TODAY + timedelta(days=2)),),
    )
    flash_mail = book("flash-mail", "email", "email", offer=Offer(promotion="flash"))
    choice = decide(signals(), [opp()], books(flash_mail, promotions=(ending,)), email=EMAIL)
    r = only_refusal(choice)
    assert (r.guardrail, r.playbook) == ("deadline_too_short", "flash-mail")
    assert r.detail == "the offer ends in 2 days; reaching the account by email takes 3"
    # With a faster channel it stands.
    quick = books(flash_mail, promotions=(ending,), reach_days={"email": 2})
    assert decision_of(decide(signals(), [opp()], quick, email=EMAIL)).deadline == (
        TODAY + timedelta(days=2)
    )


def test_an_in_app_deadline_is_too_short_for_an_account_that_rarely_comes_by() -> None:
    ten_days = book(
        "ten-days",
        "in_app",
        "banner",
        offer=Offer(discount_percent=Decimal("10"), deadline_days=10),
    )
    rarely = signals(active_days=2)  # one visit every 15 days
    assert reach_days("in_app", rarely, books(ten_days)) == 15
    r = only_refusal(decide(rarely, [opp()], books(ten_days)))
    assert (r.guardrail, r.playbook) == ("deadline_too_short", "ten-days")
    assert r.detail == "the offer ends in 10 days; reaching the account by in_app takes 15"

    often = signals(active_days=10)  # every 3 days, but in-app reach is at least 7
    d = decision_of(decide(often, [opp()], books(ten_days)))
    assert d.deadline == TODAY + timedelta(days=10)


def test_reach_days_is_the_channels_and_for_in_app_at_least_the_gap_between_visits() -> None:
    pb = books(MODAL)
    assert reach_days("email", signals(), pb) == 3
    assert reach_days("csm_task", signals(), pb) == 14
    assert reach_days("webhook", signals(), pb) == 1
    assert reach_days("carrier_pigeon", signals(), pb) == 0
    assert reach_days("in_app", signals(active_days=30), pb) == 7
    assert reach_days("in_app", signals(active_days=4), pb) == 8  # ceil(30 / 4)
    assert reach_days("in_app", signals(active_days=1), pb) == 30
    assert reach_days("in_app", signals(active_days=0), pb) == 31
    assert reach_days("email", signals(active_days=0), pb) == 3


def test_a_promotion_off_its_calendar_is_skipped_silently() -> None:
    past = Promotion(
        "spring", Decimal("20"), runs=(PromotionRun(date(2026, 3, 1), date(2026, 3, 31)),)
    )
    choice = decide(signals(), [opp()], books(SPRING_BANNER, MODAL, promotions=(past,)))
    assert decision_of(choice).playbook.id == "modal"
    assert choice.refusals == ()


def test_a_promotion_off_its_calendar_with_nothing_else_matching_is_no_playbook() -> None:
    future = Promotion(
        "spring", Decimal("20"), runs=(PromotionRun(date(2026, 7, 1), date(2026, 7, 31)),)
    )
    r = only_refusal(decide(signals(), [opp()], books(SPRING_BANNER, promotions=(future,))))
    assert r.guardrail == "no_playbook"


# -- expected value -----------------------------------------------------------------------------------


def test_expected_value_without_a_discount_is_p_times_delta_times_months_minus_the_cost() -> None:
    s, o = signals(), opp(delta="70")
    d = decision_of(decide(s, [o], books(MAIL), email=EMAIL))
    assert d.p_accept == pytest.approx(p_of(o, s, MAIL))
    assert d.expected_value == pytest.approx(d.p_accept * 70 * 12 - 0.10)


def test_expected_value_with_a_discount_for_some_months_keeps_the_rest_of_the_revenue() -> None:
    three_months = book(
        "three-months",
        "email",
        "email",
        offer=Offer(discount_percent=Decimal("20"), discount_months=3, deadline_days=14),
    )
    s, o = signals(), opp(delta="70")
    d = decision_of(decide(s, [o], books(three_months), email=EMAIL))
    assert d.p_accept == pytest.approx(p_of(o, s, three_months, deadline=d.deadline))
    # 20 % off for 3 of 12 months keeps 95 % of the revenue.
    assert d.expected_value == pytest.approx(d.p_accept * 70 * 12 * 0.95 - 0.10)
    assert d.expected_value == pytest.approx(
        expected_value(d.p_accept, 70, percent=20, discount_months=3, cost=0.10)
    )


def test_expected_value_with_a_discount_for_as_long_as_held_keeps_the_undiscounted_share() -> None:
    forever = book(
        "forever", "in_app", "banner", offer=Offer(discount_percent=Decimal("25"), deadline_days=14)
    )
    longer = book(
        "longer",
        "in_app",
        "banner",
        offer=Offer(discount_percent=Decimal("25"), discount_months=36, deadline_days=14),
    )
    for pb in (forever, longer):  # a discount longer than the months retained covers all of them
        d = decision_of(decide(signals(), [opp(delta="70")], books(pb)))
        assert d.expected_value == pytest.approx(d.p_accept * 70 * 12 * 0.75)


def test_expected_value_uses_the_months_retained_and_contact_cost_settings() -> None:
    custom = DecisionSettings(
        holdout_share=0.0,
        months_retained=6,
        contact_cost={"in_app": Decimal("2.5"), "email": Decimal("0")},
    )
    four_months = book(
        "four-months",
        "in_app",
        "banner",
        offer=Offer(discount_percent=Decimal("30"), discount_months=4, deadline_days=30),
    )
    d = decision_of(
        decide(signals(), [opp(delta="40")], books(four_months, decision_settings=custom))
    )
    assert d.expected_value == pytest.approx(
        expected_value(d.p_accept, 40, months=6, percent=30, discount_months=4, cost=2.5)
    )


def test_expected_value_under_a_promotion_takes_the_promotions_discount() -> None:
    s, o = signals(), opp(delta="70")
    d = decision_of(decide(s, [o], books(SPRING_BANNER, promotions=(SPRING,))))
    assert d.promotion == SPRING
    assert d.deadline == TODAY + timedelta(days=20)
    discounted = replace(
        SPRING_BANNER,
        offer=replace(
            SPRING_BANNER.offer,
            discount_percent=SPRING.discount_percent,
            discount_months=SPRING.discount_months,
        ),
    )
    assert d.p_accept == pytest.approx(p_of(o, s, discounted, deadline=d.deadline))
    assert d.expected_value == pytest.approx(
        expected_value(d.p_accept, 70, percent=20, discount_months=3)
    )


def test_expected_value_is_in_the_base_currency() -> None:
    o = replace(
        opp(delta="70"),
        expected_mrr_delta=Money.of("65", "EUR"),
        expected_mrr_delta_base=Money.of("70", "USD"),
    )
    d = decision_of(decide(signals(), [o], books(BANNER)))
    assert d.expected_value == pytest.approx(d.p_accept * 70 * 12)


# -- decision properties ------------------------------------------------------------------------------


def test_a_decision_carries_the_offers_trial_discount_channel_and_placement() -> None:
    trial = book(
        "trial",
        "in_app",
        "tooltip",
        offer=Offer(
            trial_days=14, discount_percent=Decimal("10"), discount_months=2, deadline_days=30
        ),
    )
    d = decision_of(decide(signals(), [opp()], books(trial)))
    assert (d.channel, d.placement) == ("in_app", "tooltip")
    assert d.trial_days == 14
    assert d.discount_percent == 10.0 and isinstance(d.discount_percent, float)
    assert d.discount_months == 2
    assert d.deadline == TODAY + timedelta(days=30)
    assert d.promotion is None


def test_a_decision_without_an_offer_has_no_trial_no_discount_and_no_deadline() -> None:
    d = decision_of(decide(signals(), [opp()], books(MAIL), email=EMAIL))
    assert (d.channel, d.placement) == ("email", "email")
    assert d.trial_days == 0
    assert d.discount_percent is None and d.discount_months is None
    assert d.deadline is None


def test_a_decision_under_a_promotion_carries_the_promotions_discount_and_run_end() -> None:
    # The offer's own discount is overridden by the promotion it runs under.
    both = book(
        "both",
        "in_app",
        "banner",
        offer=Offer(
            discount_percent=Decimal("5"), discount_months=1, deadline_days=60, promotion="spring"
        ),
    )
    d = decision_of(decide(signals(), [opp()], books(both, promotions=(SPRING,))))
    assert d.promotion == SPRING
    assert d.discount_percent == 20.0
    assert d.discount_months == 3
    assert d.deadline == TODAY + timedelta(days=20)


# -- acceptance ---------------------------------------------------------------------------------------


def test_acceptance_is_a_probability() -> None:
    extremes = [
        opp(kind="save", score=1.0),
        opp(kind="upsell", score=0.0),
        opp("add_on:x", score=1.0, reasons=(Reason("limit_reached", "hit"),)),
    ]
    arms = [
        MODAL,
        BANNER,
        MAIL,
        CSM,
        HOOK,
        book("x", offer=Offer(trial_days=30, discount_percent=Decimal("99"), deadline_days=5)),
    ]
    many = History(contacts=tuple(contact(d, offer_id="upsell:basic->pro") for d in range(1, 20)))
    for o in extremes:
        for arm in arms:
            for history in (History(), many):
                for active in (0, 3, 30):
                    p = acceptance(
                        o,
                        signals(active_days=active),
                        arm,
                        history,
                        AS_OF,
                        TODAY + timedelta(days=5),
                    )
                    assert 0.0 <= p <= 1.0


def test_a_modal_beats_a_tooltip_beats_a_banner_for_the_same_offer() -> None:
    s, o = signals(), opp()
    assert p_of(o, s, MODAL) > p_of(o, s, TOOLTIP) > p_of(o, s, BANNER)


def test_a_csm_helps_a_large_account_and_hurts_a_small_one() -> None:
    o = opp()
    large, small = signals(employees=60), signals(employees=5)
    neutral = p_of(o, large, HOOK)  # a webhook is always seen and adds no term
    assert p_of(o, small, HOOK) == neutral
    csm_large, csm_small = p_of(o, large, CSM), p_of(o, small, CSM)
    assert csm_large > neutral > csm_small
    assert csm_large == pytest.approx(SEEN["csm_task"] * logistic(logit(neutral) + CSM_LARGE_TERM))
    assert csm_small == pytest.approx(SEEN["csm_task"] * logistic(logit(neutral) + CSM_SMALL_TERM))
    # An unknown company size counts as small.
    assert p_of(o, signals(employees=None), CSM) == pytest.approx(csm_small)
    assert p_of(o, signals(employees=50), CSM) == pytest.approx(csm_large)


def test_the_csm_term_follows_the_policys_large_company_rule() -> None:
    """config.yaml's csm_min_employees says which company is large, for the acceptance model as for
    the opportunity rules' routes; `decide` gives its policy to the default model."""
    o, s = opp(delta="500"), signals(employees=20)
    small, large = p_of(o, s, CSM), p_of(o, signals(employees=60), CSM)
    assert small < large
    policy = Policy(csm_min_employees=20)
    assert acceptance(o, s, CSM, History(), AS_OF, None, policy=policy) == pytest.approx(large)
    assert decision_of(decide(s, [o], books(CSM))).p_accept == pytest.approx(small)
    assert decision_of(decide(s, [o], books(CSM), policy=policy)).p_accept == pytest.approx(large)


def test_each_recent_contact_lowers_acceptance() -> None:
    s, o = signals(), opp()
    one = History(contacts=(contact(3),))
    two = History(contacts=(contact(3), contact(20, "in_app", "banner")))
    p0, p1, p2 = p_of(o, s, MODAL), p_of(o, s, MODAL, one), p_of(o, s, MODAL, two)
    assert p0 > p1 > p2


def test_only_reached_contacts_of_the_last_28_days_lower_acceptance() -> None:
    s, o = signals(), opp()
    p0 = p_of(o, s, MODAL)
    not_counted = History(
        contacts=(
            contact(29),
            contact(45),
            contact(3, held_out=True),
            contact(5, failed=True),
            contact(0),  # at as_of
            contact(-1),  # after it
        )
    )
    assert p_of(o, s, MODAL, not_counted) == p0
    assert p_of(o, s, MODAL, History(contacts=(contact(28),))) < p0


def test_an_earlier_showing_of_the_same_offer_lowers_acceptance_even_long_ago() -> None:
    s, o = signals(), opp()
    same = History(contacts=(contact(200, offer_id=o.offer_id),))
    other = History(contacts=(contact(200, offer_id="add_on:other"),))
    assert p_of(o, s, MODAL, same) < p_of(o, s, MODAL, other) == p_of(o, s, MODAL)


def test_a_trial_of_a_week_or_more_converts_at_the_trial_conversion_rate() -> None:
    s, o = signals(), opp()
    plain = p_of(o, s, HOOK)
    week = book("week", "webhook", "event", offer=Offer(trial_days=7))
    assert p_of(o, s, week) == pytest.approx(TRIAL_CONVERSION * logistic(logit(plain) + TRIAL_TERM))
    six_days = book("six", "webhook", "event", offer=Offer(trial_days=6))
    assert p_of(o, s, six_days) == plain


def test_a_save_offer_ignores_trial_terms() -> None:
    s, o = signals(), opp("save:pro", kind="save")
    trial = book("trial", "in_app", "modal", offer=Offer(trial_days=30))
    assert p_of(o, s, trial) == p_of(o, s, MODAL)


def test_in_app_sight_scales_with_active_days() -> None:
    o = opp()
    full = p_of(o, signals(active_days=8), MODAL)
    assert p_of(o, signals(active_days=0), MODAL) == 0.0
    assert p_of(o, signals(active_days=2), MODAL) == pytest.approx(full / 4)
    assert p_of(o, signals(active_days=4), MODAL) == pytest.approx(full / 2)
    assert p_of(o, signals(active_days=30), MODAL) == full
    # Other channels do not depend on visits.
    assert p_of(o, signals(active_days=0), MAIL) == p_of(o, signals(active_days=30), MAIL)


def test_an_email_is_opened_less_often_than_a_webhook_is_delivered() -> None:
    s, o = signals(), opp()
    assert p_of(o, s, MAIL) < p_of(o, s, HOOK)


def test_stronger_evidence_raises_acceptance() -> None:
    s = signals()
    assert (
        p_of(opp(score=0.9), s, MODAL)
        > p_of(opp(score=0.5), s, MODAL)
        > p_of(opp(score=0.1), s, MODAL)
    )


def test_a_limit_in_the_way_raises_in_app_acceptance_only() -> None:
    s = signals()
    near = opp(reasons=(Reason("near_limit", "near"),))
    hit = opp(reasons=(Reason("limit_reached", "hit"),))
    blocked = opp(reasons=(Reason("blocked_feature", "tried"),))
    assert p_of(hit, s, MODAL) > p_of(near, s, MODAL)
    assert p_of(blocked, s, MODAL) == p_of(hit, s, MODAL)
    assert p_of(hit, s, MAIL) == p_of(near, s, MAIL)


def test_a_discount_and_a_near_deadline_raise_acceptance() -> None:
    s, o = signals(), opp()
    none = book("none", "in_app", "banner")
    discount = book(
        "discount",
        "in_app",
        "banner",
        offer=Offer(discount_percent=Decimal("20"), deadline_days=30),
    )
    assert p_of(o, s, discount) > p_of(o, s, none)
    soon, later = TODAY + timedelta(days=21), TODAY + timedelta(days=22)
    assert p_of(o, s, none, deadline=soon) > p_of(o, s, none, deadline=later) == p_of(o, s, none)


def test_declining_activity_lowers_acceptance() -> None:
    o = opp()
    flat = Engagement(active_days_30d=20, events_30d=100, events_prev_30d=100, tenure_days=150)
    declining = replace(flat, events_30d=40)
    assert declining.trend == "declining" and flat.trend == "flat"
    assert p_of(o, signals(engagement=declining), MODAL) < p_of(o, signals(engagement=flat), MODAL)


def test_a_promotion_discount_raises_acceptance_like_the_same_discount_on_the_offer() -> None:
    end = TODAY + timedelta(days=30)
    promo = Promotion("summer", Decimal("20"), runs=(PromotionRun(TODAY - timedelta(days=1), end),))
    on_offer = book(
        "on-offer",
        "in_app",
        "banner",
        offer=Offer(discount_percent=Decimal("20"), deadline_days=30),
    )
    by_promo = book("by-promo", "in_app", "banner", offer=Offer(promotion="summer"))
    s, o = signals(), opp()
    direct = decision_of(decide(s, [o], books(on_offer)))
    promoted = decision_of(decide(s, [o], books(by_promo, promotions=(promo,))))
    # The same 20 % off for as long as held, ending the same day: the customer sees the same offer.
    assert (direct.discount_percent, direct.discount_months, direct.deadline) == (
        promoted.discount_percent,
        promoted.discount_months,
        promoted.deadline,
    )
    assert promoted.p_accept == pytest.approx(direct.p_accept)
    assert promoted.expected_value == pytest.approx(direct.expected_value)


# -- acceptance, term by term (docs/decisions.md) ----------------------------------------------------


def assert_p_accept(p: float, expected: float) -> None:
    assert math.isclose(p, expected, rel_tol=0, abs_tol=1e-12), (p, expected)


def test_p_accept_of_an_in_app_modal_upsell_with_a_limit_reached_and_a_trial() -> None:
    s = signals(active_days=4)  # on the product 4 days of the last 30
    o = opp(score=0.8, reasons=(Reason("limit_reached", "5 of 5 seats used"),))
    arm = book("trial", "in_app", "modal", offer=Offer(trial_days=14))
    x = (
        -2.5  # the base rate of an upsell
        + 2 * (0.8 - 0.5)  # the evidence: score 0.8
        + 0.4  # a modal
        + 0.4  # in-app while a limit is in the way (limit_reached)
        + 1.0  # a trial of 7 days or more (14)
    )  # no discount, no deadline, no contact before, activity not declining (a new account)
    seen = 4 / 8  # in-app: seen all the time at 8 active days a month, half of it at 4
    trial_conversion = 0.6  # only 60 % of trials convert
    assert_p_accept(p_of(o, s, arm), seen * logistic(x) * trial_conversion)


def test_p_accept_of_an_email_cross_sell_with_a_discount_and_a_near_deadline_after_two_contacts() -> (
    None
):
    s, o = signals(), opp("cross_sell:forms", score=0.6, delta="15")
    arm = book(
        "mail", "email", "email", offer=Offer(discount_percent=Decimal("20"), deadline_days=10)
    )
    history = History(contacts=(contact(3), contact(12, "in_app", "banner")))  # other offers
    x = (
        -2.5  # the base rate of a cross-sell
        + 2 * (0.6 - 0.5)  # the evidence: score 0.6
        - 0.4  # an email
        + 1.5 * 0.20  # a 20 % discount
        + 0.3  # a deadline within 21 days (10)
        - 0.3 * 2  # two contacts in the last 28 days (3 and 12 days ago)
    )  # no trial; the contacts were other offers; no contextual term outside the product
    seen = 0.45  # an email is opened 45 % of the time
    deadline = TODAY + timedelta(days=10)
    assert_p_accept(p_of(o, s, arm, history, deadline), seen * logistic(x))


def test_p_accept_of_a_csm_task_for_a_large_account_with_declining_activity() -> None:
    declining = Engagement(
        active_users_30d=5, active_days_30d=20, events_30d=40, events_prev_30d=100, tenure_days=150
    )
    s = signals(employees=120, engagement=declining)
    o = opp("upsell:pro->enterprise", score=0.7, delta="200")
    x = (
        -2.5  # the base rate of an upsell
        + 2 * (0.7 - 0.5)  # the evidence: score 0.7
        + 1.0  # a CSM, for a company of at least 50 employees (120)
        - 0.5  # declining activity (40 events in 30 days after 100)
    )  # no trial, discount, deadline or contact before
    seen = 0.9  # a CSM reaches 90 %
    assert_p_accept(p_of(o, s, CSM), seen * logistic(x))
    # With csm_min_employees 150 the same company is small: -0.7 instead of +1.0.
    small = acceptance(o, s, CSM, History(), AS_OF, None, policy=Policy(csm_min_employees=150))
    assert_p_accept(small, seen * logistic(x - 1.0 - 0.7))


def test_p_accept_of_an_in_app_save_shown_before_counts_each_showing_and_the_recent_contact() -> (
    None
):
    s = signals(active_days=12)
    o = opp("save:pro", kind="save", score=0.9, reasons=(Reason("cancel_requested", "asked"),))
    arm = book("tip", "in_app", "tooltip", offer=Offer(trial_days=30))
    history = History(
        contacts=(
            contact(10, "in_app", "tooltip", offer_id="save:pro"),  # recent, and this offer
            contact(100, "email", offer_id="save:pro"),  # this offer, long ago
            contact(5, held_out=True),  # held out: never reached the account
        )
    )
    x = (
        -0.5  # the base rate of a save
        + 2 * (0.9 - 0.5)  # the evidence: score 0.9
        + 0.2  # a tooltip
        - 0.3  # one reached contact in the last 28 days (10 days ago)
        - 0.3 * 2  # two earlier showings of the same offer (10 and 100 days ago)
    )  # a save takes no trial term; no limit in the way; no discount or deadline
    seen = 1.0  # 12 active days a month: past the 8 that see every in-app offer
    assert_p_accept(p_of(o, s, arm, history), seen * logistic(x))  # no trial conversion either


# -- holdout ------------------------------------------------------------------------------------------

IDS = [f"acct-{i:05d}" for i in range(10_000)]


def test_unit_hash_is_a_fixed_number_in_the_unit_interval() -> None:
    values = [unit_hash("holdout", i) for i in IDS[:1000]]
    assert all(0.0 <= v < 1.0 for v in values)
    assert values == [unit_hash("holdout", i) for i in IDS[:1000]]
    assert unit_hash("a", "b") != unit_hash("b", "a")
    assert len(set(values)) == 1000


def test_the_holdout_is_deterministic_and_keeps_the_decision_marked_held_out() -> None:
    default = books(MODAL, decision_settings=DecisionSettings())
    inside = next(i for i in IDS if held_out(i, default))
    outside = next(i for i in IDS if not held_out(i, default))
    o = opp(account_id=inside)
    s = signals(inside)
    first = decision_of(decide(s, [o], default))
    assert first.held_out is True
    for _ in range(3):
        assert decide(s, [o], default) == decide(s, [o], default)
        assert held_out(inside, default) and not held_out(outside, default)
    unheld = decision_of(decide(s, [o], books(MODAL)))  # no holdout
    assert unheld.held_out is False
    assert first == replace(unheld, held_out=True, holdout_share=0.10)
    d_out = decision_of(decide(signals(outside), [opp(account_id=outside)], default))
    assert d_out.held_out is False


def test_the_holdout_takes_its_share_of_accounts() -> None:
    default = books(MODAL, decision_settings=DecisionSettings())
    share = sum(held_out(i, default) for i in IDS) / len(IDS)
    assert share == pytest.approx(0.10, abs=0.01)
    quarter = books(MODAL, decision_settings=DecisionSettings(holdout_share=0.25))
    assert sum(held_out(i, quarter) for i in IDS) / len(IDS) == pytest.approx(0.25, abs=0.015)


def test_a_holdout_share_of_zero_holds_out_nobody() -> None:
    nobody = books(MODAL, decision_settings=DecisionSettings(holdout_share=0.0))
    assert not any(held_out(i, nobody) for i in IDS)


def test_another_holdout_key_reshuffles_who_is_held_out() -> None:
    a = books(MODAL, decision_settings=DecisionSettings(holdout_key="holdout"))
    b = books(MODAL, decision_settings=DecisionSettings(holdout_key="2026-q3"))
    in_a = {i for i in IDS if held_out(i, a)}
    in_b = {i for i in IDS if held_out(i, b)}
    assert len(in_b) / len(IDS) == pytest.approx(0.10, abs=0.01)
    assert in_a != in_b
    # Independent draws: about 10 % of one holdout is in the other, far from all of it.
    assert len(in_a & in_b) < 0.25 * len(in_a)


def test_a_kind_and_a_playbook_override_the_global_holdout_share() -> None:
    settings_ = DecisionSettings(holdout_share=0.10, holdout_by_kind={"cross_sell": 0.30})
    half = replace(MODAL, id="half", holdout=0.5)
    b = books(MODAL, half, decision_settings=settings_)
    assert holdout_share(b, "upsell", MODAL) == 0.10
    assert holdout_share(b, "cross_sell", MODAL) == 0.30
    assert holdout_share(b, "cross_sell", half) == holdout_share(b, "upsell", half) == 0.5
    u = {i: unit_hash("holdout", i) for i in IDS}
    between = next(i for i in IDS if 0.10 <= u[i] < 0.30)
    assert held_out(between, b, 0.30) and not held_out(between, b, 0.10)
    upsell = decision_of(
        decide(
            signals(between), [opp(account_id=between)], books(MODAL, decision_settings=settings_)
        )
    )
    cross = decision_of(decide(signals(between), [opp("cross_sell:leads", account_id=between)], b))
    assert (upsell.held_out, upsell.holdout_share) == (False, 0.10)
    assert (cross.held_out, cross.holdout_share) == (True, 0.30)


def test_saves_hold_out_five_percent_by_default_or_less() -> None:
    """Withholding a save can cost a customer; 5 % still measures (docs/decisions.md)."""
    default = books(MODAL, decision_settings=DecisionSettings())
    assert holdout_share(default, "save", MODAL) == 0.05
    assert holdout_share(default, "upsell", MODAL) == 0.10
    small = books(MODAL, decision_settings=DecisionSettings(holdout_share=0.02))
    assert holdout_share(small, "save", MODAL) == 0.02
    nobody = books(MODAL, decision_settings=DecisionSettings(holdout_share=0.0))
    assert holdout_share(nobody, "save", MODAL) == 0.0
    saves = [i for i in IDS if held_out(i, default, holdout_share(default, "save", MODAL))]
    assert len(saves) / len(IDS) == pytest.approx(0.05, abs=0.01)
    assert all(held_out(i, default) for i in saves), "the save holdout is within the global one"


def test_a_held_out_decision_still_reports_the_refusals() -> None:
    default = books(CSM, MODAL, decision_settings=DecisionSettings())
    inside = next(i for i in IDS if held_out(i, default))
    choice = decide(
        signals(inside, employees=5), [opp("add_on:tiny", delta="1", account_id=inside)], default
    )
    assert decision_of(choice).held_out is True
    assert [r.guardrail for r in choice.refusals] == ["not_worth_it"]


# -- experiments --------------------------------------------------------------------------------------

ONE_TO_THREE = Experiment(
    "trial-length",
    (
        Variant("A", weight=1),
        Variant(
            "B",
            weight=3,
            template="tpl_b",
            placement="tooltip",
            offer=Offer(trial_days=21),
        ),
    ),
)
EXPERIMENTAL = book(
    "experimental", "in_app", "modal", offer=Offer(trial_days=14), experiment=ONE_TO_THREE
)


def test_variant_for_is_deterministic() -> None:
    first = [variant_for(i, ONE_TO_THREE).id for i in IDS[:500]]
    assert first == [variant_for(i, ONE_TO_THREE).id for i in IDS[:500]]
    assert {"A", "B"} == set(first)


def test_variants_get_accounts_in_proportion_to_their_weights() -> None:
    ids = [variant_for(i, ONE_TO_THREE).id for i in IDS]
    assert ids.count("A") / len(ids) == pytest.approx(0.25, abs=0.02)
    assert ids.count("B") / len(ids) == pytest.approx(0.75, abs=0.02)
    even = Experiment("even", (Variant("x"), Variant("y"), Variant("z")))
    counts = [variant_for(i, even).id for i in IDS]
    for v in ("x", "y", "z"):
        assert counts.count(v) / len(counts) == pytest.approx(1 / 3, abs=0.02)


def test_another_experiment_assigns_variants_independently() -> None:
    other = Experiment("other", ONE_TO_THREE.variants)
    same = sum(variant_for(i, ONE_TO_THREE).id == variant_for(i, other).id for i in IDS[:2000])
    # Independent 25/75 draws agree 0.25^2 + 0.75^2 = 62.5 % of the time, not always.
    assert same / 2000 == pytest.approx(0.625, abs=0.04)


def test_a_decision_carries_its_variant_and_experiment_and_the_variant_overrides_the_playbook() -> (
    None
):
    in_b = next(i for i in IDS if variant_for(i, ONE_TO_THREE).id == "B")
    d = decision_of(decide(signals(in_b), [opp(account_id=in_b)], books(EXPERIMENTAL)))
    assert (d.variant, d.experiment) == ("B", "trial-length")
    assert d.playbook.id == "experimental"
    assert (d.placement, d.playbook.template, d.trial_days) == ("tooltip", "tpl_b", 21)
    s = signals(in_b)
    assert d.p_accept == pytest.approx(p_of(opp(account_id=in_b), s, d.playbook))


def test_a_variant_that_changes_nothing_runs_the_playbook_as_written() -> None:
    in_a = next(i for i in IDS if variant_for(i, ONE_TO_THREE).id == "A")
    d = decision_of(decide(signals(in_a), [opp(account_id=in_a)], books(EXPERIMENTAL)))
    assert (d.variant, d.experiment) == ("A", "trial-length")
    assert (d.placement, d.playbook.template, d.trial_days) == ("modal", "tpl", 14)


def test_a_variant_may_put_the_offer_under_a_promotion() -> None:
    promo_arm = Experiment(
        "promo-or-not",
        (Variant("plain", weight=1), Variant("promo", offer=Offer(promotion="spring"))),
    )
    pb = book("promo-test", "in_app", "banner", experiment=promo_arm)
    in_promo = next(i for i in IDS if variant_for(i, promo_arm).id == "promo")
    d = decision_of(
        decide(signals(in_promo), [opp(account_id=in_promo)], books(pb, promotions=(SPRING,)))
    )
    assert (d.variant, d.promotion, d.discount_percent) == ("promo", SPRING, 20.0)
    in_plain = next(i for i in IDS if variant_for(i, promo_arm).id == "plain")
    d = decision_of(
        decide(signals(in_plain), [opp(account_id=in_plain)], books(pb, promotions=(SPRING,)))
    )
    assert (d.variant, d.promotion, d.discount_percent) == ("plain", None, None)


# -- properties ---------------------------------------------------------------------------------------

PROPERTY_BOOKS = Playbooks(
    playbooks=(
        book("csm", "csm_task", "task", trigger=(Condition("employees", "at_least", 50),)),
        book(
            "modal",
            "in_app",
            "modal",
            trigger=(Condition("kind", "any_of", ("upsell", "add_on")),),
            offer=Offer(trial_days=14),
        ),
        book("banner", "in_app", "banner"),
        book(
            "mail",
            "email",
            "email",
            trigger=(Condition("kind", "any_of", ("cross_sell", "upsell")),),
            offer=Offer(discount_percent=Decimal("15"), discount_months=3, deadline_days=10),
        ),
        book("spring", "in_app", "tooltip", offer=Offer(promotion="spring")),
        book("save", "in_app", "modal", trigger=(Condition("kind", "equals", "save"),)),
        book(
            "ab",
            "in_app",
            "tooltip",
            trigger=(Condition("score", "at_least", 0.5),),
            experiment=Experiment(
                "ab", (Variant("a"), Variant("b", placement="banner", offer=Offer(trial_days=7)))
            ),
        ),
    ),
    promotions=(SPRING,),
)

opportunity_specs = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(min_value=0, max_value=500),
        st.floats(min_value=0.0, max_value=1.0),
        st.booleans(),  # qualified
    ),
    max_size=5,
)
contact_specs = st.lists(
    st.tuples(
        st.integers(min_value=-5, max_value=400),
        st.sampled_from(
            [("in_app", "modal"), ("in_app", "banner"), ("email", "email"), ("csm_task", "task")]
        ),
        st.sampled_from(["reached", "held_out", "failed"]),
        st.sampled_from([None, "spring"]),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    specs=opportunity_specs,
    contacts=contact_specs,
    dismissed_days=st.none() | st.integers(min_value=1, max_value=60),
    employees=st.sampled_from([None, 5, 60]),
    active_days=st.integers(min_value=0, max_value=30),
    tenure_days=st.sampled_from([3, 200]),
    email=st.sampled_from([None, EMAIL]),
    account_id=st.sampled_from(IDS[:50]),
)
def test_decide_returns_the_unrefused_option_with_the_highest_positive_expected_value(
    specs: list[tuple[Kind, int, float, bool]],
    contacts: list[tuple[int, tuple[str, str], str, str | None]],
    dismissed_days: int | None,
    employees: int | None,
    active_days: int,
    tenure_days: int,
    email: str | None,
    account_id: str,
) -> None:
    s = signals(account_id, employees=employees, active_days=active_days, tenure_days=tenure_days)
    opportunities = [
        opp(
            f"{kind}:o{n}",
            kind=kind,
            delta=str(delta),
            score=score,
            account_id=account_id,
            gates=() if qualified else ("too_new",),
        )
        for n, (kind, delta, score, qualified) in enumerate(specs)
    ]
    history = History(
        contacts=tuple(
            contact(
                days,
                channel,
                placement,
                offer_id="upsell:o0",
                promotion=promotion,
                held_out=status == "held_out",
                failed=status == "failed",
            )
            for days, (channel, placement), status, promotion in contacts
        ),
        responses=()
        if dismissed_days is None
        else (PastResponse(ago(dismissed_days), "upsell:o0", "dismissed"),),
    )
    costs = PROPERTY_BOOKS.settings.contact_cost
    options: list[tuple[str, str, float]] = []

    def recording(
        o: Opportunity,
        sig: AccountSignals,
        arm: Playbook,
        h: History,
        at: datetime,
        deadline: date | None,
    ) -> float:
        p = acceptance(o, sig, arm, h, at, deadline)
        assert 0.0 <= p <= 1.0
        assert o.qualified
        promo = PROPERTY_BOOKS.promotion(arm.offer.promotion) if arm.offer.promotion else None
        percent = promo.discount_percent if promo else arm.offer.discount_percent
        months = promo.discount_months if promo else arm.offer.discount_months
        ev = expected_value(
            p,
            float(o.expected_mrr_delta_base.amount),
            percent=None if percent is None else float(percent),
            discount_months=months,
            cost=float(costs.get(arm.channel, 0)),
        )
        options.append((o.offer_id, arm.id, ev))
        return p

    choice = decide(s, opportunities, PROPERTY_BOOKS, history, email=email, model=recording)

    assert choice.account_id == account_id
    assert all(r.guardrail in REFUSALS for r in choice.refusals)
    assert all(r.account_id == account_id and r.detail for r in choice.refusals)
    qualified = [o for o in opportunities if o.qualified]
    if not qualified:
        assert choice == Choice(account_id, None, ())
        return
    worth = [o for o in options if o[2] > 0]
    refused = {(r.offer_id, r.playbook) for r in choice.refusals}
    not_worth = {(o, p) for o, p, ev in options if ev <= 0}
    assert not_worth == {
        (r.offer_id, r.playbook) for r in choice.refusals if r.guardrail == "not_worth_it"
    }
    if choice.decision is None:
        assert worth == []
        assert choice.refusals  # no decision for a qualified opportunity is always explained
        return
    d = choice.decision
    assert d.account_id == account_id
    assert d.opportunity in qualified
    assert d.expected_value > 0
    assert d.expected_value == pytest.approx(max(ev for _, _, ev in worth))
    assert (d.offer_id, d.playbook.id) in {(o, p) for o, p, _ in worth}
    assert (d.offer_id, d.playbook.id) not in refused
    share = holdout_share(PROPERTY_BOOKS, d.opportunity.kind, d.playbook)
    assert d.holdout_share == share  # a save's share is 5 %, the others' the global 10 %
    assert d.held_out == held_out(account_id, PROPERTY_BOOKS, share)
    assert 0.0 < d.p_accept <= 1.0


# -- a trigger and the daily run: one reason, one contact -----------------------------------------


def test_a_trigger_and_the_daily_run_refuse_an_offer_the_other_made_as_already_offered() -> None:
    """The daily run's contacts are as of a day start, a trigger's at its instant: a trigger
    finds the daily run's offer of the morning in its history; the daily run finds a trigger's
    offer made since its as-of instant in `History.later`."""
    playbooks = books(book("modal"))
    o = opp()

    def past(hours: float, *, trigger: bool, offer_id: str = o.offer_id) -> PastContact:
        at = AS_OF + timedelta(hours=hours)
        return PastContact(at, offer_id, "email", "email", trigger=trigger)

    assert decide(signals(), [o], playbooks, History(), triggered=True).decision is not None
    for triggered, history in (
        (True, History(contacts=(past(-12, trigger=False),))),
        (False, History(later=(past(3, trigger=True),))),
    ):
        choice = decide(signals(), [o], playbooks, history, triggered=triggered)
        refusal = only_refusal(choice)
        assert refusal.guardrail == "already_offered" and refusal.playbook == "modal"
        by = "the daily run" if triggered else "a trigger"
        assert refusal.detail.startswith(f"{by} made this offer at ")
    # The same path, or another offer, is no reason: the caps and repeats rules handle those.
    for triggered, history in (
        (False, History(contacts=(past(-12, trigger=False),))),
        (True, History(contacts=(past(-12, trigger=True),))),
        (True, History(contacts=(past(-12, trigger=False, offer_id="add_on:x"),))),
        (True, History(contacts=(past(-24 * 14, trigger=False),))),
    ):
        assert decide(signals(), [o], playbooks, history, triggered=triggered).decision
    shorter = books(book("modal"), same_offer_days=0)
    history = History(contacts=(past(-1, trigger=False),))
    assert decide(signals(), [o], shorter, history, triggered=True).decision is not None
