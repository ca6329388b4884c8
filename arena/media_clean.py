"""What a file says besides its content: rewritten away on the way in, read back for the vote's leak check.

A model's output is anonymous only if its bytes are: a PNG text chunk (`Model: …`), EXIF, a glTF
`asset.generator`, node names or `extras`, a PLY comment, a gzip file name can each name the model that
made it.
arena.media.media_sanitise calls the rewriters here for every file that is stored (outputs, gallery files,
uploads), and voting.leak calls `metadata_strings` on the stored file when a vote is cast, so that a file that
still names a model (a rewriter missed something) does not count.

The rewriters keep what a viewer draws and drop everything else:

- images (PNG, JPEG, WebP): decoded and encoded again from their pixels alone (EXIF orientation applied
  first, an ICC profile converted to sRGB, alpha kept), with one fixed encoder setting per format, so nothing
  of the original container (text chunks, EXIF, XMP, comments, appended bytes, quantisation tables) survives;
- glTF and GLB: the JSON is rebuilt from the properties of glTF 2.0 and the extensions the viewer draws; every
  other key, `extras`, names (replaced by neutral ones: "node0") and any free-text string are dropped; the
  binary buffer is rebuilt from the buffer views that something uses (bytes between and after them are
  dropped), with every embedded texture encoded again like an image;
- OBJ: comments, `mtllib` and statements no viewer draws are dropped; object, group and material names become
  neutral ones; data lines keep their numbers;
- PLY (mesh and splat): `comment` and `obj_info` lines are dropped, element and property names outside the
  common vocabulary become neutral ones, bytes after the data are dropped; the data bytes are kept;
- .spz: the gzip header's file name, comment and extra field, and bytes after the splats are dropped;
- .splat has fixed 32-byte records and nothing else.

Messages of MediaRejected never repeat a string from the file: they can reach a voter before the vote.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from django.conf import settings

from arena.media import MediaRejected, ply_header_lines, ply_type_size, spz_inflate, spz_payload_size

# --- images ------------------------------------------------------------------------------------------------

# One encoder setting per format for every file: quantisation tables, compression levels and chunk layouts
# differ between the libraries models use, and would otherwise tell which pipeline wrote a file.
JPEG_QUALITY = 95
WEBP_QUALITY = 95
_SAVE_MODES = {
    # No palette mode: a palette's unused entries are bytes of the sender's choosing (text, say).
    "png": {"1", "L", "LA", "I", "I;16", "RGB", "RGBA"},
    "jpg": {"L", "RGB"},
    "webp": {"RGB", "RGBA"},
}
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height as the file's header states them, read without Pillow; None when the header is not
    one this reader knows (Pillow's own header read is checked as well)."""
    try:
        fmt = image_sniff(data)
        if fmt == "png":
            return struct.unpack(">II", data[16:24]) if data[12:16] == b"IHDR" else None
        if fmt == "webp":
            return _webp_size(data)
        if fmt == "jpg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if kind == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The largest frame any SOF marker before the first scan declares (a file may carry several)."""
    best: tuple[int, int] | None = None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return best
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):
            pos += 2
            continue
        if marker == 0xDA:
            return best
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            if best is None or width * height > best[0] * best[1]:
                best = (width, height)
        pos += 2 + length
    return best


def pixels_check(width: int, height: int) -> None:
    """Refuse an image over ARENA_MAX_IMAGE_PIXELS exactly (Pillow only warns below twice its limit)."""
    limit = settings.ARENA_MAX_IMAGE_PIXELS
    if width * height > limit:
        raise MediaRejected(
            f"The image is {width:,} x {height:,} = {width * height:,} pixels; the limit is {limit:,}."
        )


def _webp_lossless(data: bytes) -> bool:
    return any(kind == b"VP8L" for kind, _start, _end in _riff_chunks(data))


def image_clean(data: bytes, fmt: str) -> bytes:
    """The image encoded again from its pixels alone, in the same format; deterministic for the same input."""
    from PIL import Image, ImageOps

    size = image_size(data)
    if size is not None:
        pixels_check(*size)
    try:
        with Image.open(io.BytesIO(data)) as img:
            pixels_check(*img.size)  # Pillow's reading of the header, before anything is decoded
            if getattr(img, "n_frames", 1) > 1:
                raise MediaRejected("Animated images are not supported; send a single frame.")
            img.load()
            icc = img.info.get("icc_profile")
            picture = ImageOps.exif_transpose(img) or img
            picture = _to_srgb(picture, icc)
            picture = _save_mode(picture, fmt)
    except MediaRejected:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaRejected(f"The image is damaged or unreadable ({type(exc).__name__}).") from exc
    picture.info = {}  # Pillow writes some of info (comment, ICC profile, transparency) back when saving
    out = io.BytesIO()
    if fmt == "png":
        picture.save(out, "PNG", compress_level=6)
    elif fmt == "jpg":
        picture.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    else:
        lossless = _webp_lossless(data)
        picture.save(out, "WEBP", lossless=lossless, quality=100 if lossless else WEBP_QUALITY, method=4)
    return out.getvalue()


