"""Password guessing on the admin login is rate limited per client address."""

from __future__ import annotations

import pytest
from django.test import Client

from voting.rates import rate_parse


@pytest.mark.django_db
def test_the_admin_login_answers_429_after_too_many_attempts(client, settings):
    settings.ARENA_ADMIN_LOGIN_RATE = rate_parse("3/300", name="ARENA_ADMIN_LOGIN_RATE")
    for _ in range(3):
        response = client.post(
            "/admin/login/", {"username": "root", "password": "guess"}, REMOTE_ADDR="203.0.113.9"
        )
        assert response.status_code == 200  # the form again, with its error
    response = client.post(
        "/admin/login/", {"username": "root", "password": "guess"}, REMOTE_ADDR="203.0.113.9"
    )
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    other = client.post(
        "/admin/login/", {"username": "root", "password": "guess"}, REMOTE_ADDR="198.51.100.7"
    )
    assert other.status_code == 200


@pytest.mark.django_db
def test_sign_ins_from_an_unknown_address_share_one_limited_bucket(settings):
    """No peer address (or one that cannot be parsed) is not "no limit": such attempts share one budget."""
    settings.ARENA_ADMIN_LOGIN_RATE = rate_parse("2/300", name="ARENA_ADMIN_LOGIN_RATE")
    statuses = [
        Client()
        .post("/admin/login/", {"username": "root", "password": "guess"}, REMOTE_ADDR=peer)
        .status_code
        for peer in ("", "not-an-address", "")
    ]
    assert statuses == [200, 200, 429]
