"""Every public endpoint, diffed before and after battles that are not voted yet; unreleased models unnamed.

ARCHITECTURE.md rule 4 (arena.disclosure): an anonymous visitor fetches every public URL, another visitor
starts battles (text, image, an image gallery and a 3D gallery battle) and lets them finish generating
without voting, the caches those pages are kept in expire, and the visitor fetches everything again: every
body must be byte-identical and every header the same (caching headers included). Then the battles are
voted, and the counts must move, so the comparison is not vacuous. Throughout, the unreleased models' names
and slugs appear in no public answer; once released they do, with the votes they had (PostgreSQL run).

The URL resolver and the websocket routes are walked: a new endpoint fails
`test_every_route_is_exercised_or_listed_with_a_reason` until ROUTES below fetches it or says why it serves
nothing public. The scenario runs on the PostgreSQL/Redis stack (uvicorn in this process, the real Celery
worker) and on the embedded default (`manage.py serve` on SQLite and the in-memory broker in a child process,
tests/support/embedded.py), over HTTP and websockets both times.

Masks, the only differences allowed between two fetches; each is a value that changes for reasons no battle
touches, so hiding it hides nothing a battle could move:

- `csrfmiddlewaretoken` in a form: Django masks the visitor's CSRF secret with fresh random bytes in every
  response (BREACH). The secret itself, in the csrftoken cookie, is compared unmasked.
- `generated_at` in /api/v1/stats: the clock reading when the cached counts were computed. The counts beside
  it are compared.
- /readyz: `ms` (how long each check took), the `workers` check (whether a Celery ping was answered within
  a second: machine load, not battles) and the `schedule` check (when beat last sent each periodic task: the
  clock, not battles; it holds no count), and so its `Content-Length`. The database, cache and broker checks
  are compared.
- /api/prompts/random: `prompt` is a random draw; it is checked to be one of the approved prompts instead.
- Headers `Date`, `X-Request-ID` (per response) and `Expires` (never_cache writes the response's own time;
  the Cache-Control beside it is compared), and a cookie's `expires` date (computed from now). For
  /api/prompts/random also `Content-Length`, the length of the random prompt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from websockets.sync.client import ClientConnection, connect

from arena.models import Modality
from ranking.selectors import BOARD_CACHE_SECONDS
from tests.security.world import HIDDEN, world_prepare
from tests.support.challenge import pow_solve
from voting.categories import board_labels

pytestmark = pytest.mark.slow

UNKNOWN_CODE = "nobody-owns-this-1"
UNKNOWN_TOKEN = "0" * 32
THUMB = re.compile(rb"/m/thumbs/([A-Za-z0-9_-]+)\.png")


# --- what is fetched ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """How the suite exercises one route: the paths it fetches, and, when it serves nothing public, why.

    Private routes are still fetched (with a battle code nobody owns, as a stranger would) and compared; a
    route that may not be compared at all says why in `uncompared` and is checked to name no model instead."""

    paths: Callable[[], list[str]]
    private: str = ""
    uncompared: str = ""


def _fixed(*paths: str) -> Callable[[], list[str]]:
    return lambda: list(paths)


def _boards(template: str, style: str) -> Callable[[], list[str]]:
    """A board route for every modality: overall, style-controlled, and every category board."""

    def paths() -> list[str]:
        out = []
        for modality in Modality.values:
            base = template.format(modality=modality)
            out += [base, f"{base}?{style}", *(f"{base}?category={quote(c)}" for c in board_labels())]
        return out

    return paths


_BATTLE_OWN = "the battle's own voter only (by session); a battle code is a random secret of that session"
_MODALITY_PAGES = [f"/?modality={m}" for m in Modality.values]

ROUTES: dict[str, Route] = {
    "healthz": Route(_fixed("/healthz")),
    "readyz": Route(_fixed("/readyz")),
    "metrics": Route(
        _fixed("/metrics"),
        uncompared="operator metrics: closed unless ARENA_METRICS_TOKEN or ARENA_METRICS_OPEN (the embedded "
        "default) allows them, and then they count battles by modality and status on purpose; they never "
        "name a model (checked)",
    ),
    "": Route(_fixed("/", *_MODALITY_PAGES)),
    "image/": Route(_fixed("/image/")),
    "3d/": Route(_fixed("/3d/")),
    "b/<str:code>/": Route(_fixed(f"/b/{UNKNOWN_CODE}/"), private=_BATTLE_OWN),
    "api/battles": Route(_fixed("/api/battles"), private="POST only (starts a battle): a GET is a 405"),
    "api/battles/<str:code>": Route(_fixed(f"/api/battles/{UNKNOWN_CODE}"), private=_BATTLE_OWN),
    "api/battles/<str:code>/continue": Route(
        _fixed(f"/api/battles/{UNKNOWN_CODE}/continue"), private="POST only, " + _BATTLE_OWN
    ),
    "api/battles/<str:code>/vote": Route(
        _fixed(f"/api/battles/{UNKNOWN_CODE}/vote"), private="POST only, " + _BATTLE_OWN
    ),
    "api/battles/<str:code>/skip": Route(
        _fixed(f"/api/battles/{UNKNOWN_CODE}/skip"), private="POST only, " + _BATTLE_OWN
    ),
    "api/battles/<str:code>/regenerate": Route(
        _fixed(f"/api/battles/{UNKNOWN_CODE}/regenerate"), private="POST only, " + _BATTLE_OWN
    ),
    "api/battles/<str:code>/challenge": Route(
        _fixed(f"/api/battles/{UNKNOWN_CODE}/challenge"), private=_BATTLE_OWN
    ),
    "api/prompts/random": Route(_fixed(*(f"/api/prompts/random?modality={m}" for m in Modality.values))),
    "m/<str:code>/<int:turn>/<str:side>.<str:ext>": Route(
        _fixed(f"/m/{UNKNOWN_CODE}/0/a.png"), private=_BATTLE_OWN + " (and staff)"
    ),
    "m/<str:code>/input.<str:ext>": Route(
        _fixed(f"/m/{UNKNOWN_CODE}/input.png"), private=_BATTLE_OWN + " (and staff)"
    ),
    # Plus every thumbnail any public answer links to (found in the bodies), and every thumbnail that must
    # stay private (_private_thumbnails_answer_like_a_missing_one).
    "m/thumbs/<str:token>.png": Route(_fixed(f"/m/thumbs/{UNKNOWN_TOKEN}.png")),
    "api/v1/leaderboards/<str:modality>": Route(
        _boards("/api/v1/leaderboards/{modality}", "style_control=true")
    ),
    "api/v1/stats": Route(_fixed("/api/v1/stats")),
    "api/v1/openapi.json": Route(_fixed("/api/v1/openapi.json")),
    "api/docs/": Route(_fixed("/api/docs/")),
    "api/export/battles.<str:fmt>": Route(
        _fixed(*(f"/api/export/battles.{fmt}" for fmt in ("jsonl", "csv", "parquet"))),
        private="staff with the export permission only: anyone else gets a 403",
    ),
    "leaderboard/": Route(_fixed("/leaderboard/")),
    "leaderboard/<str:modality>/": Route(_boards("/leaderboard/{modality}/", "style=1")),
    "api/leaderboard/<str:modality>": Route(_boards("/api/leaderboard/{modality}", "style=1")),
    "admin/": Route(
        _fixed("/admin/", "/admin/login/", "/admin/arena/battle/"),
        private="staff only: every admin page sends a visitor to the login form",
    ),
}
WEBSOCKETS: dict[str, str] = {
    "ws/battle/<str:code>/": "private: " + _BATTLE_OWN,
    "ws/leaderboard/<str:modality>/": "",  # listened to throughout (Listener)
    "": "the catch-all after every route: it refuses the socket, so nothing is ever sent on it",
}


def http_routes() -> set[str]:
    """Every HTTP route the site serves; the admin (one include, staff only) counts as one."""

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> Iterator[str]:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver) and pattern.namespace != "admin":
                yield from walk(pattern.url_patterns, route)
            else:
                yield route

    return set(walk(get_resolver().url_patterns, ""))


def websocket_routes() -> set[str]:
    from arena.routing import websocket_urlpatterns

    return {str(p.pattern) for p in websocket_urlpatterns}


def test_every_route_is_exercised_or_listed_with_a_reason():
    routes = http_routes()
    assert routes - set(ROUTES) == set(), "new routes: add them to ROUTES (fetch them, or say why not)"
    assert set(ROUTES) - routes == set(), "ROUTES lists routes that no longer exist"
    assert websocket_routes() == set(WEBSOCKETS), "websocket routes changed: update WEBSOCKETS"
    for name, route in ROUTES.items():
        assert route.paths(), f"{name}: nothing fetched"
        if route.private or route.uncompared:
            assert len(route.private or route.uncompared) > 20, f"{name}: say why"


# --- one fetch of everything --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


_VOLATILE_HEADERS = {"date", "x-request-id", "expires"}
_CSRF_FIELD = re.compile(rb'(name="csrfmiddlewaretoken" value=")[^"]*(")')
_GENERATED_AT = re.compile(rb'("generated_at": )"[^"]*"')
_READYZ_MS = re.compile(rb'("ms": )[0-9.]+')
_READYZ_WORKERS = re.compile(rb'("workers": )\{[^{}]*\}')


def _readyz_schedule_masked(body: bytes) -> bytes:
    data = json.loads(body)
    data["checks"]["schedule"] = "(masked)"
    return json.dumps(data, sort_keys=True).encode()


_PROMPT = re.compile(rb'("prompt": )("(?:[^"\\]|\\.)*")')
_EXPIRES = re.compile(r";\s*expires=[^;]*", re.IGNORECASE)


def _headers(response: httpx.Response, volatile: set[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in response.headers.multi_items():
        if name.lower() in _VOLATILE_HEADERS | volatile:
            continue
        if name.lower() == "set-cookie":
            value = _EXPIRES.sub("", value)
        out.append((name.lower(), value))
    return tuple(sorted(out))


class Stack:
    """One running site: where it answers, and what the test may read or change of it directly."""

    base_url: str

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def media(self, name: str) -> bytes:
        raise NotImplementedError

    def caches_expire(self, since: float | None) -> None:
        """Make the next fetch compute what it shows: the public caches of stats and boards filled since
        `since` expire (None: only those that can be dropped at once, if any)."""
        raise NotImplementedError

    def boards_refresh(self, before: int) -> None:
        """After votes: every modality's boards recomputed from them (snapshots beyond `before`)."""
        raise NotImplementedError

    def snapshots(self) -> int:
        return int(self.sql("SELECT COUNT(*) FROM ranking_leaderboardsnapshot")[0][0])

    def prompts(self, modality: str) -> set[str]:
        rows = self.sql(
            "SELECT p.text FROM arena_prompt p JOIN arena_promptset s ON s.id = p.prompt_set_id "
            "WHERE p.modality = ? AND p.status = 'approved' AND s.active",
            (modality,),
        )
        return {row[0] for row in rows}

    def private_thumbnails(self) -> set[str]:
        """Storage names of thumbnails no one outside staff may fetch: gallery outputs that battles show
        (prompts that are not showcase), outputs of battles not voted yet, outputs of unreleased models."""
        rows = self.sql(
            "SELECT o.thumbnail_name FROM arena_galleryoutput o JOIN arena_prompt p ON p.id = o.prompt_id "
            "JOIN arena_modelentry m ON m.id = o.model_id WHERE o.thumbnail_name != '' "
            "AND (NOT p.showcase OR NOT m.released) "
            "UNION SELECT g.thumbnail_name FROM arena_generation g JOIN arena_battle b ON b.id = g.battle_id "
            "JOIN arena_modelentry m ON m.id = g.model_id WHERE g.thumbnail_name != '' "
            "AND (b.status != 'voted' OR NOT m.released)"
        )
        return {row[0] for row in rows}

    def model_names(self) -> set[str]:
        return {name for row in self.sql("SELECT slug, display_name FROM arena_modelentry") for name in row}


