"""Rate limits on votes (per voter, per IP, per network) answer 429 with Retry-After, store nothing, and are
counted in the shared Redis cache. Limits come from settings parsed strictly."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache, caches
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from arena.models import Battle
from tests.support.challenge import vote_post
from tests.voting.conftest import fresh_ip, ready_battle, session_voter
from voting.limits import (
    RateLimited,
    Scope,
    address_scopes,
    battle_rate_check,
    duration_text,
    generation_rate_check,
    limits_check,
    limits_peek,
    rate_check,
)
from voting.models import Vote
from voting.rates import Rate, env_rate, rate_parse


@pytest.fixture
def generous(settings):
    """Every limit far away, so a test can tighten just the one it is about."""
    for kind in ("VOTE", "BATTLE", "GENERATION"):
        for scope in ("VOTER", "IP", "NETWORK"):
            setattr(settings, f"ARENA_{kind}_RATE_PER_{scope}", Rate(1000, 3600))
    return settings


def battles(client: Client, pair, n: int) -> list[Battle]:
    voter = session_voter(client)
    return [ready_battle(voter, *pair) for _ in range(n)]


def test_a_voter_over_the_limit_gets_429_with_retry_after_and_nothing_is_stored(
    db, alice, pair, ip, generous
):
    generous.ARENA_VOTE_RATE_PER_VOTER = "2/3600"
    first, second, third = battles(alice, pair, 3)
    assert vote_post(alice, first.code, REMOTE_ADDR=ip).status_code == 200
    assert vote_post(alice, second.code, REMOTE_ADDR=ip).status_code == 200
    refused = vote_post(alice, third.code, REMOTE_ADDR=ip)
    assert refused.status_code == 429
    assert 3590 <= int(refused["Retry-After"]) <= 3600
    body = refused.json()
    assert body["code"] == "rate_limited" and body["retry_after"] == int(refused["Retry-After"])
    assert body["error"] == "Too many votes from you: the limit is 2 per 1 hour. Try again in 1 hour."
    assert Vote.objects.count() == 2
    assert Battle.objects.get(id=third.id).status == Battle.Status.READY


def test_the_ip_limit_covers_every_session_on_that_address(db, alice, bob, pair, ip, generous):
    generous.ARENA_VOTE_RATE_PER_IP = "2/600"
    (a1,) = battles(alice, pair, 1)
    b1, b2 = battles(bob, pair, 2)
    assert vote_post(alice, a1.code, REMOTE_ADDR=ip).status_code == 200
    assert vote_post(bob, b1.code, REMOTE_ADDR=ip).status_code == 200
    refused = vote_post(bob, b2.code, REMOTE_ADDR=ip)
    assert refused.status_code == 429 and "from your network address" in refused.json()["error"]
    assert "10 minutes" in refused.json()["error"] and int(refused["Retry-After"]) <= 600
    assert vote_post(bob, b2.code, REMOTE_ADDR=fresh_ip()).status_code == 200, (
        "another address is not limited"
    )


def test_the_network_limit_covers_neighbouring_addresses(db, alice, bob, pair, generous):
    generous.ARENA_VOTE_RATE_PER_NETWORK = "1/600"
    base = fresh_ip().rsplit(".", 1)[0]
    (a1,) = battles(alice, pair, 1)
    (b1,) = battles(bob, pair, 1)
    assert vote_post(alice, a1.code, REMOTE_ADDR=f"{base}.7").status_code == 200
    refused = vote_post(bob, b1.code, REMOTE_ADDR=f"{base}.8")
    assert refused.status_code == 429 and "from your network:" in refused.json()["error"]


def test_refused_attempts_count_too_so_hammering_never_helps(db, alice, pair, ip, generous):
    generous.ARENA_VOTE_RATE_PER_VOTER = "3/3600"
    (battle,) = battles(alice, pair, 1)
    for _ in range(3):  # no challenge: refused with 400, but each attempt is counted
        response = alice.post(f"/api/battles/{battle.code}/vote", {"choice": "a"}, REMOTE_ADDR=ip)
        assert response.status_code == 400
    assert vote_post(alice, battle.code, REMOTE_ADDR=ip).status_code == 429


def test_the_window_opens_again_after_it_closes(db):
    scope = Scope("voter", f"window-{time.time()}", Rate(1, 1))
    limits_check(action="test", noun="tries", scopes=[scope])
    with pytest.raises(RateLimited) as refused:
        limits_check(action="test", noun="tries", scopes=[scope])
    assert refused.value.retry_after == 1 and refused.value.status == 429
    time.sleep(1.1)
    limits_check(action="test", noun="tries", scopes=[scope])


def test_counters_live_in_the_shared_redis_cache(db, generous):
    assert type(caches["default"]).__name__ == "RedisCache"
    generous.ARENA_BATTLE_RATE_PER_VOTER = "1/60"
    battle_rate_check(voter_id=987654321, ip=fresh_ip())
    assert cache.get("arena:rl:battle:voter:987654321:1/60") == 1
    with pytest.raises(RateLimited, match="Too many new battles from you"):
        battle_rate_check(voter_id=987654321, ip=fresh_ip())


def test_a_limit_set_to_off_is_not_enforced(db, alice, pair, ip, generous):
    generous.ARENA_VOTE_RATE_PER_VOTER = None
    for battle in battles(alice, pair, 3):
        assert vote_post(alice, battle.code, REMOTE_ADDR=ip).status_code == 200


@pytest.mark.parametrize("value", ["30", "30/", "/60", "thirty/3600", "0/60", "5/0", "-1/60", "3.5/60", ""])
def test_rate_settings_reject_anything_but_count_per_seconds(value):
    with pytest.raises(ImproperlyConfigured, match="RATE"):
        rate_parse(value, name="RATE")


def test_rate_settings_parse_counts_windows_and_off(monkeypatch):
    assert rate_parse(" 30 / 3600 ") == Rate(30, 3600)
    assert rate_parse("off") is None
    monkeypatch.setenv("X_RATE", "12/60")
    assert env_rate("X_RATE", "1/1") == Rate(12, 60)
    monkeypatch.setenv("X_RATE", "lots")
    with pytest.raises(ImproperlyConfigured, match='X_RATE must look like "30/3600"'):
        env_rate("X_RATE", "1/1")


def test_durations_read_naturally():
    assert [duration_text(s) for s in (1, 59, 60, 61, 3600, 5400, 86400)] == [
        "1 second",
        "59 seconds",
        "1 minute",
        "2 minutes",
        "1 hour",
        "2 hours",
        "24 hours",
    ]


def test_a_generation_budget_counts_units_not_calls(db, generous):
    generous.ARENA_GENERATION_RATE_PER_VOTER = "5/3600"
    ip = fresh_ip()
    generation_rate_check(voter_id=424242, ip=ip, generations=2)
    generation_rate_check(voter_id=424242, ip=ip, generations=2)
    with pytest.raises(RateLimited, match="Too many generations from you: the limit is 5 per 1 hour"):
        generation_rate_check(voter_id=424242, ip=ip, generations=2)


def test_unknown_addresses_share_one_limited_bucket(db, generous):
    generous.ARENA_BATTLE_RATE_PER_IP = "2/600"
    battle_rate_check(voter_id=None, ip=None)
    battle_rate_check(voter_id=None, ip=None)
    with pytest.raises(RateLimited, match="from your network address"):
        battle_rate_check(voter_id=None, ip=None)
    battle_rate_check(voter_id=None, ip=fresh_ip())  # a known address keeps its own budget


async def test_a_peek_sees_a_spent_budget_and_counts_nothing(generous):
    generous.ARENA_BATTLE_RATE_PER_IP = "2/600"
    ip = fresh_ip()
    scopes = address_scopes(ip=ip, kind="battle")
    for _ in range(3):
        assert await limits_peek(action="battle", noun="new battles", scopes=scopes) is None
    await sync_to_async(rate_check)("battle", scopes=scopes, cost=2)
    refusal = await limits_peek(action="battle", noun="new battles", scopes=scopes)
    assert refusal is not None and refusal.status == 429 and 590 <= refusal.retry_after <= 600
    assert "Too many new battles from your network address" in refusal.message
