"""Any server speaking OpenAI's chat completions API with server-sent events: vLLM, TGI, llama.cpp, OpenAI...

Error messages are kept for staff and the log (voters see a neutral text by kind, arena.disclosure); they are
built from fixed phrases plus the server's own error text with the API key, the base URL and the model name
scrubbed out (a secret has no place in the database either); the raw exception stays chained for the
operator's log. A 400, 413 or 422 is the input's fault (context length, content refusal) and raises
InputRejected, which does not count against the model's health.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from .base import (
    BackendConfigError,
    BackendError,
    GenerationParams,
    GenerationRequest,
    InputRejected,
    TextBackend,
    Usage,
    http_failure,
)

CONFIG_FIELDS = frozenset(
    {"base_url", "model", "api_key_env", "timeout", "max_time", "extra_body", "stream_usage"}
)
# Request fields the backend sets itself; extra_body may add fields but not override these.
RESERVED_BODY_FIELDS = frozenset(
    {"model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens", "seed"}
)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_TIME_S = 300.0
ERROR_TEXT_LIMIT = 200


class OpenAICompatBackend(TextBackend):
    """Config: `base_url` (e.g. "http://vllm:8000/v1"), `model` (the server's model name), `api_key_env` (name
    of the environment variable holding the key), `timeout` (connect and between-chunk seconds, default 30),
    `max_time` (whole answer, default 300), `extra_body` (more request fields, e.g. {"top_k": 20}),
    `stream_usage` (ask for token counts with stream_options; default true, switch off for servers that reject
    it), plus the generation parameters."""

    kind = "openai"
    config_fields = CONFIG_FIELDS

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        api_key_refuse(config)
        cleaned = endpoint_fields_clean(super().validate_config(config))
        cleaned["timeout"] = _seconds(cleaned, "timeout", DEFAULT_TIMEOUT_S)
        cleaned["max_time"] = _seconds(cleaned, "max_time", DEFAULT_MAX_TIME_S)
        cleaned["extra_body"] = _extra_body_clean(cleaned.get("extra_body"))
        stream_usage = cleaned.setdefault("stream_usage", True)
        if not isinstance(stream_usage, bool):
            raise BackendConfigError(f"stream_usage must be true or false, got {stream_usage!r}")
        return cleaned

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        self.usage = Usage()
        api_key = self._api_key()
        deadline = time.monotonic() + self.config["max_time"]
        timeout = httpx.Timeout(self.config["timeout"])
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        scrub = _Scrubber(self.config, api_key)
        try:
            with _client().stream(
                "POST", self._url, json=self._body(request), headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    raise http_failure(response.status_code, _http_error_message(response, scrub))
                yield from self._deltas(response, deadline, scrub)
        except httpx.HTTPError as exc:
            raise BackendError(_transport_error_message(exc, self.config["timeout"])) from exc

    @property
    def _url(self) -> str:
        return f"{self.config['base_url']}/chat/completions"

    def _api_key(self) -> str | None:
        name = self.config.get("api_key_env")
        if name is None:
            return None
        key = os.environ.get(name, "")
        if not key:
            raise BackendError(f"the API key variable {name} (api_key_env) is not set on this worker")
        return key

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        params: GenerationParams = request.params
        body: dict[str, Any] = {
            **self.config["extra_body"],
            "model": self.config["model"],
            "messages": request.messages,
            "stream": True,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if self.config["stream_usage"]:
            body["stream_options"] = {"include_usage": True}
        return body

    def _deltas(self, response: httpx.Response, deadline: float, scrub: _Scrubber) -> Iterator[str]:
        """Yield content deltas until [DONE]. A stream that ends without [DONE] is complete only if a choice
        already reported its finish_reason (some servers skip [DONE]); otherwise the answer was cut."""
        finished, answered = False, False
        for data in _sse_data(response.iter_lines()):
            if time.monotonic() > deadline:
                raise BackendError(f"the answer took longer than max_time ({self.config['max_time']:g} s)")
            if data == "[DONE]":
                return
            chunk = _chunk_parse(data, scrub)
            self._usage_take(chunk)
            content, finish_reason = _choice_delta(chunk)
            if content:
                answered = True
                yield content
            if finish_reason == "content_filter" and not answered:
                # The server's content filter refused to answer this prompt (OpenAI, Azure): the input's
                # fault.
                raise InputRejected("the model server's content filter withheld the answer")
            finished = finished or finish_reason is not None
        if not finished:
            raise BackendError("the model server's stream ended early")

    def _usage_take(self, chunk: Mapping[str, Any]) -> None:
        # With include_usage the counts come in a final chunk with no choices; vLLM's continuous usage stats
        # repeat them on every chunk. Either way the last one seen is the total.
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = Usage(
                prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
                output_tokens=_int_or_none(usage.get("completion_tokens")),
            )


def api_key_refuse(config: object) -> None:
    """Checked before anything else, so a key stored by mistake is never echoed in another field's error."""
    if isinstance(config, Mapping) and "api_key" in config:
        raise BackendConfigError(
            "api_key must not be stored in the config; put it in an environment variable and name it in "
            "api_key_env"
        )


