"""Chatbot Arena's sequential anomalous-user test and FastChat's e-value variant, on a hand-worked example.

History (other voters):  pair {0, 1}: model 0 won 3 times, model 1 once, one tie.
                          pair {1, 2}: model 1 won 4 times, one tie.
Voter 9 votes twice, in this order: model 1 beats model 0, then model 2 beats model 1.

Sequential test, p_i = (1 + #{history outcomes no more frequent than the voter's}) / (|history| + 1):
  vote 1: "1 won" occurred once, "tie" once, "0 won" three times -> 1 + 2 of 5 -> p1 = 3/6
  vote 2: "2 won" never occurred                                    -> 1 + 0 of 5 -> p2 = 1/6
  M_1 = 2 ln 2, M_2 = 2 ln 2 + 2 ln 6 = 2 ln 12; P(chi2_4 >= 2 ln 12) = (1 + ln 12) / 12.
  With looks at j = 1 and j = 2: p = 2 * min(P(chi2_2 >= 2 ln 2) = 1/2, (1 + ln 12) / 12).
E-value test over decisive votes, share = (1 + #same) / (#decisive + 2):
  vote 1: (1 + 1) / (4 + 2) = 1/3 -> e1 = 3/2;  vote 2: (1 + 0) / (4 + 2) = 1/6 -> e2 = 3.
  max_j E_j = 9/2 -> p = 2/9.
"""

from __future__ import annotations

import math

import numpy as np

from ranking.engine import fraud_signals as sig
from ranking.engine.fraud import VoteArrays


def example() -> VoteArrays:
    history = [
        # (voter, a, b, outcome)
        (1, 0, 1, 1.0),
        (2, 1, 0, 0.0),
        (3, 0, 1, 1.0),
        (4, 0, 1, 0.0),
        (5, 0, 1, 0.5),
        (1, 1, 2, 1.0),
        (2, 2, 1, 0.0),
        (3, 1, 2, 1.0),
        (4, 1, 2, 1.0),
        (5, 2, 1, 0.5),
    ]
    tested = [(9, 0, 1, 0.0), (9, 2, 1, 1.0)]
    rows = np.array(history + tested)
    return VoteArrays(
        voter=rows[:, 0].astype(int),
        model_a=rows[:, 1].astype(int),
        model_b=rows[:, 2].astype(int),
        outcome=rows[:, 3],
        n_models=3,
        timestamp=np.arange(len(rows), dtype=float),
    )


def test_per_vote_pvalues_match_the_hand_computation() -> None:
    votes = example()
    p = sig.sequential_pvalues(votes, np.ones(votes.n_votes, dtype=bool))
    assert np.allclose(p[-2:], [3 / 6, 1 / 6])


def test_sequential_statistic_matches_the_hand_computation() -> None:
    votes = example()
    result = sig.sequential_crowd_test(
        votes, np.ones(votes.n_votes, dtype=bool), 0.1, looks=2, max_look=2, seed=0
    )
    voter = int(np.searchsorted(votes.voter_ids, 9))
    assert math.isclose(result.pvalue[voter], 2 * min(0.5, (1 + math.log(12)) / 12), rel_tol=1e-9)


def test_a_look_after_the_voters_last_vote_is_skipped() -> None:
    votes = example()
    result = sig.sequential_crowd_test(
        votes, np.ones(votes.n_votes, dtype=bool), 0.1, looks=1, max_look=1, seed=0
    )
    voter = int(np.searchsorted(votes.voter_ids, 9))
    assert math.isclose(
        result.pvalue[voter], 0.5, rel_tol=1e-9
    )  # the only look is j = 1: P(chi2_2 >= 2 ln 2)


def test_evalue_statistic_matches_the_hand_computation() -> None:
    votes = example()
    result = sig.evalue_crowd_test(votes, np.ones(votes.n_votes, dtype=bool), 0.1)
    voter = int(np.searchsorted(votes.voter_ids, 9))
    assert math.isclose(result.pvalue[voter], 2 / 9, rel_tol=1e-9)


def test_votes_outside_the_history_do_not_count_against_anyone() -> None:
    votes = example()
    history = np.ones(votes.n_votes, dtype=bool)
    history[0] = False  # drop one "model 0 won" vote: vote 1 of voter 9 now faces 1 + 2 of 4
    p = sig.sequential_pvalues(votes, history)
    assert np.isclose(p[-2], 3 / 5)
