"""The boards as a visitor meets them, in Chromium: no sideways scrolling at phone, tablet and desktop widths
with a hostile 300-character model name, small thumbnails, sortable headers by keyboard, and every chart with
an accessible name and a data table behind it."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from arena.media import media_inspect
from arena.models import Battle, Generation, ModelEntry
from arena.thumbnails import thumbnail_save
from ranking.models import LeaderboardSnapshot
from ranking.services import leaderboard_refresh
from tests.browser.conftest import screenshot
from tests.support.media import glb_bytes, png_bytes
from voting.models import Voter
from voting.services import vote_cast

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_NAME = "Hyper" + "x" * 190 + "Model"  # the longest display name a model may have, without a space
LONG_ORG = "Org" + "o" * 197
WIDTHS = {390: 844, 768: 1024, 1366: 900}


def _battle(modality: str, a: ModelEntry, b: ModelEntry, prompt: str, kind: str, meta: dict) -> Battle:
    voter = Voter.objects.create(session_hash=f"crowd-{random.random()}")
    battle = Battle.objects.create(
        voter=voter, modality=modality, model_a=a, model_b=b, conversation=[prompt], status="ready"
    )
    for side, model in (("a", a), ("b", b)):
        Generation.objects.create(
            battle=battle,
            turn=0,
            side=side,
            model=model,
            status="done",
            output="" if kind else "Fine.",
            media_kind=kind,
            media_meta=meta,
        )
    return battle


def _votes(modality: str, models: list[ModelEntry], n: int, *, seed: int = 0) -> None:
    """n votes by Bradley-Terry on falling skills; text prompts alternate into the coding board, 3D outputs
    are untextured meshes (a format board) and image/3D votes judge one criterion too."""
    rng = random.Random(seed)
    kind, meta = {"text": ("", {}), "image": ("image", {}), "3d": ("mesh", {"textured": False})}[modality]
    criteria = {"image": {"alignment": "a"}, "3d": {"geometry": "a"}}.get(modality)
    for k in range(n):
        a, b = rng.sample(models, 2)
        gap = models.index(b) - models.index(a)
        won = rng.random() < 1 / (1 + 10 ** (-gap * 80 / 400))
        prompt = "def f(): return 1" if modality == "text" and k % 2 else "a small red object"
        battle = _battle(modality, a, b, prompt, kind, meta)
        vote_cast(code=battle.code, voter=battle.voter, choice="a" if won else "b", criteria=criteria)


def _thumbnails(modality: str, models: list[ModelEntry]) -> None:
    """A public thumbnail (a voted battle's output) for each model: a picture or a rendered mesh."""
    colours = ["red", "green", "blue", "orange", "purple"]
    for i, model in enumerate(models):
        if modality == "image":
            data, fmt = png_bytes(colours[i % 5], size=(512, 320)), "png"
        else:
            data, fmt = glb_bytes("box" if i % 2 else "sphere", (40 * i, 120, 200 - 30 * i)), "glb"
        name = thumbnail_save(data, media_inspect(data, format_hint=fmt))
        gen = Generation.objects.filter(model=model, battle__status="voted").order_by("id").first()
        Generation.objects.filter(id=gen.id).update(thumbnail_name=name)


def _spread_history() -> None:
    """Each board's snapshots a day and some hours apart (oldest first): a real time axis to draw."""
    now = timezone.now()
    seen: dict[tuple, int] = {}
    for snap in LeaderboardSnapshot.objects.order_by("-created_at", "-id"):
        i = seen[snap.modality, snap.category, snap.style_control] = (
            seen.get((snap.modality, snap.category, snap.style_control), -1) + 1
        )
        LeaderboardSnapshot.objects.filter(id=snap.id).update(created_at=now - timedelta(days=i, hours=5 * i))


def _boards_make(make_model, modalities: tuple[str, ...]) -> dict[str, list[ModelEntry]]:
    """Boards of these modalities, each with a model named by a 200-character word and a few snapshots."""
    made: dict[str, list[ModelEntry]] = {}
    for modality in modalities:
        names = ["Alpha", "Beta", LONG_NAME, "Gamma"]
        made[modality] = [
            make_model(
                slug=f"{modality}-{i}" + ("-" + "s" * 90 if name == LONG_NAME else ""),
                display_name=name,
                modality=modality,
                organization=LONG_ORG if name == LONG_NAME else "Lab",
                license="L" * 100 if name == LONG_NAME else "Apache-2.0",
            )
            for i, name in enumerate(names)
        ]
        for round_ in range(3):
            _votes(modality, made[modality], 16, seed=round_)
            leaderboard_refresh(modality=modality)
        if modality != "text":
            _thumbnails(modality, made[modality])
    _spread_history()
    return made


@pytest.fixture
def board_settings(settings, tmp_path):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 3
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


BOARD_PAGES = [
    "/leaderboard/text/",
    "/leaderboard/text/?category=coding",
    "/leaderboard/text/?style=1",
    "/leaderboard/image/",
    "/leaderboard/image/?category=criterion:alignment",
    "/leaderboard/3d/",
    "/leaderboard/3d/?category=format:untextured",
    "/leaderboard/3d/?category=criterion:geometry",
]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def _watch(page) -> list[str]:
    """Script errors and console errors of the page, collected for the test's last assertion."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def _open(page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#plot-ratings svg")).to_be_visible()
    expect(page.locator("#board tbody tr")).to_have_count(4)


def _overflow(page) -> dict:
    return page.evaluate(
        """() => ({page: document.documentElement.scrollWidth, viewport: innerWidth,
                   table: document.querySelector('.board-scroll').scrollWidth,
                   tableBox: document.querySelector('.board-scroll').clientWidth})"""
    )


def _serious_axe_violations(page) -> list[dict]:
    # Evaluated through the devtools protocol, so the page's script policy does not apply to the test's axe.
    page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .filter((v) => ['serious', 'critical'].includes(v.impact))
             .map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' '))}))"""
    )
    return found


