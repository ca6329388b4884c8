"""Skip (recorded, never counted) and Regenerate (both sides again, only the final pair is voted), and their
refusals: after a vote, on a skipped battle, while generating, for someone else's battle, over the limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from arena.models import AuditEntry, Battle, Generation, ModelEntry
from ranking.models import LeaderboardSnapshot
from tests.conftest import battle_settled, wait_for
from tests.support.challenge import vote_post
from tests.voting.conftest import ready_battle, session_voter
from voting.models import Vote
from voting.rates import Rate


def post(client: Client, code: str, action: str) -> tuple[int, dict]:
    response = client.post(f"/api/battles/{code}/{action}", {}, content_type="application/json")
    return response.status_code, response.json()


@pytest.fixture
def pair(make_model: Callable[..., ModelEntry]) -> tuple[ModelEntry, ModelEntry]:
    return make_model(), make_model()


@pytest.fixture
def generous(settings):
    for kind in ("VOTE", "BATTLE", "GENERATION"):
        for scope in ("VOTER", "IP", "NETWORK"):
            setattr(settings, f"ARENA_{kind}_RATE_PER_{scope}", Rate(1000, 3600))
    return settings


@pytest.mark.django_db
def test_a_skip_is_recorded_and_audited_but_never_a_vote(alice, pair, generous):
    battle = ready_battle(session_voter(alice), *pair)
    snapshots = LeaderboardSnapshot.objects.count()
    status, data = post(alice, battle.code, "skip")
    assert status == 200
    assert data["state"]["status"] == "skipped" and not data["state"]["can_vote"]
    assert data["state"]["vote"] is None  # nothing revealed: the voter judged nothing
    battle.refresh_from_db()
    assert battle.status == Battle.Status.SKIPPED
    assert not Vote.objects.exists(), "votes stay append-only and the boards count nothing"
    assert LeaderboardSnapshot.objects.count() == snapshots
    entry = AuditEntry.objects.get(action="battle.skip")
    assert (entry.target_id, entry.rule, entry.before, entry.after) == (
        str(battle.id),
        "voter_skip",
        {"status": "ready"},
        {"status": "skipped"},
    )
    # A skipped battle can be neither voted, skipped again, continued nor regenerated.
    assert vote_post(alice, battle.code, "a").status_code == 409
    assert post(alice, battle.code, "skip")[0] == 409
    assert post(alice, battle.code, "regenerate")[0] == 409
    continued = alice.post(f"/api/battles/{battle.code}/continue", {"prompt": "More?"}, "application/json")
    assert continued.status_code == 409
    assert not Vote.objects.exists()


@pytest.mark.django_db
def test_skip_and_regenerate_are_refused_after_a_vote(alice, pair, generous):
    battle = ready_battle(session_voter(alice), *pair)
    assert vote_post(alice, battle.code, "b").status_code == 200
    for action in ("skip", "regenerate"):
        status, data = post(alice, battle.code, action)
        assert status == 409, action
        assert "vot" in data["error"]
    battle.refresh_from_db()
    assert battle.status == Battle.Status.VOTED
    assert Vote.objects.get().choice == "b"
    assert not AuditEntry.objects.filter(action__in=["battle.skip", "battle.regenerate"]).exists()


@pytest.mark.django_db
def test_a_bare_or_filled_body_is_refused_and_changes_nothing(alice, pair, generous):
    battle = ready_battle(session_voter(alice), *pair)
    for action in ("skip", "regenerate"):
        assert alice.post(f"/api/battles/{battle.code}/{action}").status_code == 400
        url = f"/api/battles/{battle.code}/{action}"
        filled = alice.post(url, {"turn": 0}, content_type="application/json")
        assert filled.status_code == 400 and "no fields" in filled.json()["error"]
    battle.refresh_from_db()
    assert battle.status == Battle.Status.READY
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_another_session_cannot_skip_or_regenerate(alice, bob, pair, generous):
    battle = ready_battle(session_voter(alice), *pair)
    session_voter(bob)
    for action in ("skip", "regenerate"):
        assert post(bob, battle.code, action)[0] == 403
        assert post(bob, "no-such-code", action)[0] == 404
    battle.refresh_from_db()
    assert battle.status == Battle.Status.READY


@pytest.mark.django_db
def test_a_generating_battle_cannot_be_regenerated_but_can_be_skipped(alice, pair, generous):
    battle = ready_battle(session_voter(alice), *pair)
    Battle.objects.filter(id=battle.id).update(status=Battle.Status.GENERATING)
    status, data = post(alice, battle.code, "regenerate")
    assert status == 409 and "Wait" in data["error"]
    assert post(alice, battle.code, "skip")[0] == 200


@pytest.mark.django_db
def test_regenerate_spends_the_generation_budget_and_is_refused_over_it(alice, pair, generous):
    battle = ready_battle(session_voter(alice), *pair)
    generous.ARENA_GENERATION_RATE_PER_VOTER = Rate(3, 3600)  # one regeneration (2), not two (4)
    assert post(alice, battle.code, "regenerate")[0] == 200
    Battle.objects.filter(id=battle.id).update(status=Battle.Status.READY)
    response = alice.post(f"/api/battles/{battle.code}/regenerate", {}, content_type="application/json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert AuditEntry.objects.filter(action="battle.regenerate").count() == 1


@pytest.mark.django_db(transaction=True)
def test_regenerate_answers_both_sides_again_and_only_the_final_pair_is_voted(demo_models, worker, alice):
    started = alice.post("/api/battles", {"prompt": "Name a river.", "modality": "text"}, "application/json")
    code = started.json()["code"]
    wait_for(battle_settled(code))
    first = {g.side: g.attempts for g in Generation.objects.filter(battle__code=code)}
    status, data = post(alice, code, "regenerate")
    assert status == 200 and data["state"]["status"] == "generating"
    assert {data["state"]["turns"][0][s]["output"] for s in "ab"} == {""}
    wait_for(battle_settled(code))
    again = {g.side: g for g in Generation.objects.filter(battle__code=code)}
    assert {s: g.attempts for s, g in again.items()} == {s: n + 1 for s, n in first.items()}
    assert all(g.status == "done" and g.output for g in again.values())
    entry = AuditEntry.objects.get(action="battle.regenerate")
    assert entry.before == {"status": "ready", "attempts": first}
    assert vote_post(alice, code, "tie").status_code == 200
    vote = Vote.objects.get()
    assert vote.battle.code == code and vote.choice == "tie"
    assert alice.get(f"/api/battles/{code}").json()["status"] == "voted"
