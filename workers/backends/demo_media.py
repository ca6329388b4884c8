"""Demo image and 3D backends for the embedded default: procedural, deterministic, no GPU, no torch.

They let a newcomer see image and 3D battles end to end with nothing installed. Each style looks clearly
different, so votes on the demo boards are not pure noise; the same prompt (and input image) with the same
config always gives the same bytes. `demo_image_draw` and `demo_3d_make` are the generators themselves,
used by the backends and by the demo gallery (arena.demo_gallery), which needs them without the sleeps.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import random
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .base import (
    BackendConfigError,
    BackendError,
    InputRejected,
    MediaBackend,
    MediaRequest,
    MediaResult,
    ProgressCallback,
)

IMAGE_STYLES = ("stripes", "circles", "gradient", "mosaic", "waves", "plaid")
SHAPE_STYLES = ("blob", "blocks", "twist", "splat")
TEXTURES = ("vertex", "image", "none")  # per-vertex / per-face colours, a UV-mapped texture image, plain
IMAGE_SIZE = 256
_STEPS = 6


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _palette(rng: random.Random, count: int = 5) -> list[tuple[int, int, int]]:
    """Harmonious colours: hues spread around a random base, varied lightness."""
    base = rng.random()
    colours = []
    for i in range(count):
        hue = (base + i * rng.uniform(0.08, 0.22)) % 1.0
        light = rng.uniform(0.35, 0.7)
        sat = rng.uniform(0.45, 0.85)
        r, g, b = colorsys.hls_to_rgb(hue, light, sat)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def _image_palette(image: bytes) -> list[tuple[int, int, int]]:
    """An input image's main colours (image-to-3D): its 3x3 average grid."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as img:
        small = img.convert("RGB").resize((3, 3), Image.Resampling.BOX)
    return [tuple(int(c) for c in small.getpixel((x, y))) for y in range(3) for x in range(3)]


# --- images ------------------------------------------------------------------------------------------------


