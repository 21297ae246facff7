"""The holdout comparison: Welch's interval for the difference of per-account means."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from upsell.domain.experiments import lift, stratified_lift


def test_the_interval_is_welchs_as_scipy_computes_it() -> None:
    treated = [0.0, 0.0, 70.0, 20.0, 0.0, 99.0, 0.0, 0.0, 29.0, 0.0]
    holdout = [0.0, 20.0, 0.0, 0.0, 0.0, 0.0]
    found = lift(treated, holdout)
    assert found is not None
    oracle = stats.ttest_ind(treated, holdout, equal_var=False).confidence_interval(0.95)
    assert found.difference == pytest.approx(sum(treated) / 10 - sum(holdout) / 6)
    assert (found.low, found.high) == (pytest.approx(oracle.low), pytest.approx(oracle.high))
    assert found.incremental == pytest.approx(found.difference * 10)
    assert found.incremental_low == pytest.approx(oracle.low * 10)


def test_an_empty_group_gives_no_lift_and_a_single_account_no_interval() -> None:
    assert lift([], [1.0]) is None and lift([1.0], []) is None
    single = lift([5.0, 7.0], [1.0])
    assert single is not None and single.difference == 5.0
    assert single.low is None and single.incremental_high is None


def test_groups_without_variance_have_a_zero_width_interval() -> None:
    found = lift([3.0, 3.0, 3.0], [1.0, 1.0])
    assert found is not None and found.low == found.high == 2.0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), min_size=2, max_size=40),
    st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), min_size=2, max_size=40),
)
def test_the_interval_contains_the_difference_and_matches_scipy(
    treated: list[float], holdout: list[float]
) -> None:
    found = lift(treated, holdout)
    assert found is not None and found.low is not None and found.high is not None
    assert found.low <= found.difference + 1e-9 and found.difference <= found.high + 1e-9
    if len(set(treated)) > 1 and len(set(holdout)) > 1:
        with warnings.catch_warnings():  # scipy warns on nearly identical values; the oracle stands
            warnings.simplefilter("ignore", RuntimeWarning)
            oracle = stats.ttest_ind(treated, holdout, equal_var=False).confidence_interval(0.95)
        assert found.low == pytest.approx(oracle.low, rel=1e-6, abs=1e-6)
        assert found.high == pytest.approx(oracle.high, rel=1e-6, abs=1e-6)


def test_variances_too_small_to_square_still_give_an_interval() -> None:
    found = lift([0.0, 0.0], [0.0, 2.1637802835790144e-157])
    assert found is not None and found.low is not None and found.low <= found.difference


def test_one_stratum_is_the_plain_comparison() -> None:
    treated = [0.0, 0.0, 70.0, 20.0, 0.0, 99.0, 0.0, 0.0, 29.0, 0.0]
    holdout = [0.0, 20.0, 0.0, 0.0, 0.0, 0.0]
    assert stratified_lift([(treated, holdout)]) == lift(treated, holdout)


def test_strata_held_out_at_different_shares_are_compared_like_with_like() -> None:
    """Upsells held out at 50 % earn 2 per account over their holdout, saves at 20 % 1: pooled,
    the holdout is mostly upsell accounts and the difference looks negative; by stratum the
    incremental total is 2 x 2 + 8 x 1 = 12."""
    upsells = ([10.0, 10.0], [8.0, 8.0])
    saves = ([1.0] * 8, [0.0, 0.0])
    pooled = lift(upsells[0] + saves[0], upsells[1] + saves[1])
    assert pooled is not None and pooled.difference < 0
    found = stratified_lift([upsells, saves])
    assert found is not None
    assert (found.treated, found.holdout) == (10, 4)
    assert found.incremental == pytest.approx(12.0)
    assert found.mean_treated == pytest.approx(2.8)
    assert found.mean_holdout == pytest.approx(2.8 - 1.2), "the holdout weighted like the treated"
    assert found.low == found.high == pytest.approx(1.2), "no variance in either stratum"


def test_a_stratum_without_both_groups_is_left_out_of_the_comparison() -> None:
    found = stratified_lift([([3.0, 5.0], [1.0, 1.0]), ([100.0, 100.0], [])])
    assert found == lift([3.0, 5.0], [1.0, 1.0])
    assert stratified_lift([([1.0], []), ([], [2.0])]) is None
