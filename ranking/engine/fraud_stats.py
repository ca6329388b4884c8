"""Tail probabilities used by the vote-integrity signals (pure numpy/scipy, no Django).

Every fraud signal reduces to "how surprising is this voter's count or score if they were an honest voter
following the crowd model?". The null distributions are sums of independent, non-identical Bernoulli
variables (Poisson-binomial) or weighted sums of them; the normal approximation is badly anti-conservative
in the far tails we care about (p around 1e-4 for a 1% false-positive budget spread over many tests), so
this module computes them exactly (dynamic programming) or with the Lugannani-Rice saddlepoint formula.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special, stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_EXACT_MAX_TERMS = 4096


def binom_two_sided_p(k: IntArray, n: IntArray) -> FloatArray:
    """Two-sided exact binomial p-value against 1/2 (doubling the smaller tail), vectorised.

    For Bin(n, 1/2) the distribution is symmetric, so doubling the smaller tail equals the usual
    "as or less likely" definition used by scipy.stats.binomtest.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    lower = stats.binom.cdf(k, n, 0.5)
    upper = stats.binom.sf(k - 1, n, 0.5)
    p = np.minimum(1.0, 2.0 * np.minimum(lower, upper))
    return np.where(n > 0, p, 1.0)


def binom_upper_p(k: IntArray, n: IntArray, p0: float | FloatArray) -> FloatArray:
    """P(X >= k) for X ~ Bin(n, p0), vectorised; 1 where k <= 0."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    return np.where(k > 0, stats.binom.sf(k - 1, n, p0), 1.0)


def poisson_binomial_sf(cell: IntArray, q: FloatArray, observed: IntArray, n_cells: int) -> FloatArray:
    """P(W_c >= observed_c) where W_c is the number of successes among the Bernoulli(q_i) with cell_i == c.

    Exact dynamic programming, vectorised over cells of similar size (cells are bucketed by size into
    powers of two and padded with q = 0, which adds no successes). Cells with more than 4096 terms (a
    single voter with thousands of votes on one model) fall back to the saddlepoint approximation with a
    continuity correction. Cells with no terms get 1.0 when observed <= 0, else 0.0.
    """
    cell = np.asarray(cell, dtype=np.int64)
    q = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
    observed = np.asarray(observed, dtype=np.int64)
    out = np.where(observed <= 0, 1.0, 0.0)
    if cell.size == 0:
        return out
    order = np.argsort(cell, kind="stable")
    cell_sorted, q_sorted = cell[order], q[order]
    sizes = np.bincount(cell_sorted, minlength=n_cells)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    position = np.arange(cell_sorted.size) - starts[cell_sorted]
    active = (sizes > 0) & (observed > 0)
    big = active & (sizes > _EXACT_MAX_TERMS)
    if big.any():
        out[big] = _poisson_binomial_sf_saddle(cell_sorted, q_sorted, observed, big, n_cells)
    for width in _size_buckets(int(sizes[active & ~big].max(initial=0))):
        chosen = active & ~big & (sizes <= width) & (sizes > width // 2)
        if chosen.any():
            out[chosen] = _poisson_binomial_sf_block(cell_sorted, q_sorted, position, observed, chosen, width)
    return out


def _size_buckets(largest: int) -> list[int]:
    widths, width = [], 1
    while width < largest:
        widths.append(width)
        width *= 2
    if largest > 0:
        widths.append(width)
    return widths


def _poisson_binomial_sf_block(
    cell_sorted: IntArray,
    q_sorted: FloatArray,
    position: IntArray,
    observed: IntArray,
    chosen: BoolArray,
    width: int,
) -> FloatArray:
    """Exact tails for the chosen cells, all with at most `width` terms, as one padded matrix DP.

    Only counts up to the largest observed one matter, so the DP keeps states 0..cap with the last one
    absorbing ("cap or more"): a cell with thousands of terms costs its observed count, not its size.
    """
    cells = np.flatnonzero(chosen)
    row_of = np.full(chosen.size, -1, dtype=np.int64)
    row_of[cells] = np.arange(cells.size)
    take = row_of[cell_sorted] >= 0
    matrix = np.zeros((cells.size, width))
    matrix[row_of[cell_sorted[take]], position[take]] = q_sorted[take]
    need = observed[cells]
    cap = int(min(width, max(int(need.max()), 1)))
    dist = np.zeros((cells.size, cap + 1))
    dist[:, 0] = 1.0
    for column in range(width):
        qc = matrix[:, column : column + 1]
        top = min(column, cap)  # states that can hold mass before this column
        moved = dist[:, : top + 1] * qc
        dist[:, : top + 1] -= moved
        dist[:, 1 : top + 2] += moved[:, : min(top + 1, cap)]
        if top == cap:
            dist[:, cap] += moved[:, cap]  # "cap or more" stays there on a success
    tail = np.cumsum(dist[:, ::-1], axis=1)[:, ::-1]
    out = tail[np.arange(cells.size), np.clip(need, 0, cap)]
    return np.clip(np.where(need > width, 0.0, out), 0.0, 1.0)


def _poisson_binomial_sf_saddle(
    cell_sorted: IntArray, q_sorted: FloatArray, observed: IntArray, chosen: BoolArray, n_cells: int
) -> FloatArray:
    take = chosen[cell_sorted]
    upper, _ = weighted_bernoulli_tails(
        group=cell_sorted[take],
        weight=np.ones(int(take.sum())),
        prob=q_sorted[take],
        observed=observed.astype(np.float64) - 0.5,
        n_groups=n_cells,
    )
    return upper[chosen]


def weighted_bernoulli_tails(
    group: IntArray, weight: FloatArray, prob: FloatArray, observed: FloatArray, n_groups: int
) -> tuple[FloatArray, FloatArray]:
    """Upper and lower tails of T_g = sum_i weight_i * B_i (B_i ~ Bernoulli(prob_i), weight_i >= 0).

    Returns (P(T_g >= observed_g), P(T_g <= observed_g)) per group by the Lugannani-Rice saddlepoint
    formula, which keeps relative accuracy far into the tails where the normal approximation fails. At the
    extremes (every B_i = 1 or every B_i = 0) the tails are computed exactly as products. Groups with no
    terms get (1, 1).
    """
    group = np.asarray(group, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    prob = np.clip(np.asarray(prob, dtype=np.float64), 1e-12, 1 - 1e-12)
    observed = np.asarray(observed, dtype=np.float64)
    top = np.bincount(group, weights=weight, minlength=n_groups)
    mean = np.bincount(group, weights=weight * prob, minlength=n_groups)
    var = np.bincount(group, weights=weight**2 * prob * (1 - prob), minlength=n_groups)
    log_all_one = np.bincount(group, weights=np.log(prob) * (weight > 0), minlength=n_groups)
    log_all_zero = np.bincount(group, weights=np.log1p(-prob) * (weight > 0), minlength=n_groups)
    tol = 1e-9 * np.maximum(top, 1.0)
    # At the extremes the answer is an exact product (below), and the saddlepoint runs off to infinity.
    x = np.where((observed > tol) & (observed < top - tol), observed, mean)
    s = _solve_saddlepoint(group, weight, prob, x, n_groups, mean, var)
    cgf, curvature = _cgf(group, weight, prob, s, n_groups)
    upper, lower = _lugannani_rice(s, cgf, curvature, x, mean, var)
    has_terms = var > 0
    upper = np.where(observed >= top - tol, np.exp(log_all_one), upper)
    upper = np.where(observed <= tol, 1.0, upper)
    lower = np.where(observed <= tol, np.exp(log_all_zero), lower)
    lower = np.where(observed >= top - tol, 1.0, lower)
    upper = np.where(has_terms, np.clip(upper, 0.0, 1.0), 1.0)
    lower = np.where(has_terms, np.clip(lower, 0.0, 1.0), 1.0)
    return upper, lower


def _cgf(
    group: IntArray, weight: FloatArray, prob: FloatArray, s: FloatArray, n_groups: int
) -> tuple[FloatArray, FloatArray]:
    """Cumulant generating function K(s) and K''(s) of T_g at per-group s."""
    shift = s[group] * weight
    logit = special.logit(prob)
    term = np.logaddexp(np.log1p(-prob), np.log(prob) + shift)
    tilted = special.expit(logit + shift)
    cgf = np.bincount(group, weights=term, minlength=n_groups)
    curvature = np.bincount(group, weights=weight**2 * tilted * (1 - tilted), minlength=n_groups)
    return cgf, curvature


def _solve_saddlepoint(
    group: IntArray,
    weight: FloatArray,
    prob: FloatArray,
    target: FloatArray,
    n_groups: int,
    mean: FloatArray,
    var: FloatArray,
) -> FloatArray:
    """Solve K'(s) = target per group by safeguarded Newton (K' is increasing, so bisection is a backstop).

    Groups drop out of the iteration as they converge, so the few slow ones (an observation a hair from an
    extreme) do not cost a pass over every vote.
    """
    logit = special.logit(prob)
    s = np.where(var > 0, np.clip((target - mean) / np.maximum(var, 1e-300), -5.0, 5.0), 0.0)
    lo = np.full(n_groups, -np.inf)
    hi = np.full(n_groups, np.inf)
    live = np.flatnonzero(var > 0)
    entries = np.flatnonzero(var[group] > 0)
    for _ in range(100):
        if live.size == 0:
            break
        g = group[entries]
        tilted = special.expit(logit[entries] + s[g] * weight[entries])
        slope = np.bincount(g, weights=weight[entries] * tilted, minlength=n_groups)[live]
        curv = np.bincount(g, weights=weight[entries] ** 2 * tilted * (1 - tilted), minlength=n_groups)[live]
        gap = slope - target[live]
        lo[live] = np.where(gap < 0, s[live], lo[live])
        hi[live] = np.where(gap > 0, s[live], hi[live])
        proposal = s[live] - np.clip(gap / np.maximum(curv, 1e-300), -4.0, 4.0)
        low, high = lo[live], hi[live]
        inside = (proposal > low) & (proposal < high)
        bracketed = np.isfinite(low) & np.isfinite(high)
        middle = 0.5 * (np.where(bracketed, low, 0.0) + np.where(bracketed, high, 0.0))
        new_s = np.where(inside | ~bracketed, proposal, middle)
        done = np.abs(new_s - s[live]) < 1e-10 * (1 + np.abs(s[live]))
        s[live] = new_s
        live = live[~done]
        entries = entries[np.isin(group[entries], live)]
    return s


def _lugannani_rice(
    s: FloatArray, cgf: FloatArray, curvature: FloatArray, x: FloatArray, mean: FloatArray, var: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Lugannani-Rice tails; near the mean (where the formula is 0/0) the normal approximation suffices."""
    w = np.sign(s) * np.sqrt(np.maximum(2.0 * (s * x - cgf), 0.0))
    u = s * np.sqrt(np.maximum(curvature, 1e-300))
    near = (np.abs(w) < 1e-3) | (np.abs(u) < 1e-6)
    safe_w = np.where(near, 1.0, w)
    safe_u = np.where(near, 1.0, u)
    correction = stats.norm.pdf(safe_w) * (1.0 / safe_u - 1.0 / safe_w)
    upper = stats.norm.sf(safe_w) + correction
    lower = stats.norm.cdf(safe_w) - correction
    z = (x - mean) / np.sqrt(np.maximum(var, 1e-300))
    upper = np.where(near, stats.norm.sf(z), upper)
    lower = np.where(near, stats.norm.cdf(z), lower)
    return upper, lower


