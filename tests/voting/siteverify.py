"""A real HTTP server on 127.0.0.1 that answers like Turnstile's and hCaptcha's siteverify endpoints.

The answer depends on the `response` token the page sent: "pass" succeeds, "stale" fails as a spent or
expired token does, "slow" answers after `slow_seconds`, "broken" gets HTTP 500, anything else fails.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class _Handler(BaseHTTPRequestHandler):
    server: SiteverifyServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        self.server.requests.append(form)
        token = form.get("response", "")
        if token == "slow":
            time.sleep(self.server.slow_seconds)
        if token == "broken":
            self._send(500, {"error": "internal"})
        elif token == "pass" and form.get("secret") == self.server.secret:
            self._send(200, {"success": True, "hostname": "localhost", "error-codes": []})
        elif token == "stale":
            self._send(200, {"success": False, "error-codes": ["timeout-or-duplicate"]})
        else:
            self._send(200, {"success": False, "error-codes": ["invalid-input-response"]})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SiteverifyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, secret: str, slow_seconds: float = 2.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secret = secret
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, str]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/siteverify"

    def __enter__(self) -> SiteverifyServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.shutdown()
        self.server_close()
