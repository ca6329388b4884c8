"""Time to first token that Arena adds over the model server's own.

Starts a local OpenAI-compatible server (tests/support/openai_server.py) with a fixed first-token
latency, registers two models on it, and runs battles through the whole stack as a browser would:
POST /api/battles, open the battle websocket, wait for the first chunk of each side. The backend's
own time to first token is measured with a direct streaming request to the same server. The
difference is what the arena adds: request handling, database writes, the broker, the worker's
claim, the backend client and the websocket relay.

    python benchmarks/ttft.py --mode embedded   # SQLite, in-memory broker and channel layer
    python benchmarks/ttft.py --mode services   # PostgreSQL and Redis on loopback, all in this process
    python benchmarks/ttft.py --mode deployed   # the same, with web and worker as separate processes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Seconds: long enough for the page to join the websocket, as a real model's would be.
SERVER_FIRST_TOKEN = 0.2
posted: list[float] = []  # seconds the POST that starts a battle took, per battle


def configure(mode: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "arena.settings"
    os.environ["ARENA_VAR_DIR"] = tempfile.mkdtemp(prefix="arena-ttft-")
    # One client starts every battle: per-voter limits would stop the run, not measure it.
    os.environ["ARENA_BATTLE_RATE_PER_VOTER"] = os.environ["ARENA_BATTLE_RATE_PER_IP"] = "off"
    os.environ["ARENA_BATTLE_RATE_PER_NETWORK"] = "off"
    for scope in ("VOTER", "IP", "NETWORK"):  # the generation budget too: one client starts every battle
        os.environ[f"ARENA_GENERATION_RATE_PER_{scope}"] = "off"
    if mode in ("services", "deployed"):
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS arena_bench_ttft")
            conn.execute("CREATE DATABASE arena_bench_ttft")
        os.environ.update(
            DATABASE_URL="postgres://postgres@127.0.0.1:5432/arena_bench_ttft",
            REDIS_URL="redis://127.0.0.1:6379/14",
            SECRET_KEY="benchmark-only",
            CELERY_BROKER_KEY_PREFIX=f"ttft-{os.getpid()}:",
            CHANNELS_PREFIX=f"ttft-{os.getpid()}",
        )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _content(data: str) -> str:
    if data.strip() == "[DONE]":
        return ""
    choices = json.loads(data).get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or ""


async def backend_ttft(base_url: str, rounds: int) -> list[float]:
    import httpx

    out = []
    async with httpx.AsyncClient() as client:
        for _ in range(rounds):
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}
            t0 = time.perf_counter()
            async with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:") and _content(line[5:]):
                        out.append(time.perf_counter() - t0)
                        break
    return out


async def arena_ttft(url: str, rounds: int) -> list[float]:
    import httpx
    import websockets

    out = []
    posted.clear()
    async with httpx.AsyncClient(base_url=url) as client:
        await client.get("/")
        headers = {"X-CSRFToken": client.cookies["csrftoken"], "Origin": url}
        for _ in range(rounds):
            t0 = time.perf_counter()
            response = await client.post(
                "/api/battles", json={"prompt": "hello there", "modality": "text"}, headers=headers
            )
            posted.append(time.perf_counter() - t0)
            response.raise_for_status()
            code = response.json()["code"]
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())  # the session starts here
            ws_url = url.replace("http", "ws") + f"/ws/battle/{code}/"
            async with websockets.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": url}) as ws:
                first: dict[str, float] = {}
                while len(first) < 2:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if event["type"] == "chunk":
                        first.setdefault(event["side"], time.perf_counter() - t0)
                out.extend(first.values())
                while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "status":
                    pass
    return out


def measure(url: str, model_server: str, rounds: int) -> tuple[list[float], list[float]]:
    asyncio.run(arena_ttft(url, 3))  # warm-up: connections, imports
    own = asyncio.run(backend_ttft(model_server, rounds))
    return own, asyncio.run(arena_ttft(url, rounds))


@contextlib.contextmanager
def deployed_processes() -> Iterator[str]:
    """The web server and a Celery worker as their own processes, as docker-compose runs them."""
    from tests.support.asgi import free_port

    port = free_port()
    python = sys.executable
    commands = [
        [python, "manage.py", "serve", "--port", str(port)],
        [
            python,
            "-m",
            "celery",
            "-A",
            "arena",
            "worker",
            "-Q",
            "gen-text,default",
            "--pool",
            "threads",
            "-c",
            "8",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
    ]
    env = {**os.environ, "CELERY_IN_PROCESS_WORKER": "false"}
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL) for c in commands]
    try:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz?strict=1", timeout=5).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError("the web server or the worker did not become ready within 60 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    return f"{name:<28} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["embedded", "services", "deployed"], default="embedded")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    configure(args.mode)

    from arena.inprocess import worker_start
    from arena.models import ModelEntry
    from tests.support.asgi import AsgiServer
    from tests.support.openai_server import Behaviour, OpenAIServer

    with OpenAIServer(default=Behaviour(first_token_latency=SERVER_FIRST_TOKEN)) as server:
        for slug in ("bench-a", "bench-b"):
            ModelEntry.objects.create(
                slug=slug,
                display_name=slug,
                backend_kind="openai",
                backend_config={"base_url": server.base_url, "model": slug},
            )
        if args.mode == "deployed":
            with deployed_processes() as url:
                own, arena = measure(url, server.base_url, args.rounds)
        else:
            worker = worker_start(beat=False)
            with AsgiServer() as web:
                own, arena = measure(web.url, server.base_url, args.rounds)
            worker.stop()
    print(f"mode: {args.mode}; model server first-token latency {SERVER_FIRST_TOKEN * 1000:.0f} ms")
    print(summary("backend's own TTFT", own))
    print(summary("arena TTFT (both sides)", arena))
    added = statistics.median(arena) - statistics.median(own)
    print(f"arena adds (median): {added * 1000:.1f} ms  (target < 50 ms)")
    print(f"  POST /api/battles round trip             median {statistics.median(posted) * 1000:6.1f} ms")
    print_breakdown()


def print_breakdown() -> None:
    """Where the added time goes, from the generation rows' own timestamps."""
    from arena.models import Generation

    rows = Generation.objects.select_related("battle").order_by("-id")[:40]
    parts = {
        "battle created -> generation queued": [
            (g.queued_at - g.battle.created_at).total_seconds() for g in rows
        ],
        "queued -> claimed by worker": [(g.started_at - g.queued_at).total_seconds() for g in rows],
        "claimed -> first chunk (incl. server)": [
            (g.first_chunk_at - g.started_at).total_seconds() - SERVER_FIRST_TOKEN for g in rows
        ],
    }
    for name, values in parts.items():
        print(f"  {name:<40} median {statistics.median(values) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
