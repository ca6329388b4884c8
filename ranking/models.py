"""Leaderboard state: per-pair vote tallies (kept current by every vote) and computed snapshots."""

from __future__ import annotations

from django.db import models

from arena.models import Modality, ModelEntry


class PairTally(models.Model):
    """Counted votes of one unordered model pair in one board (modality, category; "" is overall).

    Bradley-Terry depends on votes only through these cells, so a recompute reads a few thousand rows
    instead of every vote. `model_lo` has the smaller id.
    """

    modality = models.CharField(max_length=10, choices=Modality.choices)
    category = models.CharField(max_length=40, blank=True)
    model_lo = models.ForeignKey(ModelEntry, on_delete=models.CASCADE, related_name="+")
    model_hi = models.ForeignKey(ModelEntry, on_delete=models.CASCADE, related_name="+")
    lo_won = models.IntegerField(default=0)
    hi_won = models.IntegerField(default=0)
    ties = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["modality", "category", "model_lo", "model_hi"], name="one_tally_per_pair"
            )
        ]

    def __str__(self) -> str:
        return f"{self.modality}/{self.category or 'overall'} {self.model_lo_id}-{self.model_hi_id}"


class LeaderboardSnapshot(models.Model):
    """One computed board. History is kept: the rating-history plot reads earlier snapshots."""

    modality = models.CharField(max_length=10, choices=Modality.choices)
    category = models.CharField(max_length=40, blank=True)
    style_control = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    n_votes = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict)
    # The public board is the latest frozen snapshot of its board if there is one, else the latest
    # published one (ranking.publication.snapshot_public). Freezing pins a board while votes are reviewed.
    published = models.BooleanField(default=False)
    frozen = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["modality", "category", "style_control", "-created_at"])]
        permissions = [("publish_leaderboardsnapshot", "Can publish and freeze leaderboards")]

    def __str__(self) -> str:
        style = " (style)" if self.style_control else ""
        return f"{self.modality}/{self.category or 'overall'}{style} {self.created_at}"
