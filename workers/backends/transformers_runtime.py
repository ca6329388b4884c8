"""The torch side of the transformers backend: loading checkpoints, building prompts, streaming generate().

Imported only when a worker actually loads or runs a model (TransformersBackend.load/stream), so validating a
transformers config in the web process (the admin) needs neither torch nor transformers. A worker loads each
checkpoint once and serves many battles from it, so loaded models live in a per-process cache. Sampling uses a
per-request `torch.Generator` instead of the global RNG, so a seeded answer is reproducible even while other
battles generate on other threads of the same process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)
from transformers.generation import TemperatureLogitsWarper, TopPLogitsWarper

from . import loading
from .base import BackendError, GenerationParams, GenerationRequest, InputRejected, Usage
from .loading import LoadCache
from .transformers_local import DTYPE_NAMES

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}
# How long the reader waits for the next piece of text before deciding the generation thread is stuck.
STREAM_GAP_TIMEOUT_S = 600.0
# How long the reader waits, after it stopped reading, for the generation thread to notice and return.
JOIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    max_positions: int | None  # context window, when the config states one


ModelKey = tuple[str, str, str]  # (resolved path, device, dtype name)

_models: LoadCache[ModelKey, LoadedModel] = LoadCache()


def model_get(config: Mapping[str, Any]) -> LoadedModel:
    """The loaded model for a validated TransformersBackend config, from the process cache."""
    path = loading.model_dir(config)
    device = device_resolve(config["device"])
    return model_load(path, device, dtype_resolve(config["dtype"], path, device))


def answer_stream(loaded: LoadedModel, request: GenerationRequest, usage: Usage) -> Iterator[str]:
    """Stream the answer's text; fills `usage` (prompt tokens at once, output tokens at the end)."""
    input_ids = prompt_encode(loaded, request.messages)
    usage.prompt_tokens = input_ids.shape[1]
    max_new_tokens = _max_new_tokens(loaded, usage.prompt_tokens, request.params.max_new_tokens)
    run = _GenerationRun(loaded, input_ids, request.params, max_new_tokens)
    yield from run.texts()
    usage.output_tokens = run.output_tokens


def device_resolve(device: str) -> torch.device:
    return loading.device_resolve(device)


def dtype_resolve(dtype: str, path: Path, device: torch.device) -> torch.dtype:
    """'auto' means float32 on CPU (half precision is slow or unsupported there) and half precision on GPU:
    bfloat16 when the checkpoint was trained in it and the GPU supports it (float16 can overflow such models),
    float16 otherwise."""
    if dtype != "auto":
        return DTYPES[dtype]
    if device.type != "cuda":
        return torch.float32
    if _checkpoint_dtype(path) == torch.bfloat16 and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _checkpoint_dtype(path: Path) -> torch.dtype | None:
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise BackendError("could not read the model's configuration") from exc
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype


