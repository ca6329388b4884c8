"""The API docs page and the 404 and 500 pages in Chromium: under the real Content-Security-Policy with every
violation collected, at phone and desktop widths, with no sideways scrolling (a hostile 2,000-character path
too)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from playwright.sync_api import expect

from arena.error_pages import server_error
from arena.openapi import openapi_document
from tests.browser.conftest import screenshot
from tests.security.test_csp_in_browser import Violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {1366: 900, 390: 844}
SIDEWAYS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture(params=list(WIDTHS), ids=lambda width: f"{width}px")
def sized_page(request, browser):
    width = request.param
    context = browser.new_context(viewport={"width": width, "height": WIDTHS[width]})
    page = context.new_page()
    page.width = width
    yield page
    context.close()


def test_the_api_docs_page_shows_every_endpoint_and_answers_a_read_under_the_policy(asgi_server, sized_page):
    page = sized_page
    violations = Violations(page)
    page.goto(asgi_server.url + "/")  # through the footer's link, as a visitor finds it
    page.get_by_role("link", name="API docs").click()
    expect(page).to_have_url(asgi_server.url + "/api/docs/")
    expect(page.locator("#api-docs")).to_have_attribute("aria-busy", "false", timeout=30_000)

    shown = page.locator(".opblock-summary-path").evaluate_all("els => els.map(e => e.dataset.path)")
    assert sorted(shown) == sorted(openapi_document()["paths"])

    stats = page.locator(".opblock-get").filter(has_text="/api/v1/stats")
    stats.locator(".opblock-summary-control").click()
    stats.get_by_role("button", name="Try it out").click()
    stats.get_by_role("button", name="Execute").click()
    expect(stats.locator(".live-responses-table .response .response-col_status")).to_have_text("200")
    expect(stats.locator(".live-responses-table .microlight").first).to_contain_text("battles")

    assert page.evaluate(SIDEWAYS) <= 0, "the docs page scrolls sideways"
    screenshot(page, f"api-docs-{page.width}")
    assert violations.all() == []


def test_the_api_docs_page_offers_no_try_out_for_writes(asgi_server, page):
    page.goto(asgi_server.url + "/api/docs/")
    start = page.locator(".opblock-post").filter(has_text="/api/battles").first
    start.locator(".opblock-summary-control").click()
    expect(start.locator(".opblock-body")).to_be_visible()
    expect(start.get_by_role("button", name="Try it out")).to_have_count(0)


def test_the_404_page_holds_a_hostile_path_and_leads_home(asgi_server, sized_page):
    page = sized_page
    violations = Violations(page)
    response = page.goto(asgi_server.url + "/<b>bold</b>/" + "x" * 2000)
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    shown = page.locator(".error-path")
    expect(shown).to_contain_text("<b>bold</b>")  # as text, not markup
    assert len(shown.inner_text()) <= 160  # cut short, not 2,000 characters of it
    assert page.evaluate(SIDEWAYS) <= 0, "the 404 page scrolls sideways"
    screenshot(page, f"error-404-long-path-{page.width}")
    page.get_by_role("link", name="Back to Arena").click()
    expect(page).to_have_url(asgi_server.url + "/")
    assert violations.all() == []


def test_the_500_page_holds_at_phone_and_desktop_widths_and_leads_home(asgi_server, sized_page):
    """The handler's own answer, served in place of a page (a live server has no view that fails on demand;
    tests/arena/test_error_pages.py makes one fail for real)."""
    page = sized_page
    violations = Violations(page)
    answer = server_error(RequestFactory().get("/b/some-battle/"))
    assert answer.status_code == 500
    page.route(
        asgi_server.url + "/b/some-battle/",
        lambda route: route.fulfill(status=500, body=answer.content, content_type="text/html; charset=utf-8"),
    )
    response = page.goto(asgi_server.url + "/b/some-battle/")
    assert response.status == 500
    expect(page.get_by_role("heading", name="Server error")).to_be_visible()
    expect(page.locator(".site-footer")).to_contain_text("API docs")  # the site's frame and stylesheet
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(247, 248, 250)"
    assert page.evaluate(SIDEWAYS) <= 0, "the 500 page scrolls sideways"
    screenshot(page, f"error-500-{page.width}")
    page.get_by_role("link", name="Back to Arena").click()
    expect(page).to_have_url(asgi_server.url + "/")
    assert violations.all() == []
