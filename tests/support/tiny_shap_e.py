"""Tiny, randomly initialised Shap-E pipelines built on the spot, for tests that load real diffusers weights.

Nothing is downloaded. The components follow diffusers' own fast tests for ShapEPipeline and
ShapEImg2ImgPipeline (a one-layer PriorTransformer, a small CLIP text or vision encoder, an 8-wide
ShapERenderer, the Heun scheduler Shap-E ships with), and are saved with `save_pretrained` so the backend
under test loads them exactly as it would load openai/shap-e from disk.

Two things a random initialisation does not give and a real checkpoint has:

- The CLIP tokenizer's files. A small byte-level BPE vocabulary is written here (vocab.json + merges.txt):
  every printable byte as a symbol, with and without CLIP's end-of-word marker, plus a few merges.
- The marching-cubes lookup table. ShapERenderer keeps it in two buffers of its mesh decoder (`cases`,
  `masks`), created as zeros and filled from the checkpoint; with zeros every cube yields no triangle and
  every mesh is empty. `marching_cubes_table` computes the table (same edge numbering and corner bits as
  diffusers' MeshDecoder) so the tiny renderer turns its signed-distance field into real triangles.

With the default seed the random model's field changes sign inside the unit cube, so the pipeline yields a
non-empty coloured mesh; `empty_surface=True` biases the field negative everywhere (no surface at all), which
is what a broken or unlucky real model can also produce.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEImg2ImgPipeline, ShapEPipeline
from diffusers.pipelines.shap_e import ShapERenderer
from diffusers.pipelines.shap_e.renderer import _sanitize_name
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
)

from tests.support.tiny_diffusers import bytes_to_unicode

EMBED_DIM = 16  # the prior's latent width (renderer d_latent) and the CLIP encoders' width
NUM_EMBEDDINGS = 32  # latent vectors; the renderer's four projected layers take RENDERER_DIM each
RENDERER_DIM = 8
IMAGE_SIZE = 32
TOKENS = 16  # the tokenizer's model_max_length (and the text encoder's positions)

FIRST_LAYER = "nerstf.mlp.0.weight"
# NeRF position encoding of (x, y, z): the raw coordinates (0-2), then sin (3-47) and cos (48-92) of 15
# octaves, three channels per octave. Kept: the coordinates and the two lowest octaves.
LOW_FREQUENCY_CHANNELS = [0, 1, 2, *range(3, 9), *range(48, 54)]

# Cube corner c sits at (c & 1, c >> 1 & 1, c >> 2 & 1), as in MeshDecoder's bitmask; the twelve edges are
# numbered as in diffusers' `_create_flat_edge_indices`: four along x, four along y, four along z.
CUBE_EDGES = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7))


def marching_cubes_table() -> tuple[torch.Tensor, torch.Tensor]:
    """(cases [256, 5, 3] edge indices, masks [256, 5]) for MeshDecoder, computed rather than copied.

    For each of the 256 inside/outside patterns the surface crosses the cube's sign-changing edges. On each
    face the crossings pair up into segments (a face with all four edges crossed separates its two inside
    corners, a rule that depends only on the face, so neighbouring cubes agree and the surface has no holes);
    the segments close into loops, and each loop is fanned into triangles wound counter-clockwise seen from
    outside (the field is positive inside).
    """
    edge_index = {edge: i for i, edge in enumerate(CUBE_EDGES)}
    corner = np.array([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], dtype=float)
    faces = []
    for axis in range(3):
        u, w = (a for a in range(3) if a != axis)
        for side in (0, 1):
            faces.append(
                [(side << axis) | (du << u) | (dw << w) for du, dw in ((0, 0), (1, 0), (1, 1), (0, 1))]
            )

    def edge_of(a: int, b: int) -> int:
        return edge_index[(min(a, b), max(a, b))]

    cases = torch.zeros(256, 5, 3, dtype=torch.long)
    masks = torch.zeros(256, 5, dtype=torch.bool)
    for case in range(256):
        inside = [(case >> c) & 1 for c in range(8)]
        links: dict[int, list[int]] = {}
        for quad in faces:
            ring = [(quad[i], quad[(i + 1) % 4]) for i in range(4)]
            crossed = [edge_of(a, b) for a, b in ring if inside[a] != inside[b]]
            if len(crossed) == 2:
                segments = [tuple(crossed)]
            elif len(crossed) == 4:
                segments = [
                    (edge_of(quad[i - 1], quad[i]), edge_of(quad[i], quad[(i + 1) % 4]))
                    for i in range(4)
                    if inside[quad[i]]
                ]
            else:
                segments = []
            for a, b in segments:
                links.setdefault(a, []).append(b)
                links.setdefault(b, []).append(a)
        triangles: list[list[int]] = []
        seen: set[int] = set()
        for start in sorted(links):
            if start in seen:
                continue
            loop, previous, current = [start], None, start
            seen.add(start)
            while True:
                following = [n for n in links[current] if n != previous and n not in seen]
                if not following:
                    break
                previous, current = current, following[0]
                loop.append(current)
                seen.add(current)
            for i in range(1, len(loop) - 1):
                triangle = [loop[0], loop[i], loop[i + 1]]
                points = [corner[list(CUBE_EDGES[e])].mean(axis=0) for e in triangle]
                normal = np.cross(points[1] - points[0], points[2] - points[0])
                outward = sum(
                    (corner[b] - corner[a]) * (1 if inside[a] else -1)
                    for a, b in (CUBE_EDGES[e] for e in triangle)
                )
                if normal @ outward < 0:
                    triangle = [triangle[0], triangle[2], triangle[1]]
                triangles.append(triangle)
        if len(triangles) > 5:
            raise AssertionError(
                f"marching-cubes case {case} needs {len(triangles)} triangles; the decoder holds 5"
            )
        for j, triangle in enumerate(triangles):
            cases[case, j] = torch.tensor(triangle)
            masks[case, j] = True
    return cases, masks


def tiny_clip_tokenizer(directory: Path) -> CLIPTokenizer:
    """A CLIP tokenizer over a hand-written byte-level BPE vocabulary, loaded from the files it writes."""
    symbols = list(bytes_to_unicode().values())
    vocab_list = ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)]
    merges = ["t h", "th e</w>", "a n", "an d</w>", "c h", "a i", "ai r</w>", "r e"]
    for merge in merges:
        merged = merge.replace(" ", "")
        if merged not in vocab_list:
            vocab_list.append(merged)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab_list)}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(
        vocab=str(directory / "vocab.json"), merges=str(directory / "merges.txt"), model_max_length=TOKENS
    )


def _prior(*, image: bool) -> PriorTransformer:
    return PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=16,
        embedding_dim=EMBED_DIM,
        num_embeddings=NUM_EMBEDDINGS,
        embedding_proj_dim=EMBED_DIM,
        time_embed_dim=EMBED_DIM * 4,
        num_layers=1,
        clip_embed_dim=EMBED_DIM * 2,  # mean and variance, split by the pipeline
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        embedding_proj_norm_type="layer" if image else None,
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )


def _renderer(*, empty_surface: bool) -> ShapERenderer:
    renderer = ShapERenderer(
        param_shapes=((RENDERER_DIM, 93), (RENDERER_DIM, 8), (RENDERER_DIM, 8), (RENDERER_DIM, 8)),
        d_latent=EMBED_DIM,
        d_hidden=RENDERER_DIM,
        n_output=12,
        background=(0.1, 0.1, 0.1),
    )
    cases, masks = marching_cubes_table()
    renderer.mesh_decoder.cases.copy_(cases)
    renderer.mesh_decoder.masks.copy_(masks)
    with torch.no_grad():
        # A random MLP over all 15 octaves of NeRF's position encoding is noise down to the grid spacing:
        # nearly every cube holds a sliver of surface and a 32^3 grid yields ~70k faces. Shap-E's first layer
        # is projected from the latent; zeroing its weights on the high octaves keeps the field smooth, so
        # the tiny model makes a lumpy solid with a few thousand faces at grid 16.
        first = renderer.params_proj.projections[_sanitize_name(FIRST_LAYER)]
        high = torch.ones(93, dtype=torch.bool)
        high[LOW_FREQUENCY_CHANNELS] = False
        first.norm.weight[high] = 0.0
        first.norm.bias[high] = 0.0
        first.proj.bias.view(RENDERER_DIM, 93)[:, high] = 0.0
    if empty_surface:
        # The signed distance is tanh(output 0 of the last layer); a large negative bias puts every grid point
        # outside the shape, so marching cubes finds no surface.
        with torch.no_grad():
            renderer.mlp.mlp[-1].bias[0] = -1e4
    return renderer


def _scheduler() -> HeunDiscreteScheduler:
    # openai/shap-e's scheduler configuration.
    return HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )


def tiny_shap_e_build(
    mode: str = "text", *, seed: int = 0, empty_surface: bool = False, workdir: Path
) -> ShapEPipeline | ShapEImg2ImgPipeline:
    """A tiny pipeline for `mode` "text" (ShapEPipeline) or "image" (ShapEImg2ImgPipeline); `workdir` receives
    the tokenizer's source files."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = _prior(image=mode == "image")
        renderer = _renderer(empty_surface=empty_surface)
        if mode == "text":
            tokenizer = tiny_clip_tokenizer(workdir / "tokenizer-source")
            text_encoder = CLIPTextModelWithProjection(
                CLIPTextConfig(
                    vocab_size=len(tokenizer),
                    hidden_size=EMBED_DIM,
                    projection_dim=EMBED_DIM,
                    intermediate_size=37,
                    num_attention_heads=4,
                    num_hidden_layers=2,
                    max_position_embeddings=TOKENS,
                    bos_token_id=tokenizer.bos_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id,
                )
            ).eval()
            return ShapEPipeline(
                prior=prior,
                text_encoder=text_encoder,
                tokenizer=tokenizer,
                scheduler=_scheduler(),
                shap_e_renderer=renderer,
            )
        if mode == "image":
            image_encoder = CLIPVisionModel(
                CLIPVisionConfig(
                    hidden_size=EMBED_DIM,
                    projection_dim=EMBED_DIM,
                    intermediate_size=37,
                    num_attention_heads=4,
                    num_hidden_layers=2,
                    num_channels=3,
                    image_size=IMAGE_SIZE,
                    patch_size=8,
                )
            ).eval()
            image_processor = CLIPImageProcessor(
                size={"shortest_edge": IMAGE_SIZE},
                crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                do_center_crop=True,
                do_normalize=True,
                do_resize=True,
                resample=3,
                image_mean=[0.48145466, 0.4578275, 0.40821073],
                image_std=[0.26862954, 0.26130258, 0.27577711],
            )
            return ShapEImg2ImgPipeline(
                prior=prior,
                image_encoder=image_encoder,
                image_processor=image_processor,
                scheduler=_scheduler(),
                shap_e_renderer=renderer,
            )
    raise ValueError(f"mode must be 'text' or 'image', got {mode!r}")


def tiny_shap_e_save(
    directory: Path, mode: str = "text", *, seed: int = 0, empty_surface: bool = False
) -> Path:
    """Build a tiny pipeline and save it with save_pretrained in `directory`/pipeline; returns that path."""
    directory = Path(directory)
    pipeline = tiny_shap_e_build(mode, seed=seed, empty_surface=empty_surface, workdir=directory)
    target = directory / "pipeline"
    pipeline.save_pretrained(target)
    return target
