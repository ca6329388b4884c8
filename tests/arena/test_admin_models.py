"""The model registry in the admin: configs are checked on save, probes report back."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from arena.models import ModelEntry


@pytest.fixture
def staff_client(client, db):
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    return client


def _form(**overrides: str) -> dict[str, str]:
    data = {
        "slug": "new-model",
        "display_name": "New Model",
        "modality": "text",
        "backend_kind": "demo",
        "backend_config": '{"persona": "concise"}',
        "weight": "1.0",
        "active": "on",
        "released": "on",
    }
    data.update(overrides)
    return data


def test_a_model_with_a_bad_backend_config_is_refused_with_the_reason(staff_client):
    response = staff_client.post(
        "/admin/arena/modelentry/add/", _form(backend_config='{"persona": "pirate"}')
    )
    assert response.status_code == 200
    assert "persona must be one of" in response.content.decode()
    assert not ModelEntry.objects.exists()


def test_an_unknown_backend_kind_is_refused(staff_client):
    response = staff_client.post("/admin/arena/modelentry/add/", _form(backend_kind="quantum"))
    assert "unknown backend kind" in response.content.decode()
    assert not ModelEntry.objects.exists()


def test_a_good_model_is_saved_and_its_probe_reports_success(staff_client):
    response = staff_client.post("/admin/arena/modelentry/add/", _form())
    assert response.status_code == 302
    model = ModelEntry.objects.get(slug="new-model")
    response = staff_client.post(
        "/admin/arena/modelentry/", {"action": "probe", "_selected_action": [model.id]}, follow=True
    )
    assert "new-model: ok" in response.content.decode().lower()


def test_a_visitor_cannot_open_the_model_admin(client, db):
    response = client.get("/admin/arena/modelentry/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