class Visitor:
    """A browser session over HTTP: its cookies, its CSRF header."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30)
        assert self.client.get("/").status_code == 200  # the CSRF cookie, as the page gives it

    def headers(self) -> dict[str, str]:
        return {"X-CSRFToken": self.client.cookies.get("csrftoken", ""), "Accept": "application/json"}

    def battle_start(self, body: dict[str, Any]) -> str:
        response = self.client.post("/api/battles", json=body, headers=self.headers())
        assert response.status_code == 201, response.text
        return response.json()["code"]

    def battle_ready(self, code: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (state := self.client.get(f"/api/battles/{code}").json())["status"] == "generating":
            assert time.monotonic() < deadline, f"battle {code} still generating after {timeout} s"
            time.sleep(0.1)
        assert state["status"] == "ready", state

    def vote(self, code: str, choice: str = "a") -> None:
        challenge = self.client.get(f"/api/battles/{code}/challenge").json()
        body: dict[str, Any] = {"choice": choice}
        if challenge["token"]:
            counter = pow_solve(challenge["token"], challenge["difficulty"])
            body["challenge"] = {"token": challenge["token"], "counter": counter}
        response = self.client.post(f"/api/battles/{code}/vote", json=body, headers=self.headers())
        assert response.status_code == 200, response.text


@dataclass
class Fetch:
    """Everything an anonymous visitor sees, once."""

    seen: dict[str, Seen] = field(default_factory=dict)

    def bodies(self) -> Iterator[tuple[str, bytes]]:
        for path, seen in self.seen.items():
            yield path, seen.body

    def thumbnails(self) -> set[str]:
        return {
            f"/m/thumbs/{t.decode()}.png"
            for path, body in self.bodies()
            if not path.startswith("/m/")
            for t in THUMB.findall(body)
        }


class Observer:
    """The anonymous visitor who diffs: fetches every route's paths, masked as the module docstring says."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.visitor = Visitor(stack.base_url)

    def get(self, path: str) -> httpx.Response:
        return self.visitor.client.get(path, follow_redirects=False)

    def fetch(self, compared: bool = True) -> Fetch:
        out = Fetch()
        for route in ROUTES.values():
            if bool(route.uncompared) == compared:
                continue
            for path in route.paths():
                out.seen[path] = self.seen(path, self.get(path))
        for path in sorted(out.thumbnails()):
            out.seen[path] = self.seen(path, self.get(path))
        return out

    def seen(self, path: str, response: httpx.Response) -> Seen:
        body, volatile = _CSRF_FIELD.sub(rb"\1(masked)\2", response.content), set()
        if path == "/api/v1/stats":
            body = _GENERATED_AT.sub(rb'\1"(masked)"', body)
        if path.startswith("/readyz"):
            body = _readyz_schedule_masked(body)
            body = _READYZ_WORKERS.sub(rb'\1"(masked)"', _READYZ_MS.sub(rb"\1(masked)", body))
            volatile = {"content-length"}  # the masked timings' digits
        if path.startswith("/api/prompts/random") and response.status_code == 200:
            modality = parse_qs(urlsplit(path).query)["modality"][0]
            assert response.json()["prompt"] in self.stack.prompts(modality)
            body, volatile = _PROMPT.sub(rb'\1"(masked)"', body), {"content-length"}
        return Seen(response.status_code, _headers(response, volatile), body)


