"""A tiny, randomly initialised Stable Diffusion pipeline built on the spot, for tests that load real weights.

Nothing is downloaded: the CLIP tokenizer's byte-level BPE vocabulary (vocab.json + merges.txt) is
written here, and the UNet, VAE and CLIP text encoder hold a few thousand random parameters each. The
pipeline is saved with `save_pretrained`, so the code under test loads it exactly as it would load a real
checkpoint from disk. Its images are coloured noise, but deterministic for a given seed, and one 64x64 image
in 3 steps takes a fraction of a second on a CPU.

`safety_checker="flag"` / `"pass"` also saves a tiny StableDiffusionSafetyChecker whose thresholds make it
flag every image / none, so the backend's handling of a checker's verdict runs against the real one.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
)

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
# Words that get merged tokens of their own; any other text still encodes, letter by letter.
WORDS = ["a", "cat", "dog", "red", "blue", "house", "on", "the", "sea", "sky", "robot", "painting", "of"]
VOCAB_SIZE = 1000  # room for 256 bytes x 2 (with and without </w>), the merges and the special tokens
SIZE = 64  # the UNet's sample size times the VAE's scale factor: the default image size

SafetyChecker = Literal["none", "flag", "pass"]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map from bytes to printable characters (the alphabet of byte-level BPE)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\N{INVERTED EXCLAMATION MARK}"), ord("\N{NOT SIGN}") + 1),
        *range(ord("\N{REGISTERED SIGN}"), ord("\N{LATIN SMALL LETTER Y WITH DIAERESIS}") + 1),
    ]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in codes), strict=True))


def tiny_tokenizer_files(directory: Path) -> Path:
    """Write vocab.json and merges.txt of a tiny CLIP BPE: every byte alone and word-final, then one merge
    chain per word of WORDS (c-a, ca-t</w>), then the two special tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in [*alphabet, *(f"{char}</w>" for char in alphabet)]:
        vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    for word in WORDS:
        pieces = [*word[:-1], f"{word[-1]}</w>"]
        merged = pieces[0]
        for piece in pieces[1:]:
            rule = f"{merged} {piece}"
            merged += piece
            if rule not in merges:
                merges.append(rule)
                vocab.setdefault(merged, len(vocab))
    for token in (BOS, EOS):
        vocab[token] = len(vocab)
    if len(vocab) > VOCAB_SIZE:
        raise AssertionError(f"the tiny vocabulary has {len(vocab)} tokens, over {VOCAB_SIZE}")
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return directory


def tiny_pipeline_build(*, seed: int = 0, safety_checker: SafetyChecker = "none") -> StableDiffusionPipeline:
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = CLIPTokenizer.from_pretrained(tiny_tokenizer_files(Path(scratch)), model_max_length=77)
    # fork_rng: the weights are reproducible without reseeding the global generator other tests rely on.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=SIZE // 2,
            block_out_channels=(8, 16),
            layers_per_block=1,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=4,
        )
        vae = AutoencoderKL(
            block_out_channels=(8, 16),  # two blocks: a scale factor of 2
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=4,
            sample_size=SIZE,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=VOCAB_SIZE,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        ).eval()
        checker, extractor = _safety_checker_build(safety_checker)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=extractor,
        requires_safety_checker=checker is not None,
    )


def _safety_checker_build(
    mode: SafetyChecker,
) -> tuple[StableDiffusionSafetyChecker | None, CLIPImageProcessor | None]:
    if mode == "none":
        return None, None
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    text = CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4)
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
    ).eval()
    with torch.no_grad():
        # A concept is flagged when the image's cosine similarity to it exceeds its threshold; cosines lie in
        # [-1, 1], so a threshold of -2 flags every image and one of 2 none.
        threshold = -2.0 if mode == "flag" else 2.0
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(2.0)
    extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker, extractor


def tiny_pipeline_save(directory: Path, *, seed: int = 0, safety_checker: SafetyChecker = "none") -> Path:
    """Write a loadable pipeline (model_index.json, each component's config and safetensors weights, the
    tokenizer's vocab.json and merges.txt) to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    pipeline = tiny_pipeline_build(seed=seed, safety_checker=safety_checker)
    pipeline.save_pretrained(directory)
    # Real Stable Diffusion checkpoints ship the tokenizer as vocab.json + merges.txt, without tokenizer.json:
    # the loader must build it from those, as it would for them.
    tokenizer_dir = directory / "tokenizer"
    (tokenizer_dir / "tokenizer.json").unlink()
    tiny_tokenizer_files(tokenizer_dir)
    return directory
