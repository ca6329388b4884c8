"""The admin login, rate limited per client address: password guessing gets a 429, not unlimited tries.

The address is voting.identity.client_ip's (the rightmost untrusted X-Forwarded-For hop behind a trusted
proxy), so rotating a forged X-Forwarded-For does not give fresh tries, and an address that cannot be worked
out shares the one "unknown" budget. arena.request_limits answers a spent address before reading the body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from arena.request_limits import ADMIN_LOGIN_ACTION, admin_login_scopes
from voting.identity import client_ip
from voting.limits import RateLimited, limits_check


def login_rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.method == "POST":
            action, noun = ADMIN_LOGIN_ACTION
            try:
                limits_check(action=action, noun=noun, scopes=admin_login_scopes(client_ip(request.META)))
            except RateLimited as exc:
                return HttpResponse(exc.message, status=429, headers=exc.headers, content_type="text/plain")
        return view(request, *args, **kwargs)

    return wrapper
