"""What a voter's browser learns of a side's model from timing and size, before and after the defences.

An attacker who wants to find (and vote for) one model reads what the page receives, not what it draws: the
battle websocket's messages and when they arrive, the page's JSON, the files' bytes. This benchmark runs real
battles as a browser does (POST /api/battles, the battle websocket, the media URLs) against the embedded site:
uvicorn, the real Celery worker, the real backends on local servers (tests/support/openai_server.py configured
as models with different time to first token, speed, burstiness and chunking) and demo models. A simple
classifier (multinomial logistic regression written with numpy, stratified 5-fold cross-validation) is trained
to name the model on a side from each group of observations. Printed: its accuracy against chance,

- before: ARENA_STREAM_PACING and ARENA_MEDIA_REVEAL_TOGETHER off (what main did before issue 11);
- paced, END_WAIT 0: text paced and first chunks held, but each side flushes its rest when its own model is
  done;
- after: the defaults (workers/pacing.py, arena.disclosure "Timing and order");

and the cost: visible time to first token, time until the vote opens, worker time per side. For images, the
file's size is compared with what its pixels alone explain (the same pixels encoded with one fixed setting),
as the model made the file and as the site serves it (arena.media_clean encodes images again on the way in).

    python benchmarks/side_channels.py --quick    # a few minutes on 2 cores
    python benchmarks/side_channels.py            # three times the battles: tighter figures
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATES_OFF = [
    f"ARENA_{kind}_RATE_PER_{who}"
    for kind in ("BATTLE", "GENERATION", "VOTE")
    for who in ("VOTER", "IP", "NETWORK")
]
CONCURRENT_BATTLES = 3
WORDS = ["river", "mountain", "signal", "quiet", "amber", "lantern", "harvest", "orbit", "meadow", "copper"]


# --- the models ---------------------------------------------------------------------------------------------


def text_behaviours() -> dict[str, object]:
    """Serving stacks as they differ in the wild: time to first token, seconds per chunk, words per chunk."""
    from tests.support.openai_server import Behaviour

    return {
        "api-fast": Behaviour(first_token_latency=0.25, chunk_delay=0.008, jitter=0.3),
        "api-batched": Behaviour(first_token_latency=0.35, chunk_delay=0.03, words_per_chunk=4, jitter=0.2),
        "gpu-local": Behaviour(first_token_latency=0.12, chunk_delay=0.02, jitter=0.1),
        "bursty": Behaviour(first_token_latency=0.5, chunk_delay=0.1, words_per_chunk=10, jitter=0.5),
        # About 90 characters a second: slower than the pace (ARENA_STREAM_TICK_CHARS a tick), so its stream
        # shows its own speed; so would its text, arriving, to anyone watching.
        "slower-than-pace": Behaviour(first_token_latency=0.15, chunk_delay=0.07, jitter=0.1),
    }


# Demo models: their own words (a persona) at their own pace.
DEMO_TEXT = {
    "demo-concise": {"persona": "concise", "delay": 0.01, "first_token_delay": 0.2},
    "demo-thorough": {"persona": "thorough", "delay": 0.02, "first_token_delay": 0.3},
}
IMAGE_SIZE = "96x96"


def image_behaviours() -> dict[str, object]:
    """Two image services drawing the same pictures (same prompt, same pixels) with different encoders."""
    from tests.support.openai_server import Behaviour

    return {
        "img-quick": Behaviour(first_token_latency=0.3, image_kind="scene", png_compress_level=1),
        "img-slow": Behaviour(first_token_latency=0.9, image_kind="scene", png_compress_level=9),
    }


DEMO_IMAGE = {"demo-stripes": "stripes", "demo-circles": "circles"}


def models_create(base_url: str) -> None:
    from arena.models import ModelEntry

    for name in text_behaviours():
        config = {"base_url": base_url, "model": name}
        ModelEntry.objects.create(slug=name, display_name=name, backend_kind="openai", backend_config=config)
    for slug, config in DEMO_TEXT.items():
        ModelEntry.objects.create(slug=slug, display_name=slug, backend_kind="demo", backend_config=config)
    for name in image_behaviours():
        config = {"base_url": base_url, "model": name, "size": IMAGE_SIZE}
        ModelEntry.objects.create(
            slug=name,
            display_name=name,
            modality="image",
            backend_kind="openai_images",
            backend_config=config,
        )
    for slug, style in DEMO_IMAGE.items():
        ModelEntry.objects.create(
            slug=slug,
            display_name=slug,
            modality="image",
            backend_kind="demo_image",
            backend_config={"style": style},
        )


def configure() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "arena.settings"
    os.environ["ARENA_VAR_DIR"] = tempfile.mkdtemp(prefix="arena-side-channels-")
    for name in RATES_OFF:  # one client starts every battle: limits would stop the run, not measure it
        os.environ[name] = "off"
    os.environ.setdefault("ARENA_DEMO_DELAY", "0.03")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


# --- driving battles as a browser does ----------------------------------------------------------------------


@dataclass
class Run:
    """One battle as the browser saw it: every websocket message with its arrival time (seconds since the POST
    was sent), and the bytes of each side's file (image battles)."""

    code: str
    modality: str
    events: list[tuple[float, dict]]
    files: dict[str, bytes] = field(default_factory=dict)


