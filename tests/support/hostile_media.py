"""Files that name the model that made them, in every format the arena stores, and a server that answers them.

Each maker in NAMED_FILES writes a real, loadable file whose metadata carries `secret` the ways real exporters
and hostile model servers do: PNG tEXt / zTXt / iTXt chunks and bytes after IEND; JPEG EXIF (Make, Model,
Software, an XP comment in UTF-16, a GPS position) and a COM segment; WebP EXIF and XMP chunks; a glTF
`asset.generator`, names, `extras`, an unknown extension, an unknown key, a custom attribute, a texture PNG
with its own text chunk, bytes no accessor reads (in a stride's gap, after a view's data, in a view nobody
uses) and an unknown chunk after the BIN chunk; OBJ comments, names and unknown statements; PLY comments and
`obj_info` lines (and bytes after a splat PLY's data); an .spz whose gzip header names a file and carries a
comment, with bytes after its splats.

UNREAD_FILES hide the name in bytes a reader of the format loads but no viewer uses: the unused entries of a
PNG palette, a PLY element and a per-vertex list property that no viewer knows.

`ImagesServer` answers OpenAI's images API (POST /v1/images/generations, b64_json) with the file registered
for the request's model, so an image battle on the worker receives exactly these bytes.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

from tests.support.gallery import mesh_ply_bytes, splat_ply_bytes, spz_bytes

_GLB_JSON, _GLB_BIN = 0x4E4F534A, 0x004E4942


# --- images ------------------------------------------------------------------------------------------------


def _picture(size: tuple[int, int], mode: str = "RGB") -> Any:
    from PIL import Image, ImageDraw

    fill = (30, 120, 200, 160) if mode == "RGBA" else (30, 120, 200)
    img = Image.new(mode, size, (255, 255, 255, 0) if mode == "RGBA" else "white")
    ImageDraw.Draw(img).rectangle((2, 2, size[0] // 2, size[1] - 3), fill=fill)
    return img


def png_named(secret: str, size: tuple[int, int] = (48, 32)) -> bytes:
    """An RGBA PNG with the name in tEXt, zTXt and iTXt (compressed) chunks and after IEND."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Model", secret)
    info.add_text("parameters", f"Steps: 20, Model: {secret}", zip=True)
    info.add_itxt("Software", f"{secret} pipeline", zip=True)
    out = io.BytesIO()
    _picture(size, "RGBA").save(out, "PNG", pnginfo=info)
    return out.getvalue() + f"Model: {secret}".encode()


def jpeg_named(secret: str, size: tuple[int, int] = (48, 32)) -> bytes:
    """A JPEG whose EXIF says Make, Model, Software, an XP comment (UTF-16) and a GPS position, turned by its
    EXIF orientation (6: the picture is shown rotated 90 degrees), with a COM segment."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = f"{secret} Labs"  # Make
    exif[0x0110] = secret  # Model
    exif[0x0131] = f"{secret} v2"  # Software
    exif[0x0112] = 6  # Orientation
    exif[0x9C9C] = f"made by {secret}".encode("utf-16-le") + b"\0\0"  # XPComment
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    gps[3], gps[4] = "E", (13.0, 24.0, 36.0)
    out = io.BytesIO()
    _picture(size).save(out, "JPEG", exif=exif.tobytes(), comment=f"Model: {secret}".encode(), quality=90)
    return out.getvalue()


def webp_named(secret: str, size: tuple[int, int] = (48, 32)) -> bytes:
    """A lossless RGBA WebP with EXIF and XMP chunks naming the model."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0110] = secret
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Model="{secret}"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    out = io.BytesIO()
    _picture(size, "RGBA").save(out, "WEBP", lossless=True, exif=exif.tobytes(), xmp=xmp.encode())
    return out.getvalue()


