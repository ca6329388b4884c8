from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from arena.selectors import battle_for_voter, battle_state
from arena.web import json_errors, request_payload, request_voter
from voting.services import vote_cast


@require_POST
@json_errors
def vote(request: HttpRequest, code: str) -> HttpResponse:
    """Cast the battle's one vote; the answer reveals both models."""
    payload = request_payload(request)
    voter = request_voter(request)
    vote_cast(code=code, voter=voter, choice=payload.get("choice"))
    return JsonResponse({"state": battle_state(battle_for_voter(code=code, voter_id=voter.id))})
