"""Every entry point, fuzzed with hostile strings, bytes and files: no 5xx, a refusal where a body is hostile,
and nothing stored.

The HTTP entry points are found by walking the URL resolver (the admin's included), the websocket ones from
arena.routing, so a new endpoint joins the fuzz by existing. What cannot be derived is asked for and the test
fails until it is given: a URL pattern the walker cannot fill in, a POST endpoint without a valid payload in
`BASES` (the hostile variants start from it, so they reach the service rather than stopping at a missing
field), a websocket route without an entry in `WS_ROUTES`.

Hostile inputs: JSON nested 100,000 deep, lone surrogates and NUL in every field and field name, 1 MB
strings, numbers no parser should accept, bodies that are not objects, bytes that are not UTF-8, wrong
content types, multipart bodies with garbage files, and path segments and ids that are none of the above.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from arena.asgi import application
from arena.models import Battle
from arena.routing import websocket_urlpatterns
from tests.voting.conftest import ready_battle, session_voter
from voting.rates import Rate

# --- What the walk cannot derive ----------------------------------------------------------------------------

# A valid payload per POST endpoint (URL name). Hostile variants replace or add one field at a time.
BASES: dict[str, dict[str, object]] = {
    "arena:battle-start": {"prompt": "Why is the sky blue?", "modality": "text"},
    "arena:battle-continue": {"prompt": "Tell me more."},
    "arena:vote": {"choice": "a"},
    "arena:battle-skip": {},
    "arena:battle-regenerate": {},
}
# POST endpoints outside the public site, fuzzed as an anonymous visitor (who is sent to the login page).
STAFF_POST = re.compile(r"^admin:")
# Websocket routes and a value for each of their parameters that the consumer accepts.
WS_ROUTES: dict[str, dict[str, str]] = {
    "ws/battle/<str:code>/": {"code": "<owned>"},
    "ws/leaderboard/<str:modality>/": {"modality": "text"},
}

# Sample values by parameter name; "<owned>" is the fuzzing visitor's own battle (or its id for the admin).
SAMPLES = {
    "code": "<owned>",
    "turn": "0",
    "side": "a",
    "ext": "png",
    "token": "abcdef",
    "modality": "text",
    "fmt": "jsonl",
    "object_id": "<pk>",
    "app_label": "arena",
    "url": "nothing/here/",
    "content_type_id": "1",
    "id": "1",
}

# --- Hostile inputs -----------------------------------------------------------------------------------------

SEGMENTS = [  # already percent-encoded path segments
    "%00",
    "a%00b",
    "%ED%A0%80",  # a UTF-8-encoded surrogate: not valid UTF-8
    "%FF%FE",
    "x" * 4096,
    "..",
    quote("' OR '1'='1", safe=""),
    quote("<script>alert(1)</script>", safe=""),
    "%F0%9F%92%A5",
]
INT_SEGMENTS = ["9" * 40, "0", "00000000000000000001"]
QUERY = (
    "category=%00&modality=%ED%A0%80&style=%00&style_control=%FF&format=..%2F..&q="
    + "a" * 10_000
    + "&code=%00&prompt=%00"
)
SURROGATE, NUL = "\ud800", "nul\x00here"
MEGA = "m" * 1_000_000


def _raw(text: str) -> bytes:
    """JSON text as bytes, lone surrogates included as their escapes (what an attacker's client sends)."""
    return text.encode("utf-8", "surrogatepass")


def _json(value: object) -> bytes:
    return _raw(json.dumps(value))


@dataclass(frozen=True)
class Body:
    name: str
    data: bytes | dict
    content_type: str


def hostile_bodies(base: dict[str, object]) -> Iterator[Body]:
    """Bodies every endpoint must refuse with a 4xx and store nothing for."""
    j = "application/json"
    yield Body("deep-array", b"[" * 100_000 + b"]" * 100_000, j)
    yield Body("deep-object", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, j)
    yield Body("deep-field", _json({**base, "criteria": json.loads("[" * 50 + "]" * 50)}), j)
    for not_object in ("[]", '"text"', "1", "null", "true", "[1, 2]"):
        yield Body(f"not-object-{not_object}", not_object.encode(), j)
    yield Body("not-json", b"{this is not json", j)
    yield Body("not-utf8", b'{"prompt": "\xff\xfe\xed\xa0\x80"}', j)
    yield Body("nan", _raw(json.dumps(base)[:-1] + ', "n": NaN}'), j)
    yield Body("huge-int", _raw(json.dumps(base)[:-1] + ', "n": ' + "9" * 5000 + "}"), j)
    yield Body("huge-float", _raw(json.dumps(base)[:-1] + ', "n": 1e999999}'), j)
    yield Body("too-large", _json({**base, "pad": "p" * 3_000_000}), j)
    for field in sorted(
        {*base, "prompt", "modality", "category", "fingerprint", "choice", "challenge", "captcha", "gallery"}
    ):
        yield Body(f"surrogate-{field}", _json({**base, field: SURROGATE}), j)
        yield Body(f"surrogate-pair-half-{field}", _json({**base, field: "ok\udfffok"}), j)
        yield Body(f"nul-{field}", _json({**base, field: NUL}), j)
    yield Body("surrogate-in-key", _json({**base, SURROGATE: "x"}), j)
    yield Body("nul-in-key", _json({**base, "a\x00": "x"}), j)
    yield Body("surrogate-in-criteria", _json({**base, "criteria": {"geometry": SURROGATE}}), j)
    yield Body("surrogate-in-list", _json({**base, "criteria": [SURROGATE]}), j)
    for field in base:
        for wrong in (1, 1.5, True, None, [base[field]], {"v": base[field]}, 10**30):
            yield Body(f"wrong-type-{field}-{type(wrong).__name__}", _json({**base, field: wrong}), j)
        yield Body(f"mega-{field}", _json({**base, field: MEGA}), j)
    yield Body("text-plain", _json(base), "text/plain")
    yield Body("xml", b"<?xml version='1.0'?><prompt>hi</prompt>", "application/xml")
    yield Body("multipart-no-boundary", b"--x\r\ngarbage", "multipart/form-data")
    yield Body(
        "multipart-garbage",
        b"--zz\r\nContent-Disposition: form-data\r\n\r\n\xff\r\n--zz",
        "multipart/form-data; boundary=zz",
    )
    yield Body(
        "form-nul",
        ("&".join(f"{k}={quote(str(v))}" for k, v in base.items()) + "&prompt=a%00b").encode(),
        "application/x-www-form-urlencoded",
    )
    yield Body(
        "form-many-fields",
        "&".join(f"f{i}=1" for i in range(5000)).encode(),
        "application/x-www-form-urlencoded",
    )


def hostile_files(base: dict[str, object]) -> Iterator[tuple[str, dict]]:
    """Multipart bodies (the test client encodes them) with garbage files and fields."""
    noise = bytes(range(256)) * 64
    for modality in ("text", "image", "3d"):
        yield (
            f"garbage-image-{modality}",
            {**base, "modality": modality, "image": SimpleUploadedFile("x.png", noise)},
        )
    yield "empty-file", {**base, "modality": "3d", "image": SimpleUploadedFile("e.png", b"")}
    yield "traversal-name", {**base, "modality": "3d", "image": SimpleUploadedFile("../../etc/x.png", noise)}
    yield "nul-field", {**base, "prompt": "a\x00b", "modality": "3d"}
    yield (
        "two-images",
        {
            **base,
            "modality": "3d",
            "image": [SimpleUploadedFile("a.png", noise), SimpleUploadedFile("b.png", noise)],
        },
    )


# --- The walk -----------------------------------------------------------------------------------------------

_GROUP = re.compile(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)")
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Endpoint:
    name: str
    parts: tuple[object, ...]  # each level's pattern object


def endpoints() -> list[Endpoint]:
    found: list[Endpoint] = []

    def walk(resolver: URLResolver, parts: tuple[object, ...], namespace: str) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry, (*parts, entry.pattern), ns)
            elif isinstance(entry, URLPattern):
                found.append(
                    Endpoint(f"{namespace}{entry.name or str(entry.pattern)}", (*parts, entry.pattern))
                )

    walk(get_resolver(), (), "")
    return found


