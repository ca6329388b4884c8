"""The transformers backend on whatever accelerator this machine has: placement, precision, concurrency.

Builds a tiny random Llama checkpoint (tests/support/tiny_models.py), loads it through the real backend with
device "auto" and dtype "auto", and prints where the weights went, their dtype, and the time of one answer
and of eight answers streamed at once from threads (as a worker with --pool threads runs battle sides).
Runs on a CPU too; on a GPU it checks that CUDA placement and half precision work end to end.

    python benchmarks/gpu_text_check.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from tests.support.tiny_models import tiny_model_save
    from workers.backends import GenerationParams, GenerationRequest, backend_create

    with tempfile.TemporaryDirectory() as tmp:
        path = tiny_model_save(Path(tmp) / "tiny-llama")
        backend = backend_create("transformers", {"model_path": str(path), "device": "auto", "dtype": "auto"})
        loaded = backend.load()
        weight = next(loaded.model.parameters())
        print(f"torch {torch.__version__}; cuda available: {torch.cuda.is_available()}")
        if torch.cuda.is_available():
            print(f"gpu: {torch.cuda.get_device_name(0)}")
        print(f"backend device: {loaded.device}; weights on {weight.device} as {weight.dtype}")

        def answer(seed: int) -> tuple[str, float]:
            params = GenerationParams(max_new_tokens=64, temperature=0.7, seed=seed)
            request = GenerationRequest(
                [{"role": "user", "content": "tell me a story about a robot"}], params
            )
            t0 = time.perf_counter()
            text = "".join(backend_create("transformers", backend.config).stream(request))
            return text, time.perf_counter() - t0

        answer(0)  # warm-up: kernels, allocator
        text, seconds = answer(1)
        again, _ = answer(1)
        print(
            f"one answer: {len(text.split())} words in {seconds * 1000:.1f} ms; "
            f"same seed, same text: {text == again}"
        )
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(answer, range(8)))
        wall = time.perf_counter() - t0
        print(
            f"eight concurrent answers: wall {wall * 1000:.1f} ms, "
            f"each {min(r[1] for r in results) * 1000:.1f}-{max(r[1] for r in results) * 1000:.1f} ms, "
            f"all non-empty: {all(r[0] for r in results)}"
        )
        # The same model through plain generate() (greedy, no streamer, no seeded sampler): what the backend's
        # own machinery adds per token is the difference.
        encoded = loaded.tokenizer("tell me a story about a robot", return_tensors="pt")
        ids = encoded["input_ids"].to(loaded.device)
        for attention in ("sdpa", "eager"):
            loaded.model.config._attn_implementation = attention
            with torch.inference_mode():
                loaded.model.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
                t0 = time.perf_counter()
                out = loaded.model.generate(
                    input_ids=ids, max_new_tokens=64, min_new_tokens=64, do_sample=False
                )
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
            tokens = out.shape[1] - ids.shape[1]
            per_token = (time.perf_counter() - t0) * 1000 / tokens
            print(f"plain generate, {attention} attention: {tokens} tokens, {per_token:.2f} ms per token")
        loaded.model.config._attn_implementation = "sdpa"
        if torch.cuda.is_available():
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
