"""Security building blocks shared by the API and the pages.

The extension instances (``csrf``, ``limiter``, ``talisman``, ``login_manager``) are created
here and initialised by ``create_app``. The password policy, bcrypt hashing and token hashing
live here too so the API and the HTML forms enforce exactly the same rules.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

import bcrypt
from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
talisman = Talisman()


def _rate_limit_key() -> str:
    """Clients are told apart by IP address (the proxy's X-Forwarded-For when TRUST_PROXY is set)."""
    return get_remote_address() or "unknown"


limiter = Limiter(key_func=_rate_limit_key, default_limits=[lambda: current_app.config["RATELIMIT_DEFAULT"]])

#: Decorators for routes in any blueprint. Shared scopes mean the page and API logins
#: draw from the same per-IP budget.
login_rate_limit = limiter.shared_limit(lambda: current_app.config["RATELIMIT_LOGIN"], scope="login")
register_rate_limit = limiter.shared_limit(lambda: current_app.config["RATELIMIT_REGISTER"], scope="register")
predict_rate_limit = limiter.shared_limit(lambda: current_app.config["RATELIMIT_PREDICT"], scope="predict")

#: The Content-Security-Policy: everything from our own origin, no inline script, and
#: data:/blob: images and media for camera snapshots and microphone recordings.
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": ["'self'", "data:", "blob:"],
    "media-src": ["'self'", "blob:"],
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

#: Camera and microphone only for our own pages (the capture widgets), nothing else.
PERMISSIONS_POLICY: dict[str, Any] = {
    "camera": "(self)",
    "microphone": "(self)",
    "geolocation": "()",
    "interest-cohort": "()",
}


def init_security(app: Flask) -> None:
    """Initialise CSRF, rate limiting, security headers and the login manager on ``app``."""
    csrf.init_app(app)
    limiter.init_app(app)
    talisman.init_app(
        app,
        force_https=bool(app.config.get("FORCE_HTTPS")),
        # Sent on HTTPS responses only (browsers ignore it over HTTP): behind a TLS proxy the
        # app learns the scheme from X-Forwarded-Proto (TRUST_PROXY).
        strict_transport_security=bool(app.config.get("HSTS") or app.config.get("FORCE_HTTPS")),
        strict_transport_security_max_age=int(app.config.get("HSTS_MAX_AGE", 31_536_000)),
        session_cookie_secure=bool(app.config.get("SESSION_COOKIE_SECURE")),
        session_cookie_http_only=True,
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=[],
        permissions_policy=PERMISSIONS_POLICY,
        referrer_policy="same-origin",
        frame_options="DENY",
    )
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    login_manager.login_message_category = "info"


# -- passwords ---------------------------------------------------------------------------
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128

#: A short list of the most common passwords (long enough to pass the length rule).
COMMON_PASSWORDS: frozenset[str] = frozenset(
    {
        "1234567890",
        "12345678910",
        "0123456789",
        "1q2w3e4r5t",
        "qwertyuiop",
        "1qaz2wsx3edc",
        "password1",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "password!",
        "iloveyou123",
        "qwerty12345",
        "qwerty123456",
        "abc123456789",
        "abcdefghij",
        "letmein123",
        "welcome123",
        "welcome1234",
        "admin12345",
        "administrator",
        "football123",
        "baseball123",
        "sunshine123",
        "princess123",
        "monkey12345",
        "dragon12345",
        "changeme123",
        "trustno1234",
        "superman123",
        "qazwsxedc123",
        "starwars123",
        "whatever123",
        "computer123",
        "michael1234",
        "p@ssw0rd123",
        "p@ssword123",
        "moodlens123",
    }
)

_CLASSES = (
    re.compile(r"[a-z]"),
    re.compile(r"[A-Z]"),
    re.compile(r"[0-9]"),
    re.compile(r"[^a-zA-Z0-9]"),
)


def password_problems(password: str, email: str = "") -> list[str]:
    """Everything wrong with ``password`` as plain sentences (empty list: acceptable)."""
    problems: list[str] = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"Use at most {MAX_PASSWORD_LENGTH} characters.")
    if sum(1 for pattern in _CLASSES if pattern.search(password)) < 2:
        problems.append("Mix at least two kinds of characters (lower case, upper case, digits, symbols).")
    lowered = password.strip().lower()
    email = email.strip().lower()
    if email and (lowered == email or lowered == email.split("@", 1)[0]):
        problems.append("The password must not be your email address.")
    if lowered in COMMON_PASSWORDS:
        problems.append("This password is too common; choose another.")
    return problems


def hash_password(password: str, rounds: int | None = None) -> str:
    """bcrypt hash (cost from BCRYPT_ROUNDS: 12 in production, lower in tests)."""
    if rounds is None:
        rounds = int(current_app.config.get("BCRYPT_ROUNDS", 12))
    # bcrypt ignores bytes past 72; pre-hashing keeps long passphrases fully significant.
    digest = _prehash(password)
    return bcrypt.hashpw(digest, bcrypt.gensalt(rounds=rounds)).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    """Constant-time bcrypt check; False for malformed hashes instead of an exception."""
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))
    except (ValueError, TypeError):
        return False


def _prehash(password: str) -> bytes:
    import base64

    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


#: A valid bcrypt hash of a random string: used to spend the same time when the email is unknown.
_DUMMY_HASH: dict[int, str] = {}


def burn_password_check(password: str) -> None:
    """Do a bcrypt check anyway so response time does not reveal which emails exist."""
    rounds = int(current_app.config.get("BCRYPT_ROUNDS", 12))
    if rounds not in _DUMMY_HASH:
        _DUMMY_HASH[rounds] = hash_password(secrets.token_hex(8), rounds)
    check_password(password, _DUMMY_HASH[rounds])


# -- API tokens --------------------------------------------------------------------------
TOKEN_PREFIX = "ml_"


def new_api_token() -> tuple[str, str, str]:
    """A fresh token: (value shown once, SHA-256 digest to store, short prefix for display)."""
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return value, hash_token(value), value[:10]


def hash_token(value: str) -> str:
    """SHA-256 hex digest: tokens are long random strings, so a fast hash is enough."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_bearer_request() -> bool:
    """True when this request authenticates with a token (so CSRF does not apply)."""
    return bool(g.get("auth_via_token")) or bearer_token() is not None
