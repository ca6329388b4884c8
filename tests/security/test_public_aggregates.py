"""Public aggregates, boards and thumbnails, case by case (the end-to-end diff is test_public_surfaces.py).

- Counts: /api/v1/stats counts voted battles only; a generating, ready or failed battle is in no count.
- Names: an unreleased model is left out of every board surface (the public API, the page and its JSON, the
  history, the pair matrices, exports, stats) while its votes stay in the fit; Rank (UB) is recounted among
  the models shown; releasing it shows it at once, with its votes, without a recompute or a cache to wait for.
- Thumbnails: a gallery output is public only on a showcase prompt, and not while a battle can show the same
  file or the same bytes; a battle output only once the battle is voted, of a released model, not hidden by
  the content filter.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable

import orjson
import pytest
from django.core.management import call_command
from django.test import Client

from arena.media import media_inspect, media_save
from arena.models import Battle, GalleryOutput, Generation, ModelEntry, Prompt, PromptSet
from arena.thumbnails import thumbnail_save
from ranking.models import LeaderboardSnapshot
from ranking.services import leaderboard_compute
from tests.support.media import png_bytes
from voting.models import Voter
from voting.services import vote_cast

pytestmark = pytest.mark.django_db

_voters = itertools.count()


def battle(a: ModelEntry, b: ModelEntry, status: str = "ready", **fields: object) -> Battle:
    voter = Voter.objects.create(session_hash=f"{next(_voters):064d}")
    made = Battle.objects.create(
        voter=voter, modality=a.modality, model_a=a, model_b=b, conversation=["hi"], status=status, **fields
    )
    for side, model in (("a", a), ("b", b)):
        done = status != "generating"
        Generation.objects.create(
            battle=made, turn=0, side=side, model=model, status="done" if done else "running", output="Fine."
        )
    return made


def voted(a: ModelEntry, b: ModelEntry, choice: str = "a", **fields: object) -> Battle:
    made = battle(a, b, **fields)
    vote_cast(code=made.code, voter=made.voter, choice=choice)
    made.refresh_from_db()
    return made


# --- counts -------------------------------------------------------------------------------------------------


def test_stats_count_voted_battles_only(client: Client, make_model, settings):
    settings.ARENA_PUBLIC_STATS_CACHE_SECONDS = 0
    a, b = make_model(), make_model()
    voted(a, b)

    def counts() -> tuple[dict, dict]:
        body = client.get("/api/v1/stats").json()
        return body["modalities"]["text"], {m["slug"]: m for m in body["models"]}

    before = counts()
    assert before[0] == {"battles": 1, "votes": 1, "counted_votes": 1}
    assert before[1][a.slug]["battles"] == 1
    for status in ("generating", "ready", "failed"):
        battle(a, b, status=status)
        assert counts() == before, f"a {status} battle moved a public count"
    voted(a, b, choice="b")
    after = counts()
    assert after[0]["battles"] == 2 and after[1][b.slug]["votes"] == 2


# --- names --------------------------------------------------------------------------------------------------


@pytest.fixture
def arena_with_secret(make_model, settings) -> tuple[list[ModelEntry], ModelEntry]:
    """Three released models and an unreleased one that beats them all; a published text board."""
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 1
    released = [make_model(slug=s, display_name=s.title()) for s in ("strong", "middle", "weak")]
    secret = make_model(slug="secret-x", display_name="Secret X", released=False)
    for i in range(90):  # secret wins 9 in 10 against each (a finite rating, clearly above strong's)
        voted(secret, released[i % 3], choice="b" if i // 3 % 10 == 0 else "a")
    for i in range(60):  # strong wins 4 in 5, middle 2 in 3
        voted(released[0], released[1 + i % 2], choice="a" if i % 5 else "b")
        voted(released[1], released[2], choice="a" if i % 3 else "b")
    leaderboard_compute(modality="text")
    return released, secret


def _public_texts(client: Client, capsysbinary: pytest.CaptureFixture[bytes]) -> dict[str, str]:
    capsysbinary.readouterr()
    call_command("export_leaderboard", "--format", "csv", stderr=io.StringIO())
    return {
        "export": capsysbinary.readouterr().out.decode(),
        "api": client.get("/api/v1/leaderboards/text").content.decode(),
        "page json": client.get("/api/leaderboard/text").content.decode(),
        "page": client.get("/leaderboard/text/").content.decode(),
        "stats": client.get("/api/v1/stats").content.decode(),
    }


def test_an_unreleased_model_is_named_on_no_board_surface(client: Client, arena_with_secret, capsysbinary):
    texts = _public_texts(client, capsysbinary)
    for surface, text in texts.items():
        assert "secret-x" not in text and "Secret X" not in text, surface
        assert "Strong" in text or "strong" in text, surface
    rows = list(csv.DictReader(io.StringIO(texts["export"])))
    assert rows and {r["slug"] for r in rows} == {"strong", "middle", "weak"}
    board = client.get("/api/leaderboard/text").json()
    assert board["snapshot"]["pairs"]["models"] == [r["slug"] for r in board["snapshot"]["models"]]
    assert len(board["snapshot"]["pairs"]["battles"]) == 3 and all(
        len(r) == 3 for r in board["snapshot"]["pairs"]["battles"]
    )
    assert all(set(point["ratings"]) <= {"strong", "middle", "weak"} for point in board["history"])
    assert all("model_id" not in row for row in board["snapshot"]["models"])


def test_rank_ub_is_counted_among_the_models_shown(client: Client, arena_with_secret):
    stored = LeaderboardSnapshot.objects.get(modality="text").data["models"]
    assert stored[0]["slug"] == "secret-x" and stored[1]["rank_ub"] > 1, (
        "the hidden model leads with confidence"
    )
    shown = client.get("/api/v1/leaderboards/text").json()["models"]
    assert shown[0]["slug"] == "strong" and shown[0]["rank_ub"] == 1
    established = [r["lower"] for r in shown if not r["provisional"]]
    for row in shown:
        assert row["rank_ub"] == 1 + sum(lower > row["upper"] for lower in established)
    # Ratings and intervals are the fit's, the hidden model's votes included.
    assert [r["rating"] for r in shown] == [r["rating"] for r in stored if r["slug"] != "secret-x"]


def test_a_release_names_the_model_at_once_with_its_votes(client: Client, arena_with_secret, capsysbinary):
    _, secret = arena_with_secret
    _public_texts(client, capsysbinary)  # every page rendered and cached while the model was unreleased
    secret.released = True
    secret.save(update_fields=["released"])
    for surface, text in _public_texts(client, capsysbinary).items():
        assert "secret-x" in text, surface
    row = client.get("/api/v1/leaderboards/text").json()["models"][0]
    assert (row["slug"], row["name"], row["battles"], row["rank_ub"]) == ("secret-x", "Secret X", 90, 1)
    stats = {m["slug"]: m for m in client.get("/api/v1/stats").json()["models"]}
    assert stats["secret-x"]["votes"] == 90


def test_a_model_renamed_while_unreleased_stays_hidden_in_boards_stored_before(
    client: Client, arena_with_secret, capsysbinary
):
    _, secret = arena_with_secret
    secret.slug, secret.display_name = "secret-y", "Secret Y"
    secret.save(update_fields=["slug", "display_name"])
    for surface, text in _public_texts(client, capsysbinary).items():
        assert "secret-" not in text and "Secret " not in text, surface
    secret.released = True
    secret.save(update_fields=["released"])
    row = client.get("/api/v1/leaderboards/text").json()["models"][0]
    assert (row["slug"], row["name"]) == ("secret-y", "Secret Y"), "a released model shows its current names"


def test_rows_stored_without_model_ids_are_matched_by_slug(client: Client, make_model):
    make_model(slug="hidden-one", released=False)
    rows = [
        {
            "slug": "hidden-one",
            "name": "Hidden One",
            "rating": 1100.0,
            "lower": 1090.0,
            "upper": 1110.0,
            "rank_ub": 1,
            "provisional": False,
        },
        {
            "slug": "gone-model",
            "name": "Gone",
            "rating": 1000.0,
            "lower": 990.0,
            "upper": 1010.0,
            "rank_ub": 2,
            "provisional": False,
        },
    ]
    LeaderboardSnapshot.objects.create(modality="text", data={"models": rows}, published=True)
    shown = client.get("/api/v1/leaderboards/text").json()["models"]
    assert [(r["slug"], r["rank_ub"]) for r in shown] == [("gone-model", 1)]


def test_staff_export_with_unreleased_keeps_every_row(arena_with_secret, tmp_path):
    call_command(
        "export_leaderboard",
        "--with-unreleased",
        "--output",
        str(tmp_path / "all.json"),
        stderr=io.StringIO(),
    )
    boards = orjson.loads((tmp_path / "all.json").read_bytes())
    assert "secret-x" in {r["slug"] for r in boards[0]["models"]}


# --- thumbnails ---------------------------------------------------------------------------------------------


@pytest.fixture
def stored(settings, tmp_path) -> Callable[[str], tuple[str, str]]:
    """A picture saved as an output and its thumbnail: (media name, thumbnail name)."""
    settings.MEDIA_ROOT = tmp_path / "media"

    def save(colour: str) -> tuple[str, str]:
        data = png_bytes(colour)
        info = media_inspect(data, format_hint="png")
        return media_save(data, info), thumbnail_save(data, info)

    return save


def _public(client: Client, thumbnail: str) -> bool:
    token = thumbnail.removeprefix("thumbs/").removesuffix(".png")
    response = client.get(f"/m/thumbs/{token}.png")
    assert response.status_code in (200, 404)
    return response.status_code == 200


def _gallery(model: ModelEntry, stored, *, showcase: bool, colour: str, sha: str = "") -> GalleryOutput:
    prompt_set, _ = PromptSet.objects.get_or_create(slug="g", defaults={"name": "G", "modality": "image"})
    prompt = Prompt.objects.create(
        prompt_set=prompt_set, text=colour, modality="image", gallery_key=colour, showcase=showcase
    )
    media, thumb = stored(colour)
    return GalleryOutput.objects.create(
        prompt=prompt,
        model=model,
        media_name=media,
        media_format="png",
        media_kind="image",
        thumbnail_name=thumb,
        sha256=sha or colour.ljust(64, "0"),
    )


def _shown_in(made: Battle, output: GalleryOutput) -> None:
    """The battle's side A shows this gallery output (as the worker records a gallery side)."""
    made.generations.filter(side="a").update(
        media_name=output.media_name, thumbnail_name=output.thumbnail_name, media_format="png"
    )


