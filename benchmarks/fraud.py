"""Vote-integrity benchmark: how well `ranking.engine.fraud.fraud_scan` catches bad voters, and what it saves.

    python benchmarks/fraud.py [--seed 0] [--models 40] [--spread 150] [--voters 20000] [--quick]

World: `--models` models whose true ratings are normal quantiles with standard deviation `--spread` Elo
(150 spans about 600 points, like the public text leaderboard from its oldest to its newest models), pairs
drawn uniformly, positions random. Honest voters follow Bradley-Terry on the true ratings with their own tie
habit (Beta(2, 5), ~29% ties), heavy-tailed activity (log-normal, median 4 votes, a few hundred for the
keenest), their own reading speed, sessions over 30 days, home or shared networks (carrier NAT, campus),
mostly unique device fingerprints and prompts (some popular prompts, some re-asked).

Bad voters: always-left; random clicker (left or right, 50/50); target booster (votes for the target whenever
it appears, honestly otherwise); bot speed (a booster bot clicking within 2 s of the outputs); ring (20
booster accounts on one /24); ranking-copier (picks the model ranked higher on the public board, except for
the target); and, for the rank experiments, a target-only booster (votes only in the target's battles).
The target is the lowest-ranked model. Detectors never see labels; the benchmark only scores them.

Printed: per behaviour, recall after each bad voter's first 50 and 200 votes with the honest false-positive
rate of the same scan (all honest voters, and those with >= 50 votes); the Neyman-Pearson oracle bound for
random clickers and boosters (true ratings, known attack and target) at 1% honest FPR and at the share of
the budget the detector spends on that behaviour, to show whether any detector could meet a target; the
target's rank move without and with defences for attack budgets of 1,000 and 10,000 votes (accounts of
50 votes); and the 10%-random-votes experiment, where each draw also adds as many votes from extra
*honest* voters instead (the noise floor: how far sampling alone moves models) and every move is
measured on the plain rank and on rank (UB), the rank the public board shows.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ranking.engine.bt import fit_bt
from ranking.engine.fraud import DEFAULT_CONFIG, FraudReport, VoteArrays, fraud_scan
from ranking.engine.gauge import provisional_models
from ranking.engine.leaderboard import leaderboard_from_counts
from ranking.engine.pairs import aggregate_pairs

DAY = 86400.0
HORIZON_DAYS = 30.0
BEHAVIOURS = ("always-left", "random", "booster", "bot-speed", "ring", "copier")
RING_SIZE = 20


@dataclass(frozen=True)
class World:
    """True ratings (Elo points, index 0 the weakest)."""

    elo: np.ndarray

    @property
    def n_models(self) -> int:
        return int(self.elo.size)

    def p_a_wins(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + 10.0 ** ((self.elo[b] - self.elo[a]) / 400.0))


@dataclass
class Batch:
    """Columns of simulated votes (one row per vote) plus the ground-truth behaviour label per vote."""

    voter: np.ndarray
    model_a: np.ndarray
    model_b: np.ndarray
    outcome: np.ndarray
    network: np.ndarray
    ip: np.ndarray
    device: np.ndarray
    seconds: np.ndarray
    timestamp: np.ndarray
    prompt: np.ndarray

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        return Batch(*(np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(Batch)))

    def take(self, mask: np.ndarray) -> Batch:
        return Batch(*(getattr(self, f.name)[mask] for f in fields(Batch)))

    def votes(self, n_models: int) -> VoteArrays:
        return VoteArrays(
            voter=self.voter,
            model_a=self.model_a,
            model_b=self.model_b,
            outcome=self.outcome,
            n_models=n_models,
            network=self.network,
            ip=self.ip,
            device=self.device,
            seconds_to_vote=self.seconds,
            timestamp=self.timestamp,
            prompt=self.prompt,
        )


class Simulator:
    """Draws honest and bad voters into one world; ids never collide between calls."""

    def __init__(self, world: World, seed: int, taste_sd: float = 0.0) -> None:
        self.world = world
        self.taste_sd = taste_sd
        self.rng = np.random.default_rng(seed)
        self.next_voter = 0
        self.next_prompt = 10_000
        self.next_network = 2_000_000

    # -- shared pieces ------------------------------------------------------------------------------------

    def _voters(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.arange(self.next_voter, self.next_voter + counts.size)
        self.next_voter += counts.size
        return ids, np.repeat(ids, counts)

    def _pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.world.n_models
        a = self.rng.integers(0, m, n)
        return a, (a + self.rng.integers(1, m, n)) % m

    def _honest_outcome(
        self, a: np.ndarray, b: np.ndarray, tie_rate: np.ndarray, taste: np.ndarray | None = None
    ) -> np.ndarray:
        """Bradley-Terry on the true ratings, shifted by the voter's own taste (Elo per model) if given."""
        shift = 0.0 if taste is None else taste[:, 0] - taste[:, 1]
        p = 1.0 / (1.0 + 10.0 ** ((self.world.elo[b] - self.world.elo[a] - shift) / 400.0))
        win = (self.rng.random(a.size) < p).astype(np.float64)
        return np.where(self.rng.random(a.size) < tie_rate, 0.5, win)

    def _human_seconds(self, voter_rows: np.ndarray, n_voters: int) -> np.ndarray:
        median = 12.0 * np.exp(0.4 * self.rng.standard_normal(n_voters))
        return median[voter_rows] * np.exp(0.7 * self.rng.standard_normal(voter_rows.size))

    def _timestamps(
        self, voter_rows: np.ndarray, n_voters: int, seconds: np.ndarray, gap: np.ndarray
    ) -> np.ndarray:
        start = self.rng.uniform(0, HORIZON_DAYS * DAY, n_voters)
        total = np.cumsum(gap + seconds)
        first = np.r_[True, voter_rows[1:] != voter_rows[:-1]]
        offset = np.maximum.accumulate(np.where(first, total - (gap + seconds), 0.0))
        return start[voter_rows] + total - offset

    def _human_gaps(self, n: int, session_break: float) -> np.ndarray:
        gaps = 20.0 + self.rng.exponential(15.0, n)
        breaks = self.rng.random(n) < session_break
        return np.where(breaks, self.rng.exponential(DAY, n), gaps)

    def _prompts(self, voter_rows: np.ndarray) -> np.ndarray:
        n = voter_rows.size
        fresh = np.arange(self.next_prompt, self.next_prompt + n)
        self.next_prompt += n
        popular = np.minimum(self.rng.zipf(1.6, n), 2000) - 1
        draw = self.rng.random(n)
        prompt = np.where(draw < 0.15, popular, fresh)
        first = np.r_[True, voter_rows[1:] != voter_rows[:-1]]
        repeat = (draw > 0.9) & ~first
        source = np.maximum.accumulate(np.where(repeat, 0, np.arange(n)))
        return prompt[source]

    def _own_networks(self, n_voters: int) -> np.ndarray:
        ids = np.arange(self.next_network, self.next_network + n_voters)
        self.next_network += n_voters
        return ids

    # -- populations ---------------------------------------------------------------------------------------

    def honest(self, n_voters: int, activity: np.ndarray | None = None) -> tuple[Batch, np.ndarray]:
        """Honest voters; returns the batch and the voter ids."""
        rng = self.rng
        counts = activity if activity is not None else self.activity(n_voters)
        ids, rows = self._voters(counts)
        local = rows - ids[0]
        a, b = self._pairs(rows.size)
        tie_rate = rng.beta(2.0, 5.0, n_voters)[local]
        taste = None
        if self.taste_sd > 0:
            own = rng.normal(0.0, self.taste_sd, (n_voters, self.world.n_models))
            taste = np.stack([own[local, a], own[local, b]], axis=1)
        outcome = self._honest_outcome(a, b, tie_rate, taste)
        seconds = self._human_seconds(local, n_voters)
        timestamp = self._timestamps(local, n_voters, seconds, self._human_gaps(rows.size, 0.2))
        shared = rng.random(n_voters) < 0.35
        shared_net = np.minimum(rng.zipf(1.3, n_voters), 500) - 1
        network = np.where(shared, shared_net, self._own_networks(n_voters))
        ip = np.where(shared, shared_net * 16 + rng.integers(0, 16, n_voters), 1_000_000_000 + ids)
        common = rng.random(n_voters) < 0.08
        device = np.where(common, np.minimum(rng.zipf(1.5, n_voters), 40) - 1, 1_000_000 + ids)
        batch = Batch(
            rows,
            a,
            b,
            outcome,
            network[local],
            ip[local],
            device[local],
            seconds,
            timestamp,
            self._prompts(rows),
        )
        return batch, ids

    def activity(self, n_voters: int) -> np.ndarray:
        """Votes per voter: most vote a few times, a few vote hundreds of times."""
        return np.clip(np.rint(self.rng.lognormal(np.log(4.0), 1.3, n_voters)), 1, 2000).astype(np.int64)

    def bad(
        self,
        behaviour: str,
        n_accounts: int,
        votes_each: int,
        target: int,
        board: np.ndarray,
        one_network: bool = False,
    ) -> tuple[Batch, np.ndarray]:
        """Bad accounts of one behaviour, `votes_each` votes each, in time order per account."""
        rng = self.rng
        counts = np.full(n_accounts, votes_each, dtype=np.int64)
        ids, rows = self._voters(counts)
        local = rows - ids[0]
        n = rows.size
        a, b = self._pairs(n)
        if behaviour == "target-only":
            other = (target + rng.integers(1, self.world.n_models, n)) % self.world.n_models
            left = rng.random(n) < 0.5
            a, b = np.where(left, target, other), np.where(left, other, target)
        outcome = self._bad_outcome(behaviour, a, b, target, board, local, n_accounts)
        bot = behaviour == "bot-speed"
        seconds = rng.uniform(0.2, 2.0, n) if bot else self._human_seconds(local, n_accounts)
        gaps = 10.0 + rng.uniform(0.0, 10.0, n) if bot else self._human_gaps(n, 0.05)
        timestamp = self._timestamps(local, n_accounts, seconds, gaps)
        network, ip = self._bad_networks(behaviour, n_accounts, one_network)
        device = 500_000_000 + ids
        batch = Batch(
            rows,
            a,
            b,
            outcome,
            network[local],
            ip[local],
            device[local],
            seconds,
            timestamp,
            self._prompts(rows),
        )
        return batch, ids

    def _bad_outcome(
        self,
        behaviour: str,
        a: np.ndarray,
        b: np.ndarray,
        target: int,
        board: np.ndarray,
        local: np.ndarray,
        n_accounts: int,
    ) -> np.ndarray:
        n = a.size
        honest = self._honest_outcome(a, b, self.rng.beta(2.0, 5.0, n_accounts)[local])
        for_target = np.where(a == target, 1.0, 0.0)
        has_target = (a == target) | (b == target)
        if behaviour == "always-left":
            return np.ones(n)
        if behaviour == "random":
            return (self.rng.random(n) < 0.5).astype(np.float64)
        if behaviour == "copier":
            return np.where(has_target, for_target, (board[a] > board[b]).astype(np.float64))
        if behaviour in ("booster", "bot-speed", "ring", "target-only"):
            return np.where(has_target, for_target, honest)
        raise ValueError(behaviour)

    def _bad_networks(
        self, behaviour: str, n_accounts: int, one_network: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Own network per account; a ring shares one /24 per 20 accounts; `one_network` puts all on one."""
        if behaviour != "ring" and not one_network:
            network = self._own_networks(n_accounts)
            return network, 3_000_000_000 + network
        group = np.zeros(n_accounts, dtype=np.int64) if one_network else np.arange(n_accounts) // RING_SIZE
        shared = self._own_networks(int(group.max()) + 1)
        network = shared[group]
        return network, network * 8 + self.rng.integers(0, 8, n_accounts)


# -- measurements --------------------------------------------------------------------------------------------


def ranks(theta: np.ndarray) -> np.ndarray:
    """1 for the best model."""
    order = np.argsort(-theta, kind="stable")
    out = np.empty(theta.size, dtype=np.int64)
    out[order] = np.arange(1, theta.size + 1)
    return out


def board_ranks(batch: Batch, n_models: int, keep: np.ndarray | None = None) -> np.ndarray:
    """The public leaderboard's order: the ranking engine's Bradley-Terry fit, ties as half a win."""
    mask = np.ones(batch.voter.size, dtype=bool) if keep is None else keep
    counts = aggregate_pairs(batch.model_a[mask], batch.model_b[mask], batch.outcome[mask], n_models)
    return ranks(fit_bt(counts, provisional_models(counts)).theta)


def board_rank_ub(batch: Batch, n_models: int, keep: np.ndarray | None = None) -> np.ndarray:
    """The public board's rank (UB): 1 + the models whose 95% interval lies wholly above (sandwich CIs)."""
    mask = np.ones(batch.voter.size, dtype=bool) if keep is None else keep
    counts = aggregate_pairs(batch.model_a[mask], batch.model_b[mask], batch.outcome[mask], n_models)
    rows = leaderboard_from_counts(counts, [str(m) for m in range(n_models)]).rows
    out = np.zeros(n_models, dtype=np.int64)
    for row in rows:
        out[int(row.model)] = row.rank_ub
    return out


@dataclass
class ScanResult:
    recall: float
    fpr_all: float
    fpr_active: float
    seconds: float
    reasons: dict[str, int]


def scan(batch: Batch, setup: Setup, bad_ids: np.ndarray) -> tuple[ScanResult, FraudReport]:
    """Scan honest + bad votes; score recall on the bad accounts and false positives on the honest ones."""
    started = time.perf_counter()
    report = fraud_scan(batch.votes(setup.world.n_models))
    elapsed = time.perf_counter() - started
    flagged_bad = np.isin(bad_ids, report.flagged_ids)
    flagged_honest = np.isin(setup.honest_ids, report.flagged_ids)
    reasons: dict[str, int] = {}
    for flag in report.flagged_voters():
        if flag.voter >= setup.honest_ids.size:
            for key in {reason.split(":")[0] for reason in flag.reasons}:
                reasons[key] = reasons.get(key, 0) + 1
    result = ScanResult(
        recall=float(flagged_bad.mean()) if bad_ids.size else float("nan"),
        fpr_all=float(flagged_honest.mean()),
        fpr_active=float(flagged_honest[setup.honest_active].mean()),
        seconds=elapsed,
        reasons=reasons,
    )
    return result, report


def first_votes(batch: Batch, bad_ids: np.ndarray, horizon: int) -> Batch:
    """Honest votes plus each bad account's first `horizon` votes (accounts vote in time order)."""
    is_bad = np.isin(batch.voter, bad_ids)
    order = np.lexsort((batch.timestamp, batch.voter))
    sorted_voter = batch.voter[order]
    starts = np.flatnonzero(np.r_[True, sorted_voter[1:] != sorted_voter[:-1]])
    rank = np.empty(batch.voter.size, dtype=np.int64)
    rank[order] = np.arange(sorted_voter.size) - np.repeat(starts, np.diff(np.r_[starts, sorted_voter.size]))
    return batch.take(~is_bad | (rank < horizon))


def oracle_recall(
    setup: Setup, behaviour: str, horizon: int, fprs: tuple[float, ...], observed: Batch | None = None
) -> tuple[list[float], list[float]]:
    """Recall of the most powerful test at each honest FPR (true ratings, attack and target known), on
    freshly simulated accounts and on `observed` (the benchmark's own accounts' first `horizon` votes).

    Random clicker vs honest: likelihood ratio prod 1 / (2 p(y)) over decisive votes, against honest voters
    with as many decisive votes (how often a voter ties is left out: a random clicker could tie as often
    as anyone, and the detectors do not use it). Booster vs honest: the votes outside the target's battles
    are identically distributed, so the ratio is prod 1 / P(target wins) over the target's battles when the
    target won them all, and zero otherwise; its threshold is averaged over which battles honest voters
    happened to get. No real detector knows the target or the true ratings, so this bounds what any
    detector can reach at that FPR; on the benchmark's own accounts it also shows how lucky they were.
    """
    n = 20000
    if behaviour == "random":
        h, b = _random_oracle_stats(setup, n, horizon)
        seen = None if observed is None else _random_oracle_stat(setup, observed)
    else:
        honest, _ = setup.sim.honest(n, np.full(n, horizon, dtype=np.int64))
        bad, _ = setup.sim.bad(behaviour, n, horizon, setup.target, setup.board)
        h, b = _booster_oracle_stat(setup, honest), _booster_oracle_stat(setup, bad)
        seen = None if observed is None else _booster_oracle_stat(setup, observed)
    thresholds = [np.quantile(h, 1.0 - fpr, method="higher") for fpr in fprs]
    simulated = [float(np.mean(b > t)) for t in thresholds]
    return simulated, ([] if seen is None else [float(np.mean(seen > t)) for t in thresholds])


def _random_oracle_stats(setup: Setup, n: int, decisive: int) -> tuple[np.ndarray, np.ndarray]:
    """Log likelihood ratios (random over honest) of honest voters and of random clickers, `decisive`
    votes each."""
    rng = setup.sim.rng
    out = []
    for honest in (True, False):
        a, b = setup.sim._pairs(n * decisive)
        p_a = setup.world.p_a_wins(a, b)
        left = rng.random(a.size) < (p_a if honest else 0.5)
        p_y = np.where(left, p_a, 1.0 - p_a)
        out.append((-np.log(2.0 * p_y)).reshape(n, decisive).sum(axis=1))
    return out[0], out[1]


def _random_oracle_stat(setup: Setup, batch: Batch) -> np.ndarray:
    """The same log likelihood ratio per voter of a batch, over its decisive votes."""
    _, local = np.unique(batch.voter, return_inverse=True)
    p_a = setup.world.p_a_wins(batch.model_a, batch.model_b)
    p_y = np.where(batch.outcome == 1.0, p_a, 1.0 - p_a)
    return np.bincount(local, weights=np.where(batch.outcome != 0.5, -np.log(2.0 * p_y), 0.0))


def _booster_oracle_stat(setup: Setup, batch: Batch) -> np.ndarray:
    _, local = np.unique(batch.voter, return_inverse=True)
    n = int(local.max()) + 1
    p_a = setup.world.p_a_wins(batch.model_a, batch.model_b)
    target = setup.target
    has_target = (batch.model_a == target) | (batch.model_b == target)
    q = np.where(batch.model_a == target, p_a, 1.0 - p_a)
    target_won = np.where(batch.model_a == target, batch.outcome == 1.0, batch.outcome == 0.0)
    lost = np.bincount(local, weights=has_target & ~target_won, minlength=n) > 0
    score = np.bincount(local, weights=np.where(has_target, -np.log(q), 0.0), minlength=n)
    return np.where(lost, -np.inf, score)


# -- experiments ---------------------------------------------------------------------------------------------


@dataclass
class Setup:
    world: World
    sim: Simulator
    honest: Batch
    honest_ids: np.ndarray
    honest_active: np.ndarray  # per honest voter: cast at least 50 votes
    target: int
    board: np.ndarray  # public board strengths from the honest votes (what a copier reads)
    honest_ranks: np.ndarray


def make_setup(seed: int, n_models: int, spread: float, n_voters: int, taste: float = 0.0) -> Setup:
    elo = 1200.0 + spread * stats.norm.ppf((np.arange(n_models) + 0.5) / n_models)
    world = World(elo)
    sim = Simulator(world, seed, taste)
    honest, honest_ids = sim.honest(n_voters)
    counts = aggregate_pairs(honest.model_a, honest.model_b, honest.outcome, n_models)
    board = fit_bt(counts, provisional_models(counts)).theta
    honest_ranks = ranks(board)
    active = np.bincount(honest.voter - honest_ids[0], minlength=honest_ids.size) >= 50
    target = int(np.argmax(honest_ranks))  # the lowest-ranked model on the public board
    return Setup(world, sim, honest, honest_ids, active, target, board, honest_ranks)


def recall_experiment(
    setup: Setup, accounts: int
) -> tuple[dict[str, dict[int, ScanResult]], dict[str, Batch]]:
    """Per behaviour: `accounts` bad accounts, scanned after their first 50 and first 200 votes. Also returns
    each behaviour's accounts' first 50 votes, for the oracle on the same accounts."""
    out: dict[str, dict[int, ScanResult]] = {}
    early: dict[str, Batch] = {}
    for behaviour in BEHAVIOURS:
        bad, bad_ids = setup.sim.bad(behaviour, accounts, 200, setup.target, setup.board)
        full = Batch.concat([setup.honest, bad])
        early[behaviour] = first_votes(bad, bad_ids, 50)
        out[behaviour] = {}
        for horizon in (50, 200):
            result, _ = scan(first_votes(full, bad_ids, horizon), setup, bad_ids)
            out[behaviour][horizon] = result
            print(
                f"  {behaviour:12s} after {horizon:3d} votes: recall {result.recall:6.1%}, honest FPR"
                f" {result.fpr_all:.2%} (>= 50 votes: {result.fpr_active:.2%}), {result.seconds:.1f}s,"
                f" reasons {dict(sorted(result.reasons.items()))}",
                flush=True,
            )
    return out, early


@dataclass(frozen=True)
class Attack:
    behaviour: str
    budget: int
    votes_each: int
    one_network: bool = False

    @property
    def label(self) -> str:
        where = ", one /24" if self.one_network else ""
        return f"{self.behaviour} ({self.votes_each}/acct{where})"


@dataclass
class RankMove:
    target_without: int
    target_with: int
    max_without: int
    max_with: int
    caught: float


def rank_experiment(setup: Setup, attack: Attack) -> RankMove:
    """Honest votes plus `attack.budget` attack votes: rank moves against the honest-only board."""
    accounts = max(1, attack.budget // attack.votes_each)
    bad, bad_ids = setup.sim.bad(
        attack.behaviour, accounts, attack.votes_each, setup.target, setup.board, attack.one_network
    )
    batch = Batch.concat([setup.honest, bad])
    m = setup.world.n_models
    result, report = scan(batch, setup, bad_ids)
    without = board_ranks(batch, m)
    with_defence = board_ranks(batch, m, ~report.vote_excluded)
    base = setup.honest_ranks
    return RankMove(
        target_without=int(base[setup.target] - without[setup.target]),
        target_with=int(base[setup.target] - with_defence[setup.target]),
        max_without=int(np.abs(base - without).max()),
        max_with=int(np.abs(base - with_defence).max()),
        caught=result.recall,
    )


def rank_attacks() -> list[Attack]:
    attacks = [Attack(b, budget, 50) for b in (*BEHAVIOURS, "target-only") for budget in (1000, 10000)]
    attacks += [
        Attack("target-only", 1000, 10),
        Attack("target-only", 1000, 5),
        Attack("target-only", 1000, 1, one_network=True),
        Attack("target-only", 1000, 1),
    ]
    return attacks


def votes_to_lift_target(setup: Setup) -> int:
    """Fewest target-only votes (no defences) that lift the lowest model by one rank, by bisection."""
    m = setup.world.n_models
    bad, _ = setup.sim.bad("target-only", 1, 20000, setup.target, setup.board)
    index = np.arange(bad.voter.size)

    def lifted(k: int) -> bool:
        batch = Batch.concat([setup.honest, bad.take(index < k)])
        return bool(board_ranks(batch, m)[setup.target] < setup.honest_ranks[setup.target])

    low, high = 0, bad.voter.size
    if not lifted(high):
        return -1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if lifted(middle) else (middle, high)
    return high


@dataclass
class CarelessDraw:
    """One draw of the 10%-random-votes experiment. Moves are the largest |rank change| over all models
    against the honest-only board: (random votes without defences, with defences, an equal number of extra
    *honest* votes instead — the noise floor), on the plain rank and on rank (UB)."""

    random_votes: int
    excluded: float  # share of the random votes the scan left out
    untestable: float  # share of the random votes kept that came from accounts too light to test
    fpr: float
    rank: tuple[int, int, int]
    rank_ub: tuple[int, int, int]


def careless_experiment(setup: Setup, share: float) -> CarelessDraw:
    """Random clickers with honest-like activity until they cast `share` of all votes, and as many votes
    from extra honest voters with the same activity (what sampling noise alone does to the board)."""
    wanted = int(share / (1.0 - share) * setup.honest.voter.size)
    activity = setup.sim.activity(wanted)
    activity = activity[: int(np.searchsorted(np.cumsum(activity), wanted)) + 1]
    parts = [
        setup.sim.bad("random", int((activity == k).sum()), int(k), setup.target, setup.board)
        for k in np.unique(activity)
    ]
    extra, _ = setup.sim.honest(activity.size, activity)
    batch = Batch.concat([setup.honest, *(part for part, _ in parts)])
    more_honest = Batch.concat([setup.honest, extra])
    ids = np.concatenate([ids for _, ids in parts])
    m = setup.world.n_models
    result, report = scan(batch, setup, ids)
    keep = ~report.vote_excluded
    moves = []
    for board, base in ((board_ranks, setup.honest_ranks), (board_rank_ub, board_rank_ub(setup.honest, m))):
        moves.append(
            tuple(
                int(np.abs(base - board(b, m, k)).max())
                for b, k in ((batch, None), (batch, keep), (more_honest, None))
            )
        )
    random_votes = np.isin(batch.voter, ids)
    decisive = np.bincount(batch.voter, weights=batch.outcome != 0.5)[batch.voter]
    light = decisive < DEFAULT_CONFIG.min_decisive_votes
    kept = random_votes & keep
    return CarelessDraw(
        random_votes=int(random_votes.sum()),
        excluded=float((random_votes & report.vote_excluded).sum() / random_votes.sum()),
        untestable=float((kept & light).sum() / max(int(kept.sum()), 1)),
        fpr=result.fpr_all,
        rank=moves[0],  # type: ignore[arg-type]
        rank_ub=moves[1],  # type: ignore[arg-type]
    )


def careless_report(setup: Setup, label: str) -> None:
    print(f"  {label}:")
    print(
        "    random votes  excluded (kept: from untestable accounts)  honest FPR"
        "   max |rank move|: w/o  with  +honest   rank (UB): w/o  with  +honest"
    )
    draws = [careless_experiment(setup, 0.10) for _ in range(3)]
    for d in draws:
        print(
            f"    {d.random_votes:12d}  {d.excluded:8.0%} {d.untestable:33.0%}  {d.fpr:10.2%}"
            f"   {d.rank[0]:19d} {d.rank[1]:5d} {d.rank[2]:8d}   {d.rank_ub[0]:14d} {d.rank_ub[1]:5d}"
            f" {d.rank_ub[2]:8d}",
            flush=True,
        )
    for name, pick in (("rank", lambda d: d.rank), ("rank (UB)", lambda d: d.rank_ub)):
        defended, floor = max(pick(d)[1] for d in draws), max(pick(d)[2] for d in draws)
        verdict = "within" if defended <= floor else f"{defended - floor} above"
        print(
            f"    {name}: with defences up to {defended}, noise floor (as many extra honest votes) up to"
            f" {floor}: {verdict} the noise floor"
        )


# -- report --------------------------------------------------------------------------------------------------


def print_recall(recall: dict[str, dict[int, ScanResult]]) -> None:
    print("\n  behaviour      recall@50  recall@200   worst honest FPR: all / >= 50 votes")
    for behaviour, by_horizon in recall.items():
        fpr_all = max(r.fpr_all for r in by_horizon.values())
        fpr_active = max(r.fpr_active for r in by_horizon.values())
        print(
            f"  {behaviour:12s} {by_horizon[50].recall:10.1%} {by_horizon[200].recall:11.1%}"
            f"   {fpr_all:20.2%} / {fpr_active:6.2%}"
        )


def print_oracles(
    recall: dict[str, dict[int, ScanResult]], early: dict[str, Batch], setup: Setup, shares: dict[str, float]
) -> None:
    """The oracle next to the detector: at 1% honest FPR and at the share of the budget the detector spends
    on the behaviour, on simulated accounts and on the benchmark's own."""
    print(
        "\n  oracle (most powerful test knowing the true ratings, the attack and its target) at 1% honest FPR"
        "\n  | at the detector's share of the budget; simulated accounts, then the same accounts as above:"
    )
    for behaviour, share in shares.items():
        simulated, seen = oracle_recall(setup, behaviour, 50, (0.01, share), early[behaviour])
        (late,), _ = oracle_recall(setup, behaviour, 200, (0.01,))
        print(
            f"  {behaviour:8s} @50: detector {recall[behaviour][50].recall:5.1%};"
            f" oracle {simulated[0]:5.1%} | {simulated[1]:5.1%} (share {share:.2%}),"
            f" same accounts {seen[0]:5.1%} | {seen[1]:5.1%};  @200: detector"
            f" {recall[behaviour][200].recall:5.1%}, oracle {late:5.1%}"
        )


def print_moves(moves: dict[Attack, RankMove]) -> None:
    header = (
        "attack (target: lowest model)        budget"
        + "  target gain: w/o  with  max |move|: w/o  with  caught"
    )
    print(f"\n  {header}")
    for attack, move in moves.items():
        print(
            f"  {attack.label:36s} {attack.budget:7d}  {move.target_without:+15d} {move.target_with:+5d}"
            f"  {move.max_without:14d} {move.max_with:5d}  {move.caught:6.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--spread", type=float, default=150.0, help="sd of the true ratings, Elo points")
    parser.add_argument("--voters", type=int, default=20000, help="honest voters")
    parser.add_argument("--accounts", type=int, default=200, help="bad accounts per behaviour (recall)")
    parser.add_argument("--taste", type=float, default=0.0, help="sd (Elo) of each honest voter's own taste")
    parser.add_argument("--dense-models", type=int, default=100, help="models in the dense 10%%-random world")
    parser.add_argument("--dense-voters", type=int, default=50000, help="honest voters in the dense world")
    parser.add_argument("--quick", action="store_true", help="recall table only")
    args = parser.parse_args()
    started = time.perf_counter()
    setup = make_setup(args.seed, args.models, args.spread, args.voters, args.taste)
    print(
        f"World: {args.models} models (true sd {args.spread:.0f} Elo, range {np.ptp(setup.world.elo):.0f}),"
        f" {setup.honest_ids.size} honest voters casting {setup.honest.voter.size} votes"
        f" ({int(setup.honest_active.sum())} of them with >= 50 votes); target: the lowest-ranked model."
    )
    print(
        f"\n1. Recall: {args.accounts} accounts per behaviour, each scan = all honest voters + those accounts"
    )
    recall, early = recall_experiment(setup, args.accounts)
    print_recall(recall)
    c = DEFAULT_CONFIG
    print_oracles(
        recall, early, setup, {"random": c.alpha_likelihood_low, "booster": c.alpha_target + c.alpha_campaign}
    )
    if not args.quick:
        print("\n2. Rank moves of the target, attack accounts on their own networks unless stated")
        moves = {attack: rank_experiment(setup, attack) for attack in rank_attacks()}
        print_moves(moves)
        lift = votes_to_lift_target(setup)
        print(f"\n  target-only votes that lift the lowest model one rank without defences: {lift}")
        print("\n3. 10% random votes (random clickers with honest-like activity), three draws each")
        careless_report(setup, f"this world ({args.models} models)")
        dense = make_setup(args.seed + 1, args.dense_models, args.spread, args.dense_voters, args.taste)
        careless_report(
            dense, f"dense world ({args.dense_models} models, {dense.honest.voter.size} honest votes)"
        )
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
