"""The audit log's one writer. Services call it inside the transaction that makes the change."""

from __future__ import annotations

from typing import Any

from arena.models import AuditEntry


def audit_record(
    *,
    action: str,
    target_type: str,
    target_id: object,
    reason: str = "",
    actor_id: int | None = None,
    rule: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reverts: AuditEntry | None = None,
) -> AuditEntry:
    if actor_id is None and not rule:
        raise ValueError("an audit entry needs an actor or a rule")
    return AuditEntry.objects.create(
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        reason=reason,
        actor_id=actor_id,
        rule=rule,
        before=before or {},
        after=after or {},
        reverts=reverts,
    )
