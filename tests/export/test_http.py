"""The staff-only HTTP export: refused to everyone else, streamed to staff (also under ASGI)."""

from __future__ import annotations

import io

import httpx
import orjson
import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

pytestmark = pytest.mark.django_db


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


def test_an_anonymous_visitor_is_refused(client, arena_history):
    arena_history(3)
    response = client.get("/api/export/battles.jsonl")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_a_signed_in_user_who_is_not_staff_is_refused(arena_history):
    arena_history(3)
    response = as_user(User.objects.create_user("dave")).get("/api/export/battles.jsonl")
    assert response.status_code == 403


def test_staff_without_the_export_permission_is_refused(arena_history):
    arena_history(3)
    charlie = User.objects.create_user("charlie", is_staff=True)
    assert as_user(charlie).get("/api/export/battles.jsonl").status_code == 403
    charlie.user_permissions.add(Permission.objects.get(codename="export_battle"))
    charlie = User.objects.get(id=charlie.id)  # permissions are cached on the instance
    assert as_user(charlie).get("/api/export/battles.jsonl").status_code == 200


def test_staff_get_the_filtered_export_as_a_download(arena_history, root):
    votes = arena_history(20)
    response = as_user(root).get("/api/export/battles.jsonl", {"counted_only": "1", "modality": "text"})
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="battles.jsonl"'
    records = [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    expected = [v for v in votes if v.counted and v.battle.modality == "text"]
    assert [r["question_id"] for r in records] == [v.battle.code for v in expected]


def test_parquet_and_csv_come_over_http_too(arena_history, root):
    arena_history(12)
    client = as_user(root)
    parquet = b"".join(client.get("/api/export/battles.parquet").streaming_content)
    assert pq.read_table(io.BytesIO(parquet)).num_rows == 12
    text = b"".join(client.get("/api/export/battles.csv").streaming_content).decode()
    assert text.startswith("question_id,") and len(text.splitlines()) == 13


def test_a_bad_filter_or_format_is_a_json_error(root):
    client = as_user(root)
    response = client.get("/api/export/battles.jsonl", {"since": "soon"})
    assert response.status_code == 400 and "since must be a date" in response.json()["error"]
    assert client.get("/api/export/battles.xlsx").status_code == 404


def test_under_asgi_the_export_is_streamed_chunk_by_chunk(arena_history, root, asgi_server, settings):
    """Through uvicorn, as deployed: an async iterator, so ASGI sends each page as it is made."""
    arena_history(25)
    settings.ARENA_EXPORT_CHUNK = 10
    client = as_user(root)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    with httpx.stream(
        "GET", f"{asgi_server.url}/api/export/battles.jsonl", cookies=cookies, timeout=30
    ) as reply:
        assert reply.status_code == 200 and reply.headers.get("transfer-encoding") == "chunked"
        body = b"".join(reply.iter_bytes())
    assert len(body.splitlines()) == 25
    anonymous = httpx.get(f"{asgi_server.url}/api/export/battles.jsonl", timeout=30)
    assert anonymous.status_code == 403