def tarone_bonferroni(min_attainable: FloatArray, owner: IntArray, alpha: float, n_owners: int) -> FloatArray:
    """Per owner, the Tarone-Bonferroni count K: the smallest K >= 1 with #{cells: min p <= alpha/K} <= K.

    A discrete test that cannot reach significance even with the most extreme data (one win against an
    evenly matched model) should not eat into the Bonferroni budget; Tarone's rule counts only the
    testable hypotheses and remains a valid family-wise bound. With an owner's minimum attainable p-values
    sorted (s_1 <= s_2 <= ...), K works exactly when it covers every cell or s_{K+1} > alpha / K, and once
    K works every larger K does, so the answer is the first such K.
    """
    owner = np.asarray(owner, dtype=np.int64)
    cells = np.bincount(owner, minlength=n_owners).astype(np.float64)
    k = np.maximum(cells, 1.0)
    if owner.size == 0:
        return k
    order = np.lexsort((min_attainable, owner))
    sorted_owner = owner[order]
    starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
    rank = np.arange(owner.size) - np.repeat(starts, np.diff(np.r_[starts, owner.size])) + 1
    candidate = rank - 1.0
    works = (rank >= 2) & (min_attainable[order] * np.maximum(candidate, 1.0) > alpha)
    np.minimum.at(k, sorted_owner[works], candidate[works])
    return k


