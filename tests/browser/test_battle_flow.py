"""The battle by keyboard and its errors in place: Enter sends (Shift+Enter a newline), focus follows the
answers then the vote bar, the announced vote keys vote, a refused vote says why by the vote bar with the time
to wait, Skip and Regenerate, and a failed side neither freezes the other nor loses the prompt."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from arena.models import AuditEntry, Battle, Generation
from tests.browser.conftest import screenshot
from voting.limits import rate_check, voter_scopes
from voting.models import Vote
from voting.rates import Rate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _start(page, url: str, prompt: str) -> None:
    page.goto(url + "/")
    page.locator("#prompt").fill(prompt)
    page.locator("#prompt").press("Enter")
    expect(page).to_have_url(re.compile(r"/b/[\w-]+/$"))


@pytest.mark.parametrize("width", [1366, 390])
def test_enter_sends_focus_moves_to_the_vote_bar_and_a_vote_key_votes(demo_models, asgi_server, page, width):
    page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
    page.goto(asgi_server.url + "/")
    prompt = page.locator("#prompt")
    prompt.fill("First line")
    prompt.press("Shift+Enter")  # a newline, nothing sent
    prompt.type("second line")
    expect(prompt).to_have_value("First line\nsecond line")
    assert not Battle.objects.exists()
    prompt.press("Enter")
    expect(page).to_have_url(re.compile(r"/b/[\w-]+/$"))
    assert Battle.objects.get().conversation == ["First line\nsecond line"]
    vote_a = page.get_by_role("button", name="👈 A is better")
    expect(vote_a).to_be_enabled(timeout=20_000)
    expect(vote_a).to_be_focused()
    expect(vote_a).to_have_attribute("aria-keyshortcuts", "A")
    expect(page.get_by_role("button", name="🤝 Tie")).to_have_attribute("aria-keyshortcuts", "T")
    if width > 400:  # the hint is for keyboards (hidden on touch screens by the layout)
        expect(page.locator("#vote-keys")).to_be_visible()
    expect(page.locator("#vote-keys")).to_contain_text("N (both are bad)")
    screenshot(page, f"flow-vote-bar-focused-{width}")
    page.keyboard.press("n")
    expect(page.locator("#status")).to_contain_text("Thanks for voting")
    assert Vote.objects.get().choice == "both_bad"
    expect(page.get_by_role("button", name="New battle")).to_be_focused()


def test_vote_keys_do_nothing_while_typing(demo_models, asgi_server, page):
    _start(page, asgi_server.url, "Tell me about owls.")
    expect(page.get_by_role("button", name="👈 A is better")).to_be_enabled(timeout=20_000)
    page.locator("#prompt").focus()
    page.keyboard.type("ab tn")  # a follow-up being typed, not votes
    expect(page.locator("#prompt")).to_have_value("ab tn")
    assert not Vote.objects.exists()


def test_a_rate_limited_vote_says_why_by_the_vote_bar_with_the_wait(demo_models, asgi_server, page, settings):
    _start(page, asgi_server.url, "Why is the sky blue?")
    vote_b = page.get_by_role("button", name="👉 B is better")
    expect(vote_b).to_be_enabled(timeout=20_000)
    settings.ARENA_VOTE_RATE_PER_VOTER = Rate(1, 3600)
    # The voter's one vote of the hour is spent (elsewhere): this one is refused with a wait.
    rate_check("vote", scopes=voter_scopes(voter_id=Battle.objects.get().voter_id, kind="vote"))
    vote_b.click()
    error = page.locator("#vote-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile(r"try again in \d+ (s|min|hour)", re.IGNORECASE))
    expect(page.locator("#status")).not_to_contain_text("Vote now")
    expect(page.locator("#error")).to_be_hidden()  # not in the banner by the prompt
    screenshot(page, "flow-vote-refused-1366")
    assert not Vote.objects.exists()
    expect(vote_b).to_be_disabled()  # until the wait is over


def test_skip_is_recorded_not_counted_and_regenerate_streams_a_new_pair(demo_models, asgi_server, page):
    _start(page, asgi_server.url, "Name a river.")
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled(timeout=20_000)
    code = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator("#status")).to_contain_text("answering")  # both sides again: no vote meanwhile
    expect(page.get_by_role("button", name="🤝 Tie")).to_be_enabled(timeout=20_000)
    gens = Generation.objects.filter(battle__code=code)
    assert {g.attempts for g in gens} == {2}
    for gen in gens:
        expect(page.locator(f"#answer-{gen.side}-0")).not_to_have_class(re.compile("running"))
        assert re.findall(r"\w+", page.locator(f"#answer-{gen.side}-0").inner_text()) == re.findall(
            r"\w+", gen.output
        )
    page.get_by_role("button", name="Skip").click()
    expect(page.locator("#status")).to_contain_text("skipped")
    expect(page.locator("#votebar")).to_be_hidden()
    expect(page.get_by_role("button", name="New battle")).to_be_focused()
    screenshot(page, "flow-skipped-1366")
    assert Battle.objects.get(code=code).status == "skipped"
    assert not Vote.objects.exists()
    assert AuditEntry.objects.filter(action__in=["battle.skip", "battle.regenerate"]).count() == 2


def test_a_failed_side_lets_the_other_finish_and_the_prompt_stays(make_model, asgi_server, page, settings):
    settings.ARENA_STREAM_END_WAIT_MS = 0
    make_model(slug="broken-bot", backend_config={"persona": "concise", "fail_rate": 1})
    make_model(slug="slow-bot", backend_config={"persona": "thorough", "delay": 0.03})
    _start(page, asgi_server.url, "Explain tides.")
    code = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.locator("#status")).to_contain_text("failed", timeout=20_000)
    fine = Generation.objects.get(battle__code=code, model__slug="slow-bot")
    answer = page.locator(f"#answer-{fine.side}-0")
    expect(answer).to_have_class(re.compile(r"\bdone\b"), timeout=30_000)  # not frozen mid-stream
    fine.refresh_from_db()
    assert re.findall(r"\w+", answer.inner_text()) == re.findall(r"\w+", fine.output)
    expect(page.locator("#prompt")).to_have_value("Explain tides.")
    screenshot(page, "flow-failed-side-1366")
    page.get_by_role("button", name="New battle").click()
    expect(page.locator("#prompt")).to_have_value("Explain tides.")
    expect(page.locator("#prompt")).to_be_enabled()
    expect(page.locator("#prompt")).to_be_focused()
