"""Arena settings: one place, read from the environment.

With nothing set you get the embedded default: SQLite, an in-memory channel layer, a Celery worker
inside the web process on an in-memory broker, demo models. DATABASE_URL and REDIS_URL switch to
PostgreSQL, channels-redis and a Redis broker; the code paths are the same.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from arena.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_regex_list,
    env_str,
)

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
    "arena.logs.RequestContextMiddleware",  # first: every later line of the request carries its id
    "arena.security_headers.SecurityHeadersMiddleware",  # CSP and friends on every response, errors included
    "arena.middleware.HostileRequestMiddleware",  # NUL or broken text in the URL: 400 before any view
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "arena.middleware.DatabaseUnavailableMiddleware",
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
    # A connection pool (psycopg's): Django's ASGI handler runs each request's sync code in a fresh thread, so
    # per-thread persistent connections would mean a PostgreSQL handshake per request.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=False)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DB_POOL_MIN", 2, minimum=0),
            "max_size": env_int("DB_POOL_MAX", 20, minimum=1),
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0, minimum=0.1),
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
    # Sessions read from Redis, written through to the database: one query less on every request.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's async pool refuses its 101st simultaneous connection ("Too many connections")
                # instead of waiting: a burst of sockets joining or leaving groups at once needs more.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": env_int("CHANNELS_REDIS_MAX_CONNECTIONS", 1000, minimum=10),
                        # redis-py 8 reads with a 5 s socket timeout by default, the same as channels-redis's
                        # 5 s BZPOPMIN: an idle websocket's receive timed out and its consumer died. Longer.
                        "socket_timeout": 15,
                    }
                ],
                "prefix": env_str("CHANNELS_PREFIX", "asgi"),
            },
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
# Image and 3D outputs, gallery files and uploaded input images. Names are random (arena.media) and the
# files are reached only through the battle's own URLs, so MEDIA_URL is never exposed to browsers.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
ARENA_STORAGE = env_choice("ARENA_STORAGE", "filesystem", {"filesystem", "s3"})
if ARENA_STORAGE == "s3":
    # Any S3-compatible store (AWS, MinIO, R2) through django-storages: pip install -e '.[s3]'.
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("ARENA_S3_BUCKET") or None,
            "endpoint_url": env_str("ARENA_S3_ENDPOINT_URL") or None,
            "region_name": env_str("ARENA_S3_REGION") or None,
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
    if not _default_storage["OPTIONS"]["bucket_name"]:
        raise ImproperlyConfigured("ARENA_STORAGE=s3 needs ARENA_S3_BUCKET.")
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve collected files (compressed, with long cache lifetimes) once `collectstatic` has run; straight from
# the source folders before that. Tests always read the sources.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", not STATIC_ROOT.is_dir())

# Production hardening, all from the environment (see README, "Deployment").
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
ARENA_METRICS_TOKEN = env_str("ARENA_METRICS_TOKEN")

SESSION_COOKIE_AGE = 60 * 60 * 24 * 365
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# One line per record: text for people, or one JSON object (time, level, logger, message, request_id, battle,
# task) for a log pipeline. See arena/logs.py.
from arena.logs import logging_config  # noqa: E402  (no models imported)

ARENA_LOG_FORMAT = env_choice("ARENA_LOG_FORMAT", "text", {"text", "json"})
LOGGING = logging_config(
    log_format=ARENA_LOG_FORMAT,
    level=env_str("LOG_LEVEL", "INFO"),
    celery_level=env_str("CELERY_LOG_LEVEL", "WARNING"),
)

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
# Beat: with the in-memory broker it must run on a thread of the server process (arena.inprocess), where its
# messages reach the worker; with Redis it is its own process (`celery -A arena beat`, compose's `beat`).
CELERY_IN_PROCESS_BEAT = env_bool("CELERY_IN_PROCESS_BEAT", CELERY_BROKER_URL.startswith("memory://"))
CELERY_BEAT_SCHEDULER = "workers.schedule:RecordingPersistentScheduler"
CELERY_BEAT_SCHEDULE = {
    "generation-sweep": {
        "task": "workers.tasks.generation_sweep_task",
        "schedule": float(env_int("ARENA_SWEEP_SECONDS", 30, minimum=1)),
    },
    "model-probe": {
        "task": "workers.tasks.model_probe_task",
        "schedule": float(env_int("ARENA_PROBE_SECONDS", 60, minimum=1)),
    },
    "leaderboards": {
        "task": "ranking.tasks.leaderboard_refresh_all_task",
        "schedule": float(env_int("ARENA_LEADERBOARD_REFRESH_SECONDS", 300, minimum=1)),
        "options": {"queue": "ranking"},
    },
    # Thins stored leaderboard snapshots (ranking.retention: staff-published, frozen and latest ones stay).
    "snapshot-retention": {
        "task": "ranking.tasks.snapshot_retention_task",
        "schedule": float(env_int("ARENA_SNAPSHOT_RETENTION_SECONDS", 3600, minimum=1)),
        "options": {"queue": "ranking"},
    },
}

# --- Arena ---------------------------------------------------------------------------------------
ARENA_MAX_PROMPT_CHARS = env_int("ARENA_MAX_PROMPT_CHARS", 30_000, minimum=1)
ARENA_MAX_TURNS = env_int("ARENA_MAX_TURNS", 50, minimum=1)
# Image and 3D files: a generated or gallery file, an uploaded input image, and decoded image size.
ARENA_MAX_MEDIA_BYTES = env_int("ARENA_MAX_MEDIA_BYTES", 100 * 1024 * 1024, minimum=1024)
ARENA_MAX_UPLOAD_BYTES = env_int("ARENA_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1024)
ARENA_MAX_IMAGE_PIXELS = env_int("ARENA_MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
# Multi-criteria votes per modality ("modality=key,key;…"): each criterion gets its own board beside the
# overall one. Criteria are optional for the voter; the overall choice is always required.
ARENA_VOTE_CRITERIA = {
    modality: [key for key in keys.split(",") if key]
    for modality, _, keys in (
        item.partition("=")
        for item in env_str(
            "ARENA_VOTE_CRITERIA", "3d=geometry,texture,alignment;image=alignment,quality"
        ).split(";")
        if item.strip()
    )
}
for _modality, _keys in ARENA_VOTE_CRITERIA.items():
    _keys_ok = all(re.fullmatch(r"[a-z][a-z0-9_]{0,29}", k) for k in _keys)
    if _modality not in ("text", "image", "3d") or not _keys_ok:
        raise ImproperlyConfigured(
            f"ARENA_VOTE_CRITERIA: bad entry {_modality}={','.join(_keys)}; "
            "use modality=key,key;… with modality text, image or 3d and keys like prompt_alignment."
        )
ARENA_GENERATION_SOFT_LIMIT = env_int("ARENA_GENERATION_SOFT_LIMIT", 300, minimum=1)
ARENA_GENERATION_HARD_LIMIT = env_int("ARENA_GENERATION_HARD_LIMIT", 330, minimum=2)
# A row still `running` this long after it started lost its worker: the sweeper requeues or fails it.
ARENA_GENERATION_STUCK_AFTER = env_int("ARENA_GENERATION_STUCK_AFTER", 360, minimum=1)
ARENA_GENERATION_MAX_ATTEMPTS = env_int("ARENA_GENERATION_MAX_ATTEMPTS", 2, minimum=1)
# Flush the partial output to the database this often, so a reload mid-stream shows it.
ARENA_STREAM_FLUSH_SECONDS = env_float("ARENA_STREAM_FLUSH_SECONDS", 0.5, minimum=0.0)
# Timing side channels (workers/pacing.py): a side's text goes out on a fixed tick, at most TICK_CHARS
# characters a tick, so every model faster than that rate streams alike; its first chunk waits (at most
# START_WAIT_MS) for the other side's, and a finished side keeps its pace (at most END_WAIT_MS) until the
# other side's model is done.
ARENA_STREAM_PACING = env_bool("ARENA_STREAM_PACING", True)
ARENA_STREAM_TICK_MS = env_int("ARENA_STREAM_TICK_MS", 50, minimum=10)
ARENA_STREAM_TICK_CHARS = env_int("ARENA_STREAM_TICK_CHARS", 6, minimum=1)
ARENA_STREAM_START_WAIT_MS = env_int("ARENA_STREAM_START_WAIT_MS", 3000, minimum=0)
ARENA_STREAM_END_WAIT_MS = env_int("ARENA_STREAM_END_WAIT_MS", 5000, minimum=0)
# Image and 3D: both outputs are shown when both are done, and one shared progress fraction in steps of this.
ARENA_MEDIA_REVEAL_TOGETHER = env_bool("ARENA_MEDIA_REVEAL_TOGETHER", True)
ARENA_MEDIA_PROGRESS_STEP = env_float("ARENA_MEDIA_PROGRESS_STEP", 0.1, minimum=0.01, maximum=1.0)
ARENA_OUTAGE_AFTER_FAILURES = env_int("ARENA_OUTAGE_AFTER_FAILURES", 3, minimum=1)
ARENA_NEW_MODEL_BOOST = env_float("ARENA_NEW_MODEL_BOOST", 2.0, minimum=1.0)
ARENA_NEW_MODEL_VOTES = env_int("ARENA_NEW_MODEL_VOTES", 3000, minimum=0)
# "weighted": by model weight (Chatbot Arena's way); "information": prefer the pairs whose comparison most
# reduces ranking uncertainty, with a uniform floor so every pair still appears.
ARENA_PAIR_SAMPLING = env_choice("ARENA_PAIR_SAMPLING", "weighted", {"weighted", "information"})
ARENA_TARGET_SHARE = env_float("ARENA_TARGET_SHARE", 0.5, minimum=0.0)
ARENA_DEMO_DELAY = env_float("ARENA_DEMO_DELAY", 0.03, minimum=0.0)
# Models with fewer battles are marked provisional and hidden unless the page asks for them.
ARENA_LEADERBOARD_MIN_BATTLES = env_int("ARENA_LEADERBOARD_MIN_BATTLES", 10, minimum=1)
# Seconds after a vote before its board is recomputed: votes in that window share one recompute.
ARENA_LEADERBOARD_DEBOUNCE = env_int("ARENA_LEADERBOARD_DEBOUNCE", 3, minimum=0)
ARENA_HASH_SALT = env_str("ARENA_HASH_SALT", SECRET_KEY)
ARENA_STORE_RAW_IP = env_bool("ARENA_STORE_RAW_IP", False)
# ARENA_IP_HEADER and the trusted proxies: see "Client addresses, request bodies and headers" below.

# --- Content moderation --------------------------------------------------------------------------
# Prompts are checked before anything is generated; answers after they finish (a flagged answer is hidden
# behind a click and its battle's vote is not counted). Every layer is optional and off by default.
# Words or phrases, comma-separated, matched case-insensitively as whole words.
ARENA_BLOCKED_TERMS = env_list("ARENA_BLOCKED_TERMS", [])
# Regular expressions as a JSON array of strings, e.g. ["\\bkill\\s+yourself\\b"]; matched ignoring case.
ARENA_BLOCKED_PATTERNS = env_regex_list("ARENA_BLOCKED_PATTERNS")
# A local transformers text-classification model (a directory saved with save_pretrained).
ARENA_MODERATION_MODEL_PATH = env_str("ARENA_MODERATION_MODEL_PATH")
ARENA_MODERATION_THRESHOLD = env_float("ARENA_MODERATION_THRESHOLD", 0.5, minimum=0.0, maximum=1.0)
ARENA_MODERATION_FLAGGED_LABELS = env_list(
    "ARENA_MODERATION_FLAGGED_LABELS",
    ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate", "hate", "offensive", "unsafe"],
)
ARENA_MODERATION_DEVICE = env_str("ARENA_MODERATION_DEVICE", "cpu")
# Long texts are classified in windows of this many characters; the worst window decides.
ARENA_MODERATION_WINDOW_CHARS = env_int("ARENA_MODERATION_WINDOW_CHARS", 2000, minimum=100)
# A local image-classification model for image outputs.
ARENA_MODERATION_IMAGE_MODEL_PATH = env_str("ARENA_MODERATION_IMAGE_MODEL_PATH")
ARENA_MODERATION_IMAGE_THRESHOLD = env_float(
    "ARENA_MODERATION_IMAGE_THRESHOLD", 0.5, minimum=0.0, maximum=1.0
)
ARENA_MODERATION_IMAGE_FLAGGED_LABELS = env_list(
    "ARENA_MODERATION_IMAGE_FLAGGED_LABELS", ["nsfw", "porn", "hentai", "sexy", "unsafe"]
)
# An OpenAI-style moderation endpoint (POST {"input": text} -> {"results": [{"flagged": ...}]}).
ARENA_MODERATION_API_URL = env_str("ARENA_MODERATION_API_URL")
ARENA_MODERATION_API_MODEL = env_str("ARENA_MODERATION_API_MODEL")
ARENA_MODERATION_API_TIMEOUT = env_float("ARENA_MODERATION_API_TIMEOUT", 5.0, minimum=0.1)
# The name of the environment variable that holds the API key (the key itself stays out of settings files).
ARENA_MODERATION_API_KEY_ENV = env_str("ARENA_MODERATION_API_KEY_ENV")
if ARENA_MODERATION_API_KEY_ENV and not env_str(ARENA_MODERATION_API_KEY_ENV):
    raise ImproperlyConfigured(
        f"ARENA_MODERATION_API_KEY_ENV names {ARENA_MODERATION_API_KEY_ENV}, which is not set"
    )
ARENA_MODERATION_API_KEY = env_str(ARENA_MODERATION_API_KEY_ENV) if ARENA_MODERATION_API_KEY_ENV else ""
# When a classifier or the API fails: refuse (prompts get a 503, answers are hidden) or let content through.
ARENA_MODERATION_FAIL_CLOSED = env_bool("ARENA_MODERATION_FAIL_CLOSED", False)

# --- Exports and public API ----------------------------------------------------------------------
# Rows read per database round trip while exporting; memory is bounded by this, not by the export size.
ARENA_EXPORT_CHUNK = env_int("ARENA_EXPORT_CHUNK", 5000, minimum=100)
# New leaderboard snapshots are published at once unless an operator wants to review them first.
ARENA_LEADERBOARD_AUTO_PUBLISH = env_bool("ARENA_LEADERBOARD_AUTO_PUBLISH", True)
ARENA_PUBLIC_STATS_CACHE_SECONDS = env_int("ARENA_PUBLIC_STATS_CACHE_SECONDS", 60, minimum=0)

# --- Vote integrity --------------------------------------------------------------------------------------
# Rates are "count/seconds" or "off". Per network means the /24 (IPv4) or /48 (IPv6): campuses and carrier
# NATs put many honest people there, hence its higher limit.
from voting.rates import env_rate  # noqa: E402  (settings helper: no models imported)

ARENA_ADMIN_LOGIN_RATE = env_rate("ARENA_ADMIN_LOGIN_RATE", "10/300")
ARENA_VOTE_RATE_PER_VOTER = env_rate("ARENA_VOTE_RATE_PER_VOTER", "30/3600")
ARENA_VOTE_RATE_PER_IP = env_rate("ARENA_VOTE_RATE_PER_IP", "120/3600")
ARENA_VOTE_RATE_PER_NETWORK = env_rate("ARENA_VOTE_RATE_PER_NETWORK", "600/3600")
ARENA_BATTLE_RATE_PER_VOTER = env_rate("ARENA_BATTLE_RATE_PER_VOTER", "60/3600")
ARENA_BATTLE_RATE_PER_IP = env_rate("ARENA_BATTLE_RATE_PER_IP", "240/3600")
ARENA_BATTLE_RATE_PER_NETWORK = env_rate("ARENA_BATTLE_RATE_PER_NETWORK", "1200/3600")
# Proof of work on every vote: 2**difficulty SHA-256 hashes on average in the browser; 0 turns it off.
ARENA_POW_DIFFICULTY = env_int("ARENA_POW_DIFFICULTY", 16, minimum=0)
if ARENA_POW_DIFFICULTY > 32:
    raise ImproperlyConfigured(f"ARENA_POW_DIFFICULTY must be at most 32, got {ARENA_POW_DIFFICULTY}")
ARENA_POW_TTL = env_int("ARENA_POW_TTL", 300, minimum=10)
ARENA_VOTE_LOGIN_REQUIRED = env_bool("ARENA_VOTE_LOGIN_REQUIRED", False)
# Optional third-party CAPTCHA, checked server-side on every vote in addition to the proof of work.
ARENA_CAPTCHA_PROVIDER = env_choice("ARENA_CAPTCHA_PROVIDER", "none", {"none", "turnstile", "hcaptcha"})
ARENA_CAPTCHA_SITE_KEY = env_str("ARENA_CAPTCHA_SITE_KEY")
ARENA_CAPTCHA_SECRET = env_str("ARENA_CAPTCHA_SECRET")
ARENA_CAPTCHA_VERIFY_URL = env_str(
    "ARENA_CAPTCHA_VERIFY_URL",
    {
        "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
        "hcaptcha": "https://api.hcaptcha.com/siteverify",
    }.get(ARENA_CAPTCHA_PROVIDER, ""),
)
ARENA_CAPTCHA_TIMEOUT = env_float("ARENA_CAPTCHA_TIMEOUT", 5.0, minimum=0.1)
if ARENA_CAPTCHA_PROVIDER != "none" and not (ARENA_CAPTCHA_SECRET and ARENA_CAPTCHA_SITE_KEY):
    raise ImproperlyConfigured(
        "ARENA_CAPTCHA_SECRET and ARENA_CAPTCHA_SITE_KEY must be set when ARENA_CAPTCHA_PROVIDER is set"
    )
# The periodic fraud sweep (voting.tasks.fraud_sweep_task): how often, and how far back it looks (0 = all).
ARENA_FRAUD_SWEEP_SECONDS = env_int("ARENA_FRAUD_SWEEP_SECONDS", 900, minimum=1)
ARENA_FRAUD_SWEEP_DAYS = env_int("ARENA_FRAUD_SWEEP_DAYS", 90, minimum=0)
ARENA_FRAUD_SWEEP_LOCK_SECONDS = env_int("ARENA_FRAUD_SWEEP_LOCK_SECONDS", 1800, minimum=60)
CELERY_BEAT_SCHEDULE["fraud-sweep"] = {
    "task": "voting.tasks.fraud_sweep_task",
    "schedule": float(ARENA_FRAUD_SWEEP_SECONDS),
    "options": {"queue": "ranking"},
}

# --- Client addresses, request bodies and headers ---------------------------------------------------------
# Which address a request comes from (voting/identity.py). Behind a reverse proxy set ARENA_TRUSTED_PROXIES
# (the proxies' networks; "unix" for a unix-socket peer) and/or ARENA_PROXY_COUNT (how many proxies stand in
# front): X-Forwarded-For is then read, only from a trusted peer, and the client is its rightmost address
# that is not a proxy. ARENA_IP_HEADER alone (the older setting) means one proxy in front. An address that
# cannot be worked out shares one rate-limited "unknown" bucket.
ARENA_TRUSTED_PROXIES = env_networks("ARENA_TRUSTED_PROXIES")
_proxy_count = env_int("ARENA_PROXY_COUNT", 0, minimum=0)
ARENA_IP_HEADER = env_choice(
    "ARENA_IP_HEADER",
    "HTTP_X_FORWARDED_FOR" if ARENA_TRUSTED_PROXIES or _proxy_count else "REMOTE_ADDR",
    {"REMOTE_ADDR", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP"},
)
ARENA_PROXY_COUNT = (
    1 if ARENA_IP_HEADER != "REMOTE_ADDR" and not ARENA_TRUSTED_PROXIES and not _proxy_count else _proxy_count
)
if ARENA_IP_HEADER == "REMOTE_ADDR" and (ARENA_TRUSTED_PROXIES or ARENA_PROXY_COUNT):
    raise ImproperlyConfigured(
        "ARENA_IP_HEADER=REMOTE_ADDR ignores proxies: unset it (X-Forwarded-For is then read) or unset "
        "ARENA_TRUSTED_PROXIES and ARENA_PROXY_COUNT"
    )
if ARENA_IP_HEADER == "HTTP_X_REAL_IP" and ARENA_PROXY_COUNT > 1:
    raise ImproperlyConfigured("X-Real-IP holds one address: ARENA_PROXY_COUNT must be 0 or 1 with it")
# Every generation a request starts (two per battle start or continued turn) counts against these, so
# neither new battles nor long conversations escape a budget. Rotating cookies keeps the IP and network ones.
ARENA_GENERATION_RATE_PER_VOTER = env_rate("ARENA_GENERATION_RATE_PER_VOTER", "240/3600")
ARENA_GENERATION_RATE_PER_IP = env_rate("ARENA_GENERATION_RATE_PER_IP", "960/3600")
ARENA_GENERATION_RATE_PER_NETWORK = env_rate("ARENA_GENERATION_RATE_PER_NETWORK", "4800/3600")
# Request bodies (arena/request_limits.py): over its endpoint's limit a body is refused with 413 before it
# is read, by its Content-Length or by counting while it streams. Form fields and JSON bodies must hold a
# full-length prompt (12 bytes per character: an astral character escaped as two \uXXXX).
DATA_UPLOAD_MAX_MEMORY_SIZE = max(1024 * 1024, 12 * ARENA_MAX_PROMPT_CHARS + 64 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # larger uploads spool to a temporary file, never past the limit
FILE_UPLOAD_HANDLERS = [
    "arena.request_limits.LimitedUploadHandler",  # first: stops a file at ARENA_MAX_UPLOAD_BYTES
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# /metrics: with no ARENA_METRICS_TOKEN it answers only in the embedded default or with DEBUG.
ARENA_METRICS_OPEN = env_bool("ARENA_METRICS_OPEN", EMBEDDED or DEBUG)
