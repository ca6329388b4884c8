"""Reads for the battle pages and the pair sampler."""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count
from django.urls import reverse

from arena.disclosure import (
    PublicNames,
    countable_battles,
    outputs_shown,
    public_gallery_outputs,
    public_generations,
    public_names,
    side_state_held,
    voter_side_error,
)
from arena.errors import NotAllowed, NotFound
from arena.media import MediaInfo
from arena.models import Battle, GalleryOutput, Generation, Modality, ModelEntry
from arena.sampling import Candidate
from voting.categories import vote_criteria
from voting.models import Vote

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


def _accepts(model: ModelEntry, live_input: str) -> bool:
    """Whether a model can answer a voter's own prompt of this input kind ("text" or "image")."""
    from workers.backends import BackendConfigError, backend_class

    try:
        return live_input in backend_class(model.backend_kind).accepted_inputs(model.backend_config)
    except BackendConfigError:
        return False


# Candidates are read on every battle start, on the way to the first token: each process keeps them for a few
# seconds, and any change to a model (a save, an outage, a probe) bumps a shared version that discards them.
_CANDIDATES_VERSION_KEY = "arena:candidates-version"
_CANDIDATES_TTL = 5.0
_candidates_memo: dict[tuple[str, str | None], tuple[str, float, list[Candidate]]] = {}


def candidates_invalidate() -> None:
    """Every process drops its remembered candidates (called whenever a model's sampling state changes)."""
    cache.set(_CANDIDATES_VERSION_KEY, secrets.token_hex(8), None)


def models_version() -> str:
    """Changes whenever any model changes (see candidates_invalidate): a key for what is derived from them."""
    return _candidates_version()


def _candidates_version() -> str:
    version = cache.get(_CANDIDATES_VERSION_KEY)
    if version is None:  # first use, or the cache was flushed: a new version, so nothing stale survives
        cache.add(_CANDIDATES_VERSION_KEY, secrets.token_hex(8), None)
        version = cache.get(_CANDIDATES_VERSION_KEY)
    return str(version)


def model_candidates(
    modality: str, *, live_input: str | None = None, only_ids: set[int] | None = None
) -> list[Candidate]:
    """Models that may be drawn now. `live_input` keeps those that answer a voter's prompt of that kind
    (image and 3D arenas also hold gallery models that cannot); `only_ids` narrows to a gallery prompt's
    models."""
    if only_ids is not None:
        return _candidates_load(modality, live_input=live_input, only_ids=only_ids)
    version, now = _candidates_version(), time.monotonic()
    memo = _candidates_memo.get((modality, live_input))
    if memo is not None and memo[0] == version and now - memo[1] < _CANDIDATES_TTL:
        return memo[2]
    found = _candidates_load(modality, live_input=live_input, only_ids=None)
    _candidates_memo[(modality, live_input)] = (version, now, found)
    return found


def _candidates_load(modality: str, *, live_input: str | None, only_ids: set[int] | None) -> list[Candidate]:
    models = ModelEntry.objects.filter(
        modality=modality, active=True, outage_since__isnull=True, weight__gt=0
    ).prefetch_related("battle_targets", "targeted_by")
    if only_ids is not None:
        models = models.filter(id__in=only_ids)
    votes = model_vote_counts(modality)
    out = []
    for model in models:
        if live_input is not None and modality != Modality.TEXT and not _accepts(model, live_input):
            continue
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


def media_battle_for(request: Any, code: str) -> Battle:
    """A battle whose files this request may fetch: its own voter's, or any for staff reviewing it."""
    user = request.user
    if user.is_active and user.is_staff:
        battle = Battle.objects.filter(code=code).first()
        if battle is None:
            raise NotFound("No battle with this code.")
        return battle
    voter_id = request.session.get("voter_id")
    return battle_for_voter(code=code, voter_id=voter_id if isinstance(voter_id, int) else None)


def gallery_available(modality: str) -> bool:
    return GalleryOutput.objects.filter(
        prompt__modality=modality, prompt__showcase=False, model__active=True
    ).exists()