def assert_same(before: Fetch, after: Fetch) -> None:
    assert set(before.seen) == set(after.seen), "a different set of thumbnails is linked"
    changed = [path for path in before.seen if before.seen[path] != after.seen[path]]
    details = [
        f"{path}: {before.seen[path].status} → {after.seen[path].status}; "
        f"headers {set(before.seen[path].headers) ^ set(after.seen[path].headers)}; "
        f"body {before.seen[path].body[:300]!r} → {after.seen[path].body[:300]!r}"
        for path in changed[:5]
    ]
    assert not changed, "public answers changed while battles were open:\n" + "\n".join(details)


def assert_unnamed(fetch: Fetch, names: set[str]) -> None:
    for path, body in fetch.bodies():
        for name in names:
            assert name.encode() not in body, f"{path} names {name!r}"


class Listener:
    """Websockets of every leaderboard, open as a visitor's page keeps them."""

    def __init__(self, base_url: str) -> None:
        ws_url = base_url.replace("http", "ws", 1)
        self.stack = contextlib.ExitStack()
        self.sockets: dict[str, ClientConnection] = {
            m: self.stack.enter_context(
                connect(f"{ws_url}/ws/leaderboard/{m}/", additional_headers={"Origin": base_url})
            )
            for m in Modality.values
        }

    def heard(self, wait: float) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {m: [] for m in self.sockets}
        deadline = time.monotonic() + wait
        for modality, socket in self.sockets.items():
            while True:
                try:
                    out[modality].append(
                        json.loads(socket.recv(timeout=max(0.05, deadline - time.monotonic())))
                    )
                except TimeoutError:
                    break
        return out

    def close(self) -> None:
        self.stack.close()


