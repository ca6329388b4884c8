"""Check that the diffusers image backend runs where it should: on the GPU when there is one, in float16.

Builds the tiny random Stable Diffusion pipeline of the tests (tests/support/tiny_diffusers.py), or takes
a real one with --model-path, and runs DiffusersImageBackend with device "auto" and dtype "auto" (or those
given), as a worker would. Prints the device and dtype the pipeline really ran in, the load time, the first
generation (CUDA warm-up included) and the median of the following ones, whether a seed repeats byte for
byte, and whether two threads sharing the pipeline both get their image. It runs on a CPU-only machine too
(then: cpu, float32).

    python benchmarks/gpu_image_check.py                       # the tiny pipeline, 64x64, 4 steps
    python benchmarks/gpu_image_check.py --dtype bfloat16      # another precision
    python benchmarks/gpu_image_check.py --model-path /models/sd15 --size 512 --steps 30

Exits non-zero when an image is missing, of the wrong size, or the run fails.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "a red cat on the sea"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model-path", help="a pipeline saved with save_pretrained (default: the tiny one)")
    parser.add_argument("--size", type=int, default=64, help="image width and height in pixels (default 64)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="timed generations after the first (default 3)")
    parser.add_argument("--device", default="auto", help="the backend's device setting (default auto)")
    parser.add_argument("--dtype", default="auto", help="the backend's dtype setting (default auto)")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from workers.backends import MediaRequest, backend_create

    with tempfile.TemporaryDirectory(prefix="arena-gpu-image-") as scratch:
        if args.model_path:
            model_path = Path(args.model_path)
        else:
            from tests.support.tiny_diffusers import tiny_pipeline_save

            model_path = tiny_pipeline_save(Path(scratch) / "tiny-sd")
        config = {
            "model_path": str(model_path),
            "device": args.device,
            "dtype": args.dtype,
            "steps": args.steps,
            "width": args.size,
            "height": args.size,
        }
        model = backend_create("diffusers_image", config)

        started = time.perf_counter()
        loaded = model.load()
        load_s = time.perf_counter() - started
        denoiser = getattr(loaded.pipeline, "unet", None) or getattr(loaded.pipeline, "transformer", None)
        ran_on = str(denoiser.device) if denoiser is not None else str(loaded.device)
        ran_in = str(denoiser.dtype if denoiser is not None else loaded.dtype).removeprefix("torch.")

        def generate(seed: int) -> tuple[bytes, float, list[float]]:
            steps: list[float] = []
            begun = time.perf_counter()
            result = model.generate(MediaRequest(prompt=PROMPT, seed=seed), steps.append)
            if loaded.device.type == "cuda":
                torch.cuda.synchronize(loaded.device)
            return result.data, time.perf_counter() - begun, steps

        first, first_s, progress = generate(seed=1)
        timings = [generate(seed=1)[1] for _ in range(args.repeat)]
        again = generate(seed=1)[0]
        other = generate(seed=2)[0]

        threaded: dict[int, bytes] = {}
        errors: list[str] = []

        def side(seed: int) -> None:
            try:
                threaded[seed] = generate(seed)[0]
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=side, args=(seed,)) for seed in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)

    with Image.open(io.BytesIO(first)) as image:
        image_ok = image.format == "PNG" and image.size == (args.size, args.size)
        image_desc = f"{image.format} {image.size[0]}x{image.size[1]} {image.mode}, {len(first):,} bytes"
    summary = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(loaded.device) if loaded.device.type == "cuda" else None,
        "device": ran_on,
        "dtype": ran_in,
        "model": "tiny random SD" if not args.model_path else "given",
        "config": {"device": args.device, "dtype": args.dtype},
        "size": args.size,
        "steps": args.steps,
        "load_s": round(load_s, 3),
        "first_generation_s": round(first_s, 3),
        "generation_s_median": round(statistics.median(timings), 3) if timings else None,
        "image": image_desc,
        "progress_calls": len(progress),
        "same_seed_identical": first == again,
        "other_seed_differs": first != other,
        "two_threads_ok": not errors and len(threaded) == 2 and threaded.get(1) == first,
    }
    print(f"device:      {ran_on} ({summary['gpu'] or 'no GPU'})")
    print(f"dtype:       {ran_in}")
    print(f"load:        {load_s:.3f} s")
    print(
        f"generation:  first {first_s:.3f} s, then median {summary['generation_s_median']} s "
        f"over {len(timings)} ({args.size}x{args.size}, {args.steps} steps)"
    )
    print(f"image:       {image_desc}")
    print(
        f"seeds:       same seed identical={summary['same_seed_identical']}, "
        f"other seed differs={summary['other_seed_differs']}"
    )
    print(f"threads:     two sides at once ok={summary['two_threads_ok']} {errors or ''}")
    print(json.dumps(summary))
    ok = image_ok and summary["other_seed_differs"] and summary["two_threads_ok"] and progress[-1] == 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
