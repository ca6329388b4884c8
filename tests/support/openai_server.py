"""A small, real OpenAI-compatible chat completions server for tests and benchmarks.

It listens on 127.0.0.1 on an ephemeral port, in a background thread, speaking HTTP/1.1 with chunked
server-sent events like vLLM and TGI do. The answer echoes the last user message word by word (or a fixed
reply), so a test knows exactly what should arrive. Faults are chosen per request, so one server can serve a
healthy model and a broken one side by side:

    with OpenAIServer(models={"slow": Behaviour(first_token_latency=0.5)}) as server:
        config = {"base_url": server.base_url, "model": "fault-500"}
        ...
        assert server.requests[-1].body["temperature"] == 0.2

A request's behaviour is, first match wins: the `X-Fault` header (a fault name), a model named `fault-<name>`,
the `triggers` mapping (a word in the last user message, case-insensitive: the crafted prompt that makes a
server fail), the `models` mapping, the server's default behaviour. A behaviour's `context_limit` answers a
conversation longer than that many tokens (words here, plus max_tokens) the way vLLM does: HTTP 400, "This
model's maximum context length is N tokens...". Faults:

    500        HTTP 500 with an OpenAI-style error body naming the model (as real servers do)
    html-502   HTTP 502 with a proxy's HTML error page (its server banner and version) instead of JSON
    context    HTTP 400 with vLLM's context-length message (as if `context_limit` were exceeded)
    refuse     HTTP 400 with OpenAI's content_policy_violation ("rejected by our safety system")
    filter     HTTP 200, a stream that ends at once with finish_reason "content_filter" and no content
    hang       accept, then send nothing for `hang_seconds` (longer than any client timeout in the tests)
    stall      send the first chunk, then nothing for `hang_seconds`
    cut        send half the chunks, then drop the connection in the middle of the chunked body
    cut-clean  send half the chunks, then end the body properly but without finish_reason or [DONE]
    malformed  send a chunk that is not JSON
    error-event  send a chunk, then an {"error": ...} event inside the 200 stream (vLLM does this)

It also answers OpenAI's image API, POST /v1/images/generations: a real PNG (Pillow) of the requested `size`
(default 64x64, so tests stay fast), random noise seeded by the prompt, so the same prompt gives the same
bytes (`image_png`). `"response_format": "url"` answers a link to /v1/files/<id>.png on this server, which GET
serves without asking for the key (like a signed storage link); anything else answers `b64_json`. The faults
apply there too, as far as they make sense for one JSON answer:

    500, hang    as above
    stall        send half the answer's body, then nothing for `hang_seconds`
    cut          send half the answer's body, then drop the connection
    cut-clean    a well-formed answer whose PNG is cut in half (a truncated image)
    malformed    an answer that is not JSON
    error-event  HTTP 200 with an {"error": ...} body
    bad-base64   b64_json that is not base64
    not-image    the "image" is a text file (in b64_json, or behind the link)
    no-data      {"data": []}: no image at all
The last three are image faults only; a chat completion with one of them is answered normally. `refuse` and
`html-502` answer image requests as they answer chat ones; `context` and `filter` are chat faults only.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import random
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

FAULTS = frozenset(
    {
        "500",
        "html-502",
        "context",
        "refuse",
        "filter",
        "hang",
        "stall",
        "cut",
        "cut-clean",
        "malformed",
        "error-event",
        "bad-base64",
        "not-image",
        "no-data",
    }
)
IMAGE_DEFAULT_SIZE = (64, 64)
IMAGE_MAX_SIDE = 2048
NOT_AN_IMAGE = b"<html><body>Sorry, this is not an image.</body></html>\n"
CONTEXT_DEFAULT = 8192  # the context window the `context` fault reports
PROXY_ERROR_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    b"</center>\r\n<hr><center>nginx/1.18.0 (Ubuntu)</center>\r\n</body>\r\n</html>\r\n"
)
REFUSAL_MESSAGE = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text that is not "
    "allowed by our safety system."
)


@dataclass(frozen=True)
class Behaviour:
    fault: str | None = None
    first_token_latency: float = 0.0  # seconds before the first content chunk
    chunk_delay: float = 0.0  # seconds between content chunks
    reply: str | None = None  # fixed answer instead of echoing the last user message
    usage: bool = True  # send usage when the client asks for it with stream_options
    done: bool = True  # end with "data: [DONE]" (some servers stop after the finish_reason chunk)
    context_limit: int | None = None  # longer conversations (prompt words + max_tokens) get vLLM's HTTP 400
    # Serving-stack differences a voter's browser could time (benchmarks/side_channels.py): words per streamed
    # chunk (a server that batches tokens), and each delay scaled by a random factor in [1 - jitter,
    # 1 + jitter] (seeded by the prompt, so a run repeats).
    words_per_chunk: int = 1
    jitter: float = 0.0
    # Images: "noise" (incompressible, a predictable size) or "scene" (smooth shapes, whose PNG size depends
    # on the encoder), and the zlib level the PNG is saved with (None: Pillow's default).
    image_kind: str = "noise"
    png_compress_level: int | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; expected one of {sorted(FAULTS)}")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the decoded JSON body, or None
    received_at: float = field(default_factory=time.monotonic)


class OpenAIServer:
    """Start with `with OpenAIServer() as server:` (or start()/stop()); `server.base_url` ends in /v1."""

    def __init__(
        self,
        *,
        default: Behaviour | None = None,
        models: dict[str, Behaviour] | None = None,
        api_key: str | None = None,
        hang_seconds: float = 30.0,
        triggers: dict[str, Behaviour] | None = None,
    ) -> None:
        self.default = default or Behaviour()
        self.models = dict(models or {})
        self.triggers = dict(triggers or {})  # word in the last user message -> behaviour
        self.api_key = api_key  # when set, requests without "Authorization: Bearer <api_key>" get a 401
        self.hang_seconds = hang_seconds
        self.requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        # Images answered as links, by file name under /v1/files/.
        self.files: dict[str, bytes] = {}
        # Set on stop so hanging handlers return at once instead of holding the test process.
        self.stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        self.stopping.clear()
        self._httpd = _HTTPServer(self)
        # A short poll interval: stop() waits up to one interval, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="openai-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self.requests.append(request)

    @property
    def last_request(self) -> RecordedRequest:
        with self._requests_lock:
            return self.requests[-1]

    def behaviour_for(self, model: str, headers: dict[str, str], prompt: str = "") -> Behaviour:
        header_fault = headers.get("x-fault")
        if header_fault:
            return Behaviour(fault=header_fault)
        if model.startswith("fault-"):
            return Behaviour(fault=model.removeprefix("fault-"))
        for word, behaviour in self.triggers.items():
            if word.lower() in prompt.lower():
                return behaviour
        return self.models.get(model, self.default)


def image_png(
    prompt: str, width: int, height: int, *, kind: str = "noise", compress_level: int | None = None
) -> bytes:
    """The PNG the server draws for a prompt: RGB noise seeded by the prompt and size (noise does not
    compress, so a file's size is predictable: about 3 bytes a pixel), or a smooth "scene" from that seed."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"{prompt}|{width}x{height}")
    if kind == "scene":
        image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = rng.randrange(width), rng.randrange(height)
            r = rng.randrange(4, max(width, height) // 2 + 5)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    else:
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    options = {} if compress_level is None else {"compress_level": compress_level}
    image.save(out, format="PNG", **options)
    return out.getvalue()


def _image_size(value: Any) -> tuple[int, int] | None:
    if value is None or value == "auto":
        return IMAGE_DEFAULT_SIZE
    match = re.fullmatch(r"(\d+)x(\d+)", str(value))
    if not match:
        return None
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= IMAGE_MAX_SIDE and 1 <= height <= IMAGE_MAX_SIDE):
        return None
    return width, height


def words_split(text: str) -> list[str]:
    """Pieces that concatenate back to the text (trailing spaces kept), one per word: the streamed deltas."""
    return re.findall(r"\S+\s*", text.strip())


def _answer_text(body: dict[str, Any], behaviour: Behaviour) -> str:
    if behaviour.reply is not None:
        return behaviour.reply
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler still streaming must not keep the test process alive

    def __init__(self, owner: OpenAIServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-answer on purpose (timeouts, a reader that stops early); that is not an error
        # worth a traceback on stderr. Anything else still gets one.
        if isinstance(sys.exception(), ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as real model servers speak
    server_version = "ArenaTestOpenAI/1.0"

    @property
    def owner(self) -> OpenAIServer:
        assert isinstance(self.server, _HTTPServer)
        return self.server.owner

    def setup(self) -> None:
        super().setup()
        # Real servers (uvicorn) disable Nagle; without this, small SSE writes wait for delayed ACKs (~40 ms)
        # and latency measurements would measure the kernel instead of the code.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/") == "/v1/models":
            names = sorted(self.owner.models) or ["echo"]
            self._json(200, {"object": "list", "data": [{"id": n, "object": "model"} for n in names]})
        elif self.path.startswith("/v1/files/") and self.path.removeprefix("/v1/files/") in self.owner.files:
            data = self.owner.files[self.path.removeprefix("/v1/files/")]
            self.send_response(200)
            content_type = "image/png" if data.startswith(b"\x89PNG") else "text/html"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        self._record(body)
        if self.path.rstrip("/") == "/v1/images/generations":
            with contextlib.suppress(ConnectionError):
                self._image(body)
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._json(400, {"error": {"message": "messages is required", "type": "invalid_request_error"}})
            return
        if not self._authorised():
            return
        # The client may give up mid-answer (timeout tests do exactly that).
        with contextlib.suppress(ConnectionError):
            self._complete(body)

    def _record(self, body: Any) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.owner.record(RecordedRequest(self.command, self.path, headers, body))

    def _authorised(self) -> bool:
        expected = self.owner.api_key
        if expected is None:
            return True
        given = self.headers.get("Authorization", "")
        if given == f"Bearer {expected}":
            return True
        # Like OpenAI, echo part of the wrong key back: the backend must not pass it on to voters.
        shown = given.removeprefix("Bearer ")
        self._json(401, {"error": {"message": f"Incorrect API key provided: {shown}", "type": "auth_error"}})
        return False

    def _complete(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            behaviour = self.owner.behaviour_for(model, headers, _answer_text(body, Behaviour()))
        except ValueError as exc:
            self._json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            return
        if self._error_answer(behaviour, body, model):
            return
        if behaviour.fault == "hang":
            self.owner.stopping.wait(self.owner.hang_seconds)
            self.close_connection = True
            return
        words = words_split(_answer_text(body, behaviour))
        max_tokens = body.get("max_tokens")
        finish_reason = "stop"
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            words, finish_reason = words[:max_tokens], "length"
        if body.get("stream"):
            _Stream(self, body, behaviour, words, finish_reason).send()
        else:
            self._completion(body, behaviour, words, finish_reason)

    def _image(self, body: Any) -> None:
        """POST /v1/images/generations: one PNG as b64_json or as a link, or the behaviour's fault."""
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) or not body["prompt"]:
            self._json(400, {"error": {"message": "prompt is required", "type": "invalid_request_error"}})
            return
        if not self._authorised():
            return
        model = str(body.get("model", ""))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            behaviour = self.owner.behaviour_for(model, headers, body["prompt"])
        except ValueError as exc:
            self._json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            return
        size = _image_size(body.get("size"))
        if size is None:
            message = f"Invalid size {body.get('size')!r}: expected WIDTHxHEIGHT up to {IMAGE_MAX_SIDE}"
            self._json(400, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        if self._error_answer(behaviour, body, model):
            return
        fault = behaviour.fault
        if fault == "hang":
            self.owner.stopping.wait(self.owner.hang_seconds)
            self.close_connection = True
            return
        if behaviour.first_token_latency > 0:
            time.sleep(behaviour.first_token_latency)  # the time the model takes to draw
        if fault == "error-event":
            self._json(
                200, {"error": {"message": f"engine {model} died", "type": "server_error", "code": 500}}
            )
            return
        if fault == "malformed":
            self._raw(200, b'{"created": 1, "data": [{"b64_json": "iVBORw0KGgo', "application/json")
            return
        data = (
            NOT_AN_IMAGE
            if fault == "not-image"
            else image_png(
                body["prompt"], *size, kind=behaviour.image_kind, compress_level=behaviour.png_compress_level
            )
        )
        if fault == "cut-clean":
            data = data[: len(data) // 2]
        if fault == "no-data":
            items: list[dict[str, Any]] = []
        elif body.get("response_format") == "url":
            name = f"{uuid.uuid4().hex}.png"
            self.owner.files[name] = data
            items = [{"url": f"{self.owner.base_url}/files/{name}"}]
        elif fault == "bad-base64":
            items = [{"b64_json": "this is *not* base64!"}]
        else:
            items = [{"b64_json": base64.b64encode(data).decode("ascii")}]
        payload = json.dumps({"created": int(time.time()), "data": items}).encode()
        if fault in ("stall", "cut"):
            self._partial(payload, hang=fault == "stall")
            return
        self._raw(200, payload, "application/json")

    def _error_answer(self, behaviour: Behaviour, body: dict[str, Any], model: str) -> bool:
        """Answer an error fault, or a conversation over the behaviour's context limit, the way real servers
        word them (the model's name, its limits, a proxy's banner); True when the request is answered."""
        fault = behaviour.fault
        prompt, completion = _prompt_tokens(body), body.get("max_tokens")
        completion = completion if isinstance(completion, int) else 0
        limit = behaviour.context_limit
        if fault == "500":
            message = f"The model {model} crashed: CUDA error: an illegal memory access was encountered"
            self._json(500, {"error": {"message": message, "type": "server_error", "code": 500}})
        elif fault == "html-502":
            self._raw(502, PROXY_ERROR_PAGE, "text/html")
        elif fault == "refuse":
            error = {
                "message": REFUSAL_MESSAGE,
                "type": "invalid_request_error",
                "code": "content_policy_violation",
            }
            self._json(400, {"error": error})
        elif fault == "context" or (limit is not None and prompt + completion > limit):
            self._json(400, _context_error(limit or CONTEXT_DEFAULT, prompt, completion))
        else:
            return False
        return True

    def _partial(self, payload: bytes, *, hang: bool) -> None:
        """Announce the whole body, send half of it, then stall or drop the connection."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        if hang:
            self.owner.stopping.wait(self.owner.hang_seconds)
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _raw(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _completion(self, body: dict[str, Any], behaviour: Behaviour, words: list[str], finish: str) -> None:
        time.sleep(behaviour.first_token_latency + behaviour.chunk_delay * max(len(words) - 1, 0))
        self._json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage(body, words),
            },
        )

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk_write(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _context_error(limit: int, prompt: int, completion: int) -> dict[str, Any]:
    """vLLM's answer to a conversation longer than the model's context window (HTTP 400)."""
    requested = max(prompt + completion, limit + 1)
    message = (
        f"This model's maximum context length is {limit} tokens. However, you requested {requested} tokens "
        f"({prompt} in the messages, {completion} in the completion). Please reduce the length of the "
        "messages or completion."
    )
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}


def _usage(body: dict[str, Any], words: list[str]) -> dict[str, int]:
    prompt = _prompt_tokens(body)
    return {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}


class _Stream:
    """One streamed answer: role chunk, content chunks, finish chunk, optional usage chunk, [DONE]."""

    def __init__(
        self, handler: _Handler, body: dict[str, Any], behaviour: Behaviour, words: list[str], finish: str
    ) -> None:
        self.handler = handler
        self.body = body
        self.behaviour = behaviour
        self.words = words
        self.finish = finish
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        options = body.get("stream_options") or {}
        self.usage_wanted = bool(options.get("include_usage")) and behaviour.usage

    def send(self) -> None:
        handler = self.handler
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        self._event(self._chunk({"role": "assistant", "content": ""}))
        fault = self.behaviour.fault
        if fault in ("cut", "cut-clean"):
            self._words(self.words[: len(self.words) // 2])
            self._cut(clean=fault == "cut-clean")
            return
        if fault == "malformed":
            self._words(self.words[:1])
            self._event('{"id": "x", "choices": [{"delta": {"content": "oops"')
            self._end()
            return
        if fault == "error-event":
            self._words(self.words[:1])
            self._event(
                json.dumps({"error": {"message": "engine died", "type": "server_error", "code": 500}})
            )
            self._end()
            return
        if fault == "filter":
            # The content filter withholds the whole answer: no content, only the finish reason.
            self._event(self._chunk({}, finish_reason="content_filter"))
            self._event("[DONE]")
            self._end()
            return
        if fault == "stall":
            self._words(self.words[:1])
            self.handler.owner.stopping.wait(self.handler.owner.hang_seconds)
            self.handler.close_connection = True
            return
        self._words(self.words)
        self._finish()

    def _words(self, words: list[str]) -> None:
        step = max(1, self.behaviour.words_per_chunk)
        rng = random.Random(json.dumps(self.body.get("messages"), sort_keys=True))
        for index in range(0, len(words), step):
            delay = self.behaviour.first_token_latency if index == 0 else self.behaviour.chunk_delay
            delay *= 1 + self.behaviour.jitter * rng.uniform(-1, 1)
            if delay > 0:
                time.sleep(delay)
            self._event(self._chunk({"content": "".join(words[index : index + step])}))

    def _finish(self) -> None:
        self._event(self._chunk({}, finish_reason=self.finish))
        if self.usage_wanted:
            usage_chunk = {**self._envelope(), "choices": [], "usage": _usage(self.body, self.words)}
            self._event(json.dumps(usage_chunk))
        if self.behaviour.done:
            self._event("[DONE]")
        self._end()

    def _envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.body.get("model"),
        }

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return json.dumps({**self._envelope(), "choices": [choice]})

    def _event(self, data: str) -> None:
        self.handler.chunk_write(f"data: {data}\n\n".encode())

    def _end(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def _cut(self, *, clean: bool) -> None:
        if clean:
            self._end()
            return
        # Drop the TCP connection mid-body: the client sees an incomplete chunked message, as when a model
        # server's process dies.
        self.handler.close_connection = True
        self.handler.connection.shutdown(socket.SHUT_RDWR)