def _fill_route(route: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[2]
        if name not in values:
            raise LookupError(f"no sample for <{match[0][1:-1]}>: add one to SAMPLES")
        return values[name]

    return _CONVERTER.sub(one, route)


def _fill_regex(regex: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, inner = match[1], match[2]
        value = values.get(name)
        if value is None or not (re.fullmatch(inner, value) or value in values.get("__hostile__", ())):
            raise LookupError(f"no sample matching (?P<{name}>{inner}): add one to SAMPLES")
        return value

    text = _GROUP.sub(one, regex).removeprefix("^").removesuffix("$")
    if re.search(r"[\\()\[\]*+?|^$]", text):
        raise LookupError(f"cannot build a URL from the regex {regex!r}")
    return text


def url_for(endpoint: Endpoint, values: dict[str, str]) -> str:
    path = ""
    for pattern in endpoint.parts:
        regex = getattr(pattern, "_regex", None)
        if type(pattern).__name__ == "RegexPattern":
            path += _fill_regex(str(regex), values)
        else:
            path += _fill_route(str(pattern), values)
    return "/" + path


def params_of(endpoint: Endpoint) -> list[tuple[str, str]]:
    """(name, converter) of every parameter, regex groups as "regex"."""
    params = []
    for pattern in endpoint.parts:
        if type(pattern).__name__ == "RegexPattern":
            params += [(m[1], "regex") for m in _GROUP.finditer(str(pattern._regex))]
        else:
            params += [(m[2], m[1] or "str") for m in _CONVERTER.finditer(str(pattern))]
    return params


def hostile_urls(endpoint: Endpoint, samples: dict[str, str]) -> list[str]:
    """The sample URL, then each parameter replaced by each hostile segment in turn."""
    urls = [url_for(endpoint, samples)]
    for name, converter in params_of(endpoint):
        segments = INT_SEGMENTS if converter == "int" else SEGMENTS
        for segment in segments:
            values = {**samples, name: segment, "__hostile__": (segment,)}
            try:
                urls.append(url_for(endpoint, values))
            except LookupError:
                continue  # a regex group this segment cannot match: the resolver would never route it here
    return urls


# --- Fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture
def world(db, settings, make_model, admin_user, tmp_path):
    """A visitor who owns a finished battle, staff, limits out of the way, proof of work off (so that a valid
    vote would pass the gate and the hostile field is what must stop it), files in a fresh folder."""
    for kind in ("VOTE", "BATTLE", "GENERATION"):
        for scope in ("VOTER", "IP", "NETWORK"):
            setattr(settings, f"ARENA_{kind}_RATE_PER_{scope}", Rate(1_000_000, 3600))
    settings.ARENA_POW_DIFFICULTY = 0
    settings.MEDIA_ROOT = tmp_path
    visitor = Client()
    voter = session_voter(visitor)
    battle = ready_battle(voter, make_model(), make_model())
    staff = Client()
    staff.force_login(admin_user)
    samples = {**SAMPLES, "code": battle.code, "object_id": str(battle.pk)}
    return visitor, staff, samples, tmp_path


def stored_counts() -> dict[str, int]:
    labels = {"arena", "voting", "ranking", "workers"}
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in labels
    }


def _files(folder) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def _request(client: Client, method: str, url: str, **kwargs: object):
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code < 500, f"{method.upper()} {url[:200]} answered {response.status_code}"
    return response


# --- The fuzz -----------------------------------------------------------------------------------------------


def test_every_url_pattern_can_be_fuzzed(world):
    """A new URL pattern the walk cannot fill in fails here until SAMPLES says how."""
    _, _, samples, _ = world
    problems = []
    for endpoint in endpoints():
        try:
            hostile_urls(endpoint, samples)
        except LookupError as exc:
            problems.append(f"{endpoint.name}: {exc}")
    assert not problems, problems
    names = {e.name for e in endpoints()}
    assert {"arena:battle-start", "arena:vote", "ranking:leaderboard", "admin:login"} <= names


def test_hostile_paths_and_queries_never_cause_a_server_error(world):
    visitor, staff, samples, media = world
    before = stored_counts()
    for endpoint in endpoints():
        slow = endpoint.name == "readyz"  # probes the broker and workers: one call is enough
        urls = hostile_urls(endpoint, samples)[:1] if slow else hostile_urls(endpoint, samples)
        for url in urls:
            for client in (visitor, staff):
                _request(client, "get", url)
            _request(visitor, "get", f"{url}?{QUERY}")
            _request(visitor, "head", url)
    assert stored_counts() == before
    assert _files(media) == []


def _post_endpoints(visitor: Client, samples: dict[str, str]) -> list[Endpoint]:
    """Endpoints that take a POST (an empty one is not answered 405)."""
    found = []
    for endpoint in endpoints():
        if endpoint.name == "readyz":
            continue
        if _request(visitor, "post", url_for(endpoint, samples)).status_code != 405:
            found.append(endpoint)
    return found


def test_every_post_endpoint_has_a_valid_payload_to_fuzz_from(world):
    visitor, _, samples, _ = world
    missing = [
        e.name
        for e in _post_endpoints(visitor, samples)
        if e.name not in BASES and not STAFF_POST.match(e.name)
    ]
    assert not missing, f"add a valid payload to BASES for {missing}"


def test_hostile_bodies_are_refused_with_a_4xx_and_nothing_is_stored(world):
    visitor, _, samples, media = world
    before = stored_counts()
    for endpoint in _post_endpoints(visitor, samples):
        base = BASES.get(endpoint.name, {})
        url = url_for(endpoint, samples)
        for body in hostile_bodies(base):
            response = _request(visitor, "post", url, data=body.data, content_type=body.content_type)
            if endpoint.name in BASES:
                assert 400 <= response.status_code < 500, (endpoint.name, body.name, response.status_code)
                if body.content_type == "application/json":  # a form post may get the page back instead
                    assert response["Content-Type"].startswith("application/json"), (endpoint.name, body.name)
        for name, fields in hostile_files(base):
            response = _request(visitor, "post", url, data=fields, HTTP_ACCEPT="application/json")
            if endpoint.name in BASES:
                assert 400 <= response.status_code < 500, (endpoint.name, name, response.status_code)
        assert stored_counts() == before, f"{endpoint.name} stored something"
    assert _files(media) == []


def test_a_lone_surrogate_or_nul_in_the_vote_fingerprint_is_a_400_and_no_vote(world):
    """The reported case: every vote check passed, then hashing the fingerprint raised on the surrogate."""
    visitor, _, samples, _ = world
    for fingerprint in (SURROGATE, NUL):
        response = visitor.post(
            f"/api/battles/{samples['code']}/vote",
            _json({"choice": "a", "fingerprint": fingerprint}),
            content_type="application/json",
        )
        assert response.status_code == 400 and "fingerprint" in response.json()["error"]
    assert Battle.objects.get(code=samples["code"]).status == Battle.Status.READY


# --- Websockets ---------------------------------------------------------------------------------------------

WS_MESSAGES = [
    "[" * 500 + "]" * 500,
    '{"type": "\\ud800"}',
    '{"type": "ping\\u0000"}',
    '{"n": ' + "9" * 900 + "}",
    "x" * 5000,
    "not json",
    "[]",
    "null",
    "1e99999",
    '{"type": ["ping"]}',
]


def _ws(path: str, visitor: Client) -> WebsocketCommunicator:
    cookie = f"sessionid={visitor.cookies['sessionid'].value}" if "sessionid" in visitor.cookies else ""
    headers = [(b"cookie", cookie.encode()), (b"origin", b"http://localhost")]
    return WebsocketCommunicator(application, path, headers=headers)


def test_every_websocket_route_is_in_the_fuzz():
    routes = {str(p.pattern) for p in websocket_urlpatterns} - {""}  # "": the refusing catch-all
    assert routes == set(WS_ROUTES), f"add the new routes to WS_ROUTES: {routes - set(WS_ROUTES)}"


@pytest.mark.django_db(transaction=True)
async def test_hostile_websocket_paths_are_refused_and_hostile_messages_answered(make_model):
    from asgiref.sync import sync_to_async

    @sync_to_async
    def owned() -> tuple[Client, str]:
        visitor = Client()
        voter = session_voter(visitor)
        visitor.cookies["sessionid"] = visitor.session.session_key
        return visitor, ready_battle(voter, make_model(), make_model()).code

    visitor, code = await owned()
    for route, values in WS_ROUTES.items():
        good = {k: code if v == "<owned>" else v for k, v in values.items()}
        for name in good:
            for segment in SEGMENTS:
                socket = _ws("/" + _fill_route(route, {**good, name: segment}), visitor)
                connected, close_code = await socket.connect()
                assert not connected and 4000 <= close_code < 5000, (route, segment, close_code)
        socket = _ws("/" + _fill_route(route, good), visitor)
        connected, _ = await socket.connect()
        assert connected, route
        for message in WS_MESSAGES:
            await socket.send_to(text_data=message)
            answer = json.loads(await socket.receive_from(timeout=5))
            assert answer["type"] == "error", (route, message[:40], answer)
        await socket.send_to(bytes_data=b"\xff\x00" * 100)
        assert json.loads(await socket.receive_from(timeout=5))["type"] == "error"
        await socket.send_to(text_data='{"type": "ping"}')
        assert json.loads(await socket.receive_from(timeout=5)) == {"type": "pong"}, (
            "still open and answering"
        )
        await socket.disconnect()
