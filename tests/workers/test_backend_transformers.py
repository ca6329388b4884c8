"""TransformersBackend loading and running real (tiny, random) checkpoints from tests/support/tiny_models."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.tiny_models import tiny_model_save
from workers.backends import (
    BackendConfigError,
    BackendError,
    GenerationParams,
    GenerationRequest,
    InputRejected,
    backend_create,
)
from workers.backends.transformers_local import TransformersBackend
from workers.backends.transformers_runtime import device_resolve, model_cache_clear, prompt_build

# Every device this machine has, so the same tests check the GPU path where there is one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
HELLO = [{"role": "user", "content": "hello how are you"}]
REJECT_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}<|assistant|> "
)


@pytest.fixture(scope="module", autouse=True)
def _one_cpu_thread() -> Iterator[None]:
    # A model this small gains nothing from intra-op threads, and on a busy machine (a parallel test run)
    # OpenMP's spinning threads make each token ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_save(tmp_path_factory.mktemp("tiny") / "chat-model")


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_save(tmp_path_factory.mktemp("tiny") / "base-model", chat_template=None)


def backend(model_dir: Path, **config: Any) -> TransformersBackend:
    made = backend_create("transformers", {"model_path": str(model_dir), **config})
    assert isinstance(made, TransformersBackend)
    return made


def ask(messages: list[dict[str, str]] = HELLO, **params: Any) -> GenerationRequest:
    return GenerationRequest(messages=messages, params=GenerationParams(**{"max_new_tokens": 6, **params}))


def answer(chat: TransformersBackend, request: GenerationRequest) -> str:
    return "".join(chat.stream(request))


# --- streaming and usage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_stream_yields_text_and_counts_prompt_and_output_tokens(model_dir: Path, device: str) -> None:
    chat = backend(model_dir, device=device)
    chunks = list(chat.stream(ask(max_new_tokens=5)))
    assert len(chunks) >= 1
    assert all(isinstance(chunk, str) and chunk for chunk in chunks)
    tokenizer = chat.load().tokenizer
    prompt = prompt_build(tokenizer, HELLO)
    assert chat.usage.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    # The tiny model never emits </s> (see tiny_models), so the answer runs exactly to the limit.
    assert chat.usage.output_tokens == 5


def test_output_tokens_never_exceed_max_new_tokens(model_dir: Path) -> None:
    chat = backend(model_dir)
    for limit in (1, 3, 8):
        list(chat.stream(ask(max_new_tokens=limit)))
        assert chat.usage.output_tokens is not None
        assert chat.usage.output_tokens >= 1 and chat.usage.output_tokens <= limit


def test_chat_template_of_the_checkpoint_builds_the_prompt(model_dir: Path) -> None:
    chat = backend(model_dir)
    messages = [{"role": "system", "content": "be brief"}, *HELLO]
    prompt = prompt_build(chat.load().tokenizer, messages)
    assert prompt == "<s><|system|> be brief </s> <|user|> hello how are you </s> <|assistant|> "
    list(chat.stream(ask(messages)))
    assert chat.usage.prompt_tokens == 12  # the template's tokens; the plain transcript would give 9


def test_checkpoint_without_chat_template_gets_a_plain_transcript(base_model_dir: Path) -> None:
    chat = backend(base_model_dir)
    messages = [
        *HELLO,
        {"role": "assistant", "content": "i am fine"},
        {"role": "user", "content": "thank you"},
    ]
    prompt = prompt_build(chat.load().tokenizer, messages)
    assert prompt == "User: hello how are you\nAssistant: i am fine\nUser: thank you\nAssistant:"
    assert answer(chat, ask(messages))


def test_chat_template_refusing_the_conversation_is_an_input_rejection(tmp_path: Path) -> None:
    chat = backend(tiny_model_save(tmp_path / "strict", chat_template=REJECT_SYSTEM_TEMPLATE))
    assert answer(chat, ask())  # a plain user turn is fine
    with pytest.raises(InputRejected, match="System role not supported"):
        list(chat.stream(ask([{"role": "system", "content": "be brief"}, *HELLO])))


def test_conversation_longer_than_the_context_window_is_an_input_rejection(model_dir: Path) -> None:
    """The visitor's input, not the model, is at fault: it must not count toward the model's outage."""
    long_prompt = [{"role": "user", "content": "hello " * 300}]  # the tiny model's window is 256 positions
    with pytest.raises(InputRejected, match="too long for this model"):
        list(backend(model_dir).stream(ask(long_prompt)))


def test_max_new_tokens_is_clamped_to_the_room_left_in_the_context_window(model_dir: Path) -> None:
    chat = backend(model_dir)
    list(chat.stream(ask([{"role": "user", "content": "hello " * 240}], max_new_tokens=100)))
    assert chat.usage.prompt_tokens is not None
    assert chat.usage.output_tokens == 256 - chat.usage.prompt_tokens


def test_closing_the_stream_early_stops_the_generation_thread(model_dir: Path) -> None:
    stream = backend(model_dir).stream(ask(max_new_tokens=200))
    assert next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "transformers-generate"]


# --- sampling ----------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_answer_and_another_seed_a_different_one(model_dir: Path) -> None:
    chat = backend(model_dir)
    first = answer(chat, ask(seed=11, temperature=1.0, max_new_tokens=12))
    assert answer(chat, ask(seed=11, temperature=1.0, max_new_tokens=12)) == first
    assert answer(chat, ask(seed=12, temperature=1.0, max_new_tokens=12)) != first


def test_seeded_answer_does_not_depend_on_the_global_random_state(model_dir: Path) -> None:
    chat = backend(model_dir)
    expected = answer(chat, ask(seed=5, temperature=1.0, max_new_tokens=12))
    torch.manual_seed(1234)
    torch.rand(100)
    assert answer(chat, ask(seed=5, temperature=1.0, max_new_tokens=12)) == expected


def test_seeded_answers_stay_reproducible_while_other_threads_sample(model_dir: Path) -> None:
    chat = backend(model_dir)
    expected = answer(chat, ask(seed=5, temperature=1.0, max_new_tokens=24))
    results: list[str] = []
    lock = threading.Lock()

    def seeded() -> None:
        text = answer(backend(model_dir), ask(seed=5, temperature=1.0, max_new_tokens=24))
        with lock:
            results.append(text)

    def unseeded() -> None:
        answer(backend(model_dir), ask(temperature=1.0, max_new_tokens=24))

    threads = [threading.Thread(target=fn) for fn in (seeded, unseeded) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [expected] * 3


def test_temperature_zero_is_greedy_and_repeatable_without_a_seed(model_dir: Path) -> None:
    chat = backend(model_dir)
    first = answer(chat, ask(temperature=0.0, max_new_tokens=10))
    assert answer(chat, ask(temperature=0.0, max_new_tokens=10)) == first


def test_sampling_defaults_shipped_with_the_checkpoint_do_not_override_the_request(
    model_dir: Path, tmp_path: Path
) -> None:
    # Same weights; the second checkpoint asks for sampling in its generation_config.json.
    sampling = {"do_sample": True, "temperature": 5.0, "top_k": 3, "repetition_penalty": 1.0}
    chatty = backend(tiny_model_save(tmp_path / "chatty", generation=sampling))
    greedy = answer(backend(model_dir), ask(temperature=0.0, max_new_tokens=16))
    assert answer(chatty, ask(temperature=0.0, max_new_tokens=16)) == greedy


def test_unseeded_sampling_varies_between_answers(model_dir: Path) -> None:
    chat = backend(model_dir)
    answers = {answer(chat, ask(temperature=1.0, max_new_tokens=12)) for _ in range(4)}
    assert len(answers) > 1


def test_top_p_near_zero_samples_like_greedy(model_dir: Path) -> None:
    # Nucleus sampling keeps at least the top token, so a tiny top_p leaves nothing else to draw.
    chat = backend(model_dir)
    greedy = answer(chat, ask(temperature=0.0, max_new_tokens=10))
    assert answer(chat, ask(temperature=1.0, top_p=1e-6, max_new_tokens=10)) == greedy


# --- loading and the per-process cache ---------------------------------------------------------------------


def test_second_backend_with_the_same_config_reuses_the_loaded_model(model_dir: Path) -> None:
    first, second = backend(model_dir), backend(model_dir, device="auto")
    list(first.stream(ask()))
    list(second.stream(ask()))
    assert first.load() is second.load()
    assert first.load().model is second.load().model


def test_threads_loading_the_same_model_at_once_share_one_load(model_dir: Path) -> None:
    model_cache_clear()  # other tests loaded it already
    start = threading.Barrier(4)
    loaded: list[object] = []

    def load() -> None:
        start.wait()
        loaded.append(backend(model_dir).load().model)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(loaded) == 4
    assert all(model is loaded[0] for model in loaded)


def test_another_dtype_is_loaded_separately(model_dir: Path) -> None:
    full, half = backend(model_dir, dtype="float32"), backend(model_dir, dtype="bfloat16")
    assert full.load().model is not half.load().model
    assert half.load().model.dtype == torch.bfloat16
    assert answer(half, ask())


def test_cpu_device_loads_and_runs_the_model_on_the_cpu(model_dir: Path) -> None:
    chat = backend(model_dir, device="cpu")
    assert answer(chat, ask())
    loaded = chat.load()
    assert loaded.device == torch.device("cpu")
    assert next(loaded.model.parameters()).device.type == "cpu"
    assert loaded.dtype == torch.float32  # "auto" on CPU


def test_auto_device_is_cuda_when_available_else_cpu(model_dir: Path) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device_resolve("auto").type == expected
    assert next(backend(model_dir).load().model.parameters()).device.type == expected


def test_cuda_device_this_machine_lacks_is_a_backend_error(model_dir: Path) -> None:
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or cuda:0 on a CPU-only machine
    with pytest.raises(BackendError, match="no CUDA device"):
        list(backend(model_dir, device=missing).stream(ask()))


def test_missing_model_directory_is_a_backend_error_that_hides_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "secret-model-name"
    with pytest.raises(BackendError, match="model files were not found") as caught:
        list(backend(missing).stream(ask()))
    assert "secret-model-name" not in str(caught.value)


def test_directory_without_a_checkpoint_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(BackendError, match=r"could not (load the model|read the model's configuration)"):
        list(backend(tmp_path / "empty-model").stream(ask()))


def test_failed_load_is_not_cached_and_succeeds_once_the_files_appear(tmp_path: Path) -> None:
    directory = tmp_path / "late-model"
    directory.mkdir()
    chat = backend(directory)
    with pytest.raises(BackendError):
        chat.load()
    tiny_model_save(directory)
    assert answer(chat, ask())


# --- configuration -----------------------------------------------------------------------------------------


def test_valid_config_gets_auto_device_and_dtype() -> None:
    config = TransformersBackend.validate_config({"model_path": "/models/x", "temperature": 0.5})
    assert (config["device"], config["dtype"]) == ("auto", "auto")


def test_trust_remote_code_is_refused() -> None:
    with pytest.raises(BackendConfigError, match="trust_remote_code"):
        TransformersBackend.validate_config({"model_path": "/models/x", "trust_remote_code": True})


def test_trust_remote_code_false_is_accepted() -> None:
    config = TransformersBackend.validate_config({"model_path": "/models/x", "trust_remote_code": False})
    assert config["trust_remote_code"] is False


def test_validating_a_config_does_not_import_torch() -> None:
    # The admin validates configs in the web process, which has no torch installed.
    code = (
        "import sys; from workers.backends import backend_class; "
        "backend_class('transformers').validate_config({'model_path': '/models/x', 'dtype': 'bfloat16'}); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "model_path"),
        ({"model_path": ""}, "model_path"),
        ({"model_path": 42}, "model_path"),
        ({"model_path": "/m", "device": "gpu"}, "device"),
        ({"model_path": "/m", "device": "cuda:x"}, "device"),
        ({"model_path": "/m", "dtype": "int8"}, "dtype"),
        ({"model_path": "/m", "dtype": ["float16"]}, "dtype"),
        ({"model_path": "/m", "trust_remote_code": "yes"}, "trust_remote_code"),
        ({"model_path": "/m", "max_new_tokens": "many"}, "max_new_tokens"),
        ({"model_path": "/m", "dtpye": "float16"}, "dtpye"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(BackendConfigError, match=field):
        TransformersBackend.validate_config(config)
