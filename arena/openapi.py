"""The OpenAPI 3.1 description of the site's HTTP API, written by hand and served at /api/v1/openapi.json.

Kept next to the views it describes; tests check that it is well formed and that every path it names
resolves to a view, so a renamed route cannot leave the document behind.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from arena.models import Modality

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds until a new attempt can succeed.", "schema": {"type": "string"}}
}


def _limited(description: str) -> dict[str, Any]:
    """A 429: the JSON error with how long to wait, in the body and in Retry-After."""
    wait = {"type": "object", "properties": {"retry_after": {"type": "integer"}}}
    return {**_json({"allOf": [_ref("Error"), wait]}, description), "headers": _RETRY_AFTER}


def _page_or_error(description: str) -> dict[str, Any]:
    """Battle start answers a plain form post (no JSON content type or Accept header) with the HTML page."""
    return {
        "description": description + " A plain form post gets the page (HTML) with the message instead.",
        "content": {JSON: {"schema": _ref("Error")}, "text/html": {"schema": {"type": "string"}}},
    }


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict:
    return {
        "name": name,
        "in": where,
        "required": where == "path" or required,
        "schema": schema,
        "description": description,
    }


_CODE = _param("code", "path", {"type": "string"}, "The battle's public code.")
_MODALITY = {"type": "string", "enum": list(Modality.values)}


def _prompt_body() -> dict[str, Any]:
    """The next message of a conversation; its limit is the deployment's (ARENA_MAX_PROMPT_CHARS)."""
    prompt = {"type": "string", "maxLength": settings.ARENA_MAX_PROMPT_CHARS}
    schema = {"type": "object", "required": ["prompt"], "properties": {"prompt": prompt}}
    return {"required": True, "content": {JSON: {"schema": schema}}}


_BATTLE_ERRORS = {
    "403": _error("The battle belongs to another browser session."),
    "404": _error("No battle with this code."),
}


def _schemas() -> dict[str, Any]:
    side = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "output": {"type": "string"},
            "error": {"type": "string"},
            "attempt": {"type": "integer"},
            "flagged": {
                "type": "boolean",
                "description": "Hidden by the content filter until the user asks.",
            },
        },
    }
    model = {
        "type": "object",
        "properties": {
            "slug": {"type": "string"},
            "name": {"type": "string"},
            "organization": {"type": "string"},
            "rating": {"type": "number"},
            "lower": {"type": "number", "description": "Lower bound of the 95% interval."},
            "upper": {"type": "number", "description": "Upper bound of the 95% interval."},
            "rank_ub": {"type": "integer"},
            "battles": {"type": "integer"},
            "win_rate": {"type": "number"},
            "provisional": {"type": "boolean", "description": "Too few battles for a stable rating."},
        },
    }
    counts = {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in ("battles", "votes", "counted_votes")},
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error", "code"],
            "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
        },
        "Side": side,
        "BattleState": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "modality": _MODALITY,
                "status": {"type": "string", "enum": ["generating", "ready", "failed", "voted", "skipped"]},
                "turns": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"prompt": {"type": "string"}, "a": _ref("Side"), "b": _ref("Side")},
                    },
                },
                "can_vote": {"type": "boolean"},
                "can_continue": {"type": "boolean"},
                "max_turns": {"type": "integer"},
                "demo": {"type": "boolean"},
                "vote": {
                    "type": ["object", "null"],
                    "description": "Present once voted; only then are the models revealed.",
                },
            },
        },
        "LeaderboardModel": model,
        "Leaderboard": {
            "type": "object",
            "properties": {
                "modality": _MODALITY,
                "category": {"type": "string"},
                "style_control": {"type": "boolean"},
                "created_at": {"type": "string", "format": "date-time"},
                "n_votes": {"type": "integer"},
                "frozen": {"type": "boolean"},
                "models": {"type": "array", "items": _ref("LeaderboardModel")},
            },
        },
        "Counts": counts,
        "Stats": {
            "type": "object",
            "properties": {
                "generated_at": {"type": "string", "format": "date-time"},
                "modalities": {"type": "object", "additionalProperties": _ref("Counts")},
                "models": {
                    "type": "array",
                    "items": {
                        "allOf": [
                            _ref("Counts"),
                            {
                                "type": "object",
                                "properties": {
                                    "slug": {"type": "string"},
                                    "name": {"type": "string"},
                                    "modality": _MODALITY,
                                },
                            },
                        ]
                    },
                },
            },
        },
        "ExportRecord": {
            "type": "object",
            "description": "One battle in the public battle-dump format plus Arena's fields (one JSON line).",
            "required": ["question_id", "model_a", "model_b", "winner", "judge", "turn", "anony", "tstamp"],
            "properties": {
                "question_id": {"type": "string"},
                "model_a": {"type": "string"},
                "model_b": {"type": "string"},
                "winner": {"type": "string", "enum": ["model_a", "model_b", "tie", "tie (bothbad)"]},
                "judge": {
                    "type": "string",
                    "description": "Salted hash of the voter, stable across exports.",
                },
                "turn": {"type": "integer"},
                "anony": {"type": "boolean"},
                "language": {"type": "string"},
                "tstamp": {"type": "number", "description": "Unix seconds."},
                "conversation_a": {"type": "array", "items": {"type": "object"}},
                "conversation_b": {"type": "array", "items": {"type": "object"}},
                "conv_metadata": {"type": "object"},
                "category": {"type": "array", "items": {"type": "string"}},
                "modality": _MODALITY,
                "categories": {"type": "array", "items": {"type": "string"}},
                "counted": {"type": "boolean"},
                "exclusion_reason": {"type": "string"},
                "risk_score": {"type": "number"},
                "imported": {"type": "boolean"},
            },
        },
    }


