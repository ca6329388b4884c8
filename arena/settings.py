"""Arena settings: one place, read from the environment.

With nothing set you get the embedded default: SQLite, an in-memory channel layer, a Celery worker
inside the web process on an in-memory broker, demo models. DATABASE_URL and REDIS_URL switch to
PostgreSQL, channels-redis and a Redis broker; the code paths are the same.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from arena.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ARENA_VAR_DIR", str(BASE_DIR / "var")))

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
EMBEDDED = not DATABASE_URL


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set")
    # Embedded default: a random key kept on disk so sessions survive a restart.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "arena",
    "voting",
    "ranking",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "arena.urls"
ASGI_APPLICATION = "arena.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if DATABASE_URL:
    # Persistent connections: a worker thread reuses its connection across generations instead of paying
    # a PostgreSQL handshake per task.
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0), conn_health_checks=True
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "arena.sqlite3",
            "OPTIONS": {
                # Worker threads and the web share one file: WAL lets readers run beside a writer, and
                # IMMEDIATE transactions queue writers instead of failing with "database is locked".
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", ""),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNELS_PREFIX", "asgi")},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "arena.channel_layers.EmbeddedChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_AGE = 60 * 60 * 24 * 365
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "celery": {"level": env_str("CELERY_LOG_LEVEL", "WARNING")},
        "httpx": {"level": "WARNING"},  # one INFO line per model-server request is noise
        "kombu.connection": {"level": "ERROR"},
    },
}

# --- Celery --------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
# A memory broker only exists inside one process, so the worker must live in the web process too.
CELERY_IN_PROCESS_WORKER = env_bool("CELERY_IN_PROCESS_WORKER", CELERY_BROKER_URL.startswith("memory://"))
CELERY_IN_PROCESS_CONCURRENCY = env_int("CELERY_IN_PROCESS_CONCURRENCY", 8, minimum=2)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    {"polling_interval": 0.005} if CELERY_BROKER_URL.startswith("memory://") else {"visibility_timeout": 3600}
)
if env_str("CELERY_BROKER_KEY_PREFIX"):
    # Several deployments (or test runs) can share one Redis without taking each other's tasks.
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env_str("CELERY_BROKER_KEY_PREFIX")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "generation-sweep": {"task": "workers.tasks.generation_sweep_task", "schedule": 30.0},
    "model-probe": {"task": "workers.tasks.model_probe_task", "schedule": 60.0},
}

# --- Arena ---------------------------------------------------------------------------------------
ARENA_MAX_PROMPT_CHARS = env_int("ARENA_MAX_PROMPT_CHARS", 30_000, minimum=1)
ARENA_MAX_TURNS = env_int("ARENA_MAX_TURNS", 50, minimum=1)
ARENA_GENERATION_SOFT_LIMIT = env_int("ARENA_GENERATION_SOFT_LIMIT", 300, minimum=1)
ARENA_GENERATION_HARD_LIMIT = env_int("ARENA_GENERATION_HARD_LIMIT", 330, minimum=2)
# A row still `running` this long after it started lost its worker: the sweeper requeues or fails it.
ARENA_GENERATION_STUCK_AFTER = env_int("ARENA_GENERATION_STUCK_AFTER", 360, minimum=1)
ARENA_GENERATION_MAX_ATTEMPTS = env_int("ARENA_GENERATION_MAX_ATTEMPTS", 2, minimum=1)
# Flush the partial output to the database this often, so a reload mid-stream shows it.
ARENA_STREAM_FLUSH_SECONDS = env_float("ARENA_STREAM_FLUSH_SECONDS", 0.5, minimum=0.0)
ARENA_OUTAGE_AFTER_FAILURES = env_int("ARENA_OUTAGE_AFTER_FAILURES", 3, minimum=1)
ARENA_NEW_MODEL_BOOST = env_float("ARENA_NEW_MODEL_BOOST", 2.0, minimum=1.0)
ARENA_NEW_MODEL_VOTES = env_int("ARENA_NEW_MODEL_VOTES", 3000, minimum=0)
ARENA_TARGET_SHARE = env_float("ARENA_TARGET_SHARE", 0.5, minimum=0.0)
ARENA_DEMO_DELAY = env_float("ARENA_DEMO_DELAY", 0.03, minimum=0.0)
ARENA_HASH_SALT = env_str("ARENA_HASH_SALT", SECRET_KEY)
ARENA_STORE_RAW_IP = env_bool("ARENA_STORE_RAW_IP", False)
ARENA_IP_HEADER = env_choice(
    "ARENA_IP_HEADER", "REMOTE_ADDR", {"REMOTE_ADDR", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP"}
)
