"""Turn an unreachable database or Redis into a 503 with a clear message instead of a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.exceptions
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
