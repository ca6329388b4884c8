"""Celery tasks of the ranking app: thin adapters over ranking.services."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from arena.models import Modality
from ranking.retention import snapshot_retention
from ranking.services import leaderboard_refresh


@shared_task(ignore_result=True, soft_time_limit=600, time_limit=660)
def leaderboard_refresh_task(modality: str) -> None:
    cache.delete(f"arena:leaderboard-pending:{modality}")
    leaderboard_refresh(modality=modality)


@shared_task(ignore_result=True, soft_time_limit=1800, time_limit=1900)
def leaderboard_refresh_all_task() -> str:
    """Returns a line on what was refreshed (recorded for operators: workers.schedule)."""
    counts = {modality: len(leaderboard_refresh(modality=modality)) for modality in Modality.values}
    return "boards refreshed: " + ", ".join(f"{modality} {n}" for modality, n in counts.items())


@shared_task(ignore_result=True, soft_time_limit=600, time_limit=660)
def snapshot_retention_task() -> str:
    """Thin the stored leaderboard snapshots (ranking.retention); returns its line for operators."""
    return snapshot_retention().line()
