"""The JSON API under /api: thin routes over the services.

Authentication is the Flask-Login session cookie or ``Authorization: Bearer <token>``.
Cookie-authenticated (and anonymous) writes must carry the CSRF token from GET /api/csrf in
the ``X-CSRFToken`` header; token requests are exempt because browsers never attach them on
their own. Every failure answers ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf
from pydantic import BaseModel

from database.models import User
from database.session import get_database, get_session
from errors import EmotionAppError, InvalidInput
from inference.fusion import DEFAULT_WEIGHTS, STRATEGIES
from inference.labels import EMOTIONS, MODALITIES
from security import (
    bearer_token,
    csrf,
    login_rate_limit,
    predict_rate_limit,
    register_rate_limit,
)
from services import accounts, analysis, jobs, video
from services.predictions import export as csv_export
from services.predictions import queries, serialize, store
from services.predictions.filters import ExportQuery, HistoryFilters, HistoryPage
from web.health import public_model_status
from web.openapi import api_spec, build_spec, validated
from web.schemas import (
    ConsentBody,
    ImageForm,
    JobForm,
    LoginBody,
    MultimodalForm,
    PasswordBody,
    PredictHeaders,
    ProfileBody,
    RegisterBody,
    SpeechForm,
    TextBody,
    TokenBody,
    TranscribeQuery,
    VideoForm,
)
from web.uploads import check_text, form_or_json, json_body, read_upload, read_video_upload

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)  # checked in _authenticate_and_protect, so token requests can skip it

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)


class Unauthorized(EmotionAppError):
    status = 401
    code = "unauthorized"


@bp.before_request
def _job_upload_limit() -> None:
    """A batch job's ZIP may be larger than one upload (JOB_MAX_UPLOAD_MB instead of MAX_UPLOAD_MB).

    Registered before the CSRF check, which may read the form and so the body.
    """
    if request.endpoint == "api.create_job" and current_app.config.get("JOB_MAX_UPLOAD_MB"):
        request.max_content_length = int(float(current_app.config["JOB_MAX_UPLOAD_MB"]) * 1024 * 1024)


@bp.before_request
def _authenticate_and_protect() -> None:
    """Resolve a bearer token (401 if it is bad) or enforce CSRF on cookie/anonymous writes.

    An anonymous write to an endpoint that needs a login answers 401 before the CSRF check,
    as documented: "log in first" is the useful answer, not "missing CSRF token". Bodies and
    query arguments are then validated by each route's models (``api_spec.validate``).
    """
    token = bearer_token()
    if token is not None:
        user = accounts.user_for_token(get_session(), token)
        if user is None:
            raise Unauthorized("The API token is invalid or has been revoked.", code="invalid_token")
        g._login_user = user  # Flask-Login's per-request user; the session cookie is untouched
        g.auth_via_token = True
        g.user_id_for_log = user.id
    else:
        if request.method in WRITE_METHODS and _needs_login() and not current_user.is_authenticated:
            raise Unauthorized("Log in first, or send 'Authorization: Bearer <token>'.")
        if request.method in WRITE_METHODS and current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        if current_user.is_authenticated:
            g.user_id_for_log = current_user.id


def _needs_login() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "needs_login", False))


def auth_required(view: F) -> F:
    """401 JSON unless a session or token identifies the user."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            raise Unauthorized("Log in first, or send 'Authorization: Bearer <token>'.")
        return view(*args, **kwargs)

    wrapper.needs_login = True  # type: ignore[attr-defined]  # anonymous writes: 401 before CSRF
    return wrapper  # type: ignore[return-value]


def me() -> User:
    """The current user as a row of the request's session."""
    return current_user._get_current_object()  # type: ignore[attr-defined]


def _kept_uploads_dir() -> str | None:
    """Where kept uploads live (deletions remove them too); None when none are kept."""
    return current_app.config.get("UPLOADS_DIR") or None


def _body(model: type[M], *, required: bool = True) -> M:
    """The route's validated JSON body; 415 (or 400) from :func:`json_body` when none was sent."""
    body = validated("json")
    if body is None:
        json_body(required=required)  # not JSON: 415, or an empty optional body
        return model()
    return body


def _created(payload: dict[str, Any]) -> tuple[Response, int]:
    return jsonify(payload), 201


# -- session and account -------------------------------------------------------------------
@bp.get("/csrf")
def csrf_token() -> Response:
    """A CSRF token for this session (also in the pages' <meta name="csrf-token">)."""
    return jsonify({"csrf_token": generate_csrf()})


