"""Settings helpers fail loudly on bad values instead of falling back silently."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from arena.env import env_bool, env_choice, env_float, env_int, env_list


def test_booleans_accept_only_true_or_false_words(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "off")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG must be true or false"):
        env_bool("X_FLAG", False)


def test_numbers_reject_garbage_and_values_below_the_minimum(monkeypatch):
    monkeypatch.setenv("X_NUM", "12")
    assert env_int("X_NUM", 1) == 12
    monkeypatch.setenv("X_NUM", "twelve")
    with pytest.raises(ImproperlyConfigured, match="must be an integer"):
        env_int("X_NUM", 1)
    monkeypatch.setenv("X_NUM", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env_float("X_NUM", 1.0, minimum=0.0)


def test_lists_and_choices(monkeypatch):
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    monkeypatch.setenv("X_CHOICE", "nope")
    with pytest.raises(ImproperlyConfigured, match="must be one of"):
        env_choice("X_CHOICE", "a", {"a", "b"})


def _settings_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='arena.settings'; django.setup()"
    clean = {"PATH": "/usr/bin:/bin", "ARENA_VAR_DIR": "/tmp/arena-settings-test", **env}
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)


def test_a_database_url_without_a_secret_key_stops_the_process():
    result = _settings_with({"DATABASE_URL": "postgres://x@127.0.0.1/x"})
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_a_bad_debug_value_stops_the_process():
    result = _settings_with({"DEBUG": "sometimes"})
    assert result.returncode != 0 and "DEBUG must be true or false" in result.stderr


def test_the_embedded_default_needs_no_environment():
    assert _settings_with({}).returncode == 0


@pytest.mark.django_db
def test_migrations_match_the_models():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
