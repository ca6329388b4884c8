"""Shared fixtures. Tests run against the real PostgreSQL and Redis (see tests/settings.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.test import Client

from arena.demo import demo_seed
from arena.models import Battle, Generation, ModelEntry
from tests.support.asgi import AsgiServer
from voting.models import Voter


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last (a stable sort keeps pytest-django's order otherwise): while Playwright is open an
    event loop runs in the main thread, and an async test after it could not start its own."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with none of this run's cache keys: a rate counter, a debounce flag or a sweep lock
    left by an earlier test would change what this one sees. Other runs' keys (other prefixes) are kept."""
    from django.core.cache import cache

    prefix = settings.CACHES["default"].get("KEY_PREFIX")
    if not prefix:
        cache.clear()
        return
    client = cache._cache.get_client(None, write=True)  # Django's RedisCache
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _own_channel_layer() -> Iterator[None]:
    """Each test's event loop gets a channel layer of its own. channels-redis binds its receive lock to the
    loop that receives first; a server process has one loop, but each async test and each test server here
    makes a new one, and a receive cancelled as the last test's loop closed must not leave its lock to this
    one."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def demo_models(db: None) -> list[ModelEntry]:
    demo_seed(media=False)  # the text demo models; tests of the image and 3D demo seed their own
    return list(ModelEntry.objects.filter(backend_kind="demo"))


@pytest.fixture
def make_model(db: None) -> Callable[..., ModelEntry]:
    counter = iter(range(10_000))

    def make(**fields: object) -> ModelEntry:
        n = next(counter)
        defaults: dict[str, object] = {
            "slug": f"model-{n}",
            "display_name": f"Model {n}",
            "organization": f"Org {n}",
            "backend_kind": "demo",
            "backend_config": {"persona": "concise", "delay": 0.001},
        }
        defaults.update(fields)
        return ModelEntry.objects.create(**defaults)

    return make


@pytest.fixture
def alice() -> Client:
    """Alice starts battles; she owns them."""
    return Client()


@pytest.fixture
def bob() -> Client:
    """Bob is another browser session: he must be refused on Alice's battles."""
    return Client()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: object) -> Iterator[object]:
    """A real Celery worker on the Redis broker, in this process on threads (see arena.inprocess)."""
    from arena.inprocess import BASE_QUEUES, worker_start

    queues = [*BASE_QUEUES, "gen-text", "gen-image", "gen-3d", "gpu-test"]
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        worker = worker_start(concurrency=6, beat=False, queues=queues)
    yield worker
    worker.stop()


@pytest.fixture(scope="session", autouse=True)
def _stray_connections_closed(django_db_setup: None, django_db_blocker: object) -> Iterator[None]:
    """Worker threads and async tests' helper threads keep database sessions open; end them at the close of
    the run so the test database can be dropped cleanly."""
    yield
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        _close_other_connections()


def _close_other_connections() -> None:
    """Worker threads keep their database sessions; end them so the test database can be dropped."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def battle_settled(code: str) -> Callable[[], bool]:
    def check() -> bool:
        return Battle.objects.get(code=code).status != Battle.Status.GENERATING

    return check


@pytest.fixture
def worker(transactional_db: None, celery_worker: object) -> Iterator[object]:
    """The session's worker for one test; at teardown it waits until the worker is idle, so no
    generation of this test is still writing when the database is flushed for the next."""
    yield celery_worker
    from celery.worker import state

    wait_for(
        lambda: (
            not state.active_requests
            and not Generation.objects.filter(status__in=["queued", "running"]).exists()
        ),
        timeout=30,
    )


@pytest.fixture
def asgi_server(worker: object) -> Iterator[AsgiServer]:
    with AsgiServer() as server:
        yield server


@pytest.fixture
def voter(db: None) -> Voter:
    return Voter.objects.create(session_hash="x" * 64)