def _to_srgb(picture: Any, icc: bytes | None) -> Any:
    """Pixels in sRGB, so the colour profile (whose description is free text) can be dropped."""
    if not icc or picture.mode not in ("RGB", "RGBA", "CMYK"):
        return picture
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if picture.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(picture, source, ImageCms.createProfile("sRGB"), outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return picture  # an unreadable profile: the pixels as they are


def _save_mode(picture: Any, fmt: str) -> Any:
    """A mode the format saves, alpha kept: a tRNS colour key lives in `info`, which is not written back, so
    an image with one becomes one with an alpha channel."""
    if fmt == "jpg":
        return picture if picture.mode in _SAVE_MODES[fmt] else picture.convert("RGB")
    if "transparency" in picture.info:
        return picture.convert("LA" if picture.mode in ("1", "L") and fmt == "png" else "RGBA")
    if picture.mode in _SAVE_MODES[fmt]:
        return picture
    return picture.convert("RGBA" if "A" in picture.getbands() else "RGB")


# --- glTF and GLB ------------------------------------------------------------------------------------------

_GLB_JSON = 0x4E4F534A
_GLB_BIN = 0x004E4942
# The extensions the viewer (three.js's GLTFLoader without Draco, meshopt or KTX2 decoders) draws.
KNOWN_EXTENSIONS = frozenset(
    {
        "KHR_materials_anisotropy",
        "KHR_materials_clearcoat",
        "KHR_materials_diffuse_transmission",
        "KHR_materials_dispersion",
        "KHR_materials_emissive_strength",
        "KHR_materials_ior",
        "KHR_materials_iridescence",
        "KHR_materials_pbrSpecularGlossiness",
        "KHR_materials_sheen",
        "KHR_materials_specular",
        "KHR_materials_transmission",
        "KHR_materials_unlit",
        "KHR_materials_volume",
        "KHR_mesh_quantization",
        "KHR_texture_transform",
        "KHR_lights_punctual",
        "EXT_mesh_gpu_instancing",
        "EXT_texture_webp",
    }
)
# Every property name of glTF 2.0's core schema and of KNOWN_EXTENSIONS; any other key is dropped.
KNOWN_PROPERTIES = frozenset(
    {
        # core
        "accessors", "alphaCutoff", "alphaMode", "animations", "aspectRatio", "asset", "baseColorFactor",
        "baseColorTexture", "buffer", "bufferView", "bufferViews", "buffers", "byteLength", "byteOffset",
        "byteStride", "camera", "cameras", "channels", "children", "componentType", "count", "doubleSided",
        "emissiveFactor", "emissiveTexture", "extensions", "extensionsRequired", "extensionsUsed", "images",
        "index", "indices", "input", "interpolation", "inverseBindMatrices", "joints", "magFilter",
        "material", "materials", "matrix", "max", "mesh", "meshes", "metallicFactor",
        "metallicRoughnessTexture", "mimeType", "min", "minFilter", "minVersion", "mode", "node", "nodes",
        "normalTexture", "normalized", "occlusionTexture", "orthographic", "output", "path",
        "pbrMetallicRoughness", "perspective", "primitives", "rotation", "roughnessFactor", "sampler",
        "samplers", "scale", "scene", "scenes", "skeleton", "skin", "skins", "source", "sparse", "strength",
        "target", "targets", "texCoord", "textures", "translation", "type", "values", "version", "weights",
        "wrapS", "wrapT", "xmag", "ymag", "yfov", "zfar", "znear", "attributes",
        # extensions
        "anisotropyRotation", "anisotropyStrength", "anisotropyTexture", "attenuationColor",
        "attenuationDistance", "clearcoatFactor", "clearcoatNormalTexture", "clearcoatRoughnessFactor",
        "clearcoatRoughnessTexture", "clearcoatTexture", "color", "diffuseFactor", "diffuseTexture",
        "diffuseTransmissionColorFactor", "diffuseTransmissionColorTexture", "diffuseTransmissionFactor",
        "diffuseTransmissionTexture", "dispersion", "emissiveStrength", "glossinessFactor",
        "innerConeAngle", "intensity", "ior", "iridescenceFactor", "iridescenceIor", "iridescenceTexture",
        "iridescenceThicknessMaximum", "iridescenceThicknessMinimum", "iridescenceThicknessTexture",
        "light", "lights", "offset", "outerConeAngle", "range", "sheenColorFactor", "sheenColorTexture",
        "sheenRoughnessFactor", "sheenRoughnessTexture", "specularColorFactor", "specularColorTexture",
        "specularFactor", "specularGlossinessTexture", "specularTexture", "spot", "thicknessFactor",
        "thicknessTexture", "transmissionFactor", "transmissionTexture",
    }
)  # fmt: skip
# The only strings glTF's properties hold besides names and URIs: enumerations.
_ENUMS = {
    "alphaMode": {"OPAQUE", "MASK", "BLEND"},
    "type": {"SCALAR", "VEC2", "VEC3", "VEC4", "MAT2", "MAT3", "MAT4"}
    | {"perspective", "orthographic", "directional", "point", "spot"},
    "path": {"translation", "rotation", "scale", "weights"},
    "interpolation": {"LINEAR", "STEP", "CUBICSPLINE"},
    "mimeType": {"image/png", "image/jpeg", "image/webp"},
}
_SEMANTIC = re.compile(
    r"(POSITION|NORMAL|TANGENT|TRANSLATION|ROTATION|SCALE|(TEXCOORD|COLOR|JOINTS|WEIGHTS)_\d+)"
)
_VERSION = re.compile(r"\d+\.\d+")
# Top-level arrays whose items get a neutral name ("node0"); a name anywhere else is dropped.
NAMED_ARRAYS = {
    "accessors": "accessor",
    "animations": "animation",
    "cameras": "camera",
    "images": "image",
    "materials": "material",
    "meshes": "mesh",
    "nodes": "node",
    "samplers": "sampler",
    "scenes": "scene",
    "skins": "skin",
    "textures": "texture",
}
_MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_DROP = object()


class _Damaged(Exception):
    """The glTF structure does not hold together (a bad index, a view outside its buffer)."""


def glb_clean(data: bytes) -> bytes:
    document, chunk = _glb_split(data)
    document, binary = _gltf_rebuild(document, lambda i, buf: chunk if i == 0 and "uri" not in buf else None)
    return _glb_join(document, binary)


def gltf_clean(data: bytes) -> bytes:
    document = json.loads(data)
    document, binary = _gltf_rebuild(document, lambda i, buf: None)
    if binary:
        uri = "data:application/octet-stream;base64," + base64.b64encode(binary).decode("ascii")
        document["buffers"] = [{"byteLength": len(binary), "uri": uri}]
    return _json_dump(document)


def _glb_split(data: bytes) -> tuple[dict[str, Any], bytes | None]:
    """The JSON chunk and the first BIN chunk; any other chunk (readers skip unknown ones) is left behind."""
    (length,) = struct.unpack_from("<I", data, 8)
    pos, document, binary = 12, None, None
    while pos + 8 <= min(length, len(data)):
        size, kind = struct.unpack_from("<II", data, pos)
        body = data[pos + 8 : pos + 8 + size]
        if len(body) != size:
            raise MediaRejected("The GLB file is truncated inside a chunk.")
        if document is None:
            if kind != _GLB_JSON:
                raise MediaRejected("The GLB file does not start with its JSON chunk.")
            document = json.loads(body)
        elif kind == _GLB_BIN and binary is None:
            binary = body
        pos += 8 + size
    if not isinstance(document, dict):
        raise MediaRejected("The GLB file has no JSON chunk.")
    return document, binary


def _glb_join(document: dict[str, Any], binary: bytes) -> bytes:
    body = _json_dump(document)
    body += b" " * (-len(body) % 4)  # the GLB spec pads JSON with spaces and BIN with zeros
    chunks = struct.pack("<II", len(body), _GLB_JSON) + body
    if binary:
        padded = binary + b"\0" * (-len(binary) % 4)
        chunks += struct.pack("<II", len(padded), _GLB_BIN) + padded
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def _json_dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode("ascii")


def _gltf_rebuild(
    document: Any, stored: Callable[[int, dict[str, Any]], bytes | None]
) -> tuple[dict[str, Any], bytes]:
    """(clean JSON, the one binary buffer it uses). `stored(index, buffer)` gives a buffer without a data URI
    (a GLB's BIN chunk), or None."""
    if not isinstance(document, dict) or not isinstance(document.get("asset"), dict):
        raise MediaRejected("The glTF file has no 'asset' block; it is not glTF.")
    required = document.get("extensionsRequired", [])
    if not isinstance(required, list) or any(name not in KNOWN_EXTENSIONS for name in required):
        raise MediaRejected(
            "The glTF file requires an extension the arena's viewer does not draw (Draco, meshopt and KTX2 "
            "compression are not supported)."
        )
    try:
        buffers = [_buffer_bytes(i, b, stored) for i, b in enumerate(document.get("buffers", []))]
        views = document.get("bufferViews", [])
        images = _images_clean(document, views, buffers)
        clean = _clean(document, None)
        binary = _views_rebuild(clean, views, buffers, images)
    except MediaRejected:
        raise
    except (_Damaged, KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise MediaRejected("The glTF structure is damaged (a reference points at nothing).") from exc
    clean["asset"] = {k: v for k, v in clean.get("asset", {}).items() if k in ("version", "minVersion")}
    clean.pop("buffers", None)
    if binary:
        clean["buffers"] = [{"byteLength": len(binary)}]
    for key, prefix in NAMED_ARRAYS.items():
        items = clean.get(key, [])
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise MediaRejected(f"The glTF structure is damaged ('{key}' must be a list of objects).")
        for i, item in enumerate(items):
            item["name"] = f"{prefix}{i}"
    return clean, binary


def _buffer_bytes(index: int, buf: Any, stored: Callable[[int, dict[str, Any]], bytes | None]) -> bytes:
    uri = buf.get("uri")
    data = _data_uri(uri) if isinstance(uri, str) else stored(index, buf)
    if data is None:
        raise MediaRejected("The glTF file refers to other files; embed them (data URIs) or use .glb.")
    length = int(buf.get("byteLength", len(data)))
    if length > len(data):
        raise MediaRejected("The glTF file is truncated: a buffer is shorter than its byteLength.")
    return data[:length]


def _data_uri(uri: str) -> bytes | None:
    head, comma, payload = uri.partition(",")
    if not uri.startswith("data:") or not comma:
        return None
    if not head.endswith(";base64"):
        raise MediaRejected("The glTF file holds a data URI that is not base64.")
    return base64.b64decode(payload, validate=False)


def _view_bytes(views: list[Any], buffers: list[bytes], index: int) -> bytes:
    view = views[index]
    start, length = int(view.get("byteOffset", 0)), int(view["byteLength"])
    source = buffers[int(view["buffer"])]
    if start < 0 or length < 0 or start + length > len(source):
        raise _Damaged("a buffer view reaches past its buffer")
    return source[start : start + length]


def _images_clean(document: dict[str, Any], views: list[Any], buffers: list[bytes]) -> dict[int, Any]:
    """Every embedded texture encoded again like an image: {image index: (new bytes, format)}."""
    cleaned: dict[int, Any] = {}
    for i, image in enumerate(document.get("images", [])):
        if "bufferView" in image:
            raw = _view_bytes(views, buffers, int(image["bufferView"]))
        else:
            raw = _data_uri(image.get("uri", "")) if isinstance(image.get("uri"), str) else None
            if raw is None:
                raise MediaRejected(
                    "The glTF file refers to other files; embed them (data URIs) or use .glb."
                )
        fmt = image_sniff(raw)
        if fmt is None:
            raise MediaRejected("The glTF file holds a texture that is not PNG, JPEG or WebP.")
        cleaned[i] = (image_clean(raw, fmt), fmt)
    return cleaned


def _clean(value: Any, key: str | None) -> Any:
    """The JSON tree with only known keys and no free text (names are set afterwards)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            if not _key_allowed(name, key):
                continue
            cleaned = _clean(item, name)
            if cleaned is not _DROP and not (name == "extensions" and not cleaned):
                out[name] = cleaned
        return out
    if isinstance(value, list):
        items = [_clean(item, key) for item in value]
        return [item for item in items if item is not _DROP]
    if isinstance(value, str):
        return value if _string_allowed(value, key) else _DROP
    return value


def _key_allowed(name: str, parent: str | None) -> bool:
    if parent == "extensions":
        return name in KNOWN_EXTENSIONS
    if parent in ("attributes", "targets"):
        return bool(_SEMANTIC.fullmatch(name))
    return name in KNOWN_PROPERTIES


def _string_allowed(value: str, key: str | None) -> bool:
    if key in ("extensionsUsed", "extensionsRequired"):
        return value in KNOWN_EXTENSIONS
    if key in ("version", "minVersion"):
        return bool(_VERSION.fullmatch(value))
    return value in _ENUMS.get(key or "", ())


def _bufferview_refs(value: Any) -> Iterator[int]:
    if isinstance(value, dict):
        for name, item in value.items():
            if name == "bufferView" and isinstance(item, int):
                yield item
            else:
                yield from _bufferview_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _bufferview_refs(item)


def _views_rebuild(
    clean: dict[str, Any], views: list[Any], buffers: list[bytes], images: dict[int, Any]
) -> bytes:
    """One buffer holding each buffer view in turn (4-byte aligned, as accessors need): a texture's view gets
    the texture encoded again; any other view keeps the bytes its accessors read, and every byte no accessor
    reads (a view nobody uses, the end of a view, the gap in a stride) becomes zero."""
    clean_views = clean.get("bufferViews", [])
    used = set(_bufferview_refs({k: v for k, v in clean.items() if k != "bufferViews"}))
    if any(ref >= len(clean_views) or ref < 0 for ref in used):
        raise _Damaged("a reference to a buffer view that does not exist")
    image_views = {}
    for i, (data, fmt) in images.items():
        image = clean["images"][i]
        image["mimeType"] = _MIME[fmt]
        if "bufferView" in image:
            image_views[int(image["bufferView"])] = data
        else:
            image["uri"] = f"data:{_MIME[fmt]};base64," + base64.b64encode(data).decode("ascii")
    masks = _accessor_masks(clean.get("accessors", []), views)
    out = bytearray()
    for i, view in enumerate(clean_views):
        if i in image_views:
            data = image_views[i]
        elif i in masks:
            data = _masked(_view_bytes(views, buffers, i), masks[i])
        else:
            data = bytes(int(views[i]["byteLength"]))
        out += b"\0" * (-len(out) % 4)
        view.update(buffer=0, byteOffset=len(out), byteLength=len(data))
        out += data
    return bytes(out)


_COMPONENT_SIZES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def _element_size(accessor: dict[str, Any]) -> int:
    """Bytes of one element; a matrix's columns start on 4-byte boundaries (glTF 2.0, 3.6.2.4)."""
    size = _COMPONENT_SIZES[int(accessor["componentType"])]
    kind = accessor["type"]
    if kind.startswith("MAT"):
        side = int(kind[3])
        return side * (side * size + (-(side * size) % 4))
    return _COMPONENTS[kind] * size


def _accessor_masks(accessors: list[Any], views: list[Any]) -> dict[int, Any]:
    """For each buffer view an accessor reads: which of its bytes are read."""
    import numpy as np

    masks: dict[int, Any] = {}

    def mark(view_index: int, offset: int, count: int, size: int, stride: int) -> None:
        length = int(views[view_index]["byteLength"])
        mask = masks.setdefault(view_index, np.zeros(length, dtype=bool))
        if count <= 0:
            return
        if offset < 0 or size <= 0 or stride < size or offset + (count - 1) * stride + size > length:
            raise _Damaged("an accessor reads past its buffer view")
        rows = np.lib.stride_tricks.as_strided(mask[offset:], shape=(count, size), strides=(stride, 1))
        rows[:] = True

    for accessor in accessors:
        size, count = _element_size(accessor), int(accessor["count"])
        if "bufferView" in accessor:
            view = int(accessor["bufferView"])
            stride = int(views[view].get("byteStride", 0)) or size
            mark(view, int(accessor.get("byteOffset", 0)), count, size, stride)
        sparse = accessor.get("sparse")
        if isinstance(sparse, dict):
            n, indices, values = int(sparse["count"]), sparse["indices"], sparse["values"]
            index_size = _COMPONENT_SIZES[int(indices["componentType"])]
            mark(int(indices["bufferView"]), int(indices.get("byteOffset", 0)), n, index_size, index_size)
            mark(int(values["bufferView"]), int(values.get("byteOffset", 0)), n, size, size)
    return masks


def _masked(data: bytes, mask: Any) -> bytes:
    import numpy as np

    return np.where(mask, np.frombuffer(data, dtype=np.uint8), 0).astype(np.uint8).tobytes()


# --- OBJ ---------------------------------------------------------------------------------------------------

_OBJ_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_OBJ_REF = re.compile(r"-?\d+(/-?\d*){0,2}")
_OBJ_DATA = {"v": _OBJ_NUMBER, "vt": _OBJ_NUMBER, "vn": _OBJ_NUMBER, "vp": _OBJ_NUMBER}
_OBJ_DATA |= {"f": _OBJ_REF, "l": _OBJ_REF, "p": _OBJ_REF}
_OBJ_NAMED = {"o": "object", "g": "group", "usemtl": "material"}


# A run of plain data lines: a keyword, then only numbers and face references. No name can be spelled with
# these characters, so such runs are kept as they are and only the text between them is read line by line
# (one regex pass: a 50 MB OBJ takes well under a second).
_OBJ_DATA_RUN = re.compile(rb"(?:^(?:v[tnp]?|[flp])[ \t][-+0-9.eE/ \t]*\r?(?:\n|\Z))+", re.MULTILINE)


def _obj_runs(data: bytes) -> Iterator[tuple[bool, bytes]]:
    """(is plain data, bytes) in file order."""
    pos = 0
    for match in _OBJ_DATA_RUN.finditer(data):
        if match.start() > pos:
            yield False, data[pos : match.start()]
        yield True, match.group()
        pos = match.end()
    if pos < len(data):
        yield False, data[pos:]


def _obj_lines(text: str) -> Iterator[list[str]]:
    """Each statement's tokens, comments removed and backslash continuations joined."""
    for line in text.replace("\\\r\n", " ").replace("\\\n", " ").splitlines():
        tokens = line.split("#", 1)[0].split()
        if tokens:
            yield tokens


def obj_clean(data: bytes) -> bytes:
    names: dict[str, dict[str, str]] = {kind: {} for kind in _OBJ_NAMED}
    out: list[bytes] = []
    for plain, chunk in _obj_runs(data):
        if plain:
            out.append(chunk if chunk.endswith(b"\n") else chunk + b"\n")
        else:
            out += [(line + "\n").encode("ascii") for line in _obj_statements(chunk.decode("utf-8"), names)]
    return b"".join(out)


def _obj_statements(text: str, names: dict[str, dict[str, str]]) -> Iterator[str]:
    for keyword, *rest in _obj_lines(text):
        if keyword in _OBJ_DATA:
            yield " ".join([keyword, *(t for t in rest if _OBJ_DATA[keyword].fullmatch(t))])
        elif keyword in _OBJ_NAMED:
            seen = names[keyword]
            # A group line names several groups; an object or material name may hold spaces. The same name
            # gets the same neutral name, so faces stay grouped as before.
            originals = (rest if keyword == "g" else [" ".join(rest)]) or ["default"]
            neutral = [seen.setdefault(t, f"{_OBJ_NAMED[keyword]}{len(seen)}") for t in originals]
            yield " ".join([keyword, *neutral])
        elif keyword == "s" and rest and re.fullmatch(r"off|on|\d+", rest[0]):
            yield f"s {rest[0]}"
        # mtllib, free-form curves and anything else: no viewer here draws them


_OBJ_NEUTRAL = re.compile(r"(object|group|material)\d+|default")


def obj_strings(data: bytes) -> list[str]:
    """Everything in an OBJ that is not a number or a neutral name: comments, names, unknown statements."""
    found: list[str] = []
    for plain, chunk in _obj_runs(data):
        if not plain:
            found += _obj_chunk_strings(chunk.decode("utf-8", errors="replace"))
    return found


def _obj_chunk_strings(text: str) -> list[str]:
    found: list[str] = []
    for line in text.splitlines():
        head, _hash, comment = line.partition("#")
        if comment.strip():
            found.append(comment)
        keyword, *rest = head.split() or [""]
        if keyword in _OBJ_DATA:
            found += [t for t in rest if not _OBJ_DATA[keyword].fullmatch(t)]
        elif keyword in _OBJ_NAMED:
            found += [t for t in rest if not _OBJ_NEUTRAL.fullmatch(t)]
        elif keyword == "s":
            found += [t for t in rest if not re.fullmatch(r"off|on|\d+", t)]
        elif keyword:
            found.append(head)
    return found


# --- PLY ---------------------------------------------------------------------------------------------------

# What viewers read of a PLY (three.js's PLYLoader, Spark, trimesh): vertices and faces, with the properties
# below. Any other element or property is dropped with its data: an element of bytes nobody reads can spell a
# name as well as a comment can.
PLY_ELEMENTS = frozenset({"vertex", "face"})
_PLY_PROPERTY = re.compile(
    r"x|y|z|nx|ny|nz|red|green|blue|alpha|r|g|b|a|u|v|s|t|texture_[uv]|texcoord|"
    r"vertex_indices|vertex_index|opacity|intensity|confidence|quality|radius|"
    r"f_dc_\d+|f_rest_\d+|scale_\d+|rot_\d+"
)


def _ply_kept(properties: list[list[str]]) -> list[bool]:
    return [bool(_PLY_PROPERTY.fullmatch(prop[-1])) for prop in properties]


def ply_clean(data: bytes) -> bytes:
    """The header rebuilt (no comments, a fixed version, known elements and properties only) over their data:
    the same bytes when nothing is dropped, and nothing after the declared data."""
    fmt, elements, body = ply_header_lines(data)
    header = ["ply", f"format {fmt} 1.0"]
    for name, count, properties in elements:
        if name in PLY_ELEMENTS:
            header.append(f"element {name} {count}")
            header += [" ".join(["property", *p]) for p in properties if _PLY_PROPERTY.fullmatch(p[-1])]
    header.append("end_header")
    head = ("\n".join(header) + "\n").encode("ascii")
    if fmt == "ascii":
        return head + _ply_ascii_body(data[body:], elements)
    order = "<" if fmt == "binary_little_endian" else ">"
    out = bytearray()
    for (name, count, properties), (start, size, stride) in zip(
        elements, _ply_layout(data, body, order, elements), strict=True
    ):
        if name not in PLY_ELEMENTS:
            continue
        kept = _ply_kept(properties)
        if all(kept):
            out += data[start : start + size]
        elif stride is not None:
            out += _ply_columns(data, start, count, stride, properties, kept, order)
        else:
            out += _ply_rows_kept(data, start, count, properties, kept, order)
    return head + bytes(out)


def _ply_ascii_body(body: bytes, elements: list[Any]) -> bytes:
    lines = iter(line.split() for line in body.decode("ascii", errors="replace").splitlines() if line.strip())
    out: list[str] = []
    for name, count, properties in elements:
        kept = _ply_kept(properties)
        for _row in range(count):
            tokens = next(lines, None)
            if tokens is None:
                raise MediaRejected("The PLY file is truncated: fewer data lines than its header declares.")
            if not all(_OBJ_NUMBER.fullmatch(token) for token in tokens):
                raise MediaRejected("The PLY file has a data line that is not numbers.")
            values, pos = [], 0
            for prop, keep in zip(properties, kept, strict=True):
                width = 1 + int(tokens[pos]) if prop[0] == "list" else 1
                if keep:
                    values += tokens[pos : pos + width]
                pos += width
            if name in PLY_ELEMENTS:
                out.append(" ".join(values))
    return ("\n".join(out) + "\n").encode("ascii") if out else b""


def _ply_layout(data: bytes, body: int, order: str, elements: list[Any]) -> list[tuple[int, int, int | None]]:
    """Where each element's rows are: (start, size, row size when every row has the same size, else None)."""
    layout: list[tuple[int, int, int | None]] = []
    pos = body
    for _name, count, properties in elements:
        stride = _ply_uniform_stride(data, pos, count, properties, order)
        size = stride * count if stride is not None else _ply_rows(data, pos, count, properties, order) - pos
        layout.append((pos, size, stride))
        pos += size
    if pos > len(data):
        raise MediaRejected("The PLY file is truncated: its data is shorter than its header declares.")
    return layout


def _ply_uniform_stride(data: bytes, pos: int, count: int, properties: list[Any], order: str) -> int | None:
    """The row size when rows cannot differ (no lists) or, for fixed columns then one list (faces), when every
    row's list is as long as the first row's (numpy checks that in one pass); None otherwise."""
    import numpy as np

    lists = [p for p in properties if p[0] == "list"]
    fixed = sum(ply_type_size(p[0]) for p in properties if p[0] != "list")
    if not lists:
        return fixed
    if len(lists) > 1 or properties[-1] is not lists[0] or count == 0:
        return None
    csize, isize = ply_type_size(lists[0][1]), ply_type_size(lists[0][2])
    first = _ply_int(data, pos + fixed, lists[0][1], order)
    stride = fixed + csize + first * isize
    if pos + stride * count > len(data):
        return None
    rows = np.frombuffer(data, dtype=np.uint8, count=stride * count, offset=pos).reshape(count, stride)
    counts = np.ascontiguousarray(rows[:, fixed : fixed + csize]).view(np.dtype(f"{order}u{csize}")).ravel()
    return stride if bool((counts == first).all()) else None


def _ply_int(data: bytes, pos: int, ply_type: str, order: str) -> int:
    size = ply_type_size(ply_type)
    if pos + size > len(data):
        raise MediaRejected("The PLY file is truncated: its data is shorter than its header declares.")
    return int.from_bytes(data[pos : pos + size], "little" if order == "<" else "big")


def _ply_value_size(data: bytes, pos: int, prop: list[str], order: str) -> int:
    if prop[0] == "list":
        return ply_type_size(prop[1]) + _ply_int(data, pos, prop[1], order) * ply_type_size(prop[2])
    return ply_type_size(prop[0])


def _ply_rows(data: bytes, pos: int, count: int, properties: list[Any], order: str) -> int:
    for _row in range(count):
        for prop in properties:
            pos += _ply_value_size(data, pos, prop, order)
    return pos


def _ply_columns(
    data: bytes, start: int, count: int, stride: int, properties: list[Any], kept: list[bool], order: str
) -> bytes:
    """Evenly spaced rows without the dropped properties' columns."""
    import numpy as np

    rows = np.frombuffer(data, dtype=np.uint8, count=stride * count, offset=start).reshape(count, stride)
    columns, offset = [], 0
    for prop, keep in zip(properties, kept, strict=True):
        width = _ply_value_size(data, start + offset, prop, order)  # a list: as long as the first row's
        if keep:
            columns.append(rows[:, offset : offset + width])
        offset += width
    return np.ascontiguousarray(np.concatenate(columns, axis=1)).tobytes() if columns else b""


def _ply_rows_kept(
    data: bytes, pos: int, count: int, properties: list[Any], kept: list[bool], order: str
) -> bytes:
    out = bytearray()
    for _row in range(count):
        for prop, keep in zip(properties, kept, strict=True):
            width = _ply_value_size(data, pos, prop, order)
            if keep:
                out += data[pos : pos + width]
            pos += width
    return bytes(out)


# --- .spz --------------------------------------------------------------------------------------------------


def spz_clean(data: bytes) -> bytes:
    """The splats again in a plain gzip member: no file name, comment, extra field or time, nothing after."""
    raw = spz_inflate(data)
    payload = bytearray(raw[: spz_payload_size(raw)])
    payload[14] &= 0x01  # flags: only "antialiased" is defined
    payload[15] = 0  # reserved
    return gzip.compress(bytes(payload), compresslevel=9, mtime=0)


# --- reading what metadata remains (the vote's leak check) ------------------------------------------------

_RUN = re.compile(rb"[\x20-\x7e]{3,}")
_RUN_UTF16 = re.compile(rb"(?:[\x20-\x7e]\x00){3,}")
_METADATA_INFLATE_LIMIT = 4 * 1024 * 1024  # per compressed text chunk or profile: enough for any real one
_PNG_PIXEL_CHUNKS = {b"IDAT", b"fdAT"}
_PNG_BINARY_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"bKGD"}
_PNG_BINARY_CHUNKS |= {b"hIST", b"sBIT", b"acTL", b"fcTL", b"cICP", b"mDCv", b"cLLi"}


def text_runs(blob: bytes) -> list[str]:
    """Readable text inside binary metadata: ASCII runs, UTF-16 runs (EXIF's XP tags) and UTF-8 text."""
    runs = [m.decode("ascii") for m in _RUN.findall(blob)]
    runs += [m.decode("utf-16-le") for m in _RUN_UTF16.findall(blob)]
    if any(b > 0x7F for b in blob[:4096]):
        text = blob.decode("utf-8", errors="ignore")
        runs += [t for t in re.findall(r"[^\x00-\x1f]{3,}", text) if not t.isascii()]
    return runs


def _inflate(blob: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        return inflater.decompress(blob, _METADATA_INFLATE_LIMIT)
    except zlib.error:
        return blob


def png_strings(data: bytes) -> list[str]:
    found: list[str] = []
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind in _PNG_PIXEL_CHUNKS or kind in _PNG_BINARY_CHUNKS:
            if kind == b"IEND":
                found += text_runs(data[pos:])  # bytes appended after the image
                break
            continue
        if kind == b"zTXt" or kind == b"iCCP":
            keyword, _zero, rest = body.partition(b"\0")
            found += text_runs(keyword) + text_runs(_inflate(rest[1:]))
        elif kind == b"iTXt":
            found += _itxt_strings(body)
        else:  # tEXt, eXIf and any chunk of unknown purpose
            found += text_runs(body)
    return found


def _itxt_strings(body: bytes) -> list[str]:
    keyword, _zero, rest = body.partition(b"\0")
    compressed = rest[:1] == b"\x01"
    language, _z1, rest = rest[2:].partition(b"\0")
    translated, _z2, text = rest.partition(b"\0")
    text = _inflate(text) if compressed else text
    return text_runs(keyword + b" " + language + b" " + translated + b" " + text)


def jpeg_strings(data: bytes) -> list[str]:
    """Text of APPn and COM segments, and of anything after the end of the image."""
    found: list[str] = []
    pos = 2
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            pos = data.find(b"\xff", pos)  # inside entropy-coded data: skip to the next marker
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0x00 or marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2 if marker != 0xFF else 1
            continue
        if marker == 0xD9:
            found += text_runs(data[pos + 2 :])
            break
        if pos + 4 > len(data):
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        segment = data[pos + 4 : pos + 2 + length]
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            found += _jpeg_segment_strings(marker, segment)
        pos += 2 + length
    return found


def _jpeg_segment_strings(marker: int, segment: bytes) -> list[str]:
    # The JFIF header and Adobe's colour-transform marker are fixed binary structures named by a word.
    if marker == 0xE0 and segment.startswith(b"JFIF\0"):
        segment = segment[14:]
    elif marker == 0xEE and segment.startswith(b"Adobe") and len(segment) == 12:
        return []
    return text_runs(segment)


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    pos, end = 12, min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= end:
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        yield kind, pos + 8, min(pos + 8 + size, len(data))
        pos += 8 + size + (size & 1)


def webp_strings(data: bytes) -> list[str]:
    found: list[str] = []
    for kind, start, end in _riff_chunks(data):
        if kind not in (b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"):
            found += text_runs(data[start:end])  # EXIF, XMP, ICCP and chunks of unknown purpose
    found += text_runs(data[8 + int.from_bytes(data[4:8], "little") :])
    return found


def image_strings(data: bytes) -> list[str]:
    fmt = image_sniff(data)
    if fmt == "png":
        return png_strings(data)
    if fmt == "jpg":
        return jpeg_strings(data)
    if fmt == "webp":
        return webp_strings(data)
    return text_runs(data)


_NEUTRAL_NAME = re.compile(r"[a-z]+\d+")
_GLTF_VOCABULARY = KNOWN_PROPERTIES | KNOWN_EXTENSIONS | {"name", "uri", "extras", "generator", "copyright"}
_GLTF_VOCABULARY |= {value for values in _ENUMS.values() for value in values}


def json_strings(value: Any) -> Iterator[str]:
    """The keys and strings of a glTF document outside glTF's own vocabulary (property names, enumerations,
    neutral names); data URIs are decoded, and an embedded image is read as one."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in _GLTF_VOCABULARY and not _SEMANTIC.fullmatch(key):
                yield key
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)
    elif isinstance(value, str):
        if value.startswith("data:"):
            yield from _data_uri_strings(value)
        elif not (value in _GLTF_VOCABULARY or _NEUTRAL_NAME.fullmatch(value) or _VERSION.fullmatch(value)):
            yield value


def _data_uri_strings(value: str) -> Iterator[str]:
    head, _comma, _payload = value.partition(",")
    mime = head.removeprefix("data:").removesuffix(";base64")
    if mime not in _ENUMS["mimeType"] | {"application/octet-stream", "application/gltf-buffer"}:
        yield head
    try:
        decoded = _data_uri(value)
    except (MediaRejected, ValueError):
        return
    if decoded and image_sniff(decoded):
        yield from image_strings(decoded)


def glb_strings(handle: BinaryIO) -> list[str]:
    """The JSON chunk's strings, the embedded textures' metadata and any chunk of unknown type; the geometry
    in the BIN chunk is not read (a vote on a 100 MB mesh reads its JSON and its textures)."""
    found: list[str] = []
    document, bin_at = None, None
    handle.seek(12)
    while len(head := handle.read(8)) == 8:
        size, kind = struct.unpack("<II", head)
        at = handle.tell()
        if document is None and kind == _GLB_JSON:
            body = handle.read(size)
            try:
                document = json.loads(body)
            except ValueError:
                found += text_runs(body)
        elif kind == _GLB_BIN and bin_at is None:
            bin_at = at
        else:
            found += text_runs(
                handle.read(size)
            )  # a chunk of unknown type: readers skip it, it is still there
        handle.seek(at + size)
    found += json_strings(document)
    if isinstance(document, dict) and bin_at is not None:
        found += _glb_texture_strings(handle, document, bin_at)
    return found


def _glb_texture_strings(handle: BinaryIO, document: dict[str, Any], bin_at: int) -> list[str]:
    found: list[str] = []
    views = document.get("bufferViews", [])
    for image in document.get("images", []):
        try:
            view = views[image["bufferView"]]
            handle.seek(bin_at + int(view.get("byteOffset", 0)))
            found += image_strings(handle.read(int(view["byteLength"])))
        except (IndexError, KeyError, TypeError, ValueError):
            continue
    return found


_PLY_HEADER_LIMIT = 64 * 1024 + 16  # media_inspect refuses a PLY whose end_header comes later


def ply_strings(data: bytes) -> list[str]:
    """Header lines other than the format line and elements and properties of the common vocabulary."""
    end = data.find(b"end_header")
    found: list[str] = []
    for line in (
        data[: end if end >= 0 else _PLY_HEADER_LIMIT].decode("ascii", errors="replace").splitlines()[1:]
    ):
        parts = line.split()
        if not parts:
            continue
        standard = (
            (parts[0] == "format" and len(parts) == 3 and _VERSION.fullmatch(parts[2]))
            or (parts[0] == "element" and len(parts) == 3 and parts[1] in PLY_ELEMENTS)
            or (parts[0] == "property" and _PLY_PROPERTY.fullmatch(parts[-1]))
        )
        if not standard:
            found.append(line)
    return found


def spz_strings(data: bytes) -> list[str]:
    """The gzip header's optional fields and anything after the splats or after the gzip member."""
    found: list[str] = []
    flags = data[3] if len(data) > 3 else 0
    pos = 10
    if flags & 0x04:  # FEXTRA
        size = int.from_bytes(data[pos : pos + 2], "little")
        found += text_runs(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = data.find(b"\0", pos)
            found += text_runs(data[pos : end if end >= 0 else len(data)])
            pos = end + 1 if end >= 0 else len(data)
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(data, settings.ARENA_MAX_MEDIA_BYTES * 8)
        found += text_runs(raw[spz_payload_size(raw) :]) + text_runs(inflater.unused_data)
    except (zlib.error, MediaRejected, struct.error):
        pass
    return found


def metadata_strings(handle: BinaryIO, fmt: str) -> list[str]:
    """Every readable string a file carries besides its pixels, geometry and splats, read from an open file
    (only the parts that can hold metadata, where the format says where they are)."""
    if fmt == "glb":
        return glb_strings(handle)
    if fmt == "ply":
        return ply_strings(handle.read(_PLY_HEADER_LIMIT))
    data = handle.read()
    if fmt in ("png", "jpg", "webp"):
        return image_strings(data)
    if fmt == "gltf":
        try:
            return list(json_strings(json.loads(data)))
        except ValueError:
            return text_runs(data)
    if fmt == "obj":
        return obj_strings(data)
    if fmt == "spz":
        return spz_strings(data)
    return []
