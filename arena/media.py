"""Image and 3D files: what a file really is (checked by content, never by its name), and where it is kept.

Every output a backend makes, every gallery file and every image a voter uploads passes `media_accept`
before it is stored: `media_inspect` refuses a wrong extension, a truncated mesh, an image over
ARENA_MAX_IMAGE_PIXELS (read from its header, before a pixel is decoded) or an oversized file with a message
that says which, and `media_sanitise` rewrites the file without its metadata (text chunks, EXIF, glTF
generator, names and extras, PLY comments), so the bytes a voter is served cannot name the model. Files
are stored through Django's storage API under random names (`media_save`), so no stored name says which
model made a file; the browser reaches a battle's files only through the battle's own URLs
(arena.views.battle_media).
"""

from __future__ import annotations

import io
import json
import re
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

IMAGE_FORMATS = ("png", "jpg", "webp")
MESH_FORMATS = ("glb", "gltf", "obj", "ply")
SPLAT_FORMATS = ("ply", "splat", "spz")
ALL_FORMATS = ("png", "jpg", "webp", "glb", "gltf", "obj", "ply", "splat", "spz")
# Other spellings accepted in file names and backend answers.
FORMAT_ALIASES = {"jpeg": "jpg"}

CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "glb": "model/gltf-binary",
    "gltf": "model/gltf+json",
    "obj": "model/obj",
    "ply": "application/octet-stream",
    "splat": "application/octet-stream",
    "spz": "application/octet-stream",
}

# Gaussian-splat PLY files (the 3DGS training output) carry these vertex properties; a mesh PLY does not.
_SPLAT_PLY_PROPERTIES = {"f_dc_0", "opacity", "scale_0", "rot_0"}
_SPZ_MAGIC = 0x5053474E  # "NGSP" little-endian
_SPLAT_RECORD = 32  # antimatter15 .splat: position 3xf32, scale 3xf32, RGBA 4xu8, rotation 4xu8


class MediaRejected(ValueError):
    """The file is not what it claims to be, is damaged, or is too large. The message says which."""


@dataclass(frozen=True)
class MediaInfo:
    format: str  # one of ALL_FORMATS
    kind: str  # image, mesh, splat
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def format_clean(value: str | None) -> str | None:
    """A lowercase format from a file extension or a backend's answer; None when there is none."""
    if not value:
        return None
    fmt = value.lower().lstrip(".")
    return FORMAT_ALIASES.get(fmt, fmt)


def _sniff(data: bytes) -> str | None:
    """The format a file's first bytes prove, or None for formats without a signature."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"glTF"):
        return "glb"
    if data.startswith(b"ply\n") or data.startswith(b"ply\r\n"):
        return "ply"
    if data.startswith(b"\x1f\x8b"):
        return "spz"
    return None


def media_inspect(data: bytes, *, format_hint: str | None = None, max_bytes: int | None = None) -> MediaInfo:
    """Check a file by its content and describe it. `format_hint` (an extension) must agree with the content;
    formats without a signature (glTF JSON, OBJ, .splat) are recognised only with a hint."""
    limit = max_bytes if max_bytes is not None else settings.ARENA_MAX_MEDIA_BYTES
    if not data:
        raise MediaRejected("The file is empty.")
    if len(data) > limit:
        raise MediaRejected(f"The file is {len(data):,} bytes; the limit is {limit:,}.")
    hint = format_clean(format_hint)
    if hint is not None and hint not in ALL_FORMATS:
        raise MediaRejected(f"Unsupported file type {hint!r}; expected one of {', '.join(ALL_FORMATS)}.")
    sniffed = _sniff(data)
    if sniffed is not None and hint is not None and sniffed != hint:
        raise MediaRejected(f"The file is named .{hint} but its content is {sniffed.upper()}.")
    fmt = sniffed or hint
    if fmt is None:
        raise MediaRejected("The file type could not be recognised from its content.")
    if sniffed is None and fmt in ("png", "jpg", "webp", "glb", "ply", "spz"):
        raise MediaRejected(f"The file is named .{fmt} but does not start like a {fmt.upper()} file.")
    inspector = _INSPECTORS[fmt]
    try:
        return inspector(data)
    except MediaRejected:
        raise
    except Exception as exc:  # a parser's own error on a damaged file: say what failed, not a traceback
        raise MediaRejected(
            f"The {fmt.upper()} file is damaged or unreadable ({type(exc).__name__})."
        ) from exc


# --- images ------------------------------------------------------------------------------------------------


def pillow_limit_set() -> None:
    """Pillow's own bomb check, as a backstop behind `pixels_check` (it only warns below twice its limit)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = settings.ARENA_MAX_IMAGE_PIXELS


