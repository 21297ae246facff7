"""The answers model (upsell.domain.answers) and its fitter (upsell.learning.answers): hand-computed
posteriors, the decision step's use of them, and the out-of-sample measures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from upsell.domain.answers import (
    FEATURES,
    Answers,
    Counts,
    Linear,
    Outcome,
    account_features,
    count,
)
from upsell.domain.decisions import decide
from upsell.domain.history import History, PastContact, PastResponse
from upsell.domain.money import Money
from upsell.domain.opportunities import Opportunity
from upsell.domain.opportunities.candidates import Reason
from upsell.domain.playbooks import Offer, Playbook, Playbooks
from upsell.domain.signals import AccountSignals, Engagement
from upsell.errors import NotFittedError
from upsell.learning.answers import AnswersFitter, auc, qini

AT = datetime(2026, 6, 1, tzinfo=UTC)


def outcomes(
    n: int,
    converted: int,
    *,
    prior: float = 0.1,
    held_out: bool = False,
    channel: str = "in_app",
    placement: str = "modal",
    playbook: str = "modal",
    kind: str = "upsell",
    paid: int = 0,
    churned: int = 0,
) -> list[Outcome]:
    return [
        Outcome(
            kind,
            channel,
            placement,
            playbook,
            prior,
            held_out,
            i < converted,
            i < paid,
            i < churned,
        )
        for i in range(n)
    ]


def test_without_evidence_the_estimate_is_the_prior() -> None:
    e = Answers().estimate(0.12, "upsell", "in_app", "modal", "p")
    assert (e.p_accept, e.anyway, e.churn_push, e.n) == (pytest.approx(0.12), 0.0, 0.0, 0)
    assert e.provenance()["source"] == "model" and e.provenance()["prior"] == 0.12


def test_a_group_moves_from_the_prior_by_its_own_evidence() -> None:
    # 100 treated decisions at a prior of 0.1 expected 10 conversions; 30 came. The multiplier's
    # posterior mean is (strength x 1 + 30) / (strength + 10) = 35 / 15.
    answers = Answers(count(outcomes(100, 30)), strength=5)
    post = answers.posterior("upsell", "in_app", "modal", "modal")
    assert post.multiplier == pytest.approx(35 / 15)
    assert post.n == 100 and post.group == "upsell/in_app/modal/modal"
    assert answers.estimate(0.2, "upsell", "in_app", "modal", "modal").p_accept == pytest.approx(
        0.2 * 35 / 15
    )


def test_no_decision_counts_twice_down_the_groups() -> None:
    # The email arm converted 5 of 10 expected: the upsell kind's prior for the modal arm is
    # (5 + 5) / (5 + 10) = 2/3, and the modal arm's posterior (5 x 2/3 + 30) / (5 + 10).
    data = outcomes(100, 30) + outcomes(100, 5, channel="email", placement="email", playbook="e")
    answers = Answers(count(data), strength=5)
    modal = answers.posterior("upsell", "in_app", "modal", "modal")
    assert modal.multiplier == pytest.approx((5 * 2 / 3 + 30) / 15)
    # A kind without any decision takes everything: (5 + 35) / (5 + 20).
    assert answers.posterior("add_on", "email", "email", "e").multiplier == pytest.approx(40 / 25)


def test_held_out_decisions_say_how_often_the_item_is_bought_anyway() -> None:
    # 50 held-out decisions at a prior of 0.1 (5 expected) bought 3 times: a = (0 + 3) / (5 + 5).
    answers = Answers(count(outcomes(100, 30) + outcomes(50, 3, held_out=True)), strength=5)
    e = answers.estimate(0.2, "upsell", "in_app", "modal", "modal")
    assert e.anyway == pytest.approx(0.2 * 0.3)


def test_the_churn_push_is_treated_churn_less_held_out_churn_shrunk_to_the_pooled_rate() -> None:
    data = outcomes(100, 0, paid=100, churned=20) + outcomes(
        100, 0, held_out=True, paid=100, churned=10
    )
    answers = Answers(count(data), churn_strength=20)
    pooled = 30 / 200
    treated, held = (20 * pooled + 20) / 120, (20 * pooled + 10) / 120
    e = answers.estimate(0.1, "upsell", "in_app", "modal", "modal")
    assert e.churn_push == pytest.approx(treated - held)
    # A save's conversion already is the account staying: no churn push on top.
    assert answers.estimate(0.1, "save", "in_app", "modal", "modal").churn_push == 0.0


def test_thompson_draws_are_quantiles_of_the_posterior() -> None:
    answers = Answers(count(outcomes(100, 30)), strength=5)
    post = answers.posterior("upsell", "in_app", "modal", "modal")
    draws = [post.quantile(u) for u in np.linspace(0.0005, 0.9995, 1000)]
    assert np.mean(draws) == pytest.approx(post.multiplier, rel=0.01)
    low = answers.estimate(0.1, "upsell", "in_app", "modal", "modal", draw=0.05)
    high = answers.estimate(0.1, "upsell", "in_app", "modal", "modal", draw=0.95)
    assert low.p_accept < 0.1 * post.multiplier < high.p_accept and low.explored


def test_answers_survive_their_json_form() -> None:
    answers = Answers(count(outcomes(10, 3) + outcomes(5, 1, held_out=True, paid=5, churned=1)))
    again = Answers.from_json(answers.to_json(), version=3)
    assert again.counts == answers.counts and again.version == 3
    assert Counts(treated=1) + Counts(treated=2, expected=0.5) == Counts(treated=3, expected=0.5)


def _signals(mrr: str = "50") -> AccountSignals:
    return AccountSignals(
        account_id="a-1",
        as_of=AT,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        tenure_days=500,
        mrr=Money(Decimal(mrr), "USD"),
        activated=True,
        engagement=Engagement(active_users_30d=3, active_days_30d=20),
    )


def _opportunity() -> Opportunity:
    delta = Money(Decimal("40"), "USD")
    return Opportunity(
        account_id="a-1",
        as_of=AT,
        kind="upsell",
        offer_id="upsell:basic->pro",
        item_id="pro",
        from_item_id="basic",
        score=0.7,
        expected_mrr_delta=delta,
        expected_mrr_delta_base=delta,
        reasons=(Reason("limit_reached", "seats at the limit", metric="seats"),),
    )


PLAYBOOKS = Playbooks(
    playbooks=(
        Playbook(
            id="modal",
            trigger=(),
            offer=Offer(),
            channel="in_app",
            placement="modal",
            template="limit_reached",
        ),
    )
)


def test_an_offer_bought_more_often_without_it_is_refused_as_no_uplift() -> None:
    s, o = _signals(), _opportunity()
    made = decide(s, [o], PLAYBOOKS)
    assert made.decision is not None and made.decision.estimate is None
    # Held-out accounts bought the item more often than treated ones: asking loses sales.
    sure = count(outcomes(400, 40) + outcomes(400, 60, held_out=True))
    choice = decide(s, [o], PLAYBOOKS, answers=Answers(sure, strength=5))
    assert choice.decision is None
    [refusal] = choice.refusals
    assert refusal.guardrail == "no_uplift" and "upsell/in_app/modal/modal" in refusal.detail


def test_an_offer_that_pushes_paying_accounts_out_is_refused() -> None:
    s, o = _signals(mrr="500"), _opportunity()
    pushed = count(
        outcomes(400, 40, paid=400, churned=80) + outcomes(400, 0, held_out=True, paid=400)
    )
    choice = decide(s, [o], PLAYBOOKS, answers=Answers(pushed))
    assert choice.decision is None and choice.refusals[0].guardrail == "no_uplift"


def test_a_decision_with_answers_says_where_its_p_accept_came_from() -> None:
    answers = Answers(count(outcomes(100, 30)), version=7)
    choice = decide(_signals(), [_opportunity()], PLAYBOOKS, answers=answers)
    d = choice.decision
    assert d is not None and d.estimate is not None
    source = d.estimate.provenance()
    assert source["source"] == "model" and source["version"] == 7 and source["n"] == 100
    assert d.p_accept == pytest.approx(source["prior"] * 35 / 15, abs=1e-3)


def test_exploration_is_the_same_for_the_same_account_offer_and_instant() -> None:
    answers = Answers(count(outcomes(30, 3)))
    once = decide(_signals(), [_opportunity()], PLAYBOOKS, answers=answers, explore=True)
    again = decide(_signals(), [_opportunity()], PLAYBOOKS, answers=answers, explore=True)
    assert once.decision is not None and again.decision is not None
    assert once.decision.p_accept == again.decision.p_accept
    assert once.decision.estimate is not None and once.decision.estimate.explored


def test_the_fitter_is_not_usable_before_fit() -> None:
    with pytest.raises(NotFittedError):
        _ = AnswersFitter().answers


def test_the_fitter_measures_out_of_sample_by_account() -> None:
    data = outcomes(200, 60, prior=0.3) + outcomes(200, 5, prior=0.05, playbook="banner")
    data += outcomes(40, 1, held_out=True)
    accounts = [f"a-{i}" for i in range(len(data))]
    fitter = AnswersFitter().fit(data, accounts)
    e = fitter.evaluation_
    assert (e.treated, e.held_out, e.converted) == (400, 40, 65)
    assert e.auc is not None and e.auc_prior is not None and 0.5 < e.auc <= 1
    assert sum(c.decisions for c in e.calibration) == 400
    assert fitter.answers.contacts == 440


def test_auc_is_the_mann_whitney_probability() -> None:
    y = np.array([True, False, True, False])
    assert auc(y, np.array([0.9, 0.1, 0.8, 0.2])) == 1.0
    assert auc(y, np.array([0.1, 0.9, 0.2, 0.8])) == 0.0
    # Converters at 0.6 and 0.3, others at 0.5 and 0.3: pairs (0.6>0.5, 0.6>0.3, 0.3<0.5,
    # 0.3=0.3) -> (1 + 1 + 0 + 0.5) / 4.
    assert auc(y, np.array([0.6, 0.5, 0.3, 0.3])) == pytest.approx(2.5 / 4)


def test_qini_is_one_for_the_perfect_ranking_and_below_zero_for_its_reverse() -> None:
    treated = np.array([True, True, False, True, False, True, False, False])
    y = np.array([True, False, False, True, False, False, True, False])
    perfect = np.array([8.0, 4, 3, 7, 2, 4, 0, 2])  # treated converters first, control ones last
    ties = list(range(8))
    assert qini(perfect, treated, y, tiebreak=ties) == pytest.approx(1.0)
    reverse = qini(-perfect, treated, y, tiebreak=ties)
    assert reverse is not None and reverse < 0
    assert qini(perfect, np.ones(8, dtype=bool), y, tiebreak=ties) is None


def _synthetic(effect: float, n: int = 3000) -> tuple[list[Outcome], list[str]]:
    """Treated decisions at a prior of 0.1 whose conversion depends on `score` by `effect`
    (log scale per unit of score), and held-out ones that never convert; other features noise."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        score = float(rng.uniform(0, 1))
        noise = float(rng.normal())
        p = min(0.1 * np.exp(effect * (score - 0.5)), 0.95)
        held = i % 10 == 0
        converted = bool(rng.uniform() < (0.01 if held else p))
        out.append(
            Outcome("upsell", "in_app", "modal", "modal", 0.1, held, converted,
                    features={"score": score, "log_mrr": noise})
        )  # fmt: skip
    return out, [f"a-{i}" for i in range(n)]


