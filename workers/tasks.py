"""Celery tasks: thin adapters that take ids and call services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db.models import Q

from arena.models import ModelEntry
from workers.services import generation_run, generation_sweep, model_probe


@shared_task(
    ignore_result=True,
    acks_late=True,
    soft_time_limit=settings.ARENA_GENERATION_SOFT_LIMIT,
    time_limit=settings.ARENA_GENERATION_HARD_LIMIT,
)
def generation_run_task(generation_id: int) -> None:
    generation_run(generation_id=generation_id)


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150)
def generation_sweep_task() -> str:
    """Returns a line on what the sweep did (recorded for operators: workers.schedule)."""
    return f"{generation_sweep()} stuck or lost generations requeued or failed"


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150)
def model_probe_task(model_id: int | None = None, confirm: bool = False) -> str:
    """Probe one model (`confirm`: a failure streak asked, so a failed probe means outage); without an id (the
    periodic run), send one probe per model that needs one to that model's own queue. Returns a line on what
    was done (the periodic run's is recorded for operators: workers.schedule)."""
    if model_id is not None:
        ok, _ = model_probe(model_id=model_id, confirm=confirm)
        return "answered" if ok else "failed"
    due = models_due_probe()
    for model in due:
        model_probe_task.apply_async(
            args=[model.id], kwargs={"confirm": not model.in_outage}, queue=model.generation_queue()
        )
    return f"{len(due)} probes sent: " + (", ".join(m.slug for m in due) or "no model needs one")


def models_due_probe() -> list[ModelEntry]:
    """Models in outage (a probe may bring them back), and models whose failure streak no probe has settled
    yet (its request was lost): each is probed on its own queue, where its GPU and its files are. Probing
    them all here, one after another, ran on a worker that may hold none of them, and one hanging server
    used up the task's time limit before the others were tried."""
    threshold = settings.ARENA_OUTAGE_AFTER_FAILURES
    due = Q(outage_since__isnull=False) | Q(consecutive_failures__gte=threshold)
    fields = ("id", "slug", "modality", "queue", "outage_since")
    return list(ModelEntry.objects.filter(due, active=True).only(*fields))