@bp.post("/register")
@api_spec.validate(json=RegisterBody)
@register_rate_limit
def register() -> tuple[Response, int]:
    body = _body(RegisterBody)
    user = accounts.register_user(get_session(), body.email, body.password, body.name, consent=body.consent is True)
    accounts.start_login_session(get_session(), user)
    login_user(user)
    return _created({"user": accounts.user_to_dict(user)})


@bp.post("/login")
@api_spec.validate(json=LoginBody)
@login_rate_limit
def login() -> Response:
    body = _body(LoginBody)
    user = accounts.authenticate(get_session(), body.email, body.password)
    accounts.start_login_session(get_session(), user)
    login_user(user, remember=body.remember is True)
    return jsonify({"user": accounts.user_to_dict(user)})


@bp.post("/logout")
def logout() -> Response:
    """End this login session server-side: a copy of its cookies no longer works either."""
    if current_user.is_authenticated and not g.get("auth_via_token"):
        accounts.end_login_session(get_session(), me())
    logout_user()
    return jsonify({"logged_out": True})


@bp.post("/logout/all")
@auth_required
def logout_everywhere() -> Response:
    """End every login session of the account (all browsers, all remember cookies); tokens stay."""
    ended = accounts.end_all_login_sessions(get_session(), me())
    if not g.get("auth_via_token"):
        logout_user()
    return jsonify({"logged_out": True, "sessions_ended": ended})


@bp.get("/user/profile")
@auth_required
def profile() -> Response:
    return jsonify({"user": accounts.user_to_dict(me())})


@bp.patch("/user/profile")
@auth_required
@api_spec.validate(json=ProfileBody)
def update_profile() -> Response:
    body = _body(ProfileBody)
    user = accounts.update_profile(get_session(), me(), name=body.name)
    return jsonify({"user": accounts.user_to_dict(user)})


@bp.put("/user/password")
@auth_required
@api_spec.validate(json=PasswordBody)
@login_rate_limit
def change_password() -> Response:
    """New password; the same per-IP budget and per-account lock-out as logging in.

    Every other login session of the account ends; this one continues with the new token.
    """
    body = _body(PasswordBody)
    user = accounts.change_password(get_session(), me(), body.current_password, body.new_password)
    if not g.get("auth_via_token"):
        remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
        login_user(user, remember=remembered)
    return jsonify({"user": accounts.user_to_dict(user)})


@bp.put("/user/consent")
@auth_required
@api_spec.validate(json=ConsentBody)
def consent() -> Response:
    value = _body(ConsentBody).consent
    if value is None:
        raise InvalidInput('Send {"consent": true} to give consent or {"consent": false} to revoke it.')
    user = accounts.set_consent(get_session(), me(), value)
    return jsonify({"user": accounts.user_to_dict(user)})


@bp.delete("/user")
@auth_required
def delete_account() -> tuple[str, int]:
    user = me()
    logout_user()
    user_id = user.id
    accounts.delete_user(get_session(), user, uploads_dir=_kept_uploads_dir())
    jobs.delete_user_files(current_app, user_id)  # the job rows went with the account
    return "", 204


# -- API tokens ----------------------------------------------------------------------------
@bp.get("/tokens")
@auth_required
def list_tokens() -> Response:
    return jsonify({"items": [accounts.token_to_dict(t) for t in accounts.list_tokens(get_session(), me())]})


@bp.post("/tokens")
@auth_required
@api_spec.validate(json=TokenBody)
def create_token() -> tuple[Response, int]:
    token, value = accounts.create_token(get_session(), me(), _body(TokenBody, required=False).name)
    return _created({**accounts.token_to_dict(token), "token": value})


@bp.delete("/tokens/<int:token_id>")
@auth_required
def revoke_token(token_id: int) -> tuple[str, int]:
    accounts.revoke_token(get_session(), me(), token_id)
    return "", 204


# -- predictions ---------------------------------------------------------------------------
def _transcribe_flag(fields: Any) -> bool:
    """``transcribe`` from the form or JSON fields, else from the query string (default false)."""
    value = getattr(fields, "transcribe", None)
    if value is None:
        value = getattr(validated("query"), "transcribe", None)
    return bool(value)


def _stored(prediction: Any) -> tuple[Response, int]:
    response, status = _created(serialize.prediction_to_dict(prediction))
    if analysis.is_replay(prediction):
        response.headers["Idempotent-Replayed"] = "true"
    return response, status


