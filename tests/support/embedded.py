"""The embedded default as `./bin/run` starts it, in a child process: SQLite, the in-memory broker and channel
layer, the Celery worker and beat on threads of the server, the demo models.

`EmbeddedSite` runs the same `manage.py` steps as bin/run (migrate, seed_demo, collectstatic, serve) with none
of the test run's PostgreSQL or Redis settings, in a var dir of its own. Tests read its SQLite database
directly (read-only) to see what the server did, and may prepare it with `shell` before the server starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.asgi import free_port

ROOT = Path(__file__).resolve().parents[2]

# What the test run sets for itself (PostgreSQL, Redis, prefixes): none of it may reach the embedded site.
_SCRUB_PREFIXES = (
    "DATABASE_",
    "REDIS_",
    "CELERY_",
    "CHANNELS_",
    "CACHE_",
    "ARENA_",
    "DJANGO_",
    "STATIC_ROOT",
)


def embedded_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "arena.settings",
            "ARENA_VAR_DIR": str(var_dir),
            "STATIC_ROOT": str(var_dir / "static"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class EmbeddedSite:
    """`with EmbeddedSite(env={...}) as site:` → `site.base_url` serves the embedded default; on exit it is
    stopped with SIGTERM (SIGKILL after a timeout) and its var dir removed."""

    def __init__(
        self, *, env: dict[str, str] | None = None, prepare: str = "", start_timeout: float = 90
    ) -> None:
        self.var_dir = Path(tempfile.mkdtemp(prefix="arena-embedded-"))
        self.env = embedded_env(self.var_dir, **(env or {}))
        self.prepare = prepare
        self.start_timeout = start_timeout
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.var_dir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    # --- bin/run's steps ------------------------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args[:1])} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> str:
        """Run Python in `manage.py shell` against the site's database (its own process, like an operator)."""
        return self.manage("shell", "-c", code)

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v0")
        self.manage("seed_demo")
        self.manage("collectstatic", "--noinput", "-v0")
        if self.prepare:
            self.shell(self.prepare)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: every process it starts can be found by session id
            )
        self.wait_for(self._answers, self.start_timeout, "the embedded site answering /healthz")

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    # --- observing it ---------------------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the site's SQLite database (read-only, so the server's writes are never blocked for long)."""
        uri = f"file:{self.var_dir / 'arena.sqlite3'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            return db.execute(sql, params).fetchall()

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process is not None and not self.alive():
                raise AssertionError(
                    f"the embedded site exited while waiting for {what}:\n{self.log()[-4000:]}"
                )
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout} s\n{self.log()[-4000:]}")

    def session_processes(self) -> list[int]:
        """Every live process in the server's session (the server and anything it started, forked or not)."""
        assert self.process is not None
        sid = self.process.pid
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                # fields: state, ppid, pgrp, session, ...; a zombie (Z) has exited already
                if int(fields[3]) == sid and fields[0] != "Z":
                    found.append(int(entry.name))
        return found

    # --- stopping it ----------------------------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(20)
        # Whatever is left of its session (a stuck server, an orphaned child) goes too.
        for pid in self.session_processes() if self.process else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)

    def __enter__(self) -> EmbeddedSite:
        try:
            self.start()
        except BaseException:
            self.stop()
            self._cleanup()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._cleanup()

    def _cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.var_dir, ignore_errors=True)
