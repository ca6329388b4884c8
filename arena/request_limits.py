"""Limits a request meets before its body is read: body size per endpoint, and rate limits.

Django's ASGI handler reads a whole request body (into memory, then a temporary file) before any middleware
or view runs, so a size check in a view comes after a 1 GB upload has landed on disk. `RequestGuard` wraps the
ASGI application instead and, before the body is read:

1. refuses with 413 a Content-Length over the endpoint's limit (`body_limit`);
2. refuses with 429 a client whose address or network has already spent an endpoint's rate limit
   (`RATE_LIMITED`; only a peek: the view counts the attempt, so nothing is counted twice);
3. counts the bytes of a body sent without a length (chunked) and answers 413 the moment they pass the limit.

Behind it, in Django (and for any server that hands Django the body directly), `LimitedUploadHandler` stops
a multipart upload at ARENA_MAX_UPLOAD_BYTES while it is parsed, the views count the rate limits before they
parse a body (`arena.web.limits_enforce`), and `arena.web.request_payload` checks the length before reading.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import redis.exceptions
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.urls import Resolver404, resolve

from arena.errors import ArenaError
from arena.security_headers import security_headers
from voting.identity import client_ip
from voting.limits import (
    KINDS,
    RateLimited,
    Scope,
    address_key,
    address_scopes,
    limits_peek,
)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Endpoints (URL names) that take a file upload: only the battle start (an image-to-3D input image).
UPLOAD_ENDPOINTS = frozenset({"arena:battle-start"})
# Endpoints that cost something, and what: (limit kind in voting.limits.KINDS, units per call). A battle start
# and a continued turn each start two generations.
RATE_LIMITED: dict[str, tuple[tuple[str, int], ...]] = {
    "arena:battle-start": (("battle", 1), ("generation", 2)),
    "arena:battle-continue": (("generation", 2),),
    "arena:battle-regenerate": (("generation", 2),),  # both sides again
    "arena:battle-skip": (("vote", 1),),  # a verdict on the pair, recorded like a vote (not counted)
    "arena:vote": (("vote", 1),),  # counted by voting.gate, with the voter's own scope
}
ADMIN_LOGIN = "admin:login"
ADMIN_LOGIN_ACTION = ("admin-login", "sign-in attempts")


class PayloadTooLarge(ArenaError):
    status = 413
    code = "too_large"


def admin_login_scopes(ip: str | None) -> list[Scope]:
    """Per client address (the shared unknown one included), at ARENA_ADMIN_LOGIN_RATE."""
    return [Scope("ip", address_key(ip), settings.ARENA_ADMIN_LOGIN_RATE)]


def upload_limit() -> int:
    """A whole multipart battle start: the image plus room for the form's other fields."""
    return settings.ARENA_MAX_UPLOAD_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def body_limit(endpoint: str | None, content_type: str) -> int:
    """The most bytes a request body to `endpoint` may have: an upload's on the upload endpoint, otherwise
    Django's own limit for form fields and JSON (DATA_UPLOAD_MAX_MEMORY_SIZE, room for a full prompt)."""
    if endpoint in UPLOAD_ENDPOINTS and content_type.lower().startswith("multipart/form-data"):
        return upload_limit()
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large_message(limit: int) -> str:
    return f"The request body is larger than this endpoint accepts ({limit:,} bytes)."


class LimitedUploadHandler(FileUploadHandler):
    """First of FILE_UPLOAD_HANDLERS: stops a multipart parse once its files pass ARENA_MAX_UPLOAD_BYTES.

    The rest of the body is not read (StopUpload with connection_reset), the partial file is dropped, and
    `request.upload_refused` says why, for the view to answer 413 (arena.views._upload_read).
    """

    def handle_raw_input(self, *args: object, **kwargs: object) -> None:
        self.seen = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.seen += len(raw_data)
        limit = settings.ARENA_MAX_UPLOAD_BYTES
        if self.seen > limit:
            if self.request is not None:
                self.request.upload_refused = f"The uploaded file is too large; the limit is {limit:,} bytes."
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def _endpoint(path: str) -> str | None:
    try:
        return resolve(path).view_name
    except Resolver404:
        return None


