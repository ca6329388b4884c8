"""Test files for the 3D viewer (meshes in every format the arena shows, small Gaussian splats) and a plain
HTTP server that serves the repository's static/ folder, the harness pages and such files: the viewer is
exercised in Chromium on its own, without Django."""

from __future__ import annotations

import functools
import gzip
import io
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[3]
HARNESS = Path(__file__).resolve().parent


# --- meshes ------------------------------------------------------------------------------------------------


def coloured_box() -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    mesh.visual.vertex_colors = np.tile([205, 70, 60, 255], (len(mesh.vertices), 1)).astype(np.uint8)
    return mesh


def coloured_icosphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(
        subdivisions=2, radius=3.0
    )  # a different size: the viewer normalises it
    mesh.apply_translation((5.0, -2.0, 1.0))  # and off-centre: the viewer centres it
    heights = (mesh.vertices[:, 1] - mesh.vertices[:, 1].min()) / np.ptp(mesh.vertices[:, 1])
    colours = np.stack(
        [40 + 180 * heights, 110 + 0 * heights, 220 - 150 * heights, 255 + 0 * heights], axis=1
    )
    mesh.visual.vertex_colors = colours.astype(np.uint8)
    return mesh


def mesh_bytes(mesh: trimesh.Trimesh, fmt: str) -> bytes:
    if fmt == "gltf":  # one self-contained JSON file: buffers embedded as data URIs
        from trimesh.exchange.gltf import export_gltf

        return export_gltf(trimesh.Scene(mesh), embed_buffers=True)["model.gltf"]
    data = mesh.export(file_type=fmt)
    return data.encode() if isinstance(data, str) else data


# --- Gaussian splats: a small coloured blob, written in each format Spark reads ---------------------------


def _splat_cloud(n: int = 400, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32) * np.array([1.0, 0.5, 0.5], dtype=np.float32)
    rgb = np.clip(0.5 + 0.4 * xyz / 2.0, 0.05, 0.95).astype(np.float32)
    log_scale = np.full((n, 3), np.log(0.08), dtype=np.float32)
    opacity = np.full(n, 0.9, dtype=np.float32)
    quat = np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (n, 1))  # w, x, y, z
    return {"xyz": xyz, "rgb": rgb, "log_scale": log_scale, "opacity": opacity, "quat": quat}


SH_C0 = 0.28209479177387814


def splat_ply_bytes(n: int = 400) -> bytes:
    """The 3DGS training output: binary PLY with f_dc, opacity (logit), log scales and a rotation
    quaternion."""
    cloud = _splat_cloud(n)
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2"]
    names += ["rot_0", "rot_1", "rot_2", "rot_3"]
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    logit = np.log(cloud["opacity"] / (1 - cloud["opacity"]))
    f_dc = (cloud["rgb"] - 0.5) / SH_C0
    rows = np.column_stack([cloud["xyz"], f_dc, logit, cloud["log_scale"], cloud["quat"]]).astype("<f4")
    return header.encode() + rows.tobytes()


def splat_bytes(n: int = 400) -> bytes:
    """antimatter15's .splat: position and scale as float32, RGBA and the quaternion as bytes (32 a splat)."""
    cloud = _splat_cloud(n)
    out = io.BytesIO()
    for i in range(n):
        rgba = [*(cloud["rgb"][i] * 255).astype(int), int(cloud["opacity"][i] * 255)]
        quat = np.clip(cloud["quat"][i] * 128 + 128, 0, 255).astype(int)
        out.write(struct.pack("<3f3f4B4B", *cloud["xyz"][i], *np.exp(cloud["log_scale"][i]), *rgba, *quat))
    return out.getvalue()


def spz_bytes(n: int = 400) -> bytes:
    """Niantic's .spz, version 2: gzip of a 16-byte header and quantised columns."""
    cloud = _splat_cloud(n)
    fractional_bits = 12
    header = struct.pack("<IIIBBBB", 0x5053474E, 2, n, 0, fractional_bits, 0, 0)
    fixed = np.round(cloud["xyz"] * (1 << fractional_bits)).astype(np.int32).reshape(-1)
    positions = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=1).astype(np.uint8)
    alphas = np.clip(cloud["opacity"] * 255, 0, 255).astype(np.uint8)
    colours = np.clip(((cloud["rgb"] - 0.5) / SH_C0 * 0.15 + 0.5) * 255, 0, 255).astype(np.uint8)
    scales = np.clip((cloud["log_scale"] + 10) * 16, 0, 255).astype(np.uint8)
    rotations = np.clip((cloud["quat"][:, 1:] + 1) * 127.5, 0, 255).astype(np.uint8)  # x, y, z with w >= 0
    body = b"".join(a.tobytes() for a in (positions, alphas, colours, scales, rotations))
    return gzip.compress(header + body)


# --- images ------------------------------------------------------------------------------------------------


def png_bytes(size: tuple[int, int], colour: tuple[int, int, int], label: str) -> bytes:
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.2, h * 0.2, w * 0.8, h * 0.8), outline=(255, 255, 255), width=max(2, w // 60))
    draw.text((w * 0.06, h * 0.06), label, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# --- a static server -------------------------------------------------------------------------------------


class _Handler(SimpleHTTPRequestHandler):
    """/static/... from the repository's static/, /harness/... from this folder, /files/... from `files`."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".glb": "model/gltf-binary",
        ".gltf": "model/gltf+json",
    }

    def __init__(self, *args: object, files: Path, **kwargs: object) -> None:
        self.files = files
        super().__init__(*args, directory=str(ROOT), **kwargs)  # type: ignore[arg-type]

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, base in (("/static/", ROOT / "static"), ("/harness/", HARNESS), ("/files/", self.files)):
            if path.startswith(prefix):
                target = (base / path[len(prefix) :]).resolve()
                return str(target) if target.is_relative_to(base.resolve()) else str(base / "missing")
        return str(ROOT / "missing")

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@contextmanager
def static_server(files: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, files=files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
