"""Vote integrity: per-voter fraud signals combined into risk scores and flags (pure numpy/scipy, no Django).

Two entry points:

* `vote_time_risk(...)` — the cheap checks the vote endpoint can afford on every click (speed, rate caps,
  running position bias), from a few counters.
* `fraud_scan(votes)` — the periodic sweep: crowd Bradley-Terry ratings, every signal in
  `fraud_signals` and the campaign signal of `fraud_campaign`, leave-suspects-out refits (attackers bias
  the crowd ratings they are judged against), a flag decision per voter with short machine reasons, a
  risk per voter and per vote, and the votes to leave out of the leaderboard (stored, counted=False).

Thresholds are false-positive budgets under the honest-voter null, split across signals so that an
honest voter is flagged with probability under 1% (see FraudConfig). Public battle dumps are handled in
`fraud_dump` (reading, the `fraud_scan` command's JSON, `excluded_question_ids` for `rank --exclude-flagged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import fraud_signals as sig
from .fraud_campaign import campaigns
from .fraud_signals import SignalResult
from .fraud_stats import BoolArray, FloatArray, IntArray, binom_two_sided_p
from .fraud_votes import VoteArrays, crowd_theta

__all__ = [
    "FraudConfig",
    "FraudReport",
    "SignalResult",
    "VoteArrays",
    "VoteTimeRisk",
    "VoterFlag",
    "combine_risk",
    "compute_signals",
    "crowd_free_signals",
    "crowd_signals",
    "crowd_theta",
    "fraud_scan",
    "vote_time_risk",
]


@dataclass(frozen=True)
class FraudConfig:
    """Thresholds. Each alpha is that signal's share of the per-voter false-positive budget.

    The shares add up to 0.99% (plus the two ring tests' 0.1% chance each of one false ring per scan), so an
    honest voter who follows the crowd model is flagged with probability under 1% however many votes they
    cast; with few votes most tests cannot reach significance and the realised rate is lower (benchmark:
    0.1-0.4% of all honest voters; of 5,000 honest voters with 80 votes each, 0.6% without an attack and
    0.8-1.0% while a campaign runs). Voters whose tastes stray from the crowd's more than Bradley-Terry
    allows are flagged more often (benchmark with a 50-Elo personal taste: up to 1.5% of heavy voters);
    lowering alpha_likelihood_low buys headroom at the cost of random-clicker recall. Shares go where
    they buy recall:

    * the likelihood test's low tail (random clickers) gets 0.6%: it is the most powerful test against
      them for the battles the voter saw, and its power is steep in alpha (benchmark, 50 votes, true
      ratings: 84% at 0.2%, 89% at 0.4%, 91% at 0.6%, 93% at 1%);
    * boosters get 0.1% (the per-voter target test, searching every model) plus 0.2% for members of a
      campaign many accounts run for one model (`fraud_campaign`), which costs nothing when none runs;
    * the high tail (board copiers, whose recall comes within 200 votes at any share) 0.05%;
    * always-left and bot-speed voters are so extreme that 1e-4 costs them nothing; the published
      sequential tests are cross-checks with 5e-5 each, since the likelihood test dominates them.

    Rate and repeated-prompt rules are caps, not tests: an honest voter does not reach them.
    """

    alpha_position: float = 1e-4
    alpha_speed: float = 1e-4
    fast_seconds: float = 2.0
    fast_base_rate: float = 0.2
    min_fast_votes: int = 5
    alpha_likelihood_low: float = 6e-3
    alpha_likelihood_high: float = 5e-4
    min_decisive_votes: int = 10
    alpha_sequential: float = 5e-5
    sequential_looks: int = 5
    sequential_max_look: int = 100
    alpha_evalue: float = 5e-5
    alpha_target: float = 1e-3
    alpha_campaign: float = 2e-3
    alpha_campaign_select: float = 1e-3
    campaign_min_share: float = 0.5
    campaign_min_excess: float = 10.0
    alpha_ring: float = 1e-3
    ring_min_voters: int = 3
    ring_member_alpha: float = 0.25
    ring_dominance: float = 0.5
    ring_min_excess: float = 0.2
    rate_window_seconds: float = 3 * 3600.0
    rate_voter_cap: int = 100
    rate_ip_cap: int = 200
    rate_network_cap: int = 2000
    rate_ip_max_voters: int = 5
    alpha_prompts: float = 1e-4
    prompt_min_repeats: int = 8
    fast_vote_risk: float = 0.2
    duplicate_vote_risk: float = 0.5
    rounds: int = 3
    seed: int = 0


DEFAULT_CONFIG = FraudConfig()


def compute_signals(
    votes: VoteArrays, theta: FloatArray, history: BoolArray, config: FraudConfig = DEFAULT_CONFIG
) -> tuple[list[SignalResult], BoolArray]:
    """Every signal for every voter, plus the per-vote duplicate-prompt mask.

    `theta` are crowd strengths (natural-log Bradley-Terry units) and `history` the votes trusted as the
    crowd for the pair-history tests.
    """
    fixed, duplicate = crowd_free_signals(votes, config)
    return fixed + crowd_signals(votes, theta, history, config), duplicate


def crowd_free_signals(votes: VoteArrays, config: FraudConfig) -> tuple[list[SignalResult], BoolArray]:
    """Signals independent of the crowd model, computed once per scan: position, speed, rate, prompts."""
    c = config
    prompts, duplicate = sig.repeated_prompts(votes, c.alpha_prompts, c.prompt_min_repeats)
    signals = [
        sig.position_bias(votes, c.alpha_position),
        sig.bot_speed(votes, c.alpha_speed, c.fast_seconds, c.fast_base_rate, c.min_fast_votes),
        sig.rate(
            votes,
            c.rate_window_seconds,
            c.rate_voter_cap,
            c.rate_ip_cap,
            c.rate_network_cap,
            c.rate_ip_max_voters,
        ),
        prompts,
    ]
    return signals, duplicate


def crowd_signals(
    votes: VoteArrays, theta: FloatArray, history: BoolArray, config: FraudConfig
) -> list[SignalResult]:
    """Signals judged against the crowd (ratings or pair history), recomputed after every refit."""
    c = config
    boost, suppress = sig.target_concentration(votes, theta, c.alpha_target)
    campaign_boost, campaign_suppress = campaigns(
        votes,
        theta,
        alpha_select=c.alpha_campaign_select,
        alpha=c.alpha_campaign,
        min_share=c.campaign_min_share,
        min_excess=c.campaign_min_excess,
    )
    return [
        sig.crowd_likelihood(
            votes, theta, c.alpha_likelihood_low, c.alpha_likelihood_high, c.min_decisive_votes
        ),
        sig.sequential_crowd_test(
            votes, history, c.alpha_sequential, c.sequential_looks, c.sequential_max_look, c.seed
        ),
        sig.evalue_crowd_test(votes, history, c.alpha_evalue),
        boost,
        suppress,
        campaign_boost,
        campaign_suppress,
        _rings(votes, theta, "network", c),
        _rings(votes, theta, "device", c),
    ]


def _rings(votes: VoteArrays, theta: FloatArray, column: str, c: FraudConfig) -> SignalResult:
    return sig.rings(
        votes,
        theta,
        column,
        alpha=c.alpha_ring,
        min_voters=c.ring_min_voters,
        member_alpha=c.ring_member_alpha,
        dominance=c.ring_dominance,
        min_excess=c.ring_min_excess,
    )


@dataclass(frozen=True)
class VoterFlag:
    voter: int
    reasons: tuple[str, ...]
    votes: int
    risk: float


@dataclass(frozen=True)
class FraudReport:
    """Result of a scan. Per-voter arrays follow `voter_ids`; per-vote arrays follow the input votes.

    `vote_excluded` is what the leaderboard leaves out (stored with counted=False): every vote of a flagged
    voter, plus repeated-prompt duplicates (`vote_duplicate`). `theta` are the crowd strengths of the last
    round, fitted without the suspects of the round before.
    """

    voter_ids: IntArray
    voter_votes: IntArray
    voter_risk: FloatArray
    voter_flagged: BoolArray
    voter_reasons: tuple[tuple[str, ...], ...]
    vote_risk: FloatArray
    vote_excluded: BoolArray
    vote_duplicate: BoolArray
    vote_fast: BoolArray
    voter_index: IntArray = field(repr=False)
    theta: FloatArray = field(repr=False)
    rounds: int = 1
    signals: tuple[SignalResult, ...] = field(default=(), repr=False)

    def vote_reasons(self, vote: int) -> tuple[str, ...]:
        """Why one vote is excluded or risky: its voter's reasons, then vote-level ones."""
        own = ("repeated_prompts",) if self.vote_duplicate[vote] else ()
        fast = ("fast_vote",) if self.vote_fast[vote] else ()
        voter_reasons = self.voter_reasons[self.voter_index[vote]]
        return voter_reasons + tuple(r for r in own if r not in voter_reasons) + fast

    def flagged_voters(self) -> list[VoterFlag]:
        """Flagged voters, riskiest first."""
        index = np.flatnonzero(self.voter_flagged)
        index = index[np.argsort(-self.voter_risk[index], kind="stable")]
        return [
            VoterFlag(
                int(self.voter_ids[i]),
                self.voter_reasons[i],
                int(self.voter_votes[i]),
                float(self.voter_risk[i]),
            )
            for i in index
        ]

    @property
    def flagged_ids(self) -> IntArray:
        return self.voter_ids[self.voter_flagged]


def fraud_scan(
    votes: VoteArrays,
    theta: FloatArray | None = None,
    config: FraudConfig = DEFAULT_CONFIG,
    model_names: Sequence[str] | None = None,
) -> FraudReport:
    """Flag voters and votes. Without `theta`, fits crowd ratings itself and refits without the suspects.

    Round 1 judges everyone against ratings fitted on all votes; each later round refits on the votes of
    voters not flagged so far (an attack inflates its target's crowd rating and so hides itself) and
    re-tests everyone, until the flags stop changing or `config.rounds` is reached.
    """
    fixed, duplicate = crowd_free_signals(votes, config)
    keep = np.ones(votes.n_votes, dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        current = theta if theta is not None else crowd_theta(votes, keep)
        signals = fixed + crowd_signals(votes, current, keep, config)
        flagged = np.any([s.fired for s in signals], axis=0)
        new_keep = ~flagged[votes.voter_index] & ~duplicate
        if theta is not None or rounds >= config.rounds or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return _report(votes, current, signals, flagged, duplicate, rounds, config, model_names)


def combine_risk(strength: FloatArray) -> FloatArray:
    """Risk in [0, 1] per voter from (signals x voters) strengths: 1 - prod_k (1 - s_k^4 / (1 + s_k^4)).

    A signal exactly at its budget contributes 0.5 and one at twice the evidence (alpha squared) 0.94, while
    the ordinary wobble of an honest voter (strength 0.2-0.4 on a few signals) stays near zero; several
    signals just under their budgets add up, which is what a review queue should look at first. The flag
    decision itself is "some signal at or over its budget", because only that has a known error rate.
    """
    power = np.clip(strength, 0.0, None) ** 4
    return 1.0 - np.prod(1.0 / (1.0 + power), axis=0)


def _report(
    votes: VoteArrays,
    theta: FloatArray,
    signals: list[SignalResult],
    flagged: BoolArray,
    duplicate: BoolArray,
    rounds: int,
    config: FraudConfig,
    model_names: Sequence[str] | None,
) -> FraudReport:
    voter_risk = combine_risk(np.vstack([s.strength for s in signals]))
    fast = np.isfinite(votes.seconds_to_vote) & (votes.seconds_to_vote < config.fast_seconds)
    vote_level = np.maximum(
        np.where(fast, config.fast_vote_risk, 0.0), np.where(duplicate, config.duplicate_vote_risk, 0.0)
    )
    vote_risk = 1.0 - (1.0 - voter_risk[votes.voter_index]) * (1.0 - vote_level)
    reasons = tuple(_reasons(signals, i, model_names) if flagged[i] else () for i in range(votes.n_voters))
    return FraudReport(
        voter_ids=votes.voter_ids,
        voter_votes=np.bincount(votes.voter_index, minlength=votes.n_voters),
        voter_risk=voter_risk,
        voter_flagged=flagged,
        voter_reasons=reasons,
        vote_risk=vote_risk,
        vote_excluded=flagged[votes.voter_index] | duplicate,
        vote_duplicate=duplicate,
        vote_fast=fast,
        voter_index=votes.voter_index,
        theta=theta,
        rounds=rounds,
        signals=tuple(signals),
    )


_TAIL = ("low", "high")
_SCOPE = ("voter", "ip", "network")


def _reasons(signals: list[SignalResult], voter: int, model_names: Sequence[str] | None) -> tuple[str, ...]:
    out = []
    for s in signals:
        if s.strength[voter] < 1.0:
            continue
        detail = int(s.detail[voter])
        out.append(s.name if detail < 0 else f"{s.name}:{_label(s.detail_kind, detail, model_names)}")
    return tuple(out)


def _label(kind: str, detail: int, model_names: Sequence[str] | None) -> str:
    if kind == "model" and model_names is not None:
        return model_names[detail]
    if kind == "tail":
        return _TAIL[detail]
    if kind == "scope":
        return _SCOPE[detail]
    return str(detail)


# --- cheap checks at vote time ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteTimeRisk:
    risk: float
    reasons: tuple[str, ...]
    counted: bool


def vote_time_risk(
    *,
    seconds_to_vote: float | None,
    voter_votes_in_window: int,
    ip_votes_in_window: int,
    voter_left_picks: int,
    voter_right_picks: int,
    config: FraudConfig = DEFAULT_CONFIG,
) -> VoteTimeRisk:
    """Risk of one vote from counters the vote endpoint already has (this vote included in them).

    A fast click only raises the risk (honest readers sometimes finish before the second answer does);
    breaking a rate cap or a decisive position bias leaves the vote uncounted until the sweep reviews it.
    """
    reasons: list[str] = []
    risk = 0.0
    if seconds_to_vote is not None and np.isfinite(seconds_to_vote) and seconds_to_vote < config.fast_seconds:
        reasons.append("fast_vote")
        risk = config.fast_vote_risk
    hard = []
    if voter_votes_in_window > config.rate_voter_cap:
        hard.append("rate")
    if ip_votes_in_window > config.rate_ip_cap:
        hard.append("rate:ip")
    n = voter_left_picks + voter_right_picks
    p = float(binom_two_sided_p(np.array([voter_left_picks]), np.array([n]))[0])
    if p <= config.alpha_position:
        hard.append("position_bias")
    if hard:
        risk = max(risk, 0.5 + 0.5 * min(1.0, len(hard) / 2.0))
    return VoteTimeRisk(risk=float(risk), reasons=tuple(reasons + hard), counted=not hard)
