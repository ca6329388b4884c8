"""The cheap integrity checks run inside every vote: a risk score, and whether the vote counts.

Counts come from the database (the truth), a few indexed aggregates per vote; the statistics are the ranking
engine's `vote_time_risk`. A vote that trips a hard rule is stored uncounted with a "vote-time risk" reason,
and the next sweep either clears it or folds it into a flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q

from arena.audit import audit_record
from ranking.engine.fraud import DEFAULT_CONFIG, VoteTimeRisk, vote_time_risk
from voting.models import Vote, Voter
from voting.reasons import BANNED, FLAGGED, VOTE_TARGET, VOTE_TIME, labelled

# vote_time_risk's only soft reason: it raises the risk but never holds a vote back.
_SOFT = {"fast_vote"}


def vote_risk_assess(
    *, voter_id: int, ip_hash: str, choice: str, seconds_to_vote: float | None, now: datetime
) -> VoteTimeRisk:
    """The engine's vote-time risk for a vote about to be stored (counts include it)."""
    since = now - timedelta(seconds=DEFAULT_CONFIG.rate_window_seconds)
    counts = Vote.objects.filter(voter_id=voter_id).aggregate(
        recent=Count("id", filter=Q(created_at__gte=since)),
        left=Count("id", filter=Q(choice=Vote.Choice.A)),
        right=Count("id", filter=Q(choice=Vote.Choice.B)),
    )
    ip_recent = Vote.objects.filter(ip_hash=ip_hash, created_at__gte=since).count() if ip_hash else 0
    return vote_time_risk(
        seconds_to_vote=seconds_to_vote,
        voter_votes_in_window=counts["recent"] + 1,
        ip_votes_in_window=ip_recent + 1,
        voter_left_picks=counts["left"] + (choice == Vote.Choice.A),
        voter_right_picks=counts["right"] + (choice == Vote.Choice.B),
    )


@dataclass(frozen=True)
class VoteVerdict:
    counted: bool
    exclusion_reason: str
    risk_score: float
    risk_reasons: list[str]


def vote_verdict(*, voter: Voter, risk: VoteTimeRisk, leak_reason: str | None) -> VoteVerdict:
    """Whether a new vote counts, and why not. The voter row must be fresh (read under its lock).

    An identity leak wins over every other reason: it is permanent, and a later unflag or unban must not
    restore a vote that saw the models' names. A voter staff cleared (trusted) is not held back by the
    vote-time rules; the risk is still recorded.
    """
    reasons, score = list(risk.reasons), risk.risk
    if voter.banned:
        reasons, score = [*reasons, "voter_banned"], 1.0
    elif voter.flagged:
        reasons, score = [*reasons, "voter_flagged"], max(score, voter.risk_score, 0.5)
    hard = [r for r in risk.reasons if r not in _SOFT]
    if leak_reason:
        reason = leak_reason
    elif voter.banned:
        reason = BANNED
    elif voter.flagged:
        reason = labelled(FLAGGED, ", ".join(voter.flag_reasons))
    elif hard and not voter.trusted:
        reason = labelled(VOTE_TIME, ", ".join(hard))
    else:
        reason = ""
    return VoteVerdict(not reason, reason, float(score), reasons)


def vote_hold_audit(vote: Vote) -> None:
    """A vote stored uncounted by an integrity rule is an automatic exclusion, so it gets its audit entry
    (which staff can undo from the log, and which the sweep's release points back at)."""
    if vote.counted or not vote.exclusion_reason.startswith((VOTE_TIME, BANNED, FLAGGED)):
        return
    audit_record(
        action="vote.exclude",
        target_type=VOTE_TARGET,
        target_id=vote.id,
        reason=vote.exclusion_reason,
        rule=f"vote_time:{','.join(vote.risk_reasons)}"[:100],
        before={},
        after={"counted": False, "exclusion_reason": vote.exclusion_reason},
    )
