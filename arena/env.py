"""Typed readers for settings from the environment.

Each helper fails loudly with ImproperlyConfigured on a value it cannot parse: a typo in a deployment
must stop the process at start-up, not silently fall back to a default.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = os.environ.get(name, default) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def env_regex_list(name: str) -> list[str]:
    """Regular expressions as a JSON array of strings (a comma list cannot hold `a{1,3}`), each compiled
    here so a bad pattern stops start-up instead of failing on the first request."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return []
    try:
        patterns = json.loads(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a JSON array of strings, got {raw!r}") from None
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise ImproperlyConfigured(f"{name} must be a JSON array of non-empty strings, got {raw!r}")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ImproperlyConfigured(
                f"{name}: {pattern!r} is not a valid regular expression: {exc}"
            ) from None
    return patterns


def env_networks(name: str, *, keywords: frozenset[str] = frozenset({"unix"})) -> tuple[str, ...]:
    """A comma list of IP networks or addresses ("10.0.0.0/8, 2001:db8::/32, 192.0.2.7"), each normalised
    ("10.0.0.0/8"), plus any of `keywords` as written. Host bits set ("10.0.0.1/8") are an error: such a
    typo would trust a different range than the operator meant."""
    entries: list[str] = []
    for item in env_list(name, []):
        if item.lower() in keywords:
            entries.append(item.lower())
            continue
        try:
            entries.append(str(ipaddress.ip_network(item, strict=True)))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP network or address ({exc})") from None
    return tuple(entries)