def prompt_make(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 70)))


async def battle_run(client: object, url: str, modality: str, prompt: str) -> Run:
    import websockets

    headers = {"X-CSRFToken": client.cookies["csrftoken"], "Origin": url}
    t0 = time.perf_counter()
    response = await client.post(
        "/api/battles", json={"prompt": prompt, "modality": modality}, headers=headers
    )
    response.raise_for_status()
    code = response.json()["code"]
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    events: list[tuple[float, dict]] = []
    ws_url = url.replace("http", "ws") + f"/ws/battle/{code}/"
    async with websockets.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": url}) as ws:
        while not events or events[-1][1]["type"] != "status":
            event = json.loads(await asyncio.wait_for(ws.recv(), 60))
            events.append((time.perf_counter() - t0, event))
    run = Run(code, modality, events)
    if modality != "text":
        state = (await client.get(f"/api/battles/{code}")).json()
        for side in "ab":
            media = state["turns"][0][side]["media"]
            if media:
                run.files[side] = (await client.get(media["url"])).content
    return run


async def battles_run(url: str, modality: str, count: int, seed: int) -> list[Run]:
    import httpx

    rng = random.Random(seed)
    prompts = [prompt_make(rng) for _ in range(count)]
    gate = asyncio.Semaphore(CONCURRENT_BATTLES)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await client.get("/")

        async def one(prompt: str) -> Run:
            async with gate:
                return await battle_run(client, url, modality, prompt)

        # The first battle starts the session (its voter); concurrent first POSTs would each start their own.
        first = await one(prompts[0])
        return [first, *await asyncio.gather(*(one(p) for p in prompts[1:]))]


# --- what the browser observed, per side --------------------------------------------------------------------


def _side_times(events: list[tuple[float, dict]], side: str, kind: str) -> list[float]:
    return [t for t, e in events if e["type"] == kind and e.get("side") == side]


def text_features(run: Run, side: str) -> dict[str, float]:
    other = "b" if side == "a" else "a"
    chunks = [(t, e) for t, e in run.events if e["type"] == "chunk" and e["side"] == side]
    if not chunks:
        return {}
    times = np.array([t for t, _ in chunks])
    sizes = np.array([len(e["text"]) for _, e in chunks], dtype=float)
    gaps = np.diff(times) if len(times) > 1 else np.array([0.0])
    done = (_side_times(run.events, side, "done") or [times[-1]])[0]
    other_done = (_side_times(run.events, other, "done") or [done])[0]
    started = _side_times(run.events, side, "started")
    return {
        "ttft": times[0],
        "started": started[0] if started else np.nan,
        "size_mean": sizes.mean(),
        "size_cv": sizes.std() / sizes.mean(),
        "size_max": sizes.max(),
        "size_first": sizes[0],
        "chunks_per_char": len(sizes) / sizes.sum(),
        "gap_median": float(np.median(gaps)),
        "gap_cv": float(gaps.std() / (gaps.mean() + 1e-6)),
        "gap_p90": float(np.percentile(gaps, 90)),
        "rate": sizes.sum() / (times[-1] - times[0] + 1e-3),
        "duration": times[-1] - times[0],
        "done": done,
        "done_vs_other": done - other_done,
        "length": sizes.sum(),
    }


