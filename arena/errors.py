"""Errors a service raises for the caller to show. Each carries the HTTP status a view answers with."""

from __future__ import annotations


class ArenaError(Exception):
    status = 400
    code = "bad_request"
    headers: dict[str, str] = {}  # extra response headers, e.g. Retry-After on a 429

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ArenaError):
    status = 400
    code = "invalid"


class NotAllowed(ArenaError):
    status = 403
    code = "forbidden"


class NotFound(ArenaError):
    status = 404
    code = "not_found"


class Conflict(ArenaError):
    status = 409
    code = "conflict"


class Unavailable(ArenaError):
    status = 503
    code = "unavailable"


class ContentBlocked(ArenaError):
    """The content policy refused the text; the message says why, so the visitor can rephrase."""

    status = 422
    code = "content_blocked"
