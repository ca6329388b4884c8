"""Soak: many text battles in one Chromium page, as a voter runs them back to back, and none may get stuck.

Demo models and models on the local OpenAI-compatible test server (fast, slow, bursty and jittery streams)
are drawn at random; one battle's socket is dropped mid-stream and another loses chunks (an offset gap).
Every battle must reach the vote on screen with the final text of both answers, and the page may make at most
three HTTP requests per battle besides its websocket (start, vote challenge, vote): no polling.

benchmarks/battle_soak.py runs the same with more battles (SOAK_BATTLES) and prints the figures.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from arena.models import Battle, ModelEntry
from tests.browser.conftest import screenshot
from tests.support.openai_server import Behaviour, OpenAIServer
from voting.models import Vote
from voting.rates import Rate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BATTLES = int(os.environ.get("SOAK_BATTLES", "12"))
REPORT = os.environ.get("SOAK_REPORT", "")  # a JSON file for benchmarks/battle_soak.py
DROP_SOCKET_IN, GAP_IN = 2, 4  # which battles (0-based) lose their socket, and chunks
MODELS = {
    "soak-fast": Behaviour(),
    "soak-slow": Behaviour(first_token_latency=0.4, chunk_delay=0.04),
    "soak-bursty": Behaviour(chunk_delay=0.15, words_per_chunk=6),
    "soak-jitter": Behaviour(chunk_delay=0.03, jitter=0.9, words_per_chunk=2),
}
VOTE_KEYS = ["a", "b", "t", "n"]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=MODELS) as running:
        yield running


@pytest.fixture
def arena(demo_models, server, settings) -> list[ModelEntry]:
    for kind in ("VOTE", "BATTLE", "GENERATION"):
        for scope in ("VOTER", "IP", "NETWORK"):
            setattr(settings, f"ARENA_{kind}_RATE_PER_{scope}", Rate(100_000, 3600))
    for name in MODELS:
        ModelEntry.objects.create(
            slug=name,
            display_name=name.title(),
            backend_kind="openai",
            backend_config={"base_url": server.base_url, "model": name},
        )
    return list(ModelEntry.objects.filter(modality="text"))


def _words(text: str) -> list[str]:
    """The answer's words, whatever markup the page renders around them (lists, emphasis)."""
    return re.findall(r"\w+", text)


class Socket:
    """Routes the battle websocket through Playwright so one battle can lose its socket or some chunks."""

    def __init__(self) -> None:
        self.mode = ""  # "drop": close the socket after a few chunks; "gap": swallow a few chunks
        self.opened = 0
        self.syncs = 0  # {"type": "sync"} asked by the page: one per socket opened, one per gap

    def route(self, ws) -> None:  # playwright WebSocketRoute
        self.opened += 1
        server = ws.connect_to_server()
        seen = {"chunks": 0}
        mode = self.mode

        def from_server(message: str | bytes) -> None:
            event = json.loads(message)
            if event.get("type") == "chunk":
                seen["chunks"] += 1
                if mode == "gap" and 3 <= seen["chunks"] < 6:
                    return  # lost on the way: the next chunk's offset is past what the page has
                if mode == "drop" and seen["chunks"] == 4:
                    self.mode = ""  # the reconnection gets a working socket
                    ws.close(code=4000, reason="dropped by the soak test")
                    server.close()
                    return
            ws.send(message)

        server.on_message(from_server)
        def from_page(message: str | bytes) -> None:
            if json.loads(message).get("type") == "sync":
                self.syncs += 1
            server.send(message)

        ws.on_message(from_page)


def test_battles_back_to_back_never_get_stuck_and_do_not_poll(arena, asgi_server, page):
    page.set_viewport_size({"width": 1366, "height": 900})
    socket = Socket()
    page.route_web_socket(re.compile(r"/ws/battle/"), socket.route)
    requests: list[str] = []
    page.on(
        "request",
        lambda request: requests.append(f"{request.method} {request.url}")
        if "/static/" not in request.url
        else None,
    )
    page.goto(asgi_server.url + "/")
    prompt = page.locator("#prompt")
    stuck, per_battle, seconds = [], [], []
    last: list[str] = []
    for n in range(BATTLES):
        socket.mode = "drop" if n == DROP_SOCKET_IN else "gap" if n == GAP_IN else ""
        text = f"Battle {n}: " + " ".join(f"word{n}x{i}" for i in range(25 + 7 * (n % 5)))
        before = len(requests)
        started = time.monotonic()
        prompt.fill(text)
        prompt.press("Enter")  # Enter sends
        expect(page).to_have_url(re.compile(r"/b/[\w-]+/$"))
        code = page.url.rstrip("/").rsplit("/", 1)[-1]
        first = page.locator('#votebar button[data-choice="a"]')
        try:
            expect(first).to_be_enabled(timeout=40_000)
            expect(first).to_be_focused()  # focus went to the answers, then to the vote bar
        except AssertionError:
            stuck.append(code)
            screenshot(page, f"soak-stuck-{n}")
            page.get_by_role("button", name="New battle").click() if page.locator(
                "#new-battle"
            ).is_visible() else page.goto(asgi_server.url + "/")
            continue
        battle = Battle.objects.prefetch_related("generations").get(code=code)
        for gen in battle.generations.all():
            shown = page.locator(f"#answer-{gen.side}-0").inner_text()
            if _words(shown) != _words(gen.output) or not gen.output:
                stuck.append(f"{code}:{gen.side}")
        page.keyboard.press(VOTE_KEYS[n % 4])  # the announced vote key
        expect(page.locator("#status")).to_contain_text("Thanks for voting", timeout=20_000)
        seconds.append(time.monotonic() - started)
        per_battle.append(len(requests) - before)
        last = requests[before:]
        page.get_by_role("button", name="New battle").click()
        expect(prompt).to_be_focused()

    figures = {
        "battles": BATTLES,
        "stuck": len(stuck),
        "stuck_codes": stuck,
        "requests_per_battle_max": max(per_battle, default=0),
        "requests_per_battle_mean": sum(per_battle) / max(len(per_battle), 1),
        "seconds_per_battle_mean": sum(seconds) / max(len(seconds), 1),
        "sockets_opened": socket.opened,
        "syncs": socket.syncs,
    }
    if REPORT:
        Path(REPORT).write_text(json.dumps(figures, indent=2))
    assert not stuck, figures
    assert Vote.objects.count() == BATTLES
    assert max(per_battle) <= 3, (figures, last)
    # The dropped socket was opened again (and only the battles' own sockets otherwise).
    assert socket.opened >= BATTLES + 1, figures
    assert socket.syncs >= socket.opened + 1, "the gap asked for the state once more"
