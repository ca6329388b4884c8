"""The public read-only API (leaderboards, battle statistics, the OpenAPI document) and the staff export.

Views parse input, call one selector or service, and answer JSON errors as `{"error": ..., "code": ...}`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from arena.errors import InvalidInput, NotAllowed, NotFound
from arena.models import Modality
from arena.openapi import openapi_document
from arena.selectors import stats_public
from arena.web import json_errors
from ranking.publication import snapshot_data_public, snapshot_public
from voting import export
from voting.categories import board_labels

CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    # Under ASGI Django would otherwise read a sync iterator to the end into memory before sending a byte.
    step = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    try:
        while (chunk := await step()) is not None:
            yield chunk
    finally:
        # A client that hangs up leaves the export mid-transaction on the shared sync thread: end it there.
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()


def streaming_download(
    request: HttpRequest, chunks: Iterator[bytes], *, fmt: str, filename: str
) -> StreamingHttpResponse:
    body = _async_chunks(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


def _board_args(request: HttpRequest, modality: str) -> tuple[str, bool]:
    if modality not in Modality.values:
        raise NotFound(f"No leaderboard for {modality!r}; boards exist for {', '.join(Modality.values)}.")
    style = request.GET.get("style_control", "false").lower()
    if style not in ("true", "false", "1", "0"):
        raise InvalidInput("style_control must be true or false.")
    category = request.GET.get("category", "")
    # Checked before any query: an arbitrary string (a NUL byte, say) must be a 400, not a database error.
    boards = board_labels()
    if category and category not in boards:
        raise InvalidInput(f"Unknown category {category!r}; expected one of {', '.join(boards)}.")
    return category, style in ("true", "1")


@require_GET
@json_errors
def leaderboard(request: HttpRequest, modality: str) -> HttpResponse:
    category, style = _board_args(request, modality)
    snapshot = snapshot_public(modality=modality, category=category, style_control=style)
    if snapshot is None:
        raise NotFound("This leaderboard has not been published yet.")
    return JsonResponse(
        {
            "modality": modality,
            "category": category,
            "style_control": style,
            "created_at": snapshot.created_at.isoformat(),
            "n_votes": snapshot.n_votes,
            "frozen": snapshot.frozen,
            # Only models that may be named (arena.disclosure): unreleased ones are left out when read.
            **snapshot_data_public(snapshot.data),
        }
    )


@require_GET
def stats(request: HttpRequest) -> HttpResponse:
    return JsonResponse(stats_public())


@require_GET
def openapi(request: HttpRequest) -> HttpResponse:
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 1})


def export_allowed(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_staff and user.has_perm("arena.export_battle"))


@require_GET
@json_errors
def export_battles(request: HttpRequest, fmt: str) -> HttpResponse:
    """Staff only: battles and votes as a streamed download, filtered by the query parameters."""
    if not export_allowed(request):
        raise NotAllowed("Exports are for staff with the export permission.")
    if fmt not in export.FORMATS:
        raise NotFound(f"Unknown export format {fmt!r}; expected one of {', '.join(export.FORMATS)}.")
    spec = export.export_filter_clean(request.GET)
    return streaming_download(request, export.export_chunks(spec, fmt), fmt=fmt, filename="battles")
