from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from arena.selectors import battle_for_voter, battle_state
from arena.web import json_errors, request_payload, request_voter, request_voter_id
from voting.captcha import captcha_public_config
from voting.challenge import challenge_issue
from voting.gate import vote_gate
from voting.identity import client_ip
from voting.limits import RateLimited
from voting.services import vote_cast, vote_origin


def retry_after(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A 429 says when to come back (Retry-After), which the generic JSON error answer does not."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except RateLimited as exc:
            response = JsonResponse(
                {"error": exc.message, "code": exc.code, "retry_after": exc.retry_after}, status=exc.status
            )
            response["Retry-After"] = str(exc.retry_after)
            return response

    return wrapper


@require_GET
@json_errors
def challenge(request: HttpRequest, code: str) -> HttpResponse:
    """A proof-of-work challenge for the requester's own battle, and the CAPTCHA widget's settings."""
    battle = battle_for_voter(code=code, voter_id=request_voter_id(request))
    response = JsonResponse({**challenge_issue(code=battle.code), "captcha": captcha_public_config()})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@json_errors
@retry_after
def vote(request: HttpRequest, code: str) -> HttpResponse:
    """Cast the battle's one vote; the answer reveals both models."""
    payload = request_payload(request)
    voter = request_voter(request)
    ip = client_ip(request.META)
    vote_gate(
        code=code,
        voter=voter,
        ip=ip,
        signed_in=request.user.is_authenticated,
        challenge=payload.get("challenge"),
        captcha=payload.get("captcha"),
    )
    origin = vote_origin(ip=ip, fingerprint=payload.get("fingerprint"))
    cast = vote_cast(
        code=code, voter=voter, choice=payload.get("choice"), origin=origin, criteria=payload.get("criteria")
    )
    return JsonResponse({"state": battle_state(cast.battle)})
