"""Tiny, randomly initialised causal language models built on the spot, for tests that load real weights.

Nothing is downloaded: the tokenizer is trained in memory on a few sentences and the model is a two-layer
Llama with random weights, both saved with `save_pretrained` so the code under test loads them exactly as it
would load a real checkpoint from disk. Its answers are gibberish, but deterministic for a given seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a battle between two anonymous models ends with a vote",
    "hello how are you today ? i am fine , thank you",
    "write a short poem about the sea and the sky",
    "which answer is better , the left one or the right one",
    "tell me a story about a robot who learns to paint",
]

# A ChatML-like template written with whitespace around every marker so the whitespace pre-tokenizer keeps
# each marker as one token; the prompt-building code under test must use it instead of its own fallback.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|> {{ message['content'] }} {{ eos_token }} "
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def tiny_tokenizer_build(*, chat_template: str | None = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over CORPUS; unknown words become <unk>. chat_template=None builds one without
    a template, like many base models."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=SPECIAL_TOKENS[4:],
    )
    if chat_template is not None:
        wrapped.chat_template = chat_template
    return wrapped


def tiny_model_build(tokenizer: PreTrainedTokenizerFast, *, seed: int = 0) -> LlamaForCausalLM:
    """Two layers, hidden size 32: enough to exercise the real generate loop, small enough to build in ms."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    # fork_rng: the weights are reproducible without reseeding the global generator other tests rely on.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    _special_tokens_silence(model, tokenizer.all_special_ids)
    return model


@torch.no_grad()
def _special_tokens_silence(model: LlamaForCausalLM, token_ids: list[int]) -> None:
    """Make the model never emit special tokens: every answer runs to max_new_tokens and every token is text.

    A random model otherwise says </s> after a word or two. Llama has no output bias, so we build one:
    residual dimension 0 carries a constant (embeddings write it, no layer writes to it), which stays positive
    after the final RMSNorm, and a large negative lm_head weight on that dimension pushes the special tokens'
    logits far down.
    """
    model.model.embed_tokens.weight[:, 0] = 0.1
    for layer in model.model.layers:
        layer.self_attn.o_proj.weight[0, :] = 0.0
        layer.mlp.down_proj.weight[0, :] = 0.0
    model.lm_head.weight[token_ids, :] = 0.0
    model.lm_head.weight[token_ids, 0] = -100.0


def tiny_model_save(
    directory: Path,
    *,
    chat_template: str | None = CHAT_TEMPLATE,
    seed: int = 0,
    generation: dict[str, Any] | None = None,
) -> Path:
    """Write a loadable checkpoint (config, safetensors weights, tokenizer files) to `directory`.
    `generation` sets fields of the checkpoint's generation_config.json, as many real checkpoints ship
    sampling defaults (e.g. {"do_sample": True, "temperature": 0.6})."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer_build(chat_template=chat_template)
    model = tiny_model_build(tokenizer, seed=seed)
    model.generation_config.update(**(generation or {}))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
