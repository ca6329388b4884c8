"""workers.mesh_export: meshes made here (by hand and by diffusers' own marching cubes) written as GLB files,
read back with trimesh and checked by arena.media the way every battle output is."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
import pytest
import torch
import trimesh
from diffusers.pipelines.shap_e.renderer import MeshDecoder, MeshDecoderOutput

from arena.media import media_inspect
from tests.support.tiny_shap_e import marching_cubes_table
from workers.mesh_export import (
    MeshData,
    MeshExportError,
    colors_normalise,
    glb_export,
    mesh_clean,
    mesh_from_shap_e,
)

# A tetrahedron, wound counter-clockwise seen from outside (outward normals), apex on +z.
TETRA_VERTICES = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
TETRA_FACES = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
TETRA_COLOURS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])


def read_back(data: bytes) -> trimesh.Trimesh:
    """The GLB's one mesh as trimesh reads it, placed by the scene graph (a rotation in a node counts too)."""
    scene = trimesh.load(io.BytesIO(data), file_type="glb", force="scene")
    assert len(scene.geometry) == 1
    return scene.to_geometry()


def glb_json(data: bytes) -> dict[str, Any]:
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    chunk_length, chunk_type = struct.unpack_from("<I4s", data, 12)
    assert chunk_type == b"JSON"
    return json.loads(data[20 : 20 + chunk_length])


def test_tetrahedron_becomes_a_textured_glb_that_arena_media_accepts() -> None:
    data = glb_export(MeshData(TETRA_VERTICES, TETRA_FACES, TETRA_COLOURS))
    info = media_inspect(data, format_hint="glb")
    assert (info.format, info.kind) == ("glb", "mesh")
    assert info.meta["vertices"] == 4
    assert info.meta["faces"] == 4
    assert info.meta["textured"] is True
    (primitive,) = glb_json(data)["meshes"][0]["primitives"]
    assert {"POSITION", "NORMAL", "COLOR_0"} <= set(primitive["attributes"])


def test_vertex_colours_in_0_1_and_in_0_255_arrive_as_the_same_bytes() -> None:
    expected = np.array([[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255], [255, 255, 255, 255]])
    for colours in (TETRA_COLOURS, TETRA_COLOURS * 255, (TETRA_COLOURS * 255).astype(np.uint8)):
        mesh = read_back(glb_export(MeshData(TETRA_VERTICES, TETRA_FACES, colours)))
        # Vertices keep their order (no merging), so colour i belongs to vertex i.
        assert np.array_equal(np.asarray(mesh.visual.vertex_colors), expected)


def test_rgba_colours_keep_their_alpha_and_out_of_range_values_are_clipped() -> None:
    colours = np.array([[300, -5, 128, 10], [0, 0, 0, 0], [255, 255, 255, 255], [1, 2, 3, 4]], dtype=np.int64)
    mesh = read_back(glb_export(MeshData(TETRA_VERTICES, TETRA_FACES, colours)))
    assert mesh.visual.vertex_colors[0].tolist() == [255, 0, 128, 10]
    assert mesh.visual.vertex_colors[3].tolist() == [1, 2, 3, 4]


def test_mesh_without_colours_is_an_untextured_glb() -> None:
    data = glb_export(MeshData(TETRA_VERTICES, TETRA_FACES))
    info = media_inspect(data, format_hint="glb")
    assert info.meta["textured"] is False
    (primitive,) = glb_json(data)["meshes"][0]["primitives"]
    assert "COLOR_0" not in primitive["attributes"]


def test_z_up_mesh_is_turned_y_up_keeping_its_winding() -> None:
    y_up = read_back(glb_export(MeshData(TETRA_VERTICES, TETRA_FACES, up="y")))
    z_up = read_back(glb_export(MeshData(TETRA_VERTICES, TETRA_FACES, up="z")))
    # The apex (0, 0, 2) points up: along y after the turn, still along z without it.
    assert np.allclose(y_up.vertices[3], [0.0, 0.0, 2.0])
    assert np.allclose(z_up.vertices[3], [0.0, 2.0, 0.0])
    assert np.allclose(z_up.vertices[1], [1.0, 0.0, 0.0])
    assert np.allclose(z_up.vertices[2], [0.0, 0.0, -1.0])  # (x, y, z) -> (x, z, -y)
    # A rotation, not a mirror: the closed mesh still has outward normals (positive volume), same size.
    for mesh in (y_up, z_up):
        assert mesh.is_watertight and mesh.is_winding_consistent
        assert mesh.volume == pytest.approx(1 / 3, rel=1e-6)


