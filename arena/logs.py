"""Log lines for people (text) or for log pipelines (one JSON object per line), chosen by ARENA_LOG_FORMAT.

A JSON line holds `time` (UTC, ISO 8601), `level`, `logger`, `message`, and whatever is known about the work
that wrote it: `request_id` (the request's X-Request-ID, or a new one) and `battle` (the battle code in the
URL) in the web process, `task` and `task_id` in a Celery worker; `exc` holds a traceback. Web responses carry
X-Request-ID back, so a user's report can be matched to the server's lines.

Wiring (see settings.LOGGING and settings.MIDDLEWARE): the handler's formatter is JsonFormatter or the plain
one, its ContextFilter adds the fields, RequestContextMiddleware sets them per request. Nothing here imports
Django models: settings' logging configuration imports this module.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # settings import this module: nothing that reads settings is imported at load time
    from django.http import HttpRequest, HttpResponse

_request_id: ContextVar[str] = ContextVar("arena_request_id", default="")
_battle: ContextVar[str] = ContextVar("arena_battle", default="")
_task: ContextVar[tuple[str, str]] = ContextVar("arena_task", default=("", ""))

CONTEXT_FIELDS = ("request_id", "battle", "task", "task_id")
# An incoming X-Request-ID (from a proxy that already made one) is kept only when it is short and plain.
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def log_context(*, battle: str | None = None) -> None:
    """Name the battle the current request or task works on, for every line it logs from here on."""
    if battle is not None:
        _battle.set(battle)


def _context_clear(**_: object) -> None:
    _request_id.set("")
    _battle.set("")


class ContextFilter(logging.Filter):
    """Adds request_id, battle, task and task_id to every record (empty where unknown), so that both
    formatters (and any `%(request_id)s` format) can use them."""

    def filter(self, record: logging.LogRecord) -> bool:
        task, task_id = _task.get()
        known = {"request_id": _request_id.get(), "battle": _battle.get(), "task": task, "task_id": task_id}
        for name, value in known.items():
            if not getattr(record, name, ""):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields that are unknown are left out rather than sent empty."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, "")
            if value:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class RequestContextMiddleware:
    """Gives each request an id (the client's or proxy's X-Request-ID when plain, else a new one), names the
    battle its URL points at, and returns the id in the X-Request-ID response header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from django.core import signals

        self.get_response = get_response
        # Cleared when the response is done, after Django has logged it: a worker thread serving the next
        # request must not inherit this one's id.
        signals.request_finished.connect(_context_clear, dispatch_uid="arena.logs.context_clear")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        _request_id.set(request_id)
        _battle.set("")
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response

    def process_view(self, request: HttpRequest, view: object, args: object, kwargs: dict[str, Any]) -> None:
        code = kwargs.get("code")
        if isinstance(code, str):
            _battle.set(code)


def _task_started(task_id: str | None = None, task: Any = None, **_: object) -> None:
    _task.set((getattr(task, "name", "") or "", task_id or ""))


def _task_finished(**_: object) -> None:
    _task.set(("", ""))
    _battle.set("")


def _celery_keeps_django_logging(**_: object) -> None:
    """Connected only in JSON mode: a receiver here tells Celery not to install its own text handlers, so
    the worker's lines go through settings.LOGGING like the web's."""


def celery_hooks_install(log_format: str) -> None:
    from celery import signals as celery_signals

    celery_signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="arena.logs.task_started")
    celery_signals.task_postrun.connect(_task_finished, weak=False, dispatch_uid="arena.logs.task_finished")
    if log_format == "json":
        celery_signals.setup_logging.connect(
            _celery_keeps_django_logging, weak=False, dispatch_uid="arena.logs.keep_django_logging"
        )


def logging_config(*, log_format: str, level: str, celery_level: str) -> dict[str, Any]:
    """settings.LOGGING for the chosen format: one console handler, the context filter on it."""
    celery_hooks_install(log_format)
    if log_format == "json":
        logging.captureWarnings(True)  # Python warnings become records (py.warnings), not loose stderr text
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
            "json": {"()": "arena.logs.JsonFormatter"},
        },
        "filters": {"context": {"()": "arena.logs.ContextFilter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "plain",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "celery": {"level": celery_level},
            "httpx": {"level": "WARNING"},  # one INFO line per model-server request is noise
            "kombu.connection": {"level": "ERROR"},
        },
    }
