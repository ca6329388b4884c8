"""Remote3DBackend against a real HTTP server in a thread (tests/support/remote_3d_server): the multipart
request a model maker's server receives, every file format it may answer with, and every way it can fail."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from arena.media import media_inspect
from tests.support.remote_3d_server import (
    OBJ_SAMPLE,
    Answer,
    Remote3DServer,
    glb_sample,
    png_sample,
    splat_ply_sample,
    splat_sample,
)
from workers.backends import (
    BackendConfigError,
    BackendError,
    MediaRequest,
    MediaResult,
    backend_class,
    backend_create,
    backend_validate,
)
from workers.backends.remote_3d import Remote3DBackend

PROMPT = "a wooden chair"


@pytest.fixture(scope="module")
def server() -> Iterator[Remote3DServer]:
    routes = {
        "bare-glb": Answer(glb_sample()),  # application/octet-stream, nothing naming the format
        "bare-splat": Answer(splat_sample()),
        "named-glb": Answer(
            glb_sample(), headers=(("Content-Disposition", "attachment; filename*=UTF-8''out.GLB"),)
        ),
        "gltf-said-png": Answer(glb_sample(), headers=(("X-Arena-Format", "png"),)),
    }
    with Remote3DServer(routes, hang_seconds=10) as running:
        yield running


def backend(server: Remote3DServer, route: str = "glb", **config: Any) -> Remote3DBackend:
    made = backend_create("remote_3d", {"url": server.url(route), **config})
    assert isinstance(made, Remote3DBackend)
    return made


def make(model: Remote3DBackend, **request: Any) -> MediaResult:
    request.setdefault("prompt", PROMPT)
    return model.generate(MediaRequest(**request), lambda fraction: None)


def failure(model: Remote3DBackend, **request: Any) -> str:
    with pytest.raises(BackendError) as caught:
        make(model, **request)
    return str(caught.value)


# --- answers -----------------------------------------------------------------------------------------------


def test_glb_answer_is_returned_as_a_checked_coloured_mesh(server: Remote3DServer) -> None:
    result = make(backend(server, "glb"))
    assert result.format == "glb"
    assert result.data == glb_sample()
    info = media_inspect(result.data, format_hint=result.format)
    assert (info.kind, info.meta["vertices"], info.meta["faces"], info.meta["textured"]) == (
        "mesh",
        8,
        12,
        True,
    )


def test_gaussian_splat_ply_named_by_content_disposition(server: Remote3DServer) -> None:
    result = make(backend(server, "ply"))
    assert (result.format, result.data) == ("ply", splat_ply_sample())
    info = media_inspect(result.data, format_hint=result.format)
    assert (info.kind, info.meta["splats"]) == ("splat", 16)


def test_splat_file_named_by_the_x_arena_format_header(server: Remote3DServer) -> None:
    result = make(backend(server, "splat"))
    assert (result.format, result.data) == ("splat", splat_sample())
    assert media_inspect(result.data, format_hint="splat").meta["splats"] == 16


def test_obj_named_by_its_content_type(server: Remote3DServer) -> None:
    result = make(backend(server, "obj"))
    assert (result.format, result.data) == ("obj", OBJ_SAMPLE)
    assert media_inspect(result.data, format_hint="obj").meta["faces"] == 1


def test_rfc_2231_filename_in_upper_case_names_the_format(server: Remote3DServer) -> None:
    assert make(backend(server, "named-glb")).format == "glb"


def test_unnamed_glb_is_recognised_by_its_content(server: Remote3DServer) -> None:
    assert make(backend(server, "bare-glb")).format == "glb"


def test_unnamed_splat_takes_its_format_from_the_config(server: Remote3DServer) -> None:
    assert make(backend(server, "bare-splat", format="splat")).format == "splat"
    # Without the config there is nothing to go by: .splat has no signature.
    assert "could not be recognised" in failure(backend(server, "bare-splat"))


def test_format_the_server_names_must_match_the_config(server: Remote3DServer) -> None:
    assert make(backend(server, "glb", format="glb")).format == "glb"
    message = failure(backend(server, "ply", format="glb"))
    assert message == "The 3D model server sent a PLY file; this model is set up for GLB."


def test_download_progress_follows_the_content_length_and_ends_at_one(server: Remote3DServer) -> None:
    fractions: list[float] = []
    result = backend(server, "glb-slow").generate(MediaRequest(prompt=PROMPT), fractions.append)
    assert result.data == glb_sample()
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert len({f for f in fractions if 0.0 < f < 1.0}) >= 3  # eight pieces arrive one by one


def test_an_error_raised_by_the_progress_callback_stops_the_download_unchanged(
    server: Remote3DServer,
) -> None:
    class Cancelled(Exception):
        pass

    def progress(fraction: float) -> None:
        if 0.0 < fraction < 1.0:
            raise Cancelled("the battle was abandoned")

    with pytest.raises(Cancelled):
        backend(server, "glb-slow").generate(MediaRequest(prompt=PROMPT), progress)


# --- the request -------------------------------------------------------------------------------------------


def test_text_request_is_multipart_with_prompt_seed_and_extra(server: Remote3DServer) -> None:
    make(backend(server, extra={"texture_size": 1024, "remesh": True}), seed=42)
    sent = server.last_request
    assert sent.content_type.startswith("multipart/form-data; boundary=")
    assert sent.fields == {
        "prompt": PROMPT,
        "seed": "42",
        "extra": json.dumps({"texture_size": 1024, "remesh": True}),
    }
    assert sent.files == {}
    assert "model/gltf-binary" in sent.headers["accept"]
    assert "authorization" not in sent.headers


def test_prompt_alone_is_still_multipart_and_omits_what_is_unset(server: Remote3DServer) -> None:
    make(backend(server))
    sent = server.last_request
    assert sent.content_type.startswith("multipart/form-data")
    assert sent.fields == {"prompt": PROMPT}


def test_seed_of_the_config_is_sent_when_the_request_has_none(server: Remote3DServer) -> None:
    make(backend(server, seed=9))
    assert server.last_request.fields["seed"] == "9"
    make(backend(server, seed=9), seed=3)
    assert server.last_request.fields["seed"] == "3"


@pytest.mark.parametrize(
    "image, filename, content_type",
    [
        (png_sample(), "input.png", "image/png"),
        (b"\xff\xd8\xff\xe0fake-jpeg", "input.jpg", "image/jpeg"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 fake", "input.webp", "image/webp"),
    ],
    ids=["png", "jpeg", "webp"],
)
def test_image_input_is_sent_as_a_file_part_without_the_prompt(
    server: Remote3DServer, image: bytes, filename: str, content_type: str
) -> None:
    result = make(backend(server, input="image"), image=image, prompt="ignored by an image-only model")
    assert result.format == "glb"
    sent = server.last_request
    assert sent.files == {"image": (filename, content_type, image)}
    assert "prompt" not in sent.fields


def test_both_input_sends_the_prompt_and_the_image(server: Remote3DServer) -> None:
    image = png_sample()
    make(backend(server, input="both"), image=image)
    assert server.last_request.fields["prompt"] == PROMPT
    assert server.last_request.files["image"][2] == image
    make(backend(server, input="both"), image=image, prompt="")
    assert "prompt" not in server.last_request.fields and "image" in server.last_request.files
    make(backend(server, input="both"))
    assert server.last_request.files == {}


def test_text_model_never_sends_an_image(server: Remote3DServer) -> None:
    make(backend(server), image=png_sample())
    assert server.last_request.files == {}


@pytest.mark.parametrize(
    "config, request_fields, message",
    [
        ({}, {"prompt": "  "}, "the prompt is empty"),
        ({"input": "image"}, {"prompt": PROMPT}, "no image was given"),
        ({"input": "both"}, {"prompt": ""}, "neither was given"),
    ],
)
def test_missing_input_fails_before_calling_the_server(
    server: Remote3DServer, config: dict[str, Any], request_fields: dict[str, Any], message: str
) -> None:
    before = len(server.requests)
    assert message in failure(backend(server, **config), **request_fields)
    assert len(server.requests) == before


def test_api_key_is_sent_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_TEST_3D_KEY", "sk-3d-secret-token")
    with Remote3DServer(api_key="sk-3d-secret-token") as guarded:
        assert make(backend(guarded, api_key_env="ARENA_TEST_3D_KEY")).format == "glb"
        assert guarded.last_request.headers["authorization"] == "Bearer sk-3d-secret-token"
        monkeypatch.setenv("ARENA_TEST_3D_KEY", "sk-wrong")
        assert failure(backend(guarded, api_key_env="ARENA_TEST_3D_KEY")) == (
            "The 3D model server refused the request (HTTP 401)."
        )


def test_unset_api_key_variable_fails_before_calling_the_server(
    server: Remote3DServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARENA_TEST_3D_UNSET", raising=False)
    before = len(server.requests)
    assert "ARENA_TEST_3D_UNSET" in failure(backend(server, api_key_env="ARENA_TEST_3D_UNSET"))
    assert len(server.requests) == before


# --- failures ----------------------------------------------------------------------------------------------


def assert_voter_safe(message: str, server: Remote3DServer) -> None:
    url = server.url("")
    for secret in ("hunyuan3d", "gpu-7", "internal", "127.0.0.1", url, url.rsplit(":", 1)[1].strip("/")):
        assert secret not in message


def test_server_error_reports_the_status_without_the_servers_text(server: Remote3DServer) -> None:
    message = failure(backend(server, "fault-500"))
    assert message == "The 3D model server answered HTTP 500."
    assert_voter_safe(message, server)


def test_unknown_route_is_an_http_error(server: Remote3DServer) -> None:
    assert failure(backend(server, "no-such-model")) == "The 3D model server answered HTTP 404."


def test_server_that_never_answers_times_out(server: Remote3DServer) -> None:
    started = time.monotonic()
    message = failure(backend(server, "fault-hang", timeout=0.3))
    assert message == "The 3D model server did not answer within 0.3 s."
    assert time.monotonic() - started < 5


def test_answer_cut_short_of_its_content_length_fails(server: Remote3DServer) -> None:
    message = failure(backend(server, "fault-truncated"))
    assert message == "The 3D model server's answer was cut off (connection closed early)."


def test_announced_length_over_the_limit_is_refused_before_reading(
    server: Remote3DServer, settings: Any
) -> None:
    settings.ARENA_MAX_MEDIA_BYTES = 1024 * 1024
    assert failure(backend(server, "fault-huge")) == (
        "The 3D model server's file is larger than the limit of 1,048,576 bytes."
    )


def test_endless_stream_is_abandoned_at_the_limit(server: Remote3DServer, settings: Any) -> None:
    settings.ARENA_MAX_MEDIA_BYTES = 256 * 1024
    started = time.monotonic()
    message = failure(backend(server, "fault-endless"))
    assert message == "The 3D model server's file is larger than the limit of 262,144 bytes."
    assert time.monotonic() - started < 10


def test_real_file_over_the_limit_is_refused(server: Remote3DServer, settings: Any) -> None:
    settings.ARENA_MAX_MEDIA_BYTES = len(glb_sample()) - 1
    assert "larger than the limit" in failure(backend(server, "glb"))
    settings.ARENA_MAX_MEDIA_BYTES = len(glb_sample())
    assert make(backend(server, "glb")).format == "glb"


def test_file_that_lies_about_its_format_fails_cleanly(server: Remote3DServer) -> None:
    message = failure(backend(server, "fault-lie"))
    assert message == (
        "The 3D model server sent an unusable file: "
        "The file is named .glb but does not start like a GLB file."
    )


def test_image_instead_of_a_3d_file_is_refused(server: Remote3DServer) -> None:
    assert (
        failure(backend(server, "fault-image"))
        == "The 3D model server sent image data (png), not a 3D object."
    )
    assert (
        failure(backend(server, "gltf-said-png"))
        == "The 3D model server sent a file of an unsupported type (png)."
    )


def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = backend_create("remote_3d", {"url": f"http://127.0.0.1:{port}/generate"})
    with pytest.raises(BackendError, match=r"^Could not connect to the 3D model server\.$"):
        make(model)


# --- config ------------------------------------------------------------------------------------------------


def test_valid_config_gets_its_defaults() -> None:
    assert Remote3DBackend.validate_config({"url": " https://3d.example/generate?variant=fast "}) == {
        "url": "https://3d.example/generate?variant=fast",
        "input": "text",
        "timeout": 300.0,
        "extra": {},
    }
    full = Remote3DBackend.validate_config(
        {
            "url": "http://10.0.0.5:8000/gen",
            "input": "both",
            "api_key_env": "TRELLIS_KEY",
            "timeout": 60,
            "format": ".KSPLAT",
            "extra": {"steps": 12},
            "seed": 1,
        }
    )
    assert (full["format"], full["timeout"], full["input"]) == ("splat", 60.0, "both")


def test_accepted_inputs_follow_the_input_field() -> None:
    assert Remote3DBackend.accepted_inputs({"url": "http://x"}) == frozenset({"text"})
    assert Remote3DBackend.accepted_inputs({"url": "http://x", "input": "image"}) == frozenset({"image"})
    assert Remote3DBackend.accepted_inputs({"url": "http://x", "input": "both"}) == frozenset(
        {"text", "image"}
    )
    with pytest.raises(BackendConfigError, match="input"):
        Remote3DBackend.accepted_inputs({"url": "http://x", "input": "audio"})


def test_backend_is_registered_for_3d_only() -> None:
    assert backend_class("remote_3d") is Remote3DBackend
    assert backend_validate("remote_3d", {"url": "http://x/gen"}, "3d")["input"] == "text"
    with pytest.raises(BackendConfigError, match="not text"):
        backend_validate("remote_3d", {"url": "http://x/gen"}, "text")


def test_api_key_in_the_config_is_refused_without_echoing_it() -> None:
    with pytest.raises(BackendConfigError) as caught:
        Remote3DBackend.validate_config({"url": "ftp://x", "api_key": "sk-do-not-echo"})
    assert "api_key_env" in str(caught.value) and "sk-do-not-echo" not in str(caught.value)


@pytest.mark.parametrize(
    "config, field",
    [
        ({}, "url"),
        ({"url": "  "}, "url"),
        ({"url": "ftp://3d.example/gen"}, "url"),
        ({"url": "http:///gen"}, "url"),
        ({"url": "https://user:pass@3d.example/gen"}, "url"),
        ({"url": "https://3d.example/gen#top"}, "url"),
        ({"url": "http://x", "input": "video"}, "input"),
        ({"url": "http://x", "input": ["text"]}, "input"),
        ({"url": "http://x", "api_key_env": "not a name"}, "api_key_env"),
        ({"url": "http://x", "timeout": 0}, "timeout"),
        ({"url": "http://x", "timeout": True}, "timeout"),
        ({"url": "http://x", "timeout": float("inf")}, "timeout"),
        ({"url": "http://x", "format": "png"}, "format"),
        ({"url": "http://x", "format": 3}, "format"),
        ({"url": "http://x", "extra": ["a"]}, "extra"),
        ({"url": "http://x", "extra": {"when": float("nan")}}, "extra"),
        ({"url": "http://x", "extra": {"obj": object()}}, "extra"),
        ({"url": "http://x", "seed": 1.5}, "seed"),
        ({"url": "http://x", "timout": 5}, "timout"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(BackendConfigError, match=field):
        Remote3DBackend.validate_config(config)
