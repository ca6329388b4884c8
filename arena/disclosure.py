"""What anyone outside staff may see of a battle and of a model before the battle's vote.

ARCHITECTURE.md rule 4: a model's identity never reaches anyone before the vote, by any channel. This module
is the one place those decisions are made; every path that serves battle data asks it instead of deciding:

- the battle page, its JSON and its websocket events (what a side's state holds, which failure text is shown);
- media files and thumbnails (which stored outputs may be public);
- public aggregates: stats, boards, history, exports of the public API (which models may be named, which
  battles may be counted).

The rules, each with the class of side channel it closes:

- **Names**: a model is named in public only when it is released; an unreleased model is tested anonymously
  and its votes still count once it is released (counts by name would otherwise show that it exists). Boards
  keep every model and are filtered when read (PublicNames): rows, pair matrices, history, thumbnails, stats,
  exports; Rank (UB) is recounted among the rows shown. Cached renderings are keyed on PublicNames.version.
- **Counts**: public aggregates count only voted battles (countable_battles). A battle in progress is not
  counted anywhere public, so diffing a counter, a cache header or a rendering before and after starting one
  tells nothing (tests/security/test_public_surfaces.py diffs every public endpoint).
- **Errors**: a voter sees a neutral failure text chosen by the *kind* of failure (voter_side_error, and the
  websocket's "failed" event), never the backend's own words (context-length limits, key names and server
  banners fingerprint a model). Staff (the admin's battle review) and logs keep the detail
  (Generation.error_detail). A prompt a model refuses (kind INPUT) fails the battle without counting against
  the model.
- **Outputs**: a stored output becomes public (a thumbnail) only when no battle can show it again: a generated
  output once its battle is voted, a gallery output only on a showcase prompt (public_generations,
  public_gallery_outputs).
- **File bytes**: a voter is served a stored file's bytes, so every file is rewritten before it is stored
  (arena.media.media_accept: outputs, gallery files, uploads): images encoded again from their pixels, glTF
  without generator, extras, names or unknown keys, OBJ and PLY without comments or telling names, .spz
  without gzip header fields. The vote's identity-leak check also reads what metadata a stored file still
  carries (voting.leak.generations_leak_find): a file that names a model voids the vote.
- **Timing and order**: what a voter's browser can time names a model as well as its words do. Text is
  paced (workers/pacing.py): published on a fixed tick in equal chunks, both sides' first chunks held until
  both have one, a finished side kept at pace until the other side's model is done, the database written
  only with what the page was shown. Image and 3D sides are shown together (outputs_shown): a side that
  finished first looks unfinished, on the websocket, in the page's JSON and at its file's URL, until both
  are done; both show one shared progress fraction in coarse steps. File sizes follow from the rewritten
  bytes (above): they tell what the picture shows, not which encoder made it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from arena.models import Battle, GalleryOutput, Generation, ModelEntry


# --- Names --------------------------------------------------------------------------------------------------


def model_public(model: ModelEntry) -> bool:
    """Whether this model may be named on anything public (boards, stats, history, the public API)."""
    return bool(model.released)


def public_models() -> QuerySet[ModelEntry]:
    """The models that may be named in public."""
    from arena.models import ModelEntry

    return ModelEntry.objects.filter(released=True)


# Public names are read on every board page: kept per models_version() (any model save bumps it), and at most
# this long should a model ever change without a save (a queryset .update()).
_NAMES_TTL = 60
# What a board row says about its model; read from the model itself, so a rename or a release shows at once.
NAME_FIELDS = ("slug", "name", "organization", "license", "demo")


@dataclass(frozen=True)
class PublicNames:
    """Who may be named in public right now. Boards are stored with every model that has votes (an unreleased
    model's votes must still count, or the ratings of the others would be wrong) and filtered here when read:
    releasing a model shows it on every board and in the history without a recompute."""

    shown: dict[int, dict[str, Any]]  # released model id -> its NAME_FIELDS
    hidden_ids: frozenset[int]
    hidden_slugs: frozenset[str]

    @property
    def version(self) -> str:
        """Changes when any public name or the hidden set changes: part of the key of any cached rendering."""
        text = repr((sorted(self.shown.items()), sorted(self.hidden_ids)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def row(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """A stored board row as the public may see it, or None when its model may not be named.

        Rows carry the model's id (`model_id`, never shown): an unknown id (a model since deleted) is left
        out, as nothing says it was ever public. Rows stored before ids were kept are matched by slug."""
        model_id = row.get("model_id")
        public = {k: v for k, v in row.items() if k != "model_id"}
        if model_id is None:
            return None if row.get("slug") in self.hidden_slugs else public
        current = self.shown.get(model_id)
        return None if current is None else {**public, **current}


def public_names() -> PublicNames:
    """The current PublicNames (cached; see _NAMES_TTL)."""
    from django.core.cache import cache

    from arena.selectors import models_version

    key = f"arena:public-names:{models_version()}"
    names = cache.get(key)
    if names is None:
        names = _public_names_load()
        cache.set(key, names, _NAMES_TTL)
    return names


def _public_names_load() -> PublicNames:
    from arena.models import ModelEntry

    shown: dict[int, dict[str, Any]] = {}
    hidden_ids, hidden_slugs = set(), set()
    for model in ModelEntry.objects.only(
        "id", "slug", "display_name", "organization", "license", "released", "backend_kind", "backend_config"
    ):
        if model_public(model):
            fields = (model.slug, model.display_name, model.organization, model.license, model.is_demo)
            shown[model.id] = dict(zip(NAME_FIELDS, fields, strict=True))
        else:
            hidden_ids.add(model.id)
            hidden_slugs.add(model.slug)
    return PublicNames(shown, frozenset(hidden_ids), frozenset(hidden_slugs))


# --- Counts -------------------------------------------------------------------------------------------------


def battle_countable(battle: Battle) -> bool:
    """Whether a battle may be counted in public aggregates: only once it is voted."""
    from arena.models import Battle

    return battle.status == Battle.Status.VOTED


def countable_battles() -> QuerySet[Battle]:
    """The battles public aggregates may count (battle_countable as a query): a generating, ready, failed or
    abandoned battle is in nobody's count, so starting one moves no public number."""
    from arena.models import Battle

    return Battle.objects.filter(status=Battle.Status.VOTED)


# --- Thumbnails ---------------------------------------------------------------------------------------------
# A thumbnail is public only when no battle can show its output again, and only of a model that may be named.
# Generated outputs belong to one battle: public once it is voted. Gallery outputs are shown by every battle
# on their prompt: only those of showcase prompts (kept out of battles) are public, and not while an unvoted
# battle still shows the same file or a battle prompt holds the same bytes.


def public_gallery_outputs() -> QuerySet[GalleryOutput]:
    """Gallery outputs whose thumbnails anyone may see."""
    from django.db.models import Exists, OuterRef

    from arena.models import Battle, GalleryOutput, Generation

    in_play = GalleryOutput.objects.filter(sha256=OuterRef("sha256"), prompt__showcase=False)
    shown_unvoted = Generation.objects.filter(media_name=OuterRef("media_name")).exclude(
        battle__status=Battle.Status.VOTED
    )
    return (
        GalleryOutput.objects.filter(prompt__showcase=True, model__released=True)
        .exclude(thumbnail_name="")
        .exclude(Exists(in_play))
        .exclude(Exists(shown_unvoted))
    )


def public_generations() -> QuerySet[Generation]:
    """Battle outputs whose thumbnails anyone may see: voted, not hidden by the content filter, of a released
    model, and not a gallery output (a gallery battle shows the gallery's own file, which later battles on the
    same prompt show again)."""
    from django.db.models import Exists, OuterRef

    from arena.models import Battle, GalleryOutput, Generation

    gallery_file = GalleryOutput.objects.filter(media_name=OuterRef("media_name"))
    return (
        Generation.objects.filter(battle__status=Battle.Status.VOTED, flagged=False, model__released=True)
        .exclude(thumbnail_name="")
        .exclude(Exists(gallery_file))
    )


# --- Errors -------------------------------------------------------------------------------------------------


class FailureKind(StrEnum):
    """Why a side failed, as far as a voter may know; staff keep the detail (Generation.error_detail)."""

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


def voter_side_error(generation: Generation) -> str:
    """What the battle page and its JSON show as a side's error: "" unless it failed, else the text for its
    kind. Computed from the kind, never read from a stored text, so no writer can leak a backend's words."""
    from arena.models import Generation

    if generation.status != Generation.Status.FAILED:
        return ""
    return voter_failure_text(generation.failure_kind)


# --- Timing and order -------------------------------------------------------------------------------------


def outputs_shown(battle: Battle) -> bool:
    """Whether the page may show the finished sides of a battle's last turn as finished. While an image or 3D
    battle generates, a side that finished first waits for the other (ARENA_MEDIA_REVEAL_TOGETHER): its done
    state, its file and its file's URL appear for both sides at once, so which model is faster is on no
    channel. Text sides stream; their pace is normalised instead (workers/pacing.py)."""
    from django.conf import settings

    from arena.models import Battle, Modality

    return (
        battle.modality == Modality.TEXT
        or not settings.ARENA_MEDIA_REVEAL_TOGETHER
        or battle.status != Battle.Status.GENERATING
    )


def side_state_held(side: dict[str, Any]) -> dict[str, Any]:
    """A side's page state while outputs_shown is False: a finished side reads as still generating."""
    if side.get("status") != "done":
        return side
    return {**side, "status": "running", "output": "", "media": None, "progress": None, "flagged": False}