# --- the scenario -------------------------------------------------------------------------------------------

BATTLES = [
    {"modality": "text", "prompt": "Name three rivers in Europe."},
    {"modality": "image", "prompt": "A red kite over a grey sea"},
    {"modality": "image", "gallery": True},
    {"modality": "3d", "gallery": True},
]
VOTED = {"text": 1, "image": 2, "3d": 1}


def _private_thumbnails_answer_like_a_missing_one(stack: Stack, observer: Observer, public: set[str]) -> None:
    """Every thumbnail that must stay private answers exactly as a token that never existed (no existence
    oracle), no public thumbnail is one of them, and none has the same bytes as one of them."""
    private = stack.private_thumbnails()
    assert private, "the world has no private thumbnails: the check would be vacuous"
    missing = observer.seen("", observer.get(f"/m/thumbs/{UNKNOWN_TOKEN}.png"))
    for name in private:
        token = name.removeprefix("thumbs/").removesuffix(".png")
        assert observer.seen("", observer.get(f"/m/thumbs/{token}.png")) == missing, name
    assert {f"/m/{name}" for name in private}.isdisjoint(public)
    in_play = {hashlib.sha256(stack.media(name)).digest() for name in private}
    for url in public:
        assert hashlib.sha256(observer.get(url).content).digest() not in in_play, (
            f"{url} shows a private output"
        )