def _start_body() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "prompt": {
                "type": "string",
                "description": "At most ARENA_MAX_PROMPT_CHARS characters (a gallery battle ignores it).",
            },
            "modality": _MODALITY,
            "gallery": {"type": "boolean", "description": "A pre-generated gallery battle (image and 3D)."},
        },
    }


def _battle_paths() -> dict[str, Any]:
    state = {"type": "object", "properties": {"state": _ref("BattleState")}}
    return {
        "/api/battles": {
            "post": {
                "summary": "Start a battle: two anonymous models answer the prompt.",
                "description": (
                    "JSON for scripts. Image-to-3D battles post multipart/form-data with the input `image`; "
                    "`gallery` asks for a pre-generated gallery prompt instead of the visitor's own. A plain "
                    "form post (no JSON content type or Accept header) is answered with a redirect to the "
                    "battle page, or the page with the error."
                ),
                "operationId": "battleStart",
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": _start_body()},
                        "multipart/form-data": {
                            "schema": {
                                **_start_body(),
                                "properties": {
                                    **_start_body()["properties"],
                                    "image": {"type": "string", "format": "binary"},
                                },
                            }
                        },
                    },
                },
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "url": {"type": "string"},
                                "state": _ref("BattleState"),
                            },
                        },
                        "The battle started; follow it over the websocket /ws/battle/{code}/.",
                    ),
                    "302": {"description": "A plain form post: redirected to the battle page."},
                    "400": _page_or_error("The prompt or image is empty, too large or malformed."),
                    "403": {
                        "description": "The CSRF token is missing or wrong (Django's page).",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "422": _page_or_error("The prompt was blocked by the content policy."),
                    "429": {
                        **_limited("Too many new battles; see Retry-After (a form post gets the page)."),
                        "content": {
                            **_limited("")["content"],
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    "503": _page_or_error("Not enough models are available."),
                },
            }
        },
        "/api/battles/{code}": {
            "get": {
                "summary": "The battle's current state (the requester's own battles only).",
                "operationId": "battleState",
                "parameters": [_CODE],
                "responses": {"200": _json(_ref("BattleState"), "The battle."), **_BATTLE_ERRORS},
            }
        },
        "/api/battles/{code}/continue": {
            "post": {
                "summary": "Send the next message to both models.",
                "operationId": "battleContinue",
                "parameters": [_CODE],
                "requestBody": _prompt_body(),
                "responses": {
                    "200": _json(state, "The next turn is generating."),
                    "400": _error("The prompt is empty, too long or malformed."),
                    **_BATTLE_ERRORS,
                    "409": _error("Not ready, already voted, or at the turn limit."),
                    "422": _error("The prompt was blocked by the content policy."),
                    "429": _limited("Too many generations; see Retry-After."),
                },
            }
        },
        "/api/battles/{code}/skip": {
            "post": {
                "summary": "Pass on this pair: recorded, never voted, on no board.",
                "operationId": "battleSkip",
                "parameters": [_CODE],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
                },
                "responses": {
                    "200": _json(state, "The battle is skipped."),
                    "400": _error("The body is not the empty JSON object {}."),
                    **_BATTLE_ERRORS,
                    "409": _error("Already voted, skipped, or failed."),
                    "429": _limited("Too many votes and skips; see Retry-After."),
                },
            }
        },
        "/api/battles/{code}/regenerate": {
            "post": {
                "summary": "Both models answer the last message again; only the final pair is voted.",
                "operationId": "battleRegenerate",
                "parameters": [_CODE],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
                },
                "responses": {
                    "200": _json(state, "Both sides are generating again."),
                    "400": _error("The body is not the empty JSON object {}."),
                    **_BATTLE_ERRORS,
                    "409": _error("Still generating, voted, skipped, or not a text battle."),
                    "429": _limited("Too many generations; see Retry-After."),
                },
            }
        },
        "/api/battles/{code}/challenge": {
            "get": {
                "summary": "A proof-of-work challenge (and CAPTCHA settings) that a vote must carry.",
                "operationId": "voteChallenge",
                "parameters": [_CODE],
                "responses": {"200": _json({"type": "object"}, "The challenge."), **_BATTLE_ERRORS},
            }
        },
        "/api/battles/{code}/vote": {
            "post": {
                "summary": "Cast the battle's one vote; the answer reveals both models.",
                "operationId": "vote",
                "parameters": [_CODE],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "required": ["choice"],
                                "properties": {
                                    "choice": {"type": "string", "enum": ["a", "b", "tie", "both_bad"]},
                                    "challenge": {"type": "object", "description": "The solved challenge."},
                                    "captcha": {"type": "string"},
                                    "fingerprint": {"type": "string"},
                                    "criteria": {
                                        "type": "object",
                                        "description": "3D battles: a choice per criterion, e.g. "
                                        '{"geometry": "a"}.',
                                        "additionalProperties": {
                                            "type": "string",
                                            "enum": ["a", "b", "tie", "both_bad"],
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(state, "The vote was recorded."),
                    "400": _error("A bad choice or criteria, a malformed body, or no solved challenge."),
                    "403": _error(
                        "The battle belongs to another browser session, sign-in is required, or the "
                        "challenge or CAPTCHA was refused (fetch a new one and vote again)."
                    ),
                    "404": _error("No battle with this code."),
                    "409": _error("Already voted, or the answers are not finished."),
                    "429": _limited("Too many votes; see Retry-After."),
                    "503": _error("The CAPTCHA service could not be reached; try again."),
                },
            }
        },
        "/api/prompts/random": {
            "get": {
                "summary": "A random approved prompt from the curated sets.",
                "operationId": "promptRandom",
                "parameters": [_param("modality", "query", _MODALITY, "Defaults to text.")],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"prompt": {"type": "string"}}}, "A prompt."
                    ),
                    "400": _error("No prompt set for this modality."),
                },
            }
        },
    }


