"""Thumbnails of images, meshes and splats: PNGs of the asked size that show the object in its colours."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from arena.media import media_inspect, media_read
from arena.thumbnails import BACKGROUND, thumbnail_render, thumbnail_save
from tests.support.gallery import (
    glb_bytes,
    mesh_ply_bytes,
    png_bytes,
    splat_bytes,
    splat_ply_bytes,
    spz_bytes,
)


def _render(data: bytes, fmt: str, size: int = 256) -> np.ndarray:
    png = thumbnail_render(data, media_inspect(data, format_hint=fmt), size=size)
    assert png is not None
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (size, size)
    return np.asarray(image.convert("RGB")).reshape(-1, 3)


def _drawn(pixels: np.ndarray) -> np.ndarray:
    """The pixels that are not background."""
    return pixels[(pixels != np.array(BACKGROUND)).any(axis=1)]


def test_an_image_is_fitted_into_the_square_keeping_its_aspect():
    pixels = _render(png_bytes("red", size=(200, 100), shape="rectangle"), "png", size=128).reshape(
        128, 128, 3
    )
    # 200x100 becomes 128x64, centred: the top and bottom quarters are background.
    assert (pixels[:30] == BACKGROUND).all() and (pixels[-30:] == BACKGROUND).all()
    assert tuple(pixels[64, 64]) == (255, 0, 0)
    assert tuple(pixels[64, 2]) == (255, 255, 255)  # the picture's own white border reaches the edges


def test_a_mesh_with_vertex_colours_is_drawn_in_its_colours():
    drawn = _drawn(_render(glb_bytes("sphere", (200, 40, 40)), "glb"))
    assert len(drawn) > 256 * 256 // 4  # the sphere fills a good part of the square
    red, green, blue = drawn.mean(axis=0)
    assert red > 2 * green and red > 2 * blue  # shaded, but red


def test_face_coloured_mesh_ply_and_uncoloured_meshes_are_drawn():
    import trimesh

    box = trimesh.creation.box()
    box.visual.face_colors = np.tile([30, 30, 220, 255], (len(box.faces), 1)).astype(np.uint8)
    drawn = _drawn(_render(box.export(file_type="glb"), "glb"))
    assert drawn[:, 2].mean() > 2 * drawn[:, 0].mean()
    green = _drawn(_render(mesh_ply_bytes((40, 180, 40)), "ply"))
    assert green[:, 1].mean() > 2 * green[:, 0].mean()
    plain = _drawn(_render(mesh_ply_bytes(None), "ply"))
    assert len(plain) > 1000 and np.ptp(plain.mean(axis=1)) > 20  # grey clay with visible shading


@pytest.mark.parametrize(
    ("data", "fmt", "channel"),
    [
        (splat_ply_bytes(rgb=(0.9, 0.2, 0.1)), "ply", 0),  # f_dc_* decoded with the SH constant
        (spz_bytes(rgb=(30, 90, 220)), "spz", 2),  # packed spz colours decoded
    ],
    ids=["splat-ply", "spz"],
)
def test_splats_are_drawn_as_dots_in_their_decoded_colour(data, fmt, channel):
    drawn = _drawn(_render(data, fmt))
    assert len(drawn) > 2000
    means = drawn.mean(axis=0)
    assert means[channel] > 1.8 * min(means)


def test_a_splat_file_is_drawn_from_its_rgba_records():
    drawn = _drawn(_render(splat_bytes(500), "splat"))
    assert len(drawn) > 2000 and len(np.unique(drawn, axis=0)) > 50  # many different random colours


def test_a_large_mesh_is_drawn():
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=7)  # 327,680 faces; keep 100,000 of them
    mesh = trimesh.Trimesh(sphere.vertices, sphere.faces[:100_000], process=False)
    glb = mesh.export(file_type="glb")
    assert media_inspect(glb, format_hint="glb").meta["faces"] == 100_000
    assert len(_drawn(_render(glb, "glb"))) > 5000


@pytest.mark.django_db
def test_thumbnail_save_stores_a_png_under_a_random_name_or_nothing(settings, tmp_path, caplog):
    settings.MEDIA_ROOT = tmp_path
    data = glb_bytes()
    name = thumbnail_save(data, media_inspect(data, format_hint="glb"))
    assert name.startswith("thumbs/") and name.endswith(".png")
    assert Image.open(io.BytesIO(media_read(name))).size == (256, 256)
    assert name != thumbnail_save(data, media_inspect(data, format_hint="glb"))

    # A point-free splat: nothing to draw, so no thumbnail, and the log says why.
    empty_alpha = bytearray(splat_bytes(10))
    for i in range(10):
        empty_alpha[i * 32 + 27] = 0  # alpha byte of each record
    data = bytes(empty_alpha)
    assert thumbnail_save(data, media_inspect(data, format_hint="splat")) == ""
    assert "no visible splats" in caplog.text


def test_a_material_colour_a_texture_image_and_an_obj_are_drawn():
    import trimesh

    capsule = trimesh.creation.capsule()
    capsule.visual = trimesh.visual.TextureVisuals(
        material=trimesh.visual.material.PBRMaterial(baseColorFactor=[20, 200, 20, 255])
    )
    green = _drawn(_render(capsule.export(file_type="glb"), "glb"))
    assert green[:, 1].mean() > 3 * green[:, 0].mean()

    sphere = trimesh.creation.icosphere(subdivisions=3)
    texture = Image.new("RGB", (2, 1))
    texture.putpixel((0, 0), (250, 0, 0))
    texture.putpixel((1, 0), (0, 0, 250))
    u = (sphere.vertices[:, 0] > 0) * 0.5 + 0.25  # one half of the sphere red, the other blue
    sphere.visual = trimesh.visual.TextureVisuals(uv=np.c_[u, np.full(len(u), 0.5)], image=texture)
    drawn = _drawn(_render(sphere.export(file_type="glb"), "glb"))
    reds = (drawn[:, 0] > 2 * drawn[:, 2]).sum()
    blues = (drawn[:, 2] > 2 * drawn[:, 0]).sum()
    assert reds > 2000 and blues > 2000

    torus = trimesh.creation.torus(1.0, 0.3).export(file_type="obj").encode()
    assert len(_drawn(_render(torus, "obj"))) > 5000