def _counts(fetch: Fetch) -> dict[str, Any]:
    return json.loads(fetch.seen["/api/v1/stats"].body)


def run_scenario(stack: Stack) -> Fetch:
    """The diff (before/after unvoted battles), then the votes. Returns the last fetch."""
    hidden = {name for pair in HIDDEN.items() for name in pair}
    observer, owner = Observer(stack), Visitor(stack.base_url)
    listener = Listener(stack.base_url)
    try:
        started = time.monotonic()
        before = observer.fetch()
        assert_unnamed(before, hidden)
        codes = [owner.battle_start(body) for body in BATTLES]
        for code in codes:
            owner.battle_ready(code)
        stack.caches_expire(started)
        after = observer.fetch()
        assert_same(before, after)
        assert listener.heard(wait=1.0) == {m: [] for m in Modality.values}, "a board socket spoke"
        _private_thumbnails_answer_like_a_missing_one(stack, observer, after.thumbnails())
        assert_unnamed(observer.fetch(compared=False), stack.model_names())

        snapshots = stack.snapshots()
        for code in codes:
            owner.vote(code)
        stack.boards_refresh(snapshots)
        stack.caches_expire(None)
        voted = observer.fetch()
        assert_unnamed(voted, hidden)
        _private_thumbnails_answer_like_a_missing_one(stack, observer, voted.thumbnails())
        # Not vacuous: the votes move the public counts, and the boards tell their pages.
        counts = {m: _counts(voted)["modalities"][m]["votes"] for m in Modality.values}
        assert counts == {m: _counts(after)["modalities"][m]["votes"] + n for m, n in VOTED.items()}
        assert any(
            voted.seen[p] != after.seen[p] for p in voted.seen if p.startswith("/api/leaderboard/text")
        )
        assert all(listener.heard(wait=5.0).values()), "a board's socket heard of no new snapshot"
        return voted
    finally:
        listener.close()


# --- the two stacks -----------------------------------------------------------------------------------------


