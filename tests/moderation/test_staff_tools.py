"""Staff tools that cannot corrupt a vote: battles (voted ones above all), their answers, votes and voters
are read-only in the admin and change only through audited actions; the votes list is filterable by model,
modality, counted and reason; audit entries name their targets; a refused action keeps the selection; the
model form offers backend kinds and rivals to choose from.

Personas (tests/moderation/conftest.py): root is a superuser, Mia a moderator, Charlie staff who may only
look, Dave not staff.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from arena.curation import model_weight_set, prompt_status_set
from arena.models import AuditEntry, Battle, Generation, ModelEntry, Prompt
from ranking.models import LeaderboardSnapshot
from ranking.publication import snapshot_publish
from tests.moderation.conftest import logged_in
from voting import integrity
from voting.models import Vote, Voter
from workers.backends import BACKEND_KINDS
from workers.services import generation_flag_record

pytestmark = pytest.mark.django_db


def voted_battle(model_a: ModelEntry, model_b: ModelEntry, *, modality: str = "text") -> Battle:
    voter = Voter.objects.create(session_hash=f"s{Voter.objects.count()}")
    battle = Battle.objects.create(
        voter=voter,
        model_a=model_a,
        model_b=model_b,
        modality=modality,
        conversation=["Which river is longest?"],
        status=Battle.Status.VOTED,
    )
    for side, model in (("a", model_a), ("b", model_b)):
        Generation.objects.create(
            battle=battle, turn=0, side=side, model=model, status="done", output=f"The Nile ({side})."
        )
    Vote.objects.create(battle=battle, voter=voter, choice="a")
    return battle


def state(battle: Battle) -> dict[str, Any]:
    """Everything a change could touch: the battle row, its answers, its vote and its voter."""
    return {
        "battle": Battle.objects.values().get(id=battle.id),
        "generations": list(Generation.objects.filter(battle=battle).order_by("id").values()),
        "vote": Vote.objects.values().get(battle=battle),
        "voter": Voter.objects.values().get(id=battle.voter_id),
    }


def checked_ids(html: str) -> set[str]:
    """The ids of the rows whose checkbox the change list renders checked."""
    boxes = re.findall(r"<input[^>]*name=\"_selected_action\"[^>]*>", html)
    return {re.search(r'value="([^"]+)"', box).group(1) for box in boxes if " checked" in box}


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


@pytest.fixture
def pair(make_model) -> tuple[ModelEntry, ModelEntry]:
    return make_model(slug="river-large"), make_model(slug="river-small")


# --- battles and their answers are read-only ------------------------------------------------------------


def tampering(battle: Battle, other: ModelEntry) -> dict[str, str]:
    """What a hand-made POST to the change form would try: another modality, status, model and conversation,
    and the inline answers' fields."""
    gens = list(Generation.objects.filter(battle=battle).order_by("id"))
    data = {
        "modality": "image",
        "status": "ready",
        "model_a": str(other.id),
        "model_b": str(other.id),
        "voter": "",
        "conversation": '["Something else"]',
        "generations-TOTAL_FORMS": str(len(gens)),
        "generations-INITIAL_FORMS": str(len(gens)),
        "generations-MIN_NUM_FORMS": "0",
        "generations-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for i, gen in enumerate(gens):
        data |= {f"generations-{i}-id": str(gen.id), f"generations-{i}-battle": str(battle.id)}
        data |= {f"generations-{i}-output": "rewritten", f"generations-{i}-status": "failed"}
        data |= {f"generations-{i}-model": str(other.id), f"generations-{i}-flagged": "on"}
    return data


@pytest.mark.parametrize("who", ["root", "moderator", "charlie"])
def test_a_post_to_a_voted_battles_change_form_changes_nothing_and_says_so(who, request, pair, make_model):
    battle = voted_battle(*pair)
    before = state(battle)
    client = logged_in(request.getfixturevalue(who))
    url = f"/admin/arena/battle/{battle.id}/change/"

    response = client.post(url, tampering(battle, make_model(slug="intruder")))

    assert response.status_code == 302 and response["Location"] == url
    shown = page(client, url)
    assert f"Battle {battle.code} is read-only: nothing was changed." in shown
    assert state(battle) == before, "not the battle, its answers, its vote nor its voter"
    assert not AuditEntry.objects.exists() and not LogEntry.objects.exists()


def test_the_battle_page_is_view_only_and_points_to_the_audited_actions(root, pair):
    battle = voted_battle(*pair)
    vote = Vote.objects.get(battle=battle)
    html = page(logged_in(root), f"/admin/arena/battle/{battle.id}/change/")
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert "Add another Generation</a>" not in html
    assert not re.search(r'<(select|textarea)[^>]*name="generations-', html), "the answers cannot be edited"
    assert '<select name="modality"' not in html and '<select name="status"' not in html
    assert "Read-only: a battle, its answers and its vote change only through audited actions." in html
    assert f'href="/admin/voting/vote/{vote.id}/change/"' in html
    assert "Add battle" not in page(logged_in(root), "/admin/arena/battle/")
    assert logged_in(root).get("/admin/arena/battle/add/").status_code == 403


def test_a_visitor_who_is_not_staff_is_sent_to_the_login_page(dave, pair):
    battle = voted_battle(*pair)
    before = state(battle)
    response = logged_in(dave).post(f"/admin/arena/battle/{battle.id}/change/", {"status": "ready"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert state(battle) == before


@pytest.mark.parametrize("path", ["voting/vote", "voting/voter"])
def test_votes_and_voters_are_read_only_too(path, root, pair):
    battle = voted_battle(*pair)
    before = state(battle)
    target = Vote.objects.get(battle=battle).id if path == "voting/vote" else battle.voter_id
    url = f"/admin/{path}/{target}/change/"
    fields = {"choice": "b", "counted": "", "exclusion_reason": "typed in", "flagged": "on", "banned": "on"}
    client = logged_in(root)
    response = client.post(url, fields)
    assert response.status_code == 302 and response["Location"] == url
    assert "read-only: nothing was changed" in page(client, url)
    assert state(battle) == before and not LogEntry.objects.exists()


def test_the_audited_actions_still_change_a_voted_battles_vote(moderator, pair):
    battle = voted_battle(*pair)
    vote = Vote.objects.get(battle=battle)
    client = logged_in(moderator)
    form = {"_selected_action": [vote.id], "reason": "paid voting", "index": 0}
    response = client.post("/admin/voting/vote/", {**form, "action": "exclude_votes"})
    assert response.status_code == 302
    vote.refresh_from_db()
    assert not vote.counted and vote.exclusion_reason == "paid voting"
    client.post("/admin/voting/vote/", {**form, "action": "restore_votes", "reason": "appeal upheld"})
    vote.refresh_from_db()
    assert vote.counted
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor__username")) == [
        ("vote.exclude", "mia"),
        ("vote.restore", "mia"),
    ]
    html = page(client, f"/admin/arena/battle/{battle.id}/change/")
    name = f"vote on battle {battle.code} (river-large vs river-small)"
    assert html.count(f'<a href="/admin/voting/vote/{vote.id}/change/">{name}</a>') == 2
    assert "voting.vote:" not in html


# --- the votes list ---------------------------------------------------------------------------------------


@pytest.fixture
def arena_votes(make_model) -> dict[str, Any]:
    text = [make_model(slug=f"text-{i}") for i in range(3)]
    image = [make_model(slug=f"image-{i}", modality="image", backend_kind="demo_image") for i in range(2)]
    battles = [
        voted_battle(text[0], text[1]),
        voted_battle(text[1], text[2]),
        voted_battle(text[2], text[0]),
        voted_battle(image[0], image[1], modality="image"),
    ]
    votes = [Vote.objects.get(battle=b) for b in battles]
    integrity.vote_exclude(vote_ids=[votes[1].id], reason="voter on a ring", actor_id=None, rule="staff-test")
    return {"text": text, "image": image, "battles": battles, "votes": votes}


def listed_codes(client: Client, query: str = "") -> set[str]:
    html = page(client, f"/admin/voting/vote/{query}")
    return set(re.findall(r'<th class="field-battle[^"]*"><a [^>]*>([^<]+)</a>', html))


def test_the_votes_list_shows_both_models_the_modality_counted_and_the_reason(root, arena_votes):
    html = page(logged_in(root), "/admin/voting/vote/")
    for header in ("Modality", "Model A", "Model B", "Counted", "Exclusion reason"):
        assert f">{header}</a>" in html or f">{header}</span>" in html, header
    row = re.search(r"<tr>.*?" + arena_votes["battles"][3].code + r".*?</tr>", html, re.S).group(0)
    assert "image-0" in row and "image-1" in row and "Image" in row
    excluded = re.search(r"<tr>.*?" + arena_votes["battles"][1].code + r".*?</tr>", html, re.S).group(0)
    assert "fraud sweep: voter on a ring" in excluded and 'alt="False"' in excluded


def test_the_votes_list_filters_by_model_modality_counted_and_reason(root, arena_votes):
    client = logged_in(root)
    code = [b.code for b in arena_votes["battles"]]
    text0 = arena_votes["text"][0]
    assert listed_codes(client, f"?model={text0.id}") == {code[0], code[2]}, "either side"
    assert listed_codes(client, "?battle__modality__exact=image") == {code[3]}
    assert listed_codes(client, "?counted__exact=0") == {code[1]}
    assert listed_codes(client, "?why=sweep") == {code[1]}
    assert listed_codes(client, "?why=flagged") == set()
    assert listed_codes(client, f"?model={text0.id}&counted__exact=1") == {code[0], code[2]}
    html = page(client, "/admin/voting/vote/")
    assert "By model" in html and "text-0 (text)" in html and "By modality" in html


def test_the_votes_list_is_searched_by_battle_code_and_model_slug(root, arena_votes):
    client = logged_in(root)
    code = [b.code for b in arena_votes["battles"]]
    assert listed_codes(client, f"?q={code[2]}") == {code[2]}
    assert listed_codes(client, "?q=image-1") == {code[3]}
    assert listed_codes(client, "?q=text-2") == {code[1], code[2]}
    assert "Battle code, voter code or model slug." in page(client, "/admin/voting/vote/")


def test_the_votes_list_with_a_hundred_votes_stays_a_few_queries(
    root, make_model, django_assert_max_num_queries
):
    models = [make_model(), make_model(), make_model(modality="3d", backend_kind="demo_3d")]
    for i in range(100):
        voted_battle(models[i % 2], models[(i + 1) % 2])
    client = logged_in(root)
    for query in ("", f"?model={models[0].id}", "?q=model", "?counted__exact=1&battle__modality__exact=text"):
        with django_assert_max_num_queries(10):
            response = client.get(f"/admin/voting/vote/{query}")
        assert response.status_code == 200 and response.content.decode().count('class="action-select"') == 100


# --- audit entries name their targets ----------------------------------------------------------------------


def test_audit_entries_name_their_targets_and_link_to_them(
    root, pair, make_model, django_assert_max_num_queries
):
    battle = voted_battle(*pair)
    vote = Vote.objects.get(battle=battle)
    gen = Generation.objects.get(battle=battle, side="b")
    integrity.vote_exclude(vote_ids=[vote.id], reason="paid", actor_id=root.id)
    integrity.voter_flag(voter_id=battle.voter_id, reason="sweep", reasons=["ring"], rule="fraud_sweep")
    model_weight_set(model_id=pair[0].id, weight=2.0, actor_id=root.id)
    prompt = Prompt.objects.create(text="Name   every river\nin <b>Europe</b>", status="pending")
    prompt_status_set(prompt_id=prompt.id, status="approved", actor_id=root.id)
    snapshot = LeaderboardSnapshot.objects.create(modality="image", style_control=True, data={"models": []})
    snapshot_publish(snapshot_id=snapshot.id, published=True, actor_id=root.id)
    generation_flag_record(generation_id=gen.id, reasons=("contains x",))
    AuditEntry.objects.create(action="vote.exclude", target_type="voting.vote", target_id="999999", rule="t")
    for n in range(30):  # a long page: names are read once per target type, not once per row
        model_weight_set(model_id=make_model().id, weight=float(n % 2), actor_id=root.id)

    client = logged_in(root)
    # The user and permissions, the filters, the count and rows, and one query per target type (six).
    with django_assert_max_num_queries(20):
        html = page(client, "/admin/arena/auditentry/")

    expected = {
        f"/admin/voting/vote/{vote.id}/change/": f"vote on battle {battle.code} (river-large vs river-small)",
        f"/admin/voting/voter/{battle.voter_id}/change/": f"voter {battle.voter.code}",
        f"/admin/arena/modelentry/{pair[0].id}/change/": "model river-large",
        f"/admin/arena/prompt/{prompt.id}/change/": "prompt “Name every river in &lt;b&gt;Europe&lt;/b&gt;”",
        f"/admin/arena/battle/{battle.id}/change/": f"answer B of battle {battle.code}, turn 1 (river-small)",
        f"/admin/ranking/leaderboardsnapshot/{snapshot.id}/change/": "Image board (overall, style control)",
    }
    for url, name in expected.items():
        assert f'<a href="{url}">{name}' in html, name
    assert "voting.vote 999999 (no longer stored)" in html
    assert not re.search(r"voting\.vote \d+<|voting\.voter \d+<", html), "no target shown by type and id"
    entry = AuditEntry.objects.get(action="vote.exclude", actor=root)
    detail = page(client, f"/admin/arena/auditentry/{entry.id}/change/")
    assert f'<a href="/admin/voting/vote/{vote.id}/change/">vote on battle {battle.code}' in detail


# --- a refused action keeps the selection ------------------------------------------------------------------


def test_a_refused_row_brings_the_list_back_with_the_same_rows_checked_and_the_error(root, make_model):
    runnable = make_model(slug="runnable", active=False)
    broken = make_model(slug="broken", backend_kind="imported", backend_config={}, active=False)
    untouched = make_model(slug="untouched", active=False)
    client = logged_in(root)
    chosen = [runnable.id, broken.id]
    form = {"action": "enable", "_selected_action": chosen, "apply": "1", "reason": "back from maintenance"}

    response = client.post("/admin/arena/modelentry/", form)

    assert response.status_code == 200, "the list itself, not a redirect that forgets the selection"
    html = response.content.decode()
    assert checked_ids(html) == {str(runnable.id), str(broken.id)}, "and only those"
    assert f'value="{untouched.id}"' in html
    assert "Broken cannot be enabled" in html and "1 changed, 0 already so." in html
    assert re.search(r'<option value="enable" selected>', html), "the action is still chosen"
    runnable.refresh_from_db()
    broken.refresh_from_db()
    assert runnable.active and not broken.active
    row = re.search(rf'<tr>.*?value="{runnable.id}".*?</tr>', html, re.S).group(0)
    assert 'alt="True"' in row, "the rows are read after the action: the change made shows"
    again = client.get("/admin/arena/modelentry/").content.decode()
    assert "cannot be enabled" not in again and checked_ids(again) == set(), "each message is shown once"


def test_an_action_without_a_reason_keeps_the_selection_and_changes_nothing(moderator, pair):
    votes = [Vote.objects.get(battle=voted_battle(*pair)) for _ in range(3)]
    chosen = [votes[0].id, votes[2].id]
    form = {"action": "exclude_votes", "_selected_action": chosen, "reason": " ", "index": 0}
    response = logged_in(moderator).post("/admin/voting/vote/?counted__exact=1", form)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Give a reason for this action; nothing was changed." in html
    assert checked_ids(html) == {str(votes[0].id), str(votes[2].id)}
    assert 'href="?counted__exact=0"' in html, "the list keeps its filters"
    assert Vote.objects.filter(counted=True).count() == 3 and not AuditEntry.objects.exists()


def test_a_refused_undo_keeps_the_selection_and_the_reason_typed(moderator, pair):
    battle = voted_battle(*pair)
    flag = integrity.voter_flag(voter_id=battle.voter_id, reason="x", reasons=["ring"], rule="fraud_sweep")
    integrity.audit_revert(entry_id=flag.entry.id, reason="first undo", actor_id=moderator.id)
    form = {"action": "undo", "_selected_action": [flag.entry.id], "reason": "NAT of a campus", "index": 0}
    response = logged_in(moderator).post("/admin/arena/auditentry/", form)
    html = response.content.decode()
    assert response.status_code == 200 and "has already been undone" in html
    assert checked_ids(html) == {str(flag.entry.id)}
    assert 'value="NAT of a campus"' in html
    assert AuditEntry.objects.filter(reverts=flag.entry).count() == 1


def test_an_action_that_succeeds_still_redirects(root, make_model):
    model = make_model(active=True)
    form = {"action": "disable", "_selected_action": [model.id], "apply": "1", "reason": "maintenance"}
    response = logged_in(root).post("/admin/arena/modelentry/", form)
    assert response.status_code == 302
    model.refresh_from_db()
    assert not model.active


# --- the model form -----------------------------------------------------------------------------------------


def model_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "slug": "new-model",
        "display_name": "New Model",
        "modality": "text",
        "backend_kind": "demo",
        "backend_config": '{"persona": "concise"}',
        "weight": "1.0",
        "active": "on",
        "released": "on",
    }
    return data | overrides


@pytest.fixture
def registry(make_model) -> dict[str, ModelEntry]:
    return {
        "me": make_model(slug="me"),
        "rival": make_model(slug="rival"),
        "painter": make_model(slug="painter", modality="image", backend_kind="demo_image", backend_config={}),
    }


def test_the_backend_kind_is_chosen_from_the_registry(root):
    html = page(logged_in(root), "/admin/arena/modelentry/add/")
    select = re.search(r'<select name="backend_kind".*?</select>', html, re.S).group(0)
    assert set(re.findall(r'<option value="([^"]+)"', select)) == set(BACKEND_KINDS)
    assert ">demo_image — Image</option>" in select and ">gallery — Image, 3D</option>" in select


def offered_targets(html: str) -> list[str]:
    """The labels of the battle-target checkboxes on a model form."""
    return re.findall(r'<input type="checkbox" name="battle_targets"[^>]*>\s*([^<]+?)\s*</label>', html)


def test_the_battle_targets_offer_only_rivals_of_the_same_modality(root, registry):
    html = page(logged_in(root), f"/admin/arena/modelentry/{registry['me'].id}/change/")
    assert offered_targets(html) == ["rival"]
    added = page(logged_in(root), "/admin/arena/modelentry/add/")
    assert sorted(offered_targets(added)) == ["me (Text)", "painter (Image)", "rival (Text)"]


def test_a_target_of_another_modality_or_the_model_itself_is_refused(root, registry):
    client = logged_in(root)
    me = registry["me"]
    url = f"/admin/arena/modelentry/{me.id}/change/"
    for target in (registry["painter"], me):
        response = client.post(url, model_form(slug="me", battle_targets=[target.id]))
        assert response.status_code == 200 and "errorlist" in response.content.decode()
        assert not me.battle_targets.exists()
    painted = model_form(battle_targets=[registry["painter"].id])
    response = client.post("/admin/arena/modelentry/add/", painted)
    assert "Battle targets must be text models like this one, not painter." in response.content.decode()
    assert not ModelEntry.objects.filter(slug="new-model").exists()
    response = client.post(url, model_form(slug="me", battle_targets=[registry["rival"].id]))
    assert response.status_code == 302 and list(me.battle_targets.all()) == [registry["rival"]]
    response = client.post("/admin/arena/modelentry/add/", model_form(battle_targets=[registry["rival"].id]))
    assert response.status_code == 302


def test_the_queue_help_text_says_which_queue_a_blank_means(root, registry):
    client = logged_in(root)
    changed = page(client, f"/admin/arena/modelentry/{registry['painter'].id}/change/")
    assert "Leave blank for its modality's queue: gen-image." in changed
    added = page(client, "/admin/arena/modelentry/add/")
    assert "gen-text, gen-image or gen-3d." in added
    assert "gen-." not in changed + added and "gen-<modality>" not in changed + added


def test_moderators_still_cannot_edit_the_model_registry(moderator, registry):
    response = logged_in(moderator).post(
        f"/admin/arena/modelentry/{registry['me'].id}/change/", model_form(slug="renamed")
    )
    assert response.status_code == 403 and not ModelEntry.objects.filter(slug="renamed").exists()



# --- the snapshot list -------------------------------------------------------------------------------------


def test_the_snapshot_list_marks_each_boards_public_snapshot_in_a_few_queries(
    root, django_assert_max_num_queries
):
    for style in (False, True):
        for n in range(40):
            LeaderboardSnapshot.objects.create(
                modality="text", style_control=style, published=n < 30, data={"models": []}
            )
    LeaderboardSnapshot.objects.create(modality="text", category="coding", published=True, data={})
    public = {
        LeaderboardSnapshot.objects.filter(style_control=style, category="", published=True).latest("id").id
        for style in (False, True)
    }
    client = logged_in(root)
    with django_assert_max_num_queries(14):  # not one per row: the public snapshot is read once per board
        html = page(client, "/admin/ranking/leaderboardsnapshot/?board=overall")
    rows = re.findall(r'value="(\d+)".*?<td class="field-public"><img [^>]*alt="(True|False)"', html, re.S)
    assert len(rows) == 80 and {int(i) for i, shown in rows if shown == "True"} == public
    filters = page(client, "/admin/ranking/leaderboardsnapshot/")
    assert '<a href="?board=overall">overall</a>' in filters
    assert '<a href="?board=coding">coding</a>' in filters