def png_of_size(width: int, height: int) -> bytes:
    """A plain greyscale PNG of exactly this many pixels."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (width, height), 128).save(out, "PNG")
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of width x height pixels, all zero, written row by row without ever holding the
    picture: a few hundred kilobytes on disk for hundreds of megabytes decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte 0, then the row
    parts = [packer.compress(row) for _ in range(height)]
    idat = b"".join(parts) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- glTF and GLB ------------------------------------------------------------------------------------------


def _glb_split(glb: bytes) -> tuple[dict[str, Any], bytes]:
    (json_len,) = struct.unpack_from("<I", glb, 12)
    document = json.loads(glb[20 : 20 + json_len])
    pos = 20 + json_len
    (bin_len,) = struct.unpack_from("<I", glb, pos)
    return document, glb[pos + 8 : pos + 8 + bin_len]


def _glb_join(document: dict[str, Any], binary: bytes, extra_chunks: list[tuple[int, bytes]] = ()) -> bytes:
    body = json.dumps(document).encode()
    body += b" " * (-len(body) % 4)
    binary += b"\0" * (-len(binary) % 4)
    chunks = (
        struct.pack("<II", len(body), _GLB_JSON) + body + struct.pack("<II", len(binary), _GLB_BIN) + binary
    )
    for kind, data in extra_chunks:
        data += b"\0" * (-len(data) % 4)
        chunks += struct.pack("<II", len(data), kind) + data
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def textured_glb(secret: str) -> bytes:
    """A textured box written by trimesh, its node and mesh named after the model."""
    import trimesh
    from PIL import Image

    mesh = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    uv = np.random.default_rng(0).random((len(mesh.vertices), 2))
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.new("RGB", (8, 8), (200, 30, 30)))
    scene = trimesh.Scene()
    scene.add_geometry(mesh, node_name=secret, geom_name=secret)
    return scene.export(file_type="glb")


def _gltf_tamper(document: dict[str, Any], binary: bytes, secret: str) -> tuple[dict[str, Any], bytes]:
    """Every place a glTF can carry free text, filled with the name; the texture swapped for one whose PNG
    has a text chunk, and bytes nobody references left in the buffer."""
    tag = secret.replace("-", "_")
    document["asset"].update(generator=f"{secret} exporter", copyright=f"(c) {secret}", extras={"by": secret})
    document["extras"] = {"model": secret}
    document["extensionsUsed"] = [*document.get("extensionsUsed", []), f"HUSH_{tag}"]
    for key in ("nodes", "meshes", "materials", "scenes", "accessors", "images", "textures", "samplers"):
        for item in document.get(key, []):
            item.update(name=secret, extras={"made_by": secret})
    node = document["nodes"][0]
    node["extensions"] = {f"HUSH_{tag}": {"note": secret}}
    node["madeBy"] = secret  # a key no schema knows
    primitive = document["meshes"][0]["primitives"][0]
    primitive["attributes"][f"_{tag.upper()}"] = primitive["attributes"]["POSITION"]
    binary = _positions_interleaved(document, binary, primitive["attributes"]["POSITION"], secret)
    texture = png_named(secret, (8, 8))
    pad = b"\0" * (-len(binary) % 4)
    document["bufferViews"].append(
        {"buffer": 0, "byteOffset": len(binary) + len(pad), "byteLength": len(texture)}
    )
    document["images"][0]["bufferView"] = len(document["bufferViews"]) - 1
    binary = binary + pad + texture
    gap = f"Model: {secret}".encode()  # after every view: part of the buffer, used by nothing
    binary += b"\0" * (-len(binary) % 4) + gap
    document["buffers"][0]["byteLength"] = len(binary)
    return document, binary


def _positions_interleaved(
    document: dict[str, Any], binary: bytes, accessor_index: int, secret: str
) -> bytes:
    """The positions moved to a view of their own with a 20-byte stride: 12 bytes of each position, then 8
    bytes of the name in the gap no accessor reads, and the name again after the last position."""
    accessor = document["accessors"][accessor_index]
    old = document["bufferViews"][accessor["bufferView"]]
    start = old.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    mark = secret.encode()[:8].ljust(8, b"_")
    rows = [binary[start + 12 * i : start + 12 * i + 12] + mark for i in range(accessor["count"])]
    view = b"".join(rows) + f"Model: {secret}".encode()
    binary += b"\0" * (-len(binary) % 4)
    document["bufferViews"].append(
        {"buffer": 0, "byteOffset": len(binary), "byteLength": len(view), "byteStride": 20}
    )
    accessor.update(bufferView=len(document["bufferViews"]) - 1, byteOffset=0)
    return binary + view


def glb_named(secret: str) -> bytes:
    document, binary = _gltf_tamper(*_glb_split(textured_glb(secret)), secret)
    return _glb_join(document, binary, [(0x54585458, f"Model: {secret}".encode())])  # an unknown "XTXT" chunk


def gltf_named(secret: str) -> bytes:
    document, binary = _gltf_tamper(*_glb_split(textured_glb(secret)), secret)
    document["buffers"][0]["uri"] = (
        "data:application/octet-stream;base64," + base64.b64encode(binary).decode()
    )
    return json.dumps(document, indent=1).encode()


# --- OBJ, PLY, .spz ----------------------------------------------------------------------------------------


def obj_named(secret: str) -> bytes:
    return (
        f"# Exported by {secret}\n"
        f"mtllib {secret}.mtl\n"
        f"o {secret} object\n"
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nv 1 1 1\n"
        f"# vertices by {secret}\n"
        "vn 0 0 1\n"
        f"g {secret} parts\n"
        f"usemtl {secret}-material\n"
        "f 1 2 3\nf 1 3 4\n"
        f"s {secret}\n"
        "f 2 3 5\n"
        f"{secret} 1 2 3\n"
    ).encode()


def _ply_comment(data: bytes, secret: str) -> bytes:
    """Comment and obj_info lines after the format line."""
    first, second, rest = data.split(b"\n", 2)
    lines = f"comment Generated by {secret}\nobj_info {secret} v2\n".encode()
    return b"\n".join([first, second]) + b"\n" + lines + rest


def mesh_ply_named(secret: str) -> bytes:
    return _ply_comment(mesh_ply_bytes(), secret)


def splat_ply_named(secret: str) -> bytes:
    """A splat PLY with comments and bytes after the data (a splat reader stops after the declared splats)."""
    return _ply_comment(splat_ply_bytes(count=64), secret) + f"Model: {secret}".encode()


def spz_named(secret: str) -> bytes:
    """An .spz whose gzip header has a file name and a comment, with bytes after the splats."""
    payload = gzip.decompress(spz_bytes(count=64)) + f"Model: {secret}".encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = packer.compress(payload) + packer.flush()
    header = b"\x1f\x8b\x08" + bytes([0x08 | 0x10]) + b"\0\0\0\0\x00\xff"
    header += f"{secret}.spz".encode() + b"\0" + f"exported by {secret}".encode() + b"\0"
    trailer = struct.pack("<II", zlib.crc32(payload), len(payload) & 0xFFFFFFFF)
    return header + deflated + trailer


def png_palette_named(secret: str) -> bytes:
    """A palette PNG whose unused palette entries spell the name."""
    from PIL import Image

    img = Image.new("P", (16, 8), 0)
    img.paste(1, (4, 2, 12, 6))
    spelled = list(f"..{secret}..".encode())
    img.putpalette([255, 255, 255, 200, 40, 40, *spelled] + [0] * (768 - 6 - len(spelled)))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def ply_note_named(secret: str) -> bytes:
    """A binary mesh PLY (an icosphere) with a per-vertex list property and an element of its own, both
    holding the name as bytes."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=1)
    vertices, faces, note = mesh.vertices.astype("<f4"), mesh.faces.astype("<i4"), secret.encode()
    header = (
        f"ply\nformat binary_little_endian 1.0\nelement vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\nproperty list uchar uchar note\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\n"
        "element credits 1\nproperty list uchar uchar text\nend_header\n"
    ).encode()
    body = b"".join(v.tobytes() + bytes([len(note)]) + note for v in vertices)
    body += b"".join(bytes([3]) + f.tobytes() for f in faces)
    return header + body + bytes([len(note)]) + note


UNREAD_FILES = {"png-palette": png_palette_named, "ply-note": ply_note_named}

# Every format, by the extension the arena stores it under, with its maker.
NAMED_FILES = {
    "png": png_named,
    "jpg": jpeg_named,
    "webp": webp_named,
    "glb": glb_named,
    "gltf": gltf_named,
    "obj": obj_named,
    "ply-mesh": mesh_ply_named,
    "ply-splat": splat_ply_named,
    "spz": spz_named,
}


# --- the images server -------------------------------------------------------------------------------------


class ImagesServer:
    """OpenAI's images API on loopback: each model name answers its registered file as b64_json."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ImagesServer:
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                data = files.get(str(body.get("model")))
                if self.path.rstrip("/") != "/v1/images/generations" or data is None:
                    self._send(404, {"error": {"message": "no such model", "type": "invalid_request_error"}})
                    return
                self._send(200, {"created": 1, "data": [{"b64_json": base64.b64encode(data).decode()}]})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
