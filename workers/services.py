"""Running generations: claim a row, stream the backend's answer to the browser, record the result.

Every write after the claim is fenced on (status=running, attempts=<this attempt>): if the sweeper
gave the row to another worker, a late writer changes nothing. That makes the task safe to run twice.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from arena.audit import audit_record
from arena.disclosure import FailureKind, voter_failure_text
from arena.media import MediaInfo, MediaRejected, media_accept, media_inspect, media_read, media_save
from arena.models import Battle, GalleryOutput, Generation, Modality, ModelEntry
from arena.moderation import CLEAN, Verdict, image_check, output_check
from arena.selectors import candidates_invalidate, media_public
from arena.textcheck import text_storable
from workers.backends import (
    BackendConfigError,
    BackendError,
    GenerationParams,
    GenerationRequest,
    InputRejected,
    MediaBackend,
    MediaRequest,
    TextBackend,
    Usage,
    backend_create,
)
from workers.events import battle_publish
from workers.pacing import END, PROGRESS, Pacing, StreamPacer, TurnGate, progress_step

logger = logging.getLogger(__name__)

PROBE_PROMPT = "Reply with one short friendly sentence."
PROBE_MAX_TOKENS = 32
PROBE_MEDIA_PROMPT = "a red apple on a white table"


# How long a probe asked for by a failure streak keeps others from asking again (the probe task's hard limit).
OUTAGE_VERIFY_LOCK_SECONDS = 150
# The staff detail is a diagnosis, not a transcript.
ERROR_DETAIL_LIMIT = 2000


class GenerationFailed(Exception):
    """A side failed. `kind` is all a voter learns (arena.disclosure picks the text); `detail`, the backend's
    own words, goes to staff (Generation.error_detail) and the log."""

    def __init__(self, detail: str, kind: FailureKind = FailureKind.UNAVAILABLE) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind

    @property
    def message(self) -> str:
        """The neutral text the voter reads."""
        return voter_failure_text(self.kind)


@dataclass
class _Progress:
    """One side's generation as the page sees it: its events, its text so far, and (text, pacing on) the pacer
    that decides when the page sees that text (workers/pacing.py)."""

    gen_id: int
    attempt: int
    code: str
    turn: int
    side: str
    parts: list[str] = field(default_factory=list)
    length: int = 0
    flushed_at: float = field(default_factory=time.monotonic)
    pacer: StreamPacer | None = None

    def event(self, kind: str, **extra: object) -> dict[str, object]:
        return {"type": kind, "turn": self.turn, "side": self.side, "attempt": self.attempt, **extra}

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def gate(self) -> TurnGate:
        return TurnGate(self.code, self.turn, self.side)

    def pace(self) -> None:
        """From now on this side's text reaches the page through a pacer (when ARENA_STREAM_PACING is on)."""
        pacing = Pacing.from_settings()
        if pacing is not None:
            self.pacer = _pacer_make(self, pacing)

    def settle(self, *, ok: bool) -> None:
        """This side's model is done (or failed): its paced stream catches up, and the other side is told."""
        pacer, self.pacer = self.pacer, None
        if pacer is not None:
            pacer.close(ok=ok)
        elif settings.ARENA_STREAM_PACING or settings.ARENA_MEDIA_REVEAL_TOGETHER:
            self.gate.mark(END)


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


def _chunk(progress: _Progress, delta: str) -> None:
    """One delta from the model. Paced, the pacer publishes and persists it on its tick (the database never
    runs ahead of the page); first_chunk_at keeps the model's own time to first token, for staff
    (arena.health). Unpaced: publish first, then persist, so the browser sees the token before the database
    write finishes."""
    offset = progress.length
    progress.parts.append(delta)
    progress.length += len(delta)
    if progress.pacer is not None:
        progress.pacer.feed(delta)
        if offset == 0:
            _live(progress).update(first_chunk_at=timezone.now())
        return
    first_at = timezone.now() if offset == 0 else None
    battle_publish(progress.code, progress.event("chunk", offset=offset, text=delta))
    now = time.monotonic()
    if first_at is not None:
        _live(progress).update(first_chunk_at=first_at, output=delta)
        progress.flushed_at = now
    elif now - progress.flushed_at >= settings.ARENA_STREAM_FLUSH_SECONDS:
        _live(progress).update(output=progress.text)
        progress.flushed_at = now