TEXT_GROUPS = {
    "first-token time": ["ttft", "started"],
    "chunk sizes": ["size_mean", "size_cv", "size_max", "size_first", "chunks_per_char"],
    "chunk cadence": ["gap_median", "gap_cv", "gap_p90", "rate"],
    "end and finishing order": ["duration", "done", "done_vs_other"],
    "all of the above": [
        "ttft", "started", "size_mean", "size_cv", "size_max", "size_first", "chunks_per_char",
        "gap_median", "gap_cv", "gap_p90", "rate", "duration", "done", "done_vs_other",
    ],
    "answer length (the output itself)": ["length"],
}  # fmt: skip


def _pixels_encoded(data: bytes) -> tuple[int, int, int]:
    """Width, height, and the size of the same pixels encoded with one fixed setting (what the picture
    explains)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        pixels = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        out = io.BytesIO()
        pixels.save(out, format="PNG", compress_level=6)
        return image.width, image.height, len(out.getvalue())


def image_features(run: Run, side: str, made: bytes | None) -> dict[str, float]:
    other = "b" if side == "a" else "a"
    done = _side_times(run.events, side, "done")
    other_done = _side_times(run.events, other, "done")
    progress = [(t, e["fraction"]) for t, e in run.events if e["type"] == "progress" and e["side"] == side]
    fractions = sorted({f for _, f in progress if 0 < f < 1})
    served = run.files.get(side, b"")
    width, height, canonical = _pixels_encoded(served) if served else (0, 0, 1)
    features = {
        "done": done[0] if done else np.nan,
        "done_vs_other": (done[0] - other_done[0]) if done and other_done else 0.0,
        "progress_events": len(progress),
        "progress_first": progress[0][0] if progress else np.nan,
        "progress_smallest": fractions[0] if fractions else 1.0,
        "width": width,
        "height": height,
        "pixels_bytes": canonical,
        "served_bytes": len(served),
        "served_beyond_pixels": np.log(max(len(served), 1) / canonical),
    }
    if made:
        features["made_bytes"] = len(made)
        features["made_beyond_pixels"] = np.log(len(made) / _pixels_encoded(made)[2])
    return features


IMAGE_TIMING_GROUPS = {
    "finishing time and order": ["done", "done_vs_other"],
    "progress events": ["progress_events", "progress_first", "progress_smallest"],
}
IMAGE_SIZE_GROUPS = {
    "the picture (size, pixels)": ["width", "height", "pixels_bytes"],
    "file bytes beyond the pixels, as made": ["made_beyond_pixels"],
    "file bytes beyond the pixels, as served": ["served_beyond_pixels"],
}


# --- the classifier -----------------------------------------------------------------------------------------


def _prepare(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed log of every feature, standardised on the training fold; a missing value becomes the mean."""
    train, test = (np.sign(x) * np.log1p(np.abs(x)) for x in (train, test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature never observed: all missing
        mean = np.nanmean(train, axis=0)
        std = np.nanstd(train, axis=0)
    std[~np.isfinite(std) | (std < 1e-9)] = 1.0
    mean[~np.isfinite(mean)] = 0.0
    train, test = ((np.where(np.isnan(x), mean, x) - mean) / std for x in (train, test))
    return train, test


def softmax_fit(x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-2, steps: int = 400) -> np.ndarray:
    """Multinomial logistic regression by gradient descent; returns the weights (bias in the last row)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros((xb.shape[1], classes))
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        p = _softmax(xb @ w)
        w -= 0.5 * (xb.T @ (p - onehot) / len(x) + l2 * w)
    return w


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


@dataclass
class Dataset:
    """One row of observations per side, its model (the label), its battle and its side."""

    rows: list[dict[str, float]]
    labels: list[str]
    battles: list[str]
    sides: list[str]

    def matrix(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        classes = sorted(set(self.labels))
        x = np.array([[row.get(n, np.nan) for n in names] for row in self.rows], dtype=float)
        return x, np.array([classes.index(label) for label in self.labels])

    def chance(self) -> float:
        """Always guessing the most frequent model."""
        counts: dict[str, int] = defaultdict(int)
        for label in self.labels:
            counts[label] += 1
        return max(counts.values()) / len(self.labels)

    def subset(self, keep: Callable[[str], bool]) -> Dataset:
        """The battles whose two models both pass `keep`."""
        pairs = defaultdict(list)
        for i, code in enumerate(self.battles):
            pairs[code].append(i)
        rows = [
            i for members in pairs.values() if all(keep(self.labels[i]) for i in members) for i in members
        ]
        return Dataset(*([getattr(self, f)[i] for i in rows] for f in ("rows", "labels", "battles", "sides")))


@dataclass(frozen=True)
class Score:
    name: float  # the model on a side, named among all (chance: the most frequent model)
    side: float  # both models of a battle known: which one is on side a (chance 50%)


def evaluate(data: Dataset, names: list[str], folds: int = 5, seed: int = 0) -> Score:
    """Cross-validated by battle (both sides of a battle in the same fold): the share of sides whose model the
    classifier names, and the share of battles (two different models) whose sides it tells apart."""
    x, y = data.matrix(names)
    codes = sorted(set(data.battles))
    fold_of_code = dict(zip(codes, np.random.default_rng(seed).permutation(len(codes)) % folds, strict=True))
    fold_of = np.array([fold_of_code[c] for c in data.battles])
    proba = np.zeros((len(y), int(y.max()) + 1))
    for k in range(folds):
        test = fold_of == k
        if not test.any() or test.all():
            continue
        train_x, test_x = _prepare(x[~test], x[test])
        w = softmax_fit(train_x, y[~test], proba.shape[1])
        proba[test] = _softmax(np.hstack([test_x, np.ones((len(test_x), 1))]) @ w)
    named = float((proba.argmax(axis=1) == y).mean())
    by_battle: dict[str, dict[str, int]] = defaultdict(dict)
    for i, (code, side) in enumerate(zip(data.battles, data.sides, strict=True)):
        by_battle[code][side] = i
    logp = np.log(proba + 1e-12)
    told = []
    for sides in by_battle.values():
        a, b = sides.get("a"), sides.get("b")
        if a is None or b is None or y[a] == y[b]:
            continue
        right, swapped = logp[a, y[a]] + logp[b, y[b]], logp[a, y[b]] + logp[b, y[a]]
        told.append(1.0 if right > swapped else 0.5 if right == swapped else 0.0)
    return Score(named, float(np.mean(told)) if told else float("nan"))


def dataset(runs: list[Run], features: Callable[[Run, str], dict[str, float]]) -> Dataset:
    from arena.models import Battle

    battles = {
        b.code: b
        for b in Battle.objects.filter(code__in=[r.code for r in runs]).select_related("model_a", "model_b")
    }
    data = Dataset([], [], [], [])
    for run in runs:
        battle = battles[run.code]
        for side, model in (("a", battle.model_a), ("b", battle.model_b)):
            row = features(run, side)
            if row:
                data.rows.append(row)
                data.labels.append(model.slug)
                data.battles.append(run.code)
                data.sides.append(side)
    return data


# --- costs --------------------------------------------------------------------------------------------------


def costs(runs: list[Run]) -> dict[str, float]:
    """Visible first chunk, vote open (status ready) and worker seconds per side, medians in seconds."""
    from arena.models import Generation

    first = [min(_side_times(r.events, s, "chunk") or [np.nan]) for r in runs for s in "ab"]
    ready = [next(t for t, e in r.events if e["type"] == "status") for r in runs]
    held = [
        (g.finished_at - g.started_at).total_seconds()
        for g in Generation.objects.filter(battle__code__in=[r.code for r in runs], finished_at__isnull=False)
    ]
    return {
        "first chunk": float(np.nanmedian(first)),
        "vote opens": statistics.median(ready),
        "worker per side": statistics.median(held),
    }


# --- the run ------------------------------------------------------------------------------------------------


CONDITIONS = {
    "before": {"ARENA_STREAM_PACING": False, "ARENA_MEDIA_REVEAL_TOGETHER": False},
    "paced, END_WAIT 0": {"ARENA_STREAM_PACING": True, "ARENA_STREAM_END_WAIT_MS": 0},
    "after": {"ARENA_STREAM_PACING": True, "ARENA_MEDIA_REVEAL_TOGETHER": True},
}


def condition_apply(name: str, defaults: dict[str, object]) -> None:
    from django.conf import settings

    for key, value in {**defaults, **CONDITIONS[name]}.items():
        setattr(settings, key, value)


def made_bytes(run: Run, side: str, slug: str) -> bytes | None:
    """The file as the model made it (before the site encoded it again): drawn again from the same prompt."""
    from arena.models import Battle
    from tests.support.openai_server import image_png
    from workers.backends.demo_media import demo_image_draw

    prompt = Battle.objects.get(code=run.code).conversation[0]
    if slug in DEMO_IMAGE:
        return demo_image_draw(prompt, DEMO_IMAGE[slug])
    behaviour = image_behaviours()[slug]
    width, height = (int(v) for v in IMAGE_SIZE.split("x"))
    return image_png(
        prompt, width, height, kind=behaviour.image_kind, compress_level=behaviour.png_compress_level
    )


def table(title: str, results: dict[str, dict[str, Score]], chance: float) -> None:
    names = list(next(iter(results.values())))
    print(f"\n{title}")
    print(f"  accuracy naming the model on a side (chance {chance:.0%}) / telling which side is which when")
    print("  both models of the battle are known (chance 50%)")
    print(f"  {'observations':<40}" + "".join(f"{c:>22}" for c in results))
    for name in names:
        cells = "".join(f"{results[c][name].name:>12.0%} / {results[c][name].side:>4.0%}" for c in results)
        print(f"  {name:<40}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer battles: a few minutes on 2 cores")
    args = parser.parse_args()
    text_battles, image_battles = (42, 20) if args.quick else (126, 60)
    configure()

    from django.conf import settings

    from arena.inprocess import worker_start
    from tests.support.asgi import AsgiServer
    from tests.support.openai_server import OpenAIServer

    defaults = {
        k: getattr(settings, k)
        for k in ("ARENA_STREAM_PACING", "ARENA_MEDIA_REVEAL_TOGETHER", "ARENA_STREAM_END_WAIT_MS")
    }
    behaviours = {**text_behaviours(), **image_behaviours()}
    started = time.monotonic()
    text_runs: dict[str, list[Run]] = {}
    image_runs: dict[str, list[Run]] = {}
    with OpenAIServer(models=behaviours) as server:
        models_create(server.base_url)
        worker = worker_start(beat=False, concurrency=8)
        with AsgiServer() as web:
            asyncio.run(battles_run(web.url, "text", 3, seed=99))  # warm-up: imports, connections
            for name in CONDITIONS:
                condition_apply(name, defaults)
                text_runs[name] = asyncio.run(battles_run(web.url, "text", text_battles, seed=1))
                if name != "paced, END_WAIT 0":  # the end wait is a text setting
                    image_runs[name] = asyncio.run(battles_run(web.url, "image", image_battles, seed=2))
                print(f"  {name}: battles done after {time.monotonic() - started:.0f} s", file=sys.stderr)
        worker.stop()

    print(
        f"Side channels: {text_battles} text and {image_battles} image battles per condition, "
        f"{CONCURRENT_BATTLES} at a time; tick {settings.ARENA_STREAM_TICK_MS} ms, "
        f"{settings.ARENA_STREAM_TICK_CHARS} characters a tick, "
        f"start wait {settings.ARENA_STREAM_START_WAIT_MS} ms, "
        f"end wait {defaults['ARENA_STREAM_END_WAIT_MS']} ms"
    )
    text_report(text_runs)
    image_report(image_runs)
    print(f"\n(total {time.monotonic() - started:.0f} s)")


def text_report(text_runs: dict[str, list[Run]]) -> None:
    data = {name: dataset(runs, text_features) for name, runs in text_runs.items()}
    results = {
        name: {group: evaluate(ds, cols) for group, cols in TEXT_GROUPS.items()} for name, ds in data.items()
    }
    first = next(iter(data.values()))
    table(f"Text: {len(set(first.labels))} models", results, first.chance())
    everything = TEXT_GROUPS["all of the above"]
    fast_enough = {name: ds.subset(lambda label: label != "slower-than-pace") for name, ds in data.items()}
    cells = "".join(
        f"{(sc := evaluate(ds, everything)).name:>12.0%} / {sc.side:>4.0%}" for ds in fast_enough.values()
    )
    print(f"  {'all, battles of models faster than pace':<40}{cells}")
    print("\n  cost (medians, seconds)" + "".join(f"{c:>22}" for c in text_runs))
    spent = {name: costs(runs) for name, runs in text_runs.items()}
    for key in next(iter(spent.values())):
        print(f"  {key:<22}" + "".join(f"{spent[c][key]:>22.2f}" for c in text_runs))
    print("\n  visible first chunk per model (median s)" + "".join(f"{c:>22}" for c in text_runs))
    for model in sorted(set(first.labels)):
        cells = []
        for ds in data.values():
            values = [row["ttft"] for row, label in zip(ds.rows, ds.labels, strict=True) if label == model]
            cells.append(f"{statistics.median(values):>22.2f}")
        print(f"  {model:<40}" + "".join(cells))


def image_report(image_runs: dict[str, list[Run]]) -> None:
    from arena.models import Battle

    codes = [r.code for runs in image_runs.values() for r in runs]
    labels = {
        b.code: {"a": b.model_a.slug, "b": b.model_b.slug}
        for b in Battle.objects.filter(code__in=codes).select_related("model_a", "model_b")
    }

    def features(run: Run, side: str) -> dict[str, float]:
        return image_features(run, side, made_bytes(run, side, labels[run.code][side]))

    data = {name: dataset(runs, features) for name, runs in image_runs.items()}
    groups = {**IMAGE_TIMING_GROUPS, **IMAGE_SIZE_GROUPS}
    results = {name: {g: evaluate(ds, cols) for g, cols in groups.items()} for name, ds in data.items()}
    first = next(iter(data.values()))
    table(f"Image: {len(set(first.labels))} models", results, first.chance())
    after = data["after"]
    print("\n  file sizes per model (medians): bytes as made, as served, and the size of its pixels encoded")
    print("  with one fixed setting; as made and as served, the bytes beyond what the pixels explain")
    for model in sorted(set(after.labels)):
        rows = [row for row, label in zip(after.rows, after.labels, strict=True) if label == model]
        made, served, pixels, made_x, served_x = (
            statistics.median(r[k] for r in rows)
            for k in (
                "made_bytes",
                "served_bytes",
                "pixels_bytes",
                "made_beyond_pixels",
                "served_beyond_pixels",
            )
        )
        print(
            f"  {model:<16} {made:>8,.0f} {served:>8,.0f} {pixels:>8,.0f}"
            f"   {np.expm1(made_x):>+7.1%} {np.expm1(served_x):>+7.1%}"
        )


if __name__ == "__main__":
    main()