def test_a_gallery_output_in_play_never_becomes_public_even_after_its_battle_is_voted(
    client, make_model, stored
):
    a = make_model(modality="image", backend_kind="gallery")
    b = make_model(modality="image", backend_kind="gallery")
    in_play = _gallery(a, stored, showcase=False, colour="red")
    made = battle(a, b, prompt=in_play.prompt)
    _shown_in(made, in_play)
    assert not _public(client, in_play.thumbnail_name)
    vote_cast(code=made.code, voter=made.voter, choice="a")
    assert not _public(client, in_play.thumbnail_name), "later battles on this prompt show the same picture"
    from arena.selectors import model_thumbnails

    assert model_thumbnails([a.id]) == {}


def test_a_showcase_output_is_public_unless_a_battle_can_show_it(client, make_model, stored):
    a, b = make_model(modality="image"), make_model(modality="image")
    showcase = _gallery(a, stored, showcase=True, colour="blue")
    assert _public(client, showcase.thumbnail_name)
    # An unvoted battle still shows the same file (the prompt was a battle prompt when it started).
    made = battle(a, b)
    _shown_in(made, showcase)
    assert not _public(client, showcase.thumbnail_name)
    vote_cast(code=made.code, voter=made.voter, choice="a")
    assert _public(client, showcase.thumbnail_name)
    # The same bytes are in play under another, non-showcase prompt.
    _gallery(a, stored, showcase=False, colour="green", sha=showcase.sha256)
    assert not _public(client, showcase.thumbnail_name)


def test_a_battle_output_is_public_once_voted_and_only_of_a_released_unflagged_model(
    client, make_model, stored
):
    a, b = make_model(modality="image"), make_model(modality="image", released=False)
    made = battle(a, b)
    thumbs = {}
    for side, colour in (("a", "yellow"), ("b", "purple")):
        media, thumbs[side] = stored(colour)
        made.generations.filter(side=side).update(media_name=media, thumbnail_name=thumbs[side])
    assert not _public(client, thumbs["a"]) and not _public(client, thumbs["b"])
    vote_cast(code=made.code, voter=made.voter, choice="a")
    assert _public(client, thumbs["a"])
    assert not _public(client, thumbs["b"]), "an unreleased model's output is not public"
    made.generations.filter(side="a").update(flagged=True)
    assert not _public(client, thumbs["a"]), "an output the content filter hid is not public"
