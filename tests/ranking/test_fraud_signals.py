"""Each signal flags the bad voter it is built for and none of 300 honest ones."""

from __future__ import annotations

import numpy as np
import pytest

from ranking.engine import fraud_signals as sig
from ranking.engine.fraud import VoteArrays, crowd_theta

from .fraud_world import N_MODELS, Rows, world

ALPHA = 1e-4
RING = {"alpha": ALPHA, "min_voters": 3, "member_alpha": 0.25, "dominance": 0.5, "min_excess": 0.2}


def honest_and(build: callable, seed: int = 3) -> tuple[VoteArrays, np.ndarray, list[int]]:  # type: ignore[valid-type]
    """300 honest voters with 60 votes each plus what `build` adds; returns votes, honest mask, bad ids."""
    rows = world(seed)
    honest_ids = np.arange(rows.next_voter)
    bad = build(rows)
    votes = rows.votes()
    return votes, np.isin(votes.voter_ids, honest_ids), bad


def dense(votes: VoteArrays, voter_ids: list[int]) -> np.ndarray:
    return np.searchsorted(votes.voter_ids, voter_ids)


def honest_theta(votes: VoteArrays, honest: np.ndarray) -> np.ndarray:
    return crowd_theta(votes, honest[votes.voter_index])


def test_position_bias_flags_an_always_left_voter_only() -> None:
    votes, honest, bad = honest_and(lambda rows: [rows.add(30, "left")])
    result = sig.position_bias(votes, ALPHA)
    assert result.fired[dense(votes, bad)].all()
    assert not result.fired[honest].any()


def test_bot_speed_needs_several_fast_votes() -> None:
    def build(rows: Rows) -> list[int]:
        bot = rows.add(20, seconds_to_vote=0.8)
        one_fast = rows.add(60, seconds_to_vote=np.r_[0.5, np.full(59, 15.0)])
        return [bot, one_fast]

    votes, honest, (bot, one_fast) = honest_and(build)
    result = sig.bot_speed(votes, ALPHA, fast_seconds=2.0, base_rate=0.2, min_fast=5)
    assert result.fired[dense(votes, [bot])].all()
    assert not result.fired[dense(votes, [one_fast])].any()
    assert not result.fired[honest].any()


def test_crowd_likelihood_catches_random_clickers_low_and_board_copiers_high() -> None:
    def build(rows: Rows) -> list[int]:
        return [rows.add(150, "random"), rows.add(150, "copier")]

    votes, honest, (random_voter, copier) = honest_and(build)
    result = sig.crowd_likelihood(votes, honest_theta(votes, honest), ALPHA, ALPHA, min_decisive=10)
    index = dense(votes, [random_voter, copier])
    assert result.fired[index].all()
    assert result.detail[index].tolist() == [0, 1]  # low tail, high tail
    assert not result.fired[honest].any()


def test_crowd_likelihood_is_calibrated_for_honest_voters() -> None:
    votes, honest, _ = honest_and(lambda rows: [], seed=11)
    result = sig.crowd_likelihood(votes, honest_theta(votes, honest), 0.05, 0.05, min_decisive=10)
    # Each tail is a 5% test: about 5% of 300 honest voters fire on some tail at 2 x 5%.
    assert 0.03 <= result.fired.mean() <= 0.17


def test_sequential_and_evalue_tests_flag_a_contrarian() -> None:
    votes, honest, bad = honest_and(lambda rows: [rows.add(80, "contrarian")])
    history = np.ones(votes.n_votes, dtype=bool)
    sequential = sig.sequential_crowd_test(votes, history, ALPHA, looks=5, max_look=100, seed=0)
    evalue = sig.evalue_crowd_test(votes, history, ALPHA)
    index = dense(votes, bad)
    assert sequential.fired[index].all() and evalue.fired[index].all()
    assert not sequential.fired[honest].any() and not evalue.fired[honest].any()


def test_target_concentration_names_the_boosted_and_the_suppressed_model() -> None:
    def build(rows: Rows) -> list[int]:
        return [rows.add(120, "booster", target=0), rows.add(120, "suppressor", target=N_MODELS - 1)]

    votes, honest, (booster, suppressor) = honest_and(build)
    boost, suppress = sig.target_concentration(votes, honest_theta(votes, honest), ALPHA)
    b, s = dense(votes, [booster, suppressor])
    assert boost.fired[b] and boost.detail[b] == 0
    assert suppress.fired[s] and suppress.detail[s] == N_MODELS - 1
    assert not boost.fired[honest].any() and not suppress.fired[honest].any()


