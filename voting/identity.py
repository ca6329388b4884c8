"""Pseudonymous voter identity: salted hashes of the session, the IP and its network.

A raw IP is never stored unless the operator sets ARENA_STORE_RAW_IP; the network (/24 for IPv4,
/48 for IPv6) is kept as a hash too, so rings of accounts on one network can be found later.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any

from django.conf import settings


def salted_hash(value: str) -> str:
    return hmac.new(settings.ARENA_HASH_SALT.encode(), value.encode(), hashlib.sha256).hexdigest()


def client_ip(meta: Mapping[str, Any]) -> str | None:
    """The client address from the header the operator trusts (REMOTE_ADDR unless behind a proxy)."""
    raw = str(meta.get(settings.ARENA_IP_HEADER) or meta.get("REMOTE_ADDR") or "")
    candidate = raw.split(",")[0].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def network_of(ip: str) -> str:
    prefix = 24 if ipaddress.ip_address(ip).version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
