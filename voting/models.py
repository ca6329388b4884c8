"""Voters and votes. Votes are append-only: excluding one flips `counted`, it is never deleted."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


def voter_code() -> str:
    return "v_" + secrets.token_hex(8)


class Voter(models.Model):
    """A pseudonymous voter: one per browser session (or per account when logged in).

    Only salted hashes of the session key and IP are kept; the raw IP is stored only when
    ARENA_STORE_RAW_IP is set by the operator.
    """

    code = models.CharField(max_length=24, unique=True, default=voter_code, editable=False)
    session_hash = models.CharField(max_length=64, db_index=True)
    ip_hash = models.CharField(max_length=64, blank=True, db_index=True)
    network_hash = models.CharField(max_length=64, blank=True, db_index=True)
    raw_ip = models.GenericIPAddressField(null=True, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="voter"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.code


class Vote(models.Model):
    class Choice(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both are bad"

    battle = models.OneToOneField("arena.Battle", on_delete=models.PROTECT, related_name="vote")
    voter = models.ForeignKey(Voter, on_delete=models.PROTECT, related_name="votes")
    choice = models.CharField(max_length=8, choices=Choice.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    seconds_to_vote = models.FloatField(null=True, blank=True)
    counted = models.BooleanField(default=True, db_index=True)
    exclusion_reason = models.CharField(max_length=300, blank=True)
    # Decided at vote time so boards and exports need not re-read the conversation.
    categories = models.JSONField(default=list, blank=True)
    conv_metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.battle_id}:{self.choice}"