def _path_info(scope: Message) -> str:
    """The path as the URL resolver sees it: without the prefix of a site mounted under a sub-path."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _headers(scope: Message) -> dict[str, str]:
    """Request headers by lower-case name; repeated ones joined with "," as Django joins them."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        found[name] = f"{found[name]},{value}" if name in found else value
    return found


def meta_of(scope: Message, headers: dict[str, str]) -> dict[str, str]:
    """What voting.identity.client_ip reads, as Django's ASGIRequest.META would hold it."""
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k in _ADDRESS_HEADERS}
    client = scope.get("client")
    if client:
        meta["REMOTE_ADDR"] = str(client[0])
    return meta


_ADDRESS_HEADERS = ("x-forwarded-for", "x-real-ip")


async def _spent(endpoint: str | None, method: str, meta: dict[str, str]) -> RateLimited | None:
    """The refusal a rate-limited endpoint would give this client's address right now, if any."""
    if method != "POST" or (endpoint not in RATE_LIMITED and endpoint != ADMIN_LOGIN):
        return None
    ip = client_ip(meta)
    if endpoint == ADMIN_LOGIN:
        action, noun = ADMIN_LOGIN_ACTION
        return await limits_peek(action=action, noun=noun, scopes=admin_login_scopes(ip))
    for kind, cost in RATE_LIMITED[endpoint]:
        spec = KINDS[kind]
        scopes = address_scopes(ip=ip, kind=kind)
        refusal = await limits_peek(action=spec.action, noun=spec.noun, scopes=scopes, cost=cost)
        if refusal is not None:
            return refusal
    return None


async def _spent_or_unknown(endpoint: str | None, method: str, meta: dict[str, str]) -> RateLimited | None:
    """_spent, or None when the counters cannot be read (Redis down): the request then reaches Django, whose
    own limit check meets the same outage and answers 503 with Retry-After, storing nothing."""
    try:
        return await _spent(endpoint, method, meta)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return None


async def _answer(send: Send, headers: dict[str, str], exc: ArenaError) -> None:
    """An error answered here, outside Django: JSON (plain text for a browser's form post), closing the
    connection so the unread body is not waited for."""
    accept = headers.get("accept", "")
    as_json = "application/json" in accept or "text/html" not in accept
    body = json.dumps({"error": exc.message, "code": exc.code}).encode() if as_json else exc.message.encode()
    extra = {**security_headers(), **exc.headers}
    response_headers = [
        (b"content-type", b"application/json" if as_json else b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"cache-control", b"no-store"),
        *((name.lower().encode(), value.encode("latin-1")) for name, value in extra.items()),
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware around Django's HTTP application (arena/asgi.py); see the module docstring."""

    def __init__(self, app: Callable[[Message, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        endpoint = _endpoint(_path_info(scope))
        limit = body_limit(endpoint, headers.get("content-type", ""))
        refusal = self._length_refusal(headers.get("content-length"), limit)
        if refusal is None:
            refusal = await _spent_or_unknown(endpoint, scope.get("method", ""), meta_of(scope, headers))
        if refusal is not None:
            await _answer(send, headers, refusal)
            return
        await self._pass(scope, receive, send, headers, limit)

    @staticmethod
    def _length_refusal(length: str | None, limit: int) -> ArenaError | None:
        if length is None:
            return None
        if not (length.isascii() and length.strip().isdigit()):
            return ArenaError("The Content-Length header is not a number.")
        if int(length) > limit:
            return PayloadTooLarge(too_large_message(limit))
        return None

    async def _pass(
        self, scope: Message, receive: Receive, send: Send, headers: dict[str, str], limit: int
    ) -> None:
        """Hand the request to Django, counting body bytes as they arrive (a chunked body has no length)."""
        state = {"seen": 0, "refused": False}

        async def counted_receive() -> Message:
            message = await receive()
            if message.get("type") == "http.request" and not state["refused"]:
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit:
                    state["refused"] = True
                    await _answer(send, headers, PayloadTooLarge(too_large_message(limit)))
                    return {"type": "http.disconnect"}  # Django drops the request without answering
            return message

        async def guarded_send(message: Message) -> None:
            if not state["refused"]:
                await send(message)

        await self.app(scope, counted_receive, guarded_send)
