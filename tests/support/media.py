"""Image and 3D files made in the test (Pillow, trimesh) and battles that show them."""

from __future__ import annotations

import io

import numpy as np
from django.utils import timezone

from arena.media import media_inspect, media_save
from arena.models import Battle, Generation, ModelEntry
from voting.models import Voter


def png_bytes(colour: str = "red", size: tuple[int, int] = (64, 48), shape: str = "ellipse") -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    box = (size[0] // 6, size[1] // 6, size[0] * 5 // 6, size[1] * 5 // 6)
    (draw.ellipse if shape == "ellipse" else draw.rectangle)(box, fill=colour)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def glb_bytes(shape: str = "box", colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A small coloured mesh as GLB: a box or an icosphere with per-vertex colours."""
    import trimesh

    mesh = trimesh.creation.box(extents=(1, 1, 1)) if shape == "box" else trimesh.creation.icosphere(2)
    mesh.visual.vertex_colors = np.tile([*colour, 255], (len(mesh.vertices), 1)).astype(np.uint8)
    return mesh.export(file_type="glb")


def splat_bytes(count: int = 200, seed: int = 0) -> bytes:
    """An antimatter15 .splat file: `count` gaussians on a unit sphere."""
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(count, 3)).astype("<f4")
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    records = np.zeros(
        count, dtype=[("xyz", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)]
    )
    records["xyz"] = xyz
    records["scale"] = 0.05
    records["rgba"] = rng.integers(0, 256, size=(count, 4), dtype=np.uint8)
    records["rot"] = (255, 128, 128, 128)
    return records.tobytes()


def media_model_make(slug: str, modality: str, **fields: object) -> ModelEntry:
    kind = "demo_image" if modality == "image" else "demo_3d"
    defaults = {"display_name": slug.replace("-", " ").title(), "modality": modality, "backend_kind": kind}
    return ModelEntry.objects.create(slug=slug, **(defaults | fields))


def media_battle_make(
    *,
    voter: Voter,
    modality: str,
    sides: dict[str, tuple[bytes, str]],
    prompt: str = "a small red object",
    models: tuple[ModelEntry, ModelEntry] | None = None,
) -> Battle:
    """A READY battle whose two sides are done with the given files (bytes, format) already stored."""
    if models is None:
        models = (
            media_model_make(f"{modality}-left-{Battle.objects.count()}", modality),
            media_model_make(f"{modality}-right-{Battle.objects.count()}", modality),
        )
    now = timezone.now()
    battle = Battle.objects.create(
        voter=voter,
        modality=modality,
        model_a=models[0],
        model_b=models[1],
        conversation=[prompt],
        status=Battle.Status.READY,
        ready_at=now,
    )
    for side, model in zip("ab", models, strict=True):
        data, fmt = sides[side]
        info = media_inspect(data, format_hint=fmt)
        Generation.objects.create(
            battle=battle,
            turn=0,
            side=side,
            model=model,
            status=Generation.Status.DONE,
            attempts=1,
            media_name=media_save(data, info),
            media_format=info.format,
            media_kind=info.kind,
            media_meta=info.meta,
            started_at=now,
            first_chunk_at=now,
            finished_at=now,
        )
    return battle


def client_voter(client: object) -> Voter:
    """The voter a test client's session acts as (the page gets one the same way on its first request)."""
    from voting.services import voter_create

    session = client.session  # type: ignore[attr-defined]
    if not session.session_key:
        session.save()
    voter = voter_create(session_key=session.session_key, ip="127.0.0.1")
    session["voter_id"] = voter.id
    session.save()
    return voter
