"""Output files on S3-compatible storage (ARENA_STORAGE=s3), against a local S3 server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from arena.media import media_inspect
from tests.support.asgi import free_port
from tests.support.media import client_voter, glb_bytes, media_battle_make

BUCKET = "arena-media"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_storage(settings, s3_endpoint: str) -> str:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "access_key": "k",
                "secret_key": "s",
                "default_acl": "private",
                "file_overwrite": False,
            },
        },
    }
    return s3_endpoint


@pytest.mark.django_db
def test_outputs_are_written_to_the_bucket_and_served_through_the_battle(alice, s3_storage):
    voter = client_voter(alice)
    battle = media_battle_make(
        voter=voter, modality="3d", sides={"a": (glb_bytes("box"), "glb"), "b": (glb_bytes("sphere"), "glb")}
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3_storage,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    stored = {g.media_name for g in battle.generations.all()}
    assert stored <= keys and all(k.startswith("outputs/") and k.endswith(".glb") for k in stored)
    assert not any(battle.model_a.slug in k or battle.model_b.slug in k for k in keys)

    response = alice.get(f"/m/{battle.code}/0/b.glb")
    assert response.status_code == 200 and response["Content-Type"] == "model/gltf-binary"
    body = b"".join(response.streaming_content)
    assert media_inspect(body, format_hint="glb").kind == "mesh"
    assert (
        body
        == client.get_object(Bucket=BUCKET, Key=battle.generations.get(side="b").media_name)["Body"].read()
    )


def test_s3_storage_without_a_bucket_stops_the_process_with_a_clear_error(tmp_path):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "ARENA_STORAGE": "s3",
        "ARENA_S3_BUCKET": "",
        "DJANGO_SETTINGS_MODULE": "arena.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "ARENA_STORAGE=s3 needs ARENA_S3_BUCKET" in done.stderr
