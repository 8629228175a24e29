"""Server-rendered pages of the browser experience (blueprint ``pages``, no URL prefix).

The pages are thin shells: the forms for logging in and registering post here (so they work
without JavaScript), everything else is drawn by the scripts in ``static/js`` from the JSON
API, which is the one place predictions, history and statistics are computed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from database.session import get_session
from errors import EmotionAppError
from inference.fusion import DEFAULT_WEIGHTS, STRATEGIES, WEIGHTED_STRATEGIES
from inference.labels import EMOTIONS, KIND_MODALITIES, MODALITIES
from security import login_rate_limit, register_rate_limit
from services import accounts
from services.analysis import fusion_offer, get_registry
from web.forms import LoginForm, RegisterForm

bp = Blueprint("pages", __name__)

#: Shown under the password field; mirrors ``security.password_problems``.
PASSWORD_HINT = (
    "At least 10 characters, mixing at least two kinds (lower case, upper case, digits, symbols); "
    "not your e-mail address and not a common password."
)


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths may be a post-login destination (no open redirects)."""
    if not target or "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None  # browsers read "/\host" and "/<tab>/host" like "//host"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _invalid_form_status(form: Any) -> int:
    """422 for fields to correct; 400 (and a note) when only the CSRF token failed."""
    csrf_field = getattr(form, "csrf_token", None)
    if csrf_field is not None and csrf_field.errors:
        form.form_errors.append("The form expired; please try again.")
        return 400
    return 422


def _db_session() -> Any:
    return get_session()


@bp.get("/")
def landing() -> str:
    """Say what the product does (and does not) before anyone signs up."""
    return render_template("landing.html")


@bp.get("/login")
def login() -> str | Response:
    """The login form (GET is free; only submissions spend the shared login budget)."""
    return _login()


@bp.post("/login")
@login_rate_limit
def login_submit() -> str | Response:
    """Log in with the same checks, lock-out and per-IP budget as ``POST /api/login``."""
    return _login()


def _login() -> str | Response:
    next_url = _safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("pages.analyse"))
    form = LoginForm()
    form.form_errors = []
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(_db_session(), form.email.data, form.password.data)
        except EmotionAppError as exc:
            form.form_errors.append(exc.message)
            status = exc.status
        else:
            accounts.start_login_session(_db_session(), user)
            login_user(user, remember=bool(form.remember.data))
            flash(f"Welcome back, {user.display_name or user.email}.", "success")
            return redirect(next_url or url_for("pages.analyse"))
    elif request.method == "POST":
        status = _invalid_form_status(form)
    return render_template("login.html", form=form, next_url=next_url), status


@bp.get("/register")
def register() -> str | Response:
    """The registration form."""
    return _register()


@bp.post("/register")
@register_rate_limit
def register_submit() -> str | Response:
    """Create an account with the password policy of ``services.accounts``, then log in."""
    return _register()


def _register() -> str | Response:
    if current_user.is_authenticated:
        return redirect(url_for("pages.analyse"))
    form = RegisterForm()
    form.form_errors = []
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.register_user(_db_session(), form.email.data, form.password.data, form.name.data or None)
        except accounts.WeakPassword as exc:
            form.password.errors = list(exc.problems)
            status = exc.status
        except EmotionAppError as exc:
            target = form.email if exc.code in {"invalid_email", "email_taken"} else None
            if target is not None:
                target.errors = [exc.message]
            else:
                form.form_errors.append(exc.message)
            status = exc.status
        else:
            accounts.start_login_session(_db_session(), user)
            login_user(user)
            flash("Your account is ready. Try an analysis below.", "success")
            return redirect(url_for("pages.analyse"))
    elif request.method == "POST":
        status = _invalid_form_status(form)
    return render_template("register.html", form=form, password_hint=PASSWORD_HINT), status


@bp.post("/logout")
def logout() -> Response:
    """POST only (with the CSRF token), so a link elsewhere cannot log people out."""
    if current_user.is_authenticated:
        accounts.end_login_session(_db_session(), current_user._get_current_object())
    logout_user()
    flash("You are logged out.", "success")
    return redirect(url_for("pages.landing"))


@bp.post("/logout/all")
@login_required
def logout_everywhere() -> Response:
    """End every login session of the account (other browsers and remember cookies too)."""
    accounts.end_all_login_sessions(_db_session(), current_user._get_current_object())
    logout_user()
    flash("You are logged out everywhere.", "success")
    return redirect(url_for("pages.landing"))


@bp.get("/analyse")
@login_required
def analyse() -> str:
    """The five-tab analysis page; which models are installed is asked from /api/models."""
    # Strategies whose trained artefacts are missing are marked now instead of failing later.
    default_strategy, unavailable = fusion_offer(current_app)
    return render_template(
        "analyse.html",
        strategies=STRATEGIES,
        default_strategy=default_strategy,
        unavailable_strategies=unavailable,
        default_weights=DEFAULT_WEIGHTS,
        weighted_strategies=sorted(WEIGHTED_STRATEGIES),
        modalities=MODALITIES,
        kind_modalities={kind: list(modalities) for kind, modalities in KIND_MODALITIES.items()},
        max_text_chars=int(current_app.config.get("MAX_TEXT_CHARS", 5000)),
        max_audio_seconds=float(current_app.config.get("MAX_AUDIO_SECONDS", 60)),
        max_upload_mb=float(current_app.config.get("MAX_UPLOAD_MB", 20)),
        max_video_seconds=float(current_app.config.get("MAX_VIDEO_SECONDS", 60)),
        video_face_fps=float(current_app.config.get("VIDEO_FACE_FPS", 2)),
        has_consent=bool(getattr(current_user, "has_consent", False)),
        models_loading=get_registry(current_app).loading,
    )


@bp.get("/predictions/<int:prediction_id>")
@login_required
def prediction(prediction_id: int) -> str:
    """One stored result; the script loads it from GET /api/predictions/<id>."""
    return render_template("prediction.html", prediction_id=prediction_id)


@bp.get("/jobs")
@login_required
def jobs() -> str:
    """Batch jobs: submit a ZIP or CSV, see every job's progress (the script polls /api/jobs)."""
    return render_template("jobs.html", job_id=None, max_items=int(current_app.config.get("JOB_MAX_ITEMS", 500)))


@bp.get("/jobs/<int:job_id>")
@login_required
def job(job_id: int) -> str:
    """One job: a progress bar while it runs, then its results table and CSV download."""
    return render_template("jobs.html", job_id=job_id, max_items=int(current_app.config.get("JOB_MAX_ITEMS", 500)))


@bp.get("/history")
@login_required
def history() -> str:
    """The user's predictions, filterable; rows come from GET /api/predictions."""
    return render_template("history.html", emotions=EMOTIONS, modalities=MODALITIES)


@bp.get("/statistics")
@login_required
def statistics() -> str:
    """Charts of the user's own predictions from GET /api/statistics."""
    return render_template("statistics.html", emotions=EMOTIONS)


@bp.get("/account")
@login_required
def account() -> str:
    """Profile, consent, API tokens and account deletion."""
    return render_template("account.html", has_consent=bool(getattr(current_user, "has_consent", False)))


@bp.get("/privacy")
def privacy() -> str:
    """Responsible use & privacy, in plain language, for everyone (linked from every footer)."""
    return render_template(
        "privacy.html",
        keep_uploads=bool(current_app.config.get("KEEP_UPLOADS", False)),
    )


@bp.get("/docs")
def api_docs() -> str:
    """The API reference, rendered in the browser from /api/openapi.json."""
    return render_template("docs.html")
