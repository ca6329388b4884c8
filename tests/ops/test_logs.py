"""Structured logs: ARENA_LOG_FORMAT=json makes every process write one JSON object per line, with the
request id and battle code (web) or the task and its id (worker) where known."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from arena.logs import ContextFilter, JsonFormatter
from tests.ops.procs import ROOT, service_env, wait_until, web_start, worker_start
from workers.tasks import model_probe_task


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the console handler would print in JSON mode, for the loggers a request writes to."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    loggers = [logging.getLogger(name) for name in ("django.request", "arena")]
    for logger in loggers:
        logger.addHandler(handler)
    yield stream
    for logger in loggers:
        logger.removeHandler(handler)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.django_db
def test_a_requests_lines_carry_its_request_id_and_battle_and_the_response_returns_the_id(client, json_lines):
    response = client.get("/api/battles/Xy9-code", HTTP_X_REQUEST_ID="edge-7f3a")
    assert response.status_code == 404 and response["X-Request-ID"] == "edge-7f3a"
    (line,) = parsed(json_lines)
    assert set(line) == {"time", "level", "logger", "message", "request_id", "battle"}
    assert line["level"] == "WARNING" and line["logger"] == "django.request"
    assert line["message"] == "Not Found: /api/battles/Xy9-code"
    assert line["request_id"] == "edge-7f3a" and line["battle"] == "Xy9-code"
    assert line["time"].endswith("+00:00")


@pytest.mark.django_db
def test_an_unusable_request_id_is_replaced_and_lines_outside_a_request_have_none(client, json_lines):
    response = client.get("/api/battles/abc", HTTP_X_REQUEST_ID="two words" + "x" * 80)
    assert len(response["X-Request-ID"]) == 32 and response["X-Request-ID"].isalnum()
    assert parsed(json_lines)[-1]["request_id"] == response["X-Request-ID"]
    logging.getLogger("arena.test").warning("after the request")
    assert "request_id" not in parsed(json_lines)[-1] and "battle" not in parsed(json_lines)[-1]


def test_an_exception_stays_on_one_line_with_its_traceback(json_lines):
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("arena.test").exception("it broke")
    text = json_lines.getvalue()
    assert text.count("\n") == 1
    line = json.loads(text)
    assert line["message"] == "it broke" and "ValueError: bad\nvalue" in line["exc"]


def test_the_format_is_chosen_by_the_environment_and_a_bad_value_stops_start_up(tmp_path):
    code = "import django, logging; django.setup(); logging.getLogger('arena.probe').warning('hi %s', 'you')"

    def run(log_format: str) -> subprocess.CompletedProcess:
        env = service_env(ARENA_LOG_FORMAT=log_format, ARENA_VAR_DIR=str(tmp_path))
        command = [sys.executable, "-c", code]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    line = json.loads(run("json").stderr.strip().splitlines()[-1])
    assert line["logger"] == "arena.probe" and line["message"] == "hi you" and line["level"] == "WARNING"
    text = run("text").stderr.strip().splitlines()[-1]
    assert text.endswith("WARNING arena.probe hi you") and not text.startswith("{")
    refused = run("xml")
    assert refused.returncode != 0 and "ARENA_LOG_FORMAT must be one of" in refused.stderr


@pytest.mark.django_db
def test_in_json_mode_the_web_server_writes_only_json_lines_and_the_worker_its_records_as_json():
    env = service_env(ARENA_LOG_FORMAT="json")
    web, url = web_start(env)
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    try:
        worker = worker_start([queue], env)
    except BaseException:
        web.stop(graceful=False)
        raise
    try:
        import httpx

        httpx.get(f"{url}/api/battles/Zz-code", headers={"X-Request-ID": "probe-1"})
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(b"NOT HTTP\r\n\r\n")  # uvicorn's own warning goes through the same handler
            sock.recv(1024)
        model_probe_task.apply_async(args=[0], queue=queue)  # no such model: the task fails and says so
        wait_until(lambda: "raised unexpected" in worker.log(), 20, "the task's failure logged", worker)
        wait_until(lambda: "Invalid HTTP request" in web.log(), 10, "uvicorn's warning logged", web)

        web_lines = [json.loads(line) for line in web.log().splitlines() if line.strip()]
        (request,) = [line for line in web_lines if line.get("request_id") == "probe-1"]
        assert request["battle"] == "Zz-code" and request["message"] == "Not Found: /api/battles/Zz-code"
        assert any(line["logger"].startswith("uvicorn") for line in web_lines)

        # Celery's start-up banner is printed, not logged; every log record is a JSON line.
        records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        assert any(record["message"].endswith(" ready.") for record in records)
        failed = [record for record in records if "raised unexpected" in record["message"]]
        assert failed and failed[0]["task"] == "workers.tasks.model_probe_task" and failed[0]["task_id"]
        assert failed[0]["level"] == "ERROR" and "DoesNotExist" in failed[0]["exc"]
    finally:
        worker.stop(graceful=False)
        web.stop(graceful=False)