def _image(data: bytes) -> MediaInfo:
    from PIL import Image

    from arena.media_clean import image_size, pixels_check

    pillow_limit_set()
    size = image_size(data)  # the header's own numbers, before Pillow reads anything
    if size is not None:
        pixels_check(*size)
    try:
        with Image.open(io.BytesIO(data)) as img:
            pixels_check(*img.size)  # Pillow's reading of the header, still before any pixel is decoded
            img.verify()  # checks the structure and checksums without decoding everything
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # a truncated file fails here
            width, height, mode, fmt = img.width, img.height, img.mode, (img.format or "").lower()
    except Image.DecompressionBombError as exc:
        raise MediaRejected(
            f"The image has too many pixels; the limit is {settings.ARENA_MAX_IMAGE_PIXELS:,}."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, MediaRejected):
            raise
        raise MediaRejected(f"The image is damaged or unreadable: {exc}") from exc
    fmt = {"jpeg": "jpg"}.get(fmt, fmt)
    if fmt not in IMAGE_FORMATS:
        raise MediaRejected(f"Unsupported image format {fmt!r}.")
    return MediaInfo(fmt, "image", {"width": width, "height": height, "mode": mode, "bytes": len(data)})


# --- meshes ------------------------------------------------------------------------------------------------


def _mesh_info(fmt: str, data: bytes, scene: Any) -> MediaInfo:
    import trimesh

    geometries = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh)]
    points = [g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
    vertices = sum(len(g.vertices) for g in geometries) + sum(len(p.vertices) for p in points)
    faces = sum(len(g.faces) for g in geometries)
    if vertices == 0:
        raise MediaRejected(f"The {fmt.upper()} file holds no geometry.")
    textured = any(_has_colour(g) for g in geometries)
    meta = {"vertices": int(vertices), "faces": int(faces), "textured": textured, "bytes": len(data)}
    return MediaInfo(fmt, "mesh", meta)


def _has_colour(mesh: Any) -> bool:
    """Textured means a texture image or per-vertex / per-face colours: what 3D Arena's split compares."""
    visual = mesh.visual
    # A GLB with a material keeps its COLOR_0 vertex colours as a vertex attribute, not as vertex colours.
    if getattr(visual, "vertex_attributes", {}).get("color") is not None:
        return True
    if visual.kind == "texture":
        material = getattr(visual, "material", None)
        image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
        return image is not None
    return visual.kind in ("vertex", "face")


def _trimesh_scene(data: bytes, fmt: str) -> Any:
    import trimesh

    # No resolver: a glTF or OBJ that points at other files cannot be loaded from one upload.
    return trimesh.load(io.BytesIO(data), file_type=fmt, force="scene", resolver=None)


def _glb(data: bytes) -> MediaInfo:
    if len(data) < 20:
        raise MediaRejected("The GLB file is truncated (shorter than its header).")
    _magic, version, length = struct.unpack_from("<4sII", data)
    if version != 2:
        raise MediaRejected(f"Only glTF 2.0 is supported; the GLB says version {version}.")
    if length != len(data):
        raise MediaRejected(
            f"The GLB file is truncated or padded: its header says {length:,} bytes, got {len(data):,}."
        )
    return _mesh_info("glb", data, _trimesh_scene(data, "glb"))


def _gltf(data: bytes) -> MediaInfo:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MediaRejected(f"The glTF file is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or "asset" not in document:
        raise MediaRejected("The glTF file has no 'asset' block; it is not glTF.")
    for item in [*document.get("buffers", []), *document.get("images", [])]:
        uri = item.get("uri", "") if isinstance(item, dict) else ""
        if uri and not uri.startswith("data:"):
            raise MediaRejected("The glTF file refers to other files; embed them (data URIs) or use .glb.")
    return _mesh_info("gltf", data, _trimesh_scene(data, "gltf"))


def _obj(data: bytes) -> MediaInfo:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MediaRejected("The OBJ file is not text.") from exc
    if not re.search(r"^v\s", text, re.MULTILINE):
        raise MediaRejected("The OBJ file has no vertices ('v' lines).")
    return _mesh_info("obj", data, _trimesh_scene(data, "obj"))


PlyElement = tuple[str, int, list[list[str]]]  # name, count, each property's tokens after "property"


def ply_header_lines(data: bytes) -> tuple[str, list[PlyElement], int]:
    """(format, elements, where the data starts). An unknown property type is refused here."""
    end = data.find(b"end_header")
    if end < 0 or end > 64 * 1024:
        raise MediaRejected("The PLY file has no end_header line.")
    body_start = data.index(b"\n", end) + 1
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    fmt = ""
    elements: list[PlyElement] = []
    for line in lines[1:]:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "format" and len(parts) >= 2:
            fmt = parts[1]
        elif parts[0] == "element" and len(parts) == 3:
            elements.append((parts[1], int(parts[2]), []))
        elif parts[0] == "property" and elements:
            tokens = parts[1:]
            if len(tokens) != (4 if tokens[:1] == ["list"] else 2):
                raise MediaRejected("The PLY file has a malformed property line.")
            for ply_type in tokens[1:3] if tokens[0] == "list" else tokens[:1]:
                ply_type_size(ply_type)
            elements[-1][2].append(tokens)
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise MediaRejected(f"The PLY file has an unknown format line {fmt[:40]!r}.")
    return fmt, elements, body_start


def _ply_header(data: bytes) -> tuple[str, list[tuple[str, int, list[str]]], int]:
    fmt, elements, body_start = ply_header_lines(data)
    return fmt, [(name, count, [p[-1] for p in props]) for name, count, props in elements], body_start


_PLY_SIZES = {
    **dict.fromkeys(("char", "uchar", "int8", "uint8"), 1),
    **dict.fromkeys(("short", "ushort", "int16", "uint16"), 2),
    **dict.fromkeys(("int", "uint", "int32", "uint32", "float", "float32"), 4),
    **dict.fromkeys(("double", "float64"), 8),
}


def ply_type_size(ply_type: str) -> int:
    size = _PLY_SIZES.get(ply_type)
    if size is None:
        raise MediaRejected("The PLY file declares a property of an unknown type.")
    return size


def _ply(data: bytes) -> MediaInfo:
    fmt, elements, body_start = _ply_header(data)
    vertex = next((e for e in elements if e[0] == "vertex"), None)
    if vertex is None or vertex[1] == 0:
        raise MediaRejected("The PLY file has no vertices.")
    if set(vertex[2]) >= _SPLAT_PLY_PROPERTIES:
        if fmt == "ascii" or len(elements) != 1:
            raise MediaRejected("A Gaussian-splat PLY must be binary with only a vertex element.")
        header = data[:body_start].decode("ascii", errors="replace")
        types = re.findall(r"^property\s+(\w+)\s+\w+\s*$", header, re.MULTILINE)
        stride = sum(_PLY_SIZES.get(t, 0) for t in types)
        if stride == 0 or len(data) - body_start < stride * vertex[1]:
            raise MediaRejected(
                f"The splat PLY is truncated: {vertex[1]:,} splats need {stride * vertex[1]:,} bytes of data."
            )
        return MediaInfo("ply", "splat", {"splats": vertex[1], "bytes": len(data)})
    return _mesh_info("ply", data, _trimesh_scene(data, "ply"))


# --- Gaussian splats ---------------------------------------------------------------------------------------


def _splat(data: bytes) -> MediaInfo:
    import numpy as np

    if len(data) % _SPLAT_RECORD:
        raise MediaRejected(
            f"A .splat file is a whole number of {_SPLAT_RECORD}-byte records; this one is not."
        )
    records = np.frombuffer(data, dtype=np.dtype([("xyz", "<f4", 3), ("scale", "<f4", 3), ("rest", "u1", 8)]))
    if not (np.isfinite(records["xyz"]).all() and np.isfinite(records["scale"]).all()):
        raise MediaRejected("The .splat file holds non-finite positions or scales; it is damaged.")
    return MediaInfo("splat", "splat", {"splats": len(records), "bytes": len(data)})


def spz_inflate(data: bytes) -> bytes:
    """The .spz payload, inflated within a bound (spz compresses about 10x; a bomb stops at the bound)."""
    limit = settings.ARENA_MAX_MEDIA_BYTES * 8
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise MediaRejected(f"The .spz file is not valid gzip: {exc}") from exc
    if inflater.unconsumed_tail:
        raise MediaRejected("The .spz file inflates beyond the size limit.")
    if not inflater.eof:
        raise MediaRejected("The .spz file is truncated.")
    return raw


def spz_payload_size(raw: bytes) -> int:
    """Bytes the header and its splats take in an inflated .spz (anything after them is not part of it)."""
    if len(raw) < 16:
        raise MediaRejected("The .spz file is too short for its header.")
    magic, version, points, sh_degree, _fraction, _flags, _reserved = struct.unpack_from("<IIIBBBB", raw)
    if magic != _SPZ_MAGIC:
        raise MediaRejected("The gzip file is not an .spz splat (wrong magic number).")
    if version not in (1, 2, 3):
        raise MediaRejected(f"Unsupported .spz version {version}.")
    rotation = 4 if version >= 3 else 3
    sh = {0: 0, 1: 9, 2: 24, 3: 45}.get(sh_degree)
    if sh is None:
        raise MediaRejected(f"Unsupported .spz spherical-harmonics degree {sh_degree}.")
    position = 6 if version == 1 else 9
    needed = 16 + points * (position + 1 + 3 + 3 + rotation + sh)
    if points == 0 or len(raw) < needed:
        raise MediaRejected(
            f"The .spz file is truncated: {points:,} splats need {needed:,} bytes, got {len(raw):,}."
        )
    return needed


def _spz(data: bytes) -> MediaInfo:
    raw = spz_inflate(data)
    spz_payload_size(raw)
    (points,) = struct.unpack_from("<I", raw, 8)
    return MediaInfo("spz", "splat", {"splats": points, "bytes": len(data)})


_INSPECTORS = {
    "png": _image,
    "jpg": _image,
    "webp": _image,
    "glb": _glb,
    "gltf": _gltf,
    "obj": _obj,
    "ply": _ply,
    "splat": _splat,
    "spz": _spz,
}


# --- rewriting on the way in --------------------------------------------------------------------------------


def media_sanitise(data: bytes, info: MediaInfo) -> bytes:
    """The file rewritten without metadata (arena.media_clean says what each format keeps). `info` is what
    media_inspect said of `data`; the result is deterministic: the same file always stores the same bytes."""
    from arena import media_clean

    if info.kind == "image":
        return media_clean.image_clean(data, info.format)
    rewrite = {
        "glb": media_clean.glb_clean,
        "gltf": media_clean.gltf_clean,
        "obj": media_clean.obj_clean,
        "ply": media_clean.ply_clean,
        "spz": media_clean.spz_clean,
    }.get(info.format)
    try:
        return rewrite(data) if rewrite is not None else data  # .splat: fixed records, nothing else
    except MediaRejected:
        raise
    except Exception as exc:  # a structure the inspector let through but the rewriter cannot follow
        raise MediaRejected(
            f"The {info.format.upper()} file could not be rewritten ({type(exc).__name__})."
        ) from exc


def media_accept(
    data: bytes,
    *,
    format_hint: str | None = None,
    max_bytes: int | None = None,
    info: MediaInfo | None = None,
) -> tuple[bytes, MediaInfo]:
    """Every stored file comes through here: checked by content, rewritten without metadata, and described as
    stored (sizes change; an image turned by its EXIF orientation swaps width and height). The rewritten file
    is checked again, so what is stored is known to open and to hold the same geometry. `info`: what
    media_inspect already said of `data` (it is not inspected twice)."""
    if info is None:
        info = media_inspect(data, format_hint=format_hint, max_bytes=max_bytes)
    clean = media_sanitise(data, info)
    if clean == data:
        return data, info
    limit = max(max_bytes if max_bytes is not None else settings.ARENA_MAX_MEDIA_BYTES, len(clean))
    try:
        stored = media_inspect(clean, format_hint=info.format, max_bytes=limit)
    except MediaRejected as exc:
        raise MediaRejected(f"The {info.format.upper()} file could not be rewritten: {exc}") from exc
    for key in ("vertices", "faces", "splats"):
        if info.meta.get(key) != stored.meta.get(key):
            raise MediaRejected(f"The {info.format.upper()} file could not be rewritten without changing it.")
    return clean, stored


def media_strings(data: bytes, fmt: str) -> list[str]:
    """Every readable string a file carries besides its pixels, geometry and splats (what media_sanitise
    removes). The vote's leak check reads it: a stored file that still names a model voids the vote."""
    from arena.media_clean import metadata_strings

    return metadata_strings(io.BytesIO(data), format_clean(fmt) or "")


def media_strings_stored(name: str, fmt: str) -> list[str]:
    """media_strings of a stored file, reading only what can hold metadata where the format allows (a GLB's
    JSON and textures, a PLY's header), so a vote on a large mesh does not read its geometry."""
    from arena.media_clean import metadata_strings

    with default_storage.open(name, "rb") as handle:
        return metadata_strings(handle, format_clean(fmt) or "")


# --- storage -----------------------------------------------------------------------------------------------


def media_save(data: bytes, info: MediaInfo, *, folder: str = "outputs") -> str:
    """Store a checked file under a random name; returns its storage name."""
    name = f"{folder}/{secrets.token_urlsafe(18)}.{info.format}"
    return default_storage.save(name, ContentFile(data))


def media_read(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()
