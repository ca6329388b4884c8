"""Rate limits on votes, battle starts and generations: per voter, per IP and per network, counted in the
shared cache.

The cache is Redis when REDIS_URL is set (every web replica sees the same counters) and process memory in
the embedded default. Each limit is a window that opens at the first hit and lasts `Rate.seconds`; an
atomic increment counts every attempt, refused ones included, so hammering the endpoint never helps.

A request whose address cannot be worked out (voting.identity.client_ip gives None) is counted in one
"unknown" address and network shared by all such requests: a broken proxy header narrows the limits, it
never switches them off. An IPv6 client's address scope is its /64, which one subscriber usually holds
whole (rotating within it would otherwise give a fresh budget per address).
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from arena.errors import ArenaError
from voting.identity import network_of, salted_hash
from voting.rates import Rate, rate_parse

UNKNOWN = "unknown"


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
    rate: Rate | str | None


@dataclass(frozen=True)
class Kind:
    """One limited action: its counter name, what the message calls it, and its settings' prefix."""

    action: str
    noun: str
    setting: str


KINDS = {
    "vote": Kind("vote", "votes", "ARENA_VOTE_RATE_PER"),
    "battle": Kind("battle", "new battles", "ARENA_BATTLE_RATE_PER"),
    "generation": Kind("generation", "generations", "ARENA_GENERATION_RATE_PER"),
}

_WHO = {
    "voter": "from you",
    "ip": "from your network address",
    "network": "from your network",
}


def _rate(value: Rate | str | None) -> Rate | None:
    # Settings hold parsed Rates; a string (e.g. from a test override) is parsed just as strictly.
    return rate_parse(value, name="rate setting") if isinstance(value, str) else value


def _base(action: str, scope: Scope, rate: Rate) -> str:
    return f"arena:rl:{action}:{scope.name}:{scope.key}:{rate}"


def _hit(action: str, scope: Scope, rate: Rate, now: float, cost: int) -> tuple[int, int]:
    """Count one attempt (`cost` units); returns (units in the current window, seconds until it closes).

    One round trip in the usual case (the window is open): this runs on every vote and battle start.
    """
    base = _base(action, scope, rate)
    try:
        count = cache.incr(base, cost)
    except ValueError:  # no window open: this attempt opens one, and both keys live exactly one window
        cache.add(f"{base}:start", now, timeout=rate.seconds)
        cache.add(base, 0, timeout=rate.seconds)
        count = cache.incr(base, cost)
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


def _refusal(noun: str, scope: Scope, rate: Rate, retry_after: int) -> RateLimited:
    return RateLimited(
        f"Too many {noun} {_WHO[scope.name]}: the limit is {rate.count} per "
        f"{duration_text(rate.seconds)}. Try again in {duration_text(retry_after)}.",
        retry_after=retry_after,
    )


def limits_check(
    *, action: str, noun: str, scopes: list[Scope], now: float | None = None, cost: int = 1
) -> None:
    """Count this attempt against every scope's limit; raise RateLimited for the first one over it."""
    now = time.time() if now is None else now
    for scope in scopes:
        rate = _rate(scope.rate)
        if rate is None or not scope.key:
            continue
        count, retry_after = _hit(action, scope, rate, now, cost)
        if count > rate.count:
            raise _refusal(noun, scope, rate, retry_after)


async def limits_peek(*, action: str, noun: str, scopes: list[Scope], cost: int = 1) -> RateLimited | None:
    """The refusal limits_check would give if these scopes are already spent, counting nothing.

    For arena.request_limits, which answers a spent client before its request body is read; the view then
    counts the attempt as usual, so nothing is counted twice.
    """
    now = time.time()
    limited = [(s, r) for s in scopes if s.key and (r := _rate(s.rate)) is not None]
    keys = [_base(action, s, r) for s, r in limited]
    values = await cache.aget_many([*keys, *(f"{k}:start" for k in keys)]) if keys else {}
    for (scope, rate), key in zip(limited, keys, strict=True):
        if int(values.get(key) or 0) + cost > rate.count:
            start = float(values.get(f"{key}:start") or now)
            return _refusal(noun, scope, rate, max(1, math.ceil(start + rate.seconds - now)))
    return None


def address_key(ip: str | None) -> str:
    """The address scope's key: the IPv4 address, an IPv6 address's /64, or the shared unknown bucket."""
    if ip is None:
        return salted_hash(f"ip:{UNKNOWN}")
    address = ipaddress.ip_address(ip)
    if address.version == 6:
        return salted_hash(f"ip:{ipaddress.ip_network(f'{ip}/64', strict=False)}")
    return salted_hash(f"ip:{ip}")


def network_key(ip: str | None) -> str:
    return salted_hash(f"net:{network_of(ip) if ip is not None else UNKNOWN}")


def address_scopes(*, ip: str | None, kind: str) -> list[Scope]:
    """The IP and network scopes (an unknown address included): what rotating sessions cannot escape."""
    prefix = KINDS[kind].setting
    return [
        Scope("ip", address_key(ip), getattr(settings, f"{prefix}_IP")),
        Scope("network", network_key(ip), getattr(settings, f"{prefix}_NETWORK")),
    ]


def voter_scopes(*, voter_id: int | None, kind: str) -> list[Scope]:
    """The voter's scope; none for a visitor without a voter yet (a fresh one has nothing counted)."""
    if voter_id is None:
        return []
    return [Scope("voter", str(voter_id), getattr(settings, f"{KINDS[kind].setting}_VOTER"))]


def request_scopes(*, voter_id: int | None, ip: str | None, kind: str) -> list[Scope]:
    """The voter, IP and network scopes of one request, with the limits configured for `kind`."""
    return [*voter_scopes(voter_id=voter_id, kind=kind), *address_scopes(ip=ip, kind=kind)]


def rate_check(kind: str, *, scopes: list[Scope], cost: int = 1, now: float | None = None) -> None:
    limits_check(action=KINDS[kind].action, noun=KINDS[kind].noun, scopes=scopes, now=now, cost=cost)


def vote_rate_check(*, voter_id: int, ip: str | None, now: float | None = None) -> None:
    rate_check("vote", scopes=request_scopes(voter_id=voter_id, ip=ip, kind="vote"), now=now)


def battle_rate_check(*, voter_id: int | None, ip: str | None, now: float | None = None) -> None:
    """Battles cost GPU time, so starting them is limited too (and their generations, see the views)."""
    rate_check("battle", scopes=request_scopes(voter_id=voter_id, ip=ip, kind="battle"), now=now)


def generation_rate_check(
    *, voter_id: int | None, ip: str | None, generations: int, now: float | None = None
) -> None:
    """`generations` more model calls (two per battle start or continued turn) against the budget."""
    scopes = request_scopes(voter_id=voter_id, ip=ip, kind="generation")
    rate_check("generation", scopes=scopes, cost=generations, now=now)