def thumbnail_public(name: str) -> bool:
    """Whether anyone may fetch this thumbnail (arena.disclosure decides: outputs no battle can show again, of
    models that may be named). Any other output could give a model away before a vote."""
    if public_gallery_outputs().filter(thumbnail_name=name).exists():
        return True
    return public_generations().filter(thumbnail_name=name).exists()


def model_thumbnails(model_ids: list[int]) -> dict[int, str]:
    """A thumbnail URL per model for the leaderboard: its showcase gallery output, else its latest public
    battle output (see thumbnail_public)."""
    found: dict[int, str] = {}
    showcase = public_gallery_outputs().filter(model_id__in=model_ids).order_by("prompt_id", "id")
    for model_id, name in showcase.values_list("model_id", "thumbnail_name"):
        found.setdefault(model_id, name)
    for model_id in set(model_ids) - set(found):
        name = (
            public_generations()
            .filter(model_id=model_id)
            .order_by("-finished_at", "-id")
            .values_list("thumbnail_name", flat=True)
            .first()
        )
        if name:
            found[model_id] = name
    return {model_id: _thumbnail_url(name) for model_id, name in found.items()}


def battle_excluded_reason(battle: Battle, generations: list[Generation] | None = None) -> str | None:
    """Why a vote on this battle must not count, from the battle's own content (None: nothing found).

    An answer the content filter hid was judged by a voter who may not have read it, and may be what drew
    the vote; the vote is kept but left out of the ratings.
    """
    hidden = (
        any(g.flagged for g in generations)
        if generations is not None
        else battle.generations.filter(flagged=True).exists()
    )
    if hidden:
        return "an answer was hidden by the content filter"
    return None


def media_public(*, code: str, turn: int, side: str, info: MediaInfo) -> dict[str, Any]:
    """How the page sees an output file: the battle's own URL (never the storage name) and what it is."""
    url = reverse("arena:battle-media", kwargs={"code": code, "turn": turn, "side": side, "ext": info.format})
    return {"url": url, "format": info.format, "kind": info.kind, "meta": info.meta}


def _side_state(gen: Generation | None, code: str) -> dict[str, Any]:
    if gen is None:
        return {
            "status": "queued",
            "output": "",
            "error": "",
            "attempt": 0,
            "flagged": False,
            "media": None,
            "progress": None,
        }
    media = None
    if gen.media_name and gen.status == Generation.Status.DONE:
        media = media_public(code=code, turn=gen.turn, side=gen.side, info=gen.media_info)
    return {
        "status": gen.status,
        "output": gen.output,
        "error": voter_side_error(gen),  # the neutral text for its kind; staff read error_detail
        "attempt": gen.attempts,
        # The page shows a flagged answer only after a click ("show anyway").
        "flagged": gen.flagged,
        "media": media,
        "progress": 1.0 if gen.status == Generation.Status.DONE else None,
    }


def battle_input(battle: Battle) -> dict[str, Any]:
    """The prompt of an image or 3D battle: its text and, for image-to-3D, the input image's URL."""
    image_url = None
    if battle.input_image:
        ext = battle.input_image.rsplit(".", 1)[-1]
        image_url = reverse("arena:battle-input", kwargs={"code": battle.code, "ext": ext})
    return {"text": battle.conversation[0] if battle.conversation else "", "image_url": image_url}


def _reveal(model: ModelEntry) -> dict[str, Any]:
    return {
        "name": model.display_name,
        "slug": model.slug,
        "organization": model.organization,
        "license": model.license,
        "demo": model.is_demo,
    }


def _vote_outcome_for_voter(vote: Vote) -> tuple[bool, str]:
    """What the voter is told about their vote. Exclusions by the integrity checks stay silent: telling a bot
    which signal caught it teaches it to avoid that signal. Identity leaks and content filters are said."""
    from voting.reasons import BANNED, FRAUD_PREFIXES

    if not vote.counted and vote.exclusion_reason.startswith((*FRAUD_PREFIXES, BANNED)):
        return True, ""
    return vote.counted, vote.exclusion_reason


