"""Staff writes on the model registry and the prompt queue. Each change writes one audit entry in the same
transaction, with the changed fields before and after, so any of them can be reverted from the log.

`audit_field_revert` undoes any entry written by `fields_change` (these, and leaderboard publication in
ranking.publication): it puts the `before` values back if the row still holds the `after` values.
"""

from __future__ import annotations

import math
from typing import Any

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import models, transaction

from arena.audit import audit_record
from arena.errors import Conflict, InvalidInput, NotFound
from arena.models import AuditEntry, ModelEntry, Prompt
from workers.backends import BackendConfigError, backend_validate

# Actions written by fields_change; the audit log's revert can hand any of them to audit_field_revert.
FIELD_ACTIONS = frozenset(
    {
        "model.enable",
        "model.disable",
        "model.weight",
        "prompt.approve",
        "prompt.block",
        "prompt.pending",
        "leaderboard.publish",
        "leaderboard.unpublish",
        "leaderboard.freeze",
        "leaderboard.unfreeze",
        "generation.flag",
        "field.revert",
    }
)


def _update_fields(obj: models.Model, fields: list[str]) -> list[str]:
    has_updated_at = any(f.name == "updated_at" for f in obj._meta.concrete_fields)
    return [*fields, "updated_at"] if has_updated_at else fields


def fields_change(
    *,
    model: type[models.Model],
    target_id: int,
    changes: dict[str, Any],
    action: str,
    actor_id: int | None,
    reason: str = "",
    rule: str = "",
    reverts: AuditEntry | None = None,
) -> AuditEntry | None:
    """Set fields on one row under a row lock and record it. None when the row already had these values."""
    with transaction.atomic():
        obj = model._default_manager.select_for_update().filter(pk=target_id).first()
        if obj is None:
            raise NotFound(f"No {model._meta.verbose_name} with id {target_id}.")
        before = {name: getattr(obj, name) for name in changes}
        if before == changes:
            return None
        for name, value in changes.items():
            setattr(obj, name, value)
        obj.save(update_fields=_update_fields(obj, list(changes)))
        return audit_record(
            action=action,
            target_type=model._meta.label_lower,
            target_id=obj.pk,
            reason=reason,
            actor_id=actor_id,
            rule=rule,
            before=before,
            after=changes,
            reverts=reverts,
        )


def audit_field_revert(*, entry_id: int, actor_id: int, reason: str = "") -> AuditEntry:
    """Undo a field change from the log. Refused if it was undone already or the row changed since."""
    with transaction.atomic():
        entry = AuditEntry.objects.select_for_update().filter(id=entry_id).first()
        if entry is None:
            raise NotFound("No audit entry with this id.")
        if entry.action not in FIELD_ACTIONS:
            raise InvalidInput(f"Entries of kind {entry.action!r} are not reverted here.")
        if entry.reverted_by.exists():
            raise Conflict("This action was reverted already.")
        model = apps.get_model(entry.target_type)
        current = model._default_manager.filter(pk=entry.target_id).values(*entry.after).first()
        if current != entry.after:
            raise Conflict(f"The {model._meta.verbose_name} changed since; revert the later actions first.")
        change = fields_change(
            model=model,
            target_id=int(entry.target_id),
            changes=dict(entry.before),
            action="field.revert",
            actor_id=actor_id,
            reason=reason or f"revert of {entry.action} #{entry.id}",
            reverts=entry,
        )
    assert change is not None  # current == after != before, so something changed
    return change


def model_active_set(*, model_id: int, active: bool, actor_id: int, reason: str = "") -> AuditEntry | None:
    """Enable or disable a model for sampling. A model is enabled only with a runnable backend config."""
    if active:
        model = ModelEntry.objects.filter(id=model_id).first()
        if model is None:
            raise NotFound(f"No model with id {model_id}.")
        try:
            backend_validate(model.backend_kind, model.backend_config, model.modality)
        except BackendConfigError as exc:
            raise InvalidInput(f"{model.slug} cannot be enabled: {exc}") from None
    return fields_change(
        model=ModelEntry,
        target_id=model_id,
        changes={"active": active},
        action="model.enable" if active else "model.disable",
        actor_id=actor_id,
        reason=reason,
    )


def weight_clean(value: object) -> float:
    try:
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"The weight must be a number, got {value!r}.") from None
    if not math.isfinite(weight) or weight < 0:
        raise InvalidInput("The weight must be a finite number of at least 0.")
    return weight


def model_weight_set(*, model_id: int, weight: object, actor_id: int, reason: str = "") -> AuditEntry | None:
    return fields_change(
        model=ModelEntry,
        target_id=model_id,
        changes={"weight": weight_clean(weight)},
        action="model.weight",
        actor_id=actor_id,
        reason=reason,
    )


_PROMPT_ACTIONS = {
    Prompt.Status.APPROVED: "prompt.approve",
    Prompt.Status.BLOCKED: "prompt.block",
    Prompt.Status.PENDING: "prompt.pending",
}


def prompt_status_set(*, prompt_id: int, status: str, actor_id: int, reason: str = "") -> AuditEntry | None:
    if status not in _PROMPT_ACTIONS:
        raise InvalidInput(f"Unknown prompt status {status!r}.")
    return fields_change(
        model=Prompt,
        target_id=prompt_id,
        changes={"status": status},
        action=_PROMPT_ACTIONS[Prompt.Status(status)],
        actor_id=actor_id,
        reason=reason,
    )


MODERATORS_GROUP = "Moderators"
# Content moderation, vote integrity, publication and export. Changing the model registry (backend configs
# name servers and key variables) stays with superusers; an operator may add it to the group by hand.
MODERATOR_PERMISSIONS = (
    "arena.view_modelentry",
    "arena.view_promptset",
    "arena.change_promptset",
    "arena.view_prompt",
    "arena.add_prompt",
    "arena.change_prompt",
    "arena.view_battle",
    "arena.view_generation",
    "arena.view_galleryoutput",
    "arena.export_battle",
    "arena.view_auditentry",
    "arena.change_auditentry",
    "voting.view_vote",
    "voting.change_vote",
    "voting.view_voter",
    "voting.change_voter",
    "ranking.view_leaderboardsnapshot",
    "ranking.publish_leaderboardsnapshot",
)


def moderators_group_sync() -> tuple[Group, int]:
    """Create the Moderators group and give it MODERATOR_PERMISSIONS (adding, never removing: an operator's
    additions survive a re-run). Returns the group and how many permissions were added."""
    group, _ = Group.objects.get_or_create(name=MODERATORS_GROUP)
    wanted = [tuple(name.split(".", 1)) for name in MODERATOR_PERMISSIONS]
    found = {
        (p.content_type.app_label, p.codename): p
        for p in Permission.objects.select_related("content_type").filter(
            codename__in=[codename for _, codename in wanted]
        )
    }
    missing = [f"{app}.{codename}" for app, codename in wanted if (app, codename) not in found]
    if missing:
        raise InvalidInput(f"Permissions not found (run migrate first): {', '.join(missing)}")
    before = set(group.permissions.values_list("id", flat=True))
    group.permissions.add(*found.values())
    return group, len({p.id for p in found.values()} - before)
