"""docker-compose.yml wires the roles the architecture names, and compose accepts it where installed."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_role_with_real_services():
    services = load()["services"]
    roles = {"postgres", "redis", "web", "worker-cpu", "worker-gpu0", "beat", "migrate", "flower"}
    assert roles <= set(services)
    env = services["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
    assert env["ARENA_LOG_FORMAT"] == "${ARENA_LOG_FORMAT:-json}", "deployments log JSON lines by default"


def test_flower_monitors_the_same_broker_behind_a_password_on_localhost_only():
    services = load()["services"]
    flower = services["flower"]
    assert flower["command"][:4] == ["celery", "-A", "arena", "flower"]
    assert flower["build"]["args"]["EXTRAS"] == "[ops]"
    assert flower["environment"]["REDIS_URL"] == services["web"]["environment"]["REDIS_URL"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    for name in ("worker-cpu", "worker-gpu0"):
        assert "-E" in services[name]["command"], f"{name} sends the task events Flower shows"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["ops"] == ["flower==2.2.0"]


def test_the_gpu_worker_reserves_its_gpu_and_consumes_its_own_queue():
    gpu = load()["services"]["worker-gpu0"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"] and device["device_ids"] == ["0"]
    command = gpu["command"]
    assert command[command.index("-Q") + 1] == "gpu-0"
    assert gpu["build"]["args"]["EXTRAS"] == "[worker]"


def test_compose_config_accepts_the_file_when_compose_is_installed(tmp_path):
    binary = shutil.which("docker-compose")
    command = [binary, "config", "-q"] if binary else None
    if command is None and shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        command = ["docker", "compose", "config", "-q"] if probe.returncode == 0 else None
    if command is None:
        # Without a compose binary the structural tests above are what checks the file.
        assert yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        return
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={"SECRET_KEY": "test", "FLOWER_BASIC_AUTH": "ops:test", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