def model_load(path: Path, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """Load once per process and key (see loading.LoadCache)."""
    key: ModelKey = (str(path.resolve()), str(device), loading.dtype_name(dtype))
    return _models.get(key, lambda: _model_read(path, device, dtype))


def model_cache_clear() -> None:
    """Forget every loaded model (tests; a worker freeing memory). Answers in flight keep their reference."""
    _models.clear()


def _model_read(path: Path, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, local_files_only=True, trust_remote_code=False
        )
        model = model.to(device).eval()
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        raise BackendError("not enough GPU memory to load the model") from exc
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        # The exception text names files and the model; it stays in the chained traceback for the operator.
        raise BackendError(f"could not load the model ({type(exc).__name__})") from exc
    return LoadedModel(model, tokenizer, device, dtype, _max_positions(model))


def _max_positions(model: PreTrainedModel) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def prompt_build(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The model's own chat template when it has one (the format it was tuned on), else a plain transcript."""
    if tokenizer.chat_template:
        try:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except TemplateError as exc:
            # Templates raise on conversations they cannot express (e.g. a system turn some models lack). A
            # config that no conversation passes (a system prompt the template refuses) fails the probe as
            # well.
            raise InputRejected(f"the model cannot take this conversation: {str(exc)[:200]}") from exc
    lines = [f"{message['role'].capitalize()}: {message['content']}" for message in messages]
    return "\n".join([*lines, "Assistant:"])


def prompt_encode(loaded: LoadedModel, messages: list[dict[str, str]]) -> torch.Tensor:
    text = prompt_build(loaded.tokenizer, messages)
    # A chat template writes its own BOS; only the plain transcript needs the tokenizer to add one.
    add_special = not loaded.tokenizer.chat_template
    encoded = loaded.tokenizer(text, add_special_tokens=add_special, return_tensors="pt")
    return encoded["input_ids"].to(loaded.device)


def _max_new_tokens(loaded: LoadedModel, prompt_tokens: int, wanted: int) -> int:
    """Clamp to the context window: going past it crashes some models and makes others babble."""
    if loaded.max_positions is None:
        return wanted
    limit = loaded.max_positions
    if prompt_tokens >= limit:
        # The visitor's conversation outgrew this model's context window: the input's fault, not the model's.
        raise InputRejected(
            f"the conversation is too long for this model ({prompt_tokens} tokens, limit {limit})"
        )
    return min(wanted, limit - prompt_tokens)


class _SeededSampler(LogitsProcessor):
    """Draws the next token with a private generator and hands generate() a one-hot score, so generate's own
    greedy step picks exactly our draw. transformers' sampling only uses the global RNG, which concurrent
    generations on other threads would advance between our steps."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.multinomial(probs, num_samples=1, generator=self.generator)
        one_hot = torch.full_like(scores, float("-inf"))
        return one_hot.scatter_(-1, chosen, 0.0)


class _Cancelled(StoppingCriteria):
    """Stops generation when the reader goes away (voter left, task cancelled) instead of burning the GPU on
    tokens nobody will read."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def _sampling_processors(params: GenerationParams, device: torch.device) -> LogitsProcessorList:
    if params.temperature <= 0:
        return LogitsProcessorList()  # greedy
    generator = torch.Generator(device=device)
    if params.seed is None:
        generator.seed()  # fresh entropy per request
    else:
        generator.manual_seed(params.seed)
    processors: list[LogitsProcessor] = []
    if params.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(params.temperature))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    processors.append(_SeededSampler(generator))
    return LogitsProcessorList(processors)


class _GenerationRun:
    """model.generate on a background thread, its text read from a TextIteratorStreamer on the caller's."""

    def __init__(
        self, loaded: LoadedModel, input_ids: torch.Tensor, params: GenerationParams, max_new_tokens: int
    ) -> None:
        self.loaded = loaded
        self.prompt_length = input_ids.shape[1]
        self.cancel = threading.Event()
        self.streamer = TextIteratorStreamer(
            loaded.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_GAP_TIMEOUT_S
        )
        self.kwargs = self._generate_kwargs(input_ids, params, max_new_tokens)
        self.output_tokens: int | None = None
        self.error: BaseException | None = None

    def _generate_kwargs(
        self, input_ids: torch.Tensor, params: GenerationParams, max_new_tokens: int
    ) -> dict[str, Any]:
        tokenizer = self.loaded.tokenizer
        pad_id = self.loaded.model.generation_config.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": max_new_tokens,
            # Sampling happens in our processors; generate must not sample again or warp with the checkpoint's
            # own temperature / top_k / top_p defaults, so every backend means the same by these parameters.
            "do_sample": False,
            "num_beams": 1,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "logits_processor": _sampling_processors(params, self.loaded.device),
            "stopping_criteria": StoppingCriteriaList([_Cancelled(self.cancel)]),
            "pad_token_id": pad_id,
            "streamer": self.streamer,
        }

    def _generate(self) -> None:
        try:
            # inference_mode is thread-local, so it is entered here, on the generating thread.
            with torch.inference_mode():
                sequences = self.loaded.model.generate(**self.kwargs)
            self.output_tokens = int(sequences.shape[1]) - self.prompt_length
        except BaseException as exc:
            self.error = exc
            self.streamer.end()  # wake the reader; generate ends the stream itself only on success

    def texts(self) -> Iterator[str]:
        thread = threading.Thread(target=self._generate, name="transformers-generate", daemon=True)
        thread.start()
        try:
            for text in self.streamer:
                if text:
                    yield text
        except queue.Empty:
            raise BackendError(f"the model produced nothing for {STREAM_GAP_TIMEOUT_S:g} s") from None
        finally:
            # Runs on normal end, on error and when the caller closes the generator early. The thread stops
            # at its next token, so the join is short unless it is stuck (then we leave it: it is a daemon).
            self.cancel.set()
            thread.join(timeout=JOIN_TIMEOUT_S)
        if self.error is not None:
            raise _generation_error(self.error) from self.error


def _generation_error(exc: BaseException) -> BackendError:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
        return BackendError("the model ran out of GPU memory")
    return BackendError(f"generation failed ({type(exc).__name__})")