def battle_state(battle: Battle) -> dict[str, Any]:
    """Everything the battle page shows. Model identities are included only once the battle is voted."""
    gens = {(g.turn, g.side): g for g in battle.generations.all()}
    turns = [
        {
            "prompt": prompt,
            "a": _side_state(gens.get((i, "a")), battle.code),
            "b": _side_state(gens.get((i, "b")), battle.code),
        }
        for i, prompt in enumerate(battle.conversation)
    ]
    if turns and not outputs_shown(battle):  # image and 3D sides are shown together (arena.disclosure)
        turns[-1].update(a=side_state_held(turns[-1]["a"]), b=side_state_held(turns[-1]["b"]))
    media = battle.modality != Modality.TEXT
    state: dict[str, Any] = {
        "code": battle.code,
        "modality": battle.modality,
        "status": battle.status,
        "turns": turns,
        "can_vote": battle.status == Battle.Status.READY,
        # Image and 3D battles are one prompt, one output per side.
        "can_continue": (
            not media
            and battle.status == Battle.Status.READY
            and battle.turn_count < settings.ARENA_MAX_TURNS
        ),
        "max_turns": 1 if media else settings.ARENA_MAX_TURNS,
        "input": battle_input(battle) if media else None,
        "criteria": vote_criteria(battle.modality),
        # Only gallery battles point at a stored prompt (a voter's own prompt lives in `conversation`).
        "gallery": media and battle.prompt_id is not None,
        "demo": battle.model_a.is_demo or battle.model_b.is_demo,
        "vote": None,
    }
    vote = getattr(battle, "vote", None) if battle.status == Battle.Status.VOTED else None
    if vote is not None:
        counted, reason = _vote_outcome_for_voter(vote)
        state["vote"] = {
            "choice": vote.choice,
            "criteria": vote.criteria,
            "counted": counted,
            "reason": reason,
            "reveal": {"a": _reveal(battle.model_a), "b": _reveal(battle.model_b)},
        }
    return state


# Vote fields the review page shows as signals, when the vote model has them (the vote-integrity work adds
# some): label, attribute.
_VOTE_SIGNALS = [
    ("Seconds to vote", "seconds_to_vote"),
    ("Risk score", "risk_score"),
    ("Risk reasons", "risk_reasons"),
    ("Categories", "categories"),
    ("Style metadata", "conv_metadata"),
]


def _thumbnail_url(name: str) -> str:
    return reverse("arena:thumbnail", kwargs={"token": name.removeprefix("thumbs/").removesuffix(".png")})


def _review_media(battle: Battle, gen: Generation | None) -> dict[str, Any] | None:
    """An output file as staff see it on the review page: the file, its thumbnail and what it holds."""
    if gen is None or not gen.media_name:
        return None
    media = media_public(code=battle.code, turn=gen.turn, side=gen.side, info=gen.media_info)
    media["thumbnail"] = _thumbnail_url(gen.thumbnail_name) if gen.thumbnail_name else ""
    media["details"] = ", ".join(f"{k}: {v}" for k, v in gen.media_meta.items())
    return media


def battle_review(battle: Battle) -> dict[str, Any]:
    """Both sides turn by turn, the vote with its signals, and the audit trail: the staff review page."""
    from arena.models import AuditEntry
    from voting.models import Vote

    generations = list(battle.generations.all())
    by_turn = {(g.turn, g.side): g for g in generations}
    turns = [
        {
            "number": i + 1,
            "prompt": prompt,
            "a": by_turn.get((i, "a")),
            "b": by_turn.get((i, "b")),
            "media": {side: _review_media(battle, by_turn.get((i, side))) for side in "ab"},
        }
        for i, prompt in enumerate(battle.conversation)
    ]
    vote = Vote.objects.filter(battle=battle).select_related("voter").first()
    signals = [
        (label, getattr(vote, name))
        for label, name in _VOTE_SIGNALS
        if vote is not None and hasattr(vote, name)
    ]
    targets = [("arena.battle", battle.id), *(("arena.generation", g.id) for g in generations)]
    if vote is not None:
        targets += [("voting.vote", vote.id), ("voting.voter", vote.voter_id)]
    trail = AuditEntry.objects.none()
    for target_type, target_id in targets:
        trail |= AuditEntry.objects.filter(target_type=target_type, target_id=str(target_id))
    return {
        "turns": turns,
        "input": battle_input(battle) if battle.modality != Modality.TEXT else None,
        "vote": vote,
        "signals": signals,
        "audit": list(trail.select_related("actor").order_by("-created_at")[:50]),
    }


