"""The public read-only API: published leaderboards, battle statistics, and the OpenAPI document."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import Resolver404, resolve

from arena.openapi import openapi_document
from ranking.models import LeaderboardSnapshot
from ranking.publication import snapshot_freeze, snapshot_publish

pytestmark = pytest.mark.django_db

BOARD = {"models": [{"slug": "m1", "rating": 1010.5, "lower": 1000.0, "upper": 1020.0, "provisional": False}]}


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


def snapshot(**fields: object) -> LeaderboardSnapshot:
    return LeaderboardSnapshot.objects.create(**{"modality": "text", "data": BOARD, "n_votes": 42, **fields})


def test_a_board_that_was_never_published_is_a_json_404(client):
    snapshot()
    response = client.get("/api/v1/leaderboards/text")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert client.get("/api/v1/leaderboards/smell").status_code == 404


def test_the_latest_published_board_is_served_with_its_models(client, root):
    first, second = snapshot(), snapshot(data={"models": []})
    snapshot_publish(snapshot_id=first.id, published=True, actor_id=root.id)
    body = client.get("/api/v1/leaderboards/text").json()
    assert body["models"] == BOARD["models"] and body["n_votes"] == 42 and body["frozen"] is False
    snapshot_publish(snapshot_id=second.id, published=True, actor_id=root.id)
    assert client.get("/api/v1/leaderboards/text").json()["models"] == []
    snapshot_freeze(snapshot_id=first.id, frozen=True, actor_id=root.id)
    body = client.get("/api/v1/leaderboards/text").json()
    assert body["models"] == BOARD["models"] and body["frozen"] is True


def test_category_and_style_boards_are_chosen_by_query_parameters(client):
    snapshot(category="coding", style_control=True, published=True, n_votes=7)
    assert client.get("/api/v1/leaderboards/text").status_code == 404
    body = client.get("/api/v1/leaderboards/text", {"category": "coding", "style_control": "true"}).json()
    assert body["n_votes"] == 7 and body["category"] == "coding" and body["style_control"] is True
    assert client.get("/api/v1/leaderboards/text", {"style_control": "maybe"}).status_code == 400


def test_stats_count_battles_and_votes_per_modality_and_released_model(client, arena_history, make_model):
    votes = arena_history(30)
    secret = votes[1].battle.model_a
    secret.released = False
    secret.save()
    body = client.get("/api/v1/stats").json()
    text = body["modalities"]["text"]
    assert text["votes"] == sum(v.battle.modality == "text" for v in votes)
    assert text["counted_votes"] == sum(v.counted and v.battle.modality == "text" for v in votes)
    assert body["modalities"]["3d"] == {"battles": 0, "votes": 0, "counted_votes": 0}
    slugs = {m["slug"] for m in body["models"]}
    assert secret.slug not in slugs, "an unreleased model's name stays private"
    shown = next(v.battle.model_a.slug for v in votes if v.battle.model_a.slug != secret.slug)
    one = next(m for m in body["models"] if m["slug"] == shown)
    assert one["votes"] == sum(one["slug"] in (v.battle.model_a.slug, v.battle.model_b.slug) for v in votes)


def example_path(template: str) -> str:
    return re.sub(
        r"\{(\w+)\}", lambda m: {"modality": "text", "format": "jsonl"}.get(m.group(1), "abc123"), template
    )


def test_the_openapi_document_is_well_formed_and_every_path_resolves(client):
    doc = client.get("/api/v1/openapi.json").json()
    assert doc == openapi_document()
    assert doc["openapi"].startswith("3.1.") and doc["info"]["title"] and doc["info"]["version"]
    schemas = doc["components"]["schemas"]
    operation_ids = []
    for template, item in doc["paths"].items():
        assert template.startswith("/")
        try:
            resolve(example_path(template))
        except Resolver404:
            pytest.fail(f"{template} does not resolve to a view")
        for method, operation in item.items():
            assert method in {"get", "post"} and operation["summary"] and operation["responses"]
            operation_ids.append(operation["operationId"])
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", template)), template
            for status in operation["responses"]:
                assert re.fullmatch(r"[1-5]\d\d", status)
    assert len(operation_ids) == len(set(operation_ids)), "operationIds are unique"
    refs = re.findall(r'"#/components/schemas/(\w+)"', str(doc).replace("'", '"'))
    assert refs and all(ref in schemas for ref in refs)


def test_the_openapi_document_covers_the_battle_api_and_the_public_endpoints(client):
    paths = set(client.get("/api/v1/openapi.json").json()["paths"])
    assert {
        "/api/battles",
        "/api/battles/{code}",
        "/api/battles/{code}/continue",
        "/api/battles/{code}/vote",
        "/api/prompts/random",
        "/api/v1/leaderboards/{modality}",
        "/api/v1/stats",
        "/api/v1/openapi.json",
        "/api/export/battles.{format}",
    } <= paths
