"""Leaderboard pages and their JSON endpoint."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET

from arena.disclosure import public_names
from arena.errors import InvalidInput, NotFound
from arena.models import Modality
from arena.web import json_errors
from ranking.publication import snapshot_public_id
from ranking.selectors import BOARD_CACHE_SECONDS, board_categories, board_page_key, board_payload
from voting.categories import board_labels

# The page's charts, in order; each is drawn from the board's JSON with a data table behind it.
CHARTS = [
    {"key": "ratings", "caption": "Ratings with 95% confidence intervals"},
    {"key": "history", "caption": "Rating history"},
    {"key": "winrate", "caption": "Win rate of row model against column model"},
    {"key": "battles", "caption": "Battles per pair"},
]


def _board_args(request: HttpRequest, modality: str) -> tuple[str, bool]:
    if modality not in Modality.values:
        raise NotFound(f"No leaderboard for {modality!r}; boards exist for {', '.join(Modality.values)}.")
    category = request.GET.get("category", "")
    boards = board_labels()
    if category and category not in boards:
        raise InvalidInput(f"Unknown category {category!r}; expected one of {', '.join(boards)}.")
    style = request.GET.get("style", "0")
    if style not in ("0", "1"):
        raise InvalidInput("style must be 0 or 1.")
    if style == "1" and modality != Modality.TEXT:
        # Style control adjusts for answer length and markdown: an image or 3D output has neither.
        raise InvalidInput(
            "Style control applies to text boards only (it adjusts for answer length and markdown)."
        )
    return category, style == "1"


@require_GET
def leaderboard_home(request: HttpRequest) -> HttpResponse:
    return redirect("ranking:leaderboard", modality=Modality.TEXT)


@require_GET
def leaderboard_page(request: HttpRequest, modality: str) -> HttpResponse:
    try:
        category, style = _board_args(request, modality)
    except (InvalidInput, NotFound) as exc:
        context = {"error": exc.message}
        if modality in Modality.values:
            context |= {
                "error_link": reverse("ranking:leaderboard", kwargs={"modality": modality}),
                "error_link_text": f"The {Modality(modality).label} leaderboard",
            }
        return render(request, "ranking/leaderboard.html", context, status=exc.status)
    # The page holds nothing personal (no form, no token): one rendering serves every visitor until the
    # public snapshot or the public names change (the key names both) or BOARD_CACHE_SECONDS pass.
    snapshot_id = snapshot_public_id(modality=modality, category=category, style_control=style)
    names = public_names()
    board = {"modality": modality, "category": category, "style_control": style}
    key = board_page_key(snapshot_id=snapshot_id, names=names, **board)
    html = cache.get(key)
    if html is None:
        present = board_categories(modality)
        payload = board_payload(snapshot_id=snapshot_id, names=names, **board)
        context = {
            "payload": payload,
            "modality": modality,
            "modality_label": Modality(modality).label,
            "modalities": Modality.choices,
            "categories": [(k, label) for k, label in board_labels().items() if k in present],
            "style_control_offered": modality == Modality.TEXT,
            "charts": CHARTS,
        }
        html = render_to_string("ranking/leaderboard.html", context)
        cache.set(key, html, BOARD_CACHE_SECONDS)
    return HttpResponse(html)


@require_GET
@json_errors
def leaderboard_json(request: HttpRequest, modality: str) -> HttpResponse:
    category, style = _board_args(request, modality)
    return JsonResponse(board_payload(modality=modality, category=category, style_control=style))
