"""Battle pages hold any input on any screen, in Chromium: no sideways scrolling at 390, 768 and 1366 px with
a 300-character word, a 30,000-character word, long URLs and code in prompts and answers (text, image and 3D,
home and battle pages, before and after a vote, with the criteria table, with a failed side), a vote bar in
view without scrolling once voting opens, and 3D viewers that leave the wheel and one finger to the page and
light an untextured ("clay") mesh so its shape shows, the same on both sides."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from arena.models import Battle, Generation, ModelEntry
from tests.browser.conftest import ARTIFACTS
from tests.support.media import client_voter, media_battle_make, media_model_make, png_bytes
from tests.support.openai_server import Behaviour, OpenAIServer
from voting.models import Voter
from workers.backends.demo_media import demo_3d_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {390: 844, 768: 1024, 1366: 900}
LOAD_TIMEOUT = 120_000  # software WebGL compiles shaders slowly on a shared machine

LONG_WORD = "Pneumono" + "o" * 284 + "sis"  # 300 characters, no break opportunity
HUGE_WORD = "H" + "u" * 29_998 + "g"  # 30,000 characters: the longest prompt a voter may send
LONG_URL = "https://example.org/" + "/".join(f"section-{i}" for i in range(40)) + "?query=" + "q" * 160
LONG_LINE = "x = [" + ", ".join(str(i) for i in range(400)) + "]"
ANSWER = (
    f"## Overview\n\nThe word {LONG_WORD} is long.\n\nSee {LONG_URL} for more.\n\n"
    f"```python\n{LONG_LINE}\nprint(x)\n```\n\n| a | b |\n|---|---|\n| {LONG_WORD} | {LONG_URL} |\n"
)
PROMPT = f"Explain {LONG_WORD} and read {LONG_URL}"


# --- measuring ----------------------------------------------------------------------------------------------

OVERFLOW = """() => {
  const wide = [];
  for (const node of document.body.querySelectorAll("*")) {
    const r = node.getBoundingClientRect();
    if (r.width && r.right > innerWidth + 1) {
      const name = `${node.tagName.toLowerCase()}#${node.id}.${String(node.className)}`;
      wide.push(`${name} right=${Math.round(r.right)}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth, wide: wide.slice(0, 6)};
}"""

# From the top of the page (no scrolling): where the vote bar is, and whether its first button is what a tap
# at the button's centre would reach.
VOTEBAR = """() => {
  window.scrollTo(0, 0);
  const bar = document.getElementById("votebar");
  const r = bar.getBoundingClientRect();
  const b = bar.querySelector("button").getBoundingClientRect();
  const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, innerWidth, innerHeight,
          reachable: bar.contains(hit)};
}"""

PANELS = """() => ["a", "b"].map((k) => {
  const r = document.getElementById(`panel-${k}`).getBoundingClientRect();
  return {x: r.x, y: r.y, right: r.right, bottom: r.bottom};
})"""


def overflow_problems(page: object, label: str) -> list[str]:
    found = page.evaluate(OVERFLOW)  # type: ignore[attr-defined]
    if found["scrollWidth"] <= found["innerWidth"]:
        return []
    return [f"{label}: page {found['scrollWidth']} px wide in {found['innerWidth']} px; {found['wide']}"]


def votebar_problems(page: object, label: str) -> list[str]:
    bar = page.evaluate(VOTEBAR)  # type: ignore[attr-defined]
    inside = (
        bar["top"] >= 0
        and bar["left"] >= 0
        and bar["bottom"] <= bar["innerHeight"]
        and bar["right"] <= bar["innerWidth"]
    )
    if inside and bar["reachable"]:
        return []
    return [f"{label}: vote bar not in view without scrolling: {bar}"]


def panel_problems(page: object, label: str, width: int) -> list[str]:
    a, b = page.evaluate(PANELS)  # type: ignore[attr-defined]
    side_by_side = abs(a["y"] - b["y"]) < 1 and a["right"] <= b["x"]
    stacked = b["y"] >= a["bottom"] and abs(a["x"] - b["x"]) < 1
    if (width >= 768 and side_by_side) or (width < 768 and stacked):
        return []
    return [f"{label}: panels A {a} and B {b} at {width} px"]


def shot(page: object, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"layout-{name}.png"), full_page=full_page)  # type: ignore[attr-defined]


def every_width(
    page: object, name: str, *, voting: bool, full_page: bool = True, panels: bool = True
) -> list[str]:
    """Measure the page at each width (overflow, vote bar, panels), with screenshots at 390 and 1366 px."""
    problems: list[str] = []
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})  # type: ignore[attr-defined]
        label = f"{name} at {width}"
        problems += overflow_problems(page, label)
        if voting:
            problems += votebar_problems(page, label)
        if panels:
            problems += panel_problems(page, label, width)
        if width != 768:  # the first screen, the last (criteria, the vote bar in its place), the whole page
            page.evaluate("() => window.scrollTo(0, 0)")  # type: ignore[attr-defined]
            shot(page, f"{name}-{width}", full_page=False)
            page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")  # type: ignore[attr-defined]
            shot(page, f"{name}-{width}-end", full_page=False)
            if full_page:
                shot(page, f"{name}-{width}-full")
            page.evaluate("() => window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    return problems


# --- battles ------------------------------------------------------------------------------------------------


@pytest.fixture
def context(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})  # type: ignore[attr-defined]
    yield context
    context.close()


@pytest.fixture
def page(context: object) -> Iterator[object]:
    page = context.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == [], errors


def browser_voter(context: object, server_url: str) -> Voter:
    """The page's visitor: a session made here, its cookie handed to the browser, so battles made in the test
    belong to it."""
    client = Client()
    voter = client_voter(client)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(  # type: ignore[attr-defined]
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_key, "url": server_url}]
    )
    return voter


def text_battle_make(voter: Voter, turns: list[tuple[str, str, str]], *, failed: str = "") -> Battle:
    """A text battle whose turns (prompt, answer A, answer B) are done; `failed` names a side whose last
    turn failed after part of its answer."""
    models = [
        ModelEntry.objects.create(
            slug=f"layout-{side}-{Battle.objects.count()}", display_name=name, backend_kind="demo"
        )
        for side, name in (("a", "Layout Left " + "L" * 120), ("b", "Layout Right"))
    ]
    now = timezone.now()
    battle = Battle.objects.create(
        voter=voter,
        modality="text",
        model_a=models[0],
        model_b=models[1],
        conversation=[prompt for prompt, _a, _b in turns],
        status=Battle.Status.FAILED if failed else Battle.Status.READY,
        ready_at=None if failed else now,
    )
    for turn, (_prompt, *answers) in enumerate(turns):
        for side, model, output in zip("ab", models, answers, strict=True):
            fails = side == failed and turn == len(turns) - 1
            Generation.objects.create(
                battle=battle,
                turn=turn,
                side=side,
                model=model,
                status=Generation.Status.FAILED if fails else Generation.Status.DONE,
                failure_kind="timeout" if fails else "",
                output=output,
                attempts=1,
                started_at=now,
                finished_at=now,
            )
    return battle


def side_fail(battle: Battle, side: str) -> None:
    Generation.objects.filter(battle=battle, side=side).update(
        status=Generation.Status.FAILED, failure_kind="unavailable", media_name=""
    )
    Battle.objects.filter(id=battle.id).update(status=Battle.Status.FAILED, ready_at=None)


def vote_in_page(page: object, battle: Battle) -> None:
    page.set_viewport_size({"width": 1366, "height": 900})  # type: ignore[attr-defined]
    page.get_by_role("button", name="👈 A is better").click()  # type: ignore[attr-defined]
    expect(page.locator("#status")).to_contain_text("Thanks for voting")  # type: ignore[attr-defined]
    expect(page.locator("#reveal-b")).to_have_text(battle.model_b.display_name)  # type: ignore[attr-defined]


# --- home pages ---------------------------------------------------------------------------------------------


def test_the_home_pages_hold_a_30000_character_word_in_the_prompt_box_at_every_width(asgi_server, page):
    problems: list[str] = []
    for path, name in (("/", "text"), ("/image/", "image"), ("/3d/", "3d")):
        page.goto(f"{asgi_server.url}{path}")
        page.locator("#prompt").fill(HUGE_WORD)
        expect(page.locator("#counter")).to_have_text("30,000 / 30,000")
        problems += every_width(page, f"home-{name}", voting=False, panels=False, full_page=False)
    assert problems == []


# --- text ---------------------------------------------------------------------------------------------------


def test_a_text_battle_with_long_words_urls_and_code_holds_at_every_width_before_and_after_the_vote(
    asgi_server, context, page
):
    voter = browser_voter(context, asgi_server.url)
    battle = text_battle_make(
        voter, [(PROMPT, ANSWER, f"Short answer with {LONG_URL}"), (LONG_WORD, LONG_WORD, ANSWER)]
    )
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled()
    problems = every_width(page, "text-long-before-vote", voting=True)
    # Code scrolls inside its answer (a <pre> once answers are rendered as markdown; the raw text meanwhile):
    # nothing is wider than the panel that holds it.
    widest = page.evaluate(
        """() => {
          const edge = document.getElementById('panel-a').getBoundingClientRect().right;
          const nodes = [...document.querySelectorAll('#panel-a .answer, #panel-a pre')];
          return Math.max(...nodes.map((n) => n.getBoundingClientRect().right - edge));
        }"""
    )
    assert widest <= 0, f"an answer sticks out of its panel by {widest} px"
    vote_in_page(page, battle)
    problems += every_width(page, "text-long-after-vote", voting=False)
    assert problems == []


def test_a_text_battle_with_a_30000_character_word_holds_at_every_width(asgi_server, context, page):
    voter = browser_voter(context, asgi_server.url)
    battle = text_battle_make(voter, [(HUGE_WORD, HUGE_WORD, f"{HUGE_WORD} {LONG_URL}")])
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled()
    problems = every_width(page, "text-huge-before-vote", voting=True, full_page=False)
    vote_in_page(page, battle)
    problems += every_width(page, "text-huge-after-vote", voting=False, full_page=False)
    assert problems == []


def test_a_failed_text_battle_with_long_words_holds_at_every_width(asgi_server, context, page):
    voter = browser_voter(context, asgi_server.url)
    battle = text_battle_make(voter, [(PROMPT, ANSWER, f"Cut off in {LONG_WORD}")], failed="b")
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.locator("#status")).to_contain_text("cannot be voted on")
    expect(page.locator("#votebar")).to_be_hidden()
    assert every_width(page, "text-failed", voting=False) == []


def test_a_live_text_battle_streams_long_words_and_code_without_widening_the_page(asgi_server, context, page):
    """The whole path: the prompt box, the worker, a local OpenAI-compatible server (one side echoes the
    30,000-character word, the other answers markdown with a long code line), the socket, the vote."""
    reply = ANSWER + "\n" + LONG_WORD
    with OpenAIServer(models={"served-md": Behaviour(reply=reply, chunk_delay=0.002)}) as server:
        for slug, served in (("echo", "served-echo"), ("markdown", "served-md")):
            ModelEntry.objects.create(
                slug=slug,
                display_name=slug.title(),
                backend_kind="openai",
                backend_config={"base_url": server.base_url, "model": served, "timeout": 10.0},
            )
        page.goto(f"{asgi_server.url}/")
        page.locator("#prompt").fill(HUGE_WORD)
        page.get_by_role("button", name="Send").click()
        expect(page).to_have_url(re.compile(r"/b/[\w-]+/$"))
        expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled(timeout=30_000)
    battle = Battle.objects.get()
    problems = every_width(page, "text-live-before-vote", voting=True, full_page=False)
    vote_in_page(page, battle)
    problems += every_width(page, "text-live-after-vote", voting=False, full_page=False)
    assert problems == []


# --- image --------------------------------------------------------------------------------------------------


def test_an_image_battle_with_criteria_and_a_long_prompt_holds_at_every_width(asgi_server, context, page):
    voter = browser_voter(context, asgi_server.url)
    battle = media_battle_make(
        voter=voter,
        modality="image",
        sides={"a": (png_bytes("red", (640, 480)), "png"), "b": (png_bytes("blue", (480, 640)), "png")},
        prompt=f"{PROMPT} {HUGE_WORD}",
    )
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled(timeout=20_000)
    expect(page.locator("#criteria")).to_be_visible()
    problems = every_width(page, "image-before-vote", voting=True, full_page=False)
    page.get_by_label("Prompt alignment: B", exact=True).check()
    vote_in_page(page, battle)
    expect(page.locator("#criteria")).to_contain_text("Your ratings per criterion")
    problems += every_width(page, "image-after-vote", voting=False, full_page=False)
    assert problems == []


def test_an_image_battle_with_a_failed_side_holds_at_every_width(asgi_server, context, page):
    voter = browser_voter(context, asgi_server.url)
    battle = media_battle_make(
        voter=voter, modality="image", sides={s: (png_bytes(), "png") for s in "ab"}, prompt=PROMPT
    )
    side_fail(battle, "b")
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.locator("#media-status-b")).to_contain_text("⚠")
    expect(page.locator("#votebar")).to_be_hidden()
    assert every_width(page, "image-failed", voting=False) == []


# --- 3D -----------------------------------------------------------------------------------------------------


def clay_glb() -> bytes:
    """The demo's untextured twisted vase: a GLB without any material (the loader's default applies)."""
    data, fmt = demo_3d_make("a twisted vase", "twist", texture="none", seed=3)
    assert fmt == "glb"
    return data


def clay_battle(voter: Voter, prompt: str = PROMPT) -> Battle:
    models = tuple(media_model_make(f"clay-{side}", "3d", display_name=f"Clay {side}") for side in "ab")
    return media_battle_make(
        voter=voter, modality="3d", sides={s: (clay_glb(), "glb") for s in "ab"}, prompt=prompt, models=models
    )


def viewers_loaded(page: object) -> None:
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => window.arenaViewers && window.arenaViewers.loaded", timeout=LOAD_TIMEOUT
    )


def test_a_3d_battle_with_criteria_and_a_long_prompt_holds_at_every_width(asgi_server, context, page):
    voter = browser_voter(context, asgi_server.url)
    battle = clay_battle(voter, prompt=f"{PROMPT} {HUGE_WORD}")
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    viewers_loaded(page)
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled()
    expect(page.locator("#criteria")).to_be_visible()
    problems = every_width(page, "3d-before-vote", voting=True, full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_label("Geometry: A", exact=True).check()  # the criteria rows stay usable under the vote bar
    vote_in_page(page, battle)
    problems += every_width(page, "3d-after-vote", voting=False, full_page=False)
    assert problems == []


def test_a_3d_battle_with_a_failed_side_holds_at_every_width(asgi_server, context, page):
    voter = browser_voter(context, asgi_server.url)
    battle = clay_battle(voter)
    side_fail(battle, "a")
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    expect(page.locator("#media-status-a")).to_contain_text("⚠")
    page.wait_for_function(
        "() => window.arenaViewers && window.arenaViewers.b.state === 'loaded'", timeout=LOAD_TIMEOUT
    )
    expect(page.locator("#votebar")).to_be_hidden()
    assert every_width(page, "3d-failed", voting=False) == []


CAMERAS = """() => {
  const v = window.arenaViewers;
  const pose = (s) => [...s.camera.position.toArray(), ...s.controls.target.toArray()];
  const distance = (s) => s.camera.position.distanceTo(s.controls.target);
  return {a: pose(v.a), b: pose(v.b), distance: {a: distance(v.a), b: distance(v.b)}, scrollY};
}"""

# Luminance (0-255) of the pixels of a side's canvas that are not background: the object.
SHADING = """(key) => {
  const c = document.getElementById(`viewer-canvas-${key}`);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const bg = [d[0], d[1], d[2]];
  const values = [];
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]) < 12) continue;
    values.push(0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2]);
  }
  values.sort((p, q) => p - q);
  const mean = values.reduce((s, v) => s + v, 0) / Math.max(1, values.length);
  const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(1, values.length));
  const at = (q) => values[Math.floor(q * (values.length - 1))];
  return {pixels: values.length, share: values.length / (d.length / 4), mean, sd, p10: at(0.1), p90: at(0.9)};
}"""

SIDES_DIFFER = """() => {
  const data = (k) => {
    const c = document.getElementById(`viewer-canvas-${k}`);
    return c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  };
  const a = data("a"), b = data("b");
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}"""


def test_the_3d_viewers_leave_the_wheel_to_the_page_zoom_with_ctrl_and_shade_a_clay_mesh_alike(
    asgi_server, context, page
):
    voter = browser_voter(context, asgi_server.url)
    battle = clay_battle(voter)
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    viewers_loaded(page)
    page.wait_for_function(
        f"() => ['a', 'b'].every((k) => ({SHADING})(k).share > 0.05)", timeout=LOAD_TIMEOUT, polling=250
    )

    # The clay mesh shows its shape: mid-grey with light and shade, not a white silhouette; both sides alike.
    for key in "ab":
        shading = page.evaluate(SHADING, key)
        assert shading["share"] > 0.05, shading
        assert 60 < shading["mean"] < 185, f"the clay mesh is too light or too dark: {shading}"
        assert shading["p90"] - shading["p10"] > 45 and shading["sd"] > 15, f"flat shading: {shading}"
    assert page.evaluate(SIDES_DIFFER) < 0.5, "the same mesh on both sides renders differently"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#battle").screenshot(path=str(ARTIFACTS / "layout-3d-clay-1366.png"))

    # The wheel over a viewer scrolls the page; the cameras stay where they were, and a hint says how to zoom.
    x, y = over_canvas(page, "a")
    page.mouse.move(x, y)
    before = page.evaluate(CAMERAS)
    page.mouse.wheel(0, 200)
    hint = page.locator("#viewer-hint-a")
    expect(hint).to_be_visible()
    expect(hint).to_have_text(re.compile(r"(Ctrl|⌘) \+ scroll to zoom"))
    page.wait_for_function(f"() => window.scrollY > {before['scrollY'] + 50}")
    after = page.evaluate(CAMERAS)
    assert after["a"] == before["a"] and after["b"] == before["b"], "the wheel moved a camera"
    expect(hint).to_be_hidden(timeout=5_000)  # it goes by itself

    # With Ctrl (a trackpad pinch sends the same) the wheel zooms, both views follow, the page stays.
    x, y = over_canvas(page, "a")
    page.mouse.move(x, y)
    scrolled = page.evaluate("() => window.scrollY")
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    page.wait_for_function(
        f"() => window.arenaViewers.a.camera.position.distanceTo(window.arenaViewers.a.controls.target) "
        f"< {before['distance']['a'] - 0.05}"
    )
    zoomed = page.evaluate(CAMERAS)
    assert zoomed["scrollY"] == scrolled, "Ctrl + wheel scrolled the page"
    assert math.isclose(zoomed["distance"]["a"], zoomed["distance"]["b"], rel_tol=1e-9), "B did not follow"
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, "3d-wheel-1366", full_page=False)


def over_canvas(page: object, key: str) -> tuple[float, float]:
    """Scroll a side's view to the middle of the screen; the point at its centre, which must be the view (not
    the vote bar or anything else over it)."""
    page.locator(f"#viewer-canvas-{key}").evaluate(  # type: ignore[attr-defined]
        "(c) => c.scrollIntoView({block: 'center', behavior: 'instant'})"
    )
    return page.evaluate(  # type: ignore[attr-defined]
        """(key) => {
          const canvas = document.getElementById(`viewer-canvas-${key}`);
          const r = canvas.getBoundingClientRect();
          const [x, y] = [r.left + r.width / 2, r.top + r.height / 2];
          if (document.elementFromPoint(x, y) !== canvas) throw new Error(`the view is covered at ${x} ${y}`);
          return [x, y];
        }""",
        key,
    )


def touch(cdp: object, kind: str, points: list[tuple[float, float]]) -> None:
    cdp.send(  # type: ignore[attr-defined]
        "Input.dispatchTouchEvent",
        {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
    )


def touch_drag(page: object, cdp: object, start: list[tuple[float, float]], dx: float, dy: float) -> None:
    touch(cdp, "touchStart", start)
    for step in range(1, 11):
        touch(cdp, "touchMove", [(x + dx * step / 10, y + dy * step / 10) for x, y in start])
        page.wait_for_timeout(16)  # type: ignore[attr-defined]
    touch(cdp, "touchEnd", [])
    page.wait_for_timeout(100)  # type: ignore[attr-defined]


def test_on_a_phone_one_finger_scrolls_past_the_3d_viewers_and_two_fingers_turn_them(asgi_server, browser):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    try:
        page = context.new_page()
        voter = browser_voter(context, asgi_server.url)
        battle = clay_battle(voter)
        page.goto(f"{asgi_server.url}/b/{battle.code}/")
        viewers_loaded(page)
        cdp = context.new_cdp_session(page)
        x, y = over_canvas(page, "a")
        start = page.evaluate(CAMERAS)
        touch_drag(page, cdp, [(x, y)], 0, -250)  # one finger up: the page scrolls, the object stays
        expect(page.locator("#viewer-hint-a")).to_have_text("Use two fingers to turn and zoom")
        page.wait_for_function(f"() => window.scrollY > {start['scrollY'] + 50}")
        swiped = page.evaluate(CAMERAS)
        assert swiped["a"] == start["a"] and swiped["b"] == start["b"], "one finger rotated the view"
        x, y = over_canvas(page, "a")
        touch_drag(page, cdp, [(x, y)], 150, 0)  # one finger sideways: nothing turns either
        assert page.evaluate(CAMERAS)["a"] == start["a"]

        turned_from = page.evaluate(CAMERAS)
        touch_drag(page, cdp, [(x - 40, y), (x + 40, y)], 120, 0)  # two fingers: rotate, B follows
        turned = page.evaluate(CAMERAS)
        assert math.dist(turned["a"], turned_from["a"]) > 0.2, "two fingers did not rotate the view"
        assert math.dist(turned["a"], turned["b"]) < 1e-6
        assert turned["scrollY"] == turned_from["scrollY"], "a two-finger turn scrolled the page"
        pinch_from = page.evaluate(CAMERAS)["distance"]["a"]
        touch(cdp, "touchStart", [(x - 30, y), (x + 30, y)])
        for step in range(1, 11):
            touch(cdp, "touchMove", [(x - 30 - 8 * step, y), (x + 30 + 8 * step, y)])
            page.wait_for_timeout(16)
        touch(cdp, "touchEnd", [])
        assert page.evaluate(CAMERAS)["distance"]["a"] < pinch_from - 0.1, "a pinch did not zoom"
        shot(page, "3d-touch-390", full_page=False)
    finally:
        context.close()
