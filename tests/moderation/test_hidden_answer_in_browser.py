"""In the page, a flagged answer is hidden behind "Show anyway" and the vote says it will not count."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect, sync_playwright

from arena.models import Battle
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page() -> Iterator[object]:
    """Chromium for this test only: a session-wide Playwright loop would stop later async tests running."""
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's sync API runs a loop here
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def test_a_flagged_answer_is_hidden_until_the_voter_asks_and_the_vote_does_not_count(
    make_model,
    asgi_server,
    page,
    settings,
):
    settings.ARENA_BLOCKED_TERMS = ["refine"]  # the "concise" demo persona ends with "then refine."
    make_model(backend_config={"persona": "concise", "delay": 0.001})
    make_model(backend_config={"persona": "thorough", "delay": 0.001})
    page.goto(asgi_server.url + "/")
    page.locator("#prompt").fill("Why is the sky blue?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("button", name="👈 A is better")).to_be_enabled(timeout=20_000)

    battle = Battle.objects.get()
    hidden = battle.generations.get(flagged=True)
    clean = battle.generations.get(flagged=False)
    answer = page.locator(f"#answer-{hidden.side}-0")
    expect(answer).to_contain_text("This answer was hidden by the content filter")
    expect(answer).not_to_contain_text("refine")
    # A word of the clean answer (not markdown syntax such as "##": answers are rendered as markdown).
    word = next(w for w in clean.output.split() if w.isalpha())
    expect(page.locator(f"#answer-{clean.side}-0")).to_contain_text(word)
    screenshot(page, "flagged-answer-hidden")

    answer.get_by_role("button", name="Show anyway").click()
    expect(page.locator(f"#answer-{hidden.side}-0")).to_contain_text("then refine.")
    page.get_by_role("button", name="👈 A is better").click()
    expect(page.locator("#status")).to_contain_text(
        "This vote will not count: an answer was hidden by the content filter"
    )
    page.reload()
    expect(page.locator(f"#answer-{hidden.side}-0")).to_contain_text("hidden by the content filter")