def _clipped_chart_text(page) -> list[str]:
    """Texts of every chart that reach outside their SVG (a clipped label)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.plot svg')].flatMap((svg) => {
             const box = svg.getBoundingClientRect();
             return [...svg.querySelectorAll('text')].filter((t) => {
               const r = t.getBoundingClientRect();
               return r.width && (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1
                                  || r.bottom > box.bottom + 1);
             }).map((t) => `${svg.parentElement.id}: ${t.textContent.slice(0, 40)}`);
           })"""
    )


def _overlapping(page, selector: str) -> list[str]:
    return page.evaluate(
        """(selector) => {
             const boxes = [...document.querySelectorAll(selector)].map((t) => [t.textContent.slice(0, 20),
                                                                              t.getBoundingClientRect()]);
             const out = [];
             boxes.forEach(([a, p], i) => boxes.slice(i + 1).forEach(([b, q]) => {
               const hit = p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom;
               if (hit) out.push(a + ' / ' + b);
             }));
             return out;
           }""",
        selector,
    )


def test_no_board_page_scrolls_sideways_on_a_phone_a_tablet_or_a_desktop(
    make_model, board_settings, asgi_server, browser
):
    _boards_make(make_model, ("text", "image", "3d"))
    for width, height in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        errors = _watch(page)
        for path in BOARD_PAGES:
            _open(page, asgi_server.url + path)
            sizes = _overflow(page)
            assert sizes["page"] <= sizes["viewport"], (width, path, sizes)
            assert LONG_NAME in page.locator("#board tbody").inner_text().replace("\n", "")
            assert not _clipped_chart_text(page), (width, path, _clipped_chart_text(page))
            if width == 390:  # the table scrolls inside its own box
                assert sizes["table"] > sizes["tableBox"], sizes
            if width in (390, 1366) and "?" not in path:
                screenshot(page, f"boards-{path.split('/')[2]}-{width}")
                assert not _serious_axe_violations(page), (width, path)
        context.close()
        assert not errors


def test_thumbnails_are_small_and_the_style_toggle_is_only_on_text_boards(
    make_model, board_settings, asgi_server, page
):
    _boards_make(make_model, ("3d",))
    errors = _watch(page)
    _open(page, asgi_server.url + "/leaderboard/3d/")
    thumbs = page.locator("img.board-thumb")
    expect(thumbs).to_have_count(4)
    for box in (thumbs.nth(i).bounding_box() for i in range(4)):
        assert box["width"] <= 48 and box["height"] <= 48, box
    short_row = page.locator("#board tbody tr", has_text="Alpha").bounding_box()
    assert short_row["height"] < 80, short_row
    expect(page.locator("#style")).to_have_count(0)
    expect(page.get_by_text("Style control")).to_have_count(0)

    response = page.goto(asgi_server.url + "/leaderboard/3d/?style=1")
    assert response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("Style control applies to text boards only")
    api = page.request.get(asgi_server.url + "/api/leaderboard/3d?style=1")
    assert api.status == 400 and "text boards only" in api.json()["error"]
    page.get_by_role("link", name="The 3D leaderboard").click()
    expect(page).to_have_url(asgi_server.url + "/leaderboard/3d/")
    page.goto(asgi_server.url + "/leaderboard/text/")
    expect(page.locator("#style")).to_have_count(1)
    assert [e for e in errors if "400" not in e] == []  # the refused board's own 400 aside


