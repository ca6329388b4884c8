"""Leaderboard snapshots in the staff console: read them, publish or freeze them (see ranking.publication)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from arena.admin_forms import action_with_reason
from ranking import publication
from ranking.models import LeaderboardSnapshot


@admin.register(LeaderboardSnapshot)
class LeaderboardSnapshotAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "modality",
        "category",
        "style_control",
        "n_votes",
        "published",
        "frozen",
        "public",
    ]
    list_filter = ["modality", "category", "style_control", "published", "frozen"]
    date_hierarchy = "created_at"
    fields = [
        "modality",
        "category",
        "style_control",
        "created_at",
        "n_votes",
        "published",
        "frozen",
        "board",
    ]
    readonly_fields = fields
    actions = ["publish", "unpublish", "freeze", "unfreeze"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # snapshots are computed, never typed in

    def has_delete_permission(self, request: HttpRequest, obj: LeaderboardSnapshot | None = None) -> bool:
        return False  # history feeds the rating-history plot and the audit trail points at it

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ranking.publish_leaderboardsnapshot")

    @admin.display(boolean=True, description="shown to the public")
    def public(self, obj: LeaderboardSnapshot) -> bool:
        shown = publication.snapshot_public(
            modality=obj.modality, category=obj.category, style_control=obj.style_control
        )
        return shown is not None and shown.id == obj.id

    @admin.display(description="board")
    def board(self, obj: LeaderboardSnapshot) -> SafeString:
        rows = obj.data.get("models", [])
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    r.get("rank_ub"),
                    r.get("slug"),
                    r.get("rating"),
                    r.get("lower"),
                    r.get("upper"),
                    r.get("battles"),
                    "provisional" if r.get("provisional") else "",
                )
                for r in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>rank (UB)</th><th>model</th><th>rating</th><th>95% interval</th>"
            "<th>battles</th><th>mark</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def _flip(self, request: HttpRequest, queryset, title: str, change) -> HttpResponse | None:
        return action_with_reason(
            self,
            request,
            queryset,
            title=title,
            apply=lambda snap, data: change(
                snapshot_id=snap.id, actor_id=request.user.id, reason=data["reason"]
            ),
        )

    @admin.action(description="Publish…", permissions=["publish"])
    def publish(self, request: HttpRequest, queryset) -> HttpResponse | None:
        return self._flip(
            request,
            queryset,
            "Publish snapshots",
            lambda **kw: publication.snapshot_publish(published=True, **kw),
        )

    @admin.action(description="Unpublish…", permissions=["publish"])
    def unpublish(self, request: HttpRequest, queryset) -> HttpResponse | None:
        return self._flip(
            request,
            queryset,
            "Unpublish snapshots",
            lambda **kw: publication.snapshot_publish(published=False, **kw),
        )

    @admin.action(description="Freeze the board at this snapshot…", permissions=["publish"])
    def freeze(self, request: HttpRequest, queryset) -> HttpResponse | None:
        return self._flip(
            request, queryset, "Freeze boards", lambda **kw: publication.snapshot_freeze(frozen=True, **kw)
        )

    @admin.action(description="Unfreeze…", permissions=["publish"])
    def unfreeze(self, request: HttpRequest, queryset) -> HttpResponse | None:
        return self._flip(
            request, queryset, "Unfreeze boards", lambda **kw: publication.snapshot_freeze(frozen=False, **kw)
        )
