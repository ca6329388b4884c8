"""Timing and order side channels: what a voter's browser can time of a side must not name its model.

Two local OpenAI-compatible models as different as serving stacks get battle through the real Celery worker,
the channels-redis layer and the battle websocket: one answers at once, a word per chunk; the other starts
0.6 s later and sends four words per chunk. What the voter receives is the same for both (workers/pacing.py):
equal chunks on the tick, both sides starting and ending together, and the page's JSON never ahead of the
stream.
Image and 3D sides finish together on every channel: the websocket, the JSON, the file's URL.
benchmarks/side_channels.py measures what a classifier learns from these channels before and after.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.test import Client

from arena.models import Battle, Generation, ModelEntry
from arena.services import generations_enqueue
from tests.support.asgi import AsgiServer
from tests.support.openai_server import Behaviour, OpenAIServer
from tests.support.remote_3d_server import Answer, Remote3DServer, splat_ply_sample
from voting.models import Voter

pytestmark = pytest.mark.django_db(transaction=True)

TICK_MS, CHARS = 40, 6
PROMPT = " ".join(f"word{i:02d}" for i in range(40))  # echoed back: 279 characters, well past the hold
SLOW_FIRST_TOKEN, SLOW_CHUNK_DELAY, SLOW_WORDS_PER_CHUNK = 0.6, 0.05, 4
SLOW_MEDIA_SECONDS = 3.0  # the slow image or 3D side; the demo side takes a fraction of that
MODELS = {
    "fast": Behaviour(),  # everything at once, a word per chunk
    "slow": Behaviour(
        first_token_latency=SLOW_FIRST_TOKEN,
        chunk_delay=SLOW_CHUNK_DELAY,
        words_per_chunk=SLOW_WORDS_PER_CHUNK,
    ),
}


@dataclass
class Seen:
    """One websocket message as the voter's browser received it."""

    at: float
    event: dict


@pytest.fixture(autouse=True)
def _paced(settings, tmp_path) -> None:
    settings.ARENA_STREAM_TICK_MS = TICK_MS
    settings.ARENA_STREAM_TICK_CHARS = CHARS
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=MODELS) as running:
        yield running


def _owned_battle(client: Client, model_a: ModelEntry, model_b: ModelEntry, prompt: str) -> str:
    """A battle of `client`'s session, written without enqueueing: the socket joins before anything runs."""
    voter = Voter.objects.create(session_hash=f"timing-{time.monotonic_ns()}")
    session = client.session
    session["voter_id"] = voter.id
    session.save()
    client.cookies["sessionid"] = session.session_key
    battle = Battle.objects.create(
        voter=voter, model_a=model_a, model_b=model_b, modality=model_a.modality, conversation=[prompt]
    )
    for side, model in (("a", model_a), ("b", model_b)):
        Generation.objects.create(battle=battle, turn=0, side=side, model=model)
    return battle.code


def _text_models(server: OpenAIServer) -> tuple[ModelEntry, ModelEntry]:
    fast, slow = (
        ModelEntry.objects.create(
            slug=f"timing-{name}",
            display_name=f"Timing {name}",
            backend_kind="openai",
            backend_config={"base_url": server.base_url, "model": name},
        )
        for name in ("fast", "slow")
    )
    return fast, slow


def _socket(server: AsgiServer, code: str, client: Client) -> websockets.asyncio.client.connect:
    """The battle's websocket on the real server (uvicorn), as the voter's browser opens it."""
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    url = server.url.replace("http", "ws") + f"/ws/battle/{code}/"
    return websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": server.url})


def _enqueue(code: str) -> float:
    """Hand both sides to the real worker; returns when (time.monotonic) that happened."""
    generations_enqueue(list(Generation.objects.filter(battle__code=code).select_related("model")))
    return time.monotonic()


async def _listen(socket: websockets.asyncio.client.ClientConnection, timeout: float = 30) -> list[Seen]:
    seen: list[Seen] = []
    while not any(s.event["type"] == "status" for s in seen):
        message = await asyncio.wait_for(socket.recv(), timeout)
        seen.append(Seen(time.monotonic(), json.loads(message)))
    return seen


def _chunks(seen: list[Seen], side: str) -> list[Seen]:
    return [s for s in seen if s.event["type"] == "chunk" and s.event["side"] == side]


def _side_of(code: str, slug: str) -> str:
    battle = Battle.objects.select_related("model_a").get(code=code)
    return "a" if battle.model_a.slug == slug else "b"


# --- text ---------------------------------------------------------------------------------------------------


