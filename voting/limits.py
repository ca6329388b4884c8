"""Rate limits on votes and battle starts: per voter, per IP and per network, counted in the shared cache.

The cache is Redis when REDIS_URL is set (every web replica sees the same counters) and process memory in
the embedded default. Each limit is a window that opens at the first hit and lasts `Rate.seconds`; an
atomic increment counts every attempt, refused ones included, so hammering the endpoint never helps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from arena.errors import ArenaError
from voting.identity import network_of, salted_hash
from voting.rates import Rate, rate_parse


class RateLimited(ArenaError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(frozen=True)
class Scope:
    name: str  # what the limit is per: "voter", "ip" or "network"
    key: str
    rate: Rate | None


_WHO = {
    "voter": "from you",
    "ip": "from your network address",
    "network": "from your network",
}


def _rate(value: Rate | str | None) -> Rate | None:
    # Settings hold parsed Rates; a string (e.g. from a test override) is parsed just as strictly.
    return rate_parse(value, name="rate setting") if isinstance(value, str) else value


def _hit(action: str, scope: Scope, rate: Rate, now: float) -> tuple[int, int]:
    """Count one attempt; returns (attempts in the current window, seconds until it closes).

    One round trip in the usual case (the window is open): this runs on every vote and battle start.
    """
    base = f"arena:rl:{action}:{scope.name}:{scope.key}:{rate}"
    try:
        count = cache.incr(base)
    except ValueError:  # no window open: this attempt opens one, and both keys live exactly one window
        cache.add(f"{base}:start", now, timeout=rate.seconds)
        cache.add(base, 0, timeout=rate.seconds)
        count = cache.incr(base)
    if count <= rate.count:
        return count, 0
    start = cache.get(f"{base}:start", now)
    return count, max(1, math.ceil(float(start) + rate.seconds - now))


def duration_text(seconds: int) -> str:
    """Rounded up to the unit people would say: 59 s, 2 minutes, 1 hour (never "60 minutes")."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(seconds / 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def limits_check(*, action: str, noun: str, scopes: list[Scope], now: float | None = None) -> None:
    """Count this attempt against every scope's limit; raise RateLimited for the first one over it."""
    now = time.time() if now is None else now
    for scope in scopes:
        rate = _rate(scope.rate)
        if rate is None or not scope.key:
            continue
        count, retry_after = _hit(action, scope, rate, now)
        if count > rate.count:
            raise RateLimited(
                f"Too many {noun} {_WHO[scope.name]}: the limit is {rate.count} per "
                f"{duration_text(rate.seconds)}. Try again in {duration_text(retry_after)}.",
                retry_after=retry_after,
            )


def request_scopes(*, voter_id: int, ip: str | None, kind: str) -> list[Scope]:
    """The voter, IP and network scopes of one request, with the limits configured for `kind`."""
    prefix = f"ARENA_{kind.upper()}_RATE_PER"
    return [
        Scope("voter", str(voter_id), getattr(settings, f"{prefix}_VOTER")),
        Scope("ip", salted_hash(f"ip:{ip}") if ip else "", getattr(settings, f"{prefix}_IP")),
        Scope(
            "network",
            salted_hash(f"net:{network_of(ip)}") if ip else "",
            getattr(settings, f"{prefix}_NETWORK"),
        ),
    ]


def vote_rate_check(*, voter_id: int, ip: str | None, now: float | None = None) -> None:
    limits_check(
        action="vote", noun="votes", scopes=request_scopes(voter_id=voter_id, ip=ip, kind="vote"), now=now
    )


def battle_rate_check(*, voter_id: int, ip: str | None, now: float | None = None) -> None:
    """For the battle-start view: battles cost GPU time, so starting them is limited too."""
    limits_check(
        action="battle",
        noun="new battles",
        scopes=request_scopes(voter_id=voter_id, ip=ip, kind="battle"),
        now=now,
    )
