"""The embedded default's demo galleries: small pre-generated image and 3D galleries in 3D Arena's layout.

`demo_gallery_write(directory)` writes directory/3d/ (six prompts, two of them image-to-3D, answered by a
textured mesh model, an untextured mesh model and a splat model) and directory/image/ (six text prompts,
three image models), made by the demo generators (workers.backends.demo_media) so the same code version
always writes the same bytes. `arena.demo.demo_seed` writes them once under settings.VAR_DIR and imports
them with the gallery service like any other gallery.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

from workers.backends.demo_media import demo_3d_make, demo_image_draw

# Bump when the generators or the lists below change: demo_gallery_ensure then writes the files again.
DEMO_GALLERY_VERSION = "1"
_MARKER = ".demo-gallery-version"

# (gallery id, text prompt or "", input image drawing or None)
DEMO_3D_PROMPTS: list[tuple[str, str, str | None]] = [
    ("01-teapot", "A ceramic teapot with a curved spout", None),
    ("02-chair", "A small wooden chair", None),
    ("03-robot", "A friendly toy robot", None),
    ("04-tree", "A pine tree in winter", None),
    ("05-mug", "", "mug"),
    ("06-lamp", "A desk lamp like the one in the picture", "lamp"),
]
DEMO_IMAGE_PROMPTS: list[tuple[str, str]] = [
    ("01-harbour", "A quiet harbour at dawn"),
    ("02-fox", "A red fox in the snow"),
    ("03-market", "A busy street market in the rain"),
    ("04-garden", "A rooftop garden full of tomatoes"),
    ("05-nebula", "A colourful nebula seen through a telescope"),
    ("06-kitchen", "A cosy kitchen with a cat on the windowsill"),
]
# Folder name (the model's display name) -> demo_3d config.
DEMO_3D_GALLERY_MODELS: dict[str, dict[str, str]] = {
    "Gallery Texel": {"style": "blob", "texture": "image"},  # textured
    "Gallery Clay": {"style": "twist", "texture": "none"},  # untextured
    "Gallery Sparkle": {"style": "splat"},  # Gaussian splats
}
# Folder name -> demo_image style.
DEMO_IMAGE_GALLERY_MODELS: dict[str, str] = {
    "Gallery Gradient": "gradient",
    "Gallery Waves": "waves",
    "Gallery Plaid": "plaid",
}


def _input_picture(kind: str) -> bytes:
    """A simple drawn photo for an image-to-3D prompt."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (256, 256), (245, 243, 238))
    draw = ImageDraw.Draw(img)
    if kind == "mug":
        draw.rounded_rectangle((70, 80, 170, 200), radius=12, fill=(40, 110, 190))
        draw.arc((150, 105, 210, 170), start=-90, end=90, fill=(40, 110, 190), width=14)
    else:  # lamp
        draw.polygon([(90, 70), (170, 70), (195, 130), (65, 130)], fill=(230, 180, 40))
        draw.rectangle((124, 130, 134, 200), fill=(70, 70, 70))
        draw.ellipse((85, 195, 175, 220), fill=(70, 70, 70))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def demo_gallery_write(directory: Path | str) -> Path:
    """Write the two demo galleries under `directory` (3d/ and image/); returns the directory."""
    root = Path(directory)
    three_d, image = root / "3d", root / "image"
    for gallery in (three_d, image):
        (gallery / "inputs").mkdir(parents=True, exist_ok=True)
    for key, text, picture in DEMO_3D_PROMPTS:
        picture_bytes = _input_picture(picture) if picture else None
        if text:
            (three_d / "inputs" / f"{key}.txt").write_text(text + "\n", encoding="utf-8")
        if picture_bytes:
            (three_d / "inputs" / f"{key}.png").write_bytes(picture_bytes)
        for folder, config in DEMO_3D_GALLERY_MODELS.items():
            data, fmt = demo_3d_make(
                text, config["style"], texture=config.get("texture", "vertex"), image=picture_bytes
            )
            out = three_d / "outputs" / folder
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{key}.{fmt}").write_bytes(data)
    for key, text in DEMO_IMAGE_PROMPTS:
        (image / "inputs" / f"{key}.txt").write_text(text + "\n", encoding="utf-8")
        for folder, style in DEMO_IMAGE_GALLERY_MODELS.items():
            out = image / "outputs" / folder
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{key}.png").write_bytes(demo_image_draw(text, style))
    (root / _MARKER).write_text(DEMO_GALLERY_VERSION)
    return root


def demo_gallery_ensure(directory: Path | str) -> Path:
    """The demo galleries under `directory`, written only when missing or from an older version. Written
    beside it first and moved into place, so an interrupted run never leaves half a gallery behind."""
    root = Path(directory)
    marker = root / _MARKER
    if marker.is_file() and marker.read_text().strip() == DEMO_GALLERY_VERSION:
        return root
    staging = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    demo_gallery_write(staging)
    shutil.rmtree(root, ignore_errors=True)
    try:
        staging.rename(root)
    except OSError:
        # Another process moved its copy in first: the same bytes, so keep that one.
        shutil.rmtree(staging, ignore_errors=True)
        if not (marker.is_file() and marker.read_text().strip() == DEMO_GALLERY_VERSION):
            raise
    return root
