"""With PostgreSQL unreachable, pages answer 503 with a clear message, never a traceback."""

from __future__ import annotations

import copy

import pytest
from django.db import connection


@pytest.fixture
def database_down(django_db_blocker):
    """Point the connection (and its pool) at a port where nothing listens, as if PostgreSQL had stopped."""
    with django_db_blocker.unblock():
        saved = copy.deepcopy(connection.settings_dict)
        connection.close()
        connection.close_pool()
        connection.settings_dict["PORT"] = 1
        pool = connection.settings_dict.get("OPTIONS", {}).get("pool")
        if isinstance(pool, dict):
            connection.settings_dict["OPTIONS"]["pool"] = {**pool, "min_size": 0, "timeout": 1.0}
        try:
            yield
        finally:
            connection.close()
            connection.close_pool()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved)


def test_an_api_call_gets_a_json_503_with_retry_after(client, database_down):
    response = client.get("/api/battles/some-code")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "database cannot be reached" in response.json()["error"]


def test_a_page_gets_an_html_503(client, database_down):
    response = client.get("/b/some-code/")
    assert response.status_code == 503
    body = response.content.decode()
    assert "Temporarily unavailable" in body and "Traceback" not in body


def test_a_vote_while_the_database_is_down_is_refused_with_503_so_the_page_retries(client, database_down):
    response = client.post("/api/battles/some-code/vote", {"choice": "a"}, content_type="application/json")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert response.json()["code"] == "unavailable"
