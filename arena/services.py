"""Writes for battles: start one, continue it by a turn, and hand its generations to the workers."""

from __future__ import annotations

import random

from django.conf import settings
from django.db import transaction

from arena.audit import audit_record
from arena.errors import Conflict, ContentBlocked, InvalidInput, NotAllowed, NotFound, Unavailable
from arena.models import Battle, Generation, Modality, ModelEntry, Prompt
from arena.moderation import ModerationUnavailable, content_check
from arena.sampling import Candidate, NoPairAvailable, pair_sample, pair_sample_informed
from arena.selectors import model_candidates, sampling_state
from voting.models import Voter

_rng = random.SystemRandom()


def prompt_clean(text: object) -> str:
    """The prompt as stored, or InvalidInput saying exactly what is wrong with it."""
    if not isinstance(text, str):
        raise InvalidInput("The prompt must be text.")
    text = text.strip()
    if not text:
        raise InvalidInput("Type a prompt first.")
    if "\x00" in text:
        raise InvalidInput("The prompt contains a NUL character; remove it and try again.")
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


def _pair_choose(modality: str) -> tuple[Candidate, Candidate]:
    candidates = model_candidates(modality)
    if settings.ARENA_PAIR_SAMPLING == "information":
        ratings, pair_battles = sampling_state(modality)
        if ratings:
            return pair_sample_informed(candidates, rng=_rng, ratings=ratings, pair_battles=pair_battles)
    return pair_sample(candidates, rng=_rng, target_share=settings.ARENA_TARGET_SHARE)


def battle_create(*, voter: Voter, modality: str, prompt_text: object) -> Battle:
    """Sample two models, store the battle and its first turn, and queue both sides."""
    modality = modality_clean(modality)
    prompt = prompt_clean(prompt_text)
    prompt_moderate(text=prompt, modality=modality)
    try:
        left, right = _pair_choose(modality)
    except NoPairAvailable:
        raise Unavailable("Not enough models are available for a battle right now. Try again soon.") from None
    models = ModelEntry.objects.in_bulk([left.id, right.id])
    with transaction.atomic():
        battle = Battle.objects.create(
            voter=voter,
            modality=modality,
            model_a=models[left.id],
            model_b=models[right.id],
            conversation=[prompt],
        )
        generations_enqueue(_generations_create(battle, 0))
    return battle


def battle_continue(*, code: str, voter: Voter, prompt_text: object) -> Battle:
    """Add a turn to a finished, unvoted battle. Locks the battle row while it checks and writes."""
    prompt = prompt_clean(prompt_text)
    # Checked before the lock: a classifier or an API call must not hold the battle row.
    modality = Battle.objects.filter(code=code).values_list("modality", flat=True).first()
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
