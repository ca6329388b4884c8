"""The cheap checks inside every vote: where it came from, its risk, and whether it counts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from arena.models import AuditEntry, Battle
from tests.support.challenge import vote_post
from tests.voting.conftest import ready_battle, session_voter
from voting.identity import network_of, salted_hash
from voting.models import Vote, Voter
from voting.services import prompt_hash, vote_cast


def past_votes(voter: Voter, pair, n: int, choice: str, **fields: object) -> None:
    """n earlier votes by this voter, stored directly (as if cast over the last hour)."""
    for _ in range(n):
        battle = ready_battle(voter, *pair)
        Battle.objects.filter(id=battle.id).update(status=Battle.Status.VOTED)
        Vote.objects.create(battle=battle, voter=voter, choice=choice, **fields)


def test_a_vote_records_its_address_network_device_and_prompt_as_salted_hashes(db, alice, pair, ip):
    battle = ready_battle(session_voter(alice), *pair, prompt="  Why is the SKY   blue? ")
    response = vote_post(alice, battle.code, REMOTE_ADDR=ip, body={"fingerprint": "device-123"})
    assert response.status_code == 200
    vote = Vote.objects.get()
    assert vote.ip_hash == salted_hash(f"ip:{ip}")
    assert vote.network_hash == salted_hash(f"net:{network_of(ip)}")
    assert vote.fingerprint_hash == salted_hash("fp:device-123") == vote.voter.fingerprint_hash
    assert vote.prompt_hash == prompt_hash("why is the sky blue?")
    assert ip not in str(Vote.objects.values().get()), "no raw address is stored"
    assert vote.counted and vote.risk_score == 0.0 and vote.risk_reasons == []
    assert 19 < vote.seconds_to_vote < 60


def test_an_overlong_fingerprint_is_ignored(db, alice, pair, ip):
    battle = ready_battle(session_voter(alice), *pair)
    assert vote_post(alice, battle.code, REMOTE_ADDR=ip, body={"fingerprint": "x" * 300}).status_code == 200
    assert Vote.objects.get().fingerprint_hash == ""


def test_a_fast_click_raises_the_risk_but_counts(db, voter, pair):
    battle = ready_battle(voter, *pair, waited=0.3)
    vote = vote_cast(code=battle.code, voter=voter, choice="b")
    assert vote.counted and "fast_vote" in vote.risk_reasons and vote.risk_score > 0


def test_always_picking_the_left_side_holds_the_vote_back(db, voter, pair):
    past_votes(voter, pair, 15, "a")
    vote = vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice="a")
    assert not vote.counted and vote.exclusion_reason == "vote-time risk: position_bias"
    assert "position_bias" in vote.risk_reasons and vote.risk_score >= 0.5
    entry = AuditEntry.objects.get(action="vote.exclude", target_id=str(vote.id))
    assert entry.rule == "vote_time:position_bias" and entry.actor_id is None


def test_more_votes_than_the_window_allows_are_held_back(db, voter, pair):
    past_votes(voter, pair, 50, "a")
    past_votes(voter, pair, 50, "b")
    vote = vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice="tie")
    assert not vote.counted and vote.exclusion_reason == "vote-time risk: rate"


def test_many_voters_on_one_address_are_held_back_together(db, pair, make_model):
    shared = salted_hash("ip:192.0.2.1")
    crowd = Voter.objects.create(session_hash="crowd")
    for i in range(200):
        past_votes(crowd, pair, 1, "ab"[i % 2], ip_hash=shared)
    newcomer = Voter.objects.create(session_hash="new", ip_hash=shared)
    vote = vote_cast(code=ready_battle(newcomer, *pair).code, voter=newcomer, choice="tie")
    assert not vote.counted and "rate:ip" in vote.exclusion_reason


def test_a_banned_voter_votes_normally_but_the_vote_is_stored_uncounted(db, voter, pair):
    Voter.objects.filter(id=voter.id).update(banned=True)
    vote = vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice="a")
    assert Vote.objects.filter(id=vote.id).exists()
    assert not vote.counted and vote.exclusion_reason == "voter banned"
    assert vote.risk_score == 1.0 and "voter_banned" in vote.risk_reasons
    assert Battle.objects.get(id=vote.battle_id).status == Battle.Status.VOTED


def test_a_flagged_voters_new_vote_is_left_out_with_the_flag_reason(db, voter, pair):
    Voter.objects.filter(id=voter.id).update(flagged=True, flag_reasons=["position_bias"], risk_score=0.9)
    vote = vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice="b")
    assert not vote.counted and vote.exclusion_reason == "voter flagged: position_bias"
    assert vote.risk_score == 0.9


def test_an_identity_leak_outranks_a_ban_so_unbanning_never_counts_it(db, voter, make_model):
    a, b = make_model(slug="leaky-model"), make_model()
    Voter.objects.filter(id=voter.id).update(banned=True)
    battle = ready_battle(voter, a, b, out_a="I am leaky-model, happy to help.")
    vote = vote_cast(code=battle.code, voter=voter, choice="a")
    assert not vote.counted and "leaky" in vote.exclusion_reason and "banned" not in vote.exclusion_reason


def test_a_voter_staff_cleared_is_not_held_back_but_the_risk_is_kept(db, voter, pair):
    Voter.objects.filter(id=voter.id).update(trusted=True)
    past_votes(voter, pair, 15, "a")
    vote = vote_cast(code=ready_battle(voter, *pair).code, voter=voter, choice="a")
    assert vote.counted and "position_bias" in vote.risk_reasons


@pytest.mark.parametrize("signed_in", [False, True])
def test_login_can_be_required_to_vote(db, alice, pair, ip, settings, signed_in):
    settings.ARENA_VOTE_LOGIN_REQUIRED = True
    if signed_in:
        alice.force_login(User.objects.create_user("alice"))
    battle = ready_battle(session_voter(alice), *pair)
    response = vote_post(alice, battle.code, REMOTE_ADDR=ip)
    if signed_in:
        assert response.status_code == 200
    else:
        assert response.status_code == 403 and response.json()["error"] == "Sign in to vote."
        assert not Vote.objects.exists()


def test_vote_time_checks_stay_a_few_queries(db, alice, pair, ip, django_assert_max_num_queries):
    voter = session_voter(alice)
    past_votes(voter, pair, 5, "a")
    battle = ready_battle(voter, *pair)
    with django_assert_max_num_queries(22):
        assert vote_post(alice, battle.code, REMOTE_ADDR=ip).status_code == 200
