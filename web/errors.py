"""One error format for the API, error pages for the HTML side, and a safe catch-all 500.

API requests (paths under /api, the health probes, or clients that prefer JSON) get
``{"error": {"code", "message"}}``; page requests get templates/error.html (a plain-text
page if that template is missing). Unexpected exceptions are logged with the request id and
answered with a generic message: no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from jinja2 import TemplateNotFound
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from database.session import is_outage
from errors import EmotionAppError
from security import login_manager

log = logging.getLogger("moodlens.errors")

#: Stable codes for the HTTP errors Flask/Werkzeug raise themselves.
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}

FRIENDLY: dict[int, str] = {
    400: "The request could not be understood.",
    401: "Please log in first (session cookie or an 'Authorization: Bearer <token>' header).",
    403: "You are not allowed to do this.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    413: "The upload is too large.",
    415: "This type of content is not supported.",
    429: "Too many requests; slow down and try again shortly.",
    500: "Something went wrong on our side. It has been logged; please try again.",
    503: "The service is temporarily unavailable.",
}

DATABASE_UNAVAILABLE = "The database is unreachable right now; nothing was stored. Please retry shortly."


def wants_json() -> bool:
    """JSON for the API and probes, and for any client that prefers JSON over HTML."""
    path = request.path
    if path == "/api" or path.startswith(("/api/", "/healthz", "/readyz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def error_page(status: int, title: str, message: str) -> Response | tuple[Any, int]:
    try:
        return render_template("error.html", code=status, title=title, message=message), status
    except TemplateNotFound:
        pass
    except Exception:  # a broken error page must not turn a 404 into a 500
        log.exception("event=error_page_failed status=%s", status)
    return Response(f"{status} {title}\n\n{message}\n", status=status, mimetype="text/plain")


def respond(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    if wants_json():
        return json_error(status, code, message, headers)
    title = HTTP_CODES.get(status, "error").replace("_", " ").capitalize()
    response = error_page(status, title, message)
    if headers:
        if isinstance(response, tuple):
            body, st = response
            response = Response(body, status=st, mimetype="text/html")
        for key, value in headers.items():
            response.headers[key] = value
    return response


def _retry_after(exc: RateLimitExceeded) -> str:
    try:
        reset = exc.limit.limit.get_expiry()  # the window length in seconds
        return str(max(1, int(reset)))
    except Exception:  # the header matters more than its precision
        return "60"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(EmotionAppError)
    def _app_error(exc: EmotionAppError) -> Any:
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            headers["Retry-After"] = str(int(retry_after))
        if exc.status >= 500:
            log.warning("event=app_error status=%s code=%s message=%r", exc.status, exc.code, exc.message)
        return respond(exc.status, exc.code, exc.message, headers)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        message = (
            f"CSRF check failed: {exc.description} Fetch a token from GET /api/csrf and send it in the "
            "X-CSRFToken header (or authenticate with an API token)."
        )
        return respond(400, "csrf_failed", message)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Any:
        retry_after = _retry_after(exc)
        message = f"Too many requests (limit: {exc.description}). Try again in {retry_after} seconds."
        return respond(429, "rate_limited", message, {"Retry-After": retry_after})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        message = FRIENDLY.get(status, exc.description or "Request failed.")
        if status == 413:
            limit = app.config.get("MAX_UPLOAD_MB")
            message = f"The upload is too large; the limit is {limit:g} MB." if limit else FRIENDLY[413]
        elif status in {400, 415} and exc.description and not exc.description.startswith("The browser"):
            message = exc.description
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return respond(status, code, message, headers)

    @app.errorhandler(sa_exc.DBAPIError)
    @app.errorhandler(sa_exc.TimeoutError)
    @app.errorhandler(sa_exc.DisconnectionError)
    def _database_error(exc: Exception) -> Any:
        """An outage (server down, unreachable, timed out, pool exhausted) is 503 with Retry-After:
        the client may retry (with its Idempotency-Key); any other database error is a bug (500)."""
        if not is_outage(exc):
            return _unexpected(exc)
        log.warning(
            "event=database_unavailable request_id=%s path=%s error=%s",
            g.get("request_id", "-"),
            request.path,
            type(getattr(exc, "orig", None) or exc).__name__,
        )
        retry_after = str(int(app.config.get("DATABASE_RETRY_AFTER") or 5))
        if g.get("_login_user") is None:  # loading the user failed: the error page must not try again
            g._login_user = login_manager.anonymous_user()
        return respond(503, "database_unavailable", DATABASE_UNAVAILABLE, {"Retry-After": retry_after})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception(
            "event=unhandled_exception request_id=%s method=%s path=%s error=%s",
            g.get("request_id", "-"),
            request.method,
            request.path,
            type(exc).__name__,
        )
        message = FRIENDLY[500] + f" (request id {g.get('request_id', '-')})"
        return respond(500, "internal_error", message)
