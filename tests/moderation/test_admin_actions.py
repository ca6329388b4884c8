"""Every moderation action in the staff console: refused to non-staff and to staff without the permission,
applied with an audit entry for those who hold it, and reversible from the log."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import models
from django.utils import timezone

from arena.curation import audit_field_revert, model_active_set, model_weight_set
from arena.errors import Conflict, InvalidInput
from arena.models import AuditEntry, Battle, Generation, ModelEntry, Prompt
from ranking.models import LeaderboardSnapshot
from ranking.publication import snapshot_freeze, snapshot_public, snapshot_publish
from tests.moderation.conftest import logged_in
from voting.models import Vote, Voter

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Action:
    path: str  # app/model in the admin URL
    name: str
    start: dict[str, Any] = field(default_factory=dict)  # the target's fields before the action
    data: dict[str, str] = field(default_factory=dict)
    moderators: bool = True  # whether the Moderators group may run it

    def __str__(self) -> str:
        return f"{self.path}:{self.name}"


ACTIONS = [
    Action("arena/modelentry", "enable", {"active": False}, moderators=False),
    Action("arena/modelentry", "disable", {"active": True}, moderators=False),
    Action("arena/modelentry", "set_weight", {"weight": 1.0}, {"weight": "2.5"}, moderators=False),
    Action("arena/modelentry", "probe", {"outage_since": timezone.now()}, moderators=False),
    Action("arena/prompt", "approve", {"status": "pending"}),
    Action("arena/prompt", "block", {"status": "pending"}),
    Action("arena/battle", "export_jsonl"),
    Action("ranking/leaderboardsnapshot", "publish", {"published": False}),
    Action("ranking/leaderboardsnapshot", "unpublish", {"published": True}),
    Action("ranking/leaderboardsnapshot", "freeze", {"frozen": False}),
    Action("ranking/leaderboardsnapshot", "unfreeze", {"frozen": True}),
]


def voted_battle(model_a: ModelEntry, model_b: ModelEntry) -> Battle:
    voter = Voter.objects.create(session_hash="s" * 64)
    battle = Battle.objects.create(
        voter=voter, model_a=model_a, model_b=model_b, conversation=["Hi"], status=Battle.Status.VOTED
    )
    for side, model in (("a", model_a), ("b", model_b)):
        Generation.objects.create(
            battle=battle, turn=0, side=side, model=model, status="done", output=f"{side}!"
        )
    Vote.objects.create(battle=battle, voter=voter, choice="a")
    return battle


def target_for(action: Action, make_model) -> models.Model:
    model: models.Model
    if action.path == "arena/modelentry":
        model = make_model()
    elif action.path == "arena/prompt":
        model = Prompt.objects.create(text="Is this fine?")
    elif action.path == "arena/battle":
        model = voted_battle(make_model(), make_model())
    else:
        model = LeaderboardSnapshot.objects.create(modality="text", data={"models": []})
    type(model).objects.filter(pk=model.pk).update(**action.start)
    return model


def row_state(obj: models.Model) -> dict[str, Any]:
    return type(obj).objects.values().get(pk=obj.pk)


def run(user: User, action: Action, obj: models.Model):
    data = {
        "action": action.name,
        "_selected_action": [obj.pk],
        "apply": "1",
        "reason": "test",
        **action.data,
    }
    return logged_in(user).post(f"/admin/{action.path}/", data)


def took_effect(response, before: dict, obj: models.Model) -> bool:
    if response.has_header("Content-Disposition"):
        return True
    return row_state(obj) != before


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_a_user_without_staff_status_is_sent_to_the_login_page_and_nothing_changes(action, make_model, dave):
    obj = target_for(action, make_model)
    before = row_state(obj)
    response = run(dave, action, obj)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert row_state(obj) == before and not AuditEntry.objects.exists()


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_staff_without_the_permission_cannot_run_the_action(action, make_model, charlie):
    obj = target_for(action, make_model)
    before = row_state(obj)
    response = run(charlie, action, obj)
    assert response.status_code in (200, 302, 403)
    assert not took_effect(response, before, obj) and not AuditEntry.objects.exists()


@pytest.mark.parametrize("action", [a for a in ACTIONS if not a.moderators], ids=str)
def test_moderators_cannot_change_the_model_registry(action, make_model, moderator):
    obj = target_for(action, make_model)
    before = row_state(obj)
    assert not took_effect(run(moderator, action, obj), before, obj)


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_the_action_works_for_those_who_hold_the_permission(action, make_model, root, moderator):
    obj = target_for(action, make_model)
    before = row_state(obj)
    response = run(moderator if action.moderators else root, action, obj)
    assert took_effect(response, before, obj)


@pytest.mark.parametrize("action", [a for a in ACTIONS if a.name not in ("probe", "export_jsonl")], ids=str)
def test_each_moderation_action_writes_who_what_why_before_and_after(action, make_model, root):
    obj = target_for(action, make_model)
    before = row_state(obj)
    run(root, action, obj)
    entry = AuditEntry.objects.get()
    assert entry.actor == root and entry.reason == "test"
    assert entry.target_type == action.path.replace("/", ".") and entry.target_id == str(obj.pk)
    changed = next(iter(entry.after))
    assert entry.before == {changed: before[changed]} and entry.after == {changed: row_state(obj)[changed]}


def test_the_first_click_asks_for_a_reason_before_changing_anything(make_model, root):
    model = make_model(active=True)
    response = logged_in(root).post(
        "/admin/arena/modelentry/", {"action": "disable", "_selected_action": [model.pk]}
    )
    assert response.status_code == 200 and "Kept in the audit log" in response.content.decode()
    model.refresh_from_db()
    assert model.active and not AuditEntry.objects.exists()


def test_a_model_without_a_runnable_backend_cannot_be_enabled(make_model, root):
    model = make_model(backend_kind="imported", backend_config={}, active=False)
    with pytest.raises(InvalidInput, match="cannot be enabled"):
        model_active_set(model_id=model.id, active=True, actor_id=root.id)
    response = run(root, Action("arena/modelentry", "enable"), model)
    # Refused: the list comes back (not a redirect) with the reason and the row still checked.
    assert response.status_code == 200 and "cannot be enabled" in response.content.decode()
    model.refresh_from_db()
    assert not model.active


def test_a_weight_change_is_reverted_from_the_log_and_a_second_revert_is_refused(make_model, root, moderator):
    model = make_model(weight=1.0)
    entry = model_weight_set(model_id=model.id, weight=3.0, actor_id=root.id, reason="boost for new model")
    undo = audit_field_revert(entry_id=entry.id, actor_id=moderator.id)
    model.refresh_from_db()
    assert model.weight == 1.0
    assert undo.reverts_id == entry.id and undo.before == {"weight": 3.0} and undo.after == {"weight": 1.0}
    with pytest.raises(Conflict, match="reverted already"):
        audit_field_revert(entry_id=entry.id, actor_id=moderator.id)


def test_a_revert_is_refused_when_the_row_changed_since(make_model, root):
    model = make_model(active=True)
    first = model_active_set(model_id=model.id, active=False, actor_id=root.id)
    model_weight_set(model_id=model.id, weight=0.0, actor_id=root.id)
    model_active_set(model_id=model.id, active=True, actor_id=root.id)
    with pytest.raises(Conflict, match="changed since"):
        audit_field_revert(entry_id=first.id, actor_id=root.id)


def test_a_prompt_approval_is_reverted_to_pending(root):
    prompt = Prompt.objects.create(text="Is this fine?", status=Prompt.Status.PENDING)
    run(root, Action("arena/prompt", "approve"), prompt)
    audit_field_revert(entry_id=AuditEntry.objects.get().id, actor_id=root.id)
    prompt.refresh_from_db()
    assert prompt.status == Prompt.Status.PENDING


def test_the_public_board_is_the_latest_frozen_snapshot_else_the_latest_published(root):
    def snap() -> LeaderboardSnapshot:
        return LeaderboardSnapshot.objects.create(modality="text", data={"models": []})

    old, middle, new = snap(), snap(), snap()
    assert snapshot_public(modality="text") is None, "nothing is public before it is published"
    snapshot_publish(snapshot_id=old.id, published=True, actor_id=root.id)
    snapshot_publish(snapshot_id=middle.id, published=True, actor_id=root.id)
    assert snapshot_public(modality="text") == middle
    entry = snapshot_freeze(snapshot_id=old.id, frozen=True, actor_id=root.id, reason="reviewing a vote ring")
    snapshot_publish(snapshot_id=new.id, published=True, actor_id=root.id)
    assert snapshot_public(modality="text") == old, "a frozen board ignores newer snapshots"
    audit_field_revert(entry_id=entry.id, actor_id=root.id)
    assert snapshot_public(modality="text") == new
    assert snapshot_public(modality="text", style_control=True) is None, "each board is its own"


def test_the_battle_page_shows_both_answers_side_by_side_with_the_vote_and_its_signals(make_model, root):
    battle = voted_battle(make_model(), make_model())
    Generation.objects.filter(battle=battle, side="b").update(flagged=True, flag_reasons=["contains x"])
    Vote.objects.filter(battle=battle).update(counted=False, exclusion_reason="voter banned")
    html = logged_in(root).get(f"/admin/arena/battle/{battle.pk}/change/").content.decode()
    assert 'data-side="a">a!' in html and 'data-side="b">b!' in html
    assert "hidden by the content filter: contains x" in html
    assert "voter banned" in html and "Seconds to vote" in html


def test_the_export_action_downloads_the_selected_battles_only(make_model, root):
    a, b = make_model(), make_model()
    chosen, other = voted_battle(a, b), voted_battle(a, b)
    response = logged_in(root).post(
        "/admin/arena/battle/", {"action": "export_jsonl", "_selected_action": [chosen.pk]}
    )
    lines = b"".join(response.streaming_content).splitlines()
    records = [orjson.loads(line) for line in lines]
    assert [r["question_id"] for r in records] == [chosen.code] and other.code not in str(records)
    assert records[0]["conversation_a"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "a!"},
    ]


def test_setup_moderators_can_run_twice(db):
    out = io.StringIO()
    call_command("setup_moderators", stdout=out)
    call_command("setup_moderators", stdout=out)
    assert "0 permission(s) added" in out.getvalue().splitlines()[-1]
