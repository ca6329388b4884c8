"""The leaderboard page in Chromium: table, plots, and a live update when a new snapshot lands."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ranking.services import leaderboard_compute
from tests.browser.conftest import screenshot
from tests.ranking.test_leaderboard_site import battle_voted, seed_votes
from voting.models import Voter

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_leaderboard_shows_its_plots_and_updates_after_a_vote_is_recomputed(
    make_model, asgi_server, page, settings
):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 5
    models = [
        make_model(slug=s, display_name=s.title(), organization="Lab") for s in ("alpha", "beta", "gamma")
    ]
    seed_votes(None, models, n=60)
    leaderboard_compute(modality="text")

    page.goto(asgi_server.url + "/leaderboard/text/")
    rows = page.locator("#board tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Alpha")
    expect(page.locator("#plot-ratings circle.rating-dot")).to_have_count(3)
    expect(page.locator("#plot-winrate rect.cell")).to_have_count(9)
    expect(page.locator("#plot-battles rect.cell")).to_have_count(9)
    expect(page.locator("#plot-history polyline.series")).to_have_count(3)
    expect(page.locator("#updated")).to_contain_text("60 votes")
    screenshot(page, "leaderboard")

    page.get_by_role("button", name="Model").click()
    expect(rows.first).to_contain_text("Alpha")
    page.get_by_role("button", name="Model").click()
    expect(rows.first).to_contain_text("Gamma")

    battle_voted(Voter.objects.create(session_hash="late"), models[2], models[0], "a")
    leaderboard_compute(modality="text")
    expect(page.locator("#updated")).to_contain_text("61 votes", timeout=10_000)


def test_a_young_board_says_its_models_are_provisional_instead_of_showing_an_empty_table(
    make_model, asgi_server, page, settings
):
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 50
    models = [make_model(slug=s, display_name=s.title()) for s in ("alpha", "beta", "gamma")]
    seed_votes(None, models, n=6)
    leaderboard_compute(modality="text")

    page.goto(asgi_server.url + "/leaderboard/text/")
    note = page.locator("#all-provisional")
    expect(note).to_be_visible()
    expect(note).to_contain_text("All 3 models are still provisional")
    expect(page.locator("#board tbody tr")).to_have_count(0)
    page.locator("#provisional").check()
    expect(page.locator("#board tbody tr")).to_have_count(3)
    expect(note).to_be_hidden()
