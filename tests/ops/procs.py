"""Arena's own processes for fault tests: a Celery worker, the web server, a private Redis.

Each runs as a separate OS process against this test run's database, so a test can SIGKILL it or cut it off
from Redis the way a crash or an outage would, and see what the rest of the system does. They use the real
settings module (arena.settings) configured through the environment, as docker-compose does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from tests.support.asgi import free_port

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database (pytest-django's), as a URL another process can use."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "postgres")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_env(**overrides: str) -> dict[str, str]:
    """This run's environment (Redis prefixes, secret, var dir) with the test database and no in-process
    worker; `overrides` win."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arena.settings",
        "DATABASE_URL": database_url(),
        "CELERY_IN_PROCESS_WORKER": "false",
        "PYTHONUNBUFFERED": "1",
        "DB_POOL_MIN": "0",
    }
    env.update(overrides)
    return env


class Process:
    """A child process whose output goes to a log file the test can read when something fails."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"arena-{name}-", suffix=".log")[1])
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:  # stopped: its log is gone
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost machine would: no cleanup runs."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, graceful: bool = True) -> None:
        """SIGTERM and wait (a worker finishes its tasks first), or at once SIGKILL; then drop the log."""
        if self.alive() and graceful:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        elif self.alive():
            self.kill()
        self.log_path.unlink(missing_ok=True)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, *procs: Process) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for proc in procs:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited while waiting for {what}:\n{proc.log()[-3000:]}")
        time.sleep(0.05)
    logs = "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in procs)
    raise AssertionError(f"{what}: not within {timeout} s\n{logs}")


def started(proc: Process, ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Wait until the new process is ready; one that never gets there is stopped, not left running."""
    try:
        wait_until(ready, timeout, what, proc)
    except BaseException:
        proc.stop()
        raise


def worker_start(queues: list[str], env: dict[str, str] | None = None, concurrency: int = 2) -> Process:
    """`celery worker` on the given queues, threads pool, as the docker-compose workers run. Returns once it
    says it is ready (it consumes from then on)."""
    node = f"fault-{uuid.uuid4().hex[:8]}@localhost"
    command = [
        *(sys.executable, "-m", "celery", "-A", "arena", "worker", "-Q", ",".join(queues), "-n", node),
        *("--pool", "threads", "-c", str(concurrency), "--loglevel", "INFO"),
        *("--without-gossip", "--without-mingle"),
    ]
    # INFO for Celery's own logger, so that its "<node> ready." line reaches the log.
    proc = Process("worker", command, {**(env or service_env()), "CELERY_LOG_LEVEL": "INFO"})
    started(proc, lambda: f"{node} ready." in proc.log(), "the worker ready")
    return proc


def web_start(env: dict[str, str] | None = None) -> tuple[Process, str]:
    """`manage.py serve` (uvicorn) on a free port. Returns once /healthz answers."""
    import httpx

    port = free_port()
    proc = Process("web", [sys.executable, "manage.py", "serve", "--port", str(port)], env or service_env())
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    started(proc, up, "the web server answering /healthz")
    return proc, url


class PrivateRedis:
    """A redis-server of the test's own on a free port, in a temp dir, with an append-only file (as the
    docker-compose Redis runs) so that a restart keeps what was queued. It can be killed and restarted
    without touching the Redis other tests share."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="arena-redis-"))
        self.proc: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        command = [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
            *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
        ]
        if self.proc is not None:
            self.proc.stop()  # the previous run's (killed) process: only its log is left to remove
        self.proc = Process("redis", command, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})

        def pong() -> bool:
            try:
                with redis.Redis(port=self.port, socket_timeout=0.5) as client:
                    return bool(client.ping())
            except redis.RedisError:
                return False

        started(self.proc, pong, "redis answering PING", timeout=10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    def wipe(self) -> None:
        """Delete its files (while it is down), as if its volume were lost: the next start is empty."""
        shutil.rmtree(self.dir)
        self.dir.mkdir()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
