"""Staff-console building blocks: actions that ask why, refusals that keep the selection, rows that change
only through audited actions, audit targets shown by name, and the model registry's form.

An action that asks why shows an intermediate page for the reason (and any value) for the audit log, then a
service applies the change to each selected row.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from arena.audit import AuditTarget
from arena.errors import ArenaError
from arena.models import Modality, ModelEntry
from workers.backends import BACKEND_KINDS, BackendConfigError, backend_class, backend_validate

# --- actions that ask why ------------------------------------------------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Kept in the audit log with the change.",
    )


class WeightForm(ReasonForm):
    weight = forms.FloatField(min_value=0.0, help_text="Sampling weight; 0 takes the model out of battles.")


Apply = Callable[[Any, dict[str, Any]], object]


def _apply_each(
    modeladmin: admin.ModelAdmin, request: HttpRequest, rows: Iterable[models.Model], apply: Apply, data: dict
) -> None:
    changed, unchanged, refused = 0, 0, []
    for row in rows:
        try:
            result = apply(row, data)
        except ArenaError as exc:  # named, as the list keeps every selected row checked
            refused.append(exc.message if str(row) in exc.message else f"{row}: {exc.message}")
            continue
        changed, unchanged = (changed + 1, unchanged) if result is not None else (changed, unchanged + 1)
    if changed or unchanged:
        modeladmin.message_user(request, f"{changed} changed, {unchanged} already so.", messages.SUCCESS)
    for message in refused:
        action_refuse(modeladmin, request, message)


def action_with_reason(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: models.QuerySet,
    *,
    title: str,
    apply: Apply,
    form_class: type[ReasonForm] = ReasonForm,
) -> TemplateResponse | None:
    """First call renders the form; the form posts back with `apply` set and the change is made."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        _apply_each(modeladmin, request, queryset, apply, form.cleaned_data)
        return None  # back to the change list, with the messages
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "rows": queryset,
        "action": request.POST.get("action", ""),
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/arena/action_form.html", context)


# --- refusals keep the selection ------------------------------------------------------------------------

_REFUSED = "_arena_action_refused"


def action_refuse(modeladmin: admin.ModelAdmin, request: HttpRequest, message: str) -> None:
    """Say why an action (or one row of it) was refused. With RefusalKeepsSelection the change list then comes
    back with the same rows checked and the same action chosen, instead of a redirect that forgets them."""
    modeladmin.message_user(request, message, messages.ERROR)
    setattr(request, _REFUSED, True)


class _SelectionChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = list(self.result_list)
        self.model_admin.changelist_rows(request, self.result_list)


