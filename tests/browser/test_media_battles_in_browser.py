"""Image and 3D battles in Chromium (software WebGL): two linked 3D viewers, images side by side with a zoom,
per-criterion votes and the reveal; and the 3D viewer alone on every file format it shows."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from arena.media import media_inspect, media_save
from arena.models import Battle, GalleryOutput, Generation, Prompt, PromptSet
from tests.browser.conftest import screenshot
from tests.browser.harness import (
    coloured_box,
    coloured_icosphere,
    mesh_bytes,
    png_bytes,
    splat_bytes,
    splat_ply_bytes,
    spz_bytes,
    static_server,
)
from tests.support.media import client_voter, media_battle_make, media_model_make
from voting.models import Vote, Voter

pytestmark = [pytest.mark.browser]

# Software WebGL on a shared CI machine compiles shaders slowly: loading waits are generous.
LOAD_TIMEOUT = 120_000

CAMERAS = """() => {
  const v = window.arenaViewers;
  const pose = (s) => [...s.camera.position.toArray(), ...s.controls.target.toArray()];
  return {a: pose(v.a), b: pose(v.b), linked: v.linked};
}"""


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def browser_voter(page: object, server_url: str) -> Voter:
    """The voter the browser acts as: a session made here, its cookie handed to the browser, so a battle made
    in the test belongs to the page's visitor."""
    client = Client()
    voter = client_voter(client)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(  # type: ignore[attr-defined]
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_key, "url": server_url}]
    )
    return voter


