"""Accounts: registration, authentication with per-account throttling, login sessions, consent, API tokens.

The JSON API and the HTML pages both call these functions, so the password policy and the
per-account throttle are the same everywhere. Every failure is an ``EmotionAppError``
subclass with an HTTP status and a stable code.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import shutil
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from database.models import (
    ApiToken,
    LoginSession,
    ModalityResult,
    Prediction,
    Transcript,
    User,
    new_login_session_id,
    new_session_token,
    utcnow,
)
from errors import EmotionAppError, InvalidInput
from security import burn_password_check, check_password, hash_password, hash_token, new_api_token, password_problems

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 100
MAX_TOKEN_NAME_LENGTH = 100
MAX_TOKENS_PER_USER = 20


class WeakPassword(EmotionAppError):
    """The password breaks the policy; ``problems`` lists every rule it breaks."""

    status = 422
    code = "weak_password"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Password rejected: " + " ".join(problems))
        self.problems = problems


class EmailTaken(EmotionAppError):
    status = 409
    code = "email_taken"


class InvalidCredentials(EmotionAppError):
    status = 401
    code = "invalid_credentials"


class AccountLocked(EmotionAppError):
    """Too many failed logins for this account; try again after ``retry_after`` seconds."""

    status = 429
    code = "too_many_login_attempts"

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"Too many failed login attempts for this account. Try again in about {minutes} minute(s).")
        self.retry_after = max(1, int(retry_after))


class NotFound(EmotionAppError):
    status = 404
    code = "not_found"


def normalise_email(email: Any) -> str:
    if not isinstance(email, str):
        raise InvalidInput("An email address is required.", code="invalid_email")
    email = email.strip().lower()
    if not email or len(email) > MAX_EMAIL_LENGTH or not EMAIL_RE.match(email):
        raise InvalidInput("Enter a valid email address.", code="invalid_email")
    return email


def _clean_name(name: Any, email: str) -> str:
    if name is None or (isinstance(name, str) and not name.strip()):
        return email.split("@", 1)[0][:MAX_NAME_LENGTH]
    if not isinstance(name, str):
        raise InvalidInput("The name must be a string.", code="invalid_name")
    name = " ".join(name.split())
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The name may have at most {MAX_NAME_LENGTH} characters.", code="invalid_name")
    return name


def check_password_policy(password: Any, email: str = "") -> None:
    """Raise :class:`WeakPassword` when ``password`` breaks the policy."""
    if not isinstance(password, str) or not password:
        raise InvalidInput("A password is required.", code="invalid_password")
    problems = password_problems(password, email)
    if problems:
        raise WeakPassword(problems)


def register_user(session: Session, email: Any, password: Any, name: Any = None, *, consent: bool = False) -> User:
    """Create an account (committed). Raises InvalidInput, WeakPassword or EmailTaken."""
    email = normalise_email(email)
    display_name = _clean_name(name, email)
    check_password_policy(password, email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken("An account with this email address already exists.")
    user = User(
        email=email,
        password_hash=hash_password(password),
        display_name=display_name,
        created_at=utcnow(),
        consent_given_at=utcnow() if consent else None,
        failed_logins=0,
        session_token=new_session_token(),
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError:  # a concurrent registration won the race
        session.rollback()
        raise EmailTaken("An account with this email address already exists.") from None
    return user


def authenticate(session: Session, email: Any, password: Any, *, now: dt.datetime | None = None) -> User:
    """The user for these credentials, throttled per account with growing waits.

    Every guess is counted *before* its password is checked, by one conditional UPDATE
    (:func:`_claim_guess`), so however many requests arrive at once no more than
    ``LOGIN_MAX_FAILURES`` guesses are checked before the first wait; each guess after a wait
    doubles the next wait (up to ``LOGIN_LOCK_MAX_SECONDS``). A wait refuses even the right
    password (``AccountLocked``, 429 with Retry-After), but it always ends: there is no
    permanent lock an attacker could put on a known address (OWASP's advice). Unknown emails
    and wrong passwords get the same message.
    """
    now = now or utcnow()
    wrong = InvalidCredentials("The email address or password is incorrect.")
    if not isinstance(email, str) or not isinstance(password, str) or not email.strip() or not password:
        raise InvalidInput("Email and password are required.", code="missing_credentials")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        burn_password_check(password)
        raise wrong
    wait_after_guess = _claim_guess(session, user, now)
    if not check_password(password, user.password_hash):
        if wait_after_guess:
            raise AccountLocked(wait_after_guess)
        raise wrong
    _reset_failures(session, user, now, login=True)
    return user


def _throttle_settings() -> tuple[int, int, int]:
    free = int(current_app.config.get("LOGIN_MAX_FAILURES", 5))
    base = int(current_app.config.get("LOGIN_LOCK_SECONDS", 60))
    ceiling = int(current_app.config.get("LOGIN_LOCK_MAX_SECONDS", 3600))
    return free, base, max(base, ceiling)


def throttle_wait(failures: int, *, free: int, base: int, ceiling: int) -> int:
    """Seconds to wait after the ``failures``-th counted guess: none before ``free``, then base, 2×base, …"""
    if failures < free:
        return 0
    return min(ceiling, base * 2 ** min(failures - free, 30))


def _claim_guess(session: Session, user: User, now: dt.datetime) -> int:
    """Count one guess at this account atomically, or raise :class:`AccountLocked` while a wait runs.

    Returns the wait that starts if this guess turns out wrong (0: none). The count is a
    compare-and-set UPDATE on the row (``WHERE failed_logins = <read value>``): the database
    serialises concurrent ones, exactly one of them wins each value, and the losers re-read.
    A streak of failures is forgotten once its wait plus ``LOGIN_LOCK_SECONDS`` has passed.
    """
    free, base, ceiling = _throttle_settings()
    for _ in range(50):
        session.commit()  # a fresh snapshot on MariaDB (REPEATABLE READ)
        row = session.execute(
            select(User.failed_logins, User.locked_until, User.last_failed_login_at).where(User.id == user.id)
        ).one()
        failures, locked_until, last_failed = int(row[0] or 0), row[1], row[2]
        if locked_until is not None and locked_until > now:
            raise AccountLocked(max(1, int((locked_until - now).total_seconds() + 0.999)))
        streak_alive = False
        if last_failed is not None:
            remembered = throttle_wait(failures, free=free, base=base, ceiling=ceiling) + base
            streak_alive = last_failed + dt.timedelta(seconds=remembered) >= now
        counted = failures + 1 if streak_alive else 1
        wait = throttle_wait(counted, free=free, base=base, ceiling=ceiling)
        claimed = session.execute(
            update(User)
            .where(User.id == user.id, User.failed_logins == failures)
            .where(User.locked_until.is_(None) if locked_until is None else User.locked_until == locked_until)
            .values(
                failed_logins=counted,
                last_failed_login_at=now,
                locked_until=now + dt.timedelta(seconds=wait) if wait else None,
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if claimed.rowcount == 1:
            return wait
    raise AccountLocked(base)  # extreme contention: refuse rather than check unbounded guesses


def _reset_failures(session: Session, user: User, now: dt.datetime, *, login: bool) -> None:
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_failed_login_at": None}
    if login:
        values["last_login_at"] = now
    statement = update(User).where(User.id == user.id).values(**values)
    session.execute(statement.execution_options(synchronize_session=False))
    session.commit()
    session.refresh(user)


# -- login sessions ------------------------------------------------------------------------
def start_login_session(session: Session, user: User) -> str:
    """A new login session row for ``user`` (committed); its id goes into ``user.get_id()``.

    Rows of the account older than the longest a cookie can live (the remember cookie's
    duration, 365 days by default) are deleted on the way: no cookie can name them any more.
    """
    now = utcnow()
    longest = current_app.config.get("REMEMBER_COOKIE_DURATION") or dt.timedelta(days=365)
    if not isinstance(longest, dt.timedelta):
        longest = dt.timedelta(seconds=int(longest))
    stale = delete(LoginSession).where(LoginSession.user_id == user.id, LoginSession.created_at < now - longest)
    session.execute(stale)
    row = LoginSession(id=new_login_session_id(), user_id=user.id, created_at=now)
    session.add(row)
    session.commit()
    user.login_session_id = row.id
    return row.id


def end_login_session(session: Session, user: User | None) -> None:
    """Delete the login session this request runs under: its cookies stop working everywhere."""
    sid = getattr(user, "login_session_id", None)
    if user is not None and sid:
        session.execute(delete(LoginSession).where(LoginSession.id == sid, LoginSession.user_id == user.id))
        session.commit()


def end_all_login_sessions(session: Session, user: User) -> int:
    """Log the account out everywhere (every browser, every remember cookie); how many ended."""
    result = session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    session.commit()
    return int(result.rowcount or 0)


def database_id(value: Any) -> int | None:
    """``value`` as a primary key we could have issued, or None (no overflow errors from drivers)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None


def get_user(session: Session, user_id: Any) -> User | None:
    uid = database_id(user_id)
    return session.get(User, uid) if uid is not None else None


def user_for_session(session: Session, session_id: Any) -> User | None:
    """The user a login session names (``User.get_id()``: "<id>:<session token>:<login session id>"), or None.

    The login session row must exist (logout deletes it) and the token must match the
    user's current one, so a session outlives neither a logout, a password change nor the
    account (a new account that gets the same id has another token).
    """
    if not isinstance(session_id, str) or session_id.count(":") != 2:
        return None
    user_id, token, sid = session_id.split(":", 2)
    user = get_user(session, user_id)
    if user is None or not token or not sid or not user.session_token:
        return None
    if not hmac.compare_digest(token.encode(), user.session_token.encode()):
        return None
    row = session.scalar(select(LoginSession.id).where(LoginSession.id == sid, LoginSession.user_id == user.id))
    if row is None:
        return None
    user.login_session_id = row
    return user


def set_consent(session: Session, user: User, consent: bool) -> User:
    """Record (or revoke) consent to face and voice processing."""
    if consent and user.consent_given_at is None:
        user.consent_given_at = utcnow()
    elif not consent:
        user.consent_given_at = None
    session.commit()
    return user


def update_profile(session: Session, user: User, *, name: Any = None) -> User:
    if name is not None:
        user.display_name = _clean_name(name, user.email)
    session.commit()
    return user


def change_password(
    session: Session, user: User, current_password: Any, new_password: Any, *, now: dt.datetime | None = None
) -> User:
    """Set a new password and end every other login session of the account.

    Wrong current passwords count towards the same throttle as failed logins, so this
    endpoint cannot be used to guess the password of a session left open.
    """
    now = now or utcnow()
    current_sid = user.login_session_id
    wait_after_guess = _claim_guess(session, user, now)
    if not isinstance(current_password, str) or not check_password(current_password, user.password_hash):
        if wait_after_guess:
            raise AccountLocked(wait_after_guess)
        raise InvalidCredentials("The current password is incorrect.")
    _reset_failures(session, user, now, login=False)
    check_password_policy(new_password, user.email)
    user.password_hash = hash_password(new_password)
    user.session_token = new_session_token()
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id, LoginSession.id != (current_sid or "")))
    session.commit()
    user.login_session_id = current_sid
    return user


