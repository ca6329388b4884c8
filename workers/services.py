"""Running generations: claim a row, stream the backend's answer to the browser, record the result.

Every write after the claim is fenced on (status=running, attempts=<this attempt>): if the sweeper
gave the row to another worker, a late writer changes nothing. That makes the task safe to run twice.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from arena.audit import audit_record
from arena.media import MediaInfo, MediaRejected, media_inspect, media_read, media_save
from arena.models import Battle, GalleryOutput, Generation, Modality, ModelEntry
from arena.moderation import CLEAN, Verdict, image_check, output_check
from arena.selectors import candidates_invalidate, media_public
from workers.backends import (
    BackendConfigError,
    BackendError,
    GenerationParams,
    GenerationRequest,
    MediaBackend,
    MediaRequest,
    Usage,
    backend_create,
)
from workers.events import battle_publish

logger = logging.getLogger(__name__)

PROBE_PROMPT = "Reply with one short friendly sentence."
PROBE_MEDIA_PROMPT = "a red apple on a white table"


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


@contextmanager
def _backend_failures(gen: Generation) -> Iterator[None]:
    """Every way a backend can fail becomes GenerationFailed with a message fit for the voter."""
    try:
        yield
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


def _too_late(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise GenerationFailed("The model took too long to answer.")


def _stream(gen: Generation, progress: _Progress) -> Usage:
    """Drive a text backend, publishing each delta as it arrives."""
    deadline = time.monotonic() + settings.ARENA_GENERATION_SOFT_LIMIT
    with _backend_failures(gen):
        backend = backend_create(gen.model.backend_kind, gen.model.backend_config)
        params = GenerationParams.from_config(gen.model.backend_config)
        for delta in backend.stream(GenerationRequest(messages=conversation_messages(gen), params=params)):
            if delta:
                _chunk(progress, delta)
            _too_late(deadline)
    if not progress.length:
        raise GenerationFailed("The model returned an empty answer.")
    return backend.usage


@dataclass(frozen=True)
class _Rendered:
    """An image or 3D output in storage: its name, what it is, and its thumbnail ("" when none)."""

    name: str
    info: MediaInfo
    thumbnail: str
    verdict: Verdict = CLEAN


def _progress_reporter(progress: _Progress, deadline: float) -> Callable[[float], None]:
    """The callback a media backend calls as it works: publish the fraction done, at most every 0.2 s or 5%,
    and stop the work when the deadline has passed."""
    last = {"fraction": -1.0, "at": 0.0}

    def report(fraction: float) -> None:
        _too_late(deadline)
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        if fraction >= 1.0 or fraction - last["fraction"] >= 0.05 or now - last["at"] >= 0.2:
            last.update(fraction=fraction, at=now)
            battle_publish(progress.code, progress.event("progress", fraction=round(fraction, 3)))

    return report


def _render(gen: Generation, progress: _Progress) -> _Rendered:
    """Make (or, for a gallery model, look up) this side's image or 3D output and store it."""
    if gen.model.backend_kind == "gallery":
        stored = GalleryOutput.objects.filter(prompt_id=gen.battle.prompt_id, model_id=gen.model_id).first()
        if stored is None:
            raise GenerationFailed("This gallery has no output of this model for the prompt.")
        return _Rendered(stored.media_name, stored.media_info, stored.thumbnail_name)
    deadline = time.monotonic() + settings.ARENA_GENERATION_SOFT_LIMIT
    with _backend_failures(gen):
        backend = backend_create(gen.model.backend_kind, gen.model.backend_config)
        battle = gen.battle
        request = MediaRequest(
            prompt=battle.conversation[0] if battle.conversation else "",
            image=media_read(battle.input_image) if battle.input_image else None,
            seed=gen.model.backend_config.get("seed"),
        )
        result = backend.generate(request, _progress_reporter(progress, deadline))
        _too_late(deadline)
    try:
        info = media_inspect(result.data, format_hint=result.format)
    except MediaRejected as exc:
        logger.error("model %s returned an unusable file: %s", gen.model.slug, exc)
        raise GenerationFailed(f"The model returned an unusable file: {exc}") from exc
    from arena.thumbnails import thumbnail_save  # pulls in trimesh: only media workers need it

    name = media_save(result.data, info)
    thumbnail = thumbnail_save(result.data, info)
    return _Rendered(name, info, thumbnail, media_output_check(result.data, info, thumbnail))


def media_output_check(data: bytes, info: MediaInfo, thumbnail: str) -> Verdict:
    """The image classifier (if configured) on an image output, or on a 3D output's rendered thumbnail.
    Never raises: a misconfigured check hides the output when the operator asked to fail closed."""
    if not settings.ARENA_MODERATION_IMAGE_MODEL_PATH:
        return CLEAN  # no classifier: nothing to decode or read back
    try:
        from PIL import Image

        if info.kind == "image":
            return image_check(Image.open(io.BytesIO(data)).convert("RGB"))
        if thumbnail:
            return image_check(Image.open(io.BytesIO(media_read(thumbnail))).convert("RGB"))
    except ImproperlyConfigured as exc:
        logger.error("image content check misconfigured: %s", exc)
        if settings.ARENA_MODERATION_FAIL_CLOSED:
            return Verdict(True, ("the content check is misconfigured",))
    return CLEAN


