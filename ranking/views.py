"""Leaderboard pages and their JSON endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from arena.errors import InvalidInput, NotFound
from arena.models import Modality
from arena.web import json_errors
from ranking.selectors import board_categories, board_payload
from voting.categories import board_labels


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
    return category, style == "1"


@require_GET
def leaderboard_home(request: HttpRequest) -> HttpResponse:
    return redirect("ranking:leaderboard", modality=Modality.TEXT)


@require_GET
def leaderboard_page(request: HttpRequest, modality: str) -> HttpResponse:
    try:
        category, style = _board_args(request, modality)
    except (InvalidInput, NotFound) as exc:
        return render(request, "ranking/leaderboard.html", {"error": exc.message}, status=exc.status)
    present = board_categories(modality)
    context = {
        "payload": board_payload(modality=modality, category=category, style_control=style),
        "modality": modality,
        "modality_label": Modality(modality).label,
        "modalities": Modality.choices,
        "categories": [(key, label) for key, label in board_labels().items() if key in present],
    }
    return render(request, "ranking/leaderboard.html", context)


@require_GET
@json_errors
def leaderboard_json(request: HttpRequest, modality: str) -> HttpResponse:
    category, style = _board_args(request, modality)
    return JsonResponse(board_payload(modality=modality, category=category, style_control=style))
