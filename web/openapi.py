"""The OpenAPI 3.1 description of the JSON API, generated from pydantic models.

Request bodies, form fields and query parameters come from the pydantic models the routes
are validated with (``web/schemas.py``, ``services/predictions/filters.py``), through
spectree, so the checks and the document cannot disagree; the text ``maxLength`` is the
running app's MAX_TEXT_CHARS. The answers' components come from the models in
``web/answers.py``; which status codes each operation answers, and its summary, are written
here, because that is what we promise. A test checks that every /api route (and the probes)
in the app's URL map appears here.

Why spectree: it decorates our plain Flask views, so the app factory, the blueprints and
the error handlers stay as they are (flask-openapi3 replaces the Flask and Blueprint
classes; flask-smorest is marshmallow, not pydantic). Its bundled documentation pages load
their scripts from a CDN, so none is registered: ``/docs`` renders this document offline.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, Request, current_app, has_app_context, request
from pydantic import ValidationError
from spectree import SpecTree
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin

from validation import input_error
from web import answers
from web.uploads import json_body

FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
#: What the document describes of the app's URL map.
DOCUMENTED_PREFIXES = ("/api/", "/healthz", "/readyz")


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin, reading bodies our way.

    A JSON body is read by :func:`web.uploads.json_body` first, so malformed JSON, a body
    that is not an object, bad UTF-8 or lone surrogates keep their precise 400s; a form model
    also accepts the same fields as a JSON object. A body of another type is not validated
    here: the route answers 415 (or reads it as "no fields") as before.
    """

    def request_validation(  # noqa: PLR0917  (spectree's signature)
        self, req: Request, query: Any, json: Any, form: Any, headers: Any, cookies: Any
    ) -> None:
        validate = self.model_adapter.validate_obj
        writes = req.method not in ("GET", "HEAD", "DELETE")
        body = form or json
        parsed = None
        if body is not None and writes:
            if req.is_json:
                parsed = validate(body, json_body())
            elif form is not None and req.mimetype in FORM_TYPES:
                parsed = validate(form, req.form.to_dict())
        req.context = Context(  # type: ignore[attr-defined]
            validate(query, req.args.to_dict()) if query is not None else None,
            parsed if json is not None else None,
            parsed if form is not None else None,
            validate(headers, dict(req.headers)) if headers is not None else None,
            None,
        )

    def validate_response(self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool) -> Any:
        """The view's answer goes out untouched (a streamed CSV stays streamed): answers are
        documented here, not validated."""
        return resp, None


def _refuse_invalid(req: Any, resp: Any, error: ValidationError | None, instance: Any, adapter: Any) -> None:
    """spectree's hook before the view: a validation error becomes our ``{"error": ...}`` answer."""
    if error is not None:
        raise input_error(error)


class ApiSpec(SpecTree):
    """spectree, with the document generated per app: its limits come from the app's config."""

    def __init__(self) -> None:
        super().__init__(
            backend=_Plugin,
            before=_refuse_invalid,
            validation_error_status=400,
            naming_strategy=lambda model: model.__name__,
            nested_naming_strategy=lambda _parent, child: child,
            annotations=False,
            page_templates={},
        )
        self._model_classes: dict[str, tuple[Any, Any]] = {}
        self._generating = threading.Lock()  # the schemas are rebuilt in place

    def _add_model(self, model: Any, mode: Any = "validation") -> str:
        key = super()._add_model(model, mode)
        self._model_classes[key] = (model, mode)
        return key

    def generate(self, app: Flask) -> dict[str, Any]:
        """The generated paths and components for ``app`` (schemas built afresh in its context)."""
        with self._generating, app.app_context():
            for model, mode in self._model_classes.values():
                super()._add_model(model, mode)
            return self._generate_spec()


api_spec = ApiSpec()


def validated(part: str) -> Any:
    """The request's validated ``query``, ``json``, ``form`` or ``headers`` model (None when it sent none)."""
    return getattr(getattr(request, "context", None), part, None)


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
JSON_415 = _error("`expected_json`: send the body as application/json.")


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    auth: bool = True,
    params: list[dict[str, Any]] | None = None,
    tags: list[str] | None = None,
    body_required: bool = True,
) -> dict[str, Any]:
    """What an operation answers; its request (parameters, body) is generated from its models."""
    op: dict[str, Any] = {"summary": summary, "responses": responses, "tags": tags or []}
    if not auth:
        op["security"] = []
    if "predict" in (tags or []):  # the Idempotency-Key header comes from web.schemas.PredictHeaders
        op["responses"] = {**responses, "409": _error("`idempotency_key_reused`: the key named another kind.")}
    if params:
        op["parameters"] = params
    if not body_required:
        op["body_required"] = False
    return op


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _answer(model: type[answers.Answer], description: str = "OK") -> dict[str, Any]:
    """A JSON answer whose schema is one of web/answers.py's components."""
    assert model in answers.COMPONENTS, model
    return _json({"$ref": f"#/components/schemas/{model.__name__}"}, description)


USER_RESPONSE = _answer(answers.UserAnswer)
PREDICTION_CREATED = _answer(answers.Prediction, "The stored prediction.")


