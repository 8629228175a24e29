"""The OpenAPI 3.1 description of the JSON API, written by hand so it says what we mean.

A test checks that every /api route (and the probes) in the app's URL map appears here, so
the document cannot silently fall behind the code.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from database.models import KINDS
from inference.fusion import STRATEGIES
from inference.labels import EMOTIONS, MODALITIES

PROBS = {
    "type": "object",
    "description": "Probability per emotion; the seven values sum to 1.",
    "properties": {e: {"type": "number", "minimum": 0, "maximum": 1} for e in EMOTIONS},
    "required": list(EMOTIONS),
}

ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


COMMON_ERRORS = {
    "400": _error("Malformed request or missing CSRF token (`csrf_failed`)."),
    "401": _error("Not logged in, or the bearer token is invalid."),
    "429": _error("Rate limit reached; see the Retry-After header."),
}
PREDICT_ERRORS = {
    **COMMON_ERRORS,
    "403": _error("`consent_required`: face and voice analysis need the user's consent."),
    "413": _error("Upload, image, recording or text exceeds a limit."),
    "415": _error("The content is not a supported image/audio format (checked from the bytes)."),
    "422": _error("Unusable input: no face, silence, empty text, invalid fusion options."),
    "503": _error("The modality's model is not installed or loading, or the database is unreachable: retry later."),
}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    auth: bool = True,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses, "tags": tags or []}
    if body is not None and "application/json" in body["content"] and "415" not in responses:
        op["responses"] = {**responses, "415": _error("`expected_json`: send the body as application/json.")}
    if not auth:
        op["security"] = []
    if body is not None:
        op["requestBody"] = body
    if "predict" in (tags or []):  # every prediction POST may be retried safely with its key
        params = [*(params or []), IDEMPOTENCY_KEY]
        op["responses"] = {**responses, "409": _error("`idempotency_key_reused`: the key named another kind.")}
    if params:
        op["parameters"] = params
    return op


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
    "description": "Retry safely: a request with a key this user already sent answers the prediction stored then "
    "(header `Idempotent-Replayed: true`) instead of storing another.",
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _multipart(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": properties, "required": required}}
        },
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


USER_RESPONSE = _json({"type": "object", "properties": {"user": {"$ref": "#/components/schemas/User"}}})
PREDICTION_CREATED = _json({"$ref": "#/components/schemas/Prediction"}, "The stored prediction.")
FILE = {"type": "string", "format": "binary"}
#: A day the databases can hold: 1000-01-01 to 9998-12-31 (date_to is searched up to the next day).
DATE = {
    "type": "string",
    "format": "date",
    "pattern": r"^(1[0-9]{3}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}$",
    "description": "YYYY-MM-DD from 1000-01-01 to 9998-12-31; empty values are refused.",
}
TRANSCRIBE_FIELD = {
    "type": "string",
    "enum": ["true", "false"],
    "description": "Transcribe the recording: its words become the text modality (English; a typed text wins). "
    "503 transcriber_unavailable when the server has no transcriber.",
}
VIDEO_TRANSCRIBE_FIELD = {
    "type": "string",
    "enum": ["true", "false"],
    "description": "Transcribe the clip's audio (default false): the words join the timeline steps and the clip's "
    "result. Without a transcriber the clip is still answered and text is dropped with its reason.",
}
JOB_TRANSCRIBE_FIELD = {
    "type": "string",
    "enum": ["true", "false"],
    "description": "Transcribe the recordings and clips (default false); results.csv gets transcript and "
    "transcript_note.",
}
FILTERS = [
    _query("emotion", {"type": "string", "enum": list(EMOTIONS)}, "Only this final emotion."),
    _query("modality", {"type": "string", "enum": list(MODALITIES)}, "Only predictions that used this modality."),
    _query("kind", {"type": "string", "enum": list(KINDS)}, "Only this kind."),
    _query("date_from", DATE, "From this day (inclusive; UTC unless tz/tz_offset)."),
    _query("date_to", DATE, "Up to this day (inclusive; UTC unless tz/tz_offset)."),
    _query(
        "tz",
        {"type": "string", "maxLength": 64, "example": "Europe/Berlin"},
        "IANA time zone: the dates are that zone's days, daylight saving included (statistics' by_day stays UTC).",
    ),
    _query(
        "tz_offset",
        {"type": "integer", "minimum": -840, "maximum": 840},
        "Minutes from local time to UTC, as JavaScript's Date.getTimezoneOffset(): the dates are then local days.",
    ),
]


def build_spec() -> dict[str, Any]:
    """The OpenAPI document served at /api/openapi.json."""
    paths: dict[str, Any] = {
        "/api/csrf": {
            "get": _op(
                "CSRF token for cookie-authenticated writes (send as X-CSRFToken).",
                {"200": _json({"type": "object", "properties": {"csrf_token": {"type": "string"}}})},
                auth=False,
                tags=["auth"],
            )
        },
        "/api/register": {
            "post": _op(
                "Create an account and log in (password: ≥ 10 characters, two character classes, not common).",
                {
                    "201": USER_RESPONSE,
                    "409": _error("Email already registered."),
                    "422": _error("Weak password."),
                    **COMMON_ERRORS,
                },
                auth=False,
                tags=["auth"],
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["email", "password"],
                        "properties": {
                            "email": {"type": "string", "format": "email"},
                            "password": {"type": "string"},
                            "name": {"type": "string"},
                            "consent": {"type": "boolean"},
                        },
                    }
                ),
            )
        },
        "/api/login": {
            "post": _op(
                "Log in (session cookie). Rate-limited per IP; repeated failures make the account wait "
                "(429 `too_many_login_attempts` with Retry-After, doubling with each further failure).",
                {"200": USER_RESPONSE, **COMMON_ERRORS},
                auth=False,
                tags=["auth"],
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["email", "password"],
                        "properties": {
                            "email": {"type": "string"},
                            "password": {"type": "string"},
                            "remember": {"type": "boolean"},
                        },
                    }
                ),
            )
        },
        "/api/logout": {
            "post": _op(
                "Log out: the login session ends on the server, so copies of its cookies stop working too.",
                {"200": _json({"type": "object"}), **COMMON_ERRORS},
                auth=False,
                tags=["auth"],
            )
        },
        "/api/logout/all": {
            "post": _op(
                "Log out everywhere: every login session and remember cookie of the account ends (tokens stay).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"logged_out": {"type": "boolean"}, "sessions_ended": {"type": "integer"}},
                        }
                    ),
                    **COMMON_ERRORS,
                },
                tags=["auth"],
            )
        },
        "/api/user/profile": {
            "get": _op("The current user.", {"200": USER_RESPONSE, **COMMON_ERRORS}, tags=["account"]),
            "patch": _op(
                "Change the display name.",
                {"200": USER_RESPONSE, **COMMON_ERRORS},
                tags=["account"],
                body=_json_body({"type": "object", "properties": {"name": {"type": "string"}}}),
            ),
        },
        "/api/user/password": {
            "put": _op(
                "Change the password; every other login session of the account ends. Shares the login "
                "rate limit, and wrong current passwords count towards the account's login throttle.",
                {
                    "200": USER_RESPONSE,
                    "422": _error("Weak password."),
                    **COMMON_ERRORS,
                    "429": _error(
                        "`rate_limited` (see Retry-After) or `too_many_login_attempts`: the account must wait."
                    ),
                },
                tags=["account"],
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["current_password", "new_password"],
                        "properties": {"current_password": {"type": "string"}, "new_password": {"type": "string"}},
                    }
                ),
            )
        },
        "/api/user/consent": {
            "put": _op(
                "Give (true) or revoke (false) consent to face and voice analysis.",
                {"200": USER_RESPONSE, **COMMON_ERRORS},
                tags=["account"],
                body=_json_body(
                    {"type": "object", "required": ["consent"], "properties": {"consent": {"type": "boolean"}}}
                ),
            )
        },
        "/api/user": {
            "delete": _op(
                "Delete the account and every stored prediction.",
                {"204": {"description": "Deleted."}, **COMMON_ERRORS},
                tags=["account"],
            )
        },
        "/api/tokens": {
            "get": _op(
                "The user's API tokens (values are never shown again).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}},
                        }
                    ),
                    **COMMON_ERRORS,
                },
                tags=["tokens"],
            ),
            "post": _op(
                "Create a personal API token; the value is in `token`, shown only now.",
                {"201": _json({"$ref": "#/components/schemas/Token"}), **COMMON_ERRORS},
                tags=["tokens"],
                body={
                    "required": False,
                    "content": {
                        "application/json": {"schema": {"type": "object", "properties": {"name": {"type": "string"}}}}
                    },
                },
            ),
        },
        "/api/tokens/{token_id}": {
            "delete": _op(
                "Revoke a token.",
                {"204": {"description": "Revoked."}, "404": _error("No such token."), **COMMON_ERRORS},
                tags=["tokens"],
                params=[_path_id("token_id")],
            )
        },
        "/api/predict/text": {
            "post": _op(
                "Emotion of a text (no consent needed).",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["text"],
                        "properties": {"text": {"type": "string", "maxLength": 5000}},
                    }
                ),
            )
        },
        "/api/predict/image": {
            "post": _op(
                "Emotion of the face(s) in a photo (needs consent).",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
                body=_multipart({"image": FILE}, ["image"]),
            )
        },
        "/api/predict/speech": {
            "post": _op(
                "Emotion of a voice recording (needs consent). With transcribe=true the words are transcribed "
                "(Whisper-base) and analysed as text too, fused with the voice; the answer carries the transcript.",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
                body=_multipart({"audio": FILE, "transcribe": TRANSCRIBE_FIELD}, ["audio"]),
            )
        },
        "/api/predict/multimodal": {
            "post": _op(
                "Fuse any non-empty subset of image, audio and text. A modality that cannot be analysed is dropped "
                "and reported; weights as a JSON string or weight_face/weight_speech/weight_text fields.",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
                body=_multipart(
                    {
                        "image": FILE,
                        "audio": FILE,
                        "text": {"type": "string"},
                        "strategy": {
                            "type": "string",
                            "enum": list(STRATEGIES),
                            "description": "Default: GET /api/models' default_strategy (calibrated when its "
                            "temperatures are installed).",
                        },
                        "weights": {"type": "string", "description": 'JSON object, e.g. {"face": 0.5, "text": 0.5}'},
                        "weight_face": {"type": "number"},
                        "weight_speech": {"type": "number"},
                        "weight_text": {"type": "number"},
                        "transcribe": TRANSCRIBE_FIELD,
                    },
                    [],
                ),
            )
        },
        "/api/predict/video": {
            "post": _op(
                "Emotion over time in a video clip (MP4/H.264, WebM/VP8/VP9 + Opus, MOV; up to MAX_VIDEO_SECONDS; "
                "needs consent): face frames sampled at VIDEO_FACE_FPS, voice windows of VIDEO_WINDOW_SECONDS every "
                "VIDEO_HOP_SECONDS, fused per step and overall. Without an audio track or a face in any frame the "
                "other modality answers alone and the missing one is reported as dropped with its reason. Stored as "
                "kind `video`; the answer's `video` object carries the timeline and the sampled frames as "
                "thumbnails (not stored unless KEEP_UPLOADS). With transcribe=true the audio is transcribed once: "
                "each step gets `words` (text, text probabilities, gated_out when neutral words were left out) "
                "and is fused with them, the clip gets a `text` result and a stored `transcript`; without a "
                "transcriber the clip is answered from face and voice and text is dropped with "
                "`transcriber_unavailable`.",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
                body=_multipart(
                    {
                        "video": FILE,
                        "strategy": {"type": "string", "enum": list(STRATEGIES)},
                        "weights": {"type": "string", "description": 'JSON object, e.g. {"face": 0.6, "speech": 0.4}'},
                        "transcribe": VIDEO_TRANSCRIBE_FIELD,
                    },
                    ["video"],
                ),
            )
        },
        "/api/jobs": {
            "post": _op(
                "Queue a batch job: a ZIP of images, voice recordings and video clips (needs consent), or a CSV "
                "of texts (column `text`, optional `id`), multipart field `file`, up to JOB_MAX_UPLOAD_MB. "
                "Up to JOB_MAX_ITEMS items; "
                "ZIP bombs, unsafe names, nested archives and non-media files are refused per item or per job. "
                "With transcribe=true recordings and clips are transcribed and their words fused; without a "
                "transcriber the items keep their voice/face result and results.csv's transcript_note says why.",
                {
                    "202": _json({"$ref": "#/components/schemas/Job"}, "Queued; poll the Location URL."),
                    **PREDICT_ERRORS,
                },
                tags=["jobs"],
                body=_multipart({"file": FILE, "transcribe": JOB_TRANSCRIBE_FIELD}, ["file"]),
            ),
            "get": _op(
                "The user's jobs, newest first (at most 50).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}},
                        }
                    ),
                    **COMMON_ERRORS,
                },
                tags=["jobs"],
            ),
        },
        "/api/jobs/{job_id}": {
            "get": _op(
                "A job's status, progress (done/total), failures with their reasons and ETA (another user's: 404).",
                {"200": _json({"$ref": "#/components/schemas/Job"}), "404": _error("Not found."), **COMMON_ERRORS},
                tags=["jobs"],
                params=[_path_id("job_id")],
            ),
            "delete": _op(
                "Cancel a queued or running job: the worker stops before its next item; stored items stay.",
                {
                    "200": _json({"$ref": "#/components/schemas/Job"}),
                    "404": _error("Not found."),
                    "409": _error("`job_finished`: the job has already ended."),
                    **COMMON_ERRORS,
                },
                tags=["jobs"],
                params=[_path_id("job_id")],
            ),
        },
        "/api/jobs/{job_id}/results.csv": {
            "get": _op(
                "One row per finished item: name, prediction id, kind, emotion, confidence, 7 probabilities, error, "
                "transcript (the words heard, with transcribe=true) and transcript_note (why they were left out).",
                {
                    "200": {"description": "CSV file.", "content": {"text/csv": {"schema": {"type": "string"}}}},
                    "404": _error("Not found."),
                    **COMMON_ERRORS,
                },
                tags=["jobs"],
                params=[_path_id("job_id")],
            )
        },
        "/api/predictions": {
            "get": _op(
                "The user's predictions, newest first, paginated and filtered.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
                                "page": {"type": "integer"},
                                "per_page": {"type": "integer"},
                                "total": {"type": "integer"},
                                "pages": {"type": "integer"},
                                "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor`."},
                            },
                        }
                    ),
                    **COMMON_ERRORS,
                },
                tags=["history"],
                params=[
                    _query("page", {"type": "integer", "minimum": 1}, "Page number (from 1)."),
                    _query("per_page", {"type": "integer", "minimum": 1, "maximum": 100}, "Items per page."),
                    _query("cursor", {"type": "string"}, "The previous page's next_cursor: the rows right after it."),
                    *FILTERS,
                ],
            )
        },
        "/api/predictions/{prediction_id}": {
            "get": _op(
                "One of the user's predictions (another user's id answers 404).",
                {
                    "200": _json({"$ref": "#/components/schemas/Prediction"}),
                    "404": _error("Not found."),
                    **COMMON_ERRORS,
                },
                tags=["history"],
                params=[_path_id("prediction_id")],
            ),
            "delete": _op(
                "Delete one of the user's predictions.",
                {"204": {"description": "Deleted."}, "404": _error("Not found."), **COMMON_ERRORS},
                tags=["history"],
                params=[_path_id("prediction_id")],
            ),
        },
        "/api/predictions/export.csv": {
            "get": _op(
                "The history as CSV, all of it or what the filters keep (streamed; one row per prediction "
                "with per-modality columns; cells starting with = + - @ are prefixed with a quote).",
                {
                    "200": {"description": "CSV file.", "content": {"text/csv": {"schema": {"type": "string"}}}},
                    **COMMON_ERRORS,
                },
                tags=["history"],
                params=[
                    *FILTERS,
                    _query(
                        "timeline",
                        {"type": "string", "enum": ["1"]},
                        "1: the video predictions' timelines instead, one row per time step.",
                    ),
                ],
            )
        },
        "/api/statistics": {
            "get": _op(
                "Counts per emotion, modality, kind and UTC day, and the average confidence.",
                {"200": _json({"$ref": "#/components/schemas/Statistics"}), **COMMON_ERRORS},
                tags=["history"],
                params=FILTERS,
            )
        },
        "/api/models": {
            "get": _op(
                "Bundled models per modality and the fusion strategies.",
                {"200": _json({"type": "object"})},
                auth=False,
                tags=["service"],
            )
        },
        "/api/openapi.json": {
            "get": _op("This document.", {"200": _json({"type": "object"})}, auth=False, tags=["service"])
        },
        "/healthz": {
            "get": _op("Liveness: the process is up.", {"200": _json({"type": "object"})}, auth=False, tags=["service"])
        },
        "/readyz": {
            "get": _op(
                "Readiness: database reachable; per-modality model status (`?load=1` loads them when "
                "READYZ_ALLOW_LOAD is on; otherwise it is ignored).",
                {
                    "200": _json({"type": "object"}),
                    "503": _json({"type": "object"}, "The database is unreachable, or a model is not loaded yet."),
                },
                auth=False,
                tags=["service"],
                params=[_query("load", {"type": "string"}, "1 to load every model now (only with READYZ_ALLOW_LOAD).")],
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Moodlens API",
            "version": "1.0.0",
            "description": (
                "Emotion recognition from a face photo, a voice recording and a text, alone or fused. "
                "Authenticate with the session cookie (writes need X-CSRFToken from /api/csrf) or with "
                "'Authorization: Bearer <token>' from POST /api/tokens. Errors are "
                '{"error": {"code": ..., "message": ...}}.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "tags": [{"name": n} for n in ("auth", "account", "tokens", "predict", "jobs", "history", "service")],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Personal API token."},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": _schemas(),
        },
    }


def _openapi_path(rule: str) -> str:
    """A Flask rule ("/api/tokens/<int:token_id>") as an OpenAPI path ("/api/tokens/{token_id}")."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