def endpoint_fields_clean(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The fields every OpenAI-compatible endpoint config has: base_url, model, api_key_env."""
    cleaned["base_url"] = _base_url_clean(cleaned.get("base_url"))
    model = cleaned.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BackendConfigError("model is required: the model name the server expects")
    env_name = cleaned.get("api_key_env")
    if env_name is not None and (not isinstance(env_name, str) or not ENV_NAME_RE.match(env_name)):
        raise BackendConfigError(f"api_key_env must be an environment variable name, got {env_name!r}")
    return cleaned


def _base_url_clean(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BackendConfigError("base_url is required, e.g. 'http://127.0.0.1:8000/v1'")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https"):
        raise BackendConfigError(f"base_url must start with http:// or https://, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise BackendConfigError("base_url has no host")
    if parts.query or parts.fragment:
        raise BackendConfigError("base_url must not have a query string or fragment")
    return value.strip().rstrip("/")


def _seconds(config: Mapping[str, Any], name: str, default: float) -> float:
    value = config.get(name, default)
    # bool is an int in Python; `timeout: true` is a mistake, not one second.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise BackendConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _extra_body_clean(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BackendConfigError("extra_body must be a JSON object")
    reserved = sorted(RESERVED_BODY_FIELDS & set(value))
    if reserved:
        raise BackendConfigError(
            f"extra_body must not set {reserved[0]!r}: the backend sets it (generation parameters go at the "
            "top level of the config)"
        )
    return dict(value)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_client_lock = threading.Lock()
_client_state: dict[str, Any] = {"pid": None, "client": None}


def _client() -> httpx.Client:
    """One pooled client per process: keep-alive connections save a TCP (and TLS) handshake on every answer,
    which voters see as time to first token. Keyed by pid because a client made before a fork (Celery's
    prefork pool) would share its sockets with the child. Timeouts are set per request."""
    with _client_lock:
        if _client_state["pid"] != os.getpid():
            _client_state["client"] = httpx.Client(limits=httpx.Limits(max_keepalive_connections=32))
            _client_state["pid"] = os.getpid()
        return _client_state["client"]


def _sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each server-sent event. Events end at a blank line; multi-line data joins with newlines;
    comments (": keep-alive") and other fields (event:, id:, retry:) are skipped."""
    buffer: list[str] = []
    for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
        elif line.startswith("data:"):
            buffer.append(line[5:].removeprefix(" "))
    if buffer:  # the last event lacked its blank line
        yield "\n".join(buffer)


def _chunk_parse(data: str, scrub: _Scrubber) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise BackendError("the model server sent a malformed chunk") from None
    if not isinstance(chunk, dict):
        raise BackendError("the model server sent a malformed chunk")
    if "error" in chunk:
        # vLLM and others report failures that happen mid-answer as an error event inside a 200 stream.
        raise BackendError(f"the model server failed mid-answer: {_error_text(chunk, scrub)}")
    return chunk


def _choice_delta(chunk: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(content, finish_reason) of the first choice; (None, None) for usage-only chunks."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return None, None
    choice = choices[0]
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, Mapping) else None
    return (content if isinstance(content, str) else None), choice.get("finish_reason")


def _http_error_message(response: httpx.Response, scrub: _Scrubber) -> str:
    response.read()  # a streamed response's body is not read yet
    message = f"the model server answered HTTP {response.status_code}"
    try:
        payload = response.json()
    except ValueError:
        return message  # an HTML error page from a proxy says nothing useful to a voter
    text = _error_text(payload, scrub)
    return f"{message}: {text}" if text else message


def _error_text(payload: Any, scrub: _Scrubber) -> str:
    """The human part of an error body, in the shapes servers use: OpenAI/vLLM {"error": {"message"}},
    TGI {"error": "..."}, FastAPI {"detail": ...}, others {"message": ...}."""
    if not isinstance(payload, Mapping):
        return ""
    error = payload.get("error")
    if isinstance(error, Mapping):
        text = error.get("message")
    else:
        text = error if error is not None else payload.get("message", payload.get("detail"))
    if text is None:
        return ""
    text = scrub(str(text))
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"


def _transport_error_message(exc: httpx.HTTPError, timeout: float) -> str:
    # The exception's own text can hold the URL (host, credentials); it is chained for the log, not shown.
    if isinstance(exc, httpx.ConnectTimeout):
        return f"could not connect to the model server within {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect to the model server"
    if isinstance(exc, httpx.ReadTimeout):
        return f"the model server did not answer within {timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"the model server timed out ({timeout:g} s)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the model server's stream ended early (connection closed)"
    return f"the request to the model server failed ({type(exc).__name__})"


class _Scrubber:
    """Removes what a server's error text may echo back and a voter must not see: the API key (OpenAI echoes
    part of a wrong one), the base URL, its host and credentials, and the model name (it would reveal the
    anonymous side)."""

    def __init__(self, config: Mapping[str, Any], api_key: str | None) -> None:
        parts = urlsplit(config["base_url"])
        secrets = [api_key, config["base_url"], parts.netloc, parts.hostname, parts.username, parts.password]
        # Longest first, so the base URL goes before the host inside it.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
        self.model = config["model"]
        if api_key and len(api_key) >= 8:
            # A key shown partly, as in OpenAI's "Incorrect API key provided: sk-abc***xyz".
            self.secrets.append(api_key[:8])

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return re.sub(re.escape(self.model), "[model]", text, flags=re.IGNORECASE)
