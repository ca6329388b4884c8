"""Time to first token that Arena adds over the model server's own.

Starts a local OpenAI-compatible server (tests/support/openai_server.py) with a fixed first-token
latency, registers two models on it, and runs battles through the whole stack as a browser would:
POST /api/battles, open the battle websocket, wait for the first chunk of each side. The backend's
own time to first token is measured with a direct streaming request to the same server. The
difference is what the arena adds: request handling, database writes, the broker, the worker's
claim, the backend client and the websocket relay.

    python benchmarks/ttft.py --mode embedded   # SQLite, in-memory broker and channel layer
    python benchmarks/ttft.py --mode services   # PostgreSQL and Redis on loopback
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Seconds: long enough for the page to join the websocket, as a real model's would be.
SERVER_FIRST_TOKEN = 0.2
posted: list[float] = []  # seconds the POST that starts a battle took, per battle


def configure(mode: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "arena.settings"
    os.environ["ARENA_VAR_DIR"] = tempfile.mkdtemp(prefix="arena-ttft-")
    if mode == "services":
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


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    return f"{name:<28} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["embedded", "services"], default="embedded")
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
        worker = worker_start(beat=False)
        with AsgiServer() as web:
            asyncio.run(arena_ttft(web.url, 3))  # warm-up: connections, imports
            own = asyncio.run(backend_ttft(server.base_url, args.rounds))
            arena = asyncio.run(arena_ttft(web.url, args.rounds))
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
