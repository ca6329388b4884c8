"""Whole image and 3D battles through the Celery worker on real backends: tiny diffusers pipelines built and
saved by the test, a tiny Shap-E pipeline, and a local remote-3D server; progress and results reach the page
over the battle websocket."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from arena.media import media_inspect
from arena.models import Battle, ModelEntry
from tests.conftest import battle_settled, wait_for
from tests.support.challenge import vote_post
from tests.support.remote_3d_server import Answer, Remote3DServer, splat_ply_sample
from tests.support.tiny_diffusers import tiny_pipeline_save
from tests.support.tiny_shap_e import tiny_shap_e_save

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _model(slug: str, modality: str, kind: str, **config: object) -> ModelEntry:
    return ModelEntry.objects.create(
        slug=slug, display_name=slug.title(), modality=modality, backend_kind=kind, backend_config=config
    )


def _file(client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, url
    return b"".join(response.streaming_content)


def test_an_image_battle_runs_two_diffusers_pipelines_on_the_worker(worker, alice, tmp_path):
    for i, seed in enumerate((1, 2)):
        path = tiny_pipeline_save(tmp_path / f"pipe-{i}", seed=seed)
        _model(f"tiny-sd-{i}", "image", "diffusers_image", model_path=str(path), steps=2, width=64, height=64)
    response = alice.post(
        "/api/battles",
        {"modality": "image", "prompt": "a lighthouse at dusk"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    code = response.json()["code"]
    wait_for(battle_settled(code), timeout=120)
    state = alice.get(f"/api/battles/{code}").json()
    assert state["status"] == "ready", state
    pictures = []
    for side in "ab":
        media = state["turns"][0][side]["media"]
        assert media["kind"] == "image" and media["meta"]["width"] == 64
        body = _file(alice, media["url"])
        assert media_inspect(body, format_hint="png").meta["height"] == 64
        pictures.append(body)
    assert pictures[0] != pictures[1], "two different pipelines drew the same picture"
    response = vote_post(alice, code, "a", body={"criteria": {"quality": "a", "alignment": "tie"}})
    assert response.status_code == 200, response.content
    reveal = response.json()["state"]["vote"]["reveal"]
    assert {reveal["a"]["slug"], reveal["b"]["slug"]} == {"tiny-sd-0", "tiny-sd-1"}


def test_a_3d_battle_streams_progress_then_a_mesh_and_a_splat_to_the_page(worker, asgi_server, tmp_path):
    """Tiny Shap-E on the worker against a remote 3D service; the socket sees progress, then done."""
    # The remote answer trickles in over a second, so the socket (opened right after the start) sees it end.
    slow_splat = Answer(splat_ply_sample(), headers=(("X-Arena-Format", "ply"),), pieces=10, piece_delay=0.1)
    with Remote3DServer({"slow-ply": slow_splat}) as remote:
        path = tiny_shap_e_save(tmp_path / "shap-e", "text")
        _model("tiny-shap-e", "3d", "shap_e", model_path=str(path), mode="text", steps=2, grid_size=16)
        _model("remote-splat", "3d", "remote_3d", url=remote.url("slow-ply"), timeout=10)

        async def run() -> tuple[str, list[dict], dict]:
            import httpx

            async with httpx.AsyncClient(base_url=asgi_server.url) as client:
                await client.get("/3d/")
                headers = {"X-CSRFToken": client.cookies["csrftoken"], "Origin": asgi_server.url}
                response = await client.post(
                    "/api/battles", json={"modality": "3d", "prompt": "a small chair"}, headers=headers
                )
                assert response.status_code == 201, response.text
                code = response.json()["code"]
                cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
                ws_url = asgi_server.url.replace("http", "ws") + f"/ws/battle/{code}/"
                events: list[dict] = []
                async with websockets.connect(
                    ws_url, additional_headers={"Cookie": cookie, "Origin": asgi_server.url}
                ) as ws:
                    while not any(e["type"] == "status" for e in events):
                        events.append(json.loads(await asyncio.wait_for(ws.recv(), 120)))
                state = (await client.get(f"/api/battles/{code}")).json()
                return code, events, state

        code, events, state = asyncio.run(run())
    assert state["status"] == "ready", state
    battle = Battle.objects.get(code=code)
    done = {e["side"]: e for e in events if e["type"] == "done"}
    remote_side = "a" if battle.model_a.slug == "remote-splat" else "b"
    assert remote_side in done, "the slow side finished after the socket opened"
    seen = set(done)
    for side in set("ab") - set(done):  # a fast side may finish before the socket opens: the page reads state
        done[side] = {"media": state["turns"][0][side]["media"]}
    kinds = {battle.model_a.slug: done["a"]["media"]["kind"], battle.model_b.slug: done["b"]["media"]["kind"]}
    assert kinds == {"tiny-shap-e": "mesh", "remote-splat": "splat"}
    shap_side = "a" if battle.model_a.slug == "tiny-shap-e" else "b"
    assert (
        done[shap_side]["media"]["meta"]["textured"] is True and done[shap_side]["media"]["meta"]["faces"] > 0
    )
    fractions = [e["fraction"] for e in events if e["type"] == "progress" and e["side"] == shap_side]
    assert fractions == sorted(fractions), "progress never goes backwards"
    remote_fractions = [e["fraction"] for e in events if e["type"] == "progress" and e["side"] == remote_side]
    assert remote_fractions and remote_fractions[-1] == 1.0, "the download's progress reached the page"
    assert shap_side not in seen or fractions, "a side seen finishing was seen progressing"
    assert "tiny-shap-e" not in json.dumps(events) and "remote-splat" not in json.dumps(events)
    gen = battle.generations.get(side=shap_side)
    assert gen.thumbnail_name.startswith("thumbs/") and gen.media_name.startswith("outputs/")
