from __future__ import annotations

from django.contrib import admin

from voting.models import Vote, Voter


@admin.register(Voter)
class VoterAdmin(admin.ModelAdmin):
    list_display = ["code", "user", "created_at", "last_seen_at"]
    search_fields = ["code"]
    readonly_fields = [
        "code",
        "session_hash",
        "ip_hash",
        "network_hash",
        "raw_ip",
        "created_at",
        "last_seen_at",
    ]


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = [
        "battle",
        "voter",
        "choice",
        "counted",
        "exclusion_reason",
        "seconds_to_vote",
        "created_at",
    ]
    list_filter = ["counted", "choice"]
    list_select_related = ["battle", "voter"]
    readonly_fields = ["battle", "voter", "choice", "created_at", "seconds_to_vote"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # votes are append-only: exclude them instead
