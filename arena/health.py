"""Liveness, readiness and Prometheus metrics for operators and orchestrators."""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from arena.models import Battle, Generation, ModelEntry


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_cache() -> str:
    cache.set("arena:health", "ok", 10)
    if cache.get("arena:health") != "ok":
        raise RuntimeError("cache did not return the value it was given")
    return "ok"


def _broker_connection() -> object:
    """A fresh connection, not the app's pool: the probe must see the broker as it is now, and a failed
    probe must not leave a broken connection in the pool."""
    from kombu import Connection

    return Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=2,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    )


def _check_broker() -> str:
    with _broker_connection() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _check_workers() -> str:
    from arena.celery import app

    with _broker_connection() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        replies = app.control.ping(timeout=1.0, connection=conn) or []
    if not replies:
        raise RuntimeError("no Celery worker answered")
    return f"{len(replies)} answering"


def _operator(request: HttpRequest) -> bool:
    """Staff, or a caller with the metrics token: they may read what the periodic tasks did."""
    if request.user.is_active and request.user.is_staff:
        return True
    token = settings.ARENA_METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def _check_schedule(*, with_detail: bool) -> dict[str, Any]:
    """When beat last sent and a worker last finished each periodic task; raises when any is overdue (a dead
    scheduler, or one whose messages never reach a worker), with the whole table in the detail either way.
    What each run did (the fraud sweep's counts of flagged voters) is for operators only: a bot watching a
    public page would learn whether its votes were caught."""
    from workers.schedule import schedule_status  # the health views are project-level (config/ once split)

    entries = {status.name: status.as_dict() for status in schedule_status()}
    if not with_detail:
        for entry in entries.values():
            entry.pop("last_detail")
    late = sorted(name for name, entry in entries.items() if entry["overdue"])
    if late:
        raise ScheduleLate(f"overdue: {', '.join(late)}", entries)
    return entries


class ScheduleLate(RuntimeError):
    def __init__(self, message: str, entries: dict[str, Any]) -> None:
        super().__init__(message)
        self.entries = entries


def _run(checks: dict[str, Callable[[], object]]) -> dict[str, dict[str, Any]]:
    results = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            results[name] = {"ok": True, "detail": check()}
        except ScheduleLate as exc:
            results[name] = {"ok": False, "detail": str(exc), "entries": exc.entries}
        except Exception as exc:  # a readiness probe reports every failure, it never raises
            results[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


@require_GET
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process serves requests. Touches nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: database, cache and broker must answer; workers and the periodic schedule are reported,
    and required with ?strict=1 (a web replica should not leave the load balancer because the GPU workers or
    beat are down, but an operator's check should see it)."""
    checks: dict[str, Callable[[], object]] = {
        "database": _check_database,
        "cache": _check_cache,
        "broker": _check_broker,
        "workers": _check_workers,
        "schedule": functools.partial(_check_schedule, with_detail=_operator(request)),
    }
    results = _run(checks)
    required = set(checks) if request.GET.get("strict") == "1" else {"database", "cache", "broker"}
    ready = all(results[name]["ok"] for name in required)
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": results}, status=200 if ready else 503
    )


def _lines(name: str, help_text: str, kind: str, samples: list[tuple[dict[str, str], float]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        out.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return out


def _queue_depths() -> list[tuple[dict[str, str], float]]:
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        return []
    import redis

    from arena.inprocess import BASE_QUEUES

    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    queues = [
        *BASE_QUEUES,
        "gen-text",
        "gen-image",
        "gen-3d",
        *ModelEntry.objects.exclude(queue="").values_list("queue", flat=True).distinct(),
    ]
    # One connection and one round trip per scrape, closed after it.
    with redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2) as client:
        pipe = client.pipeline(transaction=False)
        for queue in dict.fromkeys(queues):
            pipe.llen(f"{prefix}{queue}")
        depths = pipe.execute()
    return [({"queue": q}, float(n)) for q, n in zip(dict.fromkeys(queues), depths, strict=True)]


def _first_chunk_quantiles() -> list[tuple[dict[str, str], float]]:
    since = timezone.now() - timezone.timedelta(hours=1)
    rows = Generation.objects.filter(finished_at__gte=since, first_chunk_at__isnull=False).values_list(
        "started_at", "first_chunk_at"
    )[:5000]
    values = sorted((chunk - started).total_seconds() for started, chunk in rows if started)
    if not values:
        return []
    return [
        ({"quantile": str(q)}, round(values[min(len(values) - 1, int(q * len(values)))], 4))
        for q in (0.5, 0.9, 0.99)
    ]


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition, behind a bearer token (ARENA_METRICS_TOKEN). Without a token it is closed
    (403) except where ARENA_METRICS_OPEN allows it (by default the embedded setup and DEBUG): its counts and
    queue names are for operators, not visitors."""
    token = settings.ARENA_METRICS_TOKEN
    if not token and not settings.ARENA_METRICS_OPEN:
        message = "metrics are closed: set ARENA_METRICS_TOKEN and send it as a bearer token\n"
        return HttpResponse(message, status=403, content_type="text/plain")
    sent = request.headers.get("Authorization", "")
    if token and not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return HttpResponse("metrics need the bearer token\n", status=401, content_type="text/plain")
    from voting.models import Vote

    battles = Battle.objects.values("modality", "status").annotate(n=Count("id"))
    votes = Vote.objects.values("battle__modality", "counted").annotate(n=Count("id"))
    generations = Generation.objects.values("status").annotate(n=Count("id"))
    lines = [
        *_lines(
            "arena_battles",
            "Battles by modality and status.",
            "gauge",
            [({"modality": r["modality"], "status": r["status"]}, r["n"]) for r in battles],
        ),
        *_lines(
            "arena_votes",
            "Votes by modality and whether they count.",
            "gauge",
            [
                ({"modality": r["battle__modality"], "counted": str(r["counted"]).lower()}, r["n"])
                for r in votes
            ],
        ),
        *_lines(
            "arena_generations",
            "Generations by status.",
            "gauge",
            [({"status": r["status"]}, r["n"]) for r in generations],
        ),
        *_lines(
            "arena_models_in_outage",
            "Active models taken out of sampling after failures.",
            "gauge",
            [({}, ModelEntry.objects.filter(active=True, outage_since__isnull=False).count())],
        ),
        *_lines(
            "arena_generation_first_chunk_seconds",
            "Claim to first chunk, last hour.",
            "summary",
            _first_chunk_quantiles(),
        ),
        *_lines("arena_queue_depth", "Messages waiting per Celery queue.", "gauge", _queue_depths()),
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
