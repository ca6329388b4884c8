"""The pages still work under the Content-Security-Policy, in Chromium, with every violation collected.

A text battle (its websocket stream, the proof-of-work workers of the vote), the leaderboard (its socket),
and a 3D battle with a textured GLB (GLTFLoader decodes its texture through a Blob URL) against a Gaussian
splat (Spark compiles WebAssembly and sorts in a Blob worker). Violations are caught two ways: the page's own
`securitypolicyviolation` events (recorded by a script Playwright injects, which the policy does not govern)
and the console's "Refused to …" messages.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from django.test import Client
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser.conftest import browser, page  # noqa: F401  (the browser fixtures)
from tests.browser.harness import spz_bytes
from tests.support.media import client_voter, media_battle_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOAD_TIMEOUT = 120_000
RECORD = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


class Violations:
    def __init__(self, page) -> None:  # noqa: F811  (the fixture's value)
        self.page = page
        self.console: list[str] = []
        page.add_init_script(RECORD)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("Refused to"):
            self.console.append(message.text)

    def all(self) -> list[str]:
        seen = self.page.evaluate("() => window.__cspViolations || []")
        return [*seen, *self.console]


def textured_glb() -> bytes:
    """A box whose colour is an embedded PNG texture (what GLTFLoader turns into a Blob URL image)."""
    import trimesh
    from PIL import Image

    box = trimesh.creation.box()
    uv = np.column_stack([(box.vertices[:, 0] + 0.5), (box.vertices[:, 1] + 0.5)])
    image = Image.new("RGB", (16, 16), (30, 160, 90))
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=image)
    buffer = io.BytesIO()
    box.export(buffer, file_type="glb")
    return buffer.getvalue()


def test_a_text_battle_and_the_leaderboard_run_without_a_policy_violation(demo_models, asgi_server, page):  # noqa: F811
    violations = Violations(page)
    page.goto(asgi_server.url + "/")
    page.locator("#prompt").fill("Why is the sky blue?")
    page.get_by_role("button", name="Send").click()
    expect(page).to_have_url(re.compile(r"/b/[\w-]+/$"))
    expect(page.locator("#answer-a-0")).not_to_be_empty()  # streamed over the websocket
    vote_a = page.get_by_role("button", name="👈 A is better")
    expect(vote_a).to_be_enabled(timeout=30_000)
    vote_a.click()  # the proof of work runs in module workers
    expect(page.locator("#status")).to_contain_text("Thanks for voting", timeout=30_000)
    page.goto(asgi_server.url + "/leaderboard/text/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    page.wait_for_timeout(500)  # the board's socket connects
    assert violations.all() == []


def test_a_3d_battle_with_a_textured_mesh_and_a_splat_runs_without_a_policy_violation(
    asgi_server,
    page,  # noqa: F811
    settings,
    tmp_path,
):
    settings.MEDIA_ROOT = tmp_path
    violations = Violations(page)
    client = Client()
    voter = client_voter(client)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": asgi_server.url}]
    )
    battle = media_battle_make(
        voter=voter,
        modality="3d",
        sides={"a": (textured_glb(), "glb"), "b": (spz_bytes(), "spz")},
        prompt="a green box and a cloud",
    )
    page.goto(f"{asgi_server.url}/b/{battle.code}/")
    try:
        page.wait_for_function(
            "() => window.arenaViewers && window.arenaViewers.loaded", timeout=LOAD_TIMEOUT
        )
    except PlaywrightTimeout:
        raise AssertionError(f"the viewers did not load; violations: {violations.all()}") from None
    assert page.evaluate("() => [window.arenaViewers.a.state, window.arenaViewers.b.state]") == [
        "loaded",
        "loaded",
    ]
    page.wait_for_timeout(1500)  # Spark's sort worker answers a few frames after loading
    assert violations.all() == []
