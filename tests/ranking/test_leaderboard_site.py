"""Leaderboards in the site: tallies kept by votes, snapshots, the JSON endpoint and the page."""

from __future__ import annotations

import json
import random

import pytest
from channels.testing import WebsocketCommunicator

from arena.asgi import application
from arena.models import Battle, Generation, ModelEntry
from ranking.engine import STYLE_FEATURES
from ranking.models import PairTally
from ranking.services import leaderboard_compute, leaderboard_refresh
from ranking.tallies import _rebuild_in_python, tally_rebuild
from voting.models import Vote, Voter
from voting.services import vote_cast

TALLY_FIELDS = ("modality", "category", "model_lo", "model_hi", "lo_won", "hi_won", "ties")


def battle_voted(voter: Voter, a: ModelEntry, b: ModelEntry, choice: str, prompt: str = "hi") -> Vote:
    battle = Battle.objects.create(voter=voter, model_a=a, model_b=b, conversation=[prompt], status="ready")
    for side, model in (("a", a), ("b", b)):
        Generation.objects.create(
            battle=battle, turn=0, side=side, model=model, status="done", output="Fine."
        )
    return vote_cast(code=battle.code, voter=voter, choice=choice)


@pytest.fixture
def three_models(make_model) -> list[ModelEntry]:
    return [make_model(slug=s, display_name=s.title()) for s in ("strong", "middle", "weak")]


def seed_votes(voter: Voter, models: list[ModelEntry], n: int = 150, seed: int = 0) -> None:
    """n honest votes by Bradley-Terry on fixed skills, each by a different voter (as a crowd votes)."""
    del voter
    rng = random.Random(seed)
    skill = {m.id: s for m, s in zip(models, (2.0, 1.0, 0.0), strict=True)}
    for _ in range(n):
        a, b = rng.sample(models, 2)
        p = 1 / (1 + 10 ** ((skill[b.id] - skill[a.id]) * 100 / 400))
        crowd = Voter.objects.create(session_hash=f"crowd-{seed}-{rng.random()}")
        battle_voted(crowd, a, b, "a" if rng.random() < p else "b")


def test_votes_keep_the_pair_tallies_equal_to_a_rebuild(three_models, voter):
    seed_votes(voter, three_models, n=60)
    battle_voted(voter, three_models[0], three_models[1], "tie", prompt="def f(): return 1")
    before = sorted(
        PairTally.objects.values_list(
            "modality", "category", "model_lo", "model_hi", "lo_won", "hi_won", "ties"
        )
    )
    tally_rebuild()
    after = sorted(
        PairTally.objects.values_list(
            "modality", "category", "model_lo", "model_hi", "lo_won", "hi_won", "ties"
        )
    )
    assert before == after
    assert PairTally.objects.filter(category="coding").exists()
    PairTally.objects.all().delete()
    _rebuild_in_python()  # the SQLite path must agree with PostgreSQL's single statement
    assert sorted(PairTally.objects.values_list(*TALLY_FIELDS)) == before


def test_a_snapshot_orders_models_by_skill_with_intervals(three_models, voter, settings):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 5
    seed_votes(voter, three_models)
    snapshot = leaderboard_compute(modality="text")
    rows = snapshot.data["models"]
    assert [r["slug"] for r in rows] == ["strong", "middle", "weak"]
    assert all(r["lower"] < r["rating"] < r["upper"] for r in rows)
    assert rows[0]["rank_ub"] == 1 and sum(r["battles"] for r in rows) == 2 * snapshot.n_votes == 300
    pairs = snapshot.data["pairs"]
    assert pairs["models"] == ["strong", "middle", "weak"] and pairs["battles"][0][0] == 0
    assert pairs["win_rate"][0][2] > 0.5 > pairs["win_rate"][2][0]