class PostgresStack(Stack):
    """uvicorn in this process on the test database, the session's Celery worker, Redis for everything."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(query.replace("?", "%s"), params)
            return cursor.fetchall()

    def media(self, name: str) -> bytes:
        from arena.media import media_read

        return media_read(name)

    def caches_expire(self, since: float | None) -> None:
        from django.core.cache import cache

        client = cache._cache.get_client(None, write=True)  # Django's RedisCache
        for prefix in ("arena:stats-public", "arena:board", "arena:public-names"):
            keys = list(client.scan_iter(match=cache.make_key(prefix) + "*", count=1000))
            if keys:
                client.delete(*keys)

    def boards_refresh(self, before: int) -> None:
        from ranking.services import leaderboard_refresh

        for modality in Modality.values:
            leaderboard_refresh(modality=modality)


class EmbeddedStack(Stack):
    """`manage.py serve` as ./bin/run starts it: SQLite, the in-memory broker, worker and beat on threads."""

    def __init__(self, site: Any) -> None:
        self.site, self.base_url = site, site.base_url

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.site.query(query, params)

    def media(self, name: str) -> bytes:
        return (Path(self.site.var_dir) / "media" / name).read_bytes()

    def caches_expire(self, since: float | None) -> None:
        # The caches live in the server's memory: wait until every one filled since `since` has expired
        # (stats are not cached at all here: ARENA_PUBLIC_STATS_CACHE_SECONDS=0).
        if since is not None:
            time.sleep(max(0.0, since + BOARD_CACHE_SECONDS + 1 - time.monotonic()))

    def boards_refresh(self, before: int) -> None:
        query = "SELECT COUNT(DISTINCT modality) FROM ranking_leaderboardsnapshot WHERE id > ?"
        self.site.wait_for(lambda: self.sql(query, (before,))[0][0] == len(Modality.values), 60, "boards")
        time.sleep(1)  # the rest of each modality's boards (categories, style) land just after its first


def test_public_surfaces_on_postgres_and_redis(asgi_server, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    world_prepare(seed=True)
    stack = PostgresStack(asgi_server.url)
    run_scenario(stack)
    _released_models_appear_with_their_votes(stack)


def _released_models_appear_with_their_votes(stack: Stack) -> None:
    """Releasing the hidden models names them at once on every surface, with every vote they had: no
    recompute, no cache to wait for."""
    from django.db.models import Q

    from arena.models import ModelEntry
    from voting.models import Vote

    for model in ModelEntry.objects.filter(slug__in=HIDDEN):
        model.released = True
        model.save(update_fields=["released"])
    observer = Observer(stack)
    for model in ModelEntry.objects.filter(slug__in=HIDDEN):
        votes = Vote.objects.filter(Q(battle__model_a=model) | Q(battle__model_b=model))
        counted = votes.filter(counted=True).count()
        board = observer.get(f"/api/v1/leaderboards/{model.modality}").json()
        row = next(r for r in board["models"] if r["slug"] == model.slug)
        assert row["name"] == model.display_name and row["battles"] == counted > 0
        assert model.slug in board["pairs"]["models"]
        page = observer.get(f"/api/leaderboard/{model.modality}").json()
        assert all(model.slug in point["ratings"] for point in page["history"])
        assert model.display_name in observer.get(f"/leaderboard/{model.modality}/").text
        stats = next(m for m in observer.get("/api/v1/stats").json()["models"] if m["slug"] == model.slug)
        assert stats["votes"] == votes.count() and stats["battles"] == votes.count()


EMBEDDED_ENV = {
    "ARENA_DEMO_DELAY": "0.002",
    "ARENA_PUBLIC_STATS_CACHE_SECONDS": "0",
    "ARENA_LEADERBOARD_DEBOUNCE": "1",
    # Nothing periodic between the two fetches: a scheduled refresh would add a history point on its own.
    "ARENA_LEADERBOARD_REFRESH_SECONDS": "3600",
    "ARENA_SWEEP_SECONDS": "3600",
    "ARENA_PROBE_SECONDS": "3600",
    "ARENA_FRAUD_SWEEP_SECONDS": "3600",
}


def test_public_surfaces_on_the_embedded_default():
    from tests.support.embedded import EmbeddedSite

    prepare = "from tests.security.world import world_prepare; world_prepare(seed=False)"
    with EmbeddedSite(env=EMBEDDED_ENV, prepare=prepare) as site:
        run_scenario(EmbeddedStack(site))
