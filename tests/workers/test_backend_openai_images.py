"""OpenAIImagesBackend against a real OpenAI-compatible image server on loopback (tests/support)."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from PIL import Image

from arena.media import media_inspect
from tests.support.openai_server import OpenAIServer, image_png
from workers.backends import BackendConfigError, BackendError, MediaRequest, MediaResult, backend_create
from workers.backends.openai_images import OpenAIImagesBackend

PROMPT = "a robot painting the sea"
KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def backend(server: OpenAIServer, **config: Any) -> OpenAIImagesBackend:
    made = backend_create("openai_images", {"base_url": server.base_url, "model": "painter", **config})
    assert isinstance(made, OpenAIImagesBackend)
    return made


def draw(
    model: OpenAIImagesBackend, prompt: str = PROMPT, progress: list[float] | None = None
) -> MediaResult:
    seen = progress if progress is not None else []
    return model.generate(MediaRequest(prompt=prompt), seen.append)


def closed_port() -> int:
    # Bind and release: nothing listens there afterwards, so connecting is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- images ------------------------------------------------------------------------------------------------


def test_b64_answer_is_decoded_into_the_servers_png(server: OpenAIServer) -> None:
    result = draw(backend(server, size="48x32"))
    assert result.format == "png"
    assert result.data == image_png(PROMPT, 48, 32)  # byte for byte what the server drew
    info = media_inspect(result.data, format_hint=result.format)
    assert (info.kind, info.meta["width"], info.meta["height"]) == ("image", 48, 32)
    with Image.open(io.BytesIO(result.data)) as image:
        assert (image.format, image.size) == ("PNG", (48, 32))


def test_request_carries_model_prompt_one_image_size_and_b64_format(server: OpenAIServer) -> None:
    draw(backend(server, size="64x64"))
    request = server.last_request
    assert (request.method, request.path) == ("POST", "/v1/images/generations")
    assert request.body == {
        "model": "painter",
        "prompt": PROMPT,
        "n": 1,
        "size": "64x64",
        "response_format": "b64_json",
    }


def test_quality_style_and_extra_body_are_sent(server: OpenAIServer) -> None:
    draw(backend(server, quality="hd", style="vivid", extra_body={"background": "transparent"}))
    body = server.last_request.body
    assert (body["quality"], body["style"], body["background"]) == ("hd", "vivid", "transparent")
    assert "size" not in body  # the server's default size when the config names none


def test_response_format_null_leaves_it_out_of_the_request(server: OpenAIServer) -> None:
    result = draw(backend(server, response_format=None))
    assert "response_format" not in server.last_request.body
    assert media_inspect(result.data).format == "png"


def test_url_answer_is_fetched_from_the_link(server: OpenAIServer) -> None:
    result = draw(backend(server, response_format="url", size="40x24"))
    assert result.format == "png"
    assert result.data == image_png(PROMPT, 40, 24)
    post, get = server.requests[-2:]
    assert (post.method, post.body["response_format"]) == ("POST", "url")
    assert get.method == "GET" and get.path.startswith("/v1/files/")


def test_progress_starts_at_zero_rises_and_ends_at_one(server: OpenAIServer) -> None:
    seen: list[float] = []
    draw(backend(server, size="128x128"), progress=seen)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_progress_reports_the_download_of_a_linked_image(server: OpenAIServer) -> None:
    seen: list[float] = []
    draw(backend(server, response_format="url", size="256x256"), progress=seen)  # ~200 kB: many reads
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert any(0.5 < fraction < 1.0 for fraction in seen)  # part of the file had arrived


def test_empty_prompt_is_refused_before_anything_is_sent(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match="prompt is empty"):
        draw(backend(server), prompt="  ")
    assert server.requests == []


# --- authentication ----------------------------------------------------------------------------------------


def test_api_key_is_sent_as_bearer_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARENA_TEST_IMAGE_KEY", KEY)
    with OpenAIServer(api_key=KEY) as srv:
        result = draw(backend(srv, api_key_env="ARENA_TEST_IMAGE_KEY"))
        assert srv.last_request.headers["authorization"] == f"Bearer {KEY}"
    assert media_inspect(result.data).format == "png"


def test_no_authorization_header_is_sent_without_api_key_env(server: OpenAIServer) -> None:
    draw(backend(server))
    assert "authorization" not in server.last_request.headers


def test_linked_image_on_the_api_origin_is_fetched_with_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_TEST_IMAGE_KEY", KEY)
    with OpenAIServer(api_key=KEY) as srv:
        draw(backend(srv, api_key_env="ARENA_TEST_IMAGE_KEY", response_format="url"))
        assert srv.last_request.method == "GET"
        assert srv.last_request.headers["authorization"] == f"Bearer {KEY}"


def test_linked_image_on_another_origin_is_fetched_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # The API is reached as "localhost" and its links name "127.0.0.1": another origin, as OpenAI's links
    # point at a storage service that must never see the key.
    monkeypatch.setenv("ARENA_TEST_IMAGE_KEY", KEY)
    with OpenAIServer(api_key=KEY) as srv:
        base_url = srv.base_url.replace("127.0.0.1", "localhost")
        result = draw(
            backend(srv, base_url=base_url, api_key_env="ARENA_TEST_IMAGE_KEY", response_format="url")
        )
        post, get = srv.requests[-2:]
        assert post.headers["authorization"] == f"Bearer {KEY}"
        assert get.method == "GET" and "authorization" not in get.headers
    assert media_inspect(result.data).format == "png"


def test_unset_key_variable_fails_the_generation_naming_it(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARENA_TEST_MISSING_KEY", raising=False)
    with pytest.raises(BackendError, match="ARENA_TEST_MISSING_KEY"):
        draw(backend(server, api_key_env="ARENA_TEST_MISSING_KEY"))
    assert server.requests == []  # refused before anything went out


def test_rejected_key_error_does_not_repeat_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-key-9876543210"
    monkeypatch.setenv("ARENA_TEST_IMAGE_KEY", wrong)
    with OpenAIServer(api_key=KEY) as srv, pytest.raises(BackendError) as caught:
        draw(backend(srv, api_key_env="ARENA_TEST_IMAGE_KEY"))
    message = str(caught.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message
    assert wrong not in message and wrong[:8] not in message


# --- failures ----------------------------------------------------------------------------------------------


def test_server_error_is_a_backend_error_with_status_and_message_but_not_the_model(
    server: OpenAIServer,
) -> None:
    with pytest.raises(BackendError) as caught:
        draw(backend(server, model="fault-500"))
    message = str(caught.value)
    assert "HTTP 500" in message and "illegal memory access" in message
    assert "fault-500" not in message and "[model]" in message


def test_request_the_server_refuses_is_a_backend_error_with_its_reason(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match=r"HTTP 400: Invalid size '4096x4096'"):
        draw(backend(server, size="4096x4096"))


def test_hanging_server_fails_with_a_timeout_after_about_timeout_seconds(server: OpenAIServer) -> None:
    started = time.perf_counter()
    with pytest.raises(BackendError, match=r"did not answer within 0\.5 s"):
        draw(backend(server, model="fault-hang", timeout=0.5))
    assert 0.45 <= time.perf_counter() - started < 1.5


def test_server_going_silent_in_the_middle_of_its_answer_fails_with_a_timeout(server: OpenAIServer) -> None:
    started = time.perf_counter()
    with pytest.raises(BackendError, match=r"did not answer within 0\.5 s"):
        draw(backend(server, model="fault-stall", timeout=0.5))
    assert time.perf_counter() - started < 1.5


def test_answer_cut_off_is_an_error(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match="closed the connection before its answer was complete"):
        draw(backend(server, model="fault-cut"))


def test_answer_that_is_not_json_is_an_error(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match="malformed answer"):
        draw(backend(server, model="fault-malformed"))


def test_error_in_a_successful_answer_is_an_error_without_the_model_name(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match=r"^The image server failed: engine \[model\] died$"):
        draw(backend(server, model="fault-error-event"))


def test_garbage_base64_is_an_error(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match=r"damaged image \(bad base64\)"):
        draw(backend(server, model="fault-bad-base64"))


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_bytes_that_are_not_an_image_are_an_error(server: OpenAIServer, response_format: str) -> None:
    with pytest.raises(BackendError, match="not a usable image: The file type could not be recognised"):
        draw(backend(server, model="fault-not-image", response_format=response_format))


def test_truncated_png_is_an_error(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match="not a usable image"):
        draw(backend(server, model="fault-cut-clean"))


def test_answer_without_an_image_is_an_error(server: OpenAIServer) -> None:
    with pytest.raises(BackendError, match="holds no image"):
        draw(backend(server, model="fault-no-data"))


def test_linked_image_over_the_size_limit_is_refused(server: OpenAIServer) -> None:
    # 64x64 pixels of noise make a PNG of about 12 kB.
    with override_settings(ARENA_MAX_MEDIA_BYTES=4096), pytest.raises(BackendError) as caught:
        draw(backend(server, response_format="url", size="64x64"))
    assert str(caught.value) == "The image is larger than the 4,096-byte limit."


def test_b64_image_over_the_size_limit_is_refused(server: OpenAIServer) -> None:
    with override_settings(ARENA_MAX_MEDIA_BYTES=4096), pytest.raises(BackendError, match="limit is 4,096"):
        draw(backend(server, size="64x64"))


def test_answer_far_over_the_size_limit_is_refused_without_reading_it(server: OpenAIServer) -> None:
    # 256x256 pixels of noise: a PNG of about 200 kB, whose base64 answer outgrows 4/3 of the limit plus room
    # for the JSON around it.
    with override_settings(ARENA_MAX_MEDIA_BYTES=4096), pytest.raises(BackendError) as caught:
        draw(backend(server, size="256x256"))
    assert "The image server's answer is larger than" in str(caught.value)


def test_unreachable_server_is_an_error_that_hides_the_url_and_credentials() -> None:
    port = closed_port()
    model = backend_create(
        "openai_images", {"base_url": f"http://arena:hunter22@127.0.0.1:{port}/v1", "model": "m"}
    )
    with pytest.raises(BackendError, match="Could not connect to the image server") as caught:
        model.generate(MediaRequest(prompt=PROMPT), lambda fraction: None)
    assert "hunter22" not in str(caught.value)
    assert str(port) not in str(caught.value)


# --- configuration -----------------------------------------------------------------------------------------


def test_valid_config_gets_defaults_and_a_normalised_base_url() -> None:
    config = OpenAIImagesBackend.validate_config({"base_url": "https://api.example.org/v1/", "model": "m"})
    assert config["base_url"] == "https://api.example.org/v1"
    assert (config["timeout"], config["extra_body"], config["response_format"]) == (180.0, {}, "b64_json")


def test_backend_declares_text_to_image() -> None:
    assert OpenAIImagesBackend.modalities == frozenset({"image"})
    assert OpenAIImagesBackend.inputs == frozenset({"text"})


def test_api_key_in_the_config_is_refused_without_echoing_it() -> None:
    with pytest.raises(BackendConfigError, match="api_key_env") as caught:
        OpenAIImagesBackend.validate_config(
            {"base_url": "https://api.example.org/v1", "model": "m", "api_key": KEY, "size": "huge"}
        )
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model": "m"}, "base_url"),
        ({"base_url": "ftp://host/v1", "model": "m"}, "base_url"),
        ({"base_url": "http://h/v1"}, "model"),
        ({"base_url": "http://h/v1", "model": ""}, "model"),
        ({"base_url": "http://h/v1", "model": "m", "api_key_env": "1-BAD"}, "api_key_env"),
        ({"base_url": "http://h/v1", "model": "m", "size": "big"}, "size"),
        ({"base_url": "http://h/v1", "model": "m", "size": "1024*1024"}, "size"),
        ({"base_url": "http://h/v1", "model": "m", "size": 1024}, "size"),
        ({"base_url": "http://h/v1", "model": "m", "quality": 3}, "quality"),
        ({"base_url": "http://h/v1", "model": "m", "style": ""}, "style"),
        ({"base_url": "http://h/v1", "model": "m", "response_format": "png"}, "response_format"),
        ({"base_url": "http://h/v1", "model": "m", "timeout": 0}, "timeout"),
        ({"base_url": "http://h/v1", "model": "m", "timeout": True}, "timeout"),
        ({"base_url": "http://h/v1", "model": "m", "extra_body": ["x"]}, "extra_body"),
        ({"base_url": "http://h/v1", "model": "m", "extra_body": {"prompt": "x"}}, "prompt"),
        ({"base_url": "http://h/v1", "model": "m", "extra_body": {"n": 4}}, "'n'"),
        ({"base_url": "http://h/v1", "model": "m", "steps": 20}, "steps"),
        ({"base_url": "http://h/v1", "model": "m", "seed": "x"}, "seed"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(BackendConfigError, match=field):
        OpenAIImagesBackend.validate_config(config)
