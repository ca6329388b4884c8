"""The default false-positive budget: shares add up to under 1% per voter and buy recall where it matters."""

from __future__ import annotations

import numpy as np
import pytest

from ranking.engine.fraud import DEFAULT_CONFIG, fraud_scan

from .fraud_world import world

PER_VOTER_SHARES = (
    "alpha_position",
    "alpha_speed",
    "alpha_likelihood_low",
    "alpha_likelihood_high",
    "alpha_sequential",
    "alpha_evalue",
    "alpha_target",
    "alpha_campaign",
    "alpha_prompts",
)


def test_the_per_voter_shares_add_up_to_under_one_percent() -> None:
    total = sum(getattr(DEFAULT_CONFIG, name) for name in PER_VOTER_SHARES)
    assert 0.009 <= total <= 0.01
    # The random-clicker test gets the largest share: its power is steep in alpha.
    assert DEFAULT_CONFIG.alpha_likelihood_low == max(getattr(DEFAULT_CONFIG, n) for n in PER_VOTER_SHARES)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_clickers_are_caught_within_30_votes_and_honest_voters_are_not(seed: int) -> None:
    rows = world(seed=seed, honest_voters=400, votes_each=50)
    honest = np.arange(rows.next_voter)
    clickers = [rows.add(30, "random") for _ in range(40)]
    report = fraud_scan(rows.votes())
    reasons = [report.voter_reasons[i] for i in np.searchsorted(report.voter_ids, clickers)]
    assert sum("crowd_likelihood:low" in r for r in reasons) >= 0.8 * len(clickers)
    # About 1% of 400 honest voters (4) is the budget; each is flagged independently.
    assert np.isin(honest, report.flagged_ids).sum() <= 8
