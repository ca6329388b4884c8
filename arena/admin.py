"""Staff console for models, prompts and battles."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from arena.models import Battle, Generation, ModelEntry, Prompt, PromptSet
from workers.backends import BackendConfigError, backend_class


class ModelEntryForm(forms.ModelForm):
    class Meta:
        model = ModelEntry
        fields = [
            "slug",
            "display_name",
            "organization",
            "license",
            "modality",
            "backend_kind",
            "backend_config",
            "queue",
            "weight",
            "active",
            "released",
            "battle_targets",
        ]

    def clean(self) -> dict:
        data = super().clean()
        kind, config = data.get("backend_kind"), data.get("backend_config")
        if kind is not None and config is not None:
            try:
                backend_class(kind).validate_config(config)
            except BackendConfigError as exc:
                raise forms.ValidationError({"backend_config": str(exc)}) from exc
        return data


@admin.register(ModelEntry)
class ModelEntryAdmin(admin.ModelAdmin):
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
    filter_horizontal = ["battle_targets"]
    readonly_fields = ["consecutive_failures", "outage_since", "created_at", "updated_at"]
    actions = ["probe"]

    @admin.action(description="Probe: run a short test generation")
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
class PromptAdmin(admin.ModelAdmin):
    list_display = ["__str__", "prompt_set", "modality", "status", "created_at"]
    list_filter = ["status", "modality", "prompt_set"]
    search_fields = ["text"]


class GenerationInline(admin.TabularInline):
    model = Generation
    extra = 0
    can_delete = False
    fields = [
        "turn",
        "side",
        "model",
        "status",
        "output",
        "error",
        "started_at",
        "first_chunk_at",
        "finished_at",
        "output_tokens",
    ]
    readonly_fields = fields


@admin.register(Battle)
class BattleAdmin(admin.ModelAdmin):
    list_display = ["code", "modality", "model_a", "model_b", "status", "created_at"]
    list_filter = ["status", "modality"]
    search_fields = ["code"]
    list_select_related = ["model_a", "model_b"]
    readonly_fields = ["code", "voter", "model_a", "model_b", "conversation", "created_at", "ready_at"]
    inlines = [GenerationInline]

    def has_delete_permission(self, request: HttpRequest, obj: Battle | None = None) -> bool:
        return False  # votes hang off battles and are append-only