def delete_user(session: Session, user: User, *, uploads_dir: str | Path | None = None) -> None:
    """Delete the account with every prediction, modality result, transcript and token (committed).

    With ``uploads_dir``, the raw uploads kept for the account (``<uploads_dir>/<id>/``) go too.
    """
    user_id = user.id
    prediction_ids = select(Prediction.id).where(Prediction.user_id == user.id)
    session.execute(delete(ModalityResult).where(ModalityResult.prediction_id.in_(prediction_ids)))
    session.execute(delete(Transcript).where(Transcript.prediction_id.in_(prediction_ids)))
    session.execute(delete(Prediction).where(Prediction.user_id == user.id))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    session.execute(delete(User).where(User.id == user.id))
    session.commit()
    session.expunge_all()
    if uploads_dir is not None:
        shutil.rmtree(Path(uploads_dir) / str(user_id), ignore_errors=True)


def user_to_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.display_name,
        "created_at": isoformat(user.created_at),
        "consent_given": user.consent_given_at is not None,
        "consent_given_at": isoformat(user.consent_given_at),
    }


def isoformat(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (our datetimes are naive UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


# -- API tokens --------------------------------------------------------------------------
def create_token(session: Session, user: User, name: Any = None) -> tuple[ApiToken, str]:
    """A new token for ``user``: (row, value). The value is shown once and never stored."""
    if name is None or (isinstance(name, str) and not name.strip()):
        name = "API token"
    if not isinstance(name, str) or len(name.strip()) > MAX_TOKEN_NAME_LENGTH:
        raise InvalidInput(f"The token name must be text of at most {MAX_TOKEN_NAME_LENGTH} characters.")
    active = session.scalars(
        select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    if len(active) >= MAX_TOKENS_PER_USER:
        raise InvalidInput(f"You have {MAX_TOKENS_PER_USER} active tokens; revoke one first.", code="too_many_tokens")
    value, digest, prefix = new_api_token()
    token = ApiToken(user_id=user.id, name=name.strip(), token_hash=digest, prefix=prefix, created_at=utcnow())
    session.add(token)
    session.commit()
    return token, value


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())).all())


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens; another user's id is simply not found."""
    tid = database_id(token_id)
    token = session.scalar(select(ApiToken).where(ApiToken.id == tid, ApiToken.user_id == user.id)) if tid else None
    if token is None:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.commit()
    return token


def user_for_token(session: Session, value: str) -> User | None:
    """The owner of an active token (and note its use), or None.

    One query finds the token and its owner together; ``last_used_at`` is written at most
    once a minute with a plain UPDATE (writing on every request would serialise API calls).
    """
    row = session.execute(
        select(User, ApiToken.id, ApiToken.last_used_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(value), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    user, token_id, last_used_at = row
    now = utcnow()
    if last_used_at is None or (now - last_used_at).total_seconds() > 60:
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
        session.commit()
    return user


def token_to_dict(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": isoformat(token.created_at),
        "last_used_at": isoformat(token.last_used_at),
        "revoked_at": isoformat(token.revoked_at),
        "active": token.revoked_at is None,
    }
