"""What anyone outside staff may see of a battle and of a model before the battle's vote.

ARCHITECTURE.md rule 4: a model's identity never reaches anyone before the vote, by any channel. This module is the
one place those decisions are made; every path that serves battle data asks it instead of deciding for itself:

- the battle page, its JSON and its websocket events (what a side's state holds, which failure text is shown);
- media files and thumbnails (which stored outputs may be public);
- public aggregates: stats, boards, history, exports of the public API (which models may be named, which battles
  may be counted).

The rules, each with the class of side channel it closes:

- **Names**: a model is named in public only when it is released; an unreleased model is tested anonymously and
  its votes still count once it is released (counts by name would otherwise show that it exists).
- **Counts**: public aggregates count only voted battles. A battle in progress is not counted anywhere public, so
  diffing a counter before and after starting one tells nothing.
- **Errors**: a voter sees a neutral failure text chosen by the *kind* of failure, never the backend's own words
  (context-length limits, key names and server banners fingerprint a model). Staff and logs keep the detail.
- **Outputs**: a stored output becomes public (a thumbnail) only when no battle can show it again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from arena.models import Battle, ModelEntry


# --- Names -----------------------------------------------------------------------------------------------------


def model_public(model: ModelEntry) -> bool:
    """Whether this model may be named on anything public (boards, stats, history, the public API)."""
    return bool(model.released)


def public_models() -> QuerySet[ModelEntry]:
    """The models that may be named in public."""
    from arena.models import ModelEntry

    return ModelEntry.objects.filter(released=True)


# --- Counts ----------------------------------------------------------------------------------------------------


def battle_countable(battle: Battle) -> bool:
    """Whether a battle may be counted in public aggregates: only once it is voted."""
    from arena.models import Battle

    return battle.status == Battle.Status.VOTED


# --- Errors ----------------------------------------------------------------------------------------------------


class FailureKind(StrEnum):
    """Why a side failed, as far as a voter may know. The detail stays with staff (Generation.error_detail)."""

    INPUT = "input"  # this prompt cannot be answered (too long for the model, refused by its server)
    TIMEOUT = "timeout"  # the side took too long
    UNAVAILABLE = "unavailable"  # the model or its worker failed
    EMPTY = "empty"  # the model answered with nothing usable


# One text per kind, the same for every model: the words are the only thing the voter sees of a failure.
FAILURE_TEXTS: dict[FailureKind, str] = {
    FailureKind.INPUT: (
        "This prompt could not be answered by one of the models. Try a shorter or different prompt."
    ),
    FailureKind.TIMEOUT: "One of the models took too long to answer. Please start a new battle.",
    FailureKind.UNAVAILABLE: "One of the models could not answer right now. Please start a new battle.",
    FailureKind.EMPTY: "One of the models returned no usable answer. Please start a new battle.",
}


def voter_failure_text(kind: FailureKind | str) -> str:
    """The neutral text a voter sees for a failed side (an unknown kind reads as 'unavailable')."""
    try:
        return FAILURE_TEXTS[FailureKind(kind)]
    except ValueError:
        return FAILURE_TEXTS[FailureKind.UNAVAILABLE]
