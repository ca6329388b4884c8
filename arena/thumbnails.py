"""Small PNG previews of image, mesh and Gaussian-splat outputs, made on the CPU without OpenGL.

The leaderboard shows each model's showcase outputs and the admin lists every gallery output; both need a
picture. Images are scaled down; meshes are drawn with a fixed 3/4 camera, flat Lambert shading and their
face / vertex / texture colours by a small numpy z-buffer rasteriser; splats are drawn as coloured dots at
their centres, nearest in front. A thumbnail is a convenience: when one cannot be made the reason is logged
and the caller stores none.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
import secrets
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from arena.media import MediaInfo

logger = logging.getLogger(__name__)

BACKGROUND = (236, 237, 240)
_CLAY = np.array([0.74, 0.75, 0.78])  # meshes without colours
_SUPERSAMPLE = 2  # drawn at twice the size, then scaled down: smooth edges for free
_AZIMUTH = np.radians(35.0)
_ELEVATION = np.radians(25.0)
_LIGHT = np.array([-0.35, 0.55, 0.76])
_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)
_MAX_CANDIDATES = 1_500_000  # pixel candidates examined at once by the rasteriser (bounds its memory)
_MAX_DOTS = 250_000  # splats drawn: more are sampled down, a thumbnail does not need them all
_SH_C0 = 0.28209479177387814


class ThumbnailError(ValueError):
    """The file cannot be drawn (no geometry, an encoding this module does not read)."""


def thumbnail_render(data: bytes, info: MediaInfo, size: int = 256) -> bytes | None:
    """A `size`x`size` PNG preview of a file already checked by `arena.media.media_inspect`, or None (logged)
    when none can be made."""
    try:
        if info.kind == "image":
            image = _image_thumbnail(data, size)
        elif info.kind == "mesh":
            image = _mesh_thumbnail(data, info.format, size)
        elif info.kind == "splat":
            image = _splat_thumbnail(data, info.format, size)
        else:
            raise ThumbnailError(f"no thumbnail for media kind {info.kind!r}")
    except ThumbnailError as exc:
        logger.warning("No thumbnail for a %s file: %s", info.format, exc)
        return None
    except Exception:  # a thumbnail is optional: a file the parsers choke on must not fail its import
        logger.warning("No thumbnail for a %s file: drawing it failed", info.format, exc_info=True)
        return None
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def thumbnail_save(data: bytes, info: MediaInfo) -> str:
    """Render and store a thumbnail under thumbs/<random>.png; returns its storage name, "" when none."""
    png = thumbnail_render(data, info)
    if png is None:
        return ""
    return default_storage.save(f"thumbs/{secrets.token_urlsafe(18)}.png", ContentFile(png))


# --- images ------------------------------------------------------------------------------------------------


def _image_thumbnail(data: bytes, size: int) -> Any:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale directly
        picture = img.convert("RGBA")
    picture = ImageOps.contain(picture, (size, size), Image.Resampling.LANCZOS)  # fit, aspect kept
    canvas = Image.new("RGBA", (size, size), (*BACKGROUND, 255))
    canvas.alpha_composite(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return canvas.convert("RGB")


# --- camera ------------------------------------------------------------------------------------------------


def _view(points: np.ndarray) -> np.ndarray:
    """World (y up) to view coordinates: x right, y up, z towards the camera; a fixed 3/4 view from above."""
    ca, sa = np.cos(_AZIMUTH), np.sin(_AZIMUTH)
    ce, se = np.cos(_ELEVATION), np.sin(_ELEVATION)
    yaw = np.array([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]])
    pitch = np.array([[1.0, 0.0, 0.0], [0.0, ce, -se], [0.0, se, ce]])
    return points @ (pitch @ yaw).T


def _fit(view: np.ndarray, width: int) -> np.ndarray:
    """Scale and centre view coordinates into pixels (x right, y down), keeping z; a 6% margin."""
    lo, hi = view.min(axis=0)[:2], view.max(axis=0)[:2]
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    if not np.isfinite(extent) or extent <= 0:
        extent = 1.0
    scale = width * 0.88 / extent
    centre = (lo + hi) / 2
    screen = np.empty_like(view)
    screen[:, 0] = (view[:, 0] - centre[0]) * scale + width / 2
    screen[:, 1] = -(view[:, 1] - centre[1]) * scale + width / 2
    screen[:, 2] = view[:, 2] * scale
    return screen


def _finish(pixels: np.ndarray, size: int) -> Any:
    from PIL import Image

    image = Image.fromarray(pixels, "RGB")
    return image.resize((size, size), Image.Resampling.BOX) if image.width != size else image


# --- meshes ------------------------------------------------------------------------------------------------


def _mesh_thumbnail(data: bytes, fmt: str, size: int) -> Any:
    import trimesh

    scene = trimesh.load(io.BytesIO(data), file_type=fmt, force="scene", resolver=None)
    vertices: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    colours: list[np.ndarray] = []
    points: list[np.ndarray] = []
    point_colours: list[np.ndarray] = []
    offset = 0
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geometry = scene.geometry[name]
        if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
            placed = trimesh.transform_points(np.asarray(geometry.vertices, dtype=np.float64), transform)
            vertices.append(placed)
            faces.append(np.asarray(geometry.faces, dtype=np.int64) + offset)
            colours.append(_face_colours(geometry))
            offset += len(placed)
        elif isinstance(geometry, trimesh.PointCloud) and len(geometry.vertices):
            points.append(
                trimesh.transform_points(np.asarray(geometry.vertices, dtype=np.float64), transform)
            )
            point_colours.append(_point_colours(geometry))
    if faces:
        all_vertices = np.concatenate(vertices)
        if not np.isfinite(all_vertices).all():
            raise ThumbnailError("the mesh has non-finite vertices")
        return _finish(_rasterise(all_vertices, np.concatenate(faces), np.concatenate(colours), size), size)
    if points:
        return _finish(_dots(np.concatenate(points), np.concatenate(point_colours), size), size)
    raise ThumbnailError("the file holds no faces or points")


def _face_colours(mesh: Any) -> np.ndarray:
    """One RGB colour (0..1) per face: face colours, averaged vertex colours, the texture sampled at the
    vertices, the material's colour, or clay grey."""
    visual = mesh.visual
    count = len(mesh.faces)
    try:
        if visual.kind == "face":
            return np.asarray(visual.face_colors, dtype=np.float64)[:, :3] / 255.0
        if visual.kind == "texture":
            visual = (
                visual.to_color()
            )  # samples the texture image at each vertex's UV (or the material colour)
        if visual.kind == "vertex":
            per_vertex = np.asarray(visual.vertex_colors, dtype=np.float64)
            if per_vertex.ndim == 1:  # one colour for the whole mesh (a material colour without a texture)
                return np.broadcast_to(per_vertex[:3] / 255.0, (count, 3)).copy()
            return per_vertex[:, :3][np.asarray(mesh.faces)].mean(axis=1) / 255.0
        if visual.kind == "face":
            return np.asarray(visual.face_colors, dtype=np.float64)[:, :3] / 255.0
    except Exception:  # an odd material: draw the shape in clay rather than nothing
        logger.info("Mesh colours unreadable; drawing it in grey", exc_info=True)
    return np.broadcast_to(_CLAY, (count, 3)).copy()


