"""Writes for battles: start one, continue it by a turn, skip it, regenerate its last turn, and hand its
generations to the workers."""

from __future__ import annotations

import logging
import random

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from arena.audit import audit_record
from arena.errors import Conflict, ContentBlocked, InvalidInput, NotAllowed, NotFound, Unavailable
from arena.media import MediaInfo, MediaRejected, media_accept, media_inspect, media_save
from arena.models import Battle, GalleryOutput, Generation, Modality, ModelEntry, Prompt
from arena.moderation import ModerationUnavailable, content_check
from arena.sampling import Candidate, NoPairAvailable, pair_sample, pair_sample_informed
from arena.selectors import model_candidates, sampling_state
from arena.textcheck import text_clean
from voting.models import Voter

_rng = random.SystemRandom()
logger = logging.getLogger(__name__)


def prompt_clean(text: object) -> str:
    """The prompt as stored, or InvalidInput saying exactly what is wrong with it."""
    if not isinstance(text, str):
        raise InvalidInput("The prompt must be text.")
    # Before anything else reads it: a lone surrogate cannot be stored, logged, moderated or sent to a model.
    text = text_clean(text, field="The prompt").strip()
    if not text:
        raise InvalidInput("Type a prompt first.")
    limit = settings.ARENA_MAX_PROMPT_CHARS
    if len(text) > limit:
        raise InvalidInput(f"Your prompt is {len(text):,} characters long; the limit is {limit:,}.")
    return text


def prompt_blocked_record(*, text: str, modality: str, reason: str) -> None:
    """Keep a refused prompt in the moderation queue (once per text), with the rule's audit entry."""
    if Prompt.objects.filter(text=text, modality=modality, status=Prompt.Status.BLOCKED).exists():
        return
    with transaction.atomic():
        prompt = Prompt.objects.create(text=text, modality=modality, status=Prompt.Status.BLOCKED)
        audit_record(
            action="prompt.block",
            target_type="arena.prompt",
            target_id=prompt.id,
            rule="content_policy",
            reason=reason,
            before={"status": None},
            after={"status": Prompt.Status.BLOCKED},
        )


def prompt_moderate(*, text: str, modality: str) -> None:
    """Refuse a prompt the content policy flags. Runs before anything is stored or queued."""
    try:
        verdict = content_check(text)
    except ModerationUnavailable as exc:
        raise Unavailable(str(exc)) from None
    if verdict.flagged:
        prompt_blocked_record(text=text, modality=modality, reason=verdict.reason)
        raise ContentBlocked(
            f"This prompt was blocked by the content policy: {verdict.reason}. Please rephrase it."
        )


def modality_clean(value: object) -> str:
    if value not in Modality.values:
        raise InvalidInput(f"Unknown modality {value!r}; expected one of {', '.join(Modality.values)}.")
    return str(value)


def generations_enqueue(generations: list[Generation]) -> None:
    """Send generations to their model's queue once the transaction that created them commits."""
    from workers.tasks import generation_run_task

    for gen in generations:
        transaction.on_commit(
            lambda gen=gen: generation_run_task.apply_async(args=[gen.id], queue=gen.model.generation_queue())
        )


def _generations_create(battle: Battle, turn: int) -> list[Generation]:
    return Generation.objects.bulk_create(
        Generation(battle=battle, turn=turn, side=side, model=model)
        for side, model in (("a", battle.model_a), ("b", battle.model_b))
    )


def _pair_choose(modality: str, candidates: list[Candidate] | None = None) -> tuple[Candidate, Candidate]:
    if candidates is None:
        candidates = model_candidates(modality)
    if settings.ARENA_PAIR_SAMPLING == "information":
        ratings, pair_battles = sampling_state(modality)
        if ratings:
            return pair_sample_informed(candidates, rng=_rng, ratings=ratings, pair_battles=pair_battles)
    return pair_sample(candidates, rng=_rng, target_share=settings.ARENA_TARGET_SHARE)


_NO_PAIR = "Not enough models are available for a battle right now. Try again soon."


def input_image_clean(data: bytes) -> tuple[bytes, MediaInfo]:
    """An uploaded image-to-3D input: an image by content, within the upload size and pixel limits, encoded
    again from its pixels (EXIF, GPS position, text chunks and the like are not kept: the file goes to models
    and back to the page)."""
    limit = settings.ARENA_MAX_UPLOAD_BYTES
    try:
        info = media_inspect(data, max_bytes=limit)
        if info.kind != "image":
            raise InvalidInput(f"Upload a PNG, JPEG or WebP image; this file is {info.format.upper()}.")
        return media_accept(data, info=info, max_bytes=limit)
    except MediaRejected as exc:
        raise InvalidInput(f"The uploaded image was refused: {exc}") from None