#: What the app checks itself with more precise codes: missing fields (invalid_email,
#: missing_credentials, ...) and lengths (413 with the configured limit).
_LEFT_TO_THE_ROUTES = frozenset({"required", "maxLength"})


@functools.lru_cache(maxsize=64)
def _body_validator(path: str, method: str) -> Any:
    import jsonschema

    operation = build_spec()["paths"].get(path, {}).get(method.lower(), {})
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return validator_class(schema)


def json_body_problem(rule: str, method: str, body: dict[str, Any]) -> str | None:
    """Why ``body`` does not fit the operation's documented JSON schema (types, null), or None."""
    validator = _body_validator(_openapi_path(rule), method)
    if validator is None:
        return None
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        if error.validator in _LEFT_TO_THE_ROUTES:
            continue
        where = ".".join(str(part) for part in error.absolute_path) or "body"
        return f"{where}: {error.message}"[:300]
    return None


def _schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "User": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "email": {"type": "string"},
                "name": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "consent_given": {"type": "boolean"},
                "consent_given_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "Token": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "prefix": {"type": "string"},
                "token": {"type": "string", "description": "Only in the creation response."},
                "created_at": {"type": "string"},
                "last_used_at": nullable_str,
                "revoked_at": nullable_str,
                "active": {"type": "boolean"},
            },
        },
        "ModalityResult": {
            "type": "object",
            "properties": {
                "modality": {"type": "string", "enum": list(MODALITIES)},
                "status": {"type": "string", "enum": ["used", "dropped"]},
                "emotion": {"type": ["string", "null"], "enum": [*EMOTIONS, None]},
                "confidence": {"type": ["number", "null"]},
                "probabilities": {"oneOf": [PROBS, {"type": "null"}]},
                "model_name": nullable_str,
                "model_version": nullable_str,
                "latency_ms": {"type": ["number", "null"]},
                "details": {
                    "type": "object",
                    "description": (
                        "Face: faces[i].box [x, y, w, h] and image {width, height}; speech: attention [{time, weight}] "
                        "(≤ 200 points) and duration_seconds."
                    ),
                },
                "input_summary": {
                    "type": "object",
                    "description": "file_name, media_type, size_bytes, duration_seconds (audio) or text (text).",
                },
                "error": {
                    "type": ["object", "null"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
        "Prediction": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "created_at": {"type": "string", "format": "date-time"},
                "kind": {"type": "string", "enum": list(KINDS)},
                "emotion": {"type": "string", "enum": list(EMOTIONS)},
                "confidence": {"type": "number"},
                "probabilities": PROBS,
                "fusion": {
                    "type": ["object", "null"],
                    "properties": {
                        "strategy": {"type": "string"},
                        "weights": {"type": "object"},
                        "explanation": {"type": "object"},
                    },
                },
                "modalities": {"type": "array", "items": {"$ref": "#/components/schemas/ModalityResult"}},
                "transcript": {
                    "type": ["object", "null"],
                    "description": "What was said, when the recording was transcribed (stored with the prediction).",
                    "properties": {
                        "text": {"type": "string"},
                        "language": {"type": "string"},
                        "language_probability": {"type": ["number", "null"]},
                        "duration_seconds": {"type": ["number", "null"]},
                        "segments": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "start": {"type": "number"},
                                    "end": {"type": "number"},
                                    "text": {"type": "string"},
                                },
                            },
                        },
                        "used_as_text": {"type": "boolean"},
                        "model_name": {"type": ["string", "null"]},
                        "model_version": {"type": ["string", "null"]},
                    },
                },
                "video": {
                    "type": ["object", "null"],
                    "description": "Only for kind video: timeline steps (time, start, end, face, voice, fused "
                    "probabilities or null with face_status/voice_status; words {text, probabilities, gated_out} "
                    "when transcribed), counts, model_versions, thumbnails.",
                },
            },
        },
        "Job": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
                "source": {"type": "string", "enum": ["zip", "csv"]},
                "file_name": {"type": ["string", "null"]},
                "total": {"type": "integer"},
                "done": {"type": "integer", "description": "Items finished, successfully or not."},
                "succeeded": {"type": "integer"},
                "failed": {"type": "integer"},
                "progress": {"type": "number"},
                "eta_seconds": {"type": ["number", "null"]},
                "failures": {"type": "array", "items": {"type": "object"}},
                "transcribe": {"type": "boolean", "description": "Recordings and clips are transcribed."},
                "error": {"type": ["object", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": {"type": ["string", "null"], "format": "date-time"},
                "finished_at": {"type": ["string", "null"], "format": "date-time"},
                "links": {"type": "object"},
            },
        },
        "Statistics": {
            "type": "object",
            "properties": {
                "total": {"type": "integer"},
                "average_confidence": {"type": ["number", "null"]},
                "by_emotion": {"type": "object"},
                "by_modality": {"type": "object"},
                "by_kind": {"type": "object"},
                "by_day": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "date": {"type": "string", "format": "date"},
                            "count": {"type": "integer"},
                            "by_emotion": {"type": "object"},
                        },
                    },
                },
            },
        },
    }