def iid_product_tail(
    prob: FloatArray,
    weight: FloatArray,
    k_mass: FloatArray,
    bound: FloatArray,
    *,
    rest: FloatArray | None = None,
    step: float = 0.02,
    min_bound: float = 1e-12,
) -> FloatArray:
    """Per query i: an upper bound on sum_k k_mass[i, k - 1] * E[Q_k 1{Q_k <= bound_i}].

    Q_k is the product of k iid draws, each `prob[j]` with probability `weight[j]` (weights sum to 1,
    probabilities in (0, 1]); `k_mass[i]` gives the chance of k = 1..K (one column each) and `rest[i]` that
    of any k > K. E[Q_k 1{Q_k <= b}] is the chance, averaged over which values are drawn, that k events of
    those probabilities all happen and their joint probability is at most b; mixed over k it is the
    false-positive rate of "flag when every event happened and their product is at most the bound" for a
    voter whose battles, and how many of them involve the model, were dealt at random.

    Computed as k-fold convolutions of the measure sum_j weight_j prob_j delta(log prob_j) on a grid of
    `step` in log space. Every log probability is rounded down to the grid, which can only make products
    look smaller, so more of the mass falls under each bound: the result never underestimates. Mass beyond
    the most extreme bound asked about is folded into one bin (logs only decrease as factors are added).
    Each term is also capped by two exact bounds, E[Q_k] = (sum_j weight_j prob_j)^k and the bound itself;
    k > K, and queries with a bound under `min_bound`, get those alone (they are tiny there anyway).
    """
    prob = np.clip(np.asarray(prob, dtype=np.float64), 1e-300, 1.0)
    weight = np.asarray(weight, dtype=np.float64)
    k_mass = np.atleast_2d(np.asarray(k_mass, dtype=np.float64))
    bound = np.clip(np.asarray(bound, dtype=np.float64), 1e-300, 1.0)
    mean = float(np.dot(weight, prob))
    powers = np.arange(1, k_mass.shape[1] + 1, dtype=np.float64)
    values = np.minimum(bound[:, None], mean ** powers[None, :])
    exact = (bound >= min_bound) & k_mass.any(axis=1)
    if exact.any():
        # Products rounded down to the grid are <= bound exactly when their bin is >= need.
        need = np.ceil(-np.log(bound[exact]) / step - 1e-9).astype(np.int64)
        top = int(need.max())
        kernel = np.zeros(top + 1)
        # Bin d holds log values in [-d step, -(d - 1) step): a factor's log rounded down is -d step.
        np.add.at(kernel, np.minimum(np.ceil(-np.log(prob) / step).astype(np.int64), top), weight * prob)
        dist = np.zeros(top + 1)
        dist[0] = 1.0
        used = np.flatnonzero(k_mass[exact].any(axis=0))
        rows = np.flatnonzero(exact)
        for power in range(1, int(used.max()) + 2):
            full = np.convolve(dist, kernel)
            dist = full[: top + 1].copy()
            dist[top] += full[top + 1 :].sum()
            tail = np.cumsum(dist[::-1])[::-1]
            values[rows, power - 1] = np.minimum(values[rows, power - 1], tail[need])
    out = (k_mass * values).sum(axis=1)
    if rest is not None:
        out = out + np.asarray(rest, dtype=np.float64) * np.minimum(bound, mean ** (powers.size + 1.0))
    return np.clip(out, 0.0, 1.0)