def _point_colours(cloud: Any) -> np.ndarray:
    colours = getattr(cloud, "colors", None)
    if colours is not None and len(colours) == len(cloud.vertices):
        return np.asarray(colours, dtype=np.float64)[:, :3] / 255.0
    return np.broadcast_to(_CLAY, (len(cloud.vertices), 3)).copy()


def _rasterise(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, size: int) -> np.ndarray:
    """Flat-shaded triangles into an RGB array with a z-buffer, all in numpy (no Python loop per face)."""
    width = size * _SUPERSAMPLE
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    view = _view(vertices - centre)
    screen = _fit(view, width)

    triangles_view = view[faces]
    normals = np.cross(
        triangles_view[:, 1] - triangles_view[:, 0], triangles_view[:, 2] - triangles_view[:, 0]
    )
    lengths = np.linalg.norm(normals, axis=1)
    keep = lengths > 0
    normals[keep] /= lengths[keep, None]
    # Two-sided: generated meshes often have inconsistent winding, and a back face lit dark looks like a hole.
    lambert = np.abs(normals @ _LIGHT)
    shade = np.clip(colours * (0.45 + 0.55 * lambert)[:, None], 0.0, 1.0)

    depth = np.full(width * width, -np.inf)
    owner = np.full(width * width, -1, dtype=np.int64)
    for pixel, z, ids in _scanlines(screen[faces], np.flatnonzero(keep), width):
        _depth_merge(depth, owner, pixel, z, ids)

    pixels = np.empty((width * width, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    drawn = owner >= 0
    pixels[drawn] = np.round(shade[owner[drawn]] * 255).astype(np.uint8)
    return pixels.reshape(width, width, 3)


def _scanlines(
    tri: np.ndarray, candidates: np.ndarray, width: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The pixels each triangle covers (centres inside it), row by row, as (pixel index, depth, triangle)
    batches. Each row's span is solved from the three edge equations, so thin or slanted triangles cost
    only the pixels they cover, not their bounding box."""
    x, y, z = tri[:, :, 0], tri[:, :, 1], tri[:, :, 2]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    ids = candidates[np.abs(area[candidates]) > 1e-12]
    x, y, z, area = x[ids], y[ids], z[ids], area[ids]
    # Barycentric weights as linear functions of the pixel centre: w_i = a_i * sx + b_i * sy + c_i.
    a = np.stack([y[:, 1] - y[:, 2], y[:, 2] - y[:, 0]], axis=1) / area[:, None]
    b = np.stack([x[:, 2] - x[:, 1], x[:, 0] - x[:, 2]], axis=1) / area[:, None]
    c = np.stack([x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1], x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2]], axis=1)
    c = c / area[:, None]
    a = np.c_[a, -a.sum(axis=1)]
    b = np.c_[b, -b.sum(axis=1)]
    c = np.c_[c, 1.0 - c.sum(axis=1)]
    dz = np.stack([z[:, 0] - z[:, 2], z[:, 1] - z[:, 2]], axis=1)
    az, bz = (a[:, :2] * dz).sum(axis=1), (b[:, :2] * dz).sum(axis=1)
    cz = z[:, 2] + (c[:, :2] * dz).sum(axis=1)

    row0 = np.clip(np.ceil(y.min(axis=1) - 0.5), 0, width).astype(np.int64)
    row1 = np.clip(np.floor(y.max(axis=1) - 0.5), -1, width - 1).astype(np.int64)
    heights = np.maximum(row1 - row0 + 1, 0)
    owner = np.repeat(np.arange(len(ids)), heights)
    row = row0[owner] + np.arange(int(heights.sum())) - np.repeat(np.cumsum(heights) - heights, heights)
    sy = row + 0.5
    lo = np.maximum(x.min(axis=1)[owner], 0.0)
    hi = np.minimum(x.max(axis=1)[owner], float(width))
    for edge in range(3):
        ea, k = a[owner, edge], b[owner, edge] * sy + c[owner, edge]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = -k / ea
        lo = np.where(ea > 0, np.maximum(lo, bound - 1e-9), lo)
        hi = np.where(ea < 0, np.minimum(hi, bound + 1e-9), hi)
        hi = np.where((ea == 0) & (k < 0), -1.0, hi)  # parallel to the row and outside: no pixel
    first = np.ceil(lo - 0.5).astype(np.int64)
    counts = np.maximum(np.floor(hi - 0.5).astype(np.int64) - first + 1, 0)
    ends = np.cumsum(counts)
    start = 0
    while start < len(counts):
        base = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, base + _MAX_CANDIDATES, side="right")), start + 1)
        n = counts[start:stop]
        pair = np.repeat(np.arange(start, stop), n)
        px = first[pair] + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        tri_of = owner[pair]
        depth = az[tri_of] * (px + 0.5) + bz[tri_of] * sy[pair] + cz[tri_of]
        yield row[pair] * width + px, depth, ids[tri_of]
        start = stop


def _depth_merge(
    depth: np.ndarray, owner: np.ndarray, pixel: np.ndarray, z: np.ndarray, ids: np.ndarray
) -> None:
    """Keep, per pixel, the nearest candidate (largest z) if it is nearer than what is already there."""
    if not len(pixel):
        return
    order = np.lexsort((-z, pixel))
    pixel, z, ids = pixel[order], z[order], ids[order]
    first = np.ones(len(pixel), dtype=bool)
    first[1:] = pixel[1:] != pixel[:-1]
    pixel, z, ids = pixel[first], z[first], ids[first]
    nearer = z > depth[pixel]
    depth[pixel[nearer]] = z[nearer]
    owner[pixel[nearer]] = ids[nearer]


# --- Gaussian splats ---------------------------------------------------------------------------------------


def _splat_thumbnail(data: bytes, fmt: str, size: int) -> Any:
    if fmt == "splat":
        centres, colours, alpha = _splat_antimatter(data)
    elif fmt == "ply":
        centres, colours, alpha = _splat_ply(data)
    elif fmt == "spz":
        centres, colours, alpha = _splat_spz(data)
    else:
        raise ThumbnailError(f"{fmt} is not a splat format")
    keep = np.isfinite(centres).all(axis=1) & (alpha >= 0.1)
    centres, colours = centres[keep], colours[keep]
    if not len(centres):
        raise ThumbnailError("no visible splats")
    # Splat files use the OpenCV convention (y down, z forward); the 3D viewer turns them upright likewise.
    centres = centres * np.array([1.0, -1.0, -1.0])
    return _finish(_dots(centres, np.clip(colours, 0.0, 1.0), size, robust=True), size)


def _splat_antimatter(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    records = np.frombuffer(
        data, dtype=np.dtype([("xyz", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    )
    rgba = records["rgba"].astype(np.float64) / 255.0
    return records["xyz"].astype(np.float64), rgba[:, :3], rgba[:, 3]


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}  # fmt: skip


def _splat_ply(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    end = data.find(b"end_header")
    if end < 0:
        raise ThumbnailError("no end_header in the PLY")
    body = data.index(b"\n", end) + 1
    header = data[:end].decode("ascii", errors="replace")
    endian = "<" if "binary_little_endian" in header else ">" if "binary_big_endian" in header else None
    if endian is None:
        raise ThumbnailError("only binary splat PLY files are drawn")
    match = re.search(r"^element\s+vertex\s+(\d+)\s*$", header, re.MULTILINE)
    if match is None:
        raise ThumbnailError("no vertex element in the PLY")
    count = int(match.group(1))
    fields = []
    for kind, name in re.findall(r"^property\s+(\w+)\s+(\w+)\s*$", header, re.MULTILINE):
        if kind not in _PLY_TYPES:
            raise ThumbnailError(f"unsupported PLY property type {kind!r}")
        fields.append((name, endian + _PLY_TYPES[kind]))
    rows = np.frombuffer(data, dtype=np.dtype(fields), count=count, offset=body)
    centres = np.stack([rows["x"], rows["y"], rows["z"]], axis=1).astype(np.float64)
    dc = np.stack([rows[f"f_dc_{i}"] for i in range(3)], axis=1).astype(np.float64)
    colours = 0.5 + _SH_C0 * dc
    alpha = 1.0 / (1.0 + np.exp(-np.clip(rows["opacity"].astype(np.float64), -60, 60)))
    return centres, colours, alpha


def _splat_spz(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Niantic's .spz (gzip): a 16-byte header, then positions, alphas, colours, scales, rotations, SH."""
    raw = gzip.decompress(data)  # already bounded by media_inspect's check of the same bytes
    _magic, version, count, _sh, fractional, _flags, _reserved = struct.unpack_from("<IIIBBBB", raw)
    offset = 16
    if version == 1:  # positions as float16
        centres = np.frombuffer(raw, dtype="<f2", count=count * 3, offset=offset).astype(np.float64)
        offset += count * 6
    else:  # 24-bit signed fixed point with `fractional` fractional bits
        packed = (
            np.frombuffer(raw, dtype=np.uint8, count=count * 9, offset=offset).reshape(-1, 3).astype(np.int32)
        )
        fixed = packed[:, 0] | (packed[:, 1] << 8) | (packed[:, 2] << 16)
        fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
        centres = fixed.astype(np.float64) / float(1 << fractional)
        offset += count * 9
    alpha = np.frombuffer(raw, dtype=np.uint8, count=count, offset=offset).astype(np.float64) / 255.0
    offset += count
    encoded = np.frombuffer(raw, dtype=np.uint8, count=count * 3, offset=offset).astype(np.float64) / 255.0
    dc = (encoded - 0.5) / 0.15  # spz stores DC colour as 0.5 + 0.15 * f_dc, then scaled to bytes
    colours = 0.5 + _SH_C0 * dc.reshape(-1, 3)
    return centres.reshape(-1, 3), colours, alpha


def _dots(points: np.ndarray, colours: np.ndarray, size: int, *, robust: bool = False) -> np.ndarray:
    """Points as small round dots, the nearest on top, lit by nothing (their own colour)."""
    width = size * _SUPERSAMPLE
    if len(points) > _MAX_DOTS:
        chosen = np.sort(np.random.default_rng(0).choice(len(points), _MAX_DOTS, replace=False))
        points, colours = points[chosen], colours[chosen]
    if robust:
        # Trained splats keep a few far-away floaters: frame the central 98% so the object is not a speck.
        lo, hi = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
        inside = ((points >= lo - 0.05 * (hi - lo)) & (points <= hi + 0.05 * (hi - lo))).all(axis=1)
        points, colours = points[inside], colours[inside]
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    view = _view(points - centre)
    screen = _fit(view, width)
    radius = int(np.clip(round(width * 0.8 / np.sqrt(len(points))), 1, 8))
    span = range(-radius, radius + 1)
    offsets = [(dx, dy) for dx in span for dy in span if dx * dx + dy * dy <= radius * radius + radius]
    depth = np.full(width * width, -np.inf)
    owner = np.full(width * width, -1, dtype=np.int64)
    cx = np.floor(screen[:, 0]).astype(np.int64)
    cy = np.floor(screen[:, 1]).astype(np.int64)
    ids = np.arange(len(points))
    for dx, dy in offsets:
        px, py = cx + dx, cy + dy
        ok = (px >= 0) & (px < width) & (py >= 0) & (py < width)
        _depth_merge(depth, owner, (py * width + px)[ok], screen[ok, 2], ids[ok])
    pixels = np.empty((width * width, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    drawn = owner >= 0
    pixels[drawn] = np.round(np.clip(colours[owner[drawn]], 0.0, 1.0) * 255).astype(np.uint8)
    return pixels.reshape(width, width, 3)
