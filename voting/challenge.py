"""Self-hosted proof of work on every vote: no third party, works offline.

The server hands out a signed token bound to one battle, with a random nonce, an expiry and a difficulty.
The browser finds a `counter` such that sha256(token + ":" + counter) starts with `difficulty` zero bits
(2**difficulty hashes on average) and sends it with the vote. The server checks the signature, the battle,
the expiry and the work, then spends the nonce in the shared cache so the token cannot be replayed.
Difficulty 0 (ARENA_POW_DIFFICULTY=0) turns the challenge off.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache

from arena.errors import ArenaError, InvalidInput

ALGORITHM = "sha256-leading-zero-bits"
_SALT = "arena.voting.challenge"
_COUNTER = re.compile(r"^(0|[1-9][0-9]{0,15})$")
_MAX_TOKEN = 1024
_COUNTER_ROOM = 10  # digits: 10**10 attempts is far beyond any difficulty the settings allow in practice


class ChallengeRefused(ArenaError):
    status = 403
    code = "challenge_refused"


def challenge_enabled() -> bool:
    return settings.ARENA_POW_DIFFICULTY > 0


def challenge_issue(*, code: str, now: float | None = None) -> dict[str, Any]:
    """A fresh challenge for one battle (the caller has checked the requester owns it)."""
    if not challenge_enabled():
        return {"algorithm": "none", "difficulty": 0, "token": None, "expires_in": None}
    now = time.time() if now is None else now
    ttl = settings.ARENA_POW_TTL
    payload = {
        "b": code,
        "n": secrets.token_urlsafe(12),
        "d": settings.ARENA_POW_DIFFICULTY,
        "e": int(now) + ttl,
    }
    return {"algorithm": ALGORITHM, "difficulty": payload["d"], "token": _sign(payload), "expires_in": ttl}


def _sign(payload: dict[str, Any]) -> str:
    """Sign, padding the payload so that "token:counter" ends in the token's last SHA-256 block.

    The browser hashes the token's full 64-byte blocks once; with room left in the last one for the counter
    and SHA-256's 9 bytes of padding, every attempt costs one compression instead of two.
    """
    for pad in range(64):
        token = signing.Signer(salt=_SALT).sign_object({**payload, "p": "x" * pad})
        if (len(token) + 1) % 64 <= 64 - 9 - _COUNTER_ROOM:
            return token
    return token


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte:
            return bits + 8 - byte.bit_length()
        bits += 8
    return bits


def work_ok(token: str, counter: str, difficulty: int) -> bool:
    digest = hashlib.sha256(f"{token}:{counter}".encode()).digest()
    return leading_zero_bits(digest) >= difficulty


def _answer(answer: object) -> tuple[str, str]:
    """(token, counter) from the vote's `challenge` field, or a 400 saying what is missing."""
    if not isinstance(answer, dict) or not answer.get("token"):
        raise InvalidInput("This vote needs a solved challenge. Reload the page and vote again.")
    token, counter = answer.get("token"), answer.get("counter")
    if isinstance(counter, int) and not isinstance(counter, bool):
        counter = str(counter)
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        raise InvalidInput("The challenge token must be the text the server sent.")
    if not isinstance(counter, str) or not _COUNTER.match(counter):
        raise InvalidInput("The challenge counter must be a whole number from 0 to 16 digits.")
    return token, counter


def _payload(token: str) -> dict[str, Any]:
    try:
        payload = signing.Signer(salt=_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):
        raise ChallengeRefused("This challenge is not one the server issued; try again.") from None
    if not isinstance(payload, dict) or set(payload) != {"b", "n", "d", "e", "p"}:
        raise ChallengeRefused("This challenge is not one the server issued; try again.")
    return payload


def challenge_verify(*, code: str, answer: object, now: float | None = None) -> None:
    """Accept a solved challenge for battle `code` once; raise InvalidInput or ChallengeRefused otherwise.

    The checks run cheapest first and the nonce is spent only when everything else holds, so a refused
    answer never burns a token the honest holder could still use.
    """
    if not challenge_enabled():
        return
    token, counter = _answer(answer)
    payload = _payload(token)
    now = time.time() if now is None else now
    if payload["b"] != code:
        raise ChallengeRefused("This challenge belongs to another battle.")
    if payload["e"] < now:
        raise ChallengeRefused("This challenge has expired; try again.")
    if payload["d"] < settings.ARENA_POW_DIFFICULTY:
        raise ChallengeRefused("This challenge is easier than the server now asks for; try again.")
    if not work_ok(token, counter, payload["d"]):
        raise ChallengeRefused("The proof of work is wrong.")
    # Kept a minute past the expiry: after that the expiry check refuses the token by itself.
    if not cache.add(f"arena:pow-used:{payload['n']}", 1, timeout=int(payload["e"] - now) + 60):
        raise ChallengeRefused("This challenge was already used.")
