"""Check that the Shap-E 3D backend runs where it should: on the GPU when there is one, in float16.

Builds the tiny random Shap-E pipelines of the tests (tests/support/tiny_shap_e.py), text-to-3D and
image-to-3D, or takes a real one with --model-path, and runs ShapEBackend with device "auto" and dtype "auto"
(or those given), as a worker would. Prints, per mode, the device and dtype the prior and the renderer really
ran in, the load time, the first generation (CUDA warm-up included) and the median of the following ones,
split into diffusion, mesh decode and GLB export (read off the progress reports), the mesh's vertex and face
counts, whether it is coloured, and whether a seed repeats byte for byte. It runs on a CPU-only machine too
(then: cpu, float32).

    python benchmarks/gpu_3d_check.py                                  # tiny pipelines, grid 32, 4 steps
    python benchmarks/gpu_3d_check.py --grid-size 128                  # the production mesh resolution
    python benchmarks/gpu_3d_check.py --model-path /models/shap-e --mode text --steps 64 --grid-size 128

Exits non-zero when a mesh is missing or broken, or the run fails.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "a red chair"


def glb_describe(data: bytes) -> dict[str, Any]:
    """Vertex and face counts and colour of a GLB, by arena.media when Django is installed (the check every
    battle output passes), else by trimesh alone."""
    try:
        from django.conf import settings
    except ImportError:
        settings = None
    if settings is not None:
        if not settings.configured:
            settings.configure(ARENA_MAX_MEDIA_BYTES=100 * 1024 * 1024, ARENA_MAX_IMAGE_PIXELS=50_000_000)
        from arena.media import media_inspect

        info = media_inspect(data, format_hint="glb")
        return {"checked_by": "arena.media", "kind": info.kind, **info.meta}
    import trimesh

    scene = trimesh.load(io.BytesIO(data), file_type="glb", force="scene")
    meshes = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh)]
    return {
        "checked_by": "trimesh",
        "kind": "mesh",
        "vertices": sum(len(m.vertices) for m in meshes),
        "faces": sum(len(m.faces) for m in meshes),
        "textured": any(m.visual.kind == "vertex" for m in meshes),
        "bytes": len(data),
    }


def input_image() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(img).ellipse((48, 48, 208, 208), fill="red")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def mode_check(model_path: Path, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from workers.backends import MediaRequest, backend_create
    from workers.backends.shap_e import DECODE_SHARE, DIFFUSION_SHARE

    config = {
        "model_path": str(model_path),
        "mode": mode,
        "device": args.device,
        "dtype": args.dtype,
        "steps": args.steps,
        "grid_size": args.grid_size,
    }
    model = backend_create("shap_e", config)
    started = time.perf_counter()
    loaded = model.load()
    load_s = time.perf_counter() - started
    image = input_image()

    def generate(seed: int) -> tuple[bytes, dict[str, float]]:
        marks: list[tuple[float, float]] = []
        begun = time.perf_counter()
        request = (
            MediaRequest(prompt=PROMPT, seed=seed) if mode == "text" else MediaRequest(image=image, seed=seed)
        )
        result = model.generate(request, lambda fraction: marks.append((time.perf_counter(), fraction)))
        if loaded.device.type == "cuda":
            torch.cuda.synchronize(loaded.device)
        ended = time.perf_counter()
        diffused = max((t for t, f in marks if f <= DIFFUSION_SHARE + 1e-9), default=begun)
        decoded = max((t for t, f in marks if f <= DECODE_SHARE + 1e-9), default=diffused)
        phases = {
            "total_s": ended - begun,
            "diffusion_s": diffused - begun,
            "mesh_decode_s": decoded - diffused,
            "glb_export_s": ended - decoded,
            "progress_calls": len(marks),
        }
        return result.data, phases

    first, first_phases = generate(seed=1)
    repeats = [generate(seed=1) for _ in range(args.repeat)]
    other, _ = generate(seed=2)
    mesh = glb_describe(first)
    ok = mesh["kind"] == "mesh" and mesh["vertices"] > 0 and mesh["faces"] > 0
    renderer = loaded.pipeline.shap_e_renderer
    return {
        "mode": mode,
        "ok": ok,
        "device": str(loaded.pipeline.prior.device),
        "dtype": str(loaded.pipeline.prior.dtype).removeprefix("torch."),
        "renderer_device": str(renderer.mlp.device),
        "renderer_dtype": str(renderer.mlp.dtype).removeprefix("torch."),
        "load_s": round(load_s, 3),
        "first_generation": {k: round(v, 3) for k, v in first_phases.items()},
        "median_generation": {
            key: round(statistics.median(phases[key] for _, phases in repeats), 3)
            for key in ("total_s", "diffusion_s", "mesh_decode_s", "glb_export_s")
        }
        if repeats
        else None,
        "mesh": mesh,
        "same_seed_identical": all(data == first for data, _ in repeats) if repeats else None,
        "other_seed_differs": other != first,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--model-path", help="a Shap-E pipeline saved with save_pretrained (default: tiny ones)"
    )
    parser.add_argument("--mode", choices=("text", "image", "both"), default="both", help="default both")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (default 4)")
    parser.add_argument("--grid-size", type=int, default=32, help="marching-cubes grid (default 32)")
    parser.add_argument("--repeat", type=int, default=2, help="timed generations after the first (default 2)")
    parser.add_argument("--device", default="auto", help="the backend's device setting (default auto)")
    parser.add_argument("--dtype", default="auto", help="the backend's dtype setting (default auto)")
    args = parser.parse_args()
    if args.model_path and args.mode == "both":
        parser.error("--model-path holds one pipeline: give --mode text or --mode image")

    import torch

    modes = ["text", "image"] if args.mode == "both" else [args.mode]
    results = []
    with tempfile.TemporaryDirectory(prefix="arena-gpu-3d-") as scratch:
        for mode in modes:
            if args.model_path:
                model_path = Path(args.model_path)
            else:
                from tests.support.tiny_shap_e import tiny_shap_e_save

                model_path = tiny_shap_e_save(Path(scratch) / f"tiny-shap-e-{mode}", mode)
            try:
                results.append(mode_check(model_path, mode, args))
            except Exception as exc:  # report and carry on with the other mode
                results.append({"mode": mode, "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    summary = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "model": "given" if args.model_path else "tiny random Shap-E",
        "config": {
            "device": args.device,
            "dtype": args.dtype,
            "steps": args.steps,
            "grid_size": args.grid_size,
        },
        "results": results,
    }
    print(json.dumps(summary, indent=2))
    return 0 if results and all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
