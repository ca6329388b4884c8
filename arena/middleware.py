"""Middleware at the edges of the request cycle: an unreachable database or Redis becomes a 503 with a clear
message instead of a traceback, and a URL carrying a NUL or broken text is refused before any view sees it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.exceptions
from django.core.exceptions import SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

MESSAGE = "Arena is temporarily unavailable: its database cannot be reached. Please try again in a minute."
# Redis holds sessions, rate-limit counters, the task queue and the websocket layer: no vote or battle can be
# handled safely without it, so the request is refused (nothing stored) and the client told to retry.
REDIS_MESSAGE = (
    "Arena is temporarily unavailable: its cache and queue cannot be reached. Please try again in a minute."
)
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError | InterfaceError):
            message, what = MESSAGE, "database"
        elif isinstance(exception, _REDIS_DOWN):
            message, what = REDIS_MESSAGE, "redis"
        else:
            return None
        logger.error("%s unavailable while serving %s: %s", what, request.path, exception)
        headers = {"Retry-After": "30"}
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            return JsonResponse({"error": message, "code": "unavailable"}, status=503, headers=headers)
        html = render_to_string("503.html", {"message": message})
        return HttpResponse(html, status=503, headers=headers)


def _text_broken(value: str) -> bool:
    """NUL (PostgreSQL text refuses it) or an unpaired surrogate (nothing can encode it)."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _url_problem(request: HttpRequest) -> str | None:
    if _text_broken(request.path_info):
        return "The URL's path holds a NUL or characters that are not valid text."
    try:
        pairs = list(request.GET.lists())
    except SuspiciousOperation:  # too many fields: Django's own limit (DATA_UPLOAD_MAX_NUMBER_FIELDS)
        return "The query string has too many parameters."
    for key, values in pairs:
        if _text_broken(key) or any(_text_broken(v) for v in values):
            return "A query parameter holds a NUL or characters that are not valid text."
    return None


class HostileRequestMiddleware:
    """Refuses, with 400, a URL whose path or query parameters hold a NUL or unencodable text, before any
    view: no id, slug or filter can then carry one into a database query (PostgreSQL refuses NUL in text, a
    500 otherwise), a cache key or a log line. Bodies are checked where they are parsed (arena.web)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = _url_problem(request)
        if problem is None:
            return self.get_response(request)
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            return JsonResponse({"error": problem, "code": "invalid"}, status=400)
        return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")
