"""Moodlens application factory. ``python app.py`` runs the development server.

``create_app`` wires configuration, the database (migrated to head on start unless told
otherwise), security extensions, structured logging, error handlers, the recogniser registry
and the blueprints (api, health, pages). The bundled models then load in a background thread
(``PRELOAD_MODELS``, on by default): the process answers at once, ``/readyz`` turns 200 when
every model is loaded, and a prediction that arrives earlier gets 503 ``model_loading`` with
``Retry-After``. Under gunicorn this runs in each worker, after the fork.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, g, redirect, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from config import build_config, check_rate_limit_storage, load_dotenv_file
from database import session as db_session
from database.migrate import upgrade
from inference.base import InputLimits
from inference.registry import RecognizerRegistry
from security import init_security, limiter, login_manager
from services import accounts
from services.analysis import REGISTRY_KEY, get_fusion_engine, preload_transcriber
from web import api, context, health, pages
from web.errors import json_error, register_error_handlers, wants_json
from web.logs import configure_logging, init_request_logging


def build_registry(models_dir: str | Path, limits: InputLimits | None = None) -> RecognizerRegistry:
    """The bundled recognisers; a modality whose model files are missing answers 503 later."""
    return RecognizerRegistry.from_models_dir(models_dir, limits=limits)


def create_app(config: Mapping[str, Any] | None = None, *, registry: RecognizerRegistry | None = None) -> Flask:
    """Build the app. ``config`` overrides the environment; ``registry`` replaces the bundled models."""
    load_dotenv_file()
    env = dict(os.environ)
    for key in ("APP_ENV", "INSTANCE_DIR", "SECRET_KEY"):  # these shape other defaults
        if config and config.get(key):
            env[key] = str(config[key])
    settings = build_config(env)
    settings.update(config or {})
    if config and "MAX_UPLOAD_MB" in config and "MAX_CONTENT_LENGTH" not in config:
        settings["MAX_CONTENT_LENGTH"] = int(float(config["MAX_UPLOAD_MB"]) * 1024 * 1024)
    check_rate_limit_storage(settings)
    instance_dir = Path(settings["INSTANCE_DIR"])
    app = Flask(__name__, instance_path=str(instance_dir), instance_relative_config=False)
    app.config.update(settings)
    if not settings.get("TESTING"):
        configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    if app.config.get("TRUST_PROXY"):
        hops = int(app.config["TRUST_PROXY"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]

    # Database: migrate first so a fresh SQLite file or compose database is usable at once.
    database = db_session.Database(
        app.config["DATABASE_URL"],
        echo=app.config.get("DATABASE_ECHO", False),
        options={key: app.config.get(key) for key in db_session.ENGINE_OPTIONS},
    )
    if app.config.get("AUTO_MIGRATE"):
        upgrade(database.url)
    db_session.init_app(app, database)

    limits = InputLimits.from_config(app.config)
    if registry is None:
        registry = build_registry(app.config["MODELS_DIR"], limits)
    else:  # a registry handed in (tests, tools) serves under this app's limits too
        registry.set_limits(limits)
    app.extensions[REGISTRY_KEY] = registry
    if app.config.get("PRELOAD_MODELS"):
        app.extensions[REGISTRY_KEY].start_loading(lambda: _preload_fusion(app), lambda: preload_transcriber(app))

    init_request_logging(app)  # before security, so even CSRF/limit failures carry a request id
    init_security(app)
    _init_login(app)
    register_error_handlers(app)
    _register_blueprints(app)
    context.register(app)
    return app


def _preload_fusion(app: Flask) -> None:
    """Read the fusion artefacts (temperatures, the stacker graph) with the models."""
    engine = get_fusion_engine(app)
    engine.unavailable_strategies()  # reads temperatures.json
    if engine.stacker_available():
        engine.stacker  # noqa: B018  (loads the ONNX stacker once)


def _init_login(app: Flask) -> None:
    @login_manager.user_loader
    def _load_user(user_id: str) -> Any:
        return accounts.user_for_session(db_session.get_session(), user_id)

    @login_manager.unauthorized_handler
    def _unauthorized() -> Any:
        if wants_json() or "pages.login" not in app.view_functions:
            return json_error(401, "unauthorized", "Log in first, or send 'Authorization: Bearer <token>'.")
        return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))

    @app.context_processor
    def _inject_request_id() -> dict[str, Any]:
        return {"request_id": g.get("request_id", "")}


def _register_blueprints(app: Flask) -> None:
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    limiter.exempt(health.bp)  # probes from orchestrators must never be throttled
    app.register_blueprint(pages.bp)
    login_manager.login_view = "pages.login"


if __name__ == "__main__":
    application = create_app()
    application.run(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "5000")),
        debug=application.config["APP_ENV"] == "development" and os.environ.get("FLASK_DEBUG") == "1",
    )