def _public_paths() -> dict[str, Any]:
    board_params = [
        _param("modality", "path", _MODALITY, "The board's modality."),
        _param("category", "query", {"type": "string"}, "A category board (empty: overall)."),
        _param("style_control", "query", {"type": "boolean"}, "The style-controlled board."),
    ]
    export_params = [
        _param("format", "path", {"type": "string", "enum": ["jsonl", "csv", "parquet"]}, "File format."),
        _param("since", "query", {"type": "string"}, "ISO date or date-time (inclusive)."),
        _param("until", "query", {"type": "string"}, "ISO date or date-time (inclusive)."),
        _param("modality", "query", _MODALITY, "Only this modality."),
        _param("model", "query", {"type": "string"}, "Only battles with this model slug on either side."),
        _param("counted_only", "query", {"type": "boolean"}, "Leave out votes that do not count."),
        _param("with_conversations", "query", {"type": "boolean"}, "Include both conversations."),
    ]
    return {
        "/api/v1/leaderboards/{modality}": {
            "get": {
                "summary": "The published leaderboard of a modality (or of a category, or style-controlled).",
                "description": (
                    "Unreleased models are rated with the others but left out of `models` and `pairs` until "
                    "they are released; `rank_ub` is counted among the models shown."
                ),
                "operationId": "leaderboardPublic",
                "parameters": board_params,
                "responses": {
                    "200": _json(_ref("Leaderboard"), "The board."),
                    "400": _error("A bad parameter."),
                    "404": _error("Unknown modality, or no published board yet."),
                },
            }
        },
        "/api/leaderboard/{modality}": {
            "get": {
                "summary": "The leaderboard page's data: the board and its rating history.",
                "operationId": "leaderboardPage",
                "parameters": [
                    board_params[0],
                    board_params[1],
                    _param("style", "query", {"type": "string", "enum": ["0", "1"]}, "Style control."),
                ],
                "responses": {
                    "200": _json({"type": "object"}, "The board."),
                    "400": _error("An unknown category, or style other than 0 or 1."),
                    "404": _error("Unknown modality."),
                },
            }
        },
        "/api/v1/stats": {
            "get": {
                "summary": "Voted battles and votes per modality and per released model.",
                "description": (
                    "Only voted battles are counted: a battle that is generating or waiting for its vote is "
                    "in no count. Unreleased models are left out of `models` (their battles are in the "
                    "modality totals)."
                ),
                "operationId": "statsPublic",
                "responses": {"200": _json(_ref("Stats"), "The counts (cached up to a minute).")},
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document.",
                "operationId": "openapi",
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }
        },
        "/api/export/battles.{format}": {
            "get": {
                "summary": "Staff only: battles and votes as a streamed download (an ExportRecord per line).",
                "operationId": "exportBattles",
                "security": [{"staffSession": []}],
                "parameters": export_params,
                "responses": {
                    "200": {
                        "description": "The export, streamed.",
                        "content": {
                            "application/x-ndjson": {"schema": _ref("ExportRecord")},
                            "text/csv": {"schema": {"type": "string"}},
                            "application/vnd.apache.parquet": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "400": _error("A bad filter."),
                    "403": _error("Not signed in as staff with the export permission."),
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Arena API",
            "version": "1",
            "description": (
                "Anonymous pairwise battles between generative models, and the leaderboards they feed. "
                "Battle endpoints act for the browser session that calls them (session cookie; POSTs need "
                "the CSRF token). The /api/v1 endpoints are public and read-only."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "paths": {**_battle_paths(), **_public_paths()},
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "staffSession": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            },
        },
    }