def stats_public() -> dict[str, Any]:
    """Voted battles and votes per modality and per released model, cached briefly. Only voted battles count
    (arena.disclosure.countable_battles): a counter that moved when a battle started would name its models."""
    names = public_names()
    key = f"arena:stats-public:{names.version}"  # a release names its model at once
    cached = cache.get(key)
    if cached is None:
        cached = _stats_compute(names)
        cache.set(key, cached, settings.ARENA_PUBLIC_STATS_CACHE_SECONDS)
    return cached


def _counts() -> dict[str, int]:
    return {"battles": 0, "votes": 0, "counted_votes": 0}


def _stats_compute(names: PublicNames) -> dict[str, Any]:
    from django.db.models import Q
    from django.utils import timezone

    battles = countable_battles()
    votes = Vote.objects.filter(battle__in=battles)
    tally = {"n": Count("id"), "counted": Count("id", Q(counted=True))}
    modalities = {m: _counts() for m in Modality.values}
    for row in battles.values("modality").annotate(n=Count("id")):
        modalities[row["modality"]]["battles"] = row["n"]
    for row in votes.values("battle__modality").annotate(**tally):
        modalities[row["battle__modality"]].update(votes=row["n"], counted_votes=row["counted"])
    per_model: dict[int, dict[str, int]] = {}
    for side in ("model_a", "model_b"):
        for row in battles.values(side).annotate(n=Count("id")):
            per_model.setdefault(row[side], _counts())["battles"] += row["n"]
        for row in votes.values(f"battle__{side}").annotate(**tally):
            counts = per_model.setdefault(row[f"battle__{side}"], _counts())
            counts["votes"] += row["n"]
            counts["counted_votes"] += row["counted"]
    # Unreleased models are tested anonymously: their names stay private until release (arena.disclosure).
    models = ModelEntry.objects.filter(id__in=[i for i in per_model if i in names.shown]).order_by(
        "modality", "slug"
    )
    return {
        "generated_at": timezone.now().isoformat(),
        "modalities": modalities,
        "models": [
            {"slug": m.slug, "name": m.display_name, "modality": m.modality, **per_model[m.id]}
            for m in models
        ],
    }


def sampling_state(modality: str) -> tuple[dict[int, float], dict[tuple[int, int], int]]:
    """Ratings and battles per pair from the latest overall board, for information-aware sampling."""
    key = f"arena:sampling-state:{modality}"
    state = cache.get(key)
    if state is None:
        from ranking.models import PairTally
        from ranking.selectors import snapshot_latest

        snapshot = snapshot_latest(modality=modality)
        slugs = {m["slug"]: m["rating"] for m in snapshot.data.get("models", [])} if snapshot else {}
        ids = dict(ModelEntry.objects.filter(slug__in=slugs).values_list("slug", "id"))
        ratings = {ids[s]: r for s, r in slugs.items() if s in ids}
        tallies = PairTally.objects.filter(modality=modality, category="").values_list(
            "model_lo_id", "model_hi_id", "lo_won", "hi_won", "ties"
        )
        pairs = {(lo, hi): a + b + t for lo, hi, a, b, t in tallies}
        state = (ratings, pairs)
        cache.set(key, state, _VOTE_COUNT_CACHE_SECONDS)
    return state
