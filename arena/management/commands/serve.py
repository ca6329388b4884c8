"""Serve the site over ASGI (HTTP and websockets) with uvicorn.

In the embedded default (memory broker) it also starts the Celery worker and beat inside this
process, so one command runs the whole arena.
"""

from __future__ import annotations

import logging

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from arena.inprocess import worker_start

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
        if settings.CELERY_IN_PROCESS_WORKER:
            if workers != 1:
                self.stderr.write("The embedded worker needs a single process; ignoring --workers.")
                workers = 1
            worker_start()
            self._say("In-process Celery worker started (threads, in-memory broker).")
        self._say(f"Arena is running at http://{host}:{port}/")
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
