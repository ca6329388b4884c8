"""Load on the deployed stack: votes, battle starts, leaderboard pages and leaderboard websockets.

The web server (`manage.py serve`, uvicorn) and a Celery worker run as their own processes against
PostgreSQL and Redis on loopback, with a database of their own, as docker-compose runs them. This process
prepares the data through the ORM, then drives the server with an async load generator (httpx and
websockets) and prints the figures:

    python benchmarks/load.py                         # everything, defaults below
    python benchmarks/load.py --votes 8000 --concurrency 48 --ws-clients 2000

Measured:
  votes        POST /api/battles/<code>/vote on battles prepared in the READY state, one per voter, each
               voter with a session made beforehand; votes/s, p50/p99, and stored votes == acknowledged (2xx)
  battles      POST /api/battles by returning voters; starts/s and p50/p99 (the generation tasks are queued
               on gen-text, which no worker consumes here: GPU workers are other machines in a deployment)
  leaderboard  GET /leaderboard/text/ by anonymous visitors; req/s and p50/p99
  floor        GET /healthz, a view that touches nothing: what uvicorn and Django's ASGI handler cost alone
  websockets   N clients on /ws/leaderboard/text/; one "snapshot" event published to the group: time from
               the publish until the last client received it (all clients live in this one process)

Besides rates and latencies (which depend on everything else the machine runs: the load average is printed),
each HTTP line gives the CPU time the web processes spent per request, read from /proc, which does not.

What the server is told, so that it measures throughput rather than the abuse defences: the vote's proof of
work is off (ARENA_POW_DIFFICULTY=0), the per-voter/IP/network rate limits on votes and battle starts are
off, and each simulated voter sends its own X-Forwarded-For address (ARENA_IP_HEADER=HTTP_X_FORWARDED_FOR) so
that the vote-time fraud rules see many people, not one address. Everything else is the production code path:
sessions in Redis backed by PostgreSQL, CSRF checks, the vote's row locks, risk checks and tallies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.cookiejar
import itertools
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DB_NAME = "arena_bench_load"
REDIS_DB = 13  # tests use 15, the TTFT benchmark 14
ANSWER = " ".join(["The tide rises and falls twice a day because the moon pulls on the oceans."] * 12)


# --- set-up --------------------------------------------------------------------------------------------


def configure(web_workers: int) -> dict[str, str]:
    """A fresh database, this run's Redis prefixes, and the server's environment. Returns that environment."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    run = f"load-{os.getpid()}"
    env = {
        "DJANGO_SETTINGS_MODULE": "arena.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "SECRET_KEY": "benchmark-only-" + secrets.token_urlsafe(16),
        "ARENA_VAR_DIR": tempfile.mkdtemp(prefix="arena-load-"),
        "CELERY_BROKER_KEY_PREFIX": f"{run}:",
        "CHANNELS_PREFIX": run,
        "CACHE_KEY_PREFIX": run,
        "CELERY_IN_PROCESS_WORKER": "false",
        # Room for every uvicorn process's pool beside the worker's.
        "DB_POOL_MAX": str(max(8, 40 // web_workers)),
        # Benchmark-only relaxations (printed with the results):
        "ARENA_POW_DIFFICULTY": "0",
        "ARENA_VOTE_RATE_PER_VOTER": "off",
        "ARENA_VOTE_RATE_PER_IP": "off",
        "ARENA_VOTE_RATE_PER_NETWORK": "off",
        "ARENA_BATTLE_RATE_PER_VOTER": "off",
        "ARENA_BATTLE_RATE_PER_IP": "off",
        "ARENA_BATTLE_RATE_PER_NETWORK": "off",
        "ARENA_GENERATION_RATE_PER_VOTER": "off",
        "ARENA_GENERATION_RATE_PER_IP": "off",
        "ARENA_GENERATION_RATE_PER_NETWORK": "off",
        "ARENA_IP_HEADER": "HTTP_X_FORWARDED_FOR",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return env


def redis_cleanup() -> int:
    """Drop this run's keys (sessions, never-consumed generation tasks, counters) from the Redis db."""
    import redis

    run = os.environ["CACHE_KEY_PREFIX"]
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        keys = list(client.scan_iter(match=f"*{run}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    return len(keys)


def raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True)
class Visitor:
    """A returning voter: a session made beforehand, a CSRF secret, an address of its own."""

    session_key: str
    csrf: str
    ip: str
    battle_code: str = ""

    def headers(self, origin: str) -> dict[str, str]:
        return {
            "Cookie": f"sessionid={self.session_key}; csrftoken={self.csrf}",
            "X-CSRFToken": self.csrf,
            "X-Forwarded-For": self.ip,
            "Origin": origin,
            "Accept": "application/json",
        }


def visitors_prepare(n: int) -> list[Visitor]:
    """n voters, each with a session and one battle in the READY state (both answers done)."""
    from django.conf import settings
    from django.contrib.sessions.backends.cached_db import KEY_PREFIX, SessionStore
    from django.contrib.sessions.models import Session
    from django.core.cache import caches
    from django.utils import timezone

    from arena.demo import demo_seed
    from arena.models import Battle, Generation, ModelEntry
    from voting.models import Voter

    demo_seed()
    models = list(ModelEntry.objects.filter(backend_kind="demo").order_by("id"))
    pairs = list(itertools.combinations(models, 2))
    now = timezone.now()
    voters = Voter.objects.bulk_create(
        [Voter(session_hash=secrets.token_hex(32), ip_hash=secrets.token_hex(32)) for _ in range(n)],
        batch_size=2000,
    )
    battles = Battle.objects.bulk_create(
        [
            Battle(
                voter=voter,
                model_a=pairs[i % len(pairs)][0],
                model_b=pairs[i % len(pairs)][1],
                conversation=["Why are there two tides a day?"],
                status=Battle.Status.READY,
                ready_at=now - timezone.timedelta(seconds=25),
            )
            for i, voter in enumerate(voters)
        ],
        batch_size=2000,
    )
    Generation.objects.bulk_create(
        [
            Generation(
                battle=battle,
                turn=0,
                side=side,
                model=battle.model_a if side == "a" else battle.model_b,
                status=Generation.Status.DONE,
                output=ANSWER,
                attempts=1,
                started_at=now,
                first_chunk_at=now,
                finished_at=now,
                prompt_tokens=9,
                output_tokens=len(ANSWER.split()),
            )
            for battle in battles
            for side in "ab"
        ],
        batch_size=4000,
    )
    store = SessionStore()
    expire = now + timezone.timedelta(days=1)
    keys = [secrets.token_hex(16) for _ in voters]
    Session.objects.bulk_create(
        [
            Session(session_key=key, session_data=store.encode({"voter_id": voter.id}), expire_date=expire)
            for key, voter in zip(keys, voters, strict=True)
        ],
        batch_size=2000,
    )
    # Written through to the cache, as the site's own session saves are: a returning visitor's is there.
    caches[settings.SESSION_CACHE_ALIAS].set_many(
        {KEY_PREFIX + key: {"voter_id": voter.id} for key, voter in zip(keys, voters, strict=True)}, 86400
    )
    return [
        Visitor(key, secrets.token_hex(16), f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", b.code)
        for i, (key, b) in enumerate(zip(keys, battles, strict=True))
    ]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tree_cpu_seconds(root: int) -> float:
    """CPU time used so far by a process and its children (the uvicorn workers): a figure that does not depend
    on what else the machine is running, unlike the request rates."""
    pids, parents = {root}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    for pid, ppid in parents.items():
        if ppid in pids:
            pids.add(pid)
    return sum(_cpu_seconds(pid) for pid in pids)


@dataclass(frozen=True)
class Deployment:
    url: str
    web_pid: int
    log: Path  # the web server's and the worker's output

    def cpu(self) -> float:
        return tree_cpu_seconds(self.web_pid)

    def errors(self) -> int:
        """ERROR lines the server processes logged so far."""
        return sum(" ERROR " in line for line in self.log.read_text(errors="replace").splitlines())


@contextlib.contextmanager
def deployed(env: dict[str, str], web_workers: int) -> Iterator[Deployment]:
    """The web server and a Celery worker (default and ranking queues) as their own processes."""
    from tests.support.asgi import free_port

    port = free_port()
    python = sys.executable
    web = [python, "manage.py", "serve", "--port", str(port), "--workers", str(web_workers)]
    worker = [
        *(python, "-m", "celery", "-A", "arena", "worker", "-Q", "default,ranking"),
        *("--pool", "threads", "-c", "4", "--loglevel", "WARNING"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]
    full_env = {**os.environ, **env}
    log = Path(tempfile.mkstemp(prefix="arena-load-server-", suffix=".log")[1])
    with log.open("wb") as out:
        procs = [
            subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
            for command in (web, worker)
        ]
    try:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz?strict=1", timeout=5).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            raise RuntimeError("the web server or the worker did not become ready within 60 s")
        yield Deployment(f"http://127.0.0.1:{port}", procs[0].pid, log)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- load -----------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    web_cpu: float = 0.0  # seconds of CPU the web processes used during the run
    client_cpu: float = 0.0  # and this load generator

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def quantile(self, q: float) -> float:
        ms = sorted(v * 1000 for v in self.latencies)
        return ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan")

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def line(self, unit: str) -> str:
        bad = {s: n for s, n in self.statuses.items() if not 200 <= s < 300}
        extra = f"   non-2xx {bad}" if bad else ""
        extra += f"   errors {len(self.errors)} (first: {self.errors[0]})" if self.errors else ""
        cpu = (
            f"   CPU/request: web {self.web_cpu * 1000 / self.ok:.1f} ms, load generator "
            f"{self.client_cpu * 1000 / self.ok:.1f} ms"
            if self.ok
            else ""
        )
        return (
            f"{self.name:<22} {self.rate:8.1f} {unit}   p50 {self.quantile(0.5):6.1f} ms   "
            f"p99 {self.quantile(0.99):6.1f} ms   ({self.ok} ok in {self.seconds:.2f} s){cpu}{extra}"
        )


def no_cookies() -> http.cookiejar.CookieJar:
    """Each request carries its own visitor's cookies; nothing a response sets may leak into the next one."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def drive(
    name: str, site: Deployment, jobs: list[Callable[[object], Awaitable[int]]], concurrency: int
) -> Result:
    """Run the jobs with `concurrency` requests in flight at all times (a closed loop)."""
    cpu, own = site.cpu(), time.process_time()
    result = asyncio.run(_drive(name, site.url, jobs, concurrency))
    result.web_cpu, result.client_cpu = site.cpu() - cpu, time.process_time() - own
    return result


async def _drive(
    name: str, url: str, jobs: list[Callable[[object], Awaitable[int]]], concurrency: int
) -> Result:
    import httpx

    result = Result(name)
    queue = iter(jobs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30, cookies=no_cookies()) as client:

        async def runner() -> None:
            for job in queue:
                t0 = time.perf_counter()
                try:
                    status = await job(client)
                except Exception as exc:  # a refused connection or a timeout is a result, not a crash
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    result.latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(runner() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def vote_job(visitor: Visitor, url: str, choice: str) -> Callable[[object], Awaitable[int]]:
    async def job(client: object) -> int:
        response = await client.post(  # type: ignore[attr-defined]
            f"/api/battles/{visitor.battle_code}/vote", json={"choice": choice}, headers=visitor.headers(url)
        )
        return response.status_code

    return job


def battle_job(visitor: Visitor, url: str, n: int) -> Callable[[object], Awaitable[int]]:
    async def job(client: object) -> int:
        body = {"prompt": f"Explain tides to a child, take {n}.", "modality": "text"}
        response = await client.post("/api/battles", json=body, headers=visitor.headers(url))  # type: ignore[attr-defined]
        return response.status_code

    return job


def page_job(path: str) -> Callable[[object], Awaitable[int]]:
    async def job(client: object) -> int:
        response = await client.get(path)  # type: ignore[attr-defined]
        return response.status_code

    return job


async def _receive_one(ws: object, received: list[float], marker: str) -> None:
    """Wait for the event carrying `marker` (the site's own snapshot events may arrive too)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while marker not in await ws.recv():  # type: ignore[attr-defined]
                pass
            received.append(time.perf_counter())


async def websocket_fanout(url: str, clients: int, rounds: int) -> tuple[int, list[tuple[float, float, int]]]:
    """Connect `clients` sockets, then publish `rounds` events one after another. Per round: (ms until the
    first client had it, ms until the last did, clients that got it)."""
    import websockets
    from asgiref.sync import sync_to_async

    from ranking.services import leaderboard_group
    from workers.events import group_publish

    ws_url = url.replace("http", "ws") + "/ws/leaderboard/text/"
    sockets = []
    for start in range(0, clients, 100):  # in batches, as pages arrive, not one SYN flood
        batch = [
            websockets.connect(ws_url, additional_headers={"Origin": url}, open_timeout=30, max_queue=4)
            for _ in range(start, min(start + 100, clients))
        ]
        sockets += await asyncio.gather(*batch)
    await asyncio.sleep(0.5)  # every group_add has reached Redis
    out = []
    for n in range(rounds):
        received: list[float] = []
        marker = f"load-round-{n}-{secrets.token_hex(4)}"
        listeners = [asyncio.create_task(_receive_one(ws, received, marker)) for ws in sockets]
        await asyncio.sleep(0.2)
        event = {"type": "snapshot", "modality": "text", "category": "", "style_control": False}
        event["round"] = marker
        t0 = time.perf_counter()
        await sync_to_async(group_publish)(
            leaderboard_group("text"), {"type": "leaderboard.event", "event": event}
        )
        await asyncio.gather(*listeners)
        if received:
            out.append(((min(received) - t0) * 1000, (max(received) - t0) * 1000, len(received)))
        else:
            out.append((float("nan"), float("nan"), 0))
    await asyncio.gather(*(ws.close() for ws in sockets))
    return len(sockets), out


# --- the run --------------------------------------------------------------------------------------------


def wrk_line(name: str, site: Deployment, path: str, seconds: int, connections: int) -> str:
    """The same GET driven by wrk (Debian's `wrk`, written in C), whose own CPU cost per request is a small
    fraction of this process's: the page's rate when the load generator does not eat the server's cores."""
    import re
    import shutil
    import subprocess

    if shutil.which("wrk") is None:
        return f"{name:<22} (wrk not installed: apt-get install wrk to measure without this process's cost)"
    cpu0 = tree_cpu_seconds(site.web_pid)
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", site.url + path],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = tree_cpu_seconds(site.web_pid) - cpu0
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", done.stdout).group(1))
    p50 = re.search(r"50%\s+(\S+)", done.stdout).group(1)
    p99 = re.search(r"99%\s+(\S+)", done.stdout).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    bad = f", {errors.group(1)} non-2xx" if errors else ""
    return (
        f"{name:<22} {rate:9.1f} req/s   p50 {p50:>8}   p99 {p99:>8}   "
        f"({total} requests in {seconds} s{bad})   "
        f"CPU/request: web {cpu / max(total, 1) * 1000:.1f} ms   [wrk, {connections} connections]"
    )


def stored_votes(codes: list[str]) -> int:
    from voting.models import Vote

    return Vote.objects.filter(battle__code__in=codes).count()


def run(args: argparse.Namespace) -> None:
    env = configure(args.web_workers)
    files = raise_file_limit()
    t0 = time.perf_counter()
    visitors = visitors_prepare(args.votes + args.warmup)
    took = time.perf_counter() - t0
    print(f"prepared {len(visitors)} voters with sessions and READY battles in {took:.1f} s")
    warm, voting = visitors[: args.warmup], visitors[args.warmup :]
    phases = set(args.phases.split(","))
    load_before = os.getloadavg()[0]
    lines = []
    with deployed(env, args.web_workers) as site:
        url, log = site.url, site.log
        drive("warm-up", site, [vote_job(v, url, "a") for v in warm], 8)
        if "votes" in phases:
            jobs = [vote_job(v, url, "ab"[i % 2] if i % 7 else "tie") for i, v in enumerate(voting)]
            votes = drive("votes", site, jobs, args.concurrency)
            stored = stored_votes([v.battle_code for v in voting])
            lines += [
                votes.line("votes/s") + "   target >= 500/s, p99 <= 100 ms",
                f"{'':<22} acknowledged (2xx) {votes.ok}, stored {stored}, lost {votes.ok - stored}"
                "   target: 0 lost",
            ]
            if votes.ok != stored:
                lines.append("ACKNOWLEDGED VOTES WERE LOST")
        if "battles" in phases:
            jobs = [battle_job(voting[i % len(voting)], url, i) for i in range(args.battles)]
            lines.append(drive("battle starts", site, jobs, args.concurrency).line("starts/s"))
        if "pages" in phases:
            from ranking.services import leaderboard_refresh

            leaderboard_refresh(modality="text")  # a board to show, whatever the debounced task has done
            drive("warm-up", site, [page_job("/leaderboard/text/") for _ in range(50)], 8)
            jobs = [page_job("/leaderboard/text/") for _ in range(args.page_requests)]
            pages = drive("leaderboard page", site, jobs, args.concurrency)
            lines.append(pages.line("req/s") + "   target >= 300/s")
            lines.append(
                wrk_line("leaderboard page", site, "/leaderboard/text/", args.wrk_seconds, args.concurrency)
                + "   target >= 300/s"
            )
        if "floor" in phases:
            # The stack's own cost: an empty view (no database, no template) through uvicorn and Django.
            jobs = [page_job("/healthz") for _ in range(args.page_requests)]
            floor = drive("floor: GET /healthz", site, jobs, args.concurrency)
            lines.append(floor.line("req/s") + "   (the ASGI stack alone)")
            lines.append(
                wrk_line("floor: GET /healthz", site, "/healthz", args.wrk_seconds, args.concurrency)
            )
        if "ws" in phases:
            # Round 0 is the first event after 1000 sockets joined (cold); rounds 1.. are the measurement.
            connected, fanout = asyncio.run(websocket_fanout(url, args.ws_clients, args.ws_rounds + 1))
            lines += [
                f"{'websocket fan-out':<22} {'cold round' if n == 0 else f'round {n}'}: {got}/{connected} "
                f"clients got the event; first after {first:.1f} ms, last after {last:.1f} ms"
                + ("" if n == 0 else f"   target: {args.ws_clients} within 1000 ms")
                for n, (first, last, got) in enumerate(fanout)
            ]
    print()
    print(
        f"cores: {os.cpu_count()}; load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}; "
        f"web: manage.py serve (uvicorn) --workers {args.web_workers}; worker: celery threads x4 on "
        f"default,ranking; load generator: this process (httpx, websockets), concurrency "
        f"{args.concurrency}; open-file limit {files}"
    )
    print(
        "benchmark-only settings: ARENA_POW_DIFFICULTY=0 (no proof of work), vote and battle-start rate "
        "limits off, ARENA_IP_HEADER=HTTP_X_FORWARDED_FOR (one address per simulated voter)"
    )
    print("\n".join(lines))
    removed = redis_cleanup()
    print(f"server log: {log} ({site.errors()} ERROR lines); {removed} Redis keys of this run removed")
    if any(line.startswith("ACKNOWLEDGED") for line in lines):
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--votes", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200, help="votes sent first, not measured")
    parser.add_argument("--battles", type=int, default=1000)
    parser.add_argument("--page-requests", type=int, default=3000)
    parser.add_argument("--ws-clients", type=int, default=1000)
    parser.add_argument("--ws-rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--wrk-seconds", type=int, default=10, help="length of each wrk run (pages, floor)")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--phases", default="votes,battles,pages,floor,ws", help="comma-separated subset")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
