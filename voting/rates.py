"""Rate settings such as "30/3600" (30 per hour), parsed strictly.

Settings import this module, so it imports nothing from Django but the exception: a typo in a limit must
stop the process at start-up rather than silently disable the limit.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from django.core.exceptions import ImproperlyConfigured

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_OFF = {"off", "none", "0"}


class Rate(NamedTuple):
    """At most `count` events in a window of `seconds`."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}"


def rate_parse(value: str, *, name: str = "rate") -> Rate | None:
    """ "N/SECONDS" with both positive, or "off" (None: no limit)."""
    if value.strip().lower() in _OFF:
        return None
    match = _RATE.match(value)
    if match is None:
        raise ImproperlyConfigured(f'{name} must look like "30/3600" (count/seconds) or "off", got {value!r}')
    count, seconds = int(match[1]), int(match[2])
    if count < 1 or seconds < 1:
        raise ImproperlyConfigured(f"{name} needs a count and a window of at least 1, got {value!r}")
    return Rate(count, seconds)


def env_rate(name: str, default: str) -> Rate | None:
    raw = os.environ.get(name)
    return rate_parse(default if raw is None or raw == "" else raw, name=name)
