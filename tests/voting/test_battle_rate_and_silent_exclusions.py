"""Starting battles is rate limited too; integrity exclusions stay silent towards the voter."""

from __future__ import annotations

import pytest

from arena.models import Battle
from voting.models import Vote
from voting.rates import rate_parse
from voting.reasons import FLAGGED, labelled


@pytest.mark.django_db
def test_starting_battles_past_the_limit_gets_429_with_retry_after(demo_models, alice, settings):
    settings.ARENA_BATTLE_RATE_PER_VOTER = rate_parse("2/3600", name="ARENA_BATTLE_RATE_PER_VOTER")
    for _ in range(2):
        response = alice.post(
            "/api/battles", {"prompt": "hi", "modality": "text"}, content_type="application/json"
        )
        assert response.status_code == 201
    response = alice.post(
        "/api/battles", {"prompt": "hi", "modality": "text"}, content_type="application/json"
    )
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "new battles" in response.json()["error"]
    assert Battle.objects.count() == 2


@pytest.mark.django_db
def test_a_vote_left_out_by_the_integrity_checks_looks_counted_to_its_voter(demo_models, alice):
    data = alice.post(
        "/api/battles", {"prompt": "hi", "modality": "text"}, content_type="application/json"
    ).json()
    battle = Battle.objects.get(code=data["code"])
    Battle.objects.filter(id=battle.id).update(status="voted")
    Vote.objects.create(
        battle=battle,
        voter=battle.voter,
        choice="a",
        counted=False,
        exclusion_reason=labelled(FLAGGED, "position_bias"),
    )
    state = alice.get(f"/api/battles/{battle.code}").json()
    assert state["vote"]["counted"] is True and state["vote"]["reason"] == ""
    Vote.objects.filter(battle=battle).update(exclusion_reason="identity leak: answer A names 'x'")
    state = alice.get(f"/api/battles/{battle.code}").json()
    assert state["vote"]["counted"] is False and "identity leak" in state["vote"]["reason"]
