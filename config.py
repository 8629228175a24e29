"""Configuration from the environment (and a ``.env`` file), so one image runs anywhere.

Every setting has a safe development default except ``SECRET_KEY`` in production, which
must be given: a generated key would log everybody out on each restart and differ between
gunicorn workers. ``.env.example`` documents every variable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_INSTANCE_DIR = REPO_ROOT / "instance"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(RuntimeError):
    """The environment is missing or has an invalid setting; the app must not start."""


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _env_number(env: Mapping[str, str], name: str, default: float, cast: type = int) -> Any:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, not {raw!r}")
    return value


def _env_count(env: Mapping[str, str], name: str) -> int:
    raw = (env.get(name) or "0").strip()
    if not raw.isdigit():
        raise ConfigError(f"{name} must be a whole number >= 0, not {raw!r}")
    return int(raw)


def load_dotenv_file(path: Path | None = None) -> None:
    """Read ``.env`` beside the code into ``os.environ`` without overriding real variables."""
    load_dotenv(path or REPO_ROOT / ".env", override=False)


def development_secret_key(instance_dir: Path) -> str:
    """A random key generated once and kept in ``instance/secret_key`` (development only)."""
    instance_dir.mkdir(parents=True, exist_ok=True)
    key_file = instance_dir / "secret_key"
    if key_file.is_file():
        key = key_file.read_text(encoding="utf-8").strip()
        if key:
            return key
    key = secrets.token_hex(32)
    key_file.write_text(key + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    return key


def default_database_url(instance_dir: Path) -> str:
    """SQLite file in the instance folder, as an absolute path so the working directory does not matter."""
    return f"sqlite:///{(instance_dir / 'moodlens.db').resolve()}"


def build_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Flask config for this environment. Raises :class:`ConfigError` on bad settings."""
    env = os.environ if env is None else env
    app_env = env.get("APP_ENV", "development").strip().lower() or "development"
    if app_env not in {"development", "production", "testing"}:
        raise ConfigError(f"APP_ENV must be development, production or testing, not {app_env!r}")
    production = app_env == "production"
    instance_dir = Path(env.get("INSTANCE_DIR") or DEFAULT_INSTANCE_DIR).resolve()

    secret_key = env.get("SECRET_KEY", "").strip()
    if not secret_key:
        if production:
            raise ConfigError("SECRET_KEY must be set when APP_ENV=production (e.g. `openssl rand -hex 32`).")
        secret_key = development_secret_key(instance_dir)
    elif production and len(secret_key) < 32:
        raise ConfigError("SECRET_KEY must be at least 32 characters long in production.")

    models_dir = Path(env.get("MODELS_DIR") or REPO_ROOT / "models")
    if not models_dir.is_absolute():
        models_dir = (REPO_ROOT / models_dir).resolve()

    max_upload_mb = _env_number(env, "MAX_UPLOAD_MB", 20, float)
    secure_cookies = _env_bool(env, "SESSION_COOKIE_SECURE", production)
    compute_type = env.get("TRANSCRIBE_COMPUTE_TYPE", "int8").strip().lower() or "int8"
    if compute_type not in {"int8", "float32"}:
        raise ConfigError(f"TRANSCRIBE_COMPUTE_TYPE must be int8 or float32, not {compute_type!r}")
    settings: dict[str, Any] = {
        "APP_ENV": app_env,
        "TESTING": app_env == "testing",
        "SECRET_KEY": secret_key,
        "INSTANCE_DIR": str(instance_dir),
        "DATABASE_URL": env.get("DATABASE_URL", "").strip() or default_database_url(instance_dir),
        "DATABASE_ECHO": _env_bool(env, "DATABASE_ECHO", False),
        # Bounds on every MySQL/MariaDB wait, so an outage answers 503 quickly instead of hanging.
        "DATABASE_CONNECT_TIMEOUT": _env_number(env, "DATABASE_CONNECT_TIMEOUT", 5, int),
        "DATABASE_READ_TIMEOUT": _env_number(env, "DATABASE_READ_TIMEOUT", 30, int),
        "DATABASE_WRITE_TIMEOUT": _env_number(env, "DATABASE_WRITE_TIMEOUT", 30, int),
        "DATABASE_POOL_SIZE": _env_number(env, "DATABASE_POOL_SIZE", 5, int),
        "DATABASE_POOL_TIMEOUT": _env_number(env, "DATABASE_POOL_TIMEOUT", 10, int),
        # Seconds a client is told to wait (Retry-After) when the database is unreachable.
        "DATABASE_RETRY_AFTER": _env_number(env, "DATABASE_RETRY_AFTER", 5, int),
        # Run `alembic upgrade head` when the app starts (SQLite development and compose).
        "AUTO_MIGRATE": _env_bool(env, "AUTO_MIGRATE", True),
        "MODELS_DIR": str(models_dir),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
        "LOG_FORMAT": env.get("LOG_FORMAT", "keyvalue").strip().lower() or "keyvalue",
        # Uploads and input limits
        "MAX_UPLOAD_MB": max_upload_mb,
        "MAX_CONTENT_LENGTH": int(max_upload_mb * 1024 * 1024),
        "MAX_AUDIO_SECONDS": _env_number(env, "MAX_AUDIO_SECONDS", 60, float),
        "MAX_TEXT_CHARS": _env_number(env, "MAX_TEXT_CHARS", 5000, int),
        "MAX_IMAGE_PIXELS": _env_number(env, "MAX_IMAGE_PIXELS", 40_000_000, int),
        "KEEP_UPLOADS": _env_bool(env, "KEEP_UPLOADS", False),
        # Video clips: longest clip, face frames sampled per second, voice window and hop (seconds).
        "MAX_VIDEO_SECONDS": _env_number(env, "MAX_VIDEO_SECONDS", 60, float),
        "VIDEO_FACE_FPS": _env_number(env, "VIDEO_FACE_FPS", 2, float),
        "VIDEO_WINDOW_SECONDS": _env_number(env, "VIDEO_WINDOW_SECONDS", 2, float),
        "VIDEO_HOP_SECONDS": _env_number(env, "VIDEO_HOP_SECONDS", 1, float),
        # Batch jobs: the task queue (Huey) runs them in a worker process. A redis:// URL uses
        # Redis (compose); empty uses a SQLite queue file in the instance folder (make run).
        "JOBS_BROKER_URL": env.get("JOBS_BROKER_URL", "").strip(),
        # Run jobs inside the request instead of a worker (tests and one-off scripts only).
        "JOBS_IMMEDIATE": _env_bool(env, "JOBS_IMMEDIATE", False),
        "JOBS_DIR": str(Path(env.get("JOBS_DIR") or instance_dir / "jobs")),
        "JOB_MAX_ITEMS": _env_number(env, "JOB_MAX_ITEMS", 500, int),
        "JOB_MAX_UPLOAD_MB": _env_number(env, "JOB_MAX_UPLOAD_MB", 200, float),
        # Largest total of the files inside a job's ZIP, and the largest compression ratio of one file.
        "JOB_MAX_UNPACKED_MB": _env_number(env, "JOB_MAX_UNPACKED_MB", 500, float),
        "JOB_MAX_RATIO": _env_number(env, "JOB_MAX_RATIO", 100, float),
        "READYZ_ALLOW_LOAD": _env_bool(env, "READYZ_ALLOW_LOAD", False),
        # Load every bundled model in the background as the process starts (after gunicorn's fork),
        # so the first request does not pay for it; /readyz answers 200 once they are loaded.
        "PRELOAD_MODELS": _env_bool(env, "PRELOAD_MODELS", True),
        # Transcripts: Whisper-base turns a recording's words into the text modality (transcribe=true).
        "TRANSCRIBE_ENABLED": _env_bool(env, "TRANSCRIBE_ENABLED", True),
        "TRANSCRIBE_COMPUTE_TYPE": compute_type,
        "TRANSCRIBE_BEAM_SIZE": max(1, _env_number(env, "TRANSCRIBE_BEAM_SIZE", 5, int)),
        "UPLOADS_DIR": str(Path(env.get("UPLOADS_DIR") or instance_dir / "uploads")),
        # Security
        "BCRYPT_ROUNDS": _env_number(env, "BCRYPT_ROUNDS", 12, int),
        "SESSION_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "SESSION_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": _env_number(env, "SESSION_LIFETIME_HOURS", 12, int) * 3600,
        "FORCE_HTTPS": _env_bool(env, "FORCE_HTTPS", False),
        # Strict-Transport-Security on HTTPS responses (the app sees HTTPS itself or via TRUST_PROXY).
        "HSTS": _env_bool(env, "HSTS", production),
        "HSTS_MAX_AGE": _env_number(env, "HSTS_MAX_AGE", 31_536_000, int),
        # Number of reverse proxies in front of the app whose X-Forwarded-* headers are trusted.
        "TRUST_PROXY": _env_count(env, "TRUST_PROXY"),
        "WTF_CSRF_ENABLED": _env_bool(env, "WTF_CSRF_ENABLED", True),
        "WTF_CSRF_TIME_LIMIT": None,  # valid for the session's lifetime; pages stay open for hours
        "WTF_CSRF_SSL_STRICT": _env_bool(env, "WTF_CSRF_SSL_STRICT", production),
        # Rate limits (Flask-Limiter syntax)
        "RATELIMIT_ENABLED": _env_bool(env, "RATELIMIT_ENABLED", True),
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI", "memory://").strip() or "memory://",
        "RATELIMIT_DEFAULT": env.get("RATELIMIT_DEFAULT", "300 per minute"),
        "RATELIMIT_LOGIN": env.get("RATELIMIT_LOGIN", "10 per minute;50 per hour"),
        "RATELIMIT_REGISTER": env.get("RATELIMIT_REGISTER", "5 per minute;30 per hour"),
        "RATELIMIT_PREDICT": env.get("RATELIMIT_PREDICT", "30 per minute;500 per hour"),
        "RATELIMIT_HEADERS_ENABLED": True,
        # Per-account login throttle (OWASP: growing delays, no permanent lock): the
        # LOGIN_MAX_FAILURES-th wrong guess starts a wait of LOGIN_LOCK_SECONDS, each further
        # one doubles it, up to LOGIN_LOCK_MAX_SECONDS. The per-IP budget is RATELIMIT_LOGIN.
        "LOGIN_MAX_FAILURES": _env_number(env, "LOGIN_MAX_FAILURES", 5, int),
        "LOGIN_LOCK_SECONDS": _env_number(env, "LOGIN_LOCK_SECONDS", 60, int),
        "LOGIN_LOCK_MAX_SECONDS": _env_number(env, "LOGIN_LOCK_MAX_SECONDS", 3600, int),
        "WEB_CONCURRENCY": _env_number(env, "WEB_CONCURRENCY", 2, int),
        "JSON_SORT_KEYS": False,
    }
    return settings


def check_rate_limit_storage(settings: Mapping[str, Any]) -> None:
    """Refuse a per-process rate-limit store where several processes serve (limits would multiply).

    Called by ``create_app`` (after its overrides) and by gunicorn's master before it forks.

    With ``memory://`` every gunicorn worker counts on its own, so two workers let through
    twice every limit (20 logins through "10 per minute"). Production with more than one
    worker must name a shared store such as Redis.
    """
    if settings["APP_ENV"] != "production" or not settings["RATELIMIT_ENABLED"]:
        return
    if settings["RATELIMIT_STORAGE_URI"].startswith("memory://") and int(settings["WEB_CONCURRENCY"]) > 1:
        raise ConfigError(
            f"RATELIMIT_STORAGE_URI=memory:// counts per process, so WEB_CONCURRENCY={settings['WEB_CONCURRENCY']} "
            "workers would multiply every rate limit. Set RATELIMIT_STORAGE_URI=redis://host:6379/0 "
            "(a store shared by all workers) or WEB_CONCURRENCY=1."
        )
