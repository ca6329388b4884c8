"""A person's battle in Chromium: prompt, two live streams, vote, reveal, new battle."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from arena.models import Battle
from tests.browser.conftest import screenshot
from voting.models import Vote

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RENDER_MARKDOWN = """async (text) => {
  const {renderMarkdown} = await import("/static/arena/markdown.js");
  const node = document.createElement("div");
  renderMarkdown(node, text, {final: true});
  return node.innerHTML;
}"""


def test_a_visitor_battles_votes_and_sees_the_models_revealed(demo_models, asgi_server, page, settings):
    page.goto(asgi_server.url + "/")
    expect(page.get_by_role("heading", name="Text battle")).to_be_visible()
    page.get_by_role("button", name="🎲 Random prompt").click()
    expect(page.locator("#prompt")).not_to_have_value("")
    page.locator("#prompt").fill("Why is the sky blue?")
    page.get_by_role("button", name="Send").click()

    expect(page).to_have_url(re.compile(r"/b/[\w-]+/$"))
    expect(page.locator("#answer-a-0")).not_to_be_empty()
    expect(page.locator("#answer-b-0")).not_to_be_empty()
    vote_a = page.get_by_role("button", name="👈 A is better")
    expect(vote_a).to_be_enabled(timeout=20_000)
    expect(page.locator("#demo-banner")).to_be_visible()
    expect(page.locator("#reveal-a")).to_be_empty()
    screenshot(page, "text-battle-before-vote")

    battle = Battle.objects.get()
    # The answer on screen is the stored output rendered as markdown (static/arena/markdown.js), exactly.
    stored = battle.generations.get(side="a").output
    assert page.locator("#answer-a-0").inner_html() == page.evaluate(RENDER_MARKDOWN, stored)
    html = page.content()
    assert battle.model_a.slug not in html and battle.model_b.display_name not in html

    vote_a.click()
    expect(page.locator("#reveal-a")).to_have_text(re.compile(re.escape(battle.model_a.display_name)))
    expect(page.locator("#reveal-b")).to_have_text(re.compile(re.escape(battle.model_b.display_name)))
    expect(page.locator("#status")).to_contain_text("Thanks for voting")
    screenshot(page, "text-battle-after-vote")
    assert Vote.objects.get().choice == "a"

    page.reload()
    expect(page.locator("#reveal-a")).to_have_text(re.compile(re.escape(battle.model_a.display_name)))
    page.get_by_role("button", name="New battle").click()
    expect(page.locator("#battle")).to_be_hidden()
    expect(page.locator("#prompt")).to_be_enabled()


def test_an_oversized_prompt_is_refused_in_the_page_and_nothing_starts(
    demo_models, asgi_server, page, settings
):
    settings.ARENA_MAX_PROMPT_CHARS = 50
    page.goto(asgi_server.url + "/")
    page.locator("#prompt").fill("x" * 51)
    expect(page.locator("#error")).to_contain_text("the limit is 50")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#battle")).to_be_hidden()
    assert not Battle.objects.exists()


def test_a_follow_up_turn_streams_into_both_panels(demo_models, asgi_server, page):
    page.goto(asgi_server.url + "/")
    page.locator("#prompt").fill("Tell me about owls.")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled(timeout=20_000)
    page.locator("#prompt").fill("And about hawks?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#answer-a-1")).not_to_be_empty()
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled(timeout=20_000)
    expect(page.locator("#answer-b-1")).not_to_have_class(re.compile("running"))
    page.get_by_role("button", name="🤝 Tie").click()
    expect(page.locator("#status")).to_contain_text("Thanks for voting")
    assert Battle.objects.get().turn_count == 2
