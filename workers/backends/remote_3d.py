"""Any 3D model behind a small HTTP endpoint: send a prompt or an image, receive a GLB, PLY or splat file.

The protocol, kept small so a model maker can wrap any text-to-3D or image-to-3D model in a few lines of
FastAPI, Flask or plain http.server:

Request: `POST <url>` with `Content-Type: multipart/form-data` and these parts:

    prompt   text field: the voter's prompt (sent when the battle has one and the model takes text)
    image    file part: the input image, PNG, JPEG or WebP, with its Content-Type (sent when the battle has
             one and the model takes images)
    seed     text field, a decimal integer (sent when a seed is set): same seed, same object, ideally
    extra    text field, a JSON object: the model's `extra` config, passed through untouched (sent when set)

plus `Authorization: Bearer <key>` when the config names `api_key_env`.

Answer: HTTP 200 whose body is the file itself, nothing wrapped around it. Its format is taken from, first
match wins: an `X-Arena-Format` header (glb, gltf, obj, ply, splat, spz), the extension of a
`Content-Disposition: attachment; filename="scene.ply"` header, a `Content-Type` that names one
(model/gltf-binary, model/gltf+json, model/obj), the config's `format`; failing all of these the content
itself (GLB, PLY and SPZ have signatures; glTF JSON, OBJ and .splat need one of the above). Any other status
is a failure; its body goes to the worker's log, never to the voter. Send a Content-Length so the page can
show the download's progress.

The file is read as a stream and abandoned past `ARENA_MAX_MEDIA_BYTES`, then checked by its content with
`arena.media.media_inspect`: a server that claims GLB and sends something else fails cleanly. Messages of
BackendError are kept for staff (voters see a neutral text by kind); they say what went wrong without the
server's address or its error text, which go to the log. A 400, 413 or 422 is this input's fault (a prompt or
image the model cannot take) and raises InputRejected, which does not count against the model's health.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from email.message import Message
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

logger = logging.getLogger(__name__)

CONFIG_FIELDS = frozenset({"url", "input", "api_key_env", "timeout", "format", "extra"})
INPUTS = {"text": frozenset({"text"}), "image": frozenset({"image"}), "both": frozenset({"text", "image"})}
FORMATS_3D = ("glb", "gltf", "obj", "ply", "splat", "spz")
FORMAT_ALIASES = {"ksplat": "splat"}
# Content types that name a 3D format; generic ones (application/octet-stream) say nothing.
CONTENT_TYPE_FORMATS = {
    "model/gltf-binary": "glb",
    "model/gltf+json": "gltf",
    "model/obj": "obj",
    "model/ply": "ply",
    "application/ply": "ply",
    "application/x-ply": "ply",
}
ACCEPT = "model/gltf-binary, model/gltf+json, model/obj, application/octet-stream;q=0.9"
IMAGE_TYPES = {b"\x89PNG": ("input.png", "image/png"), b"\xff\xd8\xff": ("input.jpg", "image/jpeg")}
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_TIMEOUT_S = 300.0  # 3D models take minutes; this is the wait for the answer and between its chunks
CONNECT_TIMEOUT_S = 10.0
ERROR_LOG_LIMIT = 500


class Remote3DBackend(MediaBackend):
    """Config: `url` (the endpoint, http or https, required), `input` ("text" | "image" | "both": what the
    model takes; default "text"), `api_key_env` (name of the environment variable holding a bearer token),
    `timeout` (seconds to wait for the answer to start and between its chunks, default 300), `format` (the
    format the server sends, when its answers do not say: glb, gltf, obj, ply, splat or spz), `extra` (a JSON
    object sent along as the `extra` field), `seed`."""

    kind = "remote_3d"
    modalities: ClassVar[frozenset[str]] = frozenset({"3d"})
    inputs: ClassVar[frozenset[str]] = frozenset({"text", "image"})  # by config: see accepted_inputs
    config_fields: ClassVar[frozenset[str]] = CONFIG_FIELDS

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(config, Mapping) and "api_key" in config:
            # Checked first so the key is never echoed in another field's error.
            raise BackendConfigError(
                "api_key must not be stored in the config; put it in an environment variable and name it in "
                "api_key_env"
            )
        cleaned = super().validate_config(config)
        cleaned["url"] = _url_clean(cleaned.get("url"))
        cleaned["input"] = _input(cleaned)
        env_name = cleaned.get("api_key_env")
        if env_name is not None and (not isinstance(env_name, str) or not ENV_NAME_RE.match(env_name)):
            raise BackendConfigError(f"api_key_env must be an environment variable name, got {env_name!r}")
        timeout = cleaned.setdefault("timeout", DEFAULT_TIMEOUT_S)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise BackendConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        cleaned["timeout"] = float(timeout)
        fmt = cleaned.get("format")
        if fmt is not None:
            clean = _format_clean(fmt) if isinstance(fmt, str) else None
            if clean not in FORMATS_3D:
                raise BackendConfigError(f"format must be one of {list(FORMATS_3D)}, got {fmt!r}")
            cleaned["format"] = clean
        extra = cleaned.setdefault("extra", {})
        if not isinstance(extra, Mapping):
            raise BackendConfigError("extra must be a JSON object")
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BackendConfigError(f"extra must be plain JSON: {exc}") from exc
        cleaned["extra"] = dict(extra)
        return cleaned

    @classmethod
    def accepted_inputs(cls, config: Mapping[str, Any]) -> frozenset[str]:
        if not isinstance(config, Mapping):
            raise BackendConfigError("backend config must be a JSON object")
        return INPUTS[_input(config)]

    def generate(self, request: MediaRequest, progress: ProgressCallback) -> MediaResult:
        from django.conf import settings

        parts = self._parts(request)
        headers = {"Accept": ACCEPT}
        api_key = self._api_key()
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        limit = settings.ARENA_MAX_MEDIA_BYTES
        timeout = self.config["timeout"]
        progress(0.0)
        try:
            with (
                httpx.Client(
                    timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S))
                ) as client,
                client.stream("POST", self.config["url"], files=parts, headers=headers) as response,
            ):
                if response.status_code != 200:
                    raise http_failure(response.status_code, _status_message(response))
                declared = _declared_format(response.headers)
                data = _body_read(response, limit, progress)
        except httpx.HTTPError as exc:
            raise BackendError(_transport_message(exc, timeout)) from exc
        result = MediaResult(data=data, format=self._format_check(declared, data))
        progress(1.0)
        return result

    def _parts(self, request: MediaRequest) -> list[tuple[str, Any]]:
        """The multipart body; every part is a (name, (filename, value[, content type])) file tuple, so httpx
        sends multipart/form-data even when there is no image (plain fields alone would go url-encoded)."""
        takes = INPUTS[self.config["input"]]
        prompt = request.prompt.strip() if "text" in takes else ""
        image = request.image if "image" in takes else None
        if not prompt and not image:
            if takes == {"text"}:
                raise BackendError("This model makes 3D objects from a text prompt; the prompt is empty.")
            if takes == {"image"}:
                raise BackendError("This model makes 3D objects from an image; no image was given.")
            raise BackendError("This model needs a text prompt or an image; neither was given.")
        parts: list[tuple[str, Any]] = []
        if prompt:
            parts.append(("prompt", (None, prompt)))
        if image:
            filename, content_type = _image_type(image)
            parts.append(("image", (filename, image, content_type)))
        seed = request.seed if request.seed is not None else self.config.get("seed")
        if seed is not None:
            parts.append(("seed", (None, str(seed))))
        if self.config["extra"]:
            parts.append(("extra", (None, json.dumps(self.config["extra"]), "application/json")))
        return parts

    def _api_key(self) -> str | None:
        name = self.config.get("api_key_env")
        if name is None:
            return None
        key = os.environ.get(name, "")
        if not key:
            raise BackendError(f"The API key variable {name} (api_key_env) is not set on this worker.")
        return key

    def _format_check(self, declared: str | None, data: bytes) -> str:
        """The file's format, checked against its content; BackendError when the answer is not a usable 3D
        file or not what the server (or the config) says it is."""
        from arena.media import MediaRejected, media_inspect

        expected = self.config.get("format")
        if declared is not None and declared not in FORMATS_3D:
            raise BackendError(f"The 3D model server sent a file of an unsupported type ({declared}).")
        if declared is not None and expected is not None and declared != expected:
            raise BackendError(
                f"The 3D model server sent a {declared.upper()} file; this model is set up for "
                f"{expected.upper()}."
            )
        try:
            info = media_inspect(data, format_hint=declared or expected)
        except MediaRejected as exc:
            logger.warning("remote 3D answer rejected (declared %s): %s", declared or expected, exc)
            raise BackendError(f"The 3D model server sent an unusable file: {exc}") from exc
        if info.kind not in ("mesh", "splat"):
            raise BackendError(f"The 3D model server sent {info.kind} data ({info.format}), not a 3D object.")
        return info.format


def _input(config: Mapping[str, Any]) -> str:
    value = config.get("input", "text")
    if not isinstance(value, str) or value not in INPUTS:
        raise BackendConfigError(f"input must be one of {sorted(INPUTS)}, got {value!r}")
    return value


def _url_clean(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BackendConfigError("url is required, e.g. 'http://10.0.0.5:8000/generate'")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BackendConfigError(f"url must start with http:// or https://, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise BackendConfigError("url has no host")
    if parts.username or parts.password:
        raise BackendConfigError(
            "url must not hold credentials; put a token in an environment variable and name it in api_key_env"
        )
    if parts.fragment:
        raise BackendConfigError("url must not have a fragment")
    return url


def _format_clean(value: str) -> str:
    fmt = value.strip().lower().lstrip(".")
    return FORMAT_ALIASES.get(fmt, fmt)


def _image_type(data: bytes) -> tuple[str, str]:
    for magic, kind in IMAGE_TYPES.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "input.webp", "image/webp"
    return "input.bin", "application/octet-stream"  # arena.media checked it; the server decides


def _declared_format(headers: httpx.Headers) -> str | None:
    """The format the answer's headers name, if any (see the module docstring for the order)."""
    explicit = headers.get("x-arena-format")
    if explicit and explicit.strip():
        return _format_clean(explicit)
    disposition = headers.get("content-disposition")
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        filename = message.get_filename()
        if filename and "." in filename:
            return _format_clean(filename.rsplit(".", 1)[1])
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return CONTENT_TYPE_FORMATS.get(content_type)