def _pacer_make(progress: _Progress, pacing: Pacing) -> StreamPacer:
    """A pacer wired to this side: its chunks go to the battle's group, its text to this attempt's row."""

    def publish(side: str, attempt: int, offset: int, text: str) -> None:
        # This side's chunks, and the other side's first chunk when this side completes the pair.
        event = {**progress.event("chunk", offset=offset, text=text), "side": side, "attempt": attempt}
        battle_publish(progress.code, event)

    def persist(text: str) -> None:
        _live(progress).update(output=text)

    # The pacer thread's own database connection ends with it (looked up in that thread, hence the lambda).
    return StreamPacer(
        pacing,
        progress.gate,
        attempt=progress.attempt,
        publish=publish,
        persist=persist,
        on_exit=lambda: connection.close(),
    )


@contextmanager
def _backend_failures(gen: Generation) -> Iterator[None]:
    """Every way a backend can fail becomes GenerationFailed: its kind for the voter, its words for staff.

    InputRejected (a context-length 400, a content refusal) is the prompt's fault, not the model's: its kind
    is INPUT, which model_health_record does not count."""
    try:
        yield
    except GenerationFailed:
        raise
    except SoftTimeLimitExceeded as exc:
        limit = settings.ARENA_GENERATION_SOFT_LIMIT
        raise GenerationFailed(f"the task's soft time limit ({limit} s) passed", FailureKind.TIMEOUT) from exc
    except InputRejected as exc:
        raise GenerationFailed(str(exc) or "the model refused this input", FailureKind.INPUT) from exc
    except BackendError as exc:
        raise GenerationFailed(str(exc) or "the model failed to answer") from exc
    except BackendConfigError as exc:
        logger.error("model %s is misconfigured: %s", gen.model.slug, exc)
        raise GenerationFailed(f"the model is misconfigured: {exc}") from exc
    except Exception as exc:
        logger.exception("generation %s crashed", gen.id)
        raise GenerationFailed(f"the worker hit an internal error ({type(exc).__name__}: {exc})") from exc


def _too_late(deadline: float) -> None:
    if time.monotonic() > deadline:
        limit = settings.ARENA_GENERATION_SOFT_LIMIT
        raise GenerationFailed(f"the answer took longer than {limit} s", FailureKind.TIMEOUT)


def _stream(gen: Generation, progress: _Progress) -> Usage:
    """Drive a text backend, publishing each delta as it arrives (paced: on the pacer's tick, and the final
    write waits until the page has been shown everything)."""
    deadline = time.monotonic() + settings.ARENA_GENERATION_SOFT_LIMIT
    with _backend_failures(gen):
        backend = backend_create(gen.model.backend_kind, gen.model.backend_config)
        params = GenerationParams.from_config(gen.model.backend_config)
        progress.pace()
        try:
            request = GenerationRequest(messages=conversation_messages(gen), params=params)
            for delta in backend.stream(request):
                if delta:
                    # A NUL or lone surrogate in an answer (a prompt can ask for one) would fail the write.
                    _chunk(progress, text_storable(delta))
                _too_late(deadline)
        except BaseException:
            progress.settle(ok=False)
            raise
        progress.settle(ok=True)
    if not progress.length:
        raise GenerationFailed("the model returned an empty answer", FailureKind.EMPTY)
    return backend.usage


@dataclass(frozen=True)
class _Rendered:
    """An image or 3D output in storage: its name, what it is, and its thumbnail ("" when none)."""

    name: str
    info: MediaInfo
    thumbnail: str
    verdict: Verdict = CLEAN


