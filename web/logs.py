"""Structured logs with a request id on every line, and one access line per request.

The request id comes from the ``X-Request-ID`` header when it looks sane (so a proxy's id
follows the request through) or is generated, and is echoed in the response.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("moodlens.access")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... request_id=... <message>`` — greppable and parseable."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = (
            f"ts={ts} level={record.levelname.lower()} logger={record.name} "
            f"request_id={getattr(record, 'request_id', '-')} {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "keyvalue") -> None:
    """Install one stderr handler on the ``moodlens`` and ``services`` loggers (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(RequestIdFilter())
    handler.set_name("moodlens")
    for name in ("moodlens", "services", "web", "inference"):
        logger = logging.getLogger(name)
        for existing in list(logger.handlers):
            if existing.get_name() == "moodlens":
                logger.removeHandler(existing)
        logger.addHandler(handler)
        logger.setLevel(getattr(logging, level.upper(), logging.INFO))
        logger.propagate = False


def init_request_logging(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers[REQUEST_ID_HEADER] = request_id
        if response.status_code not in {429, 503}:
            response.headers.pop("Retry-After", None)  # the limiter adds it to every response
        started = g.get("request_started")
        duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
        if request.path not in {"/healthz"} and not request.path.startswith("/static/"):
            access_log.info(
                "event=request method=%s path=%s status=%s duration_ms=%.1f user_id=%s",
                request.method,
                request.path,
                response.status_code,
                duration_ms,
                g.get("user_id_for_log", "-"),
            )
        return response