class RefusalKeepsSelection(admin.ModelAdmin):
    """A refused action re-renders the change list (fresh rows, after whatever the action did change) with the
    rows that were selected still checked, the action still chosen and the error above."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _SelectionChangeList

    def changelist_rows(self, request: HttpRequest, rows: list[models.Model]) -> None:
        """Called with the rows of the page about to be shown; marks those to show checked."""
        kept = getattr(request, "arena_kept_selection", frozenset())
        for row in rows:
            row._arena_checked = str(row.pk) in kept  # type: ignore[attr-defined]

    def action_checkbox(self, obj: models.Model) -> SafeString:
        attrs = {"class": "action-select", "aria-label": f"Select this object for an action - {obj}"}
        checked = bool(getattr(obj, "_arena_checked", False))
        return forms.CheckboxInput(attrs, lambda value: checked).render(
            helpers.ACTION_CHECKBOX_NAME, str(obj.pk)
        )

    def response_action(self, request: HttpRequest, queryset: models.QuerySet) -> HttpResponse | None:
        response = super().response_action(request, queryset)
        if not getattr(request, _REFUSED, False) or not isinstance(response, HttpResponseRedirect):
            return response
        return self._changelist_again(request)

    def _changelist_again(self, request: HttpRequest) -> HttpResponse:
        again = copy.copy(request)  # same user, session, messages and query string (the filters)
        again.method = "GET"
        again._post = QueryDict()  # type: ignore[attr-defined]
        again.arena_kept_selection = frozenset(  # type: ignore[attr-defined]
            request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        )
        response = self.changelist_view(again)
        context = getattr(response, "context_data", None) or {}
        if context.get("action_form") is not None:
            form = self.action_form(initial=_chosen_action(request), auto_id=None)
            form.fields["action"].choices = self.get_action_choices(again)
            context["action_form"] = form
        return response


def _chosen_action(request: HttpRequest) -> dict[str, str]:
    """The action (of the top or bottom bar, as Django picks it) and the other action-bar fields posted."""
    actions = request.POST.getlist("action")
    try:
        index = int(request.POST.get("index", 0))
    except ValueError:
        index = 0
    fields = {k: v for k, v in request.POST.items() if k not in ("action", "index", "csrfmiddlewaretoken")}
    fields.pop(helpers.ACTION_CHECKBOX_NAME, None)
    return {**fields, "action": actions[index] if index < len(actions) else ""}


# --- rows changed only through audited actions ----------------------------------------------------------


class ChangedOnlyByActions(admin.ModelAdmin):
    """The change page is view-only for everyone, superusers included: these rows change only through the
    list's actions, which call services that check, lock and write an audit entry. A POST to the change page
    changes nothing and says so."""

    read_only_message = "{obj} is read-only here; nothing was changed. Use the list's actions (audited)."

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return obj is None and super().has_change_permission(request)  # the list's actions still check it

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id)) if object_id else None
        if request.method == "POST" and obj is not None and self.has_view_permission(request, obj):
            self.message_user(request, self.read_only_message.format(obj=obj), messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().changeform_view(request, object_id, form_url, extra_context)


# --- audit targets --------------------------------------------------------------------------------------


def admin_change_url(target_type: str, target_id: str) -> str | None:
    """The admin page of an audit target ("voting.vote", "39"), if its model has one."""
    app_label, _, model = target_type.partition(".")
    try:
        return reverse(f"admin:{app_label}_{model}_change", args=[target_id])
    except NoReverseMatch:
        return None


def audit_target_html(target: AuditTarget) -> SafeString:
    """The target's name, linked to the staff page that shows it (its own, or its battle's for an answer)."""
    url = admin_change_url(*target.page) if target.page else None
    if url is None:
        return format_html("{}", target.name)
    return format_html('<a href="{}">{}</a>', url, target.name)


# --- the model registry's form ---------------------------------------------------------------------------


def backend_choices() -> list[tuple[str, str]]:
    """Every registered backend kind (workers.backends), with the modalities it serves."""
    names = dict(Modality.choices)
    choices = [("", "---------")]
    for kind in BACKEND_KINDS:
        modalities = [m for m in Modality.values if m in backend_class(kind).modalities]
        choices.append((kind, f"{kind} — {', '.join(names[m] for m in modalities)}"))
    return choices


class ModelEntryForm(forms.ModelForm):
    backend_kind = forms.ChoiceField(
        choices=backend_choices,
        error_messages={"invalid_choice": "unknown backend kind %(value)s: pick one from the list."},
        help_text="What runs this model (workers.backends); it must serve the model's modality.",
    )

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
        # Checkboxes: once the rivals are filtered to one modality the list is short, and Django's two-pane
        # picker (filter_horizontal) puts aria-label on role-less elements.
        widgets = {"battle_targets": forms.CheckboxSelectMultiple}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        modality = self.instance.modality if self.instance.pk else None
        # Plain text: the admin renders help texts as HTML, so "gen-<modality>" showed as "gen-.".
        self.fields["queue"].help_text = (
            "Celery queue for this model's generations (e.g. gpu-0). Leave blank for its modality's queue: "
            + (f"gen-{modality}." if modality else "gen-text, gen-image or gen-3d.")
        )
        if "battle_targets" in self.fields:
            self._targets_offer(self.fields["battle_targets"], modality)

    def _targets_offer(self, field: forms.ModelMultipleChoiceField, modality: str | None) -> None:
        """Offer models of the same modality, never the model itself. A new model's modality is not known
        until it is saved: every model is offered with its modality, and clean() refuses the others."""
        rivals = "Rivals this model is preferentially paired with"
        if modality is None:
            field.label_from_instance = lambda m: f"{m.slug} ({m.get_modality_display()})"
            field.help_text = f"{rivals}: models of its modality."
            return
        field.queryset = field.queryset.filter(modality=modality).exclude(pk=self.instance.pk)
        field.help_text = f"{rivals}: other {modality} models."

    def clean(self) -> dict:
        data = super().clean()
        kind, config, modality = data.get("backend_kind"), data.get("backend_config"), data.get("modality")
        if kind and config is not None:
            try:
                backend_validate(kind, config, modality or "text")
            except BackendConfigError as exc:
                self.add_error("backend_config", str(exc))
        self._targets_check(data.get("battle_targets"), modality)
        return data

    def _targets_check(self, targets: Iterable[ModelEntry] | None, modality: str | None) -> None:
        """A saved model's field offers only its rivals (itself or another modality is an invalid choice); a
        new model's field offers every model, so its targets are checked against the modality chosen."""
        others = ", ".join(sorted(t.slug for t in targets or [] if modality and t.modality != modality))
        if others:
            message = f"Battle targets must be {modality} models like this one, not {others}."
            self.add_error("battle_targets", message)
