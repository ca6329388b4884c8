"""Serve the site over ASGI (HTTP and websockets) with uvicorn.

In the embedded default (memory broker) it also starts the Celery worker and beat on threads of this
process, so one command runs the whole arena. Ctrl+C or SIGTERM stops uvicorn gracefully, then beat and the
worker: nothing of the server is left running.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from arena.inprocess import InProcessWorker, worker_start

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the ASGI server (and, in the embedded default, an in-process Celery worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers", type=int, default=1, help="uvicorn processes (not with the embedded worker)"
        )

    def _say(self, text: str) -> None:
        if settings.ARENA_LOG_FORMAT == "json":  # a log pipeline reads every line as a JSON object
            logger.info(text)
        else:
            self.stdout.write(self.style.SUCCESS(text))

    def handle(self, *args: object, host: str, port: int, workers: int, **options: object) -> None:
        embedded: InProcessWorker | None = None
        if settings.CELERY_IN_PROCESS_WORKER:
            if workers != 1:
                self.stderr.write("The embedded worker needs a single process; ignoring --workers.")
                workers = 1
            embedded = worker_start(beat=settings.CELERY_IN_PROCESS_BEAT)
            beat_note = ", beat" if embedded.beat is not None else ""
            self._say(f"In-process Celery worker{beat_note} started (threads, {_broker_name()}).")
        self._say(f"Arena is running at http://{host}:{port}/")
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it found:
        # make that handler end the process through the `finally` below, so the worker and beat stop too.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            self._serve(host=host, port=port, workers=workers)
        finally:
            if embedded is not None:
                embedded.stop()
                self._say("In-process Celery worker stopped.")

    def _serve(self, *, host: str, port: int, workers: int) -> None:
        """uvicorn until Ctrl+C or SIGTERM (it handles both: finishes open requests, then returns)."""
        uvicorn.run(
            "arena.asgi:application",
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            log_config=None,  # uvicorn's own lines go through settings.LOGGING (text or JSON) like the rest
            ws_max_size=64 * 1024,
            lifespan="off",
        )


def _broker_name() -> str:
    broker = settings.CELERY_BROKER_URL
    return "in-memory broker" if broker.startswith("memory://") else broker.split("://", 1)[0] + " broker"


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
