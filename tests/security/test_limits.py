"""Limits an attacker cannot step around: forged proxy headers, rotated cookies, unparsable addresses,
endpoints that cost generations, and bodies too large to read.

Rate-limit refusals are checked through Django (the test client) and, where the point is what the server
does before it reads a body, against the real ASGI server (uvicorn) with a raw socket: the answer must come
while almost all of the declared body is still unsent.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from arena.models import Battle, Generation
from tests.support.asgi import AsgiServer
from tests.voting.conftest import fresh_ip, ready_battle, session_voter
from voting.identity import client_ip
from voting.limits import address_scopes, rate_check
from voting.rates import Rate

PROXY = "10.9.8.7"
_forged = itertools.count(1)


def forged() -> str:
    """A new address each call, as an attacker rotating the X-Forwarded-For entry they control would send."""
    n = next(_forged)
    return f"198.18.{n // 256 % 256}.{n % 256}"


@pytest.fixture
def generous(settings):
    """Every limit far away, so a test can tighten just the one it is about."""
    for kind in ("VOTE", "BATTLE", "GENERATION"):
        for scope in ("VOTER", "IP", "NETWORK"):
            setattr(settings, f"ARENA_{kind}_RATE_PER_{scope}", Rate(1000, 3600))
    return settings


@pytest.fixture(params=["count", "cidr"])
def behind_proxy(request, generous):
    """The two documented ways to run behind one proxy at PROXY: a proxy count, or the proxy's network."""
    generous.ARENA_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    if request.param == "count":
        generous.ARENA_PROXY_COUNT, generous.ARENA_TRUSTED_PROXIES = 1, ()
    else:
        generous.ARENA_PROXY_COUNT, generous.ARENA_TRUSTED_PROXIES = 0, ("10.9.8.0/24",)
    return generous


def start(client: Client, *, via: str | None = None, **extra: str) -> int:
    """A battle start through the proxy: `via` is the X-Forwarded-For the proxy passes on."""
    headers = {"REMOTE_ADDR": PROXY, **({"HTTP_X_FORWARDED_FOR": via} if via else {}), **extra}
    body = {"prompt": "Why is the sky blue?", "modality": "text"}
    return client.post("/api/battles", body, content_type="application/json", **headers).status_code


# --- Which address a request comes from -------------------------------------------------------------------