def test_nan_vertices_are_dropped_with_their_faces_and_colours_follow_the_kept_vertices() -> None:
    vertices = np.vstack([TETRA_VERTICES, [[np.nan, 0.0, 0.0], [5.0, 5.0, np.inf]]])
    faces = np.vstack([TETRA_FACES, [[0, 1, 4], [4, 5, 2]]])
    colours = np.vstack([TETRA_COLOURS, [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]])
    kept_vertices, kept_faces, kept_colours = mesh_clean(MeshData(vertices, faces, colours))
    assert np.array_equal(kept_vertices, TETRA_VERTICES)
    assert np.array_equal(kept_faces, TETRA_FACES)
    assert kept_colours is not None and kept_colours[:, :3].tolist() == (TETRA_COLOURS * 255).tolist()
    info = media_inspect(glb_export(MeshData(vertices, faces, colours)), format_hint="glb")
    assert (info.meta["vertices"], info.meta["faces"]) == (4, 4)


def test_degenerate_faces_and_unused_vertices_are_dropped() -> None:
    vertices = np.vstack([TETRA_VERTICES, [[0.5, 0.0, 0.0], [9.0, 9.0, 9.0]]])  # 4 lies on edge 0-1; 5 unused
    faces = np.vstack([TETRA_FACES, [[0, 0, 1], [0, 4, 1], [2, 3, 3]]])  # repeated corners; no area
    kept_vertices, kept_faces, _ = mesh_clean(MeshData(vertices, faces))
    assert len(kept_vertices) == 4
    assert np.array_equal(kept_faces, TETRA_FACES)


def test_faces_are_renumbered_when_vertices_before_them_go() -> None:
    vertices = np.vstack([[[np.nan, np.nan, np.nan]], TETRA_VERTICES])
    kept_vertices, kept_faces, _ = mesh_clean(MeshData(vertices, TETRA_FACES + 1))
    assert np.array_equal(kept_vertices, TETRA_VERTICES)
    assert np.array_equal(kept_faces, TETRA_FACES)


@pytest.mark.parametrize(
    "vertices, faces",
    [
        (np.full((3, 3), np.nan), np.array([[0, 1, 2]])),  # every vertex NaN
        (np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]])),  # collinear
        (TETRA_VERTICES, np.array([[1, 1, 1], [2, 2, 3]])),  # repeated corners only
        (np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)),  # nothing at all
        (TETRA_VERTICES, np.zeros((0, 3), dtype=np.int64)),  # points without faces
    ],
    ids=["all-nan", "collinear", "repeated-corners", "empty", "no-faces"],
)
def test_nothing_usable_left_is_a_clear_error(vertices: np.ndarray, faces: np.ndarray) -> None:
    with pytest.raises(MeshExportError, match="empty mesh"):
        glb_export(MeshData(vertices, faces))


@pytest.mark.parametrize(
    "mesh, message",
    [
        (MeshData(TETRA_VERTICES, np.array([[0, 1, 7]])), "refers to vertex 7, but it has 4"),
        (MeshData(TETRA_VERTICES, np.array([[0, -1, 2]])), "refers to vertex -1"),
        (MeshData(TETRA_VERTICES[:, :2], TETRA_FACES), r"vertices must be an \(N, 3\) array"),
        (MeshData(TETRA_VERTICES, TETRA_FACES[:, :2]), r"faces must be an \(M, 3\) array"),
        (MeshData(TETRA_VERTICES, TETRA_FACES + 0.5), "integer vertex indices"),
        (MeshData(TETRA_VERTICES, TETRA_FACES, TETRA_COLOURS[:3]), r"colors must be an \(4, 3\) or \(4, 4\)"),
        (MeshData(TETRA_VERTICES, TETRA_FACES, np.zeros((4, 2))), "colors must be"),
        (MeshData(TETRA_VERTICES, TETRA_FACES, up="x"), "up must be one of"),
    ],
    ids=[
        "index-too-high",
        "negative-index",
        "2d-vertices",
        "2-corner-faces",
        "float-faces",
        "short-colours",
        "2-channel-colours",
        "bad-up",
    ],
)
def test_malformed_arrays_are_refused_saying_what_is_wrong(mesh: MeshData, message: str) -> None:
    with pytest.raises(MeshExportError, match=message):
        glb_export(mesh)


def test_whole_float_faces_and_torch_tensors_are_accepted() -> None:
    data = glb_export(
        MeshData(
            torch.tensor(TETRA_VERTICES, dtype=torch.float16),
            torch.tensor(TETRA_FACES),
            torch.tensor(TETRA_COLOURS),
        )
    )
    assert media_inspect(data, format_hint="glb").meta["faces"] == 4
    data = glb_export(MeshData(TETRA_VERTICES, TETRA_FACES.astype(np.float32)))
    assert media_inspect(data, format_hint="glb").meta["faces"] == 4


