"""Battle pages and the battle JSON API. Views parse input, call one service, render."""

from __future__ import annotations

import random

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from arena import services
from arena.disclosure import outputs_shown
from arena.errors import ArenaError, InvalidInput, NotFound
from arena.media import CONTENT_TYPES
from arena.models import Generation, Modality, Prompt
from arena.request_limits import PayloadTooLarge
from arena.selectors import (
    battle_for_voter,
    battle_state,
    gallery_available,
    media_battle_for,
    thumbnail_public,
)
from arena.web import (
    error_response,
    json_errors,
    limits_enforce,
    request_payload,
    request_voter_id,
    wants_json,
)


def _page(
    request: HttpRequest, *, state: dict | None, modality: str, error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "state": state,
        "modality": modality,
        "modality_label": Modality(modality).label,
        "max_prompt_chars": settings.ARENA_MAX_PROMPT_CHARS,
        "max_upload_bytes": settings.ARENA_MAX_UPLOAD_BYTES,
        "error": error,
        "modalities": Modality.choices,
        # Image-to-3D: the page offers an upload; galleries: a "gallery battle" button.
        "accepts_image": modality == Modality.THREE_D,
        "has_gallery": modality != Modality.TEXT and gallery_available(modality),
    }
    return render(request, "arena/battle.html", context, status=status)


@require_GET
def home(request: HttpRequest, modality: str | None = None) -> HttpResponse:
    modality = modality or request.GET.get("modality", Modality.TEXT)
    if modality not in Modality.values:
        modality = Modality.TEXT
    return _page(request, state=None, modality=modality)


@require_GET
def battle_page(request: HttpRequest, code: str) -> HttpResponse:
    try:
        battle = battle_for_voter(code=code, voter_id=request_voter_id(request))
    except ArenaError as exc:
        return _page(request, state=None, modality=Modality.TEXT, error=exc.message, status=exc.status)
    return _page(request, state=battle_state(battle), modality=battle.modality)


def _upload_read(request: HttpRequest) -> bytes | None:
    """The optional input image of a multipart battle start. Its size was bounded while it streamed in
    (arena.request_limits): a file over ARENA_MAX_UPLOAD_BYTES was never kept whole."""
    refused = getattr(request, "upload_refused", None)
    if refused:
        raise PayloadTooLarge(refused)
    upload = request.FILES.get("image")
    if upload is None:
        return None
    limit = settings.ARENA_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(f"The uploaded image is {upload.size:,} bytes; the limit is {limit:,}.")
    return upload.read()


def _flag(value: object) -> bool:
    """A boolean field from JSON (true) or a form ("1", "true", "on")."""
    if isinstance(value, bool):
        return value
    if value in (None, "", "0", "false", "off"):
        return False
    if value in ("1", "true", "on"):
        return True
    raise InvalidInput(f"gallery must be true or false, got {value!r}.")


@require_POST
def battle_start(request: HttpRequest) -> HttpResponse:
    """Start a battle: JSON for the page's script, a redirect for a plain form post. Image-to-3D battles
    post multipart/form-data with an `image` file; `gallery` asks for a pre-generated prompt."""
    try:
        voter = limits_enforce(request, "arena:battle-start")  # before the body is parsed
        payload = request_payload(request)
        battle = services.battle_create(
            voter=voter,
            modality=payload.get("modality", Modality.TEXT),
            prompt_text=payload.get("prompt"),
            image=_upload_read(request),
            gallery=_flag(payload.get("gallery")),
        )
    except ArenaError as exc:
        if wants_json(request):
            return error_response(exc)
        return _page(request, state=None, modality=Modality.TEXT, error=exc.message, status=exc.status)
    url = reverse("arena:battle", args=[battle.code])
    if wants_json(request):
        return JsonResponse({"code": battle.code, "url": url, "state": battle_state(battle)}, status=201)
    return redirect(url)


def _media_response(name: str, fmt: str, *, private: bool) -> HttpResponse:
    try:
        handle = default_storage.open(name, "rb")
    except OSError:  # gone, or a name no file could have (too long for the file system, say)
        raise NotFound("This file is no longer stored.") from None
    response = FileResponse(handle, content_type=CONTENT_TYPES.get(fmt, "application/octet-stream"))
    # Names are random and contents never change: cache for a day, privately for a battle's own files.
    response["Cache-Control"] = f"{'private' if private else 'public'}, max-age=86400, immutable"
    response["Content-Disposition"] = "inline"
    return response