def via(forwarded: str | None, peer: str | None = PROXY) -> dict[str, str]:
    """The META of a request from `peer` carrying `forwarded` as X-Forwarded-For."""
    meta = {"REMOTE_ADDR": peer} if peer else {}
    return {**meta, "HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else meta


PROXY_NET = ("10.9.8.0/24",)


@pytest.mark.parametrize(
    ("trusted", "count", "meta", "expected"),
    [
        # One proxy by count: the hop it appended (the rightmost) is the client, whatever is left of it.
        ((), 1, via("1.1.1.1, 203.0.113.5"), "203.0.113.5"),
        ((), 2, via("1.1.1.1, 203.0.113.5, 10.9.8.1"), "203.0.113.5"),
        ((), 2, via("203.0.113.5"), None),  # fewer hops than proxies
        # Trusted networks: the rightmost hop that is not a proxy; a peer outside them is itself the client.
        (PROXY_NET, 0, via("1.1.1.1, 203.0.113.5, 10.9.8.1"), "203.0.113.5"),
        (PROXY_NET, 0, via("203.0.113.5", peer="192.0.2.44"), "192.0.2.44"),
        (PROXY_NET, 0, via("203.0.113.5, garbage"), None),
        (PROXY_NET, 0, via(None), PROXY),  # the proxy's own request
        (("unix",), 0, via("203.0.113.5", peer=None), "203.0.113.5"),  # a unix-socket peer
        # Ports, brackets and IPv4-mapped IPv6 as proxies write them.
        ((), 1, via("203.0.113.5:41000"), "203.0.113.5"),
        ((), 1, via("[2001:db8::7]:443"), "2001:db8::7"),
        ((), 1, via("::ffff:203.0.113.5"), "203.0.113.5"),
        ((), 1, via("unknown"), None),
        ((), 1, via(""), None),
    ],
)
def test_the_client_is_the_rightmost_address_that_is_not_a_proxy(settings, trusted, count, meta, expected):
    settings.ARENA_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    settings.ARENA_TRUSTED_PROXIES, settings.ARENA_PROXY_COUNT = trusted, count
    assert client_ip(meta) == expected


def test_without_proxy_settings_a_forwarded_header_is_ignored(settings):
    settings.ARENA_IP_HEADER, settings.ARENA_PROXY_COUNT = "REMOTE_ADDR", 0
    settings.ARENA_TRUSTED_PROXIES = ()
    assert client_ip({"REMOTE_ADDR": "192.0.2.44", "HTTP_X_FORWARDED_FOR": "203.0.113.5"}) == "192.0.2.44"
    settings.ARENA_IP_HEADER = "HTTP_X_REAL_IP"  # a header named, no proxy trusted: the peer, not the header
    assert client_ip({"REMOTE_ADDR": "192.0.2.44", "HTTP_X_REAL_IP": "203.0.113.5"}) == "192.0.2.44"
    settings.ARENA_PROXY_COUNT = 1
    assert client_ip({"REMOTE_ADDR": PROXY, "HTTP_X_REAL_IP": "203.0.113.5"}) == "203.0.113.5"


def _settings_with(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='arena.settings'; django.setup(); "
        f"from django.conf import settings as s; print({expression})"
    )
    clean = {"PATH": "/usr/bin:/bin", "ARENA_VAR_DIR": "/tmp/arena-settings-test", **env}
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "('REMOTE_ADDR', 0, ())"),
        # The older setting alone keeps working, now as "one proxy in front" (its rightmost entry).
        ({"ARENA_IP_HEADER": "HTTP_X_FORWARDED_FOR"}, "('HTTP_X_FORWARDED_FOR', 1, ())"),
        ({"ARENA_PROXY_COUNT": "2"}, "('HTTP_X_FORWARDED_FOR', 2, ())"),
        (
            {"ARENA_TRUSTED_PROXIES": "10.0.0.0/8, unix, 2001:db8::/32"},
            "('HTTP_X_FORWARDED_FOR', 0, ('10.0.0.0/8', 'unix', '2001:db8::/32'))",
        ),
    ],
)
def test_proxy_settings_and_the_migration_from_arena_ip_header(env, expected):
    result = _settings_with(env, "(s.ARENA_IP_HEADER, s.ARENA_PROXY_COUNT, s.ARENA_TRUSTED_PROXIES)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ARENA_TRUSTED_PROXIES": "10.0.0.1/8"}, "ARENA_TRUSTED_PROXIES: '10.0.0.1/8' is not an IP network"),
        ({"ARENA_TRUSTED_PROXIES": "proxy.internal"}, "is not an IP network"),
        ({"ARENA_PROXY_COUNT": "one"}, "ARENA_PROXY_COUNT must be an integer"),
        ({"ARENA_PROXY_COUNT": "1", "ARENA_IP_HEADER": "REMOTE_ADDR"}, "ARENA_IP_HEADER=REMOTE_ADDR ignores"),
        ({"ARENA_PROXY_COUNT": "2", "ARENA_IP_HEADER": "HTTP_X_REAL_IP"}, "X-Real-IP holds one address"),
    ],
)
def test_bad_proxy_settings_stop_the_process(env, message):
    result = _settings_with(env, "1")
    assert result.returncode != 0 and message in result.stderr


# --- Per-address limits hold whatever the client writes ---------------------------------------------------


