"""Campaigns: many accounts each voting for (or against) one model whenever it appears (pure numpy/scipy).

A booster account votes honestly except in its target's battles, and with 40 models the target turns up in
about one battle in twenty: after 50 votes a booster has won two or three battles for it, which an honest
voter also does now and then. The per-voter test (`fraud_signals.target_concentration`) must search every
model the voter met and can only use the voter's own record, so it catches few boosters that early.

An attack that moves the board needs many such accounts, and together they are conspicuous. This signal
works in two stages:

1. **Which models are under a campaign.** Per model (and direction), count the voters who met it at
   least twice and voted its way every time ("swept" it), against the Poisson-binomial null of the crowd
   model, where each voter sweeps with probability prod q (q: the crowd's chance that the model wins each
   battle). The count is tested one short of the observed one: removing any single voter changes it by at
   most one, so whether a model is selected never hinges on one voter's own record. A campaign must also
   be large: the excess must be at least `min_excess` voters and `min_share` of the expected count (a mild
   fan base is a matter of taste, a campaign is many accounts voting one way).
2. **Who takes part.** For a selected model, a voter who swept it with joint probability L = prod q is
   flagged when L is small among the records an honest voter could have been dealt. The statistic is
   the likelihood ratio of "always votes for it" against the crowd model (1 / L), and its p-value is
   P(an honest voter with as many decisive votes sweeps the model with joint probability <= L), averaged
   over how many battles with the model the sampler dealt them and whom it faced
   (`fraud_stats.iid_product_tail`). So an honest voter is flagged with probability at most alpha
   whatever their activity, and a booster who won one battle for the weakest model against the strongest
   one already counts: among honest voters that is rare, even though the voter's own p-value (L) is not
   small. Alpha is split (Bonferroni) over the selected campaigns.

Stage 1 never flags anyone, so in peacetime the signal costs no false positives at all; during a campaign
an honest voter's risk is bounded by alpha whatever stage 1 selected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .fraud_signals import ModelCells, SignalResult, model_cells, strength_from_p
from .fraud_stats import FloatArray, IntArray, iid_product_tail, weighted_bernoulli_tails
from .fraud_votes import VoteArrays, win_probability

BOOST, SUPPRESS = 0, 1
_NAMES = ("boosting_campaign", "suppression_campaign")


@dataclass(frozen=True)
class Campaign:
    """A model under a campaign: direction BOOST or SUPPRESS, voters who swept it (met >= 2 times) against
    the crowd model's expectation, and the stage-1 p-value (Bonferroni over models and directions)."""

    model: int
    direction: int
    swept: int
    expected: float
    pvalue: float


@dataclass(frozen=True)
class _Side:
    """Per (voter, model) cell, seen in one direction: battles, whether all went the model's way, and
    log prod q."""

    k: IntArray
    swept: np.ndarray
    log_l: FloatArray


def _side(cells: ModelCells, direction: int) -> _Side:
    q = cells.q if direction == BOOST else 1.0 - cells.q
    log_l = np.bincount(cells.cell, weights=np.log(np.clip(q, 1e-300, 1.0)), minlength=cells.n_cells)
    against = cells.losses if direction == BOOST else cells.wins
    return _Side(cells.wins + cells.losses, against == 0, log_l)


