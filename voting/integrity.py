"""Vote integrity decisions: excluding and restoring votes, flagging and banning voters, the periodic sweep.

Votes are never deleted: an exclusion sets counted=False and an `exclusion_reason` whose prefix says which
mechanism excluded it, so each mechanism undoes exactly its own exclusions (unflagging a voter restores the
votes the flag left out, never a vote voided for an identity leak). Every change:

* runs in one transaction with the rows it changes locked,
* writes an audit entry (who or which rule, what, why, before and after); an undo is a new entry whose
  `reverts` points at the entry it undoes,
* keeps the pair tallies right (a vote leaving the count is subtracted, one coming back added),
* and after commit asks for a leaderboard refresh of the modalities it touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from arena.audit import audit_record
from arena.errors import Conflict, InvalidInput, NotFound
from arena.models import AuditEntry
from ranking.tallies import tally_record
from voting.models import Vote, Voter
from voting.reasons import (
    BANNED,
    FLAGGED,
    REASON_MAX,
    SWEEP,
    VOTE_TARGET,
    VOTE_TIME,
    VOTER_TARGET,
    labelled,
)
from voting.sweep_data import sweep_findings

SWEEP_RULE = "fraud_sweep"
_RULE_MAX = AuditEntry._meta.get_field("rule").max_length or 100


def _require(reason: str, actor_id: int | None, rule: str) -> None:
    if not reason.strip():
        raise InvalidInput("Say why: a reason is required.")
    if actor_id is None and not rule:
        raise InvalidInput("An integrity action needs a staff member or an automatic rule behind it.")


@dataclass(frozen=True)
class LeaderboardRefresh:
    """An on-commit callback that queues one leaderboard recompute per modality."""

    modalities: tuple[str, ...]

    def __call__(self) -> None:
        from ranking.tasks import leaderboard_refresh_task

        for modality in self.modalities:
            leaderboard_refresh_task.apply_async(args=[modality], queue="ranking")


def refresh_on_commit(modalities: Iterable[str]) -> None:
    """Recompute these leaderboards once the current transaction commits (never from inside it)."""
    todo = tuple(sorted(set(modalities)))
    if todo:
        transaction.on_commit(LeaderboardRefresh(todo))


def _vote_state(vote: Vote) -> dict[str, object]:
    return {"counted": vote.counted, "exclusion_reason": vote.exclusion_reason}


def _locked_votes(**filters: object) -> list[Vote]:
    # of=("self",): lock the vote rows only, not the battles joined in for the tallies.
    return list(
        Vote.objects.select_for_update(of=("self",)).select_related("battle").filter(**filters).order_by("id")
    )


def _recount(votes: list[Vote], *, counted: bool, reason: str) -> None:
    """Move votes in or out of the count, tallies included (the caller holds their row locks)."""
    changing = [v for v in votes if v.counted != counted]
    for vote in votes:
        vote.counted, vote.exclusion_reason = counted, "" if counted else reason
    # One UPDATE for all, as they all get the same values (bulk_update's CASE per row is far slower).
    Vote.objects.filter(id__in=[v.id for v in votes]).update(
        counted=counted, exclusion_reason="" if counted else reason
    )
    if changing:
        tally_record(votes=changing, sign=+1 if counted else -1)


# --- single votes --------------------------------------------------------------------------------------


def vote_exclude(
    *,
    vote_ids: Iterable[int],
    reason: str,
    actor_id: int | None = None,
    rule: str = "",
    reverts: AuditEntry | None = None,
    refresh: bool = True,
) -> list[int]:
    """Leave counted votes out of the leaderboard, one audit entry each. Votes already out are skipped.

    Locks the vote rows. Staff exclusions keep the reason as given; a rule's reason is prefixed "fraud sweep".
    """
    vote_ids = list(vote_ids)
    if not vote_ids:
        return []
    _require(reason, actor_id, rule)
    label = labelled(SWEEP, reason) if actor_id is None else reason[:REASON_MAX]
    with transaction.atomic():
        votes = _locked_votes(id__in=vote_ids, counted=True)
        before = {v.id: _vote_state(v) for v in votes}
        _recount(votes, counted=False, reason=label)
        for vote in votes:
            audit_record(
                action="vote.exclude",
                target_type=VOTE_TARGET,
                target_id=vote.id,
                reason=reason,
                actor_id=actor_id,
                rule=rule,
                before=before[vote.id],
                after=_vote_state(vote),
                reverts=reverts,
            )
        if refresh:
            refresh_on_commit(v.battle.modality for v in votes)
    return [v.id for v in votes]


def _last_entry(action: str, target_type: str, target_id: int) -> AuditEntry | None:
    """The newest `action` entry on the target that nothing has undone yet."""
    return (
        AuditEntry.objects.filter(
            action=action, target_type=target_type, target_id=str(target_id), reverted_by__isnull=True
        )
        .order_by("-created_at", "-id")
        .first()
    )


def vote_restore(
    *,
    vote_ids: Iterable[int],
    reason: str,
    actor_id: int | None = None,
    rule: str = "",
    reverts: AuditEntry | None = None,
    refresh: bool = True,
) -> list[int]:
    """Count excluded votes again, one audit entry each pointing at the exclusion it undoes (if logged)."""
    vote_ids = list(vote_ids)
    if not vote_ids:
        return []
    _require(reason, actor_id, rule)
    with transaction.atomic():
        votes = _locked_votes(id__in=vote_ids, counted=False)
        before = {v.id: _vote_state(v) for v in votes}
        _recount(votes, counted=True, reason="")
        for vote in votes:
            audit_record(
                action="vote.restore",
                target_type=VOTE_TARGET,
                target_id=vote.id,
                reason=reason,
                actor_id=actor_id,
                rule=rule,
                before=before[vote.id],
                after=_vote_state(vote),
                reverts=reverts or _last_entry("vote.exclude", VOTE_TARGET, vote.id),
            )
        if refresh:
            refresh_on_commit(v.battle.modality for v in votes)
    return [v.id for v in votes]


# --- voters --------------------------------------------------------------------------------------------


def _voter_state(voter: Voter) -> dict[str, object]:
    return {
        "flagged": voter.flagged,
        "flag_reasons": list(voter.flag_reasons),
        "banned": voter.banned,
        "trusted": voter.trusted,
    }


def _locked_voter(voter_id: int) -> Voter:
    voter = Voter.objects.select_for_update().filter(id=voter_id).first()
    if voter is None:
        raise NotFound(f"No voter with id {voter_id}.")
    return voter


def _relabel(votes: list[Vote], reason: str) -> None:
    """Change why already-excluded votes are out (they stay out, so the tallies do not move)."""
    for vote in votes:
        vote.exclusion_reason = reason
    Vote.objects.filter(id__in=[v.id for v in votes]).update(exclusion_reason=reason)


def _voter_audit(
    voter: Voter, action: str, before: dict, votes: dict[str, list[int]], **who: object
) -> AuditEntry:
    return audit_record(
        action=action,
        target_type=VOTER_TARGET,
        target_id=voter.id,
        before=before,
        after={**_voter_state(voter), **votes},
        **who,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class VoterChange:
    """What one voter action did: its audit entry and the votes it moved."""

    entry: AuditEntry
    excluded: list[int] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)
    modalities: frozenset[str] = frozenset()  # boards whose counted votes changed


def _voter_change(
    voter: Voter,
    action: str,
    before: dict,
    *,
    excluded: Sequence[Vote] = (),
    restored: Sequence[Vote] = (),
    details: dict,
    refresh: bool,
    **audit: Any,
) -> VoterChange:
    """The tail every voter action shares: one audit entry, the touched boards refreshed after commit."""
    entry = _voter_audit(voter, action, before, details, **audit)
    boards = frozenset(v.battle.modality for v in (*excluded, *restored))
    if refresh:
        refresh_on_commit(boards)
    return VoterChange(
        entry, excluded=[v.id for v in excluded], restored=[v.id for v in restored], modalities=boards
    )


def voter_flag(
    *,
    voter_id: int,
    reason: str,
    reasons: Iterable[str] = (),
    actor_id: int | None = None,
    rule: str = "",
    reverts: AuditEntry | None = None,
    refresh: bool = True,
) -> VoterChange | None:
    """Flag a voter and leave all their counted votes out. None if already flagged, or if a rule tries
    to flag a voter staff have cleared (`trusted`). Locks the voter row, then their votes.
    """
    _require(reason, actor_id, rule)
    with transaction.atomic():
        voter = _locked_voter(voter_id)
        if voter.flagged or (actor_id is None and voter.trusted):
            return None
        before = _voter_state(voter)
        label = labelled(FLAGGED, ", ".join(reasons) or reason)
        counted = _locked_votes(voter_id=voter.id, counted=True)
        _recount(counted, counted=False, reason=label)
        # Votes held back at vote time now belong to the flag: unflagging restores them too.
        held = _locked_votes(voter_id=voter.id, counted=False, exclusion_reason__startswith=VOTE_TIME)
        _relabel(held, label)
        voter.flagged, voter.flag_reasons, voter.trusted = True, list(reasons) or [reason], False
        voter.save(update_fields=["flagged", "flag_reasons", "trusted"])
        return _voter_change(
            voter,
            "voter.flag",
            before,
            excluded=counted,
            details={"excluded_votes": [v.id for v in counted], "relabelled_votes": [v.id for v in held]},
            refresh=refresh,
            reason=reason,
            actor_id=actor_id,
            rule=rule,
            reverts=reverts,
        )


def voter_unflag(
    *,
    voter_id: int,
    reason: str,
    actor_id: int | None = None,
    rule: str = "",
    reverts: AuditEntry | None = None,
    refresh: bool = True,
) -> VoterChange | None:
    """Clear a flag and count again the votes it left out (a banned voter's stay out, now as banned).

    Staff clearing a voter marks it trusted, so the sweep does not flag it again. None if not flagged.
    """
    _require(reason, actor_id, rule)
    with transaction.atomic():
        voter = _locked_voter(voter_id)
        if not voter.flagged:
            return None
        before = _voter_state(voter)
        votes = _locked_votes(voter_id=voter.id, counted=False, exclusion_reason__startswith=FLAGGED)
        restored = [] if voter.banned else votes
        if voter.banned:
            _relabel(votes, BANNED)
        else:
            _recount(votes, counted=True, reason="")
        voter.flagged, voter.flag_reasons = False, []
        voter.trusted = voter.trusted or actor_id is not None
        voter.save(update_fields=["flagged", "flag_reasons", "trusted"])
        return _voter_change(
            voter,
            "voter.unflag",
            before,
            restored=restored,
            details={"restored_votes": [v.id for v in restored]},
            refresh=refresh,
            reason=reason,
            actor_id=actor_id,
            rule=rule,
            reverts=reverts or _last_entry("voter.flag", VOTER_TARGET, voter.id),
        )


def voter_ban(
    *,
    voter_id: int,
    reason: str,
    actor_id: int | None = None,
    rule: str = "",
    reverts: AuditEntry | None = None,
    refresh: bool = True,
) -> VoterChange | None:
    """Ban a voter: their votes (past and future) are stored but not counted. None if already banned."""
    _require(reason, actor_id, rule)
    with transaction.atomic():
        voter = _locked_voter(voter_id)
        if voter.banned:
            return None
        before = _voter_state(voter)
        counted = _locked_votes(voter_id=voter.id, counted=True)
        _recount(counted, counted=False, reason=BANNED)
        voter.banned = True
        voter.save(update_fields=["banned"])
        return _voter_change(
            voter,
            "voter.ban",
            before,
            excluded=counted,
            details={"excluded_votes": [v.id for v in counted]},
            refresh=refresh,
            reason=reason,
            actor_id=actor_id,
            rule=rule,
            reverts=reverts,
        )


def voter_unban(
    *,
    voter_id: int,
    reason: str,
    actor_id: int | None = None,
    rule: str = "",
    reverts: AuditEntry | None = None,
    refresh: bool = True,
) -> VoterChange | None:
    """Lift a ban and count again the votes it left out (a flagged voter's stay out, now as flagged)."""
    _require(reason, actor_id, rule)
    with transaction.atomic():
        voter = _locked_voter(voter_id)
        if not voter.banned:
            return None
        before = _voter_state(voter)
        votes = _locked_votes(voter_id=voter.id, counted=False, exclusion_reason=BANNED)
        restored = [] if voter.flagged else votes
        if voter.flagged:
            _relabel(votes, labelled(FLAGGED, ", ".join(voter.flag_reasons)))
        else:
            _recount(votes, counted=True, reason="")
        voter.banned = False
        voter.save(update_fields=["banned"])
        return _voter_change(
            voter,
            "voter.unban",
            before,
            restored=restored,
            details={"restored_votes": [v.id for v in restored]},
            refresh=refresh,
            reason=reason,
            actor_id=actor_id,
            rule=rule,
            reverts=reverts or _last_entry("voter.ban", VOTER_TARGET, voter.id),
        )


# --- undo from the audit log ---------------------------------------------------------------------------


VOTING_ACTIONS = frozenset(
    {"vote.exclude", "vote.restore", "voter.flag", "voter.unflag", "voter.ban", "voter.unban"}
)


def audit_revert(*, entry_id: int, reason: str, actor_id: int) -> AuditEntry | None:
    """Undo one vote-integrity entry with the matching reversal; the new entry `reverts` it.

    Locks the entry, so two staff undoing it at once produce one reversal. Returns None when the target's
    state already differs (nothing left to undo: e.g. the vote was restored by other means since).
    """
    with transaction.atomic():
        entry = AuditEntry.objects.select_for_update().filter(id=entry_id).first()
        if entry is None:
            raise NotFound("No audit entry with this id.")
        if entry.action not in VOTING_ACTIONS:
            raise InvalidInput(f"Entries of kind {entry.action!r} are not reverted here.")
        if entry.reverted_by.exists():
            raise Conflict(f"Audit entry {entry.id} has already been undone.")
        return _undo(entry, reason=reason or f"undo of {entry.action} #{entry.id}", actor_id=actor_id)


def _undo(entry: AuditEntry, *, reason: str, actor_id: int) -> AuditEntry | None:
    target = int(entry.target_id)
    who = {"reason": reason, "actor_id": actor_id, "reverts": entry}
    if entry.action in ("vote.exclude", "vote.restore"):
        undo_votes = vote_restore if entry.action == "vote.exclude" else vote_exclude
        done = undo_votes(vote_ids=[target], **who)  # type: ignore[arg-type]
        return AuditEntry.objects.filter(reverts=entry).first() if done else None
    if entry.action == "voter.unflag":
        change = voter_flag(voter_id=target, reasons=entry.before.get("flag_reasons", []), **who)  # type: ignore[arg-type]
    else:
        undo_voter = {"voter.flag": voter_unflag, "voter.ban": voter_unban, "voter.unban": voter_ban}
        change = undo_voter[entry.action](voter_id=target, **who)  # type: ignore[arg-type]
    return change.entry if change else None


# --- the periodic sweep --------------------------------------------------------------------------------


@dataclass
class SweepResult:
    scanned_votes: int = 0
    flagged_voters: list[int] = field(default_factory=list)
    excluded_votes: list[int] = field(default_factory=list)
    restored_votes: list[int] = field(default_factory=list)
    modalities: set[str] = field(default_factory=set)
    skipped: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.flagged_voters or self.excluded_votes or self.restored_votes)


_SWEEP_LOCK = "arena:fraud-sweep:running"


def fraud_sweep(*, now: datetime | None = None) -> SweepResult:
    """Scan recent votes with the ranking engine's fraud statistics and act on what it finds.

    Flags newly detected voters (never one staff cleared), leaves out votes that repeat a prompt too often,
    counts again votes held back at vote time whose voter the full scan clears, and refreshes risk scores.
    One leaderboard refresh per changed modality is queued at the end, none when nothing changed. Safe to
    run twice: a second concurrent sweep returns at once, and every action skips what is already done.
    """
    if not cache.add(_SWEEP_LOCK, 1, timeout=settings.ARENA_FRAUD_SWEEP_LOCK_SECONDS):
        return SweepResult(skipped=True)
    try:
        return _sweep(now or timezone.now())
    finally:
        cache.delete(_SWEEP_LOCK)


def _sweep(now: datetime) -> SweepResult:
    days = settings.ARENA_FRAUD_SWEEP_DAYS
    findings = sweep_findings(since=now - timedelta(days=days) if days else None)
    result = SweepResult(scanned_votes=findings.scanned_votes)
    for voter_id, reasons in sorted(findings.flag.items()):
        change = voter_flag(
            voter_id=voter_id,
            reasons=reasons,
            reason="Automatic fraud sweep: " + ", ".join(reasons),
            rule=f"{SWEEP_RULE}:{','.join(reasons)}"[:_RULE_MAX],
            refresh=False,
        )
        if change is not None:
            result.flagged_voters.append(voter_id)
            result.excluded_votes += change.excluded
    result.excluded_votes += vote_exclude(
        vote_ids=findings.duplicate_votes,
        reason="the voter already voted on this prompt three times",
        rule=f"{SWEEP_RULE}:duplicate_prompt",
        refresh=False,
    )
    result.restored_votes = vote_restore(
        vote_ids=findings.cleared_votes,
        reason="held back at vote time; the full scan found nothing against the voter",
        rule=f"{SWEEP_RULE}:cleared",
        refresh=False,
    )
    findings.risk_save()
    result.modalities = _modalities(result.excluded_votes + result.restored_votes)
    refresh_on_commit(result.modalities)
    return result


def _modalities(vote_ids: list[int]) -> set[str]:
    if not vote_ids:
        return set()
    return set(Vote.objects.filter(id__in=vote_ids).values_list("battle__modality", flat=True).distinct())