@pytest.fixture
def page_errors(page) -> list[str]:
    """Uncaught script errors of the page; a test ends by checking there were none."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def drag(page: object, selector: str, dx: float, dy: float) -> None:
    box = page.locator(selector).bounding_box()  # type: ignore[attr-defined]
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    page.mouse.move(x + dx, y + dy, steps=8)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]


def distance(p: list[float], q: list[float]) -> float:
    return math.dist(p, q)


@pytest.mark.django_db(transaction=True)
def test_a_3d_battle_links_the_cameras_switches_views_and_reveals_after_a_vote(
    asgi_server, page, page_errors
):
    voter = browser_voter(page, asgi_server.url)
    battle = media_battle_make(
        voter=voter,
        modality="3d",
        sides={
            "a": (mesh_bytes(coloured_box(), "glb"), "glb"),
            "b": (mesh_bytes(coloured_icosphere(), "glb"), "glb"),
        },
        prompt="a red brick and a blue ball",
    )
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.get_by_role("heading", name="3D battle")).to_be_visible()
    expect(page.locator("#input-text")).to_have_text("a red brick and a blue ball")
    vote_a = page.get_by_role("button", name="👈 A is better")
    page.wait_for_function("() => window.arenaViewers && window.arenaViewers.loaded", timeout=LOAD_TIMEOUT)
    expect(vote_a).to_be_enabled()
    expect(page.locator("#viewer-info-a")).to_have_text("8 vertices · 12 faces")
    expect(page.locator("#viewer-info-b")).to_have_text("162 vertices · 320 faces")
    html = page.content()
    assert battle.model_a.slug not in html and battle.model_b.display_name not in html
    assert "/media/" not in html and Generation.objects.get(battle=battle, side="a").media_name not in html

    start = page.evaluate(CAMERAS)
    assert start["linked"] is True and distance(start["a"], start["b"]) < 1e-9

    drag(page, "#viewer-canvas-a", 140, 50)  # rotate viewer A: B follows
    moved = page.evaluate(CAMERAS)
    assert distance(moved["a"], start["a"]) > 0.2, "dragging did not rotate viewer A"
    assert distance(moved["a"], moved["b"]) < 1e-6, "viewer B's camera did not follow A's"

    drag(page, "#viewer-canvas-b", 0, -60)  # linked both ways
    back = page.evaluate(CAMERAS)
    assert distance(back["b"], moved["b"]) > 0.05 and distance(back["a"], back["b"]) < 1e-6

    page.get_by_label("Link cameras").uncheck()
    drag(page, "#viewer-canvas-a", -160, 0)
    apart = page.evaluate(CAMERAS)
    assert apart["linked"] is False
    assert distance(apart["a"], back["a"]) > 0.2 and distance(apart["b"], back["b"]) < 1e-9

    page.get_by_label("Link cameras").check()  # linking again snaps B to A's view
    relinked = page.evaluate(CAMERAS)
    assert distance(relinked["a"], relinked["b"]) < 1e-6

    screenshot(page, "3d-battle-textured")
    page.get_by_role("button", name="Wireframe").click()
    expect(page.get_by_role("button", name="Wireframe")).to_have_attribute("aria-pressed", "true")
    materials = page.evaluate(
        """() => ["a", "b"].map((k) => {
             const found = [];
             window.arenaViewers[k].object.traverse((n) => {
               if (n.isMesh) found.push(n.material.wireframe);
             });
             return found;
           })"""
    )
    assert materials == [[True], [True]]
    screenshot(page, "3d-battle-before-vote")

    page.get_by_label("Geometry: B", exact=True).check()
    page.get_by_label("Texture: A", exact=True).check()
    vote_a.click()
    expect(page.locator("#reveal-a")).to_have_text(re.compile(re.escape(battle.model_a.display_name)))
    expect(page.locator("#reveal-b")).to_have_text(re.compile(re.escape(battle.model_b.display_name)))
    expect(page.locator("#status")).to_contain_text("Thanks for voting")
    vote = Vote.objects.get()
    assert vote.choice == "a" and vote.criteria == {"geometry": "b", "texture": "a"}
    expect(page.get_by_label("Geometry: B", exact=True)).to_be_checked()
    expect(page.get_by_label("Geometry: B", exact=True)).to_be_disabled()
    screenshot(page, "3d-battle-after-vote")
    assert page_errors == []


@pytest.mark.django_db(transaction=True)
def test_an_image_battle_shows_both_at_one_size_zooms_and_reveals_after_a_vote(
    asgi_server, page, page_errors
):
    voter = browser_voter(page, asgi_server.url)
    small = png_bytes((320, 240), (200, 50, 40), "A")
    large = png_bytes((640, 480), (40, 80, 200), "B")
    battle = media_battle_make(
        voter=voter, modality="image", sides={"a": (small, "png"), "b": (large, "png")}, prompt="a circle"
    )
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.get_by_role("heading", name="Image battle")).to_be_visible()
    vote_b = page.get_by_role("button", name="👉 B is better")
    expect(vote_b).to_be_enabled(timeout=20_000)
    expect(page.locator("#media-meta-a")).to_have_text("320 \u00d7 240")
    expect(page.locator("#media-meta-b")).to_have_text("640 \u00d7 480")

    natural = page.evaluate("() => ['a', 'b'].map((k) => document.getElementById(`image-${k}`).naturalWidth)")
    assert natural == [320, 640]
    box_a = page.locator("#image-a").bounding_box()
    box_b = page.locator("#image-b").bounding_box()
    assert box_a is not None and box_b is not None
    assert (box_a["width"], box_a["height"]) == (box_b["width"], box_b["height"])
    assert box_a["width"] > 300 and abs(box_a["width"] / box_a["height"] - 4 / 3) < 0.01
    assert box_a["y"] == box_b["y"] and box_a["x"] < box_b["x"]

    page.locator("#image-b").click()
    lightbox = page.locator("#lightbox")
    expect(lightbox).to_be_visible()
    expect(page.locator("#lightbox-img")).to_have_attribute("src", re.compile(rf"/m/{battle.code}/0/b\.png$"))
    expect(page.locator("#lightbox-caption")).to_have_text("Model B")
    zoomed = page.locator("#lightbox-img").bounding_box()
    assert zoomed is not None and zoomed["width"] > box_b["width"]
    screenshot(page, "image-battle-zoomed")
    page.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()

    screenshot(page, "image-battle-before-vote")
    page.get_by_label("Prompt alignment: Tie", exact=True).check()
    vote_b.click()
    expect(page.locator("#reveal-b")).to_have_text(re.compile(re.escape(battle.model_b.display_name)))
    expect(page.locator("#status")).to_contain_text("Thanks for voting")
    vote = Vote.objects.get()
    assert vote.choice == "b" and vote.criteria == {"alignment": "tie"}
    screenshot(page, "image-battle-after-vote")
    assert page_errors == []


@pytest.mark.django_db(transaction=True)
def test_a_flagged_image_stays_hidden_until_the_voter_asks_and_the_vote_is_open_meanwhile(asgi_server, page):
    voter = browser_voter(page, asgi_server.url)
    battle = media_battle_make(
        voter=voter,
        modality="image",
        sides={
            "a": (png_bytes((200, 200), (10, 10, 10), "A"), "png"),
            "b": (png_bytes((200, 200), (90, 200, 90), "B"), "png"),
        },
    )
    Generation.objects.filter(battle=battle, side="a").update(flagged=True)
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.locator("#media-filtered-a")).to_contain_text("hidden by the content filter")
    expect(page.locator("#image-a")).to_be_hidden()
    expect(page.locator("#image-b")).to_be_visible()
    assert page.locator("#image-a").get_attribute("src") is None  # the hidden file is not even fetched
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled()
    page.get_by_role("button", name="Show anyway").click()
    expect(page.locator("#image-a")).to_be_visible()
    expect(page.locator("#media-filtered-a")).to_be_hidden()
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled()


DRAWN = """(keys) => keys.every((k) => {
  const c = document.getElementById(`viewer-canvas-${k}`);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let other = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - 0xdf) > 12 || Math.abs(d[i + 2] - 0xe7) > 12) other++;
  }
  return other > 500;
})"""

VIEWER_FORMATS = [
    # (file name, bytes, format, kind, what the viewer must say it shows)
    ("box.obj", lambda: mesh_bytes(coloured_box(), "obj"), "obj", "mesh", "8 vertices · 12 faces"),
    (
        "ball.gltf",
        lambda: mesh_bytes(coloured_icosphere(), "gltf"),
        "gltf",
        "mesh",
        "162 vertices · 320 faces",
    ),
    ("box.ply", lambda: mesh_bytes(coloured_box(), "ply"), "ply", "mesh", "8 vertices · 12 faces"),
    ("ball.obj", lambda: mesh_bytes(coloured_icosphere(), "obj"), "obj", "mesh", "162 vertices · 320 faces"),
    ("blob.ply", splat_ply_bytes, "ply", "splat", "400 splats"),
    ("blob.splat", splat_bytes, "splat", "splat", "400 splats"),
    ("blob.spz", spz_bytes, "spz", "splat", "400 splats"),
    ("broken.glb", lambda: b"glTF\x02\x00\x00\x00garbage", "glb", "mesh", None),
]


def test_the_3d_viewer_shows_every_mesh_and_splat_format_and_says_when_a_file_is_broken(
    browser, tmp_path: Path
):
    """viewer3d.js alone (no server-side counts: it counts what it loaded), two files per page."""
    for name, make, *_ in VIEWER_FORMATS:
        (tmp_path / name).write_bytes(make())
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        with static_server(tmp_path) as url:
            for left, right in zip(VIEWER_FORMATS[::2], VIEWER_FORMATS[1::2], strict=True):
                query = {}
                for key, (name, _make, fmt, kind, _label) in zip("ab", (left, right), strict=True):
                    query |= {key: f"/files/{name}", f"{key}_format": fmt, f"{key}_kind": kind}
                page.goto(f"{url}/harness/viewer3d.html?{urlencode(query)}", wait_until="commit")
                page.wait_for_function(
                    "() => /^(loaded|failed) (loaded|failed)$/"
                    ".test(document.getElementById('harness-status').textContent)",
                    timeout=LOAD_TIMEOUT,
                )
                for key, (name, _make, _fmt, _kind, label) in zip("ab", (left, right), strict=True):
                    if label is None:
                        expect(page.locator(f"#viewer-error-{key}")).to_contain_text("could not be displayed")
                        assert page.evaluate(f"() => window.arenaViewers.{key}.state") == "failed"
                    else:
                        expect(page.locator(f"#viewer-info-{key}")).to_have_text(label)
                        assert page.evaluate(f"() => window.arenaViewers.{key}.state") == "loaded", name
                # Something was drawn: the canvas is not all background (splats appear once Spark's worker
                # has sorted them, a few frames after loading).
                shown = [key for key, side in zip("ab", (left, right), strict=True) if side[4] is not None]
                page.wait_for_function(DRAWN, arg=shown, timeout=LOAD_TIMEOUT)
                screenshot(page, f"viewer3d-{left[0]}-{right[0]}")
    finally:
        page.close()


@pytest.mark.django_db(transaction=True)
def test_an_image_to_3d_battle_started_in_the_page_shows_progress_then_both_models(
    asgi_server, page, settings, page_errors
):
    """The whole path: an uploaded image (multipart), two live demo 3D models on the worker, progress and
    done events over the battle socket, a textured mesh and a Gaussian splat in the viewers, the vote."""
    settings.ARENA_DEMO_DELAY = 0.2  # five progress steps of 0.8 s each: the page has time to show them
    media_model_make("live-blob", "3d", backend_config={"style": "blob", "texture": "image"})
    media_model_make("live-splat", "3d", backend_config={"style": "splat"})
    events: list[dict] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda frame: events.append(json.loads(frame))),
    )
    page.goto(f"{asgi_server.url}/3d/")
    expect(page.get_by_role("heading", name="3D battle")).to_be_visible()
    page.locator("#image-input").set_input_files(
        files=[
            {"name": "input.png", "mimeType": "image/png", "buffer": png_bytes((96, 96), (30, 160, 90), "in")}
        ]
    )
    page.get_by_role("button", name="Send").click()

    expect(page).to_have_url(re.compile(r"/b/[\w-]+/$"))
    expect(page.locator("#input-image")).to_be_visible()
    expect(page.locator("#stage-a progress, #stage-b progress").first).to_be_visible(timeout=20_000)
    expect(page.locator("#status")).to_contain_text("generating")
    vote_tie = page.get_by_role("button", name="🤝 Tie")
    page.wait_for_function("() => window.arenaViewers && window.arenaViewers.loaded", timeout=LOAD_TIMEOUT)
    expect(vote_tie).to_be_enabled()
    expect(page.locator("#prompt")).to_be_disabled()  # one prompt per image or 3D battle
    assert any(e.get("type") == "progress" and 0 < e["fraction"] < 1 for e in events)
    done = [e for e in events if e.get("type") == "done"]
    assert {e["media"]["kind"] for e in done} == {"mesh", "splat"}

    battle = Battle.objects.get()
    assert battle.input_image and not battle.conversation[0]
    kinds = {side: page.evaluate(f"() => window.arenaViewers.{side}.media.kind") for side in ("a", "b")}
    splat_side = "a" if kinds["a"] == "splat" else "b"
    expect(page.locator(f"#viewer-info-{splat_side}")).to_have_text(re.compile(r"^[\d,]+ splats$"))
    expect(page.locator(f"#viewer-info-{'b' if splat_side == 'a' else 'a'}")).to_have_text(
        re.compile(r"^[\d,]+ vertices · [\d,]+ faces$")
    )
    page.wait_for_function(DRAWN, arg=["a", "b"], timeout=LOAD_TIMEOUT)
    screenshot(page, "3d-battle-from-an-image")
    vote_tie.click()
    expect(page.locator("#reveal-a")).to_have_text(re.compile(re.escape(battle.model_a.display_name)))
    assert Vote.objects.get().choice == "tie"
    page.get_by_role("button", name="New battle").click()
    expect(page).to_have_url(re.compile(r"/3d/$"))
    expect(page.locator("#battle")).to_be_hidden()
    assert page.evaluate("() => window.arenaViewers") is None
    assert page_errors == []


@pytest.mark.django_db(transaction=True)
def test_a_gallery_image_battle_starts_from_its_button_and_asks_no_criteria_when_none_are_set(
    asgi_server, page, settings
):
    settings.ARENA_VOTE_CRITERIA = {}
    models = [
        media_model_make(f"gallery-{i}", "image", backend_kind="gallery", backend_config={"gallery": "g"})
        for i in range(2)
    ]
    prompt_set = PromptSet.objects.create(slug="g", name="G", modality="image")
    prompt = Prompt.objects.create(
        prompt_set=prompt_set, text="a lighthouse", modality="image", gallery_key="p0"
    )
    for i, model in enumerate(models):
        data = png_bytes((256, 256), (40 + 150 * i, 90, 160), f"gallery {i}")
        info = media_inspect(data, format_hint="png")
        GalleryOutput.objects.create(
            prompt=prompt,
            model=model,
            media_name=media_save(data, info, folder="gallery"),
            media_format=info.format,
            media_kind=info.kind,
            media_meta=info.meta,
            sha256=hashlib.sha256(data).hexdigest(),
        )
    page.goto(f"{asgi_server.url}/image/")
    page.get_by_role("button", name="🎲 Gallery battle").click()
    expect(page).to_have_url(re.compile(r"/b/[\w-]+/$"))
    expect(page.locator("#input-text")).to_have_text("a lighthouse")
    expect(page.locator("#image-a")).to_be_visible(timeout=20_000)
    expect(page.locator("#image-b")).to_be_visible()
    both_bad = page.get_by_role("button", name="👎 Both are bad")
    expect(both_bad).to_be_enabled()
    expect(page.locator("#criteria")).to_be_hidden()
    expect(page.get_by_role("button", name="🎲 Gallery battle")).to_be_hidden()
    both_bad.click()
    expect(page.locator("#status")).to_contain_text("Thanks for voting")
    battle = Battle.objects.get()
    assert Vote.objects.get().criteria == {} and battle.prompt == prompt
    page.get_by_role("button", name="New battle").click()
    expect(page).to_have_url(re.compile(r"/image/$"))
    expect(page.locator("#battle")).to_be_hidden()
    expect(page.get_by_role("button", name="🎲 Gallery battle")).to_be_visible()
