"""Battle pages and the battle JSON API. Views parse input, call one service, render."""

from __future__ import annotations

import random

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from arena import services
from arena.errors import ArenaError, InvalidInput
from arena.models import Modality, Prompt
from arena.selectors import battle_for_voter, battle_state
from arena.web import (
    error_response,
    json_errors,
    request_payload,
    request_voter,
    request_voter_id,
    wants_json,
)
from voting.identity import client_ip
from voting.limits import battle_rate_check


def _page(
    request: HttpRequest, *, state: dict | None, modality: str, error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "state": state,
        "modality": modality,
        "modality_label": Modality(modality).label,
        "max_prompt_chars": settings.ARENA_MAX_PROMPT_CHARS,
        "error": error,
    }
    return render(request, "arena/battle.html", context, status=status)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    modality = request.GET.get("modality", Modality.TEXT)
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


@require_POST
def battle_start(request: HttpRequest) -> HttpResponse:
    """Start a battle: JSON for the page's script, a redirect for a plain form post."""
    try:
        payload = request_payload(request)
        voter = request_voter(request)
        battle_rate_check(voter_id=voter.id, ip=client_ip(request.META))
        battle = services.battle_create(
            voter=voter, modality=payload.get("modality", Modality.TEXT), prompt_text=payload.get("prompt")
        )
    except ArenaError as exc:
        if wants_json(request):
            return error_response(exc)
        return _page(request, state=None, modality=Modality.TEXT, error=exc.message, status=exc.status)
    url = reverse("arena:battle", args=[battle.code])
    if wants_json(request):
        return JsonResponse({"code": battle.code, "url": url, "state": battle_state(battle)}, status=201)
    return redirect(url)


@require_GET
@json_errors
def battle_state_view(request: HttpRequest, code: str) -> HttpResponse:
    battle = battle_for_voter(code=code, voter_id=request_voter_id(request))
    return JsonResponse(battle_state(battle))


@require_POST
@json_errors
def battle_continue(request: HttpRequest, code: str) -> HttpResponse:
    payload = request_payload(request)
    battle = services.battle_continue(
        code=code, voter=request_voter(request), prompt_text=payload.get("prompt")
    )
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
