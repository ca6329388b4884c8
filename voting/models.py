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
    # Salted hash of a coarse device fingerprint the page sends with a vote (latest seen): advisory only,
    # it groups accounts on one device for the ring test and is trivially spoofed.
    fingerprint_hash = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    # Moderation state; every change goes through voting.integrity, which writes an audit entry.
    flagged = models.BooleanField(default=False, db_index=True)
    flag_reasons = models.JSONField(default=list, blank=True)
    risk_score = models.FloatField(default=0.0, help_text="0-1, from the latest fraud sweep.")
    banned = models.BooleanField(default=False, db_index=True)
    trusted = models.BooleanField(
        default=False, help_text="Staff cleared this voter: the automatic sweep never flags it again."
    )

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
    # Multi-criteria arenas (ARENA_VOTE_CRITERIA): {"geometry": "a", "texture": "tie", ...}; each criterion
    # has its own board, tallied from these choices. `choice` is always the overall verdict.
    criteria = models.JSONField(default=dict, blank=True)
    conv_metadata = models.JSONField(default=dict, blank=True)
    # Where the vote came from, as salted hashes taken at vote time (a voter's address can change):
    # the sweep's rate and ring signals group votes by them.
    ip_hash = models.CharField(max_length=64, blank=True)
    network_hash = models.CharField(max_length=64, blank=True)
    fingerprint_hash = models.CharField(max_length=64, blank=True)
    prompt_hash = models.CharField(max_length=16, blank=True, help_text="Salted hash of the first prompt.")
    risk_score = models.FloatField(default=0.0, help_text="0-1: vote-time checks, raised by later sweeps.")
    risk_reasons = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["voter", "-created_at"], name="vote_voter_recent"),
            models.Index(fields=["ip_hash", "-created_at"], name="vote_ip_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.battle_id}:{self.choice}"