def test_excluded_votes_never_reach_the_board(three_models, voter, settings):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 1
    leaky = ModelEntry.objects.create(slug="leaky-bot", display_name="Leaky", backend_kind="demo")
    battle = Battle.objects.create(
        voter=voter, model_a=leaky, model_b=three_models[0], conversation=["x"], status="ready"
    )
    Generation.objects.create(
        battle=battle, turn=0, side="a", model=leaky, status="done", output="I am Leaky."
    )
    Generation.objects.create(
        battle=battle, turn=0, side="b", model=three_models[0], status="done", output="Hi"
    )
    assert not vote_cast(code=battle.code, voter=voter, choice="a").counted
    assert leaderboard_compute(modality="text") is None


def test_the_style_controlled_board_reports_coefficients(three_models, voter, settings):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 5
    seed_votes(voter, three_models, n=90)
    snapshot = leaderboard_compute(modality="text", style_control=True)
    assert set(snapshot.data["style_coefficients"]) == set(STYLE_FEATURES)
    assert snapshot.data["models"][0]["slug"] == "strong"


def test_refresh_builds_overall_style_and_category_boards(three_models, voter, settings):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 1
    seed_votes(voter, three_models, n=30)
    battle_voted(voter, three_models[0], three_models[2], "a", prompt="Write a python function")
    boards = {(s.category, s.style_control) for s in leaderboard_refresh(modality="text")}
    assert boards == {("", False), ("", True), ("coding", False)}


def test_the_json_endpoint_serves_the_latest_snapshot_and_history(client, three_models, voter, settings):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 1
    seed_votes(voter, three_models, n=40)
    leaderboard_compute(modality="text")
    seed_votes(voter, three_models, n=20, seed=1)
    leaderboard_compute(modality="text")
    data = client.get("/api/leaderboard/text").json()
    assert data["snapshot"]["n_votes"] == 60 and len(data["history"]) == 2
    assert client.get("/api/leaderboard/video").status_code == 404
    assert client.get("/api/leaderboard/text?category=nope").status_code == 400
    assert client.get("/api/leaderboard/text?style=2").status_code == 400
    assert client.get("/api/leaderboard/image").json()["snapshot"] is None


def test_the_leaderboard_page_renders_with_bounded_queries(
    client, three_models, voter, settings, django_assert_max_num_queries
):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 1
    seed_votes(voter, three_models, n=30)
    leaderboard_compute(modality="text")
    with django_assert_max_num_queries(6):
        html = client.get("/leaderboard/text/").content.decode()
    assert "Strong" in html and "plot-winrate" in html
    assert client.get("/leaderboard/").status_code == 302


@pytest.mark.django_db(transaction=True)
async def test_an_open_page_hears_about_a_new_snapshot(three_models_async):
    socket = WebsocketCommunicator(
        application, "/ws/leaderboard/text/", headers=[(b"origin", b"http://localhost")]
    )
    assert (await socket.connect())[0]
    from asgiref.sync import sync_to_async

    await sync_to_async(leaderboard_compute)(modality="text")
    event = json.loads(await socket.receive_from(timeout=5))
    assert event == {"type": "snapshot", "modality": "text", "category": "", "style_control": False}
    await socket.disconnect()


@pytest.fixture
def three_models_async(transactional_db, make_model, settings):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 1
    models = [make_model(slug=s) for s in ("s1", "s2", "s3")]
    voter = Voter.objects.create(session_hash="v")
    seed_votes(voter, models, n=20)
    return models


@pytest.mark.django_db(transaction=True)
async def test_the_leaderboard_socket_refuses_unknown_boards_and_answers_pings():
    socket = WebsocketCommunicator(
        application, "/ws/leaderboard/video/", headers=[(b"origin", b"http://localhost")]
    )
    connected, code = await socket.connect()
    assert not connected and code == 4404
    socket = WebsocketCommunicator(
        application, "/ws/leaderboard/text/", headers=[(b"origin", b"http://localhost")]
    )
    assert (await socket.connect())[0]
    await socket.send_to(text_data='{"type": "ping"}')
    assert json.loads(await socket.receive_from()) == {"type": "pong"}
    await socket.send_to(text_data="nope")
    assert json.loads(await socket.receive_from())["error"] == "messages must be JSON"
    await socket.disconnect()
