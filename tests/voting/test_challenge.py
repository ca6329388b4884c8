"""The proof-of-work challenge on every vote: issued per battle, refused when forged, replayed, expired,
moved to another battle or unsolved, and the battle still votable after any refusal. Spent nonces live in
the real Redis cache."""

from __future__ import annotations

import threading
import time

import pytest
from django.core import signing
from django.core.cache import cache, caches
from django.test import Client

from arena.models import Battle
from tests.support.challenge import challenge_fetch, challenge_solve, pow_solve, pow_wrong, vote_post
from tests.voting.conftest import ready_battle, session_voter
from voting.challenge import ChallengeRefused, challenge_issue, challenge_verify, leading_zero_bits, work_ok
from voting.models import Vote


def post(client: Client, code: str, answer: object, choice: str = "a") -> tuple[int, dict]:
    response = client.post(
        f"/api/battles/{code}/vote", {"choice": choice, "challenge": answer}, content_type="application/json"
    )
    return response.status_code, response.json()


@pytest.fixture
def battle(db, alice, pair) -> Battle:
    return ready_battle(session_voter(alice), *pair)


def test_the_challenge_endpoint_issues_a_signed_token_for_the_requesters_battle(alice, battle):
    response = challenge_fetch(alice, battle.code)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    data = response.json()
    assert data["algorithm"] == "sha256-leading-zero-bits" and data["difficulty"] == 16
    assert data["expires_in"] == 300 and data["captcha"] is None
    assert battle.code in str(signing.Signer(salt="arena.voting.challenge").unsign_object(data["token"]))
    assert challenge_fetch(alice, battle.code).json()["token"] != data["token"], "every challenge is new"


def test_a_challenge_is_refused_for_someone_elses_or_a_missing_battle(alice, bob, battle):
    assert challenge_fetch(bob, battle.code).status_code == 403
    assert challenge_fetch(alice, "no-such-battle").status_code == 404


def test_a_solved_challenge_lets_the_vote_through(alice, battle):
    status, body = post(alice, battle.code, challenge_solve(alice, battle.code))
    assert status == 200 and body["state"]["vote"]["choice"] == "a"


def test_a_vote_without_a_challenge_is_refused_and_nothing_is_stored(alice, battle):
    for answer in (None, {}, "token", {"token": ""}):
        status, body = post(alice, battle.code, answer)
        assert status == 400 and "needs a solved challenge" in body["error"]
    assert not Vote.objects.exists()
    assert Battle.objects.get(id=battle.id).status == Battle.Status.READY


def test_a_malformed_counter_is_refused(alice, battle):
    token = challenge_fetch(alice, battle.code).json()["token"]
    for counter in ("-1", "1e5", "0012", 1.5, True, "9" * 17):
        status, body = post(alice, battle.code, {"token": token, "counter": counter})
        assert status == 400 and "whole number" in body["error"], counter


def test_a_forged_challenge_is_refused_and_the_battle_stays_votable(alice, battle):
    real = challenge_fetch(alice, battle.code).json()["token"]
    payload, signature = real.rsplit(":", 1)
    forged_payload = signing.Signer(key="attacker-key", salt="arena.voting.challenge").sign_object(
        {"b": battle.code, "n": "x", "d": 1, "e": int(time.time()) + 300}
    )
    for token in (forged_payload, f"{payload[:-2]}xx:{signature}", "not-a-token", real + "x"):
        status, body = post(alice, battle.code, {"token": token, "counter": pow_solve(token, 1)})
        assert status == 403 and body["error"] == "This challenge is not one the server issued; try again."
    assert not Vote.objects.exists()
    assert vote_post(alice, battle.code).status_code == 200


