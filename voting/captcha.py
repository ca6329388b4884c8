"""Optional server-side check of a Cloudflare Turnstile or hCaptcha answer (ARENA_CAPTCHA_PROVIDER).

Both providers answer a form POST of {secret, response, remoteip} with JSON {"success": bool,
"error-codes": [...]}. The check fails closed: a provider that does not answer in time refuses the vote
(503) rather than letting it through unverified.
"""

from __future__ import annotations

import httpx
from django.conf import settings

from arena.errors import InvalidInput, Unavailable
from voting.challenge import ChallengeRefused

_MAX_RESPONSE = 4096
# Error codes both providers use when a token is stale or was spent already (they are single use).
_STALE = {"timeout-or-duplicate", "invalid-or-already-seen-response"}


def captcha_enabled() -> bool:
    return settings.ARENA_CAPTCHA_PROVIDER != "none"


def captcha_public_config() -> dict[str, str] | None:
    """What the page needs to render the widget, or None when no CAPTCHA is configured."""
    if not captcha_enabled():
        return None
    return {"provider": settings.ARENA_CAPTCHA_PROVIDER, "site_key": settings.ARENA_CAPTCHA_SITE_KEY}


def _siteverify(response: str, ip: str | None) -> dict:
    data = {"secret": settings.ARENA_CAPTCHA_SECRET, "response": response}
    if ip:
        data["remoteip"] = ip
    if settings.ARENA_CAPTCHA_PROVIDER == "hcaptcha" and settings.ARENA_CAPTCHA_SITE_KEY:
        data["sitekey"] = settings.ARENA_CAPTCHA_SITE_KEY
    try:
        reply = httpx.post(
            settings.ARENA_CAPTCHA_VERIFY_URL, data=data, timeout=settings.ARENA_CAPTCHA_TIMEOUT
        )
        reply.raise_for_status()
        body = reply.json()
    except (httpx.HTTPError, ValueError):
        raise Unavailable(
            "The CAPTCHA check could not be completed right now; try again in a moment."
        ) from None
    if not isinstance(body, dict):
        raise Unavailable("The CAPTCHA service gave an answer the server could not read; try again.")
    return body


def captcha_verify(*, response: object, ip: str | None) -> None:
    """Accept the vote's CAPTCHA answer or raise; a no-op unless a provider is configured."""
    if not captcha_enabled():
        return
    if not isinstance(response, str) or not response or len(response) > _MAX_RESPONSE:
        raise InvalidInput("Complete the CAPTCHA before voting.")
    body = _siteverify(response, ip)
    if body.get("success") is True:
        return
    codes = body.get("error-codes") or []
    if isinstance(codes, list) and _STALE.intersection(map(str, codes)):
        raise ChallengeRefused("The CAPTCHA expired or was already used; please solve it again.")
    raise ChallengeRefused("The CAPTCHA was not accepted; please solve it again.")
