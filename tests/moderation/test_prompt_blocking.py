"""A prompt the content policy flags is refused before anything is stored or queued."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from celery.signals import before_task_publish

from arena.models import AuditEntry, Battle, Generation, Prompt
from tests.conftest import battle_settled, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published_tasks() -> Iterator[list[str]]:
    """Names of the Celery tasks sent to the broker during the test."""
    sent: list[str] = []
    lock = threading.Lock()

    def record(sender: str | None = None, **kwargs: object) -> None:
        with lock:
            sent.append(str(sender))

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


@pytest.fixture
def blocked_terms(settings) -> None:
    settings.ARENA_BLOCKED_TERMS = ["nerve agent"]


def start(client, prompt: str):
    return client.post(
        "/api/battles", {"prompt": prompt, "modality": "text"}, content_type="application/json"
    )


def test_a_flagged_prompt_never_reaches_a_worker(demo_models, worker, alice, blocked_terms, published_tasks):
    response = start(alice, "How do I synthesise a Nerve Agent at home?")
    assert response.status_code == 422
    assert response.json() == {
        "error": 'This prompt was blocked by the content policy: contains the blocked term "nerve agent". '
        "Please rephrase it.",
        "code": "content_blocked",
    }
    assert not Battle.objects.exists() and not Generation.objects.exists()
    assert published_tasks == []

    # The same client with a clean prompt does reach the worker: the check above is not vacuous.
    response = start(alice, "How do vaccines work?")
    assert response.status_code == 201
    wait_for(battle_settled(response.json()["code"]))
    assert published_tasks.count("workers.tasks.generation_run_task") == 2


def test_a_flagged_follow_up_is_refused_and_the_battle_stays_ready(
    demo_models, worker, alice, blocked_terms, published_tasks
):
    code = start(alice, "Tell me about rivers.").json()["code"]
    wait_for(battle_settled(code))
    published_tasks.clear()
    response = alice.post(
        f"/api/battles/{code}/continue",
        {"prompt": "now the nerve agent part"},
        content_type="application/json",
    )
    assert response.status_code == 422 and "blocked by the content policy" in response.json()["error"]
    battle = Battle.objects.get(code=code)
    assert battle.status == Battle.Status.READY and battle.conversation == ["Tell me about rivers."]
    assert Generation.objects.filter(battle=battle).count() == 2
    assert published_tasks == []


def test_a_refused_prompt_waits_in_the_moderation_queue_once_with_the_rule_in_the_audit_log(
    demo_models, alice, blocked_terms
):
    for _ in range(2):
        assert start(alice, "nerve agent please").status_code == 422
    prompt = Prompt.objects.get(status=Prompt.Status.BLOCKED)
    assert prompt.text == "nerve agent please" and prompt.prompt_set is None
    entry = AuditEntry.objects.get(target_type="arena.prompt", target_id=str(prompt.id))
    assert entry.rule == "content_policy" and entry.actor is None
    assert entry.action == "prompt.block" and "nerve agent" in entry.reason


def test_a_plain_form_post_shows_the_refusal_on_the_page(demo_models, alice, blocked_terms):
    response = alice.post("/api/battles", {"prompt": "nerve agent", "modality": "text"})
    assert response.status_code == 422
    assert "This prompt was blocked by the content policy" in response.content.decode()


def test_when_the_check_is_down_and_failing_closed_the_prompt_is_refused_as_unavailable(
    demo_models, alice, settings
):
    settings.ARENA_MODERATION_API_URL = "http://127.0.0.1:9/v1/moderations"  # nothing listens on port 9
    settings.ARENA_MODERATION_API_TIMEOUT = 0.5
    settings.ARENA_MODERATION_FAIL_CLOSED = True
    response = start(alice, "How do vaccines work?")
    assert response.status_code == 503 and "unavailable" in response.json()["error"]
    assert not Battle.objects.exists()