def _progress_reporter(progress: _Progress, deadline: float) -> Callable[[float], None]:
    """The callback a media backend calls as it works: stop the work when the deadline has passed, and show
    how far it got. Shown together (ARENA_MEDIA_REVEAL_TOGETHER): see _shared_progress_reporter. Otherwise
    this side's own fraction, at most every 0.2 s or 5%."""
    if settings.ARENA_MEDIA_REVEAL_TOGETHER:
        return _shared_progress_reporter(progress, deadline)
    last = {"fraction": -1.0, "at": 0.0}

    def report(fraction: float) -> None:
        _too_late(deadline)
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        if fraction >= 1.0 or fraction - last["fraction"] >= 0.05 or now - last["at"] >= 0.2:
            last.update(fraction=fraction, at=now)
            battle_publish(progress.code, progress.event("progress", fraction=round(fraction, 3)))

    return report


def _shared_progress_reporter(progress: _Progress, deadline: float) -> Callable[[float], None]:
    """Both sides show one fraction: the slower side's, rounded down to ARENA_MEDIA_PROGRESS_STEP, published
    once (by whichever side reaches it) as an identical event for each side. A model's own fractions would
    give away its step count (1/28, 2/28, ...) and its speed; the shared one tells how far the battle is."""
    gate = progress.gate
    step = settings.ARENA_MEDIA_PROGRESS_STEP
    last = {"own": 0.0}

    def report(fraction: float) -> None:
        _too_late(deadline)
        fraction = float(fraction)
        if not math.isfinite(fraction):
            return
        own = progress_step(min(max(fraction, 0.0), 1.0), step)
        if own <= last["own"]:
            return
        last["own"] = own
        # Written before the other side is read: of two sides racing here, the later one sees both values.
        gate.mark(PROGRESS, own)
        shared = min(own, gate.other_progress())
        if shared > 0 and gate.first_to(f"{shared:.6f}"):
            for side in ("a", "b"):
                event = {"type": "progress", "turn": progress.turn, "side": side, "fraction": shared}
                battle_publish(progress.code, event)

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
        # Checked and rewritten without metadata: the stored bytes are what the voter is served.
        data, info = media_accept(result.data, format_hint=result.format)
    except MediaRejected as exc:
        logger.error("model %s returned an unusable file: %s", gen.model.slug, exc)
        raise GenerationFailed(f"The model returned an unusable file: {exc}") from exc
    from arena.thumbnails import thumbnail_save  # pulls in trimesh: only media workers need it

    name = media_save(data, info)
    thumbnail = thumbnail_save(data, info)
    return _Rendered(name, info, thumbnail, media_output_check(data, info, thumbnail))


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
    except GenerationFailed as failed:
        _fail(gen, progress, failed, output=progress.text)  # what arrived before the failure stays visible
        return
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


def failure_fields(kind: FailureKind, detail: str) -> dict[str, object]:
    """A failed side's row fields: the neutral text for its kind (what the voter reads, arena.disclosure), the
    kind, and the backend's own words for staff. Every writer of a failure uses this."""
    return {
        "status": Generation.Status.FAILED,
        "error": voter_failure_text(kind),
        "failure_kind": kind,
        "error_detail": detail[:ERROR_DETAIL_LIMIT],
        "finished_at": timezone.now(),
    }


def _fail(gen: Generation, progress: _Progress, failed: GenerationFailed, **fields: object) -> None:
    """Record a failed side (fenced on this attempt), tell the page in neutral words, settle the battle. The
    log keeps the detail: it may name the model, and only operators read it."""
    level = logging.INFO if failed.kind == FailureKind.INPUT else logging.WARNING
    # One line: a server's error may quote the visitor's prompt, which must not forge log lines.
    detail = " ".join(failed.detail.split())
    logger.log(level, "generation %s of %s failed (%s): %s", gen.id, gen.model.slug, failed.kind, detail)
    finished = _live(progress).update(**fields, **failure_fields(failed.kind, failed.detail))
    event = progress.event("failed", error=voter_failure_text(failed.kind))
    _finish(gen, progress, finished=finished, event=event, ok=False, kind=failed.kind)


