"""Gallery directories (3D Arena's layout) and the 3D files in them, made in the test.

`gallery_dir_write` lays out DIR/inputs/<id>.{txt,png} and DIR/outputs/<model>/<id>.<ext>; the byte makers
build real files of each format (a mesh PLY, a Gaussian-splat PLY, an .spz) so the code under test parses
exactly what it would parse from a real gallery. Images, GLB and .splat come from tests.support.media.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tests.support.media import glb_bytes, png_bytes, splat_bytes

__all__ = [
    "gallery_dir_write",
    "glb_bytes",
    "mesh_ply_bytes",
    "png_bytes",
    "splat_bytes",
    "splat_ply_bytes",
    "spz_bytes",
]


def gallery_dir_write(
    root: Path,
    *,
    inputs: Mapping[str, str | bytes],
    outputs: Mapping[str, Mapping[str, bytes]],
    extra: Mapping[str, bytes] | None = None,
) -> Path:
    """Write a gallery under `root`. `inputs` maps a file name in inputs/ ("cat.txt": "a cat", "cat.png":
    bytes) to its content; `outputs` maps a model folder to {file name: bytes}; `extra` maps any other path
    relative to root to bytes. Returns root."""
    (root / "inputs").mkdir(parents=True, exist_ok=True)
    (root / "outputs").mkdir(parents=True, exist_ok=True)
    for name, content in inputs.items():
        path = root / "inputs" / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    for model, files in outputs.items():
        folder = root / "outputs" / model
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    for name, data in (extra or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def mesh_ply_bytes(colour: tuple[int, int, int] | None = (40, 160, 90)) -> bytes:
    """A binary mesh PLY (an icosphere), with per-vertex colours unless colour is None."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=2)
    if colour is not None:
        mesh.visual.vertex_colors = np.tile([*colour, 255], (len(mesh.vertices), 1)).astype(np.uint8)
    return mesh.export(file_type="ply")


def _sphere_points(count: int, seed: int) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(count, 3))
    return xyz / np.linalg.norm(xyz, axis=1, keepdims=True), rng


def splat_ply_bytes(
    count: int = 300, seed: int = 0, rgb: tuple[float, float, float] = (0.9, 0.2, 0.1)
) -> bytes:
    """A 3DGS training-output PLY (binary, degree-0 SH): `count` gaussians on a unit sphere whose colour,
    decoded as 0.5 + 0.28209479 * f_dc, is `rgb`."""
    xyz, rng = _sphere_points(count, seed)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    names += ["scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rows = np.zeros(count, dtype=[(n, "<f4") for n in names])
    rows["x"], rows["y"], rows["z"] = xyz.T
    for i, value in enumerate(rgb):
        rows[f"f_dc_{i}"] = (value - 0.5) / 0.28209479177387814
    rows["opacity"] = 4.0  # logit: about 0.98 after the sigmoid
    for i in range(3):
        rows[f"scale_{i}"] = np.log(0.03) + rng.normal(0, 0.1, count)
    rows["rot_0"] = 1.0
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {count}\n"
    header += "".join(f"property float {n}\n" for n in names) + "end_header\n"
    return header.encode("ascii") + rows.tobytes()


def spz_bytes(
    count: int = 300, seed: int = 0, rgb: tuple[int, int, int] = (30, 90, 220), version: int = 2
) -> bytes:
    """A Niantic .spz (gzip, degree-0 SH): `count` gaussians on a unit sphere of colour `rgb` (0..255)."""
    xyz, _rng = _sphere_points(count, seed)
    fractional = 12
    fixed = np.round(xyz * (1 << fractional)).astype(np.int32) & 0xFFFFFF
    positions = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=-1).astype(np.uint8)
    alphas = np.full(count, 240, dtype=np.uint8)
    # Colours are stored as 0.5 + 0.15 * f_dc in bytes, where rgb = 0.5 + 0.28209479 * f_dc.
    f_dc = (np.array(rgb, dtype=np.float64) / 255.0 - 0.5) / 0.28209479177387814
    colour = np.clip(np.round((0.5 + 0.15 * f_dc) * 255), 0, 255).astype(np.uint8)
    colours = np.tile(colour, (count, 1))
    scales = np.full((count, 3), 100, dtype=np.uint8)
    rotations = np.zeros((count, 4 if version >= 3 else 3), dtype=np.uint8)
    if version < 3:
        rotations[:] = 128  # x, y, z of the identity quaternion as q * 127.5 + 127.5
    header = struct.pack("<IIIBBBB", 0x5053474E, version, count, 0, fractional, 0, 0)
    body = positions.tobytes() + alphas.tobytes() + colours.tobytes() + scales.tobytes() + rotations.tobytes()
    return gzip.compress(header + body, mtime=0)
