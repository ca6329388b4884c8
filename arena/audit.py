"""The audit log's one writer, and how its entries name their targets.

Services call `audit_record` inside the transaction that makes the change. The staff console shows each
entry's target by name ("vote on battle Xy12… (model-a vs model-b)") rather than by type and id:
`audit_targets` asks the namer registered for each target type, one query per type on a page of entries. Each
app registers the namers of its own models (`audit_target_namer`), so this module imports no other app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from arena.models import AuditEntry, Battle, Generation, ModelEntry, Prompt


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


# --- naming targets ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Named:
    """A target's name, and the row whose page shows it if it has none of its own (an answer: its battle)."""

    name: str
    shown_on: tuple[str, int] | None = None


# Ids -> names, for the ids of one target type that still exist.
TargetNamer = Callable[[list[int]], dict[int, "str | Named"]]
_NAMERS: dict[str, TargetNamer] = {}


@dataclass(frozen=True)
class AuditTarget:
    target_type: str
    target_id: str
    name: str
    exists: bool  # False: the row is gone (or the id is not one), and `name` says so
    shown_on: tuple[str, str] | None = None  # (type, id) of the page that shows it; None: none does

    @property
    def page(self) -> tuple[str, str] | None:
        """(type, id) of the staff page to link to: its own, or the one that shows it."""
        if not self.exists:
            return None
        return self.shown_on or (self.target_type, self.target_id)


def audit_target_namer(target_type: str) -> Callable[[TargetNamer], TargetNamer]:
    """Register the function that names targets of this type (a model label: "voting.vote")."""

    def register(namer: TargetNamer) -> TargetNamer:
        _NAMERS[target_type] = namer
        return namer

    return register


def audit_targets(entries: Iterable[AuditEntry]) -> dict[int, AuditTarget]:
    """Entry id -> its target, named. One query per target type among the entries (none for unknown types)."""
    entries = list(entries)
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        if entry.target_id.isdigit() and entry.target_type in _NAMERS:
            wanted.setdefault(entry.target_type, set()).add(int(entry.target_id))
    names = {kind: _NAMERS[kind](sorted(ids)) for kind, ids in wanted.items()}
    return {entry.id: _target(entry, names.get(entry.target_type, {})) for entry in entries}


def _target(entry: AuditEntry, names: dict[int, str | Named]) -> AuditTarget:
    kind, raw = entry.target_type, entry.target_id
    named = names.get(int(raw)) if raw.isdigit() else None
    if named is None:
        known = kind in _NAMERS
        return AuditTarget(kind, raw, f"{kind} {raw}" + (" (no longer stored)" if known else ""), False)
    if isinstance(named, str):
        return AuditTarget(kind, raw, named, True)
    page = (named.shown_on[0], str(named.shown_on[1])) if named.shown_on else None
    return AuditTarget(kind, raw, named.name, True, page)


def _pair(battle: Battle) -> str:
    return f"{battle.model_a.slug} vs {battle.model_b.slug}"


@audit_target_namer("arena.battle")
def _battles(ids: list[int]) -> dict[int, str | Named]:
    rows = Battle.objects.filter(id__in=ids).select_related("model_a", "model_b")
    return {b.id: f"battle {b.code} ({_pair(b)})" for b in rows}


@audit_target_namer("arena.generation")
def _generations(ids: list[int]) -> dict[int, str | Named]:
    rows = Generation.objects.filter(id__in=ids).select_related("battle", "model")
    return {
        g.id: Named(
            f"answer {g.side.upper()} of battle {g.battle.code}, turn {g.turn + 1} ({g.model.slug})",
            shown_on=("arena.battle", g.battle_id),
        )
        for g in rows
    }


@audit_target_namer("arena.modelentry")
def _models(ids: list[int]) -> dict[int, str | Named]:
    return {m.id: f"model {m.slug}" for m in ModelEntry.objects.filter(id__in=ids).only("id", "slug")}


@audit_target_namer("arena.prompt")
def _prompts(ids: list[int]) -> dict[int, str | Named]:
    rows = Prompt.objects.filter(id__in=ids).only("id", "text", "gallery_key")
    return {p.id: f"prompt “{_short(p.text) or p.gallery_key or p.id}”" for p in rows}


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