def battle_create(
    *, voter: Voter, modality: str, prompt_text: object, image: bytes | None = None, gallery: bool = False
) -> Battle:
    """Sample two models, store the battle and its first turn, and queue both sides.

    Image and 3D battles take a text prompt, an input image (image-to-3D), or — with `gallery` — a prompt
    of a pre-generated gallery that two models both have outputs for."""
    modality = modality_clean(modality)
    if gallery:
        return _gallery_battle_create(voter=voter, modality=modality)
    if modality == Modality.TEXT and image is not None:
        raise InvalidInput("Text battles take a text prompt only; image inputs are for 3D battles.")
    if modality == Modality.IMAGE and image is not None:
        raise InvalidInput("Image battles are text-to-image: type a prompt instead of uploading an image.")
    image, info = input_image_clean(image) if image is not None else (None, None)
    prompt = (
        prompt_clean(prompt_text)
        if info is None or (isinstance(prompt_text, str) and prompt_text.strip())
        else ""
    )
    if prompt:
        prompt_moderate(text=prompt, modality=modality)
    live_input = "image" if info is not None else "text"
    try:
        left, right = _pair_choose(modality, model_candidates(modality, live_input=live_input))
    except NoPairAvailable:
        raise Unavailable(
            _NO_PAIR
            if live_input == "text"
            else "No two models take image inputs right now. Try a text prompt."
        ) from None
    models = ModelEntry.objects.in_bulk([left.id, right.id])
    input_name = media_save(image, info, folder="inputs") if info is not None and image is not None else ""
    with transaction.atomic():
        battle = Battle.objects.create(
            voter=voter,
            modality=modality,
            model_a=models[left.id],
            model_b=models[right.id],
            conversation=[prompt],
            input_image=input_name,
        )
        generations = _generations_create(battle, 0)
        generations_enqueue(generations)
    # The page's first state is built from these rows: no query between the commit and the response.
    battle._prefetched_objects_cache = {"generations": generations}
    return battle


def _gallery_battle_create(*, voter: Voter, modality: str) -> Battle:
    """A battle on a random gallery prompt, between two models that both have an output for it."""
    if modality == Modality.TEXT:
        raise InvalidInput("Galleries hold image and 3D outputs; text battles need a prompt.")
    eligible = (
        GalleryOutput.objects.filter(
            prompt__modality=modality,
            prompt__status=Prompt.Status.APPROVED,
            prompt__showcase=False,
            prompt__prompt_set__active=True,
            model__active=True,
            model__outage_since__isnull=True,
            model__weight__gt=0,
        )
        .values("prompt_id")
        .annotate(n=Count("model_id"))
        .filter(n__gte=2)
    )
    prompt_ids = [row["prompt_id"] for row in eligible]
    if not prompt_ids:
        raise Unavailable(f"There is no {Modality(modality).label} gallery with two models to compare yet.")
    prompt = Prompt.objects.get(id=_rng.choice(prompt_ids))
    with_outputs = set(GalleryOutput.objects.filter(prompt=prompt).values_list("model_id", flat=True))
    try:
        left, right = _pair_choose(modality, model_candidates(modality, only_ids=with_outputs))
    except NoPairAvailable:
        raise Unavailable(_NO_PAIR) from None
    models = ModelEntry.objects.in_bulk([left.id, right.id])
    with transaction.atomic():
        battle = Battle.objects.create(
            voter=voter,
            modality=modality,
            model_a=models[left.id],
            model_b=models[right.id],
            prompt=prompt,
            conversation=[prompt.text],
            input_image=prompt.image,
        )
        generations_enqueue(_generations_create(battle, 0))
    return battle


def battle_continue(*, code: str, voter: Voter, prompt_text: object) -> Battle:
    """Add a turn to a finished, unvoted battle. Locks the battle row while it checks and writes."""
    prompt = prompt_clean(prompt_text)
    # Checked before the lock: a classifier or an API call must not hold the battle row.
    modality = Battle.objects.filter(code=code).values_list("modality", flat=True).first()
    if modality is not None and modality != Modality.TEXT:
        raise Conflict("Image and 3D battles have one prompt; vote, then start a new battle.")
    prompt_moderate(text=prompt, modality=modality or Modality.TEXT)
    with transaction.atomic():
        battle = (
            Battle.objects.select_for_update().select_related("model_a", "model_b").filter(code=code).first()
        )
        if battle is None:
            raise NotFound("No battle with this code.")
        if battle.voter_id != voter.id:
            raise NotAllowed("This battle was started in another browser session. Start your own battle.")
        if battle.status == Battle.Status.VOTED:
            raise Conflict("This battle has been voted on; start a new battle to keep chatting.")
        if battle.status != Battle.Status.READY:
            raise Conflict("Wait until both answers are finished before sending the next message.")
        if battle.turn_count >= settings.ARENA_MAX_TURNS:
            raise Conflict(f"This battle reached its limit of {settings.ARENA_MAX_TURNS} turns. Please vote.")
        turn = battle.turn_count
        battle.conversation = [*battle.conversation, prompt]
        battle.status = Battle.Status.GENERATING
        battle.ready_at = None
        battle.save(update_fields=["conversation", "status", "ready_at", "updated_at"])
        generations_enqueue(_generations_create(battle, turn))
    return battle