@require_GET
@json_errors
def battle_media(request: HttpRequest, code: str, turn: int, side: str, ext: str) -> HttpResponse:
    """One side's image or 3D output, for the battle's own voter (and staff). The URL names the battle, not
    the file, so nothing in it tells which model made it."""
    battle = media_battle_for(request, code)
    gen = Generation.objects.filter(
        battle=battle, turn=turn, side=side, status=Generation.Status.DONE
    ).first()
    staff = request.user.is_active and request.user.is_staff
    # Before both sides are done, a finished side's file answers as a missing one (arena.disclosure).
    if gen is None or not gen.media_name or gen.media_format != ext or not (staff or outputs_shown(battle)):
        raise NotFound("This battle has no such output.")
    return _media_response(gen.media_name, gen.media_format, private=True)


@require_GET
@json_errors
def battle_input_media(request: HttpRequest, code: str, ext: str) -> HttpResponse:
    battle = media_battle_for(request, code)
    if not battle.input_image or not battle.input_image.endswith(f".{ext}"):
        raise NotFound("This battle has no input image.")
    return _media_response(battle.input_image, ext, private=True)


@require_GET
@json_errors
def thumbnail(request: HttpRequest, token: str) -> HttpResponse:
    """A thumbnail the leaderboard or the admin shows (see arena.selectors.thumbnail_public)."""
    name = f"thumbs/{token}.png"
    if not (request.user.is_active and request.user.is_staff) and not thumbnail_public(name):
        raise NotFound("No such thumbnail.")
    return _media_response(name, "png", private=False)


@require_GET
@json_errors
def battle_state_view(request: HttpRequest, code: str) -> HttpResponse:
    battle = battle_for_voter(code=code, voter_id=request_voter_id(request))
    return JsonResponse(battle_state(battle))


@require_POST
@json_errors
def battle_continue(request: HttpRequest, code: str) -> HttpResponse:
    """Another turn: two more generations, counted against the generation limits before the body is read."""
    voter = limits_enforce(request, "arena:battle-continue")
    payload = request_payload(request)
    battle = services.battle_continue(code=code, voter=voter, prompt_text=payload.get("prompt"))
    return JsonResponse({"state": battle_state(battle)})


def _no_fields(request: HttpRequest) -> None:
    """Skip and regenerate take no fields, but say so: the body is the JSON object {}. A bare POST (a probe,
    a stray form) changes nothing, and a malformed or unexpected body is refused."""
    if request.content_type != "application/json":
        raise InvalidInput("Send an empty JSON object ({}) as application/json.")
    if request_payload(request):
        raise InvalidInput("This action takes no fields: send an empty JSON object.")


@require_POST
@json_errors
def battle_skip(request: HttpRequest, code: str) -> HttpResponse:
    """Pass on this pair: recorded (the battle's status, the audit log), never counted."""
    voter = limits_enforce(request, "arena:battle-skip")
    _no_fields(request)
    battle = services.battle_skip(code=code, voter=voter)
    return JsonResponse({"state": battle_state(battle)})


@require_POST
@json_errors
def battle_regenerate(request: HttpRequest, code: str) -> HttpResponse:
    """Both sides answer the last turn again: two generations, counted like a follow-up turn."""
    voter = limits_enforce(request, "arena:battle-regenerate")
    _no_fields(request)
    battle = services.battle_regenerate(code=code, voter=voter)
    return JsonResponse({"state": battle_state(battle)})


@require_GET
@json_errors
def prompt_random(request: HttpRequest) -> HttpResponse:
    modality = services.modality_clean(request.GET.get("modality", Modality.TEXT))
    ids = list(
        Prompt.objects.filter(
            modality=modality, status=Prompt.Status.APPROVED, prompt_set__active=True
        ).values_list("id", flat=True)
    )
    if not ids:
        raise InvalidInput("There is no prompt set for this modality yet.")
    prompt = Prompt.objects.get(id=random.choice(ids))
    return JsonResponse({"prompt": prompt.text})
