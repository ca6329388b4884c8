"""An answer the content policy flags is hidden behind a click and its battle's vote does not count."""

from __future__ import annotations

import pytest

from arena.curation import audit_field_revert
from arena.models import AuditEntry, Battle, Generation, ModelEntry
from tests.conftest import battle_settled, wait_for
from tests.support.openai_server import Behaviour, OpenAIServer
from voting.models import Voter
from voting.services import vote_cast

pytestmark = pytest.mark.django_db(transaction=True)


def openai_model(slug: str, server: OpenAIServer, served: str) -> ModelEntry:
    return ModelEntry.objects.create(
        slug=slug,
        display_name=slug,
        backend_kind="openai",
        backend_config={"base_url": server.base_url, "model": served, "timeout": 2.0},
    )


@pytest.fixture
def flagged_battle(worker, alice, settings) -> str:
    """A settled battle whose "grim" side answered with a blocked term; the other side is clean."""
    settings.ARENA_BLOCKED_TERMS = ["hemlock"]
    replies = {
        "served-grim": Behaviour(reply="Mix hemlock into the tea."),
        "served-kind": Behaviour(reply="Tea."),
    }
    with OpenAIServer(models=replies) as server:
        openai_model("grim", server, "served-grim")
        openai_model("kind", server, "served-kind")
        response = alice.post(
            "/api/battles",
            {"prompt": "How do I make tea?", "modality": "text"},
            content_type="application/json",
        )
        code = response.json()["code"]
        wait_for(battle_settled(code))
    return code


def test_a_flagged_answer_is_stored_with_its_reason_and_the_page_is_told_to_hide_it(flagged_battle, alice):
    grim = Generation.objects.get(battle__code=flagged_battle, model__slug="grim")
    kind = Generation.objects.get(battle__code=flagged_battle, model__slug="kind")
    assert (
        grim.status == "done"
        and grim.flagged
        and grim.flag_reasons == ['contains the blocked term "hemlock"']
    )
    assert not kind.flagged
    state = alice.get(f"/api/battles/{flagged_battle}").json()
    assert state["status"] == "ready", "a flagged answer still lets the voter vote"
    assert state["turns"][0][grim.side]["flagged"] is True
    assert state["turns"][0][kind.side]["flagged"] is False
    assert state["turns"][0][grim.side]["output"] == "Mix hemlock into the tea.", (
        "shown on click, not refetched"
    )
    entry = AuditEntry.objects.get(target_type="arena.generation", target_id=str(grim.id))
    assert entry.rule == "content_policy" and entry.action == "generation.flag"


def test_a_vote_on_a_battle_with_a_flagged_answer_is_kept_but_not_counted(flagged_battle):
    battle = Battle.objects.get(code=flagged_battle)
    vote = vote_cast(code=flagged_battle, voter=Voter.objects.get(id=battle.voter_id), choice="a")
    assert vote.counted is False
    assert vote.exclusion_reason == "an answer was hidden by the content filter"


def test_a_moderator_can_revert_a_wrong_flag_from_the_audit_log(flagged_battle, django_user_model):
    grim = Generation.objects.get(battle__code=flagged_battle, model__slug="grim")
    moderator = django_user_model.objects.create_user("mod", is_staff=True)
    entry = AuditEntry.objects.get(target_type="arena.generation", target_id=str(grim.id))
    undo = audit_field_revert(entry_id=entry.id, actor_id=moderator.id, reason="a poem, not a recipe")
    grim.refresh_from_db()
    assert not grim.flagged and grim.flag_reasons == []
    assert undo.reverts == entry and undo.actor == moderator