def _body_read(response: httpx.Response, limit: int, progress: ProgressCallback) -> bytes:
    """The whole body, refused past `limit` bytes (announced or received), reporting progress when the server
    sent a Content-Length."""
    expected = _content_length(response)
    if expected is not None and expected > limit:
        raise BackendError(_too_large_message(limit))
    received = bytearray()
    for chunk in response.iter_bytes():
        received += chunk
        if len(received) > limit:
            raise BackendError(_too_large_message(limit))
        if expected:
            # Bytes on the wire against the announced length (they differ when the body is compressed).
            progress(min(response.num_bytes_downloaded / expected, 1.0))
    return bytes(received)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _too_large_message(limit: int) -> str:
    return f"The 3D model server's file is larger than the limit of {limit:,} bytes."


def _status_message(response: httpx.Response) -> str:
    try:
        body = response.read()[:ERROR_LOG_LIMIT].decode("utf-8", errors="replace")
    except httpx.HTTPError:
        body = "(unreadable)"
    # The body may name the model or its host: the log keeps it, the voter gets the status alone.
    logger.warning("remote 3D server answered HTTP %s: %s", response.status_code, body)
    if response.status_code in (401, 403):
        return f"The 3D model server refused the request (HTTP {response.status_code})."
    return f"The 3D model server answered HTTP {response.status_code}."


def _transport_message(exc: httpx.HTTPError, timeout: float) -> str:
    # The exception's own text can hold the URL; it is chained for the log, not shown.
    if isinstance(exc, httpx.ConnectTimeout):
        return f"Could not connect to the 3D model server within {min(timeout, CONNECT_TIMEOUT_S):g} s."
    if isinstance(exc, httpx.ConnectError):
        return "Could not connect to the 3D model server."
    if isinstance(exc, httpx.ReadTimeout):
        return f"The 3D model server did not answer within {timeout:g} s."
    if isinstance(exc, httpx.TimeoutException):
        return f"The 3D model server timed out ({timeout:g} s)."
    if isinstance(exc, httpx.RemoteProtocolError):
        return "The 3D model server's answer was cut off (connection closed early)."
    if isinstance(exc, httpx.DecodingError):
        return "The 3D model server's answer could not be decoded."
    return f"The request to the 3D model server failed ({type(exc).__name__})."
