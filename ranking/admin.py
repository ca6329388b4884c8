"""Leaderboard snapshots in the staff console: read them, publish or freeze them (see ranking.publication).
Old snapshots are thinned by ranking.retention (never a published, frozen or latest one), not deleted here."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from arena.admin_forms import RefusalKeepsSelection, action_with_reason
from arena.audit import Named, audit_target_namer
from ranking import publication
from ranking.models import LeaderboardSnapshot
from ranking.retention import SNAPSHOT_TARGET


def _board(snapshot: LeaderboardSnapshot) -> tuple[str, str, bool]:
    return (snapshot.modality, snapshot.category, snapshot.style_control)


def _public_id(board: tuple[str, str, bool]) -> int | None:
    modality, category, style = board
    return publication.snapshot_public_id(modality=modality, category=category, style_control=style)


class CategoryFilter(admin.SimpleListFilter):
    """Boards by category; the overall board (category "") is named, not an empty link."""

    title = "category"
    parameter_name = "board"
    _OVERALL = "overall"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        found = LeaderboardSnapshot.objects.order_by("category").values_list("category", flat=True).distinct()
        return [(c or self._OVERALL, c or "overall") for c in found]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(category="" if value == self._OVERALL else value)


@admin.register(LeaderboardSnapshot)
class LeaderboardSnapshotAdmin(RefusalKeepsSelection):
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
    list_filter = ["modality", CategoryFilter, "style_control", "published", "frozen"]
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

    def changelist_rows(self, request: HttpRequest, rows: list[LeaderboardSnapshot]) -> None:
        super().changelist_rows(request, rows)
        # The public snapshot of each board on the page, read once per board rather than once per row.
        public = {board: _public_id(board) for board in {_board(row) for row in rows}}
        for row in rows:
            row._arena_public = public[_board(row)] == row.id  # type: ignore[attr-defined]

    @admin.display(boolean=True, description="shown to the public")
    def public(self, obj: LeaderboardSnapshot) -> bool:
        known = getattr(obj, "_arena_public", None)
        return known if known is not None else _public_id(_board(obj)) == obj.id

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


@audit_target_namer(SNAPSHOT_TARGET)
def _snapshots_named(ids: list[int]) -> dict[int, str | Named]:
    return {s.id: _snapshot_name(s) for s in LeaderboardSnapshot.objects.filter(id__in=ids).defer("data")}


def _snapshot_name(snapshot: LeaderboardSnapshot) -> str:
    style = ", style control" if snapshot.style_control else ""
    board = f"{snapshot.get_modality_display()} board ({snapshot.category or 'overall'}{style})"
    return f"{board} snapshot of {timezone.localtime(snapshot.created_at):%Y-%m-%d %H:%M}"
