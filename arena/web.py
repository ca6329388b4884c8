"""Request plumbing shared by the views: the voter of a request, rate limits before the body, payload parsing,
error responses.

`request_payload` is the one place a request body becomes data. Whatever a client sends — a JSON document
nested 100,000 deep, a lone surrogate (`"\\ud800"`) or a NUL in any field, numbers too large to parse, a
body that is not an object, a content type nobody asked for, a body over the limit — ends as a clear 4xx
(InvalidInput, PayloadTooLarge, UnsupportedMediaType), never a 500, and every text in the payload (keys and
values, nested ones too) is valid UTF-8 when it reaches a service.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError

from arena.errors import ArenaError, InvalidInput
from arena.request_limits import (
    RATE_LIMITED,
    UPLOAD_ENDPOINTS,
    PayloadTooLarge,
    body_limit,
    too_large_message,
)
from arena.textcheck import text_clean, text_valid
from voting.identity import client_ip
from voting.limits import address_scopes, rate_check, voter_scopes
from voting.models import Voter
from voting.services import voter_resolve

# Deeper than any payload the site sends (criteria are two levels): refused before a service walks it.
MAX_JSON_DEPTH = 8
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class UnsupportedMediaType(ArenaError):
    status = 415
    code = "unsupported_media_type"


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


def limits_enforce(request: HttpRequest, endpoint: str) -> Voter:
    """Count `endpoint`'s rate limits (arena.request_limits.RATE_LIMITED) before its body is read; the voter.

    The client's address and network first: a visitor who rotates cookies or sessions is refused there,
    before a voter row is written for the new session. Then the voter's own limit.
    """
    ip = client_ip(request.META)
    costs = RATE_LIMITED[endpoint]
    for kind, cost in costs:
        rate_check(kind, scopes=address_scopes(ip=ip, kind=kind), cost=cost)
    voter = request_voter(request)
    for kind, cost in costs:
        rate_check(kind, scopes=voter_scopes(voter_id=voter.id, kind=kind), cost=cost)
    return voter


def wants_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json" or "application/json" in request.headers.get(
        "Accept", ""
    )


def _declared_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH") or ""
    if not raw:
        return None
    if not (raw.isascii() and raw.strip().isdigit()):
        raise InvalidInput("The Content-Length header is not a number.")
    return int(raw)


def _body(request: HttpRequest) -> bytes:
    """The raw body, refused by its declared length before it is read, and by its real one after."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(too_large_message(limit))
    try:
        body = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge(too_large_message(limit)) from None
    except UnreadablePostError:
        raise InvalidInput("The request body could not be read.") from None
    if len(body) > limit:
        raise PayloadTooLarge(too_large_message(limit))
    return body


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999999 parses as infinity
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _json_payload(request: HttpRequest) -> Any:
    body = _body(request)
    try:
        return json.loads(body or b"{}", parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise InvalidInput(f"The JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels).") from None
    except ValueError:  # also bad UTF-8, and integers longer than Python parses (4,300 digits)
        raise InvalidInput("The request body is not valid JSON.") from None


def _form_payload(request: HttpRequest) -> dict[str, Any]:
    match = request.resolver_match
    limit = body_limit(match.view_name if match else None, request.content_type or "")
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(too_large_message(limit))
    try:
        fields = request.POST.dict()
        files = bool(request.FILES)
    except RequestDataTooBig:  # the form's fields alone, files aside
        raise PayloadTooLarge(too_large_message(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)) from None
    except (TooManyFieldsSent, TooManyFilesSent):
        raise InvalidInput("The form has too many fields.") from None
    except (MultiPartParserError, UnreadablePostError, UnicodeDecodeError):
        raise InvalidInput("The form data could not be read.") from None
    if (files or getattr(request, "upload_refused", None)) and (
        match is None or match.view_name not in UPLOAD_ENDPOINTS
    ):
        raise InvalidInput("This endpoint takes no files.")
    return fields


def _field_name(path: str, key: object) -> str:
    """How a message names a field: by its key when that is short plain text, never echoing anything else."""
    plain = isinstance(key, str) and len(key) <= 40 and key.isprintable() and text_valid(key)
    name = key if plain else "a field"
    return f"{path}.{name}" if path else str(name)


def payload_texts_check(payload: Any) -> None:
    """Every key and text value, at any depth, must be valid text (arena.textcheck); no deeper than
    MAX_JSON_DEPTH. Iterative, so that no payload can exhaust the stack here either."""
    stack: list[tuple[str, Any, int]] = [("", payload, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInput(f"The JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels).")
        if isinstance(value, str):
            text_clean(value, field=path or "The body")
        elif isinstance(value, dict):
            for key, item in value.items():
                field = _field_name(path, key)
                text_clean(key, field=f"A field name in {path or 'the body'}")
                stack.append((field, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))


def request_payload(request: HttpRequest) -> dict[str, Any]:
    """Form fields or a JSON object, whichever the client sent, bounded and checked (see the module doc).

    A body of another content type is refused (415) unless it is empty (a bare POST means "no fields").
    """
    content_type = request.content_type or ""
    if content_type == "application/json":
        payload = _json_payload(request)
    elif content_type in FORM_TYPES:
        payload = _form_payload(request)
    elif _body(request).strip():
        raise UnsupportedMediaType("Send the fields as JSON (application/json) or as a form.")
    else:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidInput("The request body must be a JSON object.")
    payload_texts_check(payload)
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