def test_ring_on_one_network_is_flagged_as_a_whole() -> None:
    def build(rows: Rows) -> list[int]:
        members = [rows.add(15, "booster", target=0, network=42, ip=4242) for _ in range(12)]
        members.append(
            rows.add(3, "honest", network=42, ip=4243, pairs=(np.array([3, 4, 5]), np.array([6, 7, 8])))
        )
        return members

    votes, honest, members = honest_and(build)
    result = sig.rings(votes, honest_theta(votes, honest), "network", **RING)
    index = dense(votes, members)
    assert result.fired[index].all()  # including the member who never met the target yet
    assert (result.detail[index] == 42).all()
    assert not result.fired[honest].any()


def test_a_lone_booster_does_not_turn_a_shared_network_into_a_ring() -> None:
    def build(rows: Rows) -> list[int]:
        neighbours = rows.honest(80, 30, network=7, ip=77)
        booster = rows.add(200, "booster", target=0, network=7, ip=77)
        return [*neighbours, booster]

    votes, honest, _ = honest_and(build)
    result = sig.rings(votes, honest_theta(votes, honest), "network", **RING)
    assert not result.fired.any()


def test_ring_on_one_device_fingerprint() -> None:
    def build(rows: Rows) -> list[int]:
        return [rows.add(15, "booster", target=1, device=9) for _ in range(10)]

    votes, honest, members = honest_and(build)
    result = sig.rings(votes, honest_theta(votes, honest), "device", **RING)
    assert result.name == "ring_device"
    assert result.fired[dense(votes, members)].all()
    assert not result.fired[honest].any()


def test_window_counts_counts_votes_in_the_trailing_window() -> None:
    entity = np.array([1, 1, 1, 1, 2, 2, -1])
    ts = np.array([0.0, 10.0, 20.0, 100.0, 5.0, 6.0, 7.0])
    assert sig.window_counts(entity, ts, 15.0).tolist() == [1, 2, 2, 1, 1, 2, 0]


def test_rate_caps_a_voter_and_an_ip() -> None:
    def build(rows: Rows) -> list[int]:
        burst = rows.add(150, timestamp=np.arange(150) * 20.0)
        shared = [rows.add(60, ip=555, timestamp=np.arange(60) * 30.0 + k) for k in range(5)]
        return [burst, *shared]

    votes, honest, (burst, *shared) = honest_and(build)
    result = sig.rate(votes, window=3 * 3600.0, voter_cap=100, ip_cap=200, network_cap=2000, ip_max_voters=5)
    assert result.fired[dense(votes, [burst])].all() and result.detail[dense(votes, [burst])][0] == -1
    assert result.fired[dense(votes, shared)].all() and (result.detail[dense(votes, shared)] == 1).all()
    assert not result.fired[honest].any()


def test_a_busy_address_shared_by_many_people_only_adds_risk() -> None:
    def build(rows: Rows) -> list[int]:
        return [rows.add(30, ip=556, timestamp=np.arange(30) * 60.0 + k) for k in range(12)]

    votes, _, crowd = honest_and(build)
    result = sig.rate(votes, window=3 * 3600.0, voter_cap=100, ip_cap=200, network_cap=2000, ip_max_voters=5)
    index = dense(votes, crowd)
    assert not result.fired[index].any()
    assert (result.strength[index] > 0.9).all()


def test_repeated_prompts_flag_fishing_but_not_a_curated_prompt_set() -> None:
    def build(rows: Rows) -> list[int]:
        fisher = rows.add(30, prompt=np.r_[np.full(12, 5), np.arange(18) + 77_000_000])
        curated = [rows.add(40, prompt=np.arange(40) % 4 + 900) for _ in range(30)]
        return [fisher, *curated]

    votes, honest, (fisher, *curated) = honest_and(build)
    result, duplicate = sig.repeated_prompts(votes, ALPHA, min_repeats=8)
    assert result.fired[dense(votes, [fisher])].all()
    assert not result.fired[dense(votes, curated)].any()
    assert not result.fired[honest].any()
    fisher_votes = votes.voter == fisher
    assert duplicate[fisher_votes].sum() == 12 - 3  # the 4th and later votes on the fished prompt


@pytest.mark.parametrize("column", ["network", "device"])
def test_rings_ignore_votes_without_a_group(column: str) -> None:
    votes, honest, _ = honest_and(lambda rows: [], seed=5)
    blank = VoteArrays(
        voter=votes.voter,
        model_a=votes.model_a,
        model_b=votes.model_b,
        outcome=votes.outcome,
        n_models=votes.n_models,
    )
    result = sig.rings(blank, honest_theta(votes, honest), column, **RING)
    assert not result.fired.any()