def idempotent(view: F) -> F:
    """The request's ``Idempotency-Key`` (validated by :class:`web.schemas.PredictHeaders`) in ``g.idempotency_key``.

    No look-up before the model runs: retries are rare, so the unique index on (user, key)
    decides when the prediction is stored, and a retry answers what the first try stored
    (see :func:`services.analysis.analyse`) without a round trip on every request.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.idempotency_key = getattr(validated("headers"), "idempotency_key", None)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@bp.post("/predict/text")
@auth_required
@api_spec.validate(json=TextBody, headers=PredictHeaders)
@predict_rate_limit
@idempotent
def predict_text() -> tuple[Response, int]:
    """The text of a JSON body (validated by TextBody) or of a form; its limits in check_text."""
    body = validated("json")
    text = check_text(body.text if body is not None else form_or_json().get("text"))
    prediction = analysis.analyse(
        current_app, get_session(), me(), kind="text", text=text, idempotency_key=g.idempotency_key
    )
    return _stored(prediction)


@bp.post("/predict/image")
@auth_required
@api_spec.validate(form=ImageForm, headers=PredictHeaders)
@predict_rate_limit
@idempotent
def predict_image() -> tuple[Response, int]:
    image = read_upload("image", "face")
    prediction = analysis.analyse(
        current_app, get_session(), me(), kind="image", image=image, idempotency_key=g.idempotency_key
    )
    return _stored(prediction)


@bp.post("/predict/speech")
@auth_required
@api_spec.validate(form=SpeechForm, query=TranscribeQuery, headers=PredictHeaders)
@predict_rate_limit
@idempotent
def predict_speech() -> tuple[Response, int]:
    transcribe = _transcribe_flag(validated("form"))
    audio = read_upload("audio", "speech")
    prediction = analysis.analyse(
        current_app,
        get_session(),
        me(),
        kind="speech",
        audio=audio,
        transcribe=transcribe,
        idempotency_key=g.idempotency_key,
    )
    return _stored(prediction)


@bp.post("/predict/multimodal")
@auth_required
@api_spec.validate(form=MultimodalForm, query=TranscribeQuery, headers=PredictHeaders)
@predict_rate_limit
@idempotent
def predict_multimodal() -> tuple[Response, int]:
    form_or_json()  # 415 for a body that is neither
    fields = validated("form") or MultimodalForm()
    image = read_upload("image", "face", required=False) if "image" in request.files else None
    audio = read_upload("audio", "speech", required=False) if "audio" in request.files else None
    text_value = fields.text
    blank_beside_media = isinstance(text_value, str) and not text_value.strip() and (image or audio)
    # A browser form sends an empty text box beside a photo: that means "no text", not an error.
    text = None if text_value is None or blank_beside_media else check_text(text_value)
    if image is None and audio is None and text is None:
        raise InvalidInput("Send at least one of 'image', 'audio' (multipart files) or 'text'.", code="no_input")
    # The default /api/models names: calibrated, unless its temperatures are missing.
    strategy = fields.strategy or analysis.fusion_offer(current_app)[0]
    weights = fields.fusion_weights()
    transcribe = _transcribe_flag(fields)
    if transcribe and audio is None:
        raise InvalidInput("transcribe=true needs an 'audio' recording.", code="missing_audio")
    prediction = analysis.analyse(
        current_app,
        get_session(),
        me(),
        kind="multimodal",
        image=image,
        audio=audio,
        text=text,
        strategy=strategy,
        weights=weights,
        transcribe=transcribe,
        idempotency_key=g.idempotency_key,
    )
    return _stored(prediction)


@bp.post("/predict/video")
@auth_required
@api_spec.validate(form=VideoForm, query=TranscribeQuery)
@predict_rate_limit
def predict_video() -> tuple[Response, int]:
    """A clip's face and voice over time: the overall emotion plus a timeline (kind ``video``)."""
    form_or_json()  # 415 for a body that is neither
    fields = validated("form") or VideoForm()
    clip = read_video_upload("video")
    strategy = fields.strategy or analysis.fusion_offer(current_app)[0]
    transcribe = _transcribe_flag(fields)
    prediction, result = video.analyse_upload(
        current_app,
        get_session(),
        me(),
        clip,
        strategy=strategy,
        weights=fields.fusion_weights(),
        transcribe=transcribe,
    )
    payload = serialize.prediction_to_dict(prediction)
    payload["video"] = {**(video.video_to_dict(prediction) or {}), "thumbnails": result.get("thumbnails") or []}
    return _created(payload)


