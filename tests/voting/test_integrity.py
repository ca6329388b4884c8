"""Excluding, restoring, flagging and banning: tallies stay equal to the counted votes, every change is in the
audit log with who or which rule and why, each undo points at what it undoes, and the boards refresh."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection

from arena.errors import Conflict, InvalidInput
from arena.models import AuditEntry
from tests.voting.conftest import ready_battle, refreshes, tallies, tallies_match_counted_votes
from voting import integrity
from voting.models import Vote, Voter
from voting.services import vote_cast


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("moderator", is_staff=True)


@pytest.fixture
def history(voter, pair, make_model) -> dict[str, list[Vote]]:
    """Four counted votes and one voided for an identity leak, all by `voter`."""
    counted = [vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice=c) for c in "abab"]
    leaky = make_model(slug="leaky-bot")
    battle = ready_battle(voter, leaky, pair[0], out_a="I am leaky-bot.")
    leak = vote_cast(code=battle.code, voter=voter, choice="a")
    assert all(v.counted for v in counted) and not leak.counted
    return {"counted": counted, "leak": [leak]}


def test_flagging_a_voter_leaves_their_votes_out_and_logs_it(history, voter, staff, pair):
    before = tallies()
    change = integrity.voter_flag(voter_id=voter.id, reason="always votes within a second", actor_id=staff.id)
    assert sorted(change.excluded) == sorted(v.id for v in history["counted"])
    for vote in Vote.objects.filter(id__in=change.excluded):
        assert not vote.counted and vote.exclusion_reason == "voter flagged: always votes within a second"
    leak = Vote.objects.get(id=history["leak"][0].id)
    assert "leaky" in leak.exclusion_reason, "an identity-leak void keeps its own reason"
    boards = sum(1 + len(v.categories) for v in history["counted"])  # overall and each category board
    assert sum(map(sum, before.values())) - sum(map(sum, tallies().values())) == boards
    assert tallies_match_counted_votes()
    entry = AuditEntry.objects.get(action="voter.flag")
    assert (entry.actor_id, entry.target_type, entry.target_id) == (staff.id, "voting.voter", str(voter.id))
    assert entry.reason == "always votes within a second" and entry.before["flagged"] is False
    assert entry.after["flagged"] is True and entry.after["excluded_votes"] == sorted(change.excluded)
    voter.refresh_from_db()
    assert voter.flagged and voter.flag_reasons == ["always votes within a second"]


def test_unflagging_restores_exactly_the_votes_the_flag_left_out(history, voter, staff, pair):
    before = tallies()
    flag = integrity.voter_flag(
        voter_id=voter.id, reasons=["position_bias"], reason="sweep", rule="fraud_sweep"
    )
    # A vote cast while flagged is left out by the flag too, so unflagging counts it again.
    during = vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice="tie")
    assert not during.counted and during.exclusion_reason == "voter flagged: position_bias"
    unflag = integrity.voter_unflag(
        voter_id=voter.id, reason="checked by hand: a real person", actor_id=staff.id
    )
    assert sorted(unflag.restored) == sorted([*flag.excluded, during.id])
    assert not Vote.objects.get(id=history["leak"][0].id).counted
    assert Vote.objects.filter(voter=voter, counted=True).count() == 5
    assert tallies() != before and tallies_match_counted_votes()
    entry = AuditEntry.objects.get(action="voter.unflag")
    assert entry.reverts_id == flag.entry.id and entry.actor_id == staff.id
    voter.refresh_from_db()
    assert not voter.flagged and voter.trusted, "staff cleared it: the sweep leaves it alone"


def test_a_rule_cannot_flag_a_voter_staff_cleared_but_staff_can(history, voter, staff):
    Voter.objects.filter(id=voter.id).update(trusted=True)
    assert integrity.voter_flag(voter_id=voter.id, reason="x", rule="fraud_sweep:position_bias") is None
    assert integrity.voter_flag(voter_id=voter.id, reason="x", actor_id=staff.id) is not None
    assert not Voter.objects.get(id=voter.id).trusted


def test_banning_excludes_past_and_future_votes_and_unbanning_restores_them(history, voter, staff, pair):
    ban = integrity.voter_ban(voter_id=voter.id, reason="vote farm", actor_id=staff.id)
    assert len(ban.excluded) == 4
    later = vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice="a")
    assert Vote.objects.filter(id=later.id, counted=False, exclusion_reason="voter banned").exists()
    unban = integrity.voter_unban(voter_id=voter.id, reason="appeal accepted", actor_id=staff.id)
    assert sorted(unban.restored) == sorted([*ban.excluded, later.id])
    assert unban.entry.reverts_id == ban.entry.id
    assert tallies_match_counted_votes()


def test_a_flag_and_a_ban_each_keep_the_votes_out_until_both_are_lifted(history, voter, staff):
    integrity.voter_flag(voter_id=voter.id, reason="suspicious", actor_id=staff.id)
    integrity.voter_ban(voter_id=voter.id, reason="confirmed", actor_id=staff.id)
    assert integrity.voter_unflag(voter_id=voter.id, reason="flag cleared", actor_id=staff.id).restored == []
    assert not Vote.objects.filter(voter=voter, counted=True).exists()
    assert set(
        Vote.objects.filter(voter=voter, counted=False).values_list("exclusion_reason", flat=True)
    ) == {
        "voter banned",
        history["leak"][0].exclusion_reason,
    }
    assert len(integrity.voter_unban(voter_id=voter.id, reason="lifted", actor_id=staff.id).restored) == 4
    assert tallies_match_counted_votes()


def test_excluding_and_restoring_single_votes_is_audited_per_vote(
    history, staff, django_capture_on_commit_callbacks
):
    ids = [v.id for v in history["counted"][:2]]
    with django_capture_on_commit_callbacks() as callbacks:
        assert integrity.vote_exclude(vote_ids=ids, reason="duplicate account", actor_id=staff.id) == ids
    assert refreshes(callbacks) == [("text",)]
    assert integrity.vote_exclude(vote_ids=ids, reason="again", actor_id=staff.id) == [], "already out"
    excluded = list(AuditEntry.objects.filter(action="vote.exclude").order_by("target_id"))
    assert [e.target_id for e in excluded] == [str(i) for i in ids]
    assert excluded[0].before == {"counted": True, "exclusion_reason": ""}
    assert excluded[0].after == {"counted": False, "exclusion_reason": "duplicate account"}
    assert tallies_match_counted_votes()
    assert integrity.vote_restore(vote_ids=ids[:1], reason="mistake", actor_id=staff.id) == ids[:1]
    restored = AuditEntry.objects.get(action="vote.restore")
    assert restored.reverts_id == excluded[0].id
    assert tallies_match_counted_votes()


def test_an_audit_entry_is_undone_once_by_the_matching_reversal(history, voter, staff):
    flag = integrity.voter_flag(voter_id=voter.id, reason="ring", rule="fraud_sweep:ring:net-1")
    undo = integrity.audit_revert(entry_id=flag.entry.id, reason="false positive", actor_id=staff.id)
    assert undo.action == "voter.unflag" and undo.reverts_id == flag.entry.id
    assert Vote.objects.filter(voter=voter, counted=True).count() == 4
    with pytest.raises(Conflict, match="already been undone"):
        integrity.audit_revert(entry_id=flag.entry.id, reason="again", actor_id=staff.id)
    redo = integrity.audit_revert(entry_id=undo.id, reason="it was a ring after all", actor_id=staff.id)
    assert redo.action == "voter.flag" and redo.after["flag_reasons"] == flag.entry.after["flag_reasons"]
    assert tallies_match_counted_votes()


def test_a_reason_and_an_actor_or_rule_are_required(history, voter, staff):
    with pytest.raises(InvalidInput, match="reason is required"):
        integrity.voter_flag(voter_id=voter.id, reason="  ", actor_id=staff.id)
    with pytest.raises(InvalidInput, match="staff member or an automatic rule"):
        integrity.vote_exclude(vote_ids=[history["counted"][0].id], reason="why")
    assert not AuditEntry.objects.exists()


def test_changes_that_change_nothing_queue_no_refresh(
    history, voter, staff, django_capture_on_commit_callbacks
):
    integrity.voter_ban(voter_id=voter.id, reason="x", actor_id=staff.id)
    with django_capture_on_commit_callbacks() as callbacks:
        assert integrity.voter_ban(voter_id=voter.id, reason="x", actor_id=staff.id) is None
        integrity.vote_exclude(vote_ids=[history["counted"][0].id], reason="x", actor_id=staff.id)
    assert refreshes(callbacks) == []


def _flag_and_vote_at_once(voter: Voter, code: str) -> None:
    barrier = threading.Barrier(2)

    def flag() -> None:
        barrier.wait()
        integrity.voter_flag(voter_id=voter.id, reason="race", rule="test")
        connection.close()

    def vote() -> None:
        barrier.wait()
        vote_cast(code=code, voter=voter, choice="a")
        connection.close()

    threads = [threading.Thread(target=flag), threading.Thread(target=vote)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.django_db(transaction=True)
def test_a_flag_racing_a_vote_never_leaves_the_new_vote_counted(make_model):
    pair = (make_model(), make_model())
    for attempt in range(5):
        voter = Voter.objects.create(session_hash=f"race-{attempt}")
        battle = ready_battle(voter, *pair)
        _flag_and_vote_at_once(voter, battle.code)
        assert not Vote.objects.get(battle=battle).counted, attempt
    assert tallies_match_counted_votes()
