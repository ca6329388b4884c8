"""What the workers app stores: when each periodic task was last sent by beat and last finished."""

from __future__ import annotations

from django.db import models


class ScheduleRun(models.Model):
    """One row per entry of CELERY_BEAT_SCHEDULE (its key is `name`), written by beat when it sends the task
    and by the worker when the task finishes. An operator reads it in /readyz?strict=1 and the admin: a
    scheduler that died (or, in the embedded default, never reached the worker) shows as an overdue entry."""

    name = models.CharField(max_length=100, unique=True)
    task = models.CharField(max_length=200)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_state = models.CharField(max_length=20, blank=True, help_text="SUCCESS, FAILURE, … of the last run.")
    last_detail = models.CharField(max_length=300, blank=True, help_text="What the last run did, in a line.")
    sent_count = models.PositiveIntegerField(default=0)
    finished_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = "periodic task"

    def __str__(self) -> str:
        return self.name
