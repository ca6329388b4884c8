"""The site's 404 and 500 answers (arena.error_pages) and the API docs page, through Django's test client.

A 500 is caused for real: the table a view reads is renamed inside the test's transaction (PostgreSQL undoes
the rename with the rollback), as after a deploy whose migration did not run. That is a ProgrammingError, not
the unreachable database that arena.middleware answers with a 503.
"""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from arena.error_pages import SERVER_ERROR

pytestmark = pytest.mark.django_db

FOOTER_DOCS_LINK = '<a href="/api/docs/">API docs</a>'


def _table_away(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_away"')


def test_an_unknown_page_answers_the_site_styled_404_with_a_way_home(client: Client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "<h1>Page not found</h1>" in html
    assert '<a href="/">Back to Arena</a>' in html
    assert 'class="topbar"' in html and FOOTER_DOCS_LINK in html  # the site's frame around it
    assert "Content-Security-Policy" in response.headers


def test_the_404_page_escapes_the_path_it_names(client: Client):
    response = client.get("/%3Cscript%3Ealert(1)%3C/script%3E/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_unknown_api_path_answers_json_not_a_page(client: Client):
    response = client.get("/api/no-such-endpoint")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Nothing is at this address.", "code": "not_found"}


def test_a_request_that_asks_for_json_gets_a_json_404_on_any_path(client: Client):
    response = client.get("/no/such/page/", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_known_api_404_keeps_its_own_message(client: Client):
    response = client.get("/api/battles/nobody-owns-this")
    assert response.status_code == 404
    assert response.json() == {"error": "No battle with this code.", "code": "not_found"}


def test_a_page_that_fails_for_real_answers_the_site_styled_500():
    client = Client(raise_request_exception=False)
    _table_away("arena_battle")
    response = client.get("/b/some-battle-code/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "<h1>Server error</h1>" in html and SERVER_ERROR in html
    assert '<a href="/">Back to Arena</a>' in html and FOOTER_DOCS_LINK in html
    assert "arena_battle" not in html and "Traceback" not in html  # nothing of the failure is shown


def test_an_api_call_that_fails_for_real_answers_a_json_500():
    client = Client(raise_request_exception=False)
    _table_away("arena_battle")
    response = client.get("/api/battles/some-battle-code")
    assert response.status_code == 500
    assert response.json() == {"error": SERVER_ERROR, "code": "server_error"}


def test_the_500_answer_stands_even_when_its_template_cannot_be_rendered(settings):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [], "APP_DIRS": False}]  # no 500.html to find
    client = Client(raise_request_exception=False)
    _table_away("arena_battle")
    response = client.get("/b/some-battle-code/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "<h1>Server error</h1>" in html and '<a href="/">Back to Arena</a>' in html


def test_the_api_docs_page_points_the_vendored_viewer_at_the_openapi_document(client: Client):
    response = client.get(reverse("arena:api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    spec = re.search(r'id="api-docs" class="api-docs" data-spec="([^"]+)"', html)
    assert spec and spec.group(1) == "/api/v1/openapi.json"
    assert json.loads(client.get(spec.group(1)).content)["openapi"].startswith("3.")
    for script in ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/arena/api-docs.js"):
        assert f'<script src="{script}"></script>' in html
        assert client.get(script).status_code == 200
    # No inline script but the import map, which the policy allows by its hash.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline == [' type="importmap"']


def test_the_footer_links_the_api_docs_from_every_site_page(client: Client):
    for path in ("/", "/leaderboard/text/", "/api/docs/", "/no/such/page/"):
        assert FOOTER_DOCS_LINK in client.get(path).content.decode(), path


def test_the_api_docs_page_answers_only_reads(client: Client):
    assert client.post(reverse("arena:api-docs")).status_code == 405
