"""Running generations: claim a row, stream the backend's answer to the browser, record the result.

Every write after the claim is fenced on (status=running, attempts=<this attempt>): if the sweeper
gave the row to another worker, a late writer changes nothing. That makes the task safe to run twice.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from arena.audit import audit_record
from arena.models import Battle, Generation, ModelEntry
from arena.moderation import output_check
from workers.backends import (
    BackendConfigError,
    BackendError,
    GenerationParams,
    GenerationRequest,
    Usage,
    backend_create,
)
from workers.events import battle_publish

logger = logging.getLogger(__name__)

PROBE_PROMPT = "Reply with one short friendly sentence."


class GenerationFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Progress:
    gen_id: int
    attempt: int
    code: str
    turn: int
    side: str
    parts: list[str] = field(default_factory=list)
    length: int = 0
    flushed_at: float = field(default_factory=time.monotonic)

    def event(self, kind: str, **extra: object) -> dict[str, object]:
        return {"type": kind, "turn": self.turn, "side": self.side, "attempt": self.attempt, **extra}

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _live(progress: _Progress) -> QuerySet[Generation]:
    return Generation.objects.filter(
        id=progress.gen_id, status=Generation.Status.RUNNING, attempts=progress.attempt
    )


def _claim(generation_id: int) -> bool:
    claimed = Generation.objects.filter(id=generation_id, status=Generation.Status.QUEUED).update(
        status=Generation.Status.RUNNING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        output="",
        error="",
        first_chunk_at=None,
    )
    return claimed == 1


def conversation_messages(gen: Generation) -> list[dict[str, str]]:
    """This side's view of the conversation: every user turn, and its own earlier answers."""
    earlier = (
        dict(
            Generation.objects.filter(battle_id=gen.battle_id, side=gen.side, turn__lt=gen.turn).values_list(
                "turn", "output"
            )
        )
        if gen.turn
        else {}  # the first turn has no earlier answers: no query on the way to the first token
    )
    messages: list[dict[str, str]] = []
    system = gen.model.backend_config.get("system_prompt")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    for turn, prompt in enumerate(gen.battle.conversation[: gen.turn + 1]):
        messages.append({"role": "user", "content": prompt})
        if turn < gen.turn:
            messages.append({"role": "assistant", "content": earlier.get(turn, "")})
    return messages


def identity_scrub(text: str, model: ModelEntry) -> str:
    """Error texts reach the browser before the vote: take out anything that names the model."""
    names = {model.slug, model.display_name, model.organization, str(model.backend_config.get("model", ""))}
    for name in sorted((n for n in names if len(n) >= 2), key=len, reverse=True):
        text = re.sub(re.escape(name), "the model", text, flags=re.IGNORECASE)
    return text


def _chunk(progress: _Progress, delta: str) -> None:
    """Publish first, then persist: the browser sees the token before the database write finishes."""
    offset = progress.length
    progress.parts.append(delta)
    progress.length += len(delta)
    first_at = timezone.now() if offset == 0 else None
    battle_publish(progress.code, progress.event("chunk", offset=offset, text=delta))
    now = time.monotonic()
    if first_at is not None:
        _live(progress).update(first_chunk_at=first_at, output=delta)
        progress.flushed_at = now
    elif now - progress.flushed_at >= settings.ARENA_STREAM_FLUSH_SECONDS:
        _live(progress).update(output=progress.text)
        progress.flushed_at = now


def _stream(gen: Generation, progress: _Progress) -> Usage:
    """Drive the backend; every failure becomes GenerationFailed with a message fit for the voter."""
    deadline = time.monotonic() + settings.ARENA_GENERATION_SOFT_LIMIT
    try:
        backend = backend_create(gen.model.backend_kind, gen.model.backend_config)
        params = GenerationParams.from_config(gen.model.backend_config)
        for delta in backend.stream(GenerationRequest(messages=conversation_messages(gen), params=params)):
            if delta:
                _chunk(progress, delta)
            if time.monotonic() > deadline:
                raise GenerationFailed("The model took too long to answer.")
    except GenerationFailed:
        raise
    except SoftTimeLimitExceeded as exc:
        raise GenerationFailed("The model took too long to answer.") from exc
    except BackendError as exc:
        raise GenerationFailed(identity_scrub(str(exc), gen.model) or "The model failed to answer.") from exc
    except BackendConfigError as exc:
        logger.error("model %s is misconfigured: %s", gen.model.slug, exc)
        raise GenerationFailed("This model is misconfigured; the operators have been told.") from exc
    except Exception as exc:
        logger.exception("generation %s crashed", gen.id)
        raise GenerationFailed("The worker hit an internal error while generating.") from exc
    if not progress.length:
        raise GenerationFailed("The model returned an empty answer.")
    return backend.usage


