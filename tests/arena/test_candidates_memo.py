"""Candidates are remembered per process between battle starts, and forgotten the moment any model changes."""

from __future__ import annotations

import pytest
from django.test import override_settings

from arena.selectors import model_candidates
from workers.services import model_health_record, model_probe


def _ids(modality: str = "text") -> set[int]:
    return {c.id for c in model_candidates(modality, live_input="text")}


@pytest.mark.django_db
def test_a_model_entering_outage_leaves_sampling_at_once(make_model):
    up, down = make_model(), make_model(backend_config={"persona": "concise", "fail_rate": 1})
    assert _ids() == {up.id, down.id}
    with override_settings(ARENA_OUTAGE_AFTER_FAILURES=2):
        model_health_record(model_id=down.id, ok=False)
        assert _ids() == {up.id, down.id}, "one failure is not an outage"
        model_health_record(model_id=down.id, ok=False)
        assert _ids() == {up.id, down.id}, "a streak asks for a probe; the probe decides"
        model_probe(model_id=down.id, confirm=True)  # the probe the streak asked for fails too
    assert _ids() == {up.id}


@pytest.mark.django_db
def test_saving_adding_or_retargeting_a_model_is_seen_by_the_next_draw(make_model):
    first = make_model()
    assert _ids() == {first.id}
    second = make_model()
    assert _ids() == {first.id, second.id}
    first.weight = 0
    first.save(update_fields=["weight"])
    assert _ids() == {second.id}
    first.weight = 1
    first.save(update_fields=["weight"])
    first.battle_targets.add(second)
    targets = {c.id: c.targets for c in model_candidates("text", live_input="text")}
    assert targets[first.id] == frozenset({second.id})
    second.delete()
    assert _ids() == {first.id}


@pytest.mark.django_db
def test_a_model_added_between_votes_is_looked_for_in_the_next_answers(make_model, alice):
    from django.utils import timezone

    from arena.models import Battle, Generation
    from tests.support.challenge import vote_post
    from tests.support.media import client_voter
    from voting.models import Vote

    voter = client_voter(alice)
    a, b = make_model(), make_model()

    def battle_saying(text: str) -> Battle:
        battle = Battle.objects.create(
            voter=voter, model_a=a, model_b=b, conversation=["hi"], status="ready", ready_at=timezone.now()
        )
        for side, model in (("a", a), ("b", b)):
            Generation.objects.create(
                battle=battle, turn=0, side=side, model=model, status="done", output=text
            )
        return battle

    first = battle_saying("I am Zephyrine, your helpful assistant.")
    assert vote_post(alice, first.code, "a").status_code == 200
    assert Vote.objects.get(battle=first).counted, "no model is called Zephyrine yet"
    make_model(backend_config={"persona": "concise", "aliases": ["Zephyrine"]})
    second = battle_saying("I am Zephyrine, your helpful assistant.")
    assert vote_post(alice, second.code, "a").status_code == 200
    assert not Vote.objects.get(battle=second).counted, "the new model's alias was missed"
