"""Staff console for models, prompts and battles.

Who may do what is Django's permissions: every moderation action needs the change permission on its model
(exporting needs arena.export_battle), which superusers and the "Moderators" group (manage.py
setup_moderators) have. Each action asks for a reason and writes an audit entry through a service.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from arena import curation
from arena.admin_forms import (
    ChangedOnlyByActions,
    ModelEntryForm,
    RefusalKeepsSelection,
    WeightForm,
    action_with_reason,
    admin_change_url,
    audit_target_html,
)
from arena.audit import audit_targets
from arena.models import Battle, GalleryOutput, Generation, ModelEntry, Prompt, PromptSet
from arena.selectors import battle_review


@admin.register(ModelEntry)
class ModelEntryAdmin(RefusalKeepsSelection):
    form = ModelEntryForm
    list_display = [
        "slug",
        "display_name",
        "organization",
        "modality",
        "backend_kind",
        "weight",
        "active",
        "released",
        "outage_since",
        "consecutive_failures",
    ]
    list_filter = ["modality", "backend_kind", "active", "released"]
    search_fields = ["slug", "display_name", "organization"]
    readonly_fields = [
        "consecutive_failures",
        "consecutive_rejections",  # inputs its server refused in a row; a streak asks for a probe
        "outage_since",
        "created_at",
        "updated_at",
    ]
    actions = ["probe", "enable", "disable", "set_weight"]

    @admin.action(description="Enable for battles…", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[ModelEntry]) -> HttpResponse | None:
        return action_with_reason(
            self,
            request,
            queryset,
            title="Enable models",
            apply=lambda m, data: curation.model_active_set(
                model_id=m.id, active=True, actor_id=request.user.id, reason=data["reason"]
            ),
        )

    @admin.action(description="Disable for battles…", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[ModelEntry]) -> HttpResponse | None:
        return action_with_reason(
            self,
            request,
            queryset,
            title="Disable models",
            apply=lambda m, data: curation.model_active_set(
                model_id=m.id, active=False, actor_id=request.user.id, reason=data["reason"]
            ),
        )

    @admin.action(description="Set sampling weight…", permissions=["change"])
    def set_weight(self, request: HttpRequest, queryset: QuerySet[ModelEntry]) -> HttpResponse | None:
        return action_with_reason(
            self,
            request,
            queryset,
            title="Set sampling weight",
            form_class=WeightForm,
            apply=lambda m, data: curation.model_weight_set(
                model_id=m.id, weight=data["weight"], actor_id=request.user.id, reason=data["reason"]
            ),
        )

    @admin.action(description="Probe: run a short test generation", permissions=["change"])
    def probe(self, request: HttpRequest, queryset: QuerySet[ModelEntry]) -> None:
        from workers.services import model_probe

        for model in queryset:
            ok, text = model_probe(model_id=model.id)
            level = messages.SUCCESS if ok else messages.ERROR
            self.message_user(request, f"{model.slug}: {'ok' if ok else 'failed'} — {text[:300]}", level)


class PromptInline(admin.TabularInline):
    model = Prompt
    extra = 0
    fields = ["text", "language", "status"]


@admin.register(PromptSet)
class PromptSetAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "modality", "active"]
    inlines = [PromptInline]


@admin.register(Prompt)
class PromptAdmin(RefusalKeepsSelection):
    """The moderation queue is the list filtered to status "pending" (or "blocked": refused by the policy)."""

    list_display = ["__str__", "prompt_set", "modality", "language", "status", "created_at"]
    list_filter = ["status", "modality", "prompt_set"]
    search_fields = ["text"]
    ordering = ["-created_at"]
    actions = ["approve", "block"]

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Prompt], status: str, title: str) -> Any:
        return action_with_reason(
            self,
            request,
            queryset,
            title=title,
            apply=lambda p, data: curation.prompt_status_set(
                prompt_id=p.id, status=status, actor_id=request.user.id, reason=data["reason"]
            ),
        )

    @admin.action(description="Approve…", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Prompt]) -> HttpResponse | None:
        return self._set_status(request, queryset, Prompt.Status.APPROVED, "Approve prompts")

    @admin.action(description="Block…", permissions=["change"])
    def block(self, request: HttpRequest, queryset: QuerySet[Prompt]) -> HttpResponse | None:
        return self._set_status(request, queryset, Prompt.Status.BLOCKED, "Block prompts")


class GenerationInline(admin.TabularInline):
    """Read-only, as the battle is: a side's status, output and flags change only through the workers and the
    audited moderation services."""

    model = Generation
    extra = 0
    can_delete = False
    # The outputs themselves are shown side by side above (templates/admin/arena/battle/change_form.html).
    fields = [
        "turn",
        "side",
        "model",
        "status",
        "flagged",
        "failure_kind",
        "error_detail",  # the backend's own words; the voter saw only the neutral text for failure_kind
        "started_at",
        "first_chunk_at",
        "finished_at",
        "output_tokens",
        "media_format",
        "media_kind",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Battle | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Battle | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Battle | None = None) -> bool:
        return False


@admin.register(GalleryOutput)
class GalleryOutputAdmin(admin.ModelAdmin):
    """Pre-generated outputs, imported by `manage.py import_gallery` (re-import to change them)."""

    list_display = ["thumb", "model", "prompt", "media_format", "media_kind", "created_at"]
    list_filter = ["media_format", "media_kind", "prompt__prompt_set"]
    list_select_related = ["model", "prompt"]
    search_fields = ["model__slug", "prompt__gallery_key", "prompt__text"]
    readonly_fields = [f.name for f in GalleryOutput._meta.fields]

    @admin.display(description="Output")
    def thumb(self, obj: GalleryOutput) -> str:
        if not obj.thumbnail_name:
            return "—"
        token = obj.thumbnail_name.removeprefix("thumbs/").removesuffix(".png")
        url = reverse("arena:thumbnail", kwargs={"token": token})
        return format_html('<img src="{}" alt="" width="96" height="96">', url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Battle)
class BattleAdmin(ChangedOnlyByActions, RefusalKeepsSelection):
    """Battles are read-only here, voted or not: what was compared, what each side answered and what the voter
    chose change only through audited services (the votes list's exclude and restore, the audit log's undo).
    Editing a voted battle's modality, status or models would silently change what its vote means."""

    list_display = ["code", "modality", "model_a", "model_b", "status", "created_at"]
    list_filter = ["status", "modality"]
    search_fields = ["code", "model_a__slug", "model_b__slug"]
    search_help_text = "Battle code or model slug."
    list_select_related = ["model_a", "model_b"]
    # input_image is a storage name under a random key; it is shown as the picture in the review below.
    fields = ["code", "modality", "status", "voter", "model_a", "model_b", "prompt", "created_at", "ready_at"]
    readonly_fields = fields
    inlines = [GenerationInline]
    actions = ["export_jsonl"]
    read_only_message = (
        "Battle {obj} is read-only: nothing was changed. Exclude or restore its vote from the votes list, or "
        "undo an action from the audit log; each writes an audit entry."
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # battles come from voters

    def has_delete_permission(self, request: HttpRequest, obj: Battle | None = None) -> bool:
        return False  # votes hang off battles and are append-only

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("arena.export_battle")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        battle = self.get_object(request, object_id)
        context = {**(extra_context or {})}
        if battle is not None:
            review = battle_review(battle)
            named = audit_targets(review["audit"])
            review["audit_rows"] = [(e, audit_target_html(named[e.id])) for e in review["audit"]]
            vote = review["vote"]
            review["vote_url"] = admin_change_url("voting.vote", str(vote.id)) if vote is not None else None
            context["review"] = review
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Export the selected battles (JSON lines)", permissions=["export"])
    def export_jsonl(self, request: HttpRequest, queryset: QuerySet[Battle]) -> HttpResponse:
        from arena.api import streaming_download
        from voting import export

        spec = export.ExportFilter(
            with_conversations=True, battle_ids=list(queryset.values_list("id", flat=True))
        )
        return streaming_download(
            request, export.jsonl_chunks(spec), fmt="jsonl", filename="battles-selected"
        )