def _finish(
    gen: Generation,
    progress: _Progress,
    *,
    finished: int,
    event: dict[str, object],
    ok: bool,
    kind: FailureKind | None = None,
) -> None:
    """After the fenced final write: tell the page, count the model's health, and settle the battle."""
    progress.settle(ok=ok)  # the other side stops waiting for this one (workers/pacing.py)
    if finished:
        if not _reveal_held(gen, event):
            battle_publish(progress.code, event)
        battle_status_sync(battle_id=gen.battle_id)
        model_health_record(model_id=gen.model_id, ok=ok, kind=kind)


def _media_run(gen: Generation, progress: _Progress) -> None:
    try:
        rendered = _render(gen, progress)
    except GenerationFailed as failed:
        _fail(gen, progress, failed)
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
        events = [*_held_reveals(battle), event]
        transaction.on_commit(lambda: [battle_publish(battle.code, e) for e in events])


def _reveal_held(gen: Generation, event: dict[str, object]) -> bool:
    """An image or 3D side's "done" waits for the other side's (ARENA_MEDIA_REVEAL_TOGETHER): sent as each
    finished, the two events would tell the page which model is faster. battle_status_sync sends both."""
    return (
        settings.ARENA_MEDIA_REVEAL_TOGETHER
        and event.get("type") == "done"
        and gen.battle.modality != Modality.TEXT
    )


def _held_reveals(battle: Battle) -> list[dict[str, object]]:
    """The "done" events _reveal_held kept back, for a media battle that just stopped generating (side a
    first, then b: the order says nothing)."""
    if battle.modality == Modality.TEXT or not settings.ARENA_MEDIA_REVEAL_TOGETHER:
        return []
    last_turn = battle.generations.filter(turn=battle.turn_count - 1)
    done = last_turn.filter(status=Generation.Status.DONE).order_by("side")
    return [
        {
            "type": "done",
            "turn": gen.turn,
            "side": gen.side,
            "attempt": gen.attempts,
            "output": "",
            "media": media_public(code=battle.code, turn=gen.turn, side=gen.side, info=gen.media_info),
            "flagged": gen.flagged,
        }
        for gen in done
    ]


def model_health_record(*, model_id: int, ok: bool, kind: FailureKind | None = None) -> None:
    """Count a model's consecutive failures. A streak of ARENA_OUTAGE_AFTER_FAILURES asks for a probe on the
    model's own worker, and the probe decides: the model goes into outage only if it fails that too.

    Why not the count alone: the visitor chooses the prompt, and some prompts make a healthy model's server
    fail (a 5xx on a crafted input). Counting alone let six such prompts empty the arena; the probe's fixed,
    harmless prompt tells a model that is down from prompts that were at fault. Input rejections (kind INPUT)
    neither count nor reset the failure streak; they build their own, so that a model rejecting *every* input
    (a misconfigured one) is probed as well."""
    models = ModelEntry.objects.filter(id=model_id)
    if ok:
        models.filter(Q(consecutive_failures__gt=0) | Q(consecutive_rejections__gt=0)).update(
            consecutive_failures=0, consecutive_rejections=0
        )
        return
    streak = "consecutive_rejections" if kind == FailureKind.INPUT else "consecutive_failures"
    models.update(**{streak: F(streak) + 1})
    threshold = settings.ARENA_OUTAGE_AFTER_FAILURES
    if models.filter(outage_since__isnull=True, **{f"{streak}__gte": threshold}).exists():
        outage_verify_request(model_id=model_id)


def _verify_key(model_id: int) -> str:
    return f"arena:outage-verify:{model_id}"


