"""The moderation console: staff see why a voter or vote was flagged and can undo it; only staff holding the
change permission can act, and every action needs a reason.

Personas: Charlie is not staff, Vera is staff who may only view, Mona is a moderator with the permissions.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from arena.models import AuditEntry
from tests.voting.conftest import ready_battle, tallies_match_counted_votes
from voting import integrity
from voting.models import Vote, Voter
from voting.services import vote_cast


def user_with(username: str, *codenames: str, staff: bool = True) -> Client:
    user = User.objects.create_user(username, is_staff=staff)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def charlie(db) -> Client:
    return user_with("charlie", "change_voter", "change_vote", staff=False)


@pytest.fixture
def vera(db) -> Client:
    return user_with("vera", "view_voter", "view_vote", "view_auditentry")


@pytest.fixture
def mona(db) -> Client:
    return user_with("mona", "view_voter", "change_voter", "view_vote", "change_vote", "view_auditentry")


@pytest.fixture
def votes(voter, pair) -> list[Vote]:
    return [vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice=c) for c in "abba"]


def act(client: Client, model: str, action: str, ids: list[int], reason: str = "checked by hand"):
    return client.post(
        f"/admin/voting/{model}/",
        {"action": action, "_selected_action": [str(i) for i in ids], "reason": reason, "index": 0},
        follow=True,
    )


def test_someone_not_staff_is_sent_to_the_login_page_and_nothing_changes(charlie, voter, votes):
    response = charlie.post(
        "/admin/voting/voter/", {"action": "flag", "_selected_action": [voter.id], "reason": "x"}
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not Voter.objects.get(id=voter.id).flagged and not AuditEntry.objects.exists()


def test_staff_without_the_change_permission_cannot_flag_exclude_or_undo(vera, mona, voter, votes):
    assert "Flag: leave all their votes out" in mona.get("/admin/voting/voter/").content.decode()
    assert "Flag: leave all their votes out" not in vera.get("/admin/voting/voter/").content.decode()
    for model, action, ids in (("voter", "flag", [voter.id]), ("vote", "exclude_votes", [votes[0].id])):
        response = act(vera, model, action, ids)
        assert response.status_code == 200 and 'name="action"' not in response.content.decode()
    assert not Voter.objects.get(id=voter.id).flagged and Vote.objects.filter(counted=False).count() == 0
    act(mona, "voter", "flag", [voter.id])
    entry = AuditEntry.objects.get()
    response = vera.post(
        "/admin/arena/auditentry/",
        {"action": "undo", "_selected_action": [entry.id], "reason": "x", "index": 0},
        follow=True,
    )
    assert 'name="action"' not in response.content.decode()
    assert Voter.objects.get(id=voter.id).flagged and not AuditEntry.objects.filter(reverts=entry).exists()


def test_a_moderator_flags_a_voter_with_a_reason_and_sees_why(mona, voter, votes):
    response = act(mona, "voter", "flag", [voter.id], reason="same device as a banned ring")
    assert "Flagged: 1 changed." in response.content.decode()
    flagged = Voter.objects.get(id=voter.id)
    assert flagged.flagged and flagged.flag_reasons == ["staff: same device as a banned ring"]
    entry = AuditEntry.objects.get(action="voter.flag")
    assert entry.actor.username == "mona" and entry.reason == "same device as a banned ring"
    page = mona.get(f"/admin/voting/voter/{voter.id}/change/").content.decode()
    assert "staff: same device as a banned ring" in page and "voter.flag" in page and "mona" in page
    listing = mona.get("/admin/voting/voter/?flagged__exact=1").content.decode()
    assert flagged.code in listing
    assert tallies_match_counted_votes()


def test_an_action_without_a_reason_changes_nothing(mona, voter, votes):
    response = act(mona, "voter", "ban", [voter.id], reason="  ")
    assert "Give a reason for this action" in response.content.decode()
    assert not Voter.objects.get(id=voter.id).banned and not AuditEntry.objects.exists()


def test_a_moderator_unflags_bans_and_unbans(mona, voter, votes):
    integrity.voter_flag(voter_id=voter.id, reason="sweep", reasons=["position_bias"], rule="fraud_sweep")
    assert "Unflagged: 1 changed." in act(mona, "voter", "unflag", [voter.id]).content.decode()
    assert Voter.objects.get(id=voter.id).trusted
    act(mona, "voter", "ban", [voter.id], reason="confirmed farm")
    assert Vote.objects.filter(voter=voter, counted=True).count() == 0
    act(mona, "voter", "unban", [voter.id], reason="appeal")
    assert Vote.objects.filter(voter=voter, counted=True).count() == 4
    assert tallies_match_counted_votes()


def test_a_moderator_excludes_and_restores_votes_and_filters_them_by_why(mona, voter, votes):
    act(mona, "vote", "exclude_votes", [votes[0].id, votes[1].id], reason="paid voting")
    assert Vote.objects.filter(counted=False, exclusion_reason="paid voting").count() == 2
    listing = mona.get("/admin/voting/vote/?why=other").content.decode()
    assert "paid voting" in listing
    assert "paid voting" not in mona.get("/admin/voting/vote/?why=flagged").content.decode()
    response = act(mona, "vote", "restore_votes", [votes[0].id, votes[2].id], reason="mistake")
    assert "Restored: 1 changed (1 already in that state)." in response.content.decode()
    assert tallies_match_counted_votes()


def test_the_audit_log_undoes_an_automatic_flag_and_links_both_entries(mona, voter, votes):
    flag = integrity.voter_flag(
        voter_id=voter.id, reason="sweep", reasons=["ring:net-ab12"], rule="fraud_sweep"
    )
    listing = mona.get("/admin/arena/auditentry/?rule_kind=fraud_sweep").content.decode()
    assert "rule fraud_sweep" in listing and "voter.flag" in listing
    response = mona.post(
        "/admin/arena/auditentry/",
        {"action": "undo", "_selected_action": [flag.entry.id], "reason": "NAT of a university", "index": 0},
        follow=True,
    )
    assert "Undone: 1 changed." in response.content.decode()
    undo = AuditEntry.objects.get(reverts=flag.entry)
    assert undo.action == "voter.unflag" and undo.reason == "NAT of a university"
    assert Vote.objects.filter(voter=voter, counted=True).count() == 4
    detail = mona.get(f"/admin/arena/auditentry/{flag.entry.id}/change/").content.decode()
    assert f"#{undo.id}" in detail
    assert mona.post(f"/admin/arena/auditentry/{flag.entry.id}/change/", {}).status_code == 403


def test_admin_lists_stay_a_few_queries(mona, voter, votes, django_assert_max_num_queries):
    for page in ("/admin/voting/voter/", "/admin/voting/vote/", "/admin/arena/auditentry/"):
        with django_assert_max_num_queries(15):
            assert mona.get(page).status_code == 200


def test_the_admin_classes_pass_djangos_system_checks():
    from django.core.management import call_command

    call_command("check", "voting", "arena")