def _own_battle_locked(code: str, voter: Voter) -> Battle:
    battle = Battle.objects.select_for_update().select_related("model_a", "model_b").filter(code=code).first()
    if battle is None:
        raise NotFound("No battle with this code.")
    if battle.voter_id != voter.id:
        raise NotAllowed("This battle was started in another browser session. Start your own battle.")
    return battle


def battle_skip(*, code: str, voter: Voter) -> Battle:
    """The voter passes on this pair (LMArena's and GenAI-Arena's "skip"): the battle is recorded as skipped
    and can no longer be voted on. No vote row is written, so votes stay append-only and no board counts it;
    the skip itself is in the battle's status and the audit log (rule "voter_skip")."""
    with transaction.atomic():
        battle = _own_battle_locked(code, voter)
        if battle.status == Battle.Status.VOTED:
            raise Conflict("You already voted on this battle; a vote cannot be skipped.")
        if battle.status == Battle.Status.SKIPPED:
            raise Conflict("You already skipped this battle. Start a new battle.")
        if battle.status == Battle.Status.FAILED:
            raise Conflict("This battle failed, so there is nothing to skip. Start a new battle.")
        before = battle.status
        battle.status = Battle.Status.SKIPPED
        battle.save(update_fields=["status", "updated_at"])
        audit_record(
            action="battle.skip",
            target_type="arena.battle",
            target_id=battle.id,
            rule="voter_skip",
            reason=f"skipped by its voter at turn {battle.turn_count}",
            before={"status": before},
            after={"status": Battle.Status.SKIPPED},
        )
    return battle


def _pacing_forget(code: str, turn: int) -> None:
    """A regenerated turn meets again from scratch: the last run's pacing signals (workers/pacing.py) would
    tell each new side that the other is already ready and done."""
    from django.core.cache import cache

    from workers.pacing import CLAIMED, END, PROGRESS, READY

    signals = (CLAIMED, READY, END, PROGRESS)
    keys = [f"arena:pace:{code}:{turn}:{side}:{signal}" for side in "ab" for signal in signals]  # TurnGate's
    try:
        cache.delete_many(keys)
    except Exception:  # a cache outage costs this turn's pacing hold, never the regeneration
        logger.warning("could not clear the pacing signals of %s", code, exc_info=True)


def battle_regenerate(*, code: str, voter: Voter) -> Battle:
    """Both sides answer the last turn again (the same two models, the same conversation): only the final
    pair is shown and voted. Text battles, once the turn finished (ready, or failed on a side); the caller
    counts two generations against the voter's budget, as for a follow-up turn. Audited (rule
    "voter_regenerate", with the attempts replaced)."""
    with transaction.atomic():
        battle = _own_battle_locked(code, voter)
        if battle.modality != Modality.TEXT:
            raise Conflict("Only text battles can be regenerated; start a new battle instead.")
        if battle.status == Battle.Status.VOTED:
            raise Conflict("This battle has been voted on, so its answers cannot be regenerated.")
        if battle.status == Battle.Status.SKIPPED:
            raise Conflict("You skipped this battle. Start a new battle.")
        if battle.status == Battle.Status.GENERATING:
            raise Conflict("Wait until both answers are finished before regenerating them.")
        turn = battle.turn_count - 1
        generations = list(battle.generations.select_related("model").filter(turn=turn).order_by("side"))
        before = {"status": battle.status, "attempts": {g.side: g.attempts for g in generations}}
        # New attempts of the same rows: a worker still finishing the old attempt writes nothing (its writes
        # are fenced on its attempt), and the page drops its events (an older attempt).
        Generation.objects.filter(id__in=[g.id for g in generations]).update(
            status=Generation.Status.QUEUED,
            output="",
            error="",
            failure_kind="",
            error_detail="",
            queued_at=timezone.now(),
            started_at=None,
            first_chunk_at=None,
            finished_at=None,
            prompt_tokens=None,
            output_tokens=None,
            flagged=False,
            flag_reasons=[],
        )
        battle.status = Battle.Status.GENERATING
        battle.ready_at = None
        battle.save(update_fields=["status", "ready_at", "updated_at"])
        audit_record(
            action="battle.regenerate",
            target_type="arena.battle",
            target_id=battle.id,
            rule="voter_regenerate",
            reason=f"both answers of turn {turn + 1} asked again by the battle's voter",
            before=before,
            after={"status": Battle.Status.GENERATING},
        )
        _pacing_forget(battle.code, turn)
        for gen in generations:
            gen.status = Generation.Status.QUEUED
        generations_enqueue(generations)
    return battle
