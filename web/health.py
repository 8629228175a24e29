"""Liveness and readiness probes for orchestrators and load balancers (no authentication)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from database.session import get_database
from services.analysis import get_registry

bp = Blueprint("health", __name__)
log = logging.getLogger("moodlens.health")


@bp.get("/healthz")
def healthz() -> Any:
    """The process is up and serving (touches neither the database nor the models)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """Ready when the database answers; reports each modality's model (``?load=1`` loads them)."""
    registry = get_registry(current_app)
    report: dict[str, Any] = {"database": {"ok": True}}
    status = 200
    try:
        get_database().ping()
    except Exception as exc:  # any driver error means "not ready", never a 500
        log.warning("event=readiness_db_failed error=%s", type(exc).__name__)
        report["database"] = {"ok": False, "error": "The database is unreachable."}
        status = 503
    if request.args.get("load") in {"1", "true", "yes"}:
        errors = registry.load_all()
        models = registry.status()
        for modality, error in errors.items():
            if error:
                models[modality]["error"] = error
    else:
        models = registry.status()
    report["models"] = models
    report["available_modalities"] = registry.available()
    report["status"] = "ready" if status == 200 else "unavailable"
    response = jsonify(report)
    response.status_code = status
    return response