# -- batch jobs ----------------------------------------------------------------------------
@bp.post("/jobs")
@auth_required
@api_spec.validate(form=JobForm, query=TranscribeQuery)
@predict_rate_limit
def create_job() -> tuple[Response, int]:
    """A ZIP of images/recordings/clips or a CSV of texts (multipart field ``file``) -> 202 and the job."""
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput("Send a ZIP or CSV as multipart/form-data field 'file'.", code="missing_file")
    form_or_json()  # 415 for a body that is neither
    transcribe = _transcribe_flag(validated("form"))
    job = jobs.create_job(current_app, get_session(), me(), upload.read(), upload.filename or "", transcribe=transcribe)
    response = jsonify(jobs.job_to_dict(get_session(), job))
    response.headers["Location"] = f"/api/jobs/{job.id}"
    return response, 202


@bp.get("/jobs")
@auth_required
def list_jobs() -> Response:
    session = get_session()
    return jsonify({"items": [jobs.job_to_dict(session, j) for j in jobs.list_jobs(session, me().id)]})


@bp.get("/jobs/<int:job_id>")
@auth_required
def get_job(job_id: int) -> Response:
    session = get_session()
    return jsonify(jobs.job_to_dict(session, jobs.get_job(session, me().id, job_id)))


@bp.get("/jobs/<int:job_id>/results.csv")
@auth_required
def job_results(job_id: int) -> Response:
    session = get_session()
    job = jobs.get_job(session, me().id, job_id)
    response = Response("".join(jobs.results_csv(session, job)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="moodlens-job-{job.id}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/jobs/<int:job_id>")
@auth_required
def cancel_job(job_id: int) -> Response:
    session = get_session()
    return jsonify(jobs.job_to_dict(session, jobs.cancel_job(current_app, session, me().id, job_id)))


@bp.get("/predictions")
@auth_required
@api_spec.validate(query=HistoryPage)
def list_predictions() -> Response:
    return jsonify(queries.list_predictions(get_session(), me().id, validated("query")))


@bp.get("/predictions/<int:prediction_id>")
@auth_required
def get_prediction(prediction_id: int) -> Response:
    prediction = store.get_prediction(get_session(), me().id, prediction_id)
    payload = serialize.prediction_to_dict(prediction)
    if prediction.kind == "video":
        payload["video"] = video.video_to_dict(prediction)
    return jsonify(payload)


@bp.delete("/predictions/<int:prediction_id>")
@auth_required
def delete_prediction(prediction_id: int) -> tuple[str, int]:
    store.delete_prediction(get_session(), me().id, prediction_id, uploads_dir=_kept_uploads_dir())
    return "", 204


@bp.get("/predictions/export.csv")
@auth_required
@api_spec.validate(query=ExportQuery)
def export_csv() -> Response:
    """The history as CSV (the same filters as GET /predictions), streamed with its own session
    (the request one closes early). Filters are checked before the first byte, so a bad one is a 400."""
    user_id = me().id
    filters: ExportQuery = validated("query")
    database = get_database()
    timeline = filters.wants_timeline()

    def generate() -> Any:
        with database.session() as session:
            if timeline:  # one row per time step of the video predictions
                yield from video.export_timeline_csv(session, user_id, filters)
            else:
                yield from csv_export.export_csv(session, user_id, filters)

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    name = "moodlens-timeline.csv" if timeline else "moodlens-predictions.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/statistics")
@auth_required
@api_spec.validate(query=HistoryFilters)
def statistics() -> Response:
    return jsonify(queries.statistics(get_session(), me().id, validated("query")))


# -- models and documentation --------------------------------------------------------------
@bp.get("/models")
def models() -> Response:
    """Which modalities are bundled (and with which model), and the fusion strategies."""
    registry = analysis.get_registry(current_app)
    default_strategy, unavailable = analysis.fusion_offer(current_app)
    fusion: dict[str, Any] = {
        "strategies": list(STRATEGIES),
        "default_strategy": default_strategy,
        "default_weights": DEFAULT_WEIGHTS,
        "unavailable_strategies": unavailable,
    }
    return jsonify(
        {
            "emotions": list(EMOTIONS),
            "modalities": public_model_status(registry.status()),
            "available": registry.available(),
            "loading": registry.loading,
            "all_modalities": list(MODALITIES),
            "fusion": fusion,
            "transcriber": analysis.transcriber_status(current_app),
        }
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    """The document, generated once per app (its limits come from the app's config, which is fixed)."""
    document = current_app.extensions.get("openapi_document")
    if document is None:
        document = current_app.extensions["openapi_document"] = build_spec()
    return jsonify(document)