def test_nan_colours_become_black_instead_of_failing() -> None:
    colours = TETRA_COLOURS.copy()
    colours[1] = np.nan
    assert colors_normalise(colours, 4)[1].tolist() == [0, 0, 0, 255]


# --- Shap-E meshes -----------------------------------------------------------------------------------------


def shap_e_decoder() -> MeshDecoder:
    """diffusers' marching cubes with the lookup table a real Shap-E checkpoint loads into it."""
    decoder = MeshDecoder()
    cases, masks = marching_cubes_table()
    decoder.cases.copy_(cases)
    decoder.masks.copy_(masks)
    return decoder


def ellipsoid_mesh(grid: int = 32, radii: tuple[float, float, float] = (0.4, 0.4, 0.8)) -> MeshDecoderOutput:
    """A Shap-E style mesh made here: an ellipsoid's field (positive inside) on a grid over [-1, 1]^3, run
    through diffusers' MeshDecoder as decode_to_mesh does, coloured by height as its texture head might."""
    axis = torch.linspace(-1.0, 1.0, grid)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    field = 1.0 - ((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    mesh = shap_e_decoder()(field, torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([2.0, 2.0, 2.0]))
    height = (mesh.verts[:, 2] + 1) / 2
    mesh.vertex_channels = {"R": height, "G": 1 - height, "B": torch.full_like(height, 0.25)}
    return mesh


def test_shap_e_mesh_becomes_a_closed_coloured_y_up_glb() -> None:
    shap_e = ellipsoid_mesh()
    assert len(shap_e.verts) > 100 and len(shap_e.faces) > 100
    mesh_data = mesh_from_shap_e(shap_e)
    assert mesh_data.up == "z"
    assert mesh_data.colors.shape == (len(shap_e.verts), 3)
    data = glb_export(mesh_data)

    info = media_inspect(data, format_hint="glb")
    assert (info.format, info.kind, info.meta["textured"]) == ("glb", "mesh", True)
    assert info.meta["faces"] == len(shap_e.faces)
    mesh = read_back(data)
    # The marching-cubes surface is closed and wound outwards; its volume is the ellipsoid's, within the
    # grid's resolution.
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.4 * 0.4 * 0.8, rel=0.08)
    # The long axis was z in Shap-E's frame; in the GLB it is y, the viewer's up.
    extents = mesh.bounds[1] - mesh.bounds[0]
    assert extents[1] == pytest.approx(1.6, rel=0.1)
    assert extents[0] == pytest.approx(0.8, rel=0.1) and extents[2] == pytest.approx(0.8, rel=0.1)
    # Red grows with Shap-E's height, which is now y.
    top, bottom = np.argmax(mesh.vertices[:, 1]), np.argmin(mesh.vertices[:, 1])
    assert mesh.visual.vertex_colors[top][0] > 200 > 50 > mesh.visual.vertex_colors[bottom][0]


def test_shap_e_half_precision_tensors_are_read_as_floats() -> None:
    shap_e = ellipsoid_mesh(grid=16)
    half = MeshDecoderOutput(
        verts=shap_e.verts.half(),
        faces=shap_e.faces,
        vertex_channels={k: v.to(torch.bfloat16) for k, v in shap_e.vertex_channels.items()},
    )
    info = media_inspect(glb_export(mesh_from_shap_e(half)), format_hint="glb")
    assert info.meta["textured"] is True
    assert info.meta["faces"] == len(shap_e.faces)


def test_shap_e_mesh_without_vertex_channels_exports_uncoloured() -> None:
    shap_e = ellipsoid_mesh(grid=16)
    shap_e.vertex_channels = None
    mesh_data = mesh_from_shap_e(shap_e)
    assert mesh_data.colors is None
    assert media_inspect(glb_export(mesh_data), format_hint="glb").meta["textured"] is False


def test_empty_shap_e_mesh_is_a_clear_error() -> None:
    empty = MeshDecoderOutput(
        verts=torch.zeros(0, 3), faces=torch.zeros(0, 3, dtype=torch.long), vertex_channels={}
    )
    with pytest.raises(MeshExportError, match="empty mesh"):
        glb_export(mesh_from_shap_e(empty))


def test_marching_cubes_table_covers_every_case_within_the_decoder_limits() -> None:
    cases, masks = marching_cubes_table()
    assert cases.shape == (256, 5, 3) and masks.shape == (256, 5)
    assert not masks[0].any() and not masks[255].any()  # all outside, all inside: no surface
    assert all(masks[case].any() for case in range(1, 255))
    assert int(cases.max()) <= 11
