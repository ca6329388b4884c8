"""Tiny classifiers built on the spot whose verdicts are known in advance, for the moderation tests.

Nothing is downloaded. Weights are set by hand rather than trained, so the answer is exact:

* text: a one-layer Llama sequence classifier that says "toxic" when the text contains a trigger word
  (TRIGGER_WORDS) anywhere and "safe" otherwise. Its attention has zero queries and keys, so the last position
  attends uniformly to every token and reads the share of trigger tokens; the score head turns that share into
  the "toxic" logit, against a constant "safe" logit.
* image: a one-stage ConvNeXt image classifier that says "nsfw" for a mostly red picture and "safe" for a
  mostly green one: its patch embedding reads the red and green channels into two hidden units, the blocks
  add (almost) nothing, and the head compares the two.

Both are saved with `save_pretrained` (with their tokenizer or image processor) so the code under test loads
them exactly as it would load a real checkpoint from a directory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    ConvNextImageProcessor,
    LlamaConfig,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

TRIGGER_WORDS = ("poison", "venom")
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "tell me a story about a robot who learns to paint",
    "how do i make a good cup of coffee at home",
    "this answer is full of poison and venom",
    "hello how are you today ? i am fine , thank you",
]
HIDDEN = 8


def tiny_text_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # punctuation apart: "poison." is "poison" "."
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", model_max_length=256
    )


@torch.no_grad()
def _text_weights(model: LlamaForSequenceClassification, trigger_ids: list[int]) -> None:
    """Unit 0 of the residual stream is a constant 1, unit 1 marks trigger tokens, unit 2 receives the
    mean of unit 1 over the sequence from the attention; the head reads unit 0 for "safe", unit 2 for "toxic".
    """
    for parameter in model.parameters():
        parameter.zero_()
    model.model.embed_tokens.weight[:, 0] = 1.0
    model.model.embed_tokens.weight[trigger_ids, 1] = 1.0
    for norm in [model.model.norm, *(layer.input_layernorm for layer in model.model.layers)]:
        norm.weight.fill_(1.0)
    for layer in model.model.layers:
        layer.post_attention_layernorm.weight.fill_(1.0)
        layer.self_attn.v_proj.weight[1, 1] = 1.0  # queries and keys stay zero: uniform attention
        layer.self_attn.o_proj.weight[2, 1] = 1.0
    model.score.weight[0, 0] = 1.0  # safe
    model.score.weight[1, 2] = 100.0  # toxic


def tiny_text_classifier_save(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_text_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
        id2label={0: "safe", 1: "toxic"},
        label2id={"safe": 0, "toxic": 1},
    )
    model = LlamaForSequenceClassification(config).eval()
    _text_weights(model, tokenizer.convert_tokens_to_ids(list(TRIGGER_WORDS)))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@torch.no_grad()
def _image_weights(model: ConvNextForImageClassification) -> None:
    """Hidden unit 0 is the patch's mean red, unit 1 its mean green (pixels normalised to -1..1)."""
    for parameter in model.parameters():
        parameter.zero_()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm) or type(module).__name__ == "ConvNextLayerNorm":
            module.weight.fill_(1.0)
    patch = model.convnext.embeddings.patch_embeddings
    area = patch.weight.shape[2] * patch.weight.shape[3]
    patch.weight[0, 0] = 1.0 / area
    patch.weight[1, 1] = 1.0 / area
    model.classifier.weight[0, 1] = 10.0  # safe: green
    model.classifier.weight[1, 0] = 10.0  # nsfw: red


def tiny_image_classifier_save(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = ConvNextConfig(
        num_channels=3,
        patch_size=4,
        num_stages=1,
        hidden_sizes=[HIDDEN],
        depths=[1],
        image_size=16,
        layer_scale_init_value=0.0,
        num_labels=2,
        id2label={0: "safe", 1: "nsfw"},
        label2id={"safe": 0, "nsfw": 1},
    )
    model = ConvNextForImageClassification(config).eval()
    _image_weights(model)
    model.save_pretrained(directory)
    ConvNextImageProcessor(size={"shortest_edge": 16}, crop_pct=1.0).save_pretrained(directory)
    return directory
