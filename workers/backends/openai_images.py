"""Any server speaking OpenAI's image generation API (POST /images/generations): OpenAI, Azure-style gateways,
LocalAI, and the image servers that copy the API.

The answer carries the image as base64 (`b64_json`) or as a link (`url`), which is fetched with the same
pooled client, size-limited by ARENA_MAX_MEDIA_BYTES. The file's format is read from its bytes
(arena.media), never taken from the server's word. Error messages are kept for staff and the log (voters see a
neutral text by kind): fixed phrases plus the server's own error text with the key, the base URL and the model
name scrubbed out (as in openai_compat); the raw exception stays chained for the operator's log. A 400, 413 or
422 (OpenAI's content_policy_violation among them) is this prompt's fault and raises InputRejected.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from .base import (
    BackendConfigError,
    BackendError,
    MediaBackend,
    MediaRequest,
    MediaResult,
    ProgressCallback,
    http_failure,
)
from .openai_compat import _client, _error_text, _Scrubber, _seconds, api_key_refuse, endpoint_fields_clean

logger = logging.getLogger(__name__)

CONFIG_FIELDS = frozenset(
    {
        "base_url",
        "model",
        "api_key_env",
        "size",
        "quality",
        "style",
        "response_format",
        "timeout",
        "extra_body",
    }
)
# Request fields the backend sets itself; extra_body may add fields but not override these.
RESERVED_BODY_FIELDS = frozenset({"model", "prompt", "n", "size", "quality", "style", "response_format"})
RESPONSE_FORMATS = ("b64_json", "url")
SIZE_RE = re.compile(r"^(auto|[1-9]\d{0,4}x[1-9]\d{0,4})$")
# Image servers send nothing until the picture is done, so the read timeout covers the whole generation.
DEFAULT_TIMEOUT_S = 180.0
# The JSON answer around a base64 image: the base64 is 4/3 the file, plus room for the envelope.
JSON_OVERHEAD_BYTES = 64 * 1024
# Progress while the answer arrives: the JSON answer fills the bar to here, a linked file the rest.
ANSWER_SHARE = 0.5


class OpenAIImagesBackend(MediaBackend):
    """Config: `base_url` (e.g. "https://api.openai.com/v1"), `model` (the server's model name), `api_key_env`
    (name of the environment variable holding the key; keys are never stored in configs), `size` (e.g.
    "1024x1024" or "auto"; default: the server's), `quality` and `style` (passed as given, e.g. "hd" /
    "vivid"), `response_format` ("b64_json", the default, or "url"; null leaves it out for servers that
    refuse it, such as gpt-image-1), `timeout` (seconds to connect and for the answer, default 180),
    `extra_body` (more request fields, e.g. {"background": "transparent"})."""

    kind = "openai_images"
    modalities: ClassVar[frozenset[str]] = frozenset({"image"})
    inputs: ClassVar[frozenset[str]] = frozenset({"text"})
    config_fields: ClassVar[frozenset[str]] = CONFIG_FIELDS

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        api_key_refuse(config)
        cleaned = endpoint_fields_clean(super().validate_config(config))
        size = cleaned.get("size")
        if size is not None and (not isinstance(size, str) or not SIZE_RE.match(size)):
            raise BackendConfigError(f"size must be WIDTHxHEIGHT (e.g. '1024x1024') or 'auto', got {size!r}")
        for name in ("quality", "style"):
            value = cleaned.get(name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise BackendConfigError(f"{name} must be a non-empty string, got {value!r}")
        response_format = cleaned.setdefault("response_format", "b64_json")
        if response_format is not None and response_format not in RESPONSE_FORMATS:
            raise BackendConfigError(
                f"response_format must be 'b64_json', 'url' or null (left out), got {response_format!r}"
            )
        cleaned["timeout"] = _seconds(cleaned, "timeout", DEFAULT_TIMEOUT_S)
        cleaned["extra_body"] = _extra_body_clean(cleaned.get("extra_body"))
        return cleaned

    def generate(self, request: MediaRequest, progress: ProgressCallback) -> MediaResult:
        from django.conf import settings

        prompt = request.prompt.strip()
        if not prompt:
            raise BackendError("This model draws from a text prompt; the prompt is empty.")
        report = _Rising(progress)
        report(0.0)
        api_key = self._api_key()
        scrub = _Scrubber(self.config, api_key)
        max_bytes = settings.ARENA_MAX_MEDIA_BYTES
        timeout = httpx.Timeout(self.config["timeout"])
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        try:
            with _client().stream(
                "POST", self._url, json=self._body(prompt), headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    raise http_failure(response.status_code, _http_error_message(response, scrub))
                raw = _read_limited(
                    response, max_bytes * 4 // 3 + JSON_OVERHEAD_BYTES, lambda f: report(ANSWER_SHARE * f)
                )
            item = _image_item(raw, scrub)
            if isinstance(item.get("b64_json"), str):
                data = _b64_decode(item["b64_json"])
            elif isinstance(item.get("url"), str):
                report(ANSWER_SHARE)
                data = self._fetch(item["url"], api_key, timeout, max_bytes, report)
            else:
                raise BackendError("The image server's answer holds no image.")
        except httpx.HTTPError as exc:
            logger.warning("image request to %s failed: %r", self._url, exc)
            raise BackendError(_transport_error_message(exc, self.config["timeout"])) from exc
        fmt = _image_format(data, max_bytes)
        report(1.0)
        return MediaResult(data=data, format=fmt)

    @property
    def _url(self) -> str:
        return f"{self.config['base_url']}/images/generations"

    def _api_key(self) -> str | None:
        name = self.config.get("api_key_env")
        if name is None:
            return None
        key = os.environ.get(name, "")
        if not key:
            raise BackendError(f"The API key variable {name} (api_key_env) is not set on this worker.")
        return key

    def _body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.config["extra_body"],
            "model": self.config["model"],
            "prompt": prompt,
            "n": 1,
        }
        for name in ("size", "quality", "style", "response_format"):
            if self.config.get(name) is not None:
                body[name] = self.config[name]
        return body

    def _fetch(
        self,
        url: str,
        api_key: str | None,
        timeout: httpx.Timeout,
        max_bytes: int,
        report: Callable[[float], None],
    ) -> bytes:
        """The image behind an answer's link. The key goes only to the API's own origin: OpenAI's links point
        at a storage service, which must never see it."""
        if url.startswith("data:"):
            _, _, encoded = url.partition(",")
            return _b64_decode(encoded)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            logger.warning("image server answered an unusable link: %.200s", url)
            raise BackendError("The image server answered with an unusable image link.")
        headers = {}
        if api_key and _origin(url) == _origin(self.config["base_url"]):
            headers["Authorization"] = f"Bearer {api_key}"
        # httpx drops the Authorization header itself when a redirect leaves the origin.
        with _client().stream(
            "GET", url, headers=headers, timeout=timeout, follow_redirects=True
        ) as response:
            if response.status_code >= 400:
                logger.warning("image link answered HTTP %s", response.status_code)
                raise BackendError(f"The image server's link answered HTTP {response.status_code}.")
            return _read_limited(
                response, max_bytes, lambda f: report(ANSWER_SHARE + (1 - ANSWER_SHARE) * f), what="The image"
            )


class _Rising:
    """Passes on only fractions above the last one, so the bar never goes back (a link's download follows the
    answer's) and never repeats itself."""

    def __init__(self, progress: ProgressCallback) -> None:
        self.progress = progress
        self.last = -1.0

    def __call__(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction > self.last:
            self.last = fraction
            self.progress(fraction)


def _extra_body_clean(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BackendConfigError("extra_body must be a JSON object")
    reserved = sorted(RESERVED_BODY_FIELDS & set(value))
    if reserved:
        raise BackendConfigError(
            f"extra_body must not set {reserved[0]!r}: the backend sets it (use the config field instead)"
        )
    return dict(value)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _read_limited(
    response: httpx.Response,
    limit: int,
    report: Callable[[float], None],
    what: str = "The image server's answer",
) -> bytes:
    """The body, refused once it passes `limit` bytes (before, when Content-Length says so); reports the
    fraction received when the length is known."""
    declared = response.headers.get("Content-Length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > limit:
        raise BackendError(f"{what} is larger than the {limit:,}-byte limit.")
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_bytes():
        received += len(chunk)
        if received > limit:
            raise BackendError(f"{what} is larger than the {limit:,}-byte limit.")
        chunks.append(chunk)
        if total:
            report(received / total)
    return b"".join(chunks)


def _image_item(raw: bytes, scrub: _Scrubber) -> dict[str, Any]:
    """The first entry of the answer's `data` list."""
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("image server sent a malformed answer: %.200r", raw)
        raise BackendError("The image server sent a malformed answer.") from None
    if not isinstance(payload, dict):
        raise BackendError("The image server sent a malformed answer.")
    if payload.get("error"):
        text = _error_text(payload, scrub)
        raise BackendError(f"The image server failed: {text}" if text else "The image server failed.")
    data = payload.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise BackendError("The image server's answer holds no image.")
    return data[0]


def _b64_decode(text: str) -> bytes:
    if text.startswith("data:"):  # some servers send a data URL where the bare base64 belongs
        text = text.partition(",")[2]
    try:
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise BackendError("The image server sent a damaged image (bad base64).") from None


def _image_format(data: bytes, max_bytes: int) -> str:
    from arena.media import MediaRejected, media_inspect

    try:
        info = media_inspect(data, max_bytes=max_bytes)
    except MediaRejected as exc:
        logger.warning("image server answered an unusable file: %s", exc)
        raise BackendError(f"The image server's answer is not a usable image: {exc}") from exc
    if info.kind != "image":
        raise BackendError(f"The image server's answer is not an image (it is a {info.format.upper()} file).")
    return info.format


def _http_error_message(response: httpx.Response, scrub: _Scrubber) -> str:
    response.read()  # a streamed response's body is not read yet
    message = f"The image server answered HTTP {response.status_code}"
    try:
        payload = response.json()
    except ValueError:
        return message + "."  # an HTML error page from a proxy says nothing useful to a voter
    text = _error_text(payload, scrub)
    return f"{message}: {text}" if text else message + "."


def _transport_error_message(exc: httpx.HTTPError, timeout: float) -> str:
    # The exception's own text can hold the URL (host, credentials); it is chained for the log, not shown.
    if isinstance(exc, httpx.ConnectTimeout):
        return f"Could not connect to the image server within {timeout:g} s."
    if isinstance(exc, httpx.ConnectError):
        return "Could not connect to the image server."
    if isinstance(exc, httpx.TimeoutException):
        return f"The image server did not answer within {timeout:g} s."
    if isinstance(exc, httpx.RemoteProtocolError):
        return "The image server closed the connection before its answer was complete."
    if isinstance(exc, httpx.TooManyRedirects):
        return "The image link redirected too many times."
    return f"The request to the image server failed ({type(exc).__name__})."