def test_a_replayed_challenge_is_refused(alice, battle, pair):
    answer = challenge_solve(alice, battle.code)
    Battle.objects.filter(id=battle.id).update(status=Battle.Status.GENERATING)
    status, body = post(alice, battle.code, answer)
    assert status == 409 and "Wait until both answers" in body["error"]  # the challenge was spent here
    Battle.objects.filter(id=battle.id).update(status=Battle.Status.READY)
    status, body = post(alice, battle.code, answer)
    assert status == 403 and body["error"] == "This challenge was already used."
    assert not Vote.objects.exists()
    assert post(alice, battle.code, challenge_solve(alice, battle.code))[0] == 200


def test_an_expired_challenge_is_refused(alice, battle):
    old = challenge_issue(code=battle.code, now=time.time() - 301)
    answer = {"token": old["token"], "counter": pow_solve(old["token"], old["difficulty"])}
    status, body = post(alice, battle.code, answer)
    assert status == 403 and body["error"] == "This challenge has expired; try again."
    assert vote_post(alice, battle.code).status_code == 200


def test_a_challenge_for_another_battle_is_refused(alice, battle, pair):
    other = ready_battle(battle.voter, *pair)
    status, body = post(alice, other.code, challenge_solve(alice, battle.code))
    assert status == 403 and body["error"] == "This challenge belongs to another battle."
    assert vote_post(alice, other.code).status_code == 200


def test_wrong_work_is_refused(alice, battle):
    issued = challenge_fetch(alice, battle.code).json()
    wrong = pow_wrong(issued["token"], issued["difficulty"])
    status, body = post(alice, battle.code, {"token": issued["token"], "counter": wrong})
    assert status == 403 and body["error"] == "The proof of work is wrong."
    # Refused work does not spend the token: the honest holder can still finish it.
    right = pow_solve(issued["token"], issued["difficulty"])
    assert post(alice, battle.code, {"token": issued["token"], "counter": right})[0] == 200


def test_a_challenge_easier_than_the_current_difficulty_is_refused(alice, battle, settings):
    settings.ARENA_POW_DIFFICULTY = 4
    easy = challenge_solve(alice, battle.code)
    settings.ARENA_POW_DIFFICULTY = 8
    status, body = post(alice, battle.code, easy)
    assert status == 403 and "easier than the server now asks" in body["error"]


def test_difficulty_zero_turns_the_challenge_off(alice, battle, settings):
    settings.ARENA_POW_DIFFICULTY = 0
    data = challenge_fetch(alice, battle.code).json()
    assert data["algorithm"] == "none" and data["token"] is None
    assert post(alice, battle.code, None)[0] == 200


def test_spent_nonces_are_kept_in_the_shared_redis_cache(battle, settings):
    assert type(caches["default"]).__name__ == "RedisCache", "tests run against the real Redis"
    issued = challenge_issue(code=battle.code)
    answer = {"token": issued["token"], "counter": pow_solve(issued["token"], issued["difficulty"])}
    challenge_verify(code=battle.code, answer=answer)
    nonce = signing.Signer(salt="arena.voting.challenge").unsign_object(issued["token"])["n"]
    assert cache.get(f"arena:pow-used:{nonce}") == 1


def test_ten_concurrent_uses_of_one_challenge_let_exactly_one_through(battle):
    issued = challenge_issue(code=battle.code)
    answer = {"token": issued["token"], "counter": pow_solve(issued["token"], issued["difficulty"])}
    barrier = threading.Barrier(10)
    outcomes: list[str] = []

    def use() -> None:
        barrier.wait()
        try:
            challenge_verify(code=battle.code, answer=answer)
            outcomes.append("ok")
        except ChallengeRefused as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=use) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["This challenge was already used."] * 9 + ["ok"]


def test_the_work_check_counts_leading_zero_bits():
    assert leading_zero_bits(bytes([0, 0, 0x0F])) == 20
    assert leading_zero_bits(bytes([0x80])) == 0
    assert leading_zero_bits(bytes(4)) == 32
    token = "t"
    counter = pow_solve(token, 12)
    assert work_ok(token, str(counter), 12)
    assert not work_ok(token, str(pow_wrong(token, 12)), 12)
