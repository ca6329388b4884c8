"""Candidates are remembered per process between battle starts, and forgotten the moment any model changes."""

from __future__ import annotations

import pytest
from django.test import override_settings

from arena.selectors import model_candidates
from workers.services import model_health_record


def _ids(modality: str = "text") -> set[int]:
    return {c.id for c in model_candidates(modality, live_input="text")}


@pytest.mark.django_db
def test_a_model_entering_outage_leaves_sampling_at_once(make_model):
    up, down = make_model(), make_model()
    assert _ids() == {up.id, down.id}
    with override_settings(ARENA_OUTAGE_AFTER_FAILURES=2):
        model_health_record(model_id=down.id, ok=False)
        assert _ids() == {up.id, down.id}, "one failure is not an outage"
        model_health_record(model_id=down.id, ok=False)
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