def test_a_feature_that_drives_conversion_earns_a_per_account_model() -> None:
    data, accounts = _synthetic(effect=3.0)
    fitter = AnswersFitter().fit(data, accounts)
    e = fitter.evaluation_
    assert e.treated_alpha is not None and fitter.answers.treated_model is not None
    assert e.auc is not None and e.auc_groups is not None and e.auc > e.auc_groups + 0.1
    model = fitter.answers.treated_model
    assert model.coefficients["score"] > 0.5 > abs(model.coefficients["log_mrr"])
    high = fitter.answers.estimate(0.1, "upsell", "in_app", "modal", "modal", features={"score": 1})
    low = fitter.answers.estimate(0.1, "upsell", "in_app", "modal", "modal", features={"score": 0})
    assert high.p_accept > 3 * low.p_accept


def test_features_that_say_nothing_leave_the_groups_alone() -> None:
    data, accounts = _synthetic(effect=0.0)
    fitter = AnswersFitter().fit(data, accounts)
    assert fitter.evaluation_.treated_alpha is None and fitter.answers.treated_model is None


def test_a_per_account_multiplier_is_bounded_and_a_missing_feature_counts_as_its_mean() -> None:
    model = Linear({"score": 10.0}, {"score": 0.5}, {"score": 0.25}, intercept=0.1)
    assert model.multiplier({}) == pytest.approx(np.exp(0.1))
    assert model.multiplier({"score": 1.0}) == pytest.approx(np.exp(3.0))
    assert model.multiplier({"score": 0.0}) == pytest.approx(np.exp(-3.0))


def test_account_features_are_the_accounts_numbers() -> None:
    history = History(
        contacts=(
            PastContact(AT - timedelta(days=3), "upsell:basic->pro", "in_app"),
            PastContact(AT - timedelta(days=20), "upsell:basic->pro", "email"),
            PastContact(AT - timedelta(days=100), "add_on:x", "email"),
        ),
        responses=(PastResponse(AT - timedelta(days=99), "add_on:x", "dismissed"),),
    )
    f = account_features(_opportunity(), _signals(mrr="50"), history)
    assert set(f) == set(FEATURES)
    assert f["log_mrr"] == pytest.approx(np.log1p(50))
    assert f["log_price_share"] == pytest.approx(np.log1p(40 / 50))
    assert f["active_days_share"] == pytest.approx(20 / 30)
    assert (f["score"], f["recent_contacts"], f["detractor"]) == (0.7, 2.0, 0.0)
    assert f["log_reached_180d"] == pytest.approx(np.log1p(3))
    assert f["log_dismissed_180d"] == pytest.approx(np.log1p(1))
    assert f["clicked_180d"] == 0.0
