"""The API's readable documentation: Swagger UI (static/vendor/swagger-ui/) over the OpenAPI document.

The page is server-rendered and static; static/arena/api-docs.js starts the viewer, so the strict
Content-Security-Policy (no inline script) holds here as everywhere. Swagger UI sets style attributes, which
the site-wide policy already allows (style-src 'unsafe-inline', arena.security_headers).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET


@require_GET
def api_docs(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/api_docs.html", {"openapi_url": reverse("arena:api-openapi")})
