"""A real Celery worker running inside the current process, on threads.

The embedded default uses it with the in-memory broker (which only exists inside one process), so a
newcomer needs no Redis and no second terminal; the integration tests use it with the real Redis
broker. Generations still run concurrently on the worker's thread pool and stream independently:
this is a worker, not eager execution.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from celery.worker import WorkController
from django.conf import settings

from arena.celery import app
from arena.models import Modality, ModelEntry

BASE_QUEUES = ["default", "ranking", "export"]


def worker_queues() -> list[str]:
    """Every queue this process should consume: the fixed ones, one per modality, and each model's own."""
    queues = [*BASE_QUEUES, *(f"gen-{m}" for m in Modality.values)]
    for queue in ModelEntry.objects.exclude(queue="").values_list("queue", flat=True).distinct():
        if queue not in queues:
            queues.append(queue)
    return queues


class _Controller(WorkController):
    def __init__(self, *args: object, **kwargs: object) -> None:
        self.started = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.started.set()


@dataclass
class InProcessWorker:
    controller: _Controller
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        from celery.worker import state

        state.should_terminate = 0
        self.thread.join(timeout)
        state.should_terminate = None


def worker_start(
    *,
    concurrency: int | None = None,
    beat: bool = True,
    queues: list[str] | None = None,
    timeout: float = 30.0,
) -> InProcessWorker:
    """Start the worker in a daemon thread and wait until it consumes. Beat runs embedded when asked."""
    import workers.tasks  # noqa: F401  (register the tasks before the worker reads its registry)

    app.finalize()
    app.set_current()
    app.set_default()
    controller = _Controller(
        app=app,
        hostname=f"inprocess-{threading.get_ident()}@{socket.gethostname()}",
        pool="threads",
        concurrency=concurrency or settings.CELERY_IN_PROCESS_CONCURRENCY,
        queues=queues or worker_queues(),
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        beat=beat,
        schedule_filename=str(settings.VAR_DIR / "celerybeat-schedule"),
    )
    thread = threading.Thread(target=controller.start, name="celery-in-process", daemon=True)
    thread.start()
    if not controller.started.wait(timeout):
        raise RuntimeError(f"the in-process Celery worker did not start within {timeout:.0f} s")
    return InProcessWorker(controller, thread)
