"""Per-voter vote-integrity signals (pure numpy/scipy, no Django).

Each signal answers one question about a voter against the honest-voter null and returns a SignalResult:
a multiplicity-adjusted p-value per voter (NaN for plain threshold rules), a strength (>= 1 means the
signal fires at its own false-positive budget) and an optional detail (the model, network or device the
evidence points at). Signals never see labels; their thresholds are false-positive budgets under the null
"an honest voter who clicks the way the crowd model predicts".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from .fraud_stats import (
    BoolArray,
    FloatArray,
    IntArray,
    binom_two_sided_p,
    binom_upper_p,
    poisson_binomial_sf,
    tarone_bonferroni,
    weighted_bernoulli_tails,
)
from .fraud_votes import VoteArrays, win_probability

_TINY = 1e-300


@dataclass(frozen=True)
class SignalResult:
    """Outcome of one signal for every voter (dense voter index of the VoteArrays it was computed on).

    detail_kind says how to print `detail` in a reason: "" (no detail), "model", "network", "device",
    "tail" (0 = low, 1 = high) or "scope" (1 = ip, 2 = network; -1, the voter's own, prints no detail).
    """

    name: str
    strength: FloatArray
    pvalue: FloatArray
    detail: IntArray
    detail_kind: str = ""

    @property
    def fired(self) -> BoolArray:
        return self.strength >= 1.0


def strength_from_p(pvalue: FloatArray, alpha: float) -> FloatArray:
    """log p / log alpha: 1 exactly at the budget, 2 at alpha squared; 0 for p = 1."""
    return np.log(np.clip(pvalue, _TINY, 1.0)) / np.log(alpha)


def _no_detail(n: int) -> IntArray:
    return np.full(n, -1, dtype=np.int64)


def _per_voter_sum(
    votes: VoteArrays, values: FloatArray | BoolArray, mask: BoolArray | None = None
) -> FloatArray:
    weights = values.astype(np.float64) if mask is None else np.where(mask, values, 0).astype(np.float64)
    return np.bincount(votes.voter_index, weights=weights, minlength=votes.n_voters)


# --- position bias ---------------------------------------------------------------------------------------


def position_bias(votes: VoteArrays, alpha: float) -> SignalResult:
    """Exact two-sided binomial test of left against right picks among a voter's decisive votes.

    Positions are randomised, so an honest voter picks left with probability 1/2 on average; the honest
    count is Poisson-binomial with less spread than Bin(n, 1/2), which makes this test conservative.
    """
    decisive = votes.decisive
    left = _per_voter_sum(votes, votes.outcome == 1.0)
    n = _per_voter_sum(votes, decisive)
    p = binom_two_sided_p(left.astype(np.int64), n.astype(np.int64))
    return SignalResult("position_bias", strength_from_p(p, alpha), p, _no_detail(votes.n_voters))


# --- speed -------------------------------------------------------------------------------------------------


def bot_speed(
    votes: VoteArrays, alpha: float, fast_seconds: float, base_rate: float, min_fast: int
) -> SignalResult:
    """Binomial test: does the voter click faster than `fast_seconds` far more often than `base_rate`?

    One fast vote proves nothing (a reader may finish the left answer while the right one still streams);
    a voter is tested only once `min_fast` fast votes accumulate, against a generous honest base rate.
    """
    known = np.isfinite(votes.seconds_to_vote)
    fast = known & (votes.seconds_to_vote < fast_seconds)
    n_fast = _per_voter_sum(votes, fast)
    n_known = _per_voter_sum(votes, known)
    p = binom_upper_p(n_fast.astype(np.int64), n_known.astype(np.int64), base_rate)
    p = np.where(n_fast >= min_fast, p, 1.0)
    return SignalResult("bot_speed", strength_from_p(p, alpha), p, _no_detail(votes.n_voters))


# --- agreement with the crowd model --------------------------------------------------------------------


def crowd_likelihood(
    votes: VoteArrays, theta: FloatArray, alpha_low: float, alpha_high: float, min_decisive: int
) -> SignalResult:
    """Likelihood of the voter's decisive votes under the crowd Bradley-Terry model, both tails.

    The statistic sum_i logit(p_fav,i) * [picked the crowd favourite] is the log-likelihood up to a
    constant; its exact null is a weighted Bernoulli sum, evaluated by saddlepoint. Too low means votes
    the crowd finds improbable (random clicking, contrarian voting); too high means a voter who always picks
    the favourite (copying the public board), which no honest voter does because close pairs are close.

    The low tail is the likelihood-ratio test of "choices independent of the crowd" (each side 1/2): the
    log ratio sum_i log(1 / (2 p_i(choice))) equals a constant fixed by the voter's pairs minus this
    statistic, so by Neyman-Pearson no test of the voter's decisive votes at the same level catches more
    random clickers (averaging the threshold over pairs instead gains nothing measurable). A running
    e-value of the same ratio (flag when it ever reaches 1/alpha, valid at any stopping time) catches
    7-10 points fewer at 50 votes in the benchmark, so the fixed-sample tail is used.
    """
    decisive = votes.decisive
    p_a = win_probability(theta, votes.model_a, votes.model_b)
    p_fav = np.maximum(p_a, 1.0 - p_a)
    picked_fav = np.where(p_a >= 0.5, votes.outcome == 1.0, votes.outcome == 0.0)
    weight = special.logit(np.clip(p_fav, 0.5, 1 - 1e-12))
    group = votes.voter_index[decisive]
    observed = np.bincount(group, weights=(weight * picked_fav)[decisive], minlength=votes.n_voters)
    upper, lower = weighted_bernoulli_tails(
        group, weight[decisive], p_fav[decisive], observed, votes.n_voters
    )
    enough = _per_voter_sum(votes, decisive) >= min_decisive
    lower, upper = np.where(enough, lower, 1.0), np.where(enough, upper, 1.0)
    s_low, s_high = strength_from_p(lower, alpha_low), strength_from_p(upper, alpha_high)
    detail = np.where(s_high > s_low, 1, 0).astype(np.int64)
    pvalue = np.where(detail == 1, upper, lower)
    return SignalResult("crowd_likelihood", np.maximum(s_low, s_high), pvalue, detail, "tail")


def _canonical_pairs(votes: VoteArrays) -> tuple[IntArray, IntArray]:
    """Unordered pair id and canonical outcome code (0: higher id won, 1: tie, 2: lower id won)."""
    low = np.minimum(votes.model_a, votes.model_b)
    high = np.maximum(votes.model_a, votes.model_b)
    low_score = np.where(votes.model_a == low, votes.outcome, 1.0 - votes.outcome)
    return low * votes.n_models + high, np.rint(low_score * 2).astype(np.int64)


def _leave_voter_out_counts(votes: VoteArrays, history: BoolArray) -> FloatArray:
    """Per vote, the history counts of the three outcomes on its pair, excluding the voter's own votes."""
    pair, code = _canonical_pairs(votes)
    n_pairs = votes.n_models * votes.n_models
    counts = np.zeros((n_pairs, 3))
    np.add.at(counts, (pair[history], code[history]), 1.0)
    own_key = votes.voter_index * n_pairs + pair
    keys, inverse = np.unique(own_key, return_inverse=True)
    own = np.zeros((keys.size, 3))
    np.add.at(own, (inverse[history], code[history]), 1.0)
    return counts[pair] - own[inverse]


def _time_order(votes: VoteArrays) -> IntArray:
    """Votes grouped by voter and, within a voter, in time order (row order where time is unknown)."""
    ts = np.where(np.isfinite(votes.timestamp), votes.timestamp, np.arange(votes.n_votes, dtype=np.float64))
    return np.lexsort((np.arange(votes.n_votes), ts, votes.voter_index))


def sequential_pvalues(votes: VoteArrays, history: BoolArray) -> FloatArray:
    """Chiang et al. (2024) per-vote p-values: p_i = (1 + #{history as extreme}) / (|history| + 1).

    "History" is every other voter's vote on the same unordered pair; a historical outcome is at least as
    extreme as the voter's when it is no more frequent in the history (a discrete, super-uniform p-value).
    """
    counts = _leave_voter_out_counts(votes, history)
    _, code = _canonical_pairs(votes)
    own_count = counts[np.arange(votes.n_votes), code]
    extreme = (counts * (counts <= own_count[:, None])).sum(axis=1)
    return (1.0 + extreme) / (counts.sum(axis=1) + 1.0)


def sequential_crowd_test(
    votes: VoteArrays, history: BoolArray, alpha: float, looks: int, max_look: int, seed: int
) -> SignalResult:
    """Chatbot Arena's anomalous-user test: M_j = -2 sum_{i<=j} log p_i against chi2(2j) at random looks.

    Each voter gets `looks` look times drawn without replacement from 1..max_look; the voter is flagged when
    at any look j (with j <= their number of votes) M_j >= chi2_{2j, 1 - alpha/looks}. The reported p-value
    is looks * min_j P(chi2(2j) >= M_j), so strength >= 1 is exactly that rule.
    """
    order = _time_order(votes)
    stat = -2.0 * np.log(sequential_pvalues(votes, history))[order]
    voter = votes.voter_index[order]
    rank = _rank_within_voter(voter)
    cumulative = _cumsum_within_voter(stat, voter)
    look_times = _look_times(votes.n_voters, looks, max_look, seed)
    at_look = (look_times[voter] == (rank + 1)[:, None]).any(axis=1)
    p_look = stats.chi2.sf(cumulative, 2.0 * (rank + 1))
    p = np.ones(votes.n_voters)
    np.minimum.at(p, voter[at_look], np.minimum(1.0, looks * p_look[at_look]))
    return SignalResult("crowd_disagreement", strength_from_p(p, alpha), p, _no_detail(votes.n_voters))


def evalue_crowd_test(votes: VoteArrays, history: BoolArray, alpha: float) -> SignalResult:
    """FastChat's two-sided e-value variant: E_j = prod_{i<=j} 1 / (2 p_i) over decisive votes.

    p_i is the (Laplace-smoothed) share of the other voters' decisive votes on the pair that went the same
    way; E[1 / (2 p_i)] = 1 for an honest voter, so E_j is a test martingale and by Ville's inequality
    flagging when max_j E_j >= 1/alpha keeps the false-positive rate below alpha at any stopping time.
    """
    counts = _leave_voter_out_counts(votes, history)
    _, code = _canonical_pairs(votes)
    decisive = votes.decisive
    same = counts[np.arange(votes.n_votes), code]
    share = (1.0 + same) / (counts[:, 0] + counts[:, 2] + 2.0)
    log_e = np.where(decisive, -np.log(2.0 * share), 0.0)
    order = _time_order(votes)
    voter = votes.voter_index[order]
    running = _cumsum_within_voter(log_e[order], voter)
    best = np.full(votes.n_voters, 0.0)
    np.maximum.at(best, voter, running)
    p = np.minimum(1.0, np.exp(-best))
    return SignalResult("crowd_disagreement_2s", strength_from_p(p, alpha), p, _no_detail(votes.n_voters))


def _rank_within_voter(voter_sorted: IntArray) -> IntArray:
    starts = np.flatnonzero(np.r_[True, voter_sorted[1:] != voter_sorted[:-1]])
    counts = np.diff(np.r_[starts, voter_sorted.size])
    return np.arange(voter_sorted.size) - np.repeat(starts, counts)


def _cumsum_within_voter(values: FloatArray, voter_sorted: IntArray) -> FloatArray:
    total = np.cumsum(values)
    rank = _rank_within_voter(voter_sorted)
    start_index = np.arange(values.size) - rank
    offset = total[start_index] - values[start_index]
    return total - offset


def _look_times(n_voters: int, looks: int, max_look: int, seed: int) -> IntArray:
    rng = np.random.default_rng(seed)
    keys = rng.random((n_voters, max_look))
    return np.argsort(keys, axis=1)[:, :looks].astype(np.int64) + 1


# --- one voter piling onto one model ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCells:
    """Each decisive vote seen from both models' side, grouped into (voter, model) cells."""

    cell: IntArray  # per entry: cell index
    won: BoolArray  # per entry: the cell's model won this vote
    q: FloatArray  # per entry: crowd probability that the cell's model wins
    cell_voter: IntArray  # per cell
    cell_model: IntArray  # per cell
    wins: IntArray  # per cell
    losses: IntArray  # per cell

    @property
    def n_cells(self) -> int:
        return int(self.cell_voter.size)


def model_cells(votes: VoteArrays, theta: FloatArray, owner: IntArray) -> ModelCells:
    """Group decisive votes into (owner, model) cells; owner is the dense voter index or a group id."""
    decisive = votes.decisive & (owner >= 0)
    a, b, out = votes.model_a[decisive], votes.model_b[decisive], votes.outcome[decisive]
    p_a = win_probability(theta, a, b)
    who = np.concatenate([owner[decisive], owner[decisive]])
    model = np.concatenate([a, b])
    won = np.concatenate([out == 1.0, out == 0.0])
    q = np.concatenate([p_a, 1.0 - p_a])
    keys, cell = np.unique(who * votes.n_models + model, return_inverse=True)
    wins = np.bincount(cell, weights=won.astype(np.float64), minlength=keys.size).astype(np.int64)
    losses = np.bincount(cell, weights=(~won).astype(np.float64), minlength=keys.size).astype(np.int64)
    return ModelCells(cell, won, q, keys // votes.n_models, keys % votes.n_models, wins, losses)


def target_concentration(
    votes: VoteArrays, theta: FloatArray, alpha: float
) -> tuple[SignalResult, SignalResult]:
    """Per voter and model: are the voter's votes for (or against) that model beyond the crowd's odds?

    Exact Poisson-binomial tails of the model's wins (and losses) among the voter's votes involving it,
    with a Tarone-Bonferroni correction per voter over both directions and every model the voter met;
    a single vote on an evenly matched pair cannot reach significance, so it costs no budget.
    Returns (boosting, suppressing) results; detail is the model.
    """
    cells = model_cells(votes, theta, votes.voter_index)
    p_for = poisson_binomial_sf(cells.cell, cells.q, cells.wins, cells.n_cells)
    p_against = poisson_binomial_sf(cells.cell, 1.0 - cells.q, cells.losses, cells.n_cells)
    min_for = np.exp(np.bincount(cells.cell, weights=np.log(cells.q), minlength=cells.n_cells))
    min_against = np.exp(np.bincount(cells.cell, weights=np.log1p(-cells.q), minlength=cells.n_cells))
    owner = np.concatenate([cells.cell_voter, cells.cell_voter])
    k = tarone_bonferroni(np.concatenate([min_for, min_against]), owner, alpha, votes.n_voters)
    boost = _best_cell(votes.n_voters, cells, np.minimum(1.0, p_for * k[cells.cell_voter]))
    suppress = _best_cell(votes.n_voters, cells, np.minimum(1.0, p_against * k[cells.cell_voter]))
    return (
        SignalResult("target_concentration", strength_from_p(boost[0], alpha), boost[0], boost[1], "model"),
        SignalResult(
            "target_suppression", strength_from_p(suppress[0], alpha), suppress[0], suppress[1], "model"
        ),
    )


def _best_cell(n_voters: int, cells: ModelCells, p_adjusted: FloatArray) -> tuple[FloatArray, IntArray]:
    """Smallest adjusted p-value per voter and the model it belongs to."""
    order = np.lexsort((p_adjusted, cells.cell_voter))
    first = np.r_[True, cells.cell_voter[order][1:] != cells.cell_voter[order][:-1]]
    chosen = order[first]
    p = np.ones(n_voters)
    model = np.full(n_voters, -1, dtype=np.int64)
    p[cells.cell_voter[chosen]] = p_adjusted[chosen]
    model[cells.cell_voter[chosen]] = cells.cell_model[chosen]
    return p, model


# --- rings --------------------------------------------------------------------------------------------------


def rings(
    votes: VoteArrays,
    theta: FloatArray,
    column: str,
    *,
    alpha: float,
    min_voters: int,
    member_alpha: float,
    dominance: float,
    min_excess: float,
) -> SignalResult:
    """Many voters on one network (or device fingerprint) favouring the same model.

    For each (group, model) with at least `min_voters` voters, the pooled wins of the model among the
    group's votes are tested against the crowd's odds, after removing the single voter who contributes
    most: a lone booster behind a carrier-grade NAT must not turn thousands of neighbours into a "ring"
    (they face the ordinary per-voter test instead). The pooled win share must also beat the crowd's
    expectation by `min_excess`: a whole campus may mildly prefer coding models, a ring votes one way.
    A ring implicates every member whose own record on the model leans its way (one-sided p <=
    member_alpha); when such members are at least `dominance` of the group's voters, the group is the
    ring's own, and every member who never voted against the model is included too (a fresh account that
    has not met the target yet belongs to the same operator).
    """
    group = getattr(votes, column)
    name = "ring" if column == "network" else f"ring_{column}"
    strength, pvalue = np.zeros(votes.n_voters), np.ones(votes.n_voters)
    detail = _no_detail(votes.n_voters)
    member = _group_members(votes, theta, _shared_groups(group, votes.voter_index, min_voters))
    if member is None:
        return SignalResult(name, strength, pvalue, detail, column)
    rings_p = _pooled_ring_pvalues(member, alpha, min_voters, min_excess)
    for ring in np.flatnonzero(rings_p <= alpha):
        implicated = _ring_members(votes, member, group, ring, member_alpha, dominance)
        s = strength_from_p(np.full(implicated.size, rings_p[ring]), alpha)
        better = s > strength[implicated]
        strength[implicated[better]] = s[better]
        pvalue[implicated[better]] = rings_p[ring]
        detail[implicated[better]] = member.ring_group[ring]
    return SignalResult(name, strength, pvalue, detail, column)


@dataclass(frozen=True)
class _Membership:
    """(group, voter, model) cells of decisive votes and their (group, model) rings."""

    cells: ModelCells  # owner = (group, voter) pair index
    pair_group: IntArray  # per (group, voter) pair
    pair_voter: IntArray
    cell_ring: IntArray  # per cell: its (group, model) index
    ring_group: IntArray  # per ring
    p_member: FloatArray  # per cell: one-sided p of the voter's own wins for the model


def _shared_groups(group: IntArray, voter: IntArray, min_voters: int) -> IntArray:
    """The group column with groups of fewer than `min_voters` distinct voters blanked (-1): most home
    networks and fingerprints hold one person, and cannot host a ring."""
    return np.where(_distinct_voters(group, voter) >= min_voters, group, -1)


def _group_members(votes: VoteArrays, theta: FloatArray, group: IntArray) -> _Membership | None:
    known = group >= 0
    if not np.any(known & votes.decisive):
        return None
    span = votes.n_voters
    pair_key = np.where(known, group * span + votes.voter_index, -1)
    keys, pair = np.unique(pair_key[known], return_inverse=True)
    owner = np.full(votes.n_votes, -1, dtype=np.int64)
    owner[known] = pair
    cells = model_cells(votes, theta, owner)
    pair_group, pair_voter = keys // span, keys % span
    ring_key = pair_group[cells.cell_voter] * votes.n_models + cells.cell_model
    ring_keys, cell_ring = np.unique(ring_key, return_inverse=True)
    p_member = poisson_binomial_sf(cells.cell, cells.q, cells.wins, cells.n_cells)
    return _Membership(
        cells,
        pair_group,
        pair_voter,
        cell_ring,
        ring_keys // votes.n_models,
        p_member,
    )


def _pooled_ring_pvalues(member: _Membership, alpha: float, min_voters: int, min_excess: float) -> FloatArray:
    """Leave-top-contributor-out pooled p-value per (group, model), Tarone-Bonferroni over all of them."""
    cells = member.cells
    n_rings = member.ring_group.size
    voters_per_ring = np.bincount(member.cell_ring, minlength=n_rings)
    expected = np.bincount(cells.cell, weights=cells.q, minlength=cells.n_cells)
    excess = cells.wins - expected
    order = np.lexsort((-excess, member.cell_ring))
    first = np.r_[True, member.cell_ring[order][1:] != member.cell_ring[order][:-1]]
    is_top = np.zeros(cells.n_cells, dtype=bool)
    is_top[order[first]] = True
    entry_ring = member.cell_ring[cells.cell]
    keep = ~is_top[cells.cell]
    pooled_wins = np.bincount(member.cell_ring[~is_top], weights=cells.wins[~is_top], minlength=n_rings)
    p = poisson_binomial_sf(entry_ring[keep], cells.q[keep], pooled_wins.astype(np.int64), n_rings)
    min_p = np.exp(np.bincount(entry_ring[keep], weights=np.log(cells.q[keep]), minlength=n_rings))
    pooled_expected = np.bincount(entry_ring[keep], weights=cells.q[keep], minlength=n_rings)
    pooled_n = np.bincount(entry_ring[keep], minlength=n_rings)
    excess_share = (pooled_wins - pooled_expected) / np.maximum(pooled_n, 1)
    eligible = (voters_per_ring >= min_voters) & (excess_share >= min_excess)
    # The test count may only depend on the design (who met which model), not on the outcomes, so Tarone's
    # count runs over every (group, model) with enough voters; the effect-size rule only removes rejections.
    tested = voters_per_ring >= min_voters
    k = tarone_bonferroni(min_p[tested], np.zeros(int(tested.sum()), dtype=np.int64), alpha, 1)[0]
    return np.where(eligible, np.minimum(1.0, p * k), 1.0)


def _ring_members(
    votes: VoteArrays, member: _Membership, group: IntArray, ring: int, member_alpha: float, dominance: float
) -> IntArray:
    cells = member.cells
    in_ring = member.cell_ring == ring
    leaning = in_ring & (cells.wins >= 1) & (member.p_member <= member_alpha)
    suspects = member.pair_voter[cells.cell_voter[leaning]]
    gid = member.ring_group[ring]
    everyone = np.unique(votes.voter_index[group == gid])
    if suspects.size < dominance * everyone.size:
        return np.unique(suspects)
    against = member.pair_voter[cells.cell_voter[in_ring & (cells.losses > 0) & ~leaning]]
    return np.union1d(suspects, np.setdiff1d(everyone, against))


# --- rate and repeated prompts ----------------------------------------------------------------------------


def window_counts(entity: IntArray, timestamp: FloatArray, window: float) -> FloatArray:
    """Per vote: how many votes of the same entity fall in the `window` seconds ending at this vote."""
    counts = np.zeros(entity.size)
    ok = (entity >= 0) & np.isfinite(timestamp)
    if not ok.any():
        return counts
    e, t = entity[ok], timestamp[ok]
    order = np.lexsort((t, e))
    _, rank = np.unique(e[order], return_inverse=True)
    stride = (t.max() - t.min()) + window + 1.0
    key = rank * stride + (t[order] - t.min())
    first = np.searchsorted(key, key - window, side="right")
    result = np.zeros(e.size)
    result[order] = np.arange(e.size) - first + 1
    counts[ok] = result
    return counts


def rate(
    votes: VoteArrays, window: float, voter_cap: int, ip_cap: int, network_cap: int, ip_max_voters: int
) -> SignalResult:
    """Most votes in any `window`-second span, per voter (hard cap), per IP and per network.

    An address shared by many people (campus, carrier-grade NAT) is busy for honest reasons, so the IP cap
    is hard only for addresses used by at most `ip_max_voters` accounts (an account farm); otherwise, like
    the network rate, its strength is capped just below 1: it adds risk but never flags anyone alone.
    """
    few_accounts = _distinct_voters(votes.ip, votes.voter_index) <= ip_max_voters
    scopes = (
        (votes.voter_index, voter_cap, np.full(votes.n_votes, np.inf)),
        (votes.ip, ip_cap, np.where(few_accounts, np.inf, 0.99)),
        (votes.network, network_cap, np.full(votes.n_votes, 0.99)),
    )
    per_scope = []
    for entity, cap, ceiling in scopes:
        per_vote = np.minimum(window_counts(entity, votes.timestamp, window) / cap, ceiling)
        peak = np.zeros(votes.n_voters)
        np.maximum.at(peak, votes.voter_index, per_vote)
        per_scope.append(peak)
    stacked = np.vstack(per_scope)
    scope = np.argmax(stacked, axis=0).astype(np.int64)
    detail = np.where(scope == 0, -1, scope)  # the voter's own rate reads plain "rate"
    return SignalResult("rate", stacked.max(axis=0), np.full(votes.n_voters, np.nan), detail, "scope")


def _distinct_voters(entity: IntArray, voter: IntArray) -> IntArray:
    """Per vote: how many distinct voters share this vote's entity (0 where the entity is unknown)."""
    out = np.zeros(entity.size, dtype=np.int64)
    known = entity >= 0
    if not known.any():
        return out
    stride = int(voter.max()) + 1
    pair_entity = np.unique(entity[known] * stride + voter[known]) // stride
    entities, counts = np.unique(pair_entity, return_counts=True)
    out[known] = counts[np.searchsorted(entities, entity[known])]
    return out


def repeated_prompts(votes: VoteArrays, alpha: float, min_repeats: int) -> tuple[SignalResult, BoolArray]:
    """A voter voting on the same prompt again and again (fishing for a target model).

    Fires when one prompt reaches `min_repeats` votes by the voter and that count is improbable given how
    much the *other voters who used the prompt* concentrate on it (on a curated prompt set everybody repeats
    the same few prompts): binomial upper tail, Bonferroni over the voter's distinct prompts. Also returns,
    per vote, whether it repeats a prompt the voter has already voted on three times (such votes are
    stored but not counted).
    """
    known = votes.prompt >= 0
    strength, pvalue = np.zeros(votes.n_voters), np.ones(votes.n_voters)
    duplicate = np.zeros(votes.n_votes, dtype=bool)
    if not known.any():
        return SignalResult("repeated_prompts", strength, pvalue, _no_detail(votes.n_voters)), duplicate
    voter, prompt = votes.voter_index[known], np.unique(votes.prompt[known], return_inverse=True)[1]
    n_prompts = int(prompt.max()) + 1
    keys, cell, count = np.unique(voter * n_prompts + prompt, return_inverse=True, return_counts=True)
    cell_voter, cell_prompt = keys // n_prompts, keys % n_prompts
    voter_total = np.bincount(voter, minlength=votes.n_voters)[cell_voter]
    prompt_total = np.bincount(cell_prompt, weights=count, minlength=n_prompts)[cell_prompt]
    users_total = np.bincount(cell_prompt, weights=voter_total, minlength=n_prompts)[cell_prompt]
    floor = 1.0 / max(int(known.sum()), 2)
    share = np.maximum((prompt_total - count) / np.maximum(users_total - voter_total, 1), floor)
    n_distinct = np.bincount(cell_voter, minlength=votes.n_voters)[cell_voter]
    p_cell = np.minimum(1.0, binom_upper_p(count, voter_total, share) * n_distinct)
    p_cell = np.where(count >= min_repeats, p_cell, 1.0)
    np.minimum.at(pvalue, cell_voter, p_cell)
    occurrence = _occurrence_index(cell, votes.timestamp[known])
    duplicate[np.flatnonzero(known)] = occurrence >= 3
    result = SignalResult(
        "repeated_prompts", strength_from_p(pvalue, alpha), pvalue, _no_detail(votes.n_voters)
    )
    return result, duplicate


def _occurrence_index(cell: IntArray, timestamp: FloatArray) -> IntArray:
    """0 for the first vote of each (voter, prompt) cell in time order, 1 for the second, ..."""
    ts = np.where(np.isfinite(timestamp), timestamp, 0.0)
    order = np.lexsort((np.arange(cell.size), ts, cell))
    rank = _rank_within_voter(cell[order])
    out = np.empty(cell.size, dtype=np.int64)
    out[order] = rank
    return out
