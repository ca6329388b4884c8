"""Vote integrity at the database: one vote per battle under concurrency, identity-leak voiding."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from arena.errors import Conflict
from arena.models import Battle, Generation
from voting.leak import leak_find, leak_terms
from voting.models import Vote
from voting.services import vote_cast


def ready_battle(voter, model_a, model_b, out_a="Plain answer.", out_b="Another answer.") -> Battle:
    battle = Battle.objects.create(
        voter=voter, model_a=model_a, model_b=model_b, conversation=["hi"], status=Battle.Status.READY
    )
    Generation.objects.create(battle=battle, turn=0, side="a", model=model_a, status="done", output=out_a)
    Generation.objects.create(battle=battle, turn=0, side="b", model=model_b, status="done", output=out_b)
    return battle


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_votes_on_one_battle_store_exactly_one(make_model, voter):
    battle = ready_battle(voter, make_model(), make_model())
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def cast(choice: str) -> None:
        barrier.wait()
        try:
            vote_cast(code=battle.code, voter=voter, choice=choice)
            result = "ok"
        except Conflict:
            result = "conflict"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=cast, args=(["a", "b", "tie", "both_bad"][i % 4],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 19 + ["ok"]
    assert Vote.objects.filter(battle=battle).count() == 1
    assert Battle.objects.get(id=battle.id).status == Battle.Status.VOTED


@pytest.mark.django_db
def test_an_answer_naming_a_registered_model_is_stored_but_not_counted(make_model, voter):
    make_model(slug="llama-3-8b", display_name="Llama 3 8B", organization="Meta")
    battle = ready_battle(voter, make_model(), make_model(), out_a="As Llama-3 8b, I think the sky is blue.")
    vote = vote_cast(code=battle.code, voter=voter, choice="a")
    assert vote.counted is False
    assert "answer A" in vote.exclusion_reason and "llama 3 8b" in vote.exclusion_reason


@pytest.mark.django_db
def test_an_answer_naming_its_own_organization_is_not_counted(make_model, voter):
    a = make_model(organization="Example Labs")
    battle = ready_battle(voter, a, make_model(), out_b="Hello", out_a="I was trained by example labs.")
    vote = vote_cast(code=battle.code, voter=voter, choice="tie")
    assert not vote.counted and "example labs" in vote.exclusion_reason


@pytest.mark.django_db
def test_a_prompt_naming_a_model_does_not_void_the_vote(make_model, voter):
    a, b = make_model(slug="gpt-4o"), make_model()
    battle = ready_battle(voter, a, b)
    battle.conversation = ["Are you better than gpt-4o?"]
    battle.save()
    assert vote_cast(code=battle.code, voter=voter, choice="b").counted


def test_leak_terms_match_whole_words_only():
    terms = leak_terms(["phi-3", "Mistral", "", "ab"])
    assert leak_find([("a", "I love Mistral's answers")], terms).term == "mistral"
    assert leak_find([("a", "graphi-3 and mistrals")], terms) is None
    assert leak_find([("b", "PHI 3 here")], terms).side == "b"
    assert "ab" not in terms, "two-letter names would void too many votes"
