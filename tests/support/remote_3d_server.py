"""A small, real 3D model server speaking the remote_3d protocol, for tests and benchmarks.

It listens on 127.0.0.1 on an ephemeral port, in a background thread, parses each multipart/form-data request
the way a model maker's server would (prompt, image, seed, extra) and answers with a real file: a GLB written
by trimesh, a Gaussian-splat PLY, an antimatter15 .splat, an OBJ. Each URL path is one route, so one server
plays a healthy model and a broken one side by side:

    with Remote3DServer() as server:
        config = {"url": server.url("glb")}
        ...
        assert server.last_request.fields["prompt"] == "a chair"

Routes (ROUTES, overridable per server):

    glb              a coloured box as GLB, Content-Type model/gltf-binary
    ply              a Gaussian-splat PLY, application/octet-stream, Content-Disposition filename=scene.ply
    splat            a .splat file, application/octet-stream, X-Arena-Format: splat
    obj              a triangle as OBJ, Content-Type model/obj
    glb-slow         the GLB in eight pieces with pauses between them (download progress)
    fault-500        HTTP 500 with an error body naming the model and an internal host
    fault-hang       accept, then send nothing for `hang_seconds`
    fault-truncated  announce the GLB's length, send half of it, drop the connection
    fault-huge       announce a 1 GiB body (Content-Length)
    fault-endless    stream chunks without a Content-Length until the client hangs up
    fault-lie        a .splat file sent as model/gltf-binary
    fault-image      a PNG image instead of a 3D file
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import io
import json
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

FAULTS = frozenset({"hang", "truncate", "endless"})


@dataclass(frozen=True)
class Answer:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: tuple[tuple[str, str], ...] = ()
    fault: str | None = None
    pieces: int = 1  # send the body in this many writes...
    piece_delay: float = 0.0  # ...with this pause between them
    content_length: int | None = None  # announce this length instead of the body's

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; expected one of {sorted(FAULTS)}")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    content_type: str
    fields: dict[str, str]  # text parts
    files: dict[str, tuple[str | None, str, bytes]]  # file parts: (filename, content type, data)
    received_at: float = field(default_factory=time.monotonic)


# --- sample files ------------------------------------------------------------------------------------------


def glb_sample() -> bytes:
    """A unit box with a colour per vertex, written by trimesh."""
    import trimesh

    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    colours = np.array(
        [[255, 40 * i % 256, 255 - 30 * i, 255] for i in range(len(box.vertices))], dtype=np.uint8
    )
    return trimesh.Trimesh(box.vertices, box.faces, vertex_colors=colours, process=False).export(
        file_type="glb"
    )


SPLAT_PLY_PROPERTIES = (
    *("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"),
    *("scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"),
)


def splat_ply_sample(count: int = 16) -> bytes:
    """A binary Gaussian-splat PLY (the 3DGS training output's layout, without higher-order SH)."""
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    header += [f"property float {name}" for name in SPLAT_PLY_PROPERTIES]
    header.append("end_header")
    rng = np.random.default_rng(0)
    values = rng.normal(size=(count, len(SPLAT_PLY_PROPERTIES))).astype("<f4")
    return ("\n".join(header) + "\n").encode("ascii") + values.tobytes()


def splat_sample(count: int = 16) -> bytes:
    """An antimatter15 .splat: per splat position 3 x f32, scale 3 x f32, RGBA 4 x u8, rotation 4 x u8."""
    rng = np.random.default_rng(1)
    out = io.BytesIO()
    for _ in range(count):
        out.write(struct.pack("<3f", *rng.normal(size=3)))
        out.write(struct.pack("<3f", *np.abs(rng.normal(size=3)) * 0.05))
        out.write(bytes(rng.integers(0, 256, size=8, dtype=np.uint8)))
    return out.getvalue()


OBJ_SAMPLE = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def png_sample(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(out, format="PNG")
    return out.getvalue()


def default_routes() -> dict[str, Answer]:
    glb = glb_sample()
    return {
        "glb": Answer(glb, content_type="model/gltf-binary"),
        "ply": Answer(
            splat_ply_sample(), headers=(("Content-Disposition", 'attachment; filename="scene.ply"'),)
        ),
        "splat": Answer(splat_sample(), headers=(("X-Arena-Format", "splat"),)),
        "obj": Answer(OBJ_SAMPLE, content_type="model/obj"),
        "glb-slow": Answer(glb, content_type="model/gltf-binary", pieces=8, piece_delay=0.02),
        "fault-500": Answer(
            json.dumps({"error": "hunyuan3d-secret crashed on gpu-7.internal.example"}).encode(),
            status=500,
            content_type="application/json",
        ),
        "fault-hang": Answer(fault="hang"),
        "fault-truncated": Answer(glb, content_type="model/gltf-binary", fault="truncate"),
        "fault-huge": Answer(glb, content_type="model/gltf-binary", content_length=1 << 30, fault="truncate"),
        "fault-endless": Answer(b"\0" * 65536, fault="endless"),
        "fault-lie": Answer(splat_sample(), content_type="model/gltf-binary"),
        "fault-image": Answer(png_sample(), content_type="image/png"),
    }


# --- the server --------------------------------------------------------------------------------------------


class Remote3DServer:
    """Start with `with Remote3DServer() as server:` (or start()/stop()); `server.url("glb")` is a route."""

    def __init__(
        self,
        routes: dict[str, Answer] | None = None,
        *,
        api_key: str | None = None,
        hang_seconds: float = 30.0,
    ) -> None:
        self.routes = default_routes()
        self.routes.update(routes or {})
        self.api_key = api_key  # when set, requests without "Authorization: Bearer <api_key>" get a 401
        self.hang_seconds = hang_seconds
        self.requests: list[Received] = []
        self._requests_lock = threading.Lock()
        self.stopping = threading.Event()  # set on stop so hanging handlers return at once
        self.endless_sent = 0  # bytes the last endless answer wrote before the client hung up
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, route: str) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{route}"

    def start(self) -> Remote3DServer:
        self.stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="remote-3d-test-server",
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

    def __enter__(self) -> Remote3DServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def record(self, received: Received) -> None:
        with self._requests_lock:
            self.requests.append(received)

    @property
    def last_request(self) -> Received:
        with self._requests_lock:
            return self.requests[-1]


def multipart_parse(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str | None, str, bytes]]]:
    """(text fields, file parts) of a multipart/form-data body, parsed by the standard library's MIME parser:
    a part with a filename is a file, any other a text field."""
    if not content_type.startswith("multipart/form-data"):
        raise ValueError(f"expected multipart/form-data, got {content_type!r}")
    document = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(document)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str | None, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode("utf-8")
    return fields, files


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler still hanging must not keep the test process alive

    def __init__(self, owner: Remote3DServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up on purpose (timeouts, size limits); that is not an error worth a traceback.
        if isinstance(sys.exception(), ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ArenaTestRemote3D/1.0"

    @property
    def owner(self) -> Remote3DServer:
        assert isinstance(self.server, _HTTPServer)
        return self.server.owner

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        try:
            fields, files = multipart_parse(content_type, body)
        except ValueError as exc:
            self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
            return
        route = self.path.split("?")[0].strip("/")
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.owner.record(Received(route, headers, content_type, fields, files))
        if self.owner.api_key is not None and headers.get("authorization") != f"Bearer {self.owner.api_key}":
            self._send(401, b'{"error": "bad token"}', "application/json")
            return
        answer = self.owner.routes.get(route)
        if answer is None:
            self._send(404, b'{"error": "no such route"}', "application/json")
            return
        if answer.fault == "hang":
            self.owner.stopping.wait(self.owner.hang_seconds)
            self.close_connection = True
            return
        if answer.fault == "endless":
            self._endless(answer)
            return
        self._answer(answer)

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        length = answer.content_length if answer.content_length is not None else len(answer.body)
        self.send_header("Content-Length", str(length))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        if answer.fault == "truncate":
            self.close_connection = True
            # The client may hang up first (a length over its limit): then there is nobody left to cut off.
            with contextlib.suppress(OSError):
                self.wfile.write(answer.body[: len(answer.body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        size = -(-len(answer.body) // answer.pieces)
        for start in range(0, len(answer.body), size):
            if start:
                time.sleep(answer.piece_delay)
            self.wfile.write(answer.body[start : start + size])
            self.wfile.flush()

    def _endless(self, answer: Answer) -> None:
        """Chunked transfer encoding, no Content-Length, until the client hangs up or the server stops."""
        self.send_response(200)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            while not self.owner.stopping.is_set():
                self.wfile.write(f"{len(answer.body):x}\r\n".encode() + answer.body + b"\r\n")
                self.wfile.flush()
                sent += len(answer.body)
        except (ConnectionError, OSError):
            pass
        finally:
            self.owner.endless_sent = sent
            self.close_connection = True