async def test_two_very_different_models_stream_alike_and_start_and_end_together(server, asgi_server, alice):
    fast, slow = await sync_to_async(_text_models)(server)
    code = await sync_to_async(_owned_battle)(alice, fast, slow, PROMPT)
    async with _socket(asgi_server, code, alice) as socket:
        await sync_to_async(_enqueue)(code)
        seen = await _listen(socket)

    done = {s.event["side"]: s.event["output"] for s in seen if s.event["type"] == "done"}
    for side in "ab":
        chunks = _chunks(seen, side)
        texts = [c.event["text"] for c in chunks]
        assert "".join(texts) == done[side] == PROMPT, "the final text is exact"
        assert [c.event["offset"] for c in chunks] == [sum(map(len, texts[:i])) for i in range(len(texts))]
        # Chunk boundaries follow the tick, not the model's tokenizer or its server's batching.
        assert {len(t) for t in texts[:-1]} == {CHARS}, texts
        # On the tick, never in the fast model's burst (all its words at once). The last chunk is the rest,
        # flushed when both models are done.
        gaps = [b.at - a.at for a, b in itertools.pairwise(chunks[:-1])]
        assert not gaps or statistics.median(gaps) > 0.5 * TICK_MS / 1000, gaps
    first = {side: _chunks(seen, side)[0].at for side in "ab"}
    last = {side: _chunks(seen, side)[-1].at for side in "ab"}
    # The fast model's first token came 0.6 s before the slow one's; the page sees both start together ...
    assert abs(first["a"] - first["b"]) < 0.1, first
    # ... and both end together, when the slow model is done, with no wait for the vote.
    assert abs(last["a"] - last["b"]) < 0.25, last
    slow_request = next(r for r in server.requests if r.body and r.body.get("model") == "slow")
    chunks_sent = -(-len(PROMPT.split()) // SLOW_WORDS_PER_CHUNK)
    slow_done = slow_request.received_at + SLOW_FIRST_TOKEN + (chunks_sent - 1) * SLOW_CHUNK_DELAY
    ready = next(s.at for s in seen if s.event["type"] == "status")
    # Kept at pace to the end, the fast side would end about 1.4 s after the slow model; it ends with it.
    assert seen[-1].event["status"] == "ready" and ready - slow_done < 1.0, ready - slow_done
    lengths = {side: len(_chunks(seen, side)) for side in "ab"}
    assert abs(lengths["a"] - lengths["b"]) <= 2, lengths


async def test_the_page_json_never_runs_ahead_of_the_stream(server, asgi_server, alice):
    """Polling /api/battles/<code> instead of the socket: before the slow side starts, the fast side's answer
    (long finished by its model) is not there; mid-stream it is a prefix of what the socket showed; a reload
    after the end shows the whole answer."""
    fast, slow = await sync_to_async(_text_models)(server)
    code = await sync_to_async(_owned_battle)(alice, fast, slow, PROMPT)
    fast_side = await sync_to_async(_side_of)(code, fast.slug)
    async with _socket(asgi_server, code, alice) as socket:
        started = await sync_to_async(_enqueue)(code)
        await asyncio.sleep(SLOW_FIRST_TOKEN / 2)
        early = (await sync_to_async(alice.get)(f"/api/battles/{code}")).json()["turns"][0]
        assert early[fast_side]["output"] == "", "the fast model's answer showed before either side started"
        assert early[fast_side]["status"] in ("queued", "running")

        async def poll() -> list[tuple[float, str]]:
            """Reloads while both sides stream (a reload reads the database; the socket goes on)."""
            polled = []
            await asyncio.sleep(max(0.0, started + SLOW_FIRST_TOKEN - time.monotonic()))
            for _ in range(8):
                state = (await sync_to_async(alice.get)(f"/api/battles/{code}")).json()
                polled.append((time.monotonic(), state["turns"][0][fast_side]["output"]))
                await asyncio.sleep(0.05)
            return polled

        seen, polled = await asyncio.gather(_listen(socket), poll())
    for at, output in polled:
        # The database holds no more than the page was shown (give the socket a moment to deliver it).
        shown = "".join(c.event["text"] for c in _chunks(seen, fast_side) if c.at <= at + 0.2)
        assert shown.startswith(output), (output, shown)
    after = (await sync_to_async(alice.get)(f"/api/battles/{code}")).json()["turns"][0]
    assert after[fast_side]["output"] == PROMPT and after[fast_side]["status"] == "done"


async def test_a_side_that_fails_mid_stream_shows_what_it_had_then_its_failure(server, asgi_server, alice):
    fast, _ = await sync_to_async(_text_models)(server)
    broken = await sync_to_async(ModelEntry.objects.create)(
        slug="timing-cut",
        display_name="Timing cut",
        backend_kind="openai",
        backend_config={"base_url": server.base_url, "model": "fault-cut"},
    )
    code = await sync_to_async(_owned_battle)(alice, fast, broken, PROMPT)
    broken_side = await sync_to_async(_side_of)(code, broken.slug)
    async with _socket(asgi_server, code, alice) as socket:
        await sync_to_async(_enqueue)(code)
        seen = await _listen(socket)
    events = [s.event for s in seen if s.event.get("side") == broken_side]
    failed_at = next(i for i, e in enumerate(events) if e["type"] == "failed")
    assert not [e for e in events[failed_at:] if e["type"] == "chunk"], "a chunk after the failure"
    shown = "".join(e["text"] for e in events if e["type"] == "chunk")
    stored = await sync_to_async(lambda: Generation.objects.get(battle__code=code, side=broken_side).output)()
    assert shown == stored and PROMPT.startswith(stored)


# --- image and 3D -------------------------------------------------------------------------------------------


def _media_models(modality: str, slow_url: str) -> tuple[ModelEntry, ModelEntry]:
    if modality == "image":
        fast = ModelEntry.objects.create(
            slug="timing-demo-image", display_name="Demo", modality="image", backend_kind="demo_image"
        )
        slow = ModelEntry.objects.create(
            slug="timing-slow-image",
            display_name="Slow",
            modality="image",
            backend_kind="openai_images",
            backend_config={"base_url": slow_url, "model": "slow-draw"},
        )
    else:
        fast = ModelEntry.objects.create(
            slug="timing-demo-3d", display_name="Demo", modality="3d", backend_kind="demo_3d"
        )
        slow = ModelEntry.objects.create(
            slug="timing-slow-3d",
            display_name="Slow",
            modality="3d",
            backend_kind="remote_3d",
            backend_config={"url": slow_url, "timeout": 10},
        )
    return fast, slow


async def _done(code: str, side: str, timeout: float = 10) -> Generation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gen = await sync_to_async(Generation.objects.get)(battle__code=code, side=side)
        if gen.status == Generation.Status.DONE:
            return gen
        await asyncio.sleep(0.02)
    raise AssertionError(f"side {side} was not done within {timeout} s")


@pytest.fixture(params=["image", "3d"])
def slow_media(request) -> Iterator[tuple[str, str]]:
    """A slow image or 3D service for the other side; yields (modality, its URL)."""
    if request.param == "image":
        with OpenAIServer(models={"slow-draw": Behaviour(first_token_latency=SLOW_MEDIA_SECONDS)}) as images:
            yield "image", images.base_url
    else:
        pieces = round(SLOW_MEDIA_SECONDS / 0.1)
        headers = (("X-Arena-Format", "ply"),)
        trickle = Answer(splat_ply_sample(), headers=headers, pieces=pieces, piece_delay=0.1)
        with Remote3DServer({"slow-ply": trickle}) as remote:
            yield "3d", remote.url("slow-ply")


async def test_image_and_3d_sides_are_shown_together_on_every_channel(
    slow_media, asgi_server, alice, settings
):
    modality, slow_url = slow_media
    fast, slow = await sync_to_async(_media_models)(modality, slow_url)
    code = await sync_to_async(_owned_battle)(alice, fast, slow, "a small red chair")
    fast_side = await sync_to_async(_side_of)(code, fast.slug)
    async with _socket(asgi_server, code, alice) as socket:
        started = await sync_to_async(_enqueue)(code)
        finished = await _done(code, fast_side)  # the demo side is done; the slow one is not
        slow_side = "b" if fast_side == "a" else "a"
        slow_gen = await sync_to_async(Generation.objects.get)(battle__code=code, side=slow_side)
        assert slow_gen.status != "done", "the demo side was too slow to test"
        state = (await sync_to_async(alice.get)(f"/api/battles/{code}")).json()
        assert [state["turns"][0][s]["media"] for s in "ab"] == [None, None], "a finished side showed early"
        assert {state["turns"][0][s]["status"] for s in "ab"} <= {"queued", "running"}
        early_file = await sync_to_async(alice.get)(f"/m/{code}/0/{fast_side}.{finished.media_format}")
        assert early_file.status_code == 404, "the finished side's file was served before the other side's"
        seen = await _listen(socket, timeout=60)

    done = [s for s in seen if s.event["type"] == "done"]
    assert [s.event["side"] for s in done] == ["a", "b"]
    assert done[0].at - started > SLOW_MEDIA_SECONDS - 0.2, "a done event came before the slow side was done"
    # Sent together, by whichever side finished last: a's then b's, nothing between them.
    assert seen.index(done[1]) == seen.index(done[0]) + 1 and done[1].at - done[0].at < 0.5
    progress = [s.event for s in seen if s.event["type"] == "progress"]
    step = settings.ARENA_MEDIA_PROGRESS_STEP
    sides: dict[float, list[str]] = {}
    for event in progress:  # one shared fraction, on the step grid, sent once for each side
        sides.setdefault(event["fraction"], []).append(event["side"])
        assert abs(event["fraction"] / step - round(event["fraction"] / step)) < 1e-6, event
    assert all(sorted(s) == ["a", "b"] for s in sides.values()), sides
    state = (await sync_to_async(alice.get)(f"/api/battles/{code}")).json()
    assert state["status"] == "ready"
    url = state["turns"][0][fast_side]["media"]["url"]
    assert (await sync_to_async(alice.get)(url)).status_code == 200


# --- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "refusal"),
    [
        ("ARENA_STREAM_TICK_MS", "5", "must be at least 10"),
        ("ARENA_STREAM_PACING", "sometimes", "must be true or false"),
        ("ARENA_MEDIA_PROGRESS_STEP", "0", "must be at least 0.01"),
    ],
)
def test_pacing_settings_are_parsed_strictly(name, value, refusal):
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='arena.settings'; django.setup()"
    env = {"PATH": "/usr/bin:/bin", "ARENA_VAR_DIR": "/tmp/arena-settings-test", name: value}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and f"{name} {refusal}" in result.stderr
