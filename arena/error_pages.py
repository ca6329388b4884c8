"""The site's 404 and 500 answers (handler404 / handler500 in arena.urls).

A path under /api/, or a request that asks for JSON, gets the API's error shape `{"error": ..., "code": ...}`;
anything else gets the site-styled page. The 500 page is rendered from a plain context, without the request's
context processors (as Django's own handler does): whatever broke the view (the database, the session store)
must not break its error page too. Should even that rendering fail, a fixed page is answered instead.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from arena.web import wants_json

logger = logging.getLogger(__name__)

NOT_FOUND = "Nothing is at this address."
SERVER_ERROR = "Something went wrong on our side; it has been logged. Please try again in a minute."
# Answered when even the 500 template cannot be rendered: no template, no static file, no URL lookup.
SERVER_ERROR_FIXED = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Arena · server error</title></head>'
    f'<body><main><h1>Server error</h1><p>{SERVER_ERROR}</p><p><a href="/">Back to Arena</a></p></main>'
    "</body></html>"
)


def _wants_json(request: HttpRequest) -> bool:
    # path_info: the path inside the site, also when it is mounted under a prefix (FORCE_SCRIPT_NAME).
    return request.path_info.startswith("/api/") or wants_json(request)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": NOT_FOUND, "code": "not_found"}, status=404)
    html = render_to_string("404.html", {"request_path": request.path}, request=request)
    return HttpResponse(html, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": SERVER_ERROR, "code": "server_error"}, status=500)
    try:
        html = render_to_string("500.html", {"message": SERVER_ERROR})
    except Exception:  # the error page must answer whatever else is broken
        logger.exception("the 500 page could not be rendered")
        html = SERVER_ERROR_FIXED
    return HttpResponse(html, status=500)
