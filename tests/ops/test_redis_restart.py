"""Redis (broker, channel layer, cache, sessions) restarted under a running site.

The shared Redis on 6379 serves every other test, so each test here starts a private redis-server on a free
port and points its own web server (`manage.py serve`) and Celery workers at it, as separate processes. Redis
is then SIGKILLed and started again, either from its append-only file (what docker-compose's Redis keeps) or
empty (its volume lost). Afterwards pages render, sessions survive (they are written through to PostgreSQL),
websocket clients reconnect and get events again, and queued generations are finished: from the kept queue,
or re-sent by the generation sweep when the queue was lost. Every vote the site acknowledged is stored.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from arena.celery import app
from arena.demo import demo_seed
from arena.models import Battle, Generation
from tests.ops.procs import PrivateRedis, Process, service_env, wait_until, web_start, worker_start
from tests.support.challenge import pow_solve
from voting.models import Vote
from workers.tasks import generation_sweep_task

pytestmark = pytest.mark.django_db(transaction=True)

QUEUES = ["default", "ranking", "gen-text"]


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def site(redis_server: PrivateRedis) -> Iterator[Site]:
    demo_seed()
    env = service_env(
        REDIS_URL=redis_server.url,
        ARENA_POW_DIFFICULTY="8",
        ARENA_LEADERBOARD_DEBOUNCE="0",
        # Lets the sweep, sent by the test, treat a queued row whose message was lost as lost at once.
        ARENA_GENERATION_STUCK_AFTER="1",
    )
    web, url = web_start(env)
    site = Site(url, env, web)
    try:
        site.worker_start()
        yield site
    finally:
        site.close()


class Site:
    """The web server, its workers and one browser (an httpx client with a session) against them."""

    def __init__(self, url: str, env: dict[str, str], web: Process) -> None:
        self.url, self.env, self.web = url, env, web
        self.workers: list[Process] = []
        self.client = httpx.Client(base_url=url, timeout=10)
        self.acknowledged: list[str] = []  # battle codes whose vote got a 2xx
        self.sockets = contextlib.ExitStack()

    def worker_start(self) -> None:
        self.workers.append(worker_start(QUEUES, self.env))

    def workers_stop(self, graceful: bool = True) -> None:
        for proc in self.workers:
            proc.stop(graceful)
        self.workers.clear()

    def close(self) -> None:
        self.sockets.close()
        self.client.close()
        self.workers_stop(graceful=False)  # the test is over: nothing left to finish
        self.web.stop(graceful=False)

    def headers(self) -> dict[str, str]:
        return {"X-CSRFToken": self.client.cookies.get("csrftoken", ""), "Accept": "application/json"}

    def battle_start(self) -> str:
        if "csrftoken" not in self.client.cookies:
            assert self.client.get("/").status_code == 200
        body = {"prompt": "Why is the sky blue?", "modality": "text"}
        response = self.client.post("/api/battles", json=body, headers=self.headers())
        assert response.status_code == 201, response.text
        return response.json()["code"]

    def vote(self, code: str) -> httpx.Response:
        challenge = self.client.get(f"/api/battles/{code}/challenge").json()
        token = challenge["token"]
        answer = {"token": token, "counter": pow_solve(token, challenge["difficulty"])}
        response = self.client.post(
            f"/api/battles/{code}/vote", json={"choice": "a", "challenge": answer}, headers=self.headers()
        )
        if 200 <= response.status_code < 300:
            self.acknowledged.append(code)
        return response

    def socket(self, path: str, timeout: float = 15) -> ClientConnection:
        """A websocket, retried as the pages' scripts retry until the server takes it again."""
        cookie = "; ".join(f"{k}={v}" for k, v in self.client.cookies.items())
        deadline = time.monotonic() + timeout
        while True:
            try:
                ws = connect(
                    self.url.replace("http", "ws") + path,
                    additional_headers={"Origin": self.url, "Cookie": cookie},
                    open_timeout=3,
                )
                return self.sockets.enter_context(ws)
            except (OSError, InvalidStatus, ConnectionClosed, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def assert_no_acknowledged_vote_lost(self) -> None:
        votes = Vote.objects.filter(battle__code__in=self.acknowledged)
        stored = set(votes.values_list("battle__code", flat=True))
        assert stored == set(self.acknowledged) and self.acknowledged


def ready(code: str) -> bool:
    return Battle.objects.get(code=code).status == Battle.Status.READY


def events_until(ws: ClientConnection, kind: str, timeout: float = 15) -> list[dict]:
    """Events received until one of type `kind` (inclusive)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while not out or out[-1]["type"] != kind:
        out.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
    return out


def closed_within(ws: ClientConnection, timeout: float) -> bool:
    """Whether the server ends the socket within `timeout` (events still in flight are read past)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False
    return False


def test_after_a_redis_restart_pages_sockets_and_the_kept_queue_work_again(site: Site, redis_server):
    first, spare = site.battle_start(), site.battle_start()
    wait_until(lambda: ready(first) and ready(spare), 20, "the first battles ready", *site.workers)
    assert site.vote(first).status_code == 200
    board = site.socket("/ws/leaderboard/text/")

    site.workers_stop()
    queued = site.battle_start()  # its two generations wait in Redis for a worker
    assert set(Generation.objects.filter(battle__code=queued).values_list("status", flat=True)) == {"queued"}

    redis_server.kill()
    assert site.client.get("/healthz").status_code == 200, "liveness does not depend on Redis"
    assert site.client.get("/readyz").status_code == 503
    refused = site.client.post(f"/api/battles/{spare}/vote", json={"choice": "a"}, headers=site.headers())
    assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
    assert "try again" in refused.json()["error"]
    assert not Vote.objects.filter(battle__code=spare).exists()
    assert closed_within(board, 10), "a socket whose channel layer died is closed, so the page reconnects"
    redis_server.start()  # from its append-only file

    assert site.client.get("/").status_code == 200
    assert site.client.get("/leaderboard/text/").status_code == 200
    assert site.client.get(f"/api/battles/{queued}").json()["status"] == "generating"
    board = site.socket("/ws/leaderboard/text/")
    battle_ws = site.socket(f"/ws/battle/{queued}/")
    site.worker_start()
    events = events_until(battle_ws, "status")
    assert {"chunk", "done"} <= {e["type"] for e in events} and events[-1]["status"] == "ready"
    assert site.vote(queued).status_code == 200
    assert events_until(board, "snapshot")[-1]["modality"] == "text"
    assert site.vote(spare).status_code == 200, "the vote refused during the outage can be cast now"
    assert site.client.get("/readyz?strict=1").json()["status"] == "ready"
    site.assert_no_acknowledged_vote_lost()


def test_a_queue_lost_with_redis_is_sent_again_by_the_sweep(site: Site, redis_server):
    first = site.battle_start()
    wait_until(lambda: ready(first), 20, "the first battle ready", *site.workers)
    assert site.vote(first).status_code == 200
    site.workers_stop()
    queued = site.battle_start()

    redis_server.kill()
    redis_server.wipe()  # the queue and every cached session are lost with it
    redis_server.start()

    state = site.client.get(f"/api/battles/{queued}")
    assert state.status_code == 200, "the session is read back from PostgreSQL"
    site.worker_start()
    time.sleep(1.5)
    assert not ready(queued), "the queued messages went with Redis"
    with app.connection_for_write(redis_server.url) as conn:
        generation_sweep_task.apply_async(connection=conn)
    wait_until(lambda: ready(queued), 20, "the lost generations re-sent and finished", *site.workers)
    assert site.vote(queued).status_code == 200
    site.assert_no_acknowledged_vote_lost()