def demo_image_draw(prompt: str, style: str, seed: int | None = None) -> bytes:
    """A 256x256 PNG drawn from the prompt in the given style; the same arguments give the same bytes."""
    from PIL import Image, ImageDraw, ImageFilter

    if style not in IMAGE_STYLES:
        raise ValueError(f"unknown image style {style!r}")
    rng = random.Random(_seed("image", style, prompt, seed))
    colours = _palette(rng)
    size = IMAGE_SIZE
    img = Image.new("RGB", (size, size), colours[0])
    draw = ImageDraw.Draw(img)
    words = max(1, len(prompt.split()))
    if style == "stripes":
        count = 4 + words % 9
        angle = rng.choice((0, 45, 90, 135))
        big = Image.new("RGB", (size * 2, size * 2), colours[0])
        big_draw = ImageDraw.Draw(big)
        band = size * 2 / count
        for i in range(count):
            big_draw.rectangle([0, i * band, size * 2, (i + 1) * band], fill=colours[i % len(colours)])
        img = big.rotate(angle, resample=Image.Resampling.BICUBIC).crop(
            (size // 2, size // 2, size // 2 + size, size // 2 + size)
        )
    elif style == "circles":
        for _ in range(10 + words * 2):
            r = rng.uniform(12, 70)
            x, y = rng.uniform(0, size), rng.uniform(0, size)
            draw.ellipse(
                [x - r, y - r, x + r, y + r], fill=rng.choice(colours[1:]), outline=colours[0], width=3
            )
    elif style == "gradient":
        a, b, c = (np.array(colours[i], dtype=np.float64) for i in (1, 2, 3))
        yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
        t = (xx * rng.uniform(0.3, 0.7) + yy * rng.uniform(0.3, 0.7))[..., None]
        pixels = np.where(t < 0.5, a + (b - a) * (t * 2), b + (c - b) * ((t - 0.5) * 2))
        img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        sx, sy, sr = rng.uniform(60, 196), rng.uniform(50, 120), rng.uniform(18, 40)
        draw.ellipse([sx - sr, sy - sr, sx + sr, sy + sr], fill=colours[4])  # a sun over the gradient
    elif style == "mosaic":
        cells = 4 + words % 5
        step = size / cells
        for i in range(cells):
            for j in range(cells):
                draw.rectangle(
                    [i * step + 2, j * step + 2, (i + 1) * step - 2, (j + 1) * step - 2],
                    fill=rng.choice(colours),
                )
    elif style == "waves":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        field = np.zeros((size, size))
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.01, 0.06), rng.uniform(0.01, 0.06), rng.uniform(0, 2 * math.pi)
            field += np.sin(xx * fx + yy * fy + phase)
        bands = ((field - field.min()) / (np.ptp(field) + 1e-9) * (len(colours) - 0.001)).astype(int)
        img = Image.fromarray(np.array(colours, dtype=np.uint8)[bands], "RGB").filter(ImageFilter.SMOOTH)
    else:  # plaid
        for i in range(0, size, 32):
            width = 6 + (i // 32 + words) % 12
            draw.rectangle([i, 0, i + width, size], fill=colours[1 + (i // 32) % 4])
            draw.rectangle([0, i, size, i + width], fill=colours[1 + (i // 32 + 2) % 4])
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


# --- 3D ----------------------------------------------------------------------------------------------------


def demo_3d_make(
    prompt: str, style: str, *, texture: str = "vertex", image: bytes | None = None, seed: int | None = None
) -> tuple[bytes, str]:
    """A procedural object for the prompt (and input image): (bytes, format), GLB for meshes, .splat for
    the splat style. The same arguments give the same bytes."""
    if style not in SHAPE_STYLES:
        raise ValueError(f"unknown 3D style {style!r}")
    if texture not in TEXTURES:
        raise ValueError(f"unknown texture {texture!r}")
    image_digest = hashlib.sha256(image).hexdigest() if image else ""
    rng = random.Random(_seed("3d", style, texture, prompt, image_digest, seed))
    colours = _image_palette(image) if image else _palette(rng)
    nrng = np.random.default_rng(rng.getrandbits(63))
    if style == "splat":
        return _splat_bytes(_blob(nrng, subdivisions=4), colours, nrng), "splat"
    if style == "blob":
        mesh = _blob(nrng, subdivisions=4)
    elif style == "blocks":
        mesh = _blocks(nrng, 3 + len(prompt.split()) % 5)
    else:
        mesh = _twist(nrng)
    if style == "blocks" and texture == "vertex":
        _paint_blocks(mesh, colours)
    else:
        _paint(mesh, texture, colours, nrng)
    return mesh.export(file_type="glb"), "glb"


def _blob(nrng: np.random.Generator, subdivisions: int) -> Any:
    """An icosphere pushed in and out by a few smooth waves: a pebble, a potato, a bean."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    directions = np.asarray(mesh.vertices)
    radius = np.ones(len(directions))
    for _ in range(5):
        axis = nrng.normal(size=3)
        axis /= np.linalg.norm(axis)
        radius += nrng.uniform(0.04, 0.16) * np.sin(
            directions @ axis * nrng.uniform(1.5, 4.5) + nrng.uniform(0, 6)
        )
    stretch = np.array([1.0, nrng.uniform(0.8, 1.4), nrng.uniform(0.8, 1.1)])
    return trimesh.Trimesh(directions * radius[:, None] * stretch, mesh.faces, process=False)


def _blocks(nrng: np.random.Generator, count: int) -> Any:
    """Boxes stacked into a little tower or town."""
    import trimesh

    parts = []
    height = 0.0
    for i in range(count):
        extents = nrng.uniform(0.3, 1.0, size=3)
        if i and nrng.random() < 0.5:  # stack on the previous block
            centre = np.array([nrng.uniform(-0.2, 0.2), height + extents[1] / 2, nrng.uniform(-0.2, 0.2)])
        else:
            centre = np.array([nrng.uniform(-1.2, 1.2), extents[1] / 2, nrng.uniform(-1.2, 1.2)])
        height = centre[1] + extents[1] / 2
        parts.append(
            trimesh.creation.box(
                extents=extents, transform=trimesh.transformations.translation_matrix(centre)
            )
        )
    return trimesh.util.concatenate(parts)


def _twist(nrng: np.random.Generator) -> Any:
    """A star-shaped cross-section swept up a column while it turns: a twisted candle or vase."""
    import trimesh

    points, levels = int(nrng.integers(4, 8)) * 2, 48
    turn = nrng.uniform(0.6, 2.0) * math.pi
    height = nrng.uniform(1.8, 3.0)
    angles = np.arange(points) * 2 * math.pi / points
    star = np.where(np.arange(points) % 2 == 0, 1.0, nrng.uniform(0.45, 0.75))
    t = np.linspace(0.0, 1.0, levels)
    bulge = 0.55 + 0.45 * np.sin(math.pi * (0.15 + 0.8 * t)) * nrng.uniform(0.6, 1.2)
    ring_angle = angles[None, :] + turn * t[:, None]
    r = star[None, :] * bulge[:, None]
    vertices = np.stack(
        [r * np.cos(ring_angle), np.repeat(t[:, None] * height, points, 1), r * np.sin(ring_angle)], -1
    )
    vertices = vertices.reshape(-1, 3)
    faces = []
    for level in range(levels - 1):
        for k in range(points):
            a, b = level * points + k, level * points + (k + 1) % points
            c, d = a + points, b + points
            faces += [(a, c, b), (b, c, d)]
    bottom, top = len(vertices), len(vertices) + 1
    vertices = np.vstack([vertices, [0.0, 0.0, 0.0], [0.0, height, 0.0]])
    top_ring = (levels - 1) * points
    for k in range(points):
        faces.append((bottom, k, (k + 1) % points))
        faces.append((top, top_ring + (k + 1) % points, top_ring + k))
    return trimesh.Trimesh(vertices, np.array(faces), process=False)


def _paint_blocks(mesh: Any, colours: list[tuple[int, int, int]]) -> None:
    """One palette colour per box (each box is 12 faces), as face colours."""
    import trimesh

    per_box = np.array(
        [(*colours[i % len(colours)], 255) for i in range(len(mesh.faces) // 12)], dtype=np.uint8
    )
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=np.repeat(per_box, 12, axis=0))


def _paint(mesh: Any, texture: str, colours: list[tuple[int, int, int]], nrng: np.random.Generator) -> None:
    import trimesh

    if texture == "none":
        return
    vertices = np.asarray(mesh.vertices)
    centred = vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    if texture == "vertex":
        # Bands of the palette by height, softly blended, with a little per-vertex variation.
        span = np.ptp(centred[:, 1]) or 1.0
        t = (centred[:, 1] - centred[:, 1].min()) / span * (len(colours) - 1)
        low = np.floor(t).astype(int).clip(0, len(colours) - 2)
        frac = (t - low)[:, None]
        palette = np.array(colours, dtype=np.float64)
        rgb = palette[low] * (1 - frac) + palette[low + 1] * frac + nrng.normal(0, 6, size=(len(vertices), 3))
        rgba = np.c_[np.clip(rgb, 0, 255), np.full(len(vertices), 255)].astype(np.uint8)
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=rgba)
        return
    # texture == "image": a checker-and-stripe texture mapped by spherical UVs.
    from PIL import Image, ImageDraw

    tex = Image.new("RGB", (128, 128), colours[0])
    draw = ImageDraw.Draw(tex)
    for i in range(8):
        for j in range(8):
            if (i + j) % 2:
                draw.rectangle(
                    [i * 16, j * 16, i * 16 + 15, j * 16 + 15], fill=colours[1 + (i + j) % (len(colours) - 1)]
                )
    norm = np.linalg.norm(centred, axis=1)
    norm[norm == 0] = 1.0
    u = np.arctan2(centred[:, 2], centred[:, 0]) / (2 * math.pi) + 0.5
    v = np.arccos(np.clip(centred[:, 1] / norm, -1, 1)) / math.pi
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.c_[u, 1 - v], image=tex)


def _splat_bytes(surface: Any, colours: list[tuple[int, int, int]], nrng: np.random.Generator) -> bytes:
    """Gaussians on the surface in antimatter15's .splat layout (32 bytes each), in the OpenCV convention
    (y down, z forward) that trained splats use and the viewer turns upright."""
    import trimesh

    count = 6000
    points, _faces = trimesh.sample.sample_surface(surface, count, seed=int(nrng.integers(2**31)))
    span = np.ptp(points[:, 1]) or 1.0
    t = (points[:, 1] - points[:, 1].min()) / span * (len(colours) - 1)
    low = np.floor(t).astype(int).clip(0, len(colours) - 2)
    frac = (t - low)[:, None]
    palette = np.array(colours, dtype=np.float64)
    rgb = palette[low] * (1 - frac) + palette[low + 1] * frac + nrng.normal(0, 10, size=(count, 3))
    records = np.zeros(
        count, dtype=np.dtype([("xyz", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    )
    records["xyz"] = points * np.array([1.0, -1.0, -1.0])
    records["scale"] = nrng.uniform(0.015, 0.035, size=(count, 1)).repeat(3, axis=1)
    records["rgba"][:, :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    records["rgba"][:, 3] = 230
    records["rot"] = (255, 128, 128, 128)  # the identity quaternion (w, x, y, z), each as q * 128 + 128
    return records.tobytes()


# --- backends ----------------------------------------------------------------------------------------------


def _pause(progress: ProgressCallback) -> None:
    """A few progress steps with small pauses, so the page shows a generation under way."""
    from django.conf import settings  # the demo delay is a site setting

    delay = float(settings.ARENA_DEMO_DELAY) * 4
    for step in range(1, _STEPS):
        time.sleep(delay)
        progress(step / _STEPS)


class DemoImageBackend(MediaBackend):
    """A procedural picture per prompt; `style` picks how it looks."""

    kind: ClassVar[str] = "demo_image"
    modalities: ClassVar[frozenset[str]] = frozenset({"image"})
    inputs: ClassVar[frozenset[str]] = frozenset({"text"})
    demo: ClassVar[bool] = True
    config_fields: ClassVar[frozenset[str]] = frozenset({"style"})

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().validate_config(config)
        style = cleaned.get("style", "stripes")
        if style not in IMAGE_STYLES:
            raise BackendConfigError(f"style must be one of {list(IMAGE_STYLES)}, got {style!r}")
        return cleaned

    def generate(self, request: MediaRequest, progress: ProgressCallback) -> MediaResult:
        if not request.prompt.strip():
            raise BackendError("This demo model draws from a text prompt; the prompt is empty.")
        progress(0.0)
        _pause(progress)
        seed = request.seed if request.seed is not None else self.config.get("seed")
        data = demo_image_draw(request.prompt, self.config.get("style", "stripes"), seed)
        progress(1.0)
        return MediaResult(data=data, format="png")


class Demo3DBackend(MediaBackend):
    """A procedural object per prompt or input image: `style` picks the shape (or a splat), `texture` its
    colouring (per-vertex colours, a texture image, or none)."""

    kind: ClassVar[str] = "demo_3d"
    modalities: ClassVar[frozenset[str]] = frozenset({"3d"})
    inputs: ClassVar[frozenset[str]] = frozenset({"text", "image"})
    demo: ClassVar[bool] = True
    config_fields: ClassVar[frozenset[str]] = frozenset({"style", "texture"})

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().validate_config(config)
        style = cleaned.get("style", "blob")
        if style not in SHAPE_STYLES:
            raise BackendConfigError(f"style must be one of {list(SHAPE_STYLES)}, got {style!r}")
        texture = cleaned.get("texture", "vertex")
        if texture not in TEXTURES:
            raise BackendConfigError(f"texture must be one of {list(TEXTURES)}, got {texture!r}")
        if style == "splat" and texture != "vertex":
            raise BackendConfigError("the splat style is always coloured; leave texture out")
        return cleaned

    def generate(self, request: MediaRequest, progress: ProgressCallback) -> MediaResult:
        if not request.prompt.strip() and not request.image:
            raise BackendError("This demo model needs a text prompt or an input image.")
        progress(0.0)
        _pause(progress)
        seed = request.seed if request.seed is not None else self.config.get("seed")
        try:
            data, fmt = demo_3d_make(
                request.prompt,
                self.config.get("style", "blob"),
                texture=self.config.get("texture", "vertex"),
                image=request.image,
                seed=seed,
            )
        except OSError as exc:  # an input image Pillow cannot read (arena.media checked it; belt and braces)
            raise InputRejected("The input image could not be read.") from exc
        progress(1.0)
        return MediaResult(data=data, format=fmt)