def generation_run(*, generation_id: int) -> None:
    """Claim a queued generation and run it to done or failed. A second run of the same id is a no-op."""
    if not _claim(generation_id):
        return
    gen = Generation.objects.select_related("battle", "model").get(id=generation_id)
    progress = _Progress(gen.id, gen.attempts, gen.battle.code, gen.turn, gen.side)
    battle_publish(progress.code, progress.event("started"))
    try:
        usage = _stream(gen, progress)
    except GenerationFailed as exc:
        finished = _live(progress).update(
            status=Generation.Status.FAILED,
            error=exc.message,
            output=progress.text,
            finished_at=timezone.now(),
        )
        event = progress.event("failed", error=exc.message)
        ok = False
    else:
        verdict = output_check(progress.text)
        finished = _live(progress).update(
            status=Generation.Status.DONE,
            output=progress.text,
            finished_at=timezone.now(),
            prompt_tokens=usage.prompt_tokens,
            output_tokens=usage.output_tokens,
            flagged=verdict.flagged,
            flag_reasons=list(verdict.reasons),
        )
        event = progress.event("done", output=progress.text, flagged=verdict.flagged)
        ok = True
        if finished and verdict.flagged:
            generation_flag_record(generation_id=gen.id, reasons=verdict.reasons)
    if finished:
        battle_publish(progress.code, event)
        model_health_record(model_id=gen.model_id, ok=ok)
        battle_status_sync(battle_id=gen.battle_id)


def generation_flag_record(*, generation_id: int, reasons: tuple[str, ...]) -> None:
    """The content rule's audit entry for a hidden answer; a moderator can revert it from the log."""
    audit_record(
        action="generation.flag",
        target_type="arena.generation",
        target_id=generation_id,
        rule="content_policy",
        reason="; ".join(reasons),
        before={"flagged": False, "flag_reasons": []},
        after={"flagged": True, "flag_reasons": list(reasons)},
    )


def battle_status_sync(*, battle_id: int) -> None:
    """Move a generating battle to ready (both sides of its last turn done) or failed (a side failed)."""
    with transaction.atomic():
        battle = Battle.objects.select_for_update().get(id=battle_id)
        if battle.status != Battle.Status.GENERATING:
            return
        statuses = list(
            battle.generations.filter(turn=battle.turn_count - 1).values_list("status", flat=True)
        )
        if Generation.Status.FAILED in statuses:
            battle.status = Battle.Status.FAILED
        elif len(statuses) == 2 and all(s == Generation.Status.DONE for s in statuses):
            battle.status = Battle.Status.READY
            battle.ready_at = timezone.now()
        else:
            return
        battle.save(update_fields=["status", "ready_at", "updated_at"])
        can_continue = battle.status == Battle.Status.READY and battle.turn_count < settings.ARENA_MAX_TURNS
        event = {
            "type": "status",
            "status": battle.status,
            "can_vote": battle.status == Battle.Status.READY,
            "can_continue": can_continue,
        }
        transaction.on_commit(lambda: battle_publish(battle.code, event))


def model_health_record(*, model_id: int, ok: bool) -> None:
    """Count consecutive failures; past the threshold the model goes into outage and out of sampling."""
    if ok:
        ModelEntry.objects.filter(id=model_id, consecutive_failures__gt=0).update(consecutive_failures=0)
        return
    ModelEntry.objects.filter(id=model_id).update(consecutive_failures=F("consecutive_failures") + 1)
    entered = ModelEntry.objects.filter(
        id=model_id, outage_since__isnull=True, consecutive_failures__gte=settings.ARENA_OUTAGE_AFTER_FAILURES
    ).update(outage_since=timezone.now())
    if entered:
        logger.warning("model %s entered outage after repeated failures", model_id)


def model_probe(*, model_id: int) -> tuple[bool, str]:
    """Run a short test generation. Success takes the model out of outage. Returns (ok, text or error)."""
    model = ModelEntry.objects.get(id=model_id)
    try:
        backend = backend_create(model.backend_kind, model.backend_config)
        params = GenerationParams(max_new_tokens=32, temperature=0.0)
        text = "".join(backend.stream(GenerationRequest([{"role": "user", "content": PROBE_PROMPT}], params)))
    except (BackendError, BackendConfigError) as exc:
        return False, str(exc)
    if not text.strip():
        return False, "empty answer"
    ModelEntry.objects.filter(id=model_id).update(consecutive_failures=0, outage_since=None)
    return True, text


def generation_sweep() -> int:
    """Requeue (or, out of attempts, fail) generations whose worker vanished. Returns rows touched."""
    from arena.services import generations_enqueue

    cutoff = timezone.now() - timezone.timedelta(seconds=settings.ARENA_GENERATION_STUCK_AFTER)
    touched = 0
    stuck = Generation.objects.filter(status=Generation.Status.RUNNING, started_at__lt=cutoff).select_related(
        "model"
    )
    for gen in stuck:
        live = Generation.objects.filter(id=gen.id, status=Generation.Status.RUNNING, attempts=gen.attempts)
        if gen.attempts < settings.ARENA_GENERATION_MAX_ATTEMPTS:
            with transaction.atomic():
                if live.update(status=Generation.Status.QUEUED, started_at=None):
                    generations_enqueue([gen])
                    touched += 1
            continue
        message = "The worker generating this answer stopped. Please start a new battle."
        if live.update(status=Generation.Status.FAILED, error=message, finished_at=timezone.now()):
            touched += 1
            battle_publish(
                gen.battle.code,
                {
                    "type": "failed",
                    "turn": gen.turn,
                    "side": gen.side,
                    "attempt": gen.attempts,
                    "error": message,
                },
            )
            battle_status_sync(battle_id=gen.battle_id)
    # A queued row whose message was lost (a broker restart) is sent again; the claim makes that safe.
    lost = Generation.objects.filter(status=Generation.Status.QUEUED, queued_at__lt=cutoff).select_related(
        "model"
    )
    for gen in lost:
        with transaction.atomic():
            generations_enqueue([gen])
        touched += 1
    return touched
