"""Reads for the battle pages and the pair sampler."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count

from arena.errors import NotAllowed, NotFound
from arena.models import Battle, Generation, ModelEntry
from arena.sampling import Candidate

_VOTE_COUNT_CACHE_SECONDS = 60


def model_vote_counts(modality: str) -> dict[int, int]:
    """Votes per model, cached briefly: the new-model boost needs only a rough count."""
    key = f"arena:vote-counts:{modality}"
    counts = cache.get(key)
    if counts is None:
        from voting.models import Vote

        votes = Vote.objects.filter(battle__modality=modality)
        counts = {}
        for field in ("battle__model_a", "battle__model_b"):
            for row in votes.values(field).annotate(n=Count("id")):
                counts[row[field]] = counts.get(row[field], 0) + row["n"]
        cache.set(key, counts, _VOTE_COUNT_CACHE_SECONDS)
    return counts


def model_candidates(modality: str) -> list[Candidate]:
    models = ModelEntry.objects.filter(
        modality=modality, active=True, outage_since__isnull=True, weight__gt=0
    ).prefetch_related("battle_targets", "targeted_by")
    votes = model_vote_counts(modality)
    out = []
    for model in models:
        boost = (
            settings.ARENA_NEW_MODEL_BOOST if votes.get(model.id, 0) < settings.ARENA_NEW_MODEL_VOTES else 1.0
        )
        targets = {t.id for t in model.battle_targets.all()} | {t.id for t in model.targeted_by.all()}
        out.append(Candidate(model.id, model.weight * boost, model.released, frozenset(targets)))
    return out


def battle_for_voter(*, code: str, voter_id: int | None) -> Battle:
    """The battle with this public code, if it belongs to this voter."""
    battle = Battle.objects.select_related("model_a", "model_b").filter(code=code).first()
    if battle is None:
        raise NotFound("No battle with this code.")
    if voter_id is None or battle.voter_id != voter_id:
        raise NotAllowed("This battle was started in another browser session. Start your own battle.")
    return battle


def _side_state(gen: Generation | None) -> dict[str, Any]:
    if gen is None:
        return {"status": "queued", "output": "", "error": "", "attempt": 0}
    return {"status": gen.status, "output": gen.output, "error": gen.error, "attempt": gen.attempts}


def _reveal(model: ModelEntry) -> dict[str, Any]:
    return {
        "name": model.display_name,
        "slug": model.slug,
        "organization": model.organization,
        "license": model.license,
        "demo": model.is_demo,
    }


def battle_state(battle: Battle) -> dict[str, Any]:
    """Everything the battle page shows. Model identities are included only once the battle is voted."""
    gens = {(g.turn, g.side): g for g in battle.generations.all()}
    turns = [
        {"prompt": prompt, "a": _side_state(gens.get((i, "a"))), "b": _side_state(gens.get((i, "b")))}
        for i, prompt in enumerate(battle.conversation)
    ]
    state: dict[str, Any] = {
        "code": battle.code,
        "modality": battle.modality,
        "status": battle.status,
        "turns": turns,
        "can_vote": battle.status == Battle.Status.READY,
        "can_continue": battle.status == Battle.Status.READY and battle.turn_count < settings.ARENA_MAX_TURNS,
        "max_turns": settings.ARENA_MAX_TURNS,
        "demo": battle.model_a.is_demo or battle.model_b.is_demo,
        "vote": None,
    }
    vote = getattr(battle, "vote", None) if battle.status == Battle.Status.VOTED else None
    if vote is not None:
        state["vote"] = {
            "choice": vote.choice,
            "counted": vote.counted,
            "reason": vote.exclusion_reason,
            "reveal": {"a": _reveal(battle.model_a), "b": _reveal(battle.model_b)},
        }
    return state
