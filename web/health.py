"""Liveness and readiness probes for orchestrators and load balancers (no authentication)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from database.session import get_database
from inference.registry import RETRY_AFTER_SECONDS
from services.analysis import get_registry

bp = Blueprint("health", __name__)
log = logging.getLogger("moodlens.health")


#: What clients see instead of a model's own error, which may name server files.
MODEL_ERROR_MESSAGE = "The model could not be loaded; see the server log."


def public_model_status(
    status: dict[str, dict[str, Any]], errors: dict[str, str | None] | None = None
) -> dict[str, dict[str, Any]]:
    """The registry's per-modality report with error details logged, not shown."""
    report: dict[str, dict[str, Any]] = {}
    for modality, registry_entry in status.items():
        entry = dict(registry_entry)
        detail = entry.pop("error", None) or (errors or {}).get(modality)
        if detail:
            log.warning("event=model_unavailable modality=%s error=%r", modality, detail)
            entry["error"] = MODEL_ERROR_MESSAGE
        report[modality] = entry
    return report


@bp.get("/healthz")
def healthz() -> Any:
    """The process is up and serving (touches neither the database nor the models)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """Ready (200) when the database answers and every bundled model is loaded.

    While the models load (the first seconds of a process) it answers 503 ``loading`` with
    ``Retry-After``; a model that failed to load keeps it at 503 ``unavailable``. ``?load=1``
    loads them now, where the deployment allows it (``READYZ_ALLOW_LOAD``).
    """
    registry = get_registry(current_app)
    report: dict[str, Any] = {"database": {"ok": True}}
    status = 200
    try:
        get_database().ping()
    except Exception as exc:  # any driver error means "not ready", never a 500
        log.warning("event=readiness_db_failed error=%s", type(exc).__name__)
        report["database"] = {"ok": False, "error": "The database is unreachable."}
        status = 503
    errors: dict[str, str | None] = {}
    # Loading is heavy and the probe is public: only a deployment that opts in may trigger it.
    if current_app.config.get("READYZ_ALLOW_LOAD") and request.args.get("load") in {"1", "true", "yes"}:
        errors = registry.load_all()
    models = public_model_status(registry.status(), errors)
    report["models"] = models
    report["available_modalities"] = registry.available()
    report["models_loading"] = registry.loading
    if registry.load_seconds is not None:
        report["models_load_seconds"] = round(registry.load_seconds, 2)
    headers = {}
    if status == 200 and not registry.ready():
        status = 503
        report["status"] = "loading" if registry.loading else "unavailable"
        if registry.loading:
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    else:
        report["status"] = "ready" if status == 200 else "unavailable"
    response = jsonify(report)
    response.status_code = status
    response.headers.update(headers)
    return response
