"""Admin actions that ask why: an intermediate page takes the reason (and any value) for the audit log,
then a service applies the change to each selected row."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse

from arena.errors import ArenaError


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
        except ArenaError as exc:
            refused.append(exc.message)
            continue
        changed, unchanged = (changed + 1, unchanged) if result is not None else (changed, unchanged + 1)
    if changed or unchanged:
        modeladmin.message_user(request, f"{changed} changed, {unchanged} already so.", messages.SUCCESS)
    for message in refused:
        modeladmin.message_user(request, message, messages.ERROR)


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
