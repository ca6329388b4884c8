"""A real Celery worker running inside the current process, on threads.

The embedded default uses it with the in-memory broker (which only exists inside one process), so a
newcomer needs no Redis and no second terminal; the integration tests use it with the real Redis
broker. Generations still run concurrently on the worker's thread pool and stream independently:
this is a worker, not eager execution.

Beat, when asked for, runs on another thread of this process (never Celery's default forked child: a forked
beat publishes into its own copy of the in-memory broker, which no worker reads, and outlives the server as an
orphan).
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
    beat: threading.Thread | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop beat first (nothing new is sent), then the worker (it finishes what it holds)."""
        from celery.worker import state

        if self.beat is not None:
            self.beat.stop()  # type: ignore[attr-defined]  # celery.beat._Threaded: waits for its loop to end
            self.beat.join(timeout)
        state.should_terminate = 0
        self.thread.join(timeout)
        state.should_terminate = None


def beat_start() -> threading.Thread:
    """Celery beat on a daemon thread of this process, with the in-memory scheduler (no schedule file)."""
    from celery.beat import EmbeddedService

    beat = EmbeddedService(app, thread=True, scheduler_cls="workers.schedule:RecordingMemoryScheduler")
    beat.start()
    return beat


def worker_start(
    *,
    concurrency: int | None = None,
    beat: bool = True,
    queues: list[str] | None = None,
    timeout: float = 30.0,
) -> InProcessWorker:
    """Start the worker on a daemon thread, wait until it consumes; then beat on its own thread if asked."""
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
        beat=False,  # Celery's embedded beat is a forked process: see beat_start
    )
    thread = threading.Thread(target=controller.start, name="celery-in-process", daemon=True)
    thread.start()
    if not controller.started.wait(timeout):
        raise RuntimeError(f"the in-process Celery worker did not start within {timeout:.0f} s")
    return InProcessWorker(controller, thread, beat_start() if beat else None)
