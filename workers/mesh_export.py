"""Triangle meshes made by 3D models, written as GLB files with trimesh.

Pure functions, no torch: a backend hands over plain arrays (`MeshData`), `glb_export` cleans them and writes
a binary glTF 2.0 file that `arena.media.media_inspect` accepts and the battle page's viewer shows.

- Orientation: glTF is Y-up. A mesh made Z-up (Shap-E, Blender, most CAD) says so with `up="z"` and is rotated
  -90 degrees about X, so its top stays on top in the viewer.
- Colours: per-vertex colours, as floats in 0..1 or integers in 0..255, are written as the COLOR_0 attribute
  (RGBA, unsigned bytes), which counts as a textured output. glTF reads COLOR_0 as linear values, which is
  what Shap-E's decoder produces.
- Damage: vertices with NaN or infinite coordinates are dropped with every face that uses them, as are faces
  with a repeated corner or no area. What a model produced that leaves nothing to show raises
  `MeshExportError` with a message fit for a voter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

UP_AXES = ("y", "z")
# Z-up to Y-up: a rotation of -90 degrees about X, (x, y, z) -> (x, z, -y). A proper rotation (determinant 1),
# so faces keep their winding and normals keep pointing outwards.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# A face whose doubled area is below this fraction of the squared bounding-box diagonal has no area.
DEGENERATE_AREA = 1e-14


class MeshExportError(ValueError):
    """The mesh cannot be written: it is malformed or nothing usable is left. The message suits a voter."""


@dataclass(frozen=True)
class MeshData:
    """A triangle mesh as arrays: `vertices` (N, 3) floats, `faces` (M, 3) vertex indices, `colors` None or
    (N, 3) / (N, 4) per-vertex colours, floats in 0..1 or integers in 0..255. `up` is the axis pointing up in
    `vertices`: "y" (glTF's convention) or "z"."""

    vertices: Any
    faces: Any
    colors: Any = None
    up: str = "y"


def glb_export(mesh: MeshData) -> bytes:
    """The mesh as GLB bytes: cleaned, turned Y-up, vertex colours as COLOR_0, vertex normals included."""
    import trimesh

    vertices, faces, colors = mesh_clean(mesh)
    if mesh.up == "z":
        vertices = vertices @ Z_UP_TO_Y_UP.T
    shape = trimesh.Trimesh(
        vertices=vertices.astype(np.float32),
        faces=faces.astype(np.uint32),
        vertex_colors=colors,
        process=False,  # no merging or reordering: the arrays are already clean
        validate=False,
    )
    return shape.export(file_type="glb", include_normals=True)


def mesh_clean(mesh: MeshData) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(vertices float64 (N, 3), faces int64 (M, 3), colours uint8 (N, 4) or None) with non-finite vertices,
    the faces touching them, degenerate faces and unused vertices removed. Raises MeshExportError when the
    arrays are malformed or nothing is left."""
    if mesh.up not in UP_AXES:
        raise MeshExportError(f"up must be one of {list(UP_AXES)}, got {mesh.up!r}")
    vertices = _float_array(mesh.vertices, "vertices")
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshExportError(f"vertices must be an (N, 3) array, got shape {vertices.shape}")
    faces = _index_array(mesh.faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise MeshExportError(f"faces must be an (M, 3) array of vertex indices, got shape {faces.shape}")
    if len(vertices) == 0 or len(faces) == 0:
        raise MeshExportError("The model produced an empty mesh.")
    outside = faces[(faces < 0) | (faces >= len(vertices))]
    if len(outside):
        raise MeshExportError(
            f"The mesh is malformed: a face refers to vertex {int(outside[0])}, but it has {len(vertices)}."
        )
    colors = colors_normalise(mesh.colors, len(vertices))

    finite = np.isfinite(vertices).all(axis=1)
    keep = finite[faces].all(axis=1)
    keep &= (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep]
    if len(faces):
        corners = vertices[faces]  # (M, 3 corners, 3 coordinates); every corner is finite here
        doubled_area = np.linalg.norm(
            np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
        )
        used = vertices[np.unique(faces)]
        diagonal_squared = float(np.sum((used.max(axis=0) - used.min(axis=0)) ** 2))
        faces = faces[doubled_area > DEGENERATE_AREA * max(diagonal_squared, np.finfo(float).tiny)]
    if len(faces) == 0:
        raise MeshExportError("The model produced an empty mesh (no usable faces).")

    used_ids = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used_ids] = np.arange(len(used_ids))
    return vertices[used_ids], remap[faces], (colors[used_ids] if colors is not None else None)


def colors_normalise(colors: Any, count: int) -> np.ndarray | None:
    """Per-vertex colours as RGBA uint8 (count, 4). Integers are read as 0..255; floats as 0..1 unless one
    exceeds 1, then as 0..255. NaN becomes 0 and values are clipped to the range."""
    if colors is None:
        return None
    array = np.asarray(_numpy(colors))
    if array.ndim != 2 or array.shape[1] not in (3, 4) or array.shape[0] != count:
        raise MeshExportError(
            f"colors must be an ({count}, 3) or ({count}, 4) array, one per vertex, got shape {array.shape}"
        )
    if array.dtype.kind in "iub":
        scaled = array.astype(np.float64)
    elif array.dtype.kind == "f":
        scaled = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if scaled.size and scaled.max() <= 1.0:
            scaled = scaled * 255.0
    else:
        raise MeshExportError(f"colors must be numbers, got {array.dtype}")
    rgba = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if rgba.shape[1] == 3:
        rgba = np.concatenate([rgba, np.full((count, 1), 255, dtype=np.uint8)], axis=1)
    return rgba


def mesh_from_shap_e(output: Any) -> MeshData:
    """diffusers' Shap-E mesh (`MeshDecoderOutput`: `verts` (N, 3), `faces` (M, 3), `vertex_channels`
    {"R", "G", "B": (N,)} in 0..1, linear) as MeshData. Shap-E works Z-up. Tensors may be on any device and
    dtype."""
    vertices = _float_array(getattr(output, "verts", None), "verts")
    faces = _index_array(getattr(output, "faces", None))
    channels = getattr(output, "vertex_channels", None)
    colors = None
    if isinstance(channels, Mapping) and all(name in channels for name in "RGB"):
        colors = np.stack([_float_array(channels[name], name) for name in "RGB"], axis=1)
    return MeshData(vertices=vertices, faces=faces, colors=colors, up="z")


def _numpy(value: Any) -> Any:
    """A torch tensor (any device, dtype) or array-like as something numpy reads."""
    if hasattr(value, "detach"):
        value = value.detach()
        if hasattr(value, "is_floating_point") and value.is_floating_point():
            value = value.float()  # numpy has no bfloat16
        return value.cpu().numpy()
    return value


def _float_array(value: Any, name: str) -> np.ndarray:
    if value is None:
        raise MeshExportError(f"the mesh has no {name}")
    try:
        return np.asarray(_numpy(value), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MeshExportError(f"{name} must be numbers") from exc


def _index_array(value: Any) -> np.ndarray:
    if value is None:
        raise MeshExportError("the mesh has no faces")
    array = np.asarray(_numpy(value))
    if array.size == 0:
        return array.reshape(0, 3).astype(np.int64) if array.ndim < 2 else array.astype(np.int64)
    whole = array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.rint(array))
    if array.dtype.kind not in "iu" and not whole:
        raise MeshExportError("faces must be integer vertex indices")
    return array.astype(np.int64)
