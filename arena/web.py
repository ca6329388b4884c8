"""Request plumbing shared by the views: the voter of a request, payload parsing, error responses."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from arena.errors import ArenaError, InvalidInput
from voting.identity import client_ip
from voting.models import Voter
from voting.services import voter_resolve

MAX_JSON_BODY = 256 * 1024


def request_voter_id(request: HttpRequest) -> int | None:
    value = request.session.get("voter_id")
    return value if isinstance(value, int) else None


def request_voter(request: HttpRequest) -> Voter:
    """The voter behind this request, created (and remembered in the session) on first use."""
    if not request.session.session_key:
        request.session.save()
    user_id = request.user.id if request.user.is_authenticated else None
    voter = voter_resolve(
        voter_id=request_voter_id(request),
        session_key=request.session.session_key or "",
        ip=client_ip(request.META),
        user_id=user_id,
    )
    if request.session.get("voter_id") != voter.id:
        request.session["voter_id"] = voter.id
    return voter


def wants_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json" or "application/json" in request.headers.get(
        "Accept", ""
    )


def request_payload(request: HttpRequest) -> dict[str, Any]:
    """Form fields or a JSON object, whichever the client sent."""
    if request.content_type != "application/json":
        return request.POST.dict()
    if len(request.body) > MAX_JSON_BODY:
        raise InvalidInput(f"The request body is larger than {MAX_JSON_BODY // 1024} KiB.")
    try:
        payload = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return payload


def error_response(exc: ArenaError) -> JsonResponse:
    """`{"error": ..., "code": ...}` with the error's HTTP status and headers."""
    response = JsonResponse({"error": exc.message, "code": exc.code}, status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def json_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Turn service errors raised by the view into error_response()."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ArenaError as exc:
            return error_response(exc)

    return wrapper