def find_campaigns(
    votes: VoteArrays, cells: ModelCells, alpha_select: float, min_share: float, min_excess: float
) -> list[Campaign]:
    """Stage 1: the models (and directions) that far more voters swept than the crowd model allows."""
    found = []
    tests = 2 * votes.n_models
    for direction in (BOOST, SUPPRESS):
        side = _side(cells, direction)
        repeat = side.k >= 2
        model = cells.cell_model[repeat]
        prob = np.exp(side.log_l[repeat])
        swept = np.bincount(model, weights=side.swept[repeat], minlength=votes.n_models).astype(np.int64)
        expected = np.bincount(model, weights=prob, minlength=votes.n_models)
        # One short of the observed count: no single voter's record decides whether a model is selected.
        # Thousands of voters meet each model, so the saddlepoint (continuity-corrected) stands in for the
        # exact Poisson-binomial tail; it keeps its relative accuracy this far out.
        p, _ = weighted_bernoulli_tails(model, np.ones(model.size), prob, swept - 1.5, votes.n_models)
        p = np.where(swept - 1 <= 0, 1.0, p)
        excess = swept - 1 - expected
        chosen = (p * tests <= alpha_select) & (excess >= min_excess) & (excess >= min_share * expected)
        found += [
            Campaign(int(m), direction, int(swept[m]), float(expected[m]), float(min(1.0, p[m] * tests)))
            for m in np.flatnonzero(chosen)
        ]
    return found


def campaign_members(
    votes: VoteArrays, theta: FloatArray, cells: ModelCells, found: list[Campaign], max_k: int = 32
) -> tuple[tuple[FloatArray, IntArray], tuple[FloatArray, IntArray]]:
    """Stage 2: per direction, each voter's smallest adjusted p-value over the selected campaigns, and the
    model it belongs to (-1 where none).

    A voter with n decisive votes who swept the model with joint probability L gets
    p = P(an honest voter with n decisive votes sweeps it with joint probability <= L), averaged over how
    many of their battles involved the model (binomial, at the model's share of all decisive votes) and
    over whom it faced (its actual opponents' mix): the most powerful test against "always votes for it"
    (whose likelihood ratio is 1 / L), valid for every n.
    """
    out = [(np.ones(votes.n_voters), np.full(votes.n_voters, -1, dtype=np.int64)) for _ in (BOOST, SUPPRESS)]
    decisive = votes.decisive
    n_decisive = np.bincount(votes.voter_index[decisive], minlength=votes.n_voters)
    a, b = votes.model_a[decisive], votes.model_b[decisive]
    ks = np.arange(1, max_k + 1)
    for campaign in found:
        m, direction = campaign.model, campaign.direction
        side = _side(cells, direction)
        mine = (cells.cell_model == m) & side.swept & (side.k >= 1)
        if not mine.any():
            continue
        # The model's opponents and its share of battles as the sampler dealt them (every decisive vote).
        opponent = np.concatenate([b[a == m], a[b == m]])
        weight = np.bincount(opponent, minlength=votes.n_models) / max(opponent.size, 1)
        share = opponent.size / max(a.size, 1)
        others = np.flatnonzero(weight > 0)
        q = win_probability(theta, np.full(others.size, m), others)
        q = q if direction == BOOST else 1.0 - q
        voters = cells.cell_voter[mine]
        n = n_decisive[voters][:, None]
        p = iid_product_tail(
            q,
            weight[others],
            stats.binom.pmf(ks[None, :], n, share),
            np.exp(side.log_l[mine]),
            rest=stats.binom.sf(max_k, n[:, 0], share),
        )
        p = np.minimum(1.0, p * len(found))
        best_p, best_model = out[direction]
        better = p < best_p[voters]
        best_p[voters[better]] = p[better]
        best_model[voters[better]] = m
    return out[BOOST], out[SUPPRESS]


def campaigns(
    votes: VoteArrays,
    theta: FloatArray,
    *,
    alpha_select: float,
    alpha: float,
    min_share: float,
    min_excess: float,
) -> tuple[SignalResult, SignalResult]:
    """Both stages; returns (boosting, suppressing) results with the campaign's model as detail."""
    cells = model_cells(votes, theta, votes.voter_index)
    found = find_campaigns(votes, cells, alpha_select, min_share, min_excess)
    results = campaign_members(votes, theta, cells, found)
    return tuple(  # type: ignore[return-value]
        SignalResult(name, strength_from_p(p, alpha), p, model, "model")
        for name, (p, model) in zip(_NAMES, results, strict=True)
    )