def _operations() -> dict[str, dict[str, Any]]:
    """Per path and method: the summary, tags, authentication and documented answers."""
    return {
        "/api/csrf": {
            "get": _op(
                "CSRF token for cookie-authenticated writes (send as X-CSRFToken).",
                {"200": _answer(answers.CsrfToken)},
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
            )
        },
        "/api/login": {
            "post": _op(
                "Log in (session cookie). Rate-limited per IP; repeated failures make the account wait "
                "(429 `too_many_login_attempts` with Retry-After, doubling with each further failure).",
                {"200": USER_RESPONSE, **COMMON_ERRORS},
                auth=False,
                tags=["auth"],
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
                    "200": _answer(answers.LoggedOutEverywhere),
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
            )
        },
        "/api/user/consent": {
            "put": _op(
                "Give (true) or revoke (false) consent to face and voice analysis.",
                {"200": USER_RESPONSE, **COMMON_ERRORS},
                tags=["account"],
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
                    "200": _answer(answers.TokenList),
                    **COMMON_ERRORS,
                },
                tags=["tokens"],
            ),
            "post": _op(
                "Create a personal API token; the value is in `token`, shown only now.",
                {"201": _answer(answers.Token), **COMMON_ERRORS},
                tags=["tokens"],
                body_required=False,
            ),
        },
        "/api/tokens/{token_id}": {
            "delete": _op(
                "Revoke a token.",
                {"204": {"description": "Revoked."}, "404": _error("No such token."), **COMMON_ERRORS},
                tags=["tokens"],
            )
        },
        "/api/predict/text": {
            "post": _op(
                "Emotion of a text (no consent needed).",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
            )
        },
        "/api/predict/image": {
            "post": _op(
                "Emotion of the face(s) in a photo (needs consent).",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
            )
        },
        "/api/predict/speech": {
            "post": _op(
                "Emotion of a voice recording (needs consent). With transcribe=true the words are transcribed "
                "(Whisper-base) and analysed as text too, fused with the voice; the answer carries the transcript.",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
            )
        },
        "/api/predict/multimodal": {
            "post": _op(
                "Fuse any non-empty subset of image, audio and text. A modality that cannot be analysed is dropped "
                "and reported; weights as a JSON string or weight_face/weight_speech/weight_text fields.",
                {"201": PREDICTION_CREATED, **PREDICT_ERRORS},
                tags=["predict"],
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
                    "202": _answer(answers.Job, "Queued; poll the Location URL."),
                    **PREDICT_ERRORS,
                },
                tags=["jobs"],
            ),
            "get": _op(
                "The user's jobs, newest first (at most 50).",
                {
                    "200": _answer(answers.JobList),
                    **COMMON_ERRORS,
                },
                tags=["jobs"],
            ),
        },
        "/api/jobs/{job_id}": {
            "get": _op(
                "A job's status, progress (done/total), failures with their reasons and ETA (another user's: 404).",
                {"200": _answer(answers.Job), "404": _error("Not found."), **COMMON_ERRORS},
                tags=["jobs"],
            ),
            "delete": _op(
                "Cancel a queued or running job: the worker stops before its next item; stored items stay.",
                {
                    "200": _answer(answers.Job),
                    "404": _error("Not found."),
                    "409": _error("`job_finished`: the job has already ended."),
                    **COMMON_ERRORS,
                },
                tags=["jobs"],
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
            )
        },
        "/api/predictions": {
            "get": _op(
                "The user's predictions, newest first, paginated and filtered.",
                {
                    "200": _answer(answers.PredictionPage),
                    **COMMON_ERRORS,
                },
                tags=["history"],
            )
        },
        "/api/predictions/{prediction_id}": {
            "get": _op(
                "One of the user's predictions (another user's id answers 404).",
                {
                    "200": _answer(answers.Prediction),
                    "404": _error("Not found."),
                    **COMMON_ERRORS,
                },
                tags=["history"],
            ),
            "delete": _op(
                "Delete one of the user's predictions.",
                {"204": {"description": "Deleted."}, "404": _error("Not found."), **COMMON_ERRORS},
                tags=["history"],
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
            )
        },
        "/api/statistics": {
            "get": _op(
                "Counts per emotion, modality, kind and UTC day, and the average confidence.",
                {"200": _answer(answers.Statistics), **COMMON_ERRORS},
                tags=["history"],
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


def _merge(generated: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """A generated operation (parameters, request body) with what it answers, as written here."""
    # The views' docstrings are written for maintainers: the summaries here are for clients.
    operation = {key: generated[key] for key in ("operationId", "parameters", "requestBody") if generated.get(key)}
    extra_params = written.get("parameters", [])
    operation.update({k: v for k, v in written.items() if k not in ("parameters", "body_required")})
    parameters = [*operation.get("parameters", []), *extra_params]
    for parameter in parameters:
        if not parameter.get("description"):
            parameter.pop("description", None)
    if parameters:
        operation["parameters"] = parameters
    body = operation.get("requestBody")
    if body is not None:
        body["required"] = written.get("body_required", True)
        if "application/json" in body["content"] and "415" not in operation["responses"]:
            operation["responses"] = {**operation["responses"], "415": JSON_415}
    return operation


def _document_app() -> Flask:
    """An app with just the documented blueprints, for a document asked for outside a request."""
    from web import api, health

    app = Flask("moodlens-openapi")
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    return app


def build_spec(app: Flask | None = None) -> dict[str, Any]:
    """The OpenAPI document served at /api/openapi.json."""
    if app is None:
        app = current_app._get_current_object() if has_app_context() else _document_app()  # type: ignore[attr-defined]
    generated = api_spec.generate(app)
    written = _operations()
    paths: dict[str, Any] = {}
    for path, methods in generated["paths"].items():
        if not path.startswith(DOCUMENTED_PREFIXES):
            continue
        for method, operation in methods.items():
            if method in written.get(path, {}):
                paths.setdefault(path, {})[method] = _merge(operation, written[path][method])
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
            "schemas": {**generated["components"]["schemas"], **answers.answer_schemas()},
        },
    }