def test_a_keyboard_reaches_the_column_buttons_and_sorts_with_enter(
    make_model, board_settings, asgi_server, page
):
    models = _boards_make(make_model, ("text",))["text"]
    errors = _watch(page)
    _open(page, asgi_server.url + "/leaderboard/text/")
    rating = page.get_by_role("button", name="Rating")
    for _ in range(40):
        page.keyboard.press("Tab")
        if rating.evaluate("(b) => b === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the Rating column's button")
    header = page.locator("th", has=rating)
    expect(header).not_to_have_attribute("aria-sort", re.compile("."))
    page.keyboard.press("Enter")
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(page.locator("th[aria-sort]")).to_have_count(1)
    expect(page.locator("#sort-status")).to_have_text("Sorted by Rating, descending.")
    ratings = [int(t) for t in page.locator("#board tbody td:nth-child(3)").all_inner_texts()]
    assert ratings == sorted(ratings, reverse=True)
    page.keyboard.press("Enter")
    expect(header).to_have_attribute("aria-sort", "ascending")
    ratings = [int(t) for t in page.locator("#board tbody td:nth-child(3)").all_inner_texts()]
    assert ratings == sorted(ratings)
    page.keyboard.press("Shift+Tab")  # back to Model: Space works as well as Enter
    page.keyboard.press("Space")
    expect(page.locator("th", has=page.get_by_role("button", name="Model"))).to_have_attribute(
        "aria-sort", "ascending"
    )
    first = sorted(m.display_name for m in models)[0]
    expect(page.locator("#board tbody tr").first).to_contain_text(first)
    assert not errors


def test_every_chart_has_an_accessible_name_a_data_table_and_labels_that_do_not_collide(
    make_model, board_settings, asgi_server, browser
):
    _boards_make(make_model, ("text",))
    for width in (390, 1366):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        errors = _watch(page)
        _open(page, asgi_server.url + "/leaderboard/text/")
        for key, name in [
            ("ratings", "Ratings with 95% confidence intervals: 4 models, from "),
            ("history", "Rating history: 4 models over "),
            ("winrate", "Win rate of row model against column model: a 4 by 4 grid"),
            ("battles", "Battles per pair: a 4 by 4 grid"),
        ]:
            chart = page.locator(f"#plot-{key} svg")
            expect(chart).to_have_attribute("role", "img")
            expect(page.get_by_role("img", name=re.compile("^" + re.escape(name)))).to_have_count(1)
            figure = page.locator(f"#chart-{key}")
            table = figure.locator("details table")
            expect(table).to_be_hidden()
            figure.locator("summary").click()
            expect(table).to_be_visible()
            assert table.locator("tbody tr").count() >= (3 if key == "history" else 4), key
        # The ratings table holds the board's numbers; the win-rate table the heatmap's.
        board = dict(
            zip(
                page.locator("#board tbody td.model").all_inner_texts(),
                page.locator("#board tbody td:nth-child(3)").all_inner_texts(),
                strict=True,
            )
        )
        rows = page.locator("#table-ratings tbody tr")
        data = {r.locator("th").inner_text(): r.locator("td").first.inner_text() for r in rows.all()}
        assert {k.replace("\n", ""): v for k, v in data.items()} == {
            k.replace("\n", ""): v for k, v in board.items()
        }
        cells = page.locator("#plot-winrate rect.cell")
        expect(cells).to_have_count(16)
        expect(page.locator("#plot-winrate .legend-bar")).to_have_count(1)
        expect(page.locator("#plot-battles .legend-bar")).to_have_count(1)
        # A long name is shortened on the charts, whole in a tooltip, and nothing runs out of its chart.
        expect(page.locator("#plot-ratings text title", has_text=LONG_NAME)).to_have_count(1)
        assert not _clipped_chart_text(page)
        # History: dates on the axis, names at the lines' ends that never overlap, nor do the dates.
        ticks = page.locator("#plot-history text[fill='#667085']").all_text_contents()
        assert any(re.search(r"[A-Z][a-z]{2}", t) for t in ticks), ticks
        assert not _overlapping(page, "#plot-history .end-label")
        assert not _overlapping(page, "#plot-history text[fill='#667085']")
        assert not _serious_axe_violations(page)
        screenshot(page, f"boards-charts-open-{width}")
        context.close()
        assert not errors
