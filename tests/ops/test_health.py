"""Health, readiness and metrics endpoints, and the production settings check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from arena.models import Battle, Generation
from voting.models import Vote


@pytest.mark.django_db
def test_liveness_answers_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_readiness_checks_database_cache_broker_and_reports_workers(client, worker):
    from workers.schedule import schedule_sent_record

    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():  # as beat would have, just now
        schedule_sent_record(name=name, task=entry["task"])
    data = client.get("/readyz?strict=1").json()
    assert data["status"] == "ready", data
    assert {name: c["ok"] for name, c in data["checks"].items()} == {
        "database": True,
        "cache": True,
        "broker": True,
        "workers": True,
        "schedule": True,
    }


@pytest.mark.django_db
def test_readiness_fails_with_503_when_the_broker_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_metrics_expose_battles_votes_generations_and_queues(client, demo_models, voter, settings):
    settings.ARENA_METRICS_OPEN = True  # closed without a token in production settings (tests/security)
    a, b = demo_models[:2]
    battle = Battle.objects.create(voter=voter, model_a=a, model_b=b, conversation=["x"], status="voted")
    Generation.objects.create(battle=battle, turn=0, side="a", model=a, status="done")
    Vote.objects.create(battle=battle, voter=voter, choice="a")
    text = client.get("/metrics").content.decode()
    assert 'arena_battles{modality="text",status="voted"} 1' in text
    assert 'arena_votes{counted="true",modality="text"} 1' in text
    assert 'arena_generations{status="done"} 1' in text
    assert 'arena_queue_depth{queue="gen-text"}' in text
    settings.ARENA_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_the_deploy_check_is_clean_with_production_settings(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "SECRET_KEY": "x7$k2" * 12,
        "ALLOWED_HOSTS": "arena.example.org",
        "DEBUG": "false",
        "SECURE_COOKIES": "true",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_PRELOAD": "true",
        "BEHIND_TLS_PROXY": "true",
        "ARENA_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
