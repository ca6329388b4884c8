"""Optional Turnstile / hCaptcha verification, against a real local siteverify server (no network)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.challenge import challenge_fetch, vote_post
from tests.voting.conftest import ready_battle, session_voter
from tests.voting.siteverify import SiteverifyServer
from voting.models import Vote

SECRET = "0x-test-secret"


@pytest.fixture
def siteverify(settings):
    with SiteverifyServer(SECRET, slow_seconds=1.5) as server:
        settings.ARENA_CAPTCHA_PROVIDER = "turnstile"
        settings.ARENA_CAPTCHA_SITE_KEY = "0x-site-key"
        settings.ARENA_CAPTCHA_SECRET = SECRET
        settings.ARENA_CAPTCHA_VERIFY_URL = server.url
        settings.ARENA_CAPTCHA_TIMEOUT = 0.5
        yield server


def cast(client, battle, ip, captcha):
    response = vote_post(client, battle.code, REMOTE_ADDR=ip, body={"captcha": captcha} if captcha else {})
    return response.status_code, response.json()


def test_the_page_learns_the_provider_and_site_key_but_never_the_secret(db, alice, pair, siteverify):
    battle = ready_battle(session_voter(alice), *pair)
    data = challenge_fetch(alice, battle.code).json()
    assert data["captcha"] == {"provider": "turnstile", "site_key": "0x-site-key"}
    assert SECRET not in str(data)


def test_a_passed_captcha_is_verified_server_side_and_the_vote_counts(db, alice, pair, ip, siteverify):
    battle = ready_battle(session_voter(alice), *pair)
    status, _ = cast(alice, battle, ip, "pass")
    assert status == 200 and Vote.objects.get().counted
    assert siteverify.requests == [{"secret": SECRET, "response": "pass", "remoteip": ip}]


def test_a_failed_captcha_is_refused_and_the_battle_stays_votable(db, alice, pair, ip, siteverify):
    battle = ready_battle(session_voter(alice), *pair)
    status, body = cast(alice, battle, ip, "wrong")
    assert status == 403 and body["error"] == "The CAPTCHA was not accepted; please solve it again."
    status, body = cast(alice, battle, ip, "stale")
    assert status == 403 and "expired or was already used" in body["error"]
    assert not Vote.objects.exists()
    assert cast(alice, battle, ip, "pass")[0] == 200


def test_a_missing_captcha_answer_is_refused_without_asking_the_provider(db, alice, pair, ip, siteverify):
    battle = ready_battle(session_voter(alice), *pair)
    status, body = cast(alice, battle, ip, None)
    assert status == 400 and body["error"] == "Complete the CAPTCHA before voting."
    assert siteverify.requests == []


@pytest.mark.parametrize("token", ["slow", "broken"])
def test_a_provider_that_times_out_or_fails_refuses_the_vote(db, alice, pair, ip, siteverify, token):
    battle = ready_battle(session_voter(alice), *pair)
    status, body = cast(alice, battle, ip, token)
    assert status == 503 and "could not be completed" in body["error"]
    assert not Vote.objects.exists()


def test_hcaptcha_also_sends_the_site_key(db, alice, pair, ip, siteverify, settings):
    settings.ARENA_CAPTCHA_PROVIDER = "hcaptcha"
    battle = ready_battle(session_voter(alice), *pair)
    assert cast(alice, battle, ip, "pass")[0] == 200
    assert siteverify.requests[0]["sitekey"] == "0x-site-key"


def _settings_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='arena.settings'; django.setup()"
    clean = {"PATH": "/usr/bin:/bin", "ARENA_VAR_DIR": "/tmp/arena-settings-test", **env}
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ARENA_CAPTCHA_PROVIDER": "turnstile"},
            "ARENA_CAPTCHA_SECRET and ARENA_CAPTCHA_SITE_KEY must be set",
        ),
        ({"ARENA_CAPTCHA_PROVIDER": "recaptcha"}, "ARENA_CAPTCHA_PROVIDER must be one of"),
        ({"ARENA_POW_DIFFICULTY": "40"}, "ARENA_POW_DIFFICULTY must be at most 32"),
        ({"ARENA_VOTE_RATE_PER_IP": "lots"}, 'ARENA_VOTE_RATE_PER_IP must look like "30/3600"'),
    ],
)
def test_bad_integrity_settings_stop_the_process(env, message):
    result = _settings_with(env)
    assert result.returncode != 0 and message in result.stderr
