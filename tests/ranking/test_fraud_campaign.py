"""Campaign detection: many light booster accounts on one model are found together; honest voters are not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ranking.engine import fraud_signals as sig
from ranking.engine.fraud import fraud_scan
from ranking.engine.fraud_campaign import (
    BOOST,
    SUPPRESS,
    Campaign,
    campaign_members,
    campaigns,
    find_campaigns,
)
from ranking.engine.fraud_stats import iid_product_tail

from .fraud_world import N_MODELS, THETA, Rows, world

CAMPAIGN = {"alpha_select": 1e-3, "alpha": 2e-3, "min_share": 0.5, "min_excess": 10.0}


def dense(votes, voter_ids) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.searchsorted(votes.voter_ids, voter_ids)


def campaign_world(seed: int) -> tuple[Rows, np.ndarray, list[int], list[int]]:
    """300 honest voters (60 votes each), 40 boosters of model 0 and 40 suppressors of model 11, each with
    only 15 votes: about 2.5 battles with their target, too few for a per-voter test to single them out."""
    rows = world(seed)
    honest = np.arange(rows.next_voter)
    boosters = [rows.add(15, "booster", target=0) for _ in range(40)]
    suppressors = [rows.add(15, "suppressor", target=N_MODELS - 1) for _ in range(40)]
    return rows, honest, boosters, suppressors


def exact_tail(prob: np.ndarray, weight: np.ndarray, k: int, bound: float) -> float:
    """E[Q 1{Q <= bound}] for Q the product of k iid draws, by enumerating every draw."""
    return sum(
        np.prod(weight[list(c)]) * np.prod(prob[list(c)])
        for c in itertools.product(range(prob.size), repeat=k)
        if np.prod(prob[list(c)]) <= bound
    )


@pytest.mark.parametrize("k", [1, 2, 3])
def test_iid_product_tail_never_underestimates_the_exact_sum(k: int) -> None:
    rng = np.random.default_rng(k)
    prob, weight = rng.uniform(0.01, 0.9, 6), rng.dirichlet(np.ones(6))
    bounds = np.array([1e-4, 1e-3, 0.01, 0.05, 0.2, 1.0])
    one_k = np.zeros((bounds.size, 3))
    one_k[:, k - 1] = 1.0
    step = 0.02
    got = iid_product_tail(prob, weight, one_k, bounds, step=step)
    for bound, value in zip(bounds, got, strict=True):
        # Rounding each factor's log by at most one step can only admit products up to k steps above.
        low, high = exact_tail(prob, weight, k, bound), exact_tail(prob, weight, k, bound * np.exp(k * step))
        assert low - 1e-15 <= value <= high + 1e-15
    assert got[-1] == pytest.approx(float(np.dot(weight, prob)) ** k)


def test_iid_product_tail_mixes_over_k_and_bounds_the_rest() -> None:
    rng = np.random.default_rng(9)
    prob, weight = rng.uniform(0.05, 0.6, 5), rng.dirichlet(np.ones(5))
    mass = np.array([[0.5, 0.3]])
    step = 1e-3
    got = iid_product_tail(prob, weight, mass, np.array([0.05]), rest=np.array([0.2]), step=step)[0]
    mean = float(np.dot(weight, prob))

    def mixed(bound: float, k_step: float) -> float:
        one = exact_tail(prob, weight, 1, bound * np.exp(k_step))
        return 0.5 * one + 0.3 * exact_tail(prob, weight, 2, bound * np.exp(2 * k_step))

    assert mixed(0.05, 0.0) <= got <= mixed(0.05, step) + 0.2 * min(0.05, mean**3) + 1e-15
    assert got >= mixed(0.05, 0.0) + 0.2 * min(0.05, mean**3) - 1e-15  # k > 2 gets the exact cap


def test_the_campaign_p_value_is_valid_for_honest_voters_averaged_over_their_battles() -> None:
    # Honest voters with few votes each meet a model zero to three times; force a campaign on every model and
    # check that no more than alpha of them are flagged (up to sampling error).
    rows = world(seed=12, honest_voters=100, votes_each=60)
    light = rows.honest(3000, 8)
    votes = rows.votes()
    cells = sig.model_cells(votes, THETA, votes.voter_index)
    index = dense(votes, light)
    for model in range(N_MODELS):
        boost, _ = campaign_members(votes, THETA, cells, [Campaign(model, BOOST, 0, 0.0, 0.0)])
        for alpha in (0.01, 0.05):
            rate = float(np.mean(boost[0][index] <= alpha))
            assert rate <= alpha + 3.0 * np.sqrt(alpha / index.size), (model, alpha, rate)


def test_a_campaign_of_light_boosters_and_one_of_suppressors_are_found_and_named() -> None:
    rows, _, _, _ = campaign_world(seed=4)
    votes = rows.votes()
    found = find_campaigns(votes, sig.model_cells(votes, THETA, votes.voter_index), 1e-3, 0.5, 10.0)
    assert {(c.model, c.direction) for c in found} == {(0, BOOST), (N_MODELS - 1, SUPPRESS)}
    assert all(c.pvalue < 1e-10 and c.swept > 10 * c.expected for c in found)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_campaign_members_are_flagged_where_the_per_voter_test_sees_little(seed: int) -> None:
    rows, honest, boosters, suppressors = campaign_world(seed)
    votes = rows.votes()
    boost, suppress = campaigns(votes, THETA, **CAMPAIGN)
    per_voter, _ = sig.target_concentration(votes, THETA, 1e-3)
    b, s = dense(votes, boosters), dense(votes, suppressors)
    assert boost.fired[b].mean() >= 0.3 and suppress.fired[s].mean() >= 0.3
    assert boost.fired[b].mean() >= per_voter.fired[b].mean() + 0.15
    assert (boost.detail[b][boost.fired[b]] == 0).all()
    assert (suppress.detail[s][suppress.fired[s]] == N_MODELS - 1).all()
    h = np.isin(votes.voter_ids, honest)
    # Budget 2e-3 split over the two campaigns: about 0.6 of 300 honest voters expected.
    assert boost.fired[h].sum() + suppress.fired[h].sum() <= 2


def test_no_campaign_among_honest_voters_or_from_one_booster() -> None:
    rows = world(seed=8, honest_voters=400, votes_each=40)
    honest = np.arange(rows.next_voter)
    lone = rows.add(300, "booster", target=0)
    votes = rows.votes()
    assert find_campaigns(votes, sig.model_cells(votes, THETA, votes.voter_index), 1e-3, 0.5, 10.0) == []
    boost, suppress = campaigns(votes, THETA, **CAMPAIGN)
    assert not boost.fired.any() and not suppress.fired.any()
    # The lone booster is left to the per-voter test, which has plenty to go on after 300 votes.
    per_voter, _ = sig.target_concentration(votes, THETA, 1e-3)
    assert per_voter.fired[dense(votes, [lone])].all()
    assert not per_voter.fired[np.isin(votes.voter_ids, honest)].any()


def test_the_scan_reports_campaign_members_with_the_model_name() -> None:
    rows, honest, boosters, _ = campaign_world(seed=3)
    report = fraud_scan(rows.votes(), model_names=[f"m{i}" for i in range(N_MODELS)])
    reasons = [report.voter_reasons[i] for i in dense(rows.votes(), boosters)]
    assert sum("boosting_campaign:m0" in r for r in reasons) >= 0.3 * len(boosters)
    assert np.isin(honest, report.flagged_ids).sum() <= 0.01 * honest.size
