"""The admin login, rate limited per client address: password guessing gets a 429, not unlimited tries."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from voting.identity import client_ip, salted_hash
from voting.limits import RateLimited, Scope, limits_check


def login_rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.method == "POST":
            ip = client_ip(request.META)
            scope = Scope("ip", salted_hash(f"ip:{ip}") if ip else "", settings.ARENA_ADMIN_LOGIN_RATE)
            try:
                limits_check(action="admin-login", noun="sign-in attempts", scopes=[scope])
            except RateLimited as exc:
                return HttpResponse(exc.message, status=429, headers=exc.headers, content_type="text/plain")
        return view(request, *args, **kwargs)

    return wrapper
