"""Solving the vote's proof-of-work challenge the way the browser does, for API tests.

response = vote_post(client, code, "a")          # fetch a challenge, solve it, vote
answer = challenge_solve(client, code)           # just the {"token", "counter"} a vote carries
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpResponse
from django.test import Client


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte:
            return bits + 8 - byte.bit_length()
        bits += 8
    return bits


def pow_solve(token: str, difficulty: int, start: int = 0) -> int:
    """The first counter from `start` whose sha256(token:counter) has `difficulty` leading zero bits."""
    counter = start
    while leading_zero_bits(hashlib.sha256(f"{token}:{counter}".encode()).digest()) < difficulty:
        counter += 1
    return counter


def pow_wrong(token: str, difficulty: int) -> int:
    """A counter that does not solve the challenge."""
    counter = 0
    while leading_zero_bits(hashlib.sha256(f"{token}:{counter}".encode()).digest()) >= difficulty:
        counter += 1
    return counter


def challenge_fetch(client: Client, code: str, **extra: Any) -> HttpResponse:
    return client.get(f"/api/battles/{code}/challenge", **extra)


def challenge_solve(client: Client, code: str, **extra: Any) -> dict[str, Any] | None:
    """A solved challenge for the client's battle; None if the server refused to issue one or needs none."""
    response = challenge_fetch(client, code, **extra)
    if response.status_code != 200:
        return None
    data = response.json()
    if not data["token"]:
        return None
    return {"token": data["token"], "counter": pow_solve(data["token"], data["difficulty"])}


def vote_post(client: Client, code: str, choice: object = "a", **extra: Any) -> HttpResponse:
    """Vote as the page does: a fresh solved challenge with every vote (none if the server refuses one).

    Keyword arguments go to the request (e.g. REMOTE_ADDR="10.0.0.1"); `body` adds fields to the payload.
    """
    body = extra.pop("body", {})
    payload: dict[str, Any] = {"choice": choice, **body}
    solved = challenge_solve(client, code, **extra)
    if solved is not None and "challenge" not in body:
        payload["challenge"] = solved
    return client.post(f"/api/battles/{code}/vote", payload, content_type="application/json", **extra)
