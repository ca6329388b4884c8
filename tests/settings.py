"""Test settings: the real settings, pointed at this machine's PostgreSQL and Redis.

Nothing here exists only for tests except the service addresses (overridable by the environment)
and a faster password hasher.
"""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECRET_KEY", "arena-tests-only-not-a-secret")
# Per-run names, so two test runs on one machine never share a database, queue or cache key.
_RUN = f"arena-test-{os.getpid()}"
os.environ.setdefault("CHANNELS_PREFIX", _RUN)
os.environ.setdefault("CELERY_BROKER_KEY_PREFIX", f"{_RUN}:")
os.environ.setdefault("CACHE_KEY_PREFIX", _RUN)
os.environ.setdefault("ARENA_VAR_DIR", tempfile.mkdtemp(prefix="arena-test-var-"))
os.environ.setdefault("ARENA_DEMO_DELAY", "0.002")

from arena.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True  # the sources, never a stale `collectstatic` output
DATABASES["default"]["TEST"] = {"NAME": f"test_arena_{os.getpid()}"}  # noqa: F405