@pytest.mark.django_db
def test_rotating_the_leftmost_forwarded_for_entry_does_not_escape_the_ip_limit(demo_models, behind_proxy):
    behind_proxy.ARENA_BATTLE_RATE_PER_IP = "2/600"
    client = fresh_ip()
    # Each request from a new session, with a new forged leftmost entry: the proxy appended the real address.
    statuses = [start(Client(), via=f"{forged()}, {client}") for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert Battle.objects.count() == 2
    assert start(Client(), via=f"{forged()}, {fresh_ip()}") == 201, "another client is not limited"


@pytest.mark.django_db
def test_a_forged_header_sent_around_the_proxy_is_ignored(demo_models, generous):
    """With the proxy's network configured, a client that reaches the app directly is keyed on its own
    address, whatever X-Forwarded-For it writes."""
    generous.ARENA_IP_HEADER, generous.ARENA_PROXY_COUNT = "HTTP_X_FORWARDED_FOR", 0
    generous.ARENA_TRUSTED_PROXIES = ("10.9.8.0/24",)
    generous.ARENA_BATTLE_RATE_PER_IP = "2/600"
    attacker = fresh_ip()
    statuses = [start(Client(), REMOTE_ADDR=attacker, HTTP_X_FORWARDED_FOR=forged()) for _ in range(3)]
    assert statuses == [201, 201, 429]


@pytest.mark.django_db
def test_unparsable_addresses_share_one_unknown_bucket_that_is_limited(demo_models, behind_proxy):
    behind_proxy.ARENA_BATTLE_RATE_PER_IP = "2/600"
    garbage = ["not-an-ip", "unknown", "999.1.1.1", "_hidden"]
    statuses = [start(Client(), via=value) for value in garbage]
    assert statuses == [201, 201, 429, 429]
    assert start(Client(), via=fresh_ip()) == 201, "a known address has its own budget"


@pytest.mark.django_db
def test_a_request_without_any_peer_address_is_limited_as_unknown(demo_models, generous):
    generous.ARENA_BATTLE_RATE_PER_IP = "1/600"
    statuses = [start(Client(), REMOTE_ADDR="") for _ in range(2)]
    assert statuses == [201, 429]


@pytest.mark.django_db
def test_the_admin_login_limit_holds_when_forwarded_for_is_rotated(behind_proxy):
    behind_proxy.ARENA_ADMIN_LOGIN_RATE = Rate(3, 300)
    client_address = fresh_ip()

    def attempt() -> int:
        return (
            Client()
            .post(
                "/admin/login/",
                {"username": "root", "password": "guess"},
                REMOTE_ADDR=PROXY,
                HTTP_X_FORWARDED_FOR=f"{forged()}, {client_address}",
            )
            .status_code
        )

    assert [attempt() for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.django_db
def test_ipv6_clients_are_limited_per_64_so_rotating_addresses_inside_it_does_not_help(demo_models, generous):
    generous.ARENA_BATTLE_RATE_PER_IP = "2/600"
    statuses = [start(Client(), REMOTE_ADDR=f"2001:db8:1:2::{n:x}") for n in range(1, 4)]
    assert statuses == [201, 201, 429]


# --- Every endpoint that costs a generation is limited -----------------------------------------------------


@pytest.mark.django_db
def test_continue_counts_two_generations_per_call_against_the_voter(alice, make_model, generous):
    generous.ARENA_GENERATION_RATE_PER_VOTER = "6/3600"
    ip = fresh_ip()
    battle = ready_battle(session_voter(alice), make_model(), make_model())
    url = f"/api/battles/{battle.code}/continue"
    statuses = []
    for _ in range(4):
        Battle.objects.filter(id=battle.id).update(status=Battle.Status.READY)  # as if both sides finished
        response = alice.post(url, {"prompt": "And then?"}, content_type="application/json", REMOTE_ADDR=ip)
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    refused = alice.post(url, {"prompt": "And then?"}, content_type="application/json", REMOTE_ADDR=ip)
    assert "Too many generations from you: the limit is 6 per 1 hour" in refused.json()["error"]
    assert int(refused["Retry-After"]) > 0
    assert Generation.objects.filter(battle=battle).count() == 2 + 3 * 2


@pytest.mark.django_db
def test_rotating_session_cookies_does_not_give_a_fresh_generation_budget(demo_models, generous):
    """Battle starts and continued turns share the address's generation budget: a new session per request
    (a new voter each time) is refused once the address has spent it."""
    generous.ARENA_GENERATION_RATE_PER_IP = "6/3600"
    address = fresh_ip()
    statuses = [start(Client(), REMOTE_ADDR=address) for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    fresh = Client()
    url = "/api/battles/whatever/continue"
    response = fresh.post(url, {"prompt": "x"}, content_type="application/json", REMOTE_ADDR=address)
    assert response.status_code == 429 and "from your network address" in response.json()["error"]
    assert "voter_id" not in fresh.session, "no voter was created for a refused request"


@pytest.mark.django_db
def test_the_network_limit_covers_continues_from_neighbouring_addresses(alice, make_model, generous):
    generous.ARENA_GENERATION_RATE_PER_NETWORK = "2/3600"
    base = fresh_ip().rsplit(".", 1)[0]
    battle = ready_battle(session_voter(alice), make_model(), make_model())
    url = f"/api/battles/{battle.code}/continue"
    first = alice.post(url, {"prompt": "More?"}, content_type="application/json", REMOTE_ADDR=f"{base}.1")
    Battle.objects.filter(id=battle.id).update(status=Battle.Status.READY)
    second = alice.post(url, {"prompt": "More?"}, content_type="application/json", REMOTE_ADDR=f"{base}.2")
    assert (first.status_code, second.status_code) == (200, 429)
    assert "from your network:" in second.json()["error"]


# --- Bodies: refused before they are read -----------------------------------------------------------------


@pytest.fixture
def server(transactional_db) -> Iterator[AsgiServer]:
    """uvicorn serving arena.asgi (the guarded application), as `manage.py serve` runs it."""
    with AsgiServer() as running:
        yield running


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket, wait: float) -> tuple[int, dict[str, str], bytes] | None:
    """The response on `sock` if one starts within `wait` seconds, else None."""
    if not select.select([sock], [], [], wait)[0]:
        return None
    data = b""
    sock.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    want = int(headers.get("content-length", len(body)))
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def declared_post(server: AsgiServer, path: str, *, declared: int, headers: dict[str, str], wait: float = 5):
    """Send the headers of a `declared`-byte body and its first KiB only; the answer, if it comes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = _head(path, {"Content-Length": str(declared), **headers})
        sock.sendall(head + b"-" * 1024)
        return _response(sock, wait)


def chunked_post(server: AsgiServer, path: str, *, headers: dict[str, str], most: int) -> tuple[object, int]:
    """Stream a chunked body (no length) 64 KiB at a time, up to `most` bytes, until the server answers;
    the answer and how many body bytes had been sent by then."""
    piece = b"x" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_head(path, {"Transfer-Encoding": "chunked", **headers}))
        while sent < most:
            answer = _response(sock, 0)
            if answer is not None:
                return answer, sent
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        return _response(sock, 5), sent


MULTIPART = {"Content-Type": "multipart/form-data; boundary=xyz", "Accept": "application/json"}


def test_a_body_over_the_limit_is_refused_by_its_declared_length_before_it_is_read(server, settings):
    fifty_mb = 50 * 1024 * 1024
    answer = declared_post(server, "/api/battles", declared=fifty_mb, headers=MULTIPART)
    assert answer is not None, "the server waited for the body"
    status, headers, body = answer
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["code"] == "too_large"
    assert "default-src 'self'" in headers["content-security-policy"]
    json_type = {"Content-Type": "application/json"}
    json_answer = declared_post(
        server, "/api/battles/x/continue", declared=2 * 1024 * 1024, headers=json_type
    )
    assert json_answer is not None and json_answer[0] == 413, "JSON endpoints are bounded too"
    assert not Battle.objects.exists()


def test_a_spent_client_gets_429_before_its_body_is_read(server, settings, generous):
    """A 50 MB upload the size limit would accept, from an address that has spent its battle limit: the answer
    comes after 1 KiB of it. A client that still has budget is waited for instead (the control)."""
    settings.ARENA_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
    generous.ARENA_BATTLE_RATE_PER_IP = "1/600"
    fifty_mb = 50 * 1024 * 1024
    assert declared_post(server, "/api/battles", declared=fifty_mb, headers=MULTIPART, wait=1.5) is None, (
        "a client with budget left is read as usual"
    )
    rate_check("battle", scopes=address_scopes(ip="127.0.0.1", kind="battle"))  # the budget is spent
    started = time.monotonic()
    answer = declared_post(server, "/api/battles", declared=fifty_mb, headers=MULTIPART)
    assert answer is not None, "the server read (or waited for) the body of a limited client"
    status, headers, body = answer
    assert status == 429 and int(headers["retry-after"]) > 0
    assert "Too many new battles from your network address" in json.loads(body)["error"]
    assert time.monotonic() - started < 3
    assert not Battle.objects.exists()


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(server, settings):
    """No Content-Length to check: the bytes are counted as they arrive and the answer comes once they pass
    the endpoint's limit, not after the 128 MB the client would send."""
    settings.ARENA_MAX_UPLOAD_BYTES = 1024 * 1024
    limit = settings.ARENA_MAX_UPLOAD_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    answer, sent = chunked_post(server, "/api/battles", headers=MULTIPART, most=128 * 1024 * 1024)
    assert answer is not None and answer[0] == 413
    # What the kernel's socket buffers hold on top of the limit is all the client gets to send.
    assert sent < limit + 12 * 1024 * 1024, f"{sent:,} bytes were taken for a {limit:,}-byte limit"
    assert not Battle.objects.exists()


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_stopped_while_it_is_parsed(alice, settings, generous, tmp_path):
    """Through Django alone (a server that hands it the body): the upload handler stops at the limit, nothing
    of the file is kept, and the answer is 413."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.ARENA_MAX_UPLOAD_BYTES = 4096
    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("big.png", os.urandom(64 * 1024), content_type="image/png")
    response = alice.post("/api/battles", {"modality": "3d", "image": upload}, HTTP_ACCEPT="application/json")
    assert response.status_code == 413 and "the limit is 4,096 bytes" in response.json()["error"]
    assert not Battle.objects.exists() and not any(Path(tmp_path).rglob("*"))
