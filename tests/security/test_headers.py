"""Security headers: a strict Content-Security-Policy (no inline script) on every kind of response, the
rendered pages holding no script the policy would have to allow inline, and /metrics closed without its token.

Every page is parsed: each <script> must load a file from this origin, except the import map, whose exact
text must hash to the one 'sha256-…' source in the policy. No element may carry an on* handler or a
javascript: URL. The admin's pages (every model's list, add and change pages) are walked the same way.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from tests.ops.test_database_down import database_down as _database_down  # noqa: F401  (the fixture)
from tests.voting.conftest import ready_battle, session_voter


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_strict(response) -> dict[str, list[str]]:
    """The policy's promises, and the companion headers, on one response."""
    csp = directives(response)
    assert csp["default-src"] == ["'self'"]
    assert "'self'" in csp["script-src"]
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "blob:", "https:", "http:"} & set(
        csp["script-src"]
    )
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["form-action"] == ["'self'"]
    assert "'self'" in csp["connect-src"] and "blob:" in csp["worker-src"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"] and "microphone=()" in response["Permissions-Policy"]
    return csp


class ScriptAudit(HTMLParser):
    """Collects inline scripts (with their exact text), handler attributes and javascript: URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.inline: list[tuple[dict[str, str | None], str]] = []
        self.problems: list[str] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…>")
            if name in {"href", "src", "action", "formaction"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}=javascript:…>")
        if tag == "script" and not named.get("src"):
            self._open, self._text = named, []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._open is not None:
            self.inline.append((self._open, "".join(self._text)))
            self._open = None


def assert_no_inline_script(response) -> None:
    csp = assert_strict(response)
    audit = ScriptAudit()
    audit.feed(response.content.decode())
    assert not audit.problems, audit.problems
    hashes = {v for v in csp["script-src"] if v.startswith("'sha256-")}
    for attrs, text in audit.inline:
        if attrs.get("type") == "application/json":
            continue  # a data block (json_script): never run, and escaped so it cannot close its element
        assert attrs.get("type") == "importmap", f"inline script {attrs} in {response.request['PATH_INFO']}"
        digest = "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
        assert digest in hashes, "the import map's text does not match the hash the policy allows"


@pytest.fixture
def owned(db, make_model) -> tuple[Client, str]:
    visitor = Client()
    battle = ready_battle(session_voter(visitor), make_model(), make_model())
    return visitor, battle.code


PAGES = ["/", "/image/", "/3d/", "/leaderboard/text/", "/leaderboard/3d/", "/leaderboard/nope/"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_the_policy_and_no_inline_script(client, path):
    response = client.get(path)
    assert response.status_code in (200, 404)
    assert_no_inline_script(response)


def test_the_battle_page_of_a_battle_carries_the_policy_and_no_inline_script(owned):
    visitor, code = owned
    response = visitor.get(f"/b/{code}/")
    assert response.status_code == 200 and code in response.content.decode()
    assert_no_inline_script(response)


def test_the_websockets_and_wasm_the_pages_use_are_allowed(owned, settings):
    settings.ALLOWED_HOSTS = ["arena.example.org"]
    visitor, code = owned
    csp = directives(visitor.get(f"/b/{code}/", HTTP_HOST="arena.example.org"))
    assert {"ws://arena.example.org", "wss://arena.example.org"} <= set(csp["connect-src"])
    assert "'wasm-unsafe-eval'" in csp["script-src"], "Spark compiles WebAssembly for splats"
    assert {"data:", "blob:"} <= set(csp["img-src"]), "GLTFLoader decodes embedded textures through blob URLs"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/stats", 200),
        ("get", "/api/battles/no-such-battle", 404),
        ("post", "/api/battles", 400),
        ("get", "/no/such/page/", 404),
        ("post", "/api/v1/stats", 405),
        ("get", "/b/a%00b/", 400),
        ("get", "/healthz", 200),
        ("get", "/static/arena/battle.js", 200),
    ],
)
def test_json_errors_and_files_carry_the_policy_too(client, method, path, status):
    response = (
        getattr(client, method)(path, content_type="application/json")
        if method == "post"
        else client.get(path)
    )
    assert response.status_code == status
    assert_strict(response)


@pytest.mark.usefixtures("_database_down")
def test_an_unavailable_database_answer_carries_the_policy(client):
    page = client.get("/b/some-code/")
    assert page.status_code == 503
    assert_no_inline_script(page)


def _admin_pages(staff: Client, battle_pk: int) -> list[str]:
    pages = [reverse("admin:index"), reverse("admin:password_change")]
    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        pages += [reverse(f"admin:{info[0]}_{info[1]}_changelist"), reverse(f"admin:{info[0]}_{info[1]}_add")]
    pages.append(reverse("admin:arena_battle_change", args=[battle_pk]))
    return pages


def test_every_admin_page_works_under_the_policy(owned, admin_user):
    """Django's admin loads its scripts as files (its data rides on data-* attributes): nothing inline."""
    _, code = owned
    from arena.models import Battle

    staff = Client()
    staff.force_login(admin_user)
    login = Client().get(reverse("admin:login"))
    assert login.status_code == 200
    assert_no_inline_script(login)
    for page in _admin_pages(staff, Battle.objects.get(code=code).pk):
        response = staff.get(page)
        assert response.status_code in (200, 403), page  # 403: a model the admin offers no add form for
        assert_no_inline_script(response)


# --- /metrics ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_closed_without_a_token_in_production_settings(client, settings):
    settings.ARENA_METRICS_TOKEN = ""
    settings.ARENA_METRICS_OPEN = False  # what production settings (a DATABASE_URL, DEBUG off) give
    response = client.get("/metrics")
    assert response.status_code == 403 and b"ARENA_METRICS_TOKEN" in response.content
    assert b"arena_battles" not in response.content


@pytest.mark.django_db
def test_metrics_answer_only_the_right_bearer_token(client, settings):
    settings.ARENA_METRICS_TOKEN, settings.ARENA_METRICS_OPEN = "s3cret", False
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cre").status_code == 401
    answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert answer.status_code == 200 and b"arena_battles" in answer.content


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "True"),  # the embedded default: one person's machine
        ({"DATABASE_URL": "postgres://x@127.0.0.1/x", "SECRET_KEY": "k"}, "False"),
        ({"DATABASE_URL": "postgres://x@127.0.0.1/x", "SECRET_KEY": "k", "DEBUG": "true"}, "True"),
        (
            {"DATABASE_URL": "postgres://x@127.0.0.1/x", "SECRET_KEY": "k", "ARENA_METRICS_OPEN": "true"},
            "True",
        ),
    ],
)
def test_metrics_are_open_by_default_only_where_nobody_else_can_reach_them(env, expected):
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='arena.settings'; django.setup(); "
        "from django.conf import settings; print(settings.ARENA_METRICS_OPEN)"
    )
    clean = {"PATH": "/usr/bin:/bin", "ARENA_VAR_DIR": "/tmp/arena-settings-test", **env}
    result = subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
