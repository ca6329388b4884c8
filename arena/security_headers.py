"""Security headers on every response: a strict Content-Security-Policy and its companions.

The policy allows scripts only from this origin, with no inline script at all except the page's import map,
which cannot be an external file (browsers read import maps only inline). That one is allowed by the SHA-256
of its exact text, which `importmap_text` builds for both the template tag that writes it
(`{% importmap %}`, arena/templatetags/arena_csp.py) and the header, so the two cannot drift apart.

Why each source beyond 'self' is there:
- script-src 'wasm-unsafe-eval': Spark (Gaussian splats) compiles its bundled WebAssembly. It allows
  WebAssembly compilation only, not eval() or inline script.
- worker-src blob: Spark starts its sort/decode worker from a Blob URL of its own bundled code.
- img-src data: blob: and connect-src data: blob: GLTFLoader decodes a GLB's embedded textures and a
  glTF's data: buffers through Blob and data URLs.
- connect-src ws(s)://<host>: the battle and leaderboard websockets (older browsers do not count them
  as 'self').
- style-src 'unsafe-inline': style attributes in the admin's battle review and the 503 page. Styles cannot
  run script; script is what the policy is strict about.
- The CAPTCHA provider's origins, only when ARENA_CAPTCHA_PROVIDER is set: its widget is a script and a frame.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.templatetags.static import static

CAPTCHA_ORIGINS = {
    "turnstile": {
        "script": ["https://challenges.cloudflare.com"],
        "frame": ["https://challenges.cloudflare.com"],
    },
    "hcaptcha": {
        "script": ["https://hcaptcha.com", "https://*.hcaptcha.com"],
        "frame": ["https://hcaptcha.com", "https://*.hcaptcha.com"],
        "style": ["https://hcaptcha.com", "https://*.hcaptcha.com"],
        "connect": ["https://hcaptcha.com", "https://*.hcaptcha.com"],
    },
}

PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "hid",
        "magnetometer",
        "microphone",
        "payment",
        "serial",
        "usb",
    )
)


def importmap_text() -> str:
    """The import map's JSON, exactly as the page writes it inside <script type="importmap">."""
    imports = {
        "three": static("vendor/three/three.module.js"),
        "three/addons/": static("vendor/three/addons/"),
        "@sparkjsdev/spark": static("vendor/spark/spark.module.js"),
    }
    # Escaped so that no URL can close the script element early.
    return json.dumps({"imports": imports}).replace("<", "\\u003c")


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy(host: str | None = None) -> str:
    """The policy for a response to a request for `host` (the validated Host header; None if unknown)."""
    captcha = CAPTCHA_ORIGINS.get(settings.ARENA_CAPTCHA_PROVIDER, {})
    sockets = [f"ws://{host}", f"wss://{host}"] if host else []
    directives = {
        "default-src": ["'self'"],
        "script-src": [
            "'self'",
            "'wasm-unsafe-eval'",
            _sha256_source(importmap_text()),
            *captcha.get("script", []),
        ],
        "style-src": ["'self'", "'unsafe-inline'", *captcha.get("style", [])],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'", *sockets, "data:", "blob:", *captcha.get("connect", [])],
        "worker-src": ["'self'", "blob:"],
        "frame-src": captcha.get("frame", ["'none'"]),
        "media-src": ["'self'"],
        "manifest-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def security_headers(host: str | None = None) -> dict[str, str]:
    """Every header this module sets, for responses made outside Django too (arena.request_limits)."""
    return {
        "Content-Security-Policy": content_security_policy(host),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": settings.SECURE_REFERRER_POLICY or "same-origin",
        "Cross-Origin-Opener-Policy": settings.SECURE_CROSS_ORIGIN_OPENER_POLICY or "same-origin",
        "Permissions-Policy": PERMISSIONS_POLICY,
        "X-Frame-Options": "DENY",
    }


def _host(request: HttpRequest) -> str | None:
    try:
        return request.get_host()
    except DisallowedHost:
        return None


class SecurityHeadersMiddleware:
    """Near the top of MIDDLEWARE, so that error responses of the layers below it get the headers too.
    A header a view set itself is kept."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for name, value in security_headers(_host(request)).items():
            response.headers.setdefault(name, value)
        return response
