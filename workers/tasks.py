"""Celery tasks: thin adapters that take ids and call services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

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
def generation_sweep_task() -> None:
    generation_sweep()


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150)
def model_probe_task(model_id: int | None = None) -> None:
    """Probe one model, or every model in outage."""
    ids = (
        [model_id]
        if model_id is not None
        else list(
            ModelEntry.objects.filter(active=True, outage_since__isnull=False).values_list("id", flat=True)
        )
    )
    for mid in ids:
        model_probe(model_id=mid)