def generation_run(*, generation_id: int) -> None:
    """Claim a queued generation and run it to done or failed. A second run of the same id is a no-op."""
    if not _claim(generation_id):
        return
    gen = Generation.objects.select_related("battle", "model").get(id=generation_id)
    progress = _Progress(gen.id, gen.attempts, gen.battle.code, gen.turn, gen.side)
    battle_publish(progress.code, progress.event("started"))
    if gen.battle.modality != Modality.TEXT:
        _media_run(gen, progress)
        return
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
    _finish(gen, progress, finished=finished, event=event, ok=ok)


def _finish(
    gen: Generation, progress: _Progress, *, finished: int, event: dict[str, object], ok: bool
) -> None:
    """After the fenced final write: tell the page, count the model's health, and settle the battle."""
    if finished:
        battle_publish(progress.code, event)
        model_health_record(model_id=gen.model_id, ok=ok)
        battle_status_sync(battle_id=gen.battle_id)


def _media_run(gen: Generation, progress: _Progress) -> None:
    try:
        rendered = _render(gen, progress)
    except GenerationFailed as exc:
        finished = _live(progress).update(
            status=Generation.Status.FAILED, error=exc.message, finished_at=timezone.now()
        )
        _finish(gen, progress, finished=finished, event=progress.event("failed", error=exc.message), ok=False)
        return
    info, verdict = rendered.info, rendered.verdict
    now = timezone.now()
    finished = _live(progress).update(
        status=Generation.Status.DONE,
        media_name=rendered.name,
        media_format=info.format,
        media_kind=info.kind,
        media_meta=info.meta,
        thumbnail_name=rendered.thumbnail,
        first_chunk_at=now,
        finished_at=now,
        flagged=verdict.flagged,
        flag_reasons=list(verdict.reasons),
    )
    if not finished and gen.model.backend_kind != "gallery":
        # The sweeper gave this row to another attempt: this attempt's file is nobody's.
        for name in (rendered.name, rendered.thumbnail):
            if name:
                default_storage.delete(name)
    if finished and verdict.flagged:
        generation_flag_record(generation_id=gen.id, reasons=verdict.reasons)
    media = media_public(code=progress.code, turn=gen.turn, side=gen.side, info=info)
    event = progress.event("done", output="", media=media, flagged=verdict.flagged)
    _finish(gen, progress, finished=finished, event=event, ok=True)


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
        can_continue = (
            battle.modality == Modality.TEXT  # image and 3D battles are one prompt, one output per side
            and battle.status == Battle.Status.READY
            and battle.turn_count < settings.ARENA_MAX_TURNS
        )
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
        candidates_invalidate()
        logger.warning("model %s entered outage after repeated failures", model_id)


def model_probe(*, model_id: int) -> tuple[bool, str]:
    """Run a short test generation. Success takes the model out of outage. Returns (ok, text or error)."""
    model = ModelEntry.objects.get(id=model_id)
    try:
        backend = backend_create(model.backend_kind, model.backend_config)
        if isinstance(backend, MediaBackend):
            text = _media_probe(model, backend)
        else:
            params = GenerationParams(max_new_tokens=32, temperature=0.0)
            messages = [{"role": "user", "content": PROBE_PROMPT}]
            text = "".join(backend.stream(GenerationRequest(messages, params)))
    except (BackendError, BackendConfigError) as exc:
        return False, str(exc)
    if not text.strip():
        return False, "empty answer"
    if ModelEntry.objects.filter(id=model_id).update(consecutive_failures=0, outage_since=None):
        candidates_invalidate()
    return True, text


def _media_probe(model: ModelEntry, backend: MediaBackend) -> str:
    """A test image or 3D asset (a gallery model: its stored outputs); returns a line describing it."""
    if model.backend_kind == "gallery":
        count = GalleryOutput.objects.filter(model=model).count()
        if not count:
            raise BackendError("the gallery holds no outputs of this model")
        return f"{count} gallery outputs"
    inputs = backend.accepted_inputs(model.backend_config)
    if "text" in inputs:
        request = MediaRequest(prompt=PROBE_MEDIA_PROMPT, seed=0)
    else:
        request = MediaRequest(image=_probe_image(), seed=0)
    result = backend.generate(request, lambda fraction: None)
    try:
        info = media_inspect(result.data, format_hint=result.format)
    except MediaRejected as exc:
        raise BackendError(f"the model returned an unusable file: {exc}") from exc
    details = ", ".join(f"{k} {v}" for k, v in info.meta.items() if k != "bytes")
    return f"{info.format.upper()} {info.kind} ({details}; {len(result.data):,} bytes)"


def _probe_image() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(img).ellipse((12, 12, 52, 52), fill="red")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


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