def outage_verify_request(*, model_id: int) -> None:
    """Send a confirming probe to the model's own queue (where its GPU and files are), once at a time."""
    try:
        first = cache.add(_verify_key(model_id), 1, OUTAGE_VERIFY_LOCK_SECONDS)
    except Exception:  # the lock only saves duplicate probes: without the cache, send one anyway
        logger.warning("cache unavailable: probing model %s without the lock", model_id, exc_info=True)
        first = True
    if not first:
        return  # a probe is already on its way; its answer settles this streak too
    from workers.tasks import model_probe_task

    queue = ModelEntry.objects.get(id=model_id).generation_queue()
    logger.warning("model %s failed repeatedly; probing it before any outage", model_id)
    transaction.on_commit(
        lambda: model_probe_task.apply_async(args=[model_id], kwargs={"confirm": True}, queue=queue)
    )


def model_outage_enter(*, model_id: int, reason: str) -> bool:
    """Take a model out of sampling (a probe confirmed it cannot answer). True if it was not in outage yet."""
    entered = ModelEntry.objects.filter(id=model_id, outage_since__isnull=True).update(
        outage_since=timezone.now()
    )
    if entered:
        candidates_invalidate()
        logger.warning("model %s entered outage: its probe failed too (%s)", model_id, reason)
    return bool(entered)


def _model_recovered(model_id: int) -> None:
    """The model answered its probe: back into sampling, streaks cleared."""
    models = ModelEntry.objects.filter(id=model_id)
    cleared = {"consecutive_failures": 0, "consecutive_rejections": 0}
    # One write when it comes back: nobody sees it in sampling with its old streak.
    back = models.filter(outage_since__isnull=False).update(outage_since=None, **cleared)
    if not back:
        models.filter(Q(consecutive_failures__gt=0) | Q(consecutive_rejections__gt=0)).update(**cleared)
    if back:
        candidates_invalidate()
        logger.info("model %s is back from outage: it answered its probe", model_id)


def model_probe(*, model_id: int, confirm: bool = False) -> tuple[bool, str]:
    """Run a short test generation: a fixed, harmless prompt through the model's own config (its system prompt
    and parameters, so a misconfiguration fails here as it fails battles). Success takes the model out of
    outage at once and clears its streaks; with `confirm` (a failure streak asked for this probe) a failure
    puts it into outage. Returns (ok, the answer or the error; staff read it, voters never do)."""
    model = ModelEntry.objects.get(id=model_id)
    ok, text = _probe_run(model)
    with contextlib.suppress(Exception):  # the lock lapses on its own; the probe's answer matters more
        cache.delete(_verify_key(model_id))
    if ok:
        _model_recovered(model_id)
    elif confirm:
        model_outage_enter(model_id=model_id, reason=text)
    return ok, text


def _probe_run(model: ModelEntry) -> tuple[bool, str]:
    """(answered, its text or the error). Anything going wrong is a failed probe: it checks health."""
    try:
        backend = backend_create(model.backend_kind, model.backend_config)
        if isinstance(backend, MediaBackend):
            text = _media_probe(model, backend)
        else:
            text = _text_probe(model, backend)
    except (BackendError, BackendConfigError, SoftTimeLimitExceeded) as exc:
        return False, str(exc) or type(exc).__name__
    except Exception as exc:
        logger.exception("the probe of model %s crashed", model.slug)
        return False, f"the probe crashed ({type(exc).__name__}: {exc})"
    if not text.strip():
        return False, "empty answer"
    return True, text


def _text_probe(model: ModelEntry, backend: TextBackend) -> str:
    config = model.backend_config
    params = replace(GenerationParams.from_config(config), max_new_tokens=PROBE_MAX_TOKENS)
    messages = []
    system = config.get("system_prompt")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": PROBE_PROMPT})
    return "".join(backend.stream(GenerationRequest(messages, params)))


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
        detail = f"the worker generating this answer stopped; no attempts left ({gen.attempts} made)"
        if live.update(**failure_fields(FailureKind.UNAVAILABLE, detail)):
            touched += 1
            battle_publish(
                gen.battle.code,
                {
                    "type": "failed",
                    "turn": gen.turn,
                    "side": gen.side,
                    "attempt": gen.attempts,
                    "error": voter_failure_text(FailureKind.UNAVAILABLE),
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
