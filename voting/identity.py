"""Pseudonymous voter identity: salted hashes of the session, the IP and its network; and which IP a request
comes from.

A raw IP is never stored unless the operator sets ARENA_STORE_RAW_IP; the network (/24 for IPv4,
/48 for IPv6) is kept as a hash too, so rings of accounts on one network can be found later.

Behind a reverse proxy the client writes the leftmost X-Forwarded-For entries itself, so only the addresses
the operator's own proxies appended can be believed: `client_ip` reads the header only when the peer is a
trusted proxy (ARENA_TRUSTED_PROXIES) or the operator says how many proxies stand in front
(ARENA_PROXY_COUNT), and takes the rightmost address that is not a proxy. Anything it cannot parse gives
None, which the rate limits treat as one shared "unknown" address (limited, never unlimited).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# The peer of a unix-socket connection has no address; "unix" in ARENA_TRUSTED_PROXIES trusts such a peer.
UNIX_PEER = "unix"
_warned_at = 0.0


def salted_hash(value: str) -> str:
    return hmac.new(settings.ARENA_HASH_SALT.encode(), value.encode(), hashlib.sha256).hexdigest()


def address_parse(value: object) -> IPAddress | None:
    """One address as a proxy writes it ("203.0.113.9", "203.0.113.9:5678", "[2001:db8::1]:443"), IPv4-mapped
    IPv6 folded to IPv4; None for anything else ("unknown", garbage, an empty value)."""
    text = str(value or "").strip()
    if text.startswith("[") and "]" in text:  # [v6] or [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port (a bare v6 address has several colons)
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[tuple[IPNetwork, ...], bool]:
    nets = tuple(ipaddress.ip_network(e, strict=False) for e in entries if e != UNIX_PEER)
    return nets, UNIX_PEER in entries


def _trusted(entry: str) -> bool:
    """Whether one hop of the chain (an address, or UNIX_PEER) is one of the operator's proxies."""
    nets, unix = _networks(tuple(settings.ARENA_TRUSTED_PROXIES))
    if entry == UNIX_PEER:
        return unix
    address = address_parse(entry)
    return address is not None and any(address in net for net in nets)


def _chain(meta: Mapping[str, Any]) -> list[str]:
    """X-Forwarded-For's hops, then the peer itself: the client is somewhere left of the proxies."""
    forwarded = str(meta.get("HTTP_X_FORWARDED_FOR") or "")
    hops = [hop.strip() for hop in forwarded.split(",")] if forwarded.strip() else []
    return [*hops, str(meta.get("REMOTE_ADDR") or UNIX_PEER)]


def _from_chain(chain: Sequence[str]) -> IPAddress | None:
    count = settings.ARENA_PROXY_COUNT
    if count:
        # `count` proxies each appended the hop before them: the client is `count` places left of the peer.
        return address_parse(chain[-(count + 1)]) if len(chain) > count else None
    for hop in reversed(chain):
        if not _trusted(hop):
            return address_parse(hop)  # garbage where the client should be: unknown, not skipped
    return address_parse(chain[0])  # every hop is a proxy: the request began inside


def _peer_is_proxy(meta: Mapping[str, Any]) -> bool:
    if not settings.ARENA_TRUSTED_PROXIES:
        return bool(settings.ARENA_PROXY_COUNT)  # a count alone: the operator vouches for the peer
    return _trusted(str(meta.get("REMOTE_ADDR") or UNIX_PEER))


def client_ip(meta: Mapping[str, Any]) -> str | None:
    """The client's address as the rate limits and voter hashes should see it; None when unknown.

    ARENA_IP_HEADER=REMOTE_ADDR: the peer. Otherwise the forwarding header is read only when the peer is a
    trusted proxy; a peer that is not one is itself the client (it reached the app around the proxy).
    """
    header = settings.ARENA_IP_HEADER
    if header == "REMOTE_ADDR" or not _peer_is_proxy(meta):
        found = address_parse(meta.get("REMOTE_ADDR"))
    elif header == "HTTP_X_REAL_IP":
        found = address_parse(meta.get("HTTP_X_REAL_IP"))  # one value, written by the proxy itself
    else:
        found = _from_chain(_chain(meta))
    if found is None:
        _warn_unknown(meta)
        return None
    return str(found)


def _warn_unknown(meta: Mapping[str, Any]) -> None:
    """At most once a minute per process: many unknown clients usually mean a proxy setting is wrong."""
    global _warned_at
    now = time.monotonic()
    if now - _warned_at < 60:
        return
    _warned_at = now
    logger.warning(
        "client address unknown (peer %r, %s %r): counted in the shared 'unknown' rate-limit bucket; "
        "check ARENA_IP_HEADER, ARENA_TRUSTED_PROXIES and ARENA_PROXY_COUNT",
        str(meta.get("REMOTE_ADDR", ""))[:64],
        settings.ARENA_IP_HEADER,
        str(meta.get(settings.ARENA_IP_HEADER, ""))[:200],
    )


def network_of(ip: str) -> str:
    prefix = 24 if ipaddress.ip_address(ip).version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
