"""The content check's layers: word and pattern lists, a real local classifier, a real moderation API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from arena import moderation
from arena.moderation import ModerationUnavailable, content_check, image_check, output_check
from tests.support.tiny_classifier import tiny_image_classifier_save, tiny_text_classifier_save


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_text_classifier_save(tmp_path_factory.mktemp("moderation") / "text")


@pytest.fixture(scope="module")
def image_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_image_classifier_save(tmp_path_factory.mktemp("moderation") / "image")


class ModerationServer:
    """An OpenAI-style /v1/moderations endpoint on 127.0.0.1 that flags texts containing "forbidden"."""

    def __init__(self, *, api_key: str = "mod-key", status: int = 200, body: object = None) -> None:
        self.api_key, self.status, self.body = api_key, status, body
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"auth": self.headers.get("Authorization"), "body": payload})
                if self.headers.get("Authorization") != f"Bearer {owner.api_key}":
                    return self._send(401, {"error": {"message": "bad key"}})
                flagged = "forbidden" in payload["input"]
                answer = owner.body or {
                    "id": "modr-1",
                    "results": [
                        {"flagged": flagged, "categories": {"harassment": flagged, "violence": False}}
                    ],
                }
                self._send(owner.status, answer)

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/moderations"

    def __enter__(self) -> ModerationServer:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def moderation_api(settings) -> Iterator[ModerationServer]:
    with ModerationServer() as server:
        settings.ARENA_MODERATION_API_URL = server.url
        settings.ARENA_MODERATION_API_KEY = "mod-key"
        settings.ARENA_MODERATION_API_MODEL = "omni-moderation-latest"
        yield server


def test_nothing_is_flagged_when_no_layer_is_configured():
    assert content_check("anything at all, even poison") == moderation.CLEAN


def test_a_blocked_term_is_found_as_a_whole_word_whatever_its_case_or_width(settings):
    settings.ARENA_BLOCKED_TERMS = ["meth recipe", "ass"]
    full_width_meth = "\uff2d\uff25\uff34\uff28"
    verdict = content_check(f"Give me a {full_width_meth}   Recipe please")
    assert verdict.flagged and verdict.reasons == ('contains the blocked term "meth recipe"',)
    assert not content_check("This class has a brass band").flagged, "blocked words match whole words only"


def test_a_blocked_pattern_matches_ignoring_case_and_says_which(settings):
    settings.ARENA_BLOCKED_PATTERNS = [r"\bcredit\s*card\s*\d{4}", r"kill\s+(yourself|urself)"]
    verdict = content_check("KILL   URSELF")
    assert verdict.flagged and verdict.reasons == ("matches blocked pattern #2",)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("not json", "must be a JSON array of strings"),
        ('["ok", 3]', "non-empty strings"),
        ('["(unclosed"]', "is not a valid regular expression"),
    ],
)
def test_a_bad_pattern_setting_stops_start_up_with_the_reason(raw, message):
    env = {**os.environ, "ARENA_BLOCKED_PATTERNS": raw, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_the_local_classifier_flags_a_trigger_word_anywhere_in_a_long_text(settings, text_model):
    settings.ARENA_MODERATION_MODEL_PATH = str(text_model)
    settings.ARENA_MODERATION_WINDOW_CHARS = 200
    clean = "tell me a story about a robot who learns to paint " * 20
    assert not content_check(clean).flagged
    verdict = content_check(clean + " and then it drank the POISON.")
    assert verdict.flagged and verdict.reasons[0].startswith("classified as toxic (")


def test_the_classifier_threshold_decides(settings, text_model):
    settings.ARENA_MODERATION_MODEL_PATH = str(text_model)
    settings.ARENA_MODERATION_THRESHOLD = 0.01  # the tiny model gives clean text about 0.06 "toxic"
    assert content_check("the quick brown fox").flagged


def test_a_classifier_without_any_flagged_label_is_refused_loudly(settings, text_model):
    settings.ARENA_MODERATION_MODEL_PATH = str(text_model)
    settings.ARENA_MODERATION_FLAGGED_LABELS = ["hate"]
    with pytest.raises(ImproperlyConfigured, match="none of the flagged labels"):
        content_check("hello")


def test_the_moderation_api_is_called_with_the_key_and_its_flag_is_explained(moderation_api):
    assert not content_check("a kind question").flagged
    verdict = content_check("something forbidden")
    assert verdict.reasons == ("flagged by the moderation service (harassment)",)
    request = moderation_api.requests[-1]
    assert request["auth"] == "Bearer mod-key"
    assert request["body"] == {"input": "something forbidden", "model": "omni-moderation-latest"}


def test_cheap_layers_run_first_so_a_blocked_word_never_reaches_the_api(settings, moderation_api):
    settings.ARENA_BLOCKED_TERMS = ["forbidden"]
    assert content_check("forbidden").reasons == ('contains the blocked term "forbidden"',)
    assert moderation_api.requests == []


def test_an_api_failure_lets_text_through_unless_failing_closed(settings, moderation_api):
    moderation_api.status = 500
    assert not content_check("something forbidden").flagged
    settings.ARENA_MODERATION_FAIL_CLOSED = True
    with pytest.raises(ModerationUnavailable):
        content_check("something forbidden")
    verdict = output_check("something forbidden")
    assert verdict.flagged and "could not run" in verdict.reason, "failing closed hides an unchecked answer"


def test_a_malformed_api_answer_counts_as_a_failure(settings, moderation_api):
    moderation_api.body = {"results": [{"flagged": "yes"}]}
    settings.ARENA_MODERATION_FAIL_CLOSED = True
    with pytest.raises(ModerationUnavailable):
        content_check("anything")


def test_a_wrong_api_key_is_a_failure_and_the_key_is_not_in_the_message(settings, moderation_api):
    settings.ARENA_MODERATION_API_KEY = "wrong-key"
    settings.ARENA_MODERATION_FAIL_CLOSED = True
    with pytest.raises(ModerationUnavailable) as caught:
        content_check("anything")
    assert "wrong-key" not in str(caught.value) and "mod-key" not in str(caught.value)


def test_the_image_classifier_flags_a_red_picture_and_passes_a_green_one(settings, image_model, tmp_path):
    settings.ARENA_MODERATION_IMAGE_MODEL_PATH = str(image_model)
    red, green = tmp_path / "red.png", tmp_path / "green.png"
    Image.new("RGB", (40, 40), (230, 10, 10)).save(red)
    Image.new("RGB", (40, 40), (10, 230, 10)).save(green)
    verdict = image_check(red)
    assert verdict.flagged and verdict.reasons[0].startswith("image classified as nsfw (")
    assert not image_check(green).flagged
    assert not image_check(Image.open(green)).flagged


def test_no_image_classifier_means_images_pass(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    assert image_check(path) == moderation.CLEAN
