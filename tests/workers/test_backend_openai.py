"""OpenAICompatBackend against a real OpenAI-compatible server on loopback (tests/support/openai_server)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.openai_server import Behaviour, OpenAIServer
from workers.backends import (
    BackendConfigError,
    BackendError,
    GenerationParams,
    GenerationRequest,
    backend_create,
)
from workers.backends.openai_compat import OpenAICompatBackend

PROMPT = "tell me a story about a robot who learns to paint"
KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(
        models={
            "slow": Behaviour(chunk_delay=0.05),
            "thinker": Behaviour(first_token_latency=0.3),
            "crawl": Behaviour(chunk_delay=0.2),
            "quiet": Behaviour(usage=False),
            "no-done": Behaviour(done=False),
            "leaky": Behaviour(reply="Hi, I am a helpful assistant."),
        }
    ) as srv:
        yield srv


def backend(server: OpenAIServer, **config: Any) -> OpenAICompatBackend:
    made = backend_create("openai", {"base_url": server.base_url, "model": "echo", **config})
    assert isinstance(made, OpenAICompatBackend)
    return made


def ask(prompt: str = PROMPT, **params: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": prompt}], params=GenerationParams(**params)
    )


def closed_port() -> int:
    # Bind and release: nothing listens there afterwards, so connecting is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- streaming ---------------------------------------------------------------------------------------------


def test_stream_yields_every_word_in_order_and_fills_usage(server: OpenAIServer) -> None:
    chat = backend(server)
    chunks = list(chat.stream(ask()))
    assert chunks == [
        "tell ",
        "me ",
        "a ",
        "story ",
        "about ",
        "a ",
        "robot ",
        "who ",
        "learns ",
        "to ",
        "paint",
    ]
    assert chat.usage.prompt_tokens == 11
    assert chat.usage.output_tokens == 11


def test_stream_answers_the_last_user_turn_of_a_conversation(server: OpenAIServer) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    chunks = list(backend(server).stream(GenerationRequest(messages=messages)))
    assert "".join(chunks) == "second question"
    assert server.last_request.body["messages"] == messages


def test_chunks_are_yielded_as_they_arrive_not_buffered_until_the_end(server: OpenAIServer) -> None:
    started = time.perf_counter()
    arrivals = [time.perf_counter() - started for _ in backend(server, model="slow").stream(ask())]
    assert len(arrivals) == 11
    assert arrivals[0] < 0.2  # the tenth chunk is only sent after 10 x 50 ms
    assert arrivals[-1] >= 0.45


def test_first_chunk_arrives_once_the_server_sends_it(server: OpenAIServer) -> None:
    chat = backend(server, model="thinker")
    started = time.perf_counter()
    first = next(iter(chat.stream(ask())))
    waited = time.perf_counter() - started
    assert first == "tell "
    assert 0.3 <= waited < 0.8  # the server holds the first token 300 ms


def test_request_carries_model_messages_and_generation_params(server: OpenAIServer) -> None:
    list(backend(server).stream(ask(temperature=0.2, top_p=0.9, max_new_tokens=64, seed=7)))
    body = server.last_request.body
    assert server.last_request.path == "/v1/chat/completions"
    assert body["model"] == "echo"
    assert body["messages"] == [{"role": "user", "content": PROMPT}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.2, 0.9, 64, 7)


def test_seed_is_left_out_of_the_request_when_not_set(server: OpenAIServer) -> None:
    list(backend(server).stream(ask()))
    assert "seed" not in server.last_request.body


def test_extra_body_fields_are_added_to_the_request(server: OpenAIServer) -> None:
    list(backend(server, extra_body={"top_k": 20, "repetition_penalty": 1.1}).stream(ask()))
    assert server.last_request.body["top_k"] == 20
    assert server.last_request.body["repetition_penalty"] == 1.1


def test_max_new_tokens_cut_with_finish_reason_length_is_a_complete_answer(server: OpenAIServer) -> None:
    chat = backend(server)
    assert list(chat.stream(ask(max_new_tokens=3))) == ["tell ", "me ", "a "]
    assert chat.usage.output_tokens == 3


def test_usage_stays_empty_when_the_server_sends_none(server: OpenAIServer) -> None:
    chat = backend(server, model="quiet")
    assert "".join(chat.stream(ask())) == PROMPT
    assert chat.usage.prompt_tokens is None
    assert chat.usage.output_tokens is None


def test_stream_usage_false_does_not_ask_for_usage(server: OpenAIServer) -> None:
    chat = backend(server, stream_usage=False)
    assert "".join(chat.stream(ask())) == PROMPT
    assert "stream_options" not in server.last_request.body
    assert chat.usage.output_tokens is None


def test_answer_with_finish_reason_but_no_done_line_is_complete(server: OpenAIServer) -> None:
    assert "".join(backend(server, model="no-done").stream(ask())) == PROMPT


def test_usage_is_reset_at_the_start_of_each_answer(server: OpenAIServer) -> None:
    chat = backend(server)
    list(chat.stream(ask()))
    chat.config["model"] = "quiet"
    list(chat.stream(ask()))
    assert chat.usage.output_tokens is None


def test_concurrent_answers_on_threads_each_get_their_own_text(server: OpenAIServer) -> None:
    prompts = [f"prompt number {n} with some words" for n in range(8)]
    answers: dict[str, str] = {}

    def run(prompt: str) -> None:
        answers[prompt] = "".join(backend(server, model="slow").stream(ask(prompt)))

    threads = [threading.Thread(target=run, args=(p,)) for p in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert answers == {p: p for p in prompts}


def test_non_streaming_request_gets_a_whole_completion_from_the_test_server(server: OpenAIServer) -> None:
    # Other suites use the server without the backend; its non-streaming path must speak the same API.
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 1},
    )
    payload = response.json()
    assert response.status_code == 200
    assert payload["choices"][0]["message"]["content"] == "hi "
    assert payload["choices"][0]["finish_reason"] == "length"
    assert payload["usage"] == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}


def test_test_server_picks_a_fault_from_the_x_fault_header(server: OpenAIServer) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Fault": "500"},
    )
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"


# --- authentication ----------------------------------------------------------------------------------------


def test_authorization_header_comes_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARENA_TEST_KEY", KEY)
    with OpenAIServer(api_key=KEY) as srv:
        assert "".join(backend(srv, api_key_env="ARENA_TEST_KEY").stream(ask())) == PROMPT
        assert srv.last_request.headers["authorization"] == f"Bearer {KEY}"


def test_no_authorization_header_is_sent_without_api_key_env(server: OpenAIServer) -> None:
    list(backend(server).stream(ask()))
    assert "authorization" not in server.last_request.headers


def test_unset_key_variable_is_accepted_in_config_but_fails_the_generation_naming_it(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARENA_TEST_MISSING_KEY", raising=False)
    chat = backend(server, api_key_env="ARENA_TEST_MISSING_KEY")
    with pytest.raises(BackendError, match="ARENA_TEST_MISSING_KEY"):
        list(chat.stream(ask()))
    assert server.requests == []  # refused before anything went out


def test_rejected_key_error_does_not_repeat_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-key-9876543210"
    monkeypatch.setenv("ARENA_TEST_KEY", wrong)
    with OpenAIServer(api_key=KEY) as srv, pytest.raises(BackendError) as caught:
        list(backend(srv, api_key_env="ARENA_TEST_KEY").stream(ask()))
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "Incorrect API key provided" in message
    assert wrong not in message
    assert wrong[:8] not in message


# --- failures ----------------------------------------------------------------------------------------------


def test_server_error_becomes_backend_error_with_status_and_message(server: OpenAIServer) -> None:
    with pytest.raises(BackendError) as caught:
        list(backend(server, model="fault-500").stream(ask()))
    message = str(caught.value)
    assert "HTTP 500" in message
    assert "illegal memory access" in message


def test_server_error_message_does_not_reveal_the_model_name(server: OpenAIServer) -> None:
    with pytest.raises(BackendError) as caught:
        list(backend(server, model="fault-500").stream(ask()))
    assert "fault-500" not in str(caught.value).lower()
    assert "[model]" in str(caught.value)


def test_hanging_server_fails_with_a_timeout_after_about_timeout_seconds(server: OpenAIServer) -> None:
    started = time.perf_counter()
    with pytest.raises(BackendError, match=r"did not answer within 0\.5 s"):
        list(backend(server, model="fault-hang", timeout=0.5).stream(ask()))
    assert 0.45 <= time.perf_counter() - started < 1.5


def test_server_going_silent_between_chunks_fails_with_a_timeout(server: OpenAIServer) -> None:
    received: list[str] = []
    started = time.perf_counter()
    with pytest.raises(BackendError, match="did not answer within"):
        received.extend(backend(server, model="fault-stall", timeout=0.5).stream(ask()))
    assert received == ["tell "]
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize("fault", ["cut", "cut-clean"])
def test_stream_cut_before_the_end_is_an_error_not_a_short_answer(server: OpenAIServer, fault: str) -> None:
    received: list[str] = []
    with pytest.raises(BackendError, match="stream ended early"):
        received.extend(backend(server, model=f"fault-{fault}").stream(ask()))
    assert received == ["tell ", "me ", "a ", "story ", "about "]


def test_malformed_chunk_is_an_error(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match="malformed chunk"):
        list(backend(server, model="fault-malformed").stream(ask()))


def test_error_event_inside_a_successful_stream_is_an_error(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match="failed mid-answer: engine died"):
        list(backend(server, model="fault-error-event").stream(ask()))


def test_answer_slower_than_max_time_is_stopped(server: OpenAIServer) -> None:
    started = time.perf_counter()
    with pytest.raises(BackendError, match=r"longer than max_time \(0\.5 s\)"):
        list(backend(server, model="crawl", max_time=0.5).stream(ask()))
    assert time.perf_counter() - started < 1.0  # 11 chunks x 200 ms would take 2 s


def test_unreachable_server_is_an_error_that_hides_the_url_and_credentials() -> None:
    port = closed_port()
    chat = backend_create("openai", {"base_url": f"http://arena:hunter22@127.0.0.1:{port}/v1", "model": "m"})
    with pytest.raises(BackendError, match="could not connect to the model server") as caught:
        list(chat.stream(ask()))
    assert "hunter22" not in str(caught.value)
    assert str(port) not in str(caught.value)


# --- configuration -----------------------------------------------------------------------------------------


def test_valid_config_gets_defaults_and_a_normalised_base_url() -> None:
    config = OpenAICompatBackend.validate_config({"base_url": "https://api.example.org/v1/", "model": "m"})
    assert config["base_url"] == "https://api.example.org/v1"
    assert (config["timeout"], config["max_time"], config["extra_body"]) == (30.0, 300.0, {})
    assert config["stream_usage"] is True


def test_api_key_env_naming_an_unset_variable_is_accepted_at_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ARENA_TEST_MISSING_KEY", raising=False)
    config = {"base_url": "http://127.0.0.1:1/v1", "model": "m", "api_key_env": "ARENA_TEST_MISSING_KEY"}
    assert OpenAICompatBackend.validate_config(config)["api_key_env"] == "ARENA_TEST_MISSING_KEY"


def test_api_key_in_config_is_refused_without_echoing_it() -> None:
    with pytest.raises(BackendConfigError, match="api_key") as caught:
        OpenAICompatBackend.validate_config({"base_url": "http://h/v1", "model": "m", "api_key": KEY})
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base_url": None}, "base_url"),
        ({"base_url": "ftp://h/v1"}, "base_url"),
        ({"base_url": "127.0.0.1:8000/v1"}, "base_url"),
        ({"base_url": "http:///v1"}, "base_url"),
        ({"base_url": "http://h/v1?key=1"}, "base_url"),
        ({"model": ""}, "model"),
        ({"model": None}, "model"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"max_time": 0}, "max_time"),
        ({"api_key_env": "not a name"}, "api_key_env"),
        ({"api_key_env": 5}, "api_key_env"),
        ({"extra_body": ["top_k", 20]}, "extra_body"),
        ({"extra_body": {"model": "other"}}, "extra_body"),
        ({"extra_body": {"temperature": 2.0}}, "extra_body"),
        ({"stream_usage": "yes"}, "stream_usage"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_token": 100}, "max_token"),
    ],
)
def test_bad_config_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    config = {"base_url": "http://127.0.0.1:8000/v1", "model": "m"}
    config.update(change)
    config = {name: value for name, value in config.items() if value is not None}
    with pytest.raises(BackendConfigError, match=field):
        OpenAICompatBackend.validate_config(config)


def test_config_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(BackendConfigError, match="JSON object"):
        OpenAICompatBackend.validate_config(["http://h/v1"])  # type: ignore[arg-type]


def test_registry_builds_the_openai_backend_without_importing_torch() -> None:
    # The web process validates configs with this backend; pulling in torch there would cost seconds and GBs.
    code = (
        "import sys; from workers.backends import backend_class; "
        "cls = backend_class('openai'); assert cls.kind == 'openai', cls; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
