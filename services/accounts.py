"""Accounts: registration, authentication with per-account throttling, consent, API tokens.

The JSON API and the HTML pages both call these functions, so the password policy and the
per-account lock-out are the same everywhere. Every failure is an ``EmotionAppError``
subclass with an HTTP status and a stable code.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from database.models import ApiToken, ModalityResult, Prediction, Transcript, User, new_session_token, utcnow
from inference.errors import EmotionAppError, InvalidInput
from security import check_password, hash_password, hash_token, new_api_token, password_problems

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
    """The user for these credentials, counting failures per account.

    After ``LOGIN_MAX_FAILURES`` failures the account is locked for ``LOGIN_LOCK_SECONDS``
    (``AccountLocked``, 429) even for the right password, which stops password guessing from
    many addresses. Unknown emails and wrong passwords get the same message.
    """
    from security import burn_password_check

    now = now or utcnow()
    wrong = InvalidCredentials("The email address or password is incorrect.")
    if not isinstance(email, str) or not isinstance(password, str) or not email.strip() or not password:
        raise InvalidInput("Email and password are required.", code="missing_credentials")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        burn_password_check(password)
        raise wrong
    _refuse_if_locked(user, now)
    if not check_password(password, user.password_hash):
        _count_failure(session, user, now)
        raise wrong
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.commit()
    return user


def _refuse_if_locked(user: User, now: dt.datetime) -> None:
    if user.locked_until is not None and user.locked_until > now:
        raise AccountLocked(int((user.locked_until - now).total_seconds()))


def _count_failure(session: Session, user: User, now: dt.datetime) -> None:
    """Count a wrong password (committed); :class:`AccountLocked` when it reaches the limit."""
    from flask import current_app

    max_failures = int(current_app.config.get("LOGIN_MAX_FAILURES", 5))
    lock_seconds = int(current_app.config.get("LOGIN_LOCK_SECONDS", 900))
    window_start = now - dt.timedelta(seconds=lock_seconds)
    if user.last_failed_login_at is None or user.last_failed_login_at < window_start:
        user.failed_logins = 0
    user.failed_logins += 1
    user.last_failed_login_at = now
    locked = user.failed_logins >= max_failures
    if locked:
        user.locked_until = now + dt.timedelta(seconds=lock_seconds)
        user.failed_logins = 0
    session.commit()
    if locked:
        raise AccountLocked(lock_seconds)


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
    """The user a login session names (``User.get_id()``: "<id>:<session token>"), or None.

    The token must match the user's current one, so a session outlives neither a password
    change nor the account (a new account that gets the same id has another token).
    """
    if not isinstance(session_id, str) or ":" not in session_id:
        return None
    user_id, token = session_id.split(":", 1)
    user = get_user(session, user_id)
    if user is None or not token or not user.session_token:
        return None
    return user if hmac.compare_digest(token.encode(), user.session_token.encode()) else None


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

    Wrong current passwords count towards the same lock-out as failed logins, so this
    endpoint cannot be used to guess the password of a session left open.
    """
    now = now or utcnow()
    _refuse_if_locked(user, now)
    if not isinstance(current_password, str) or not check_password(current_password, user.password_hash):
        _count_failure(session, user, now)
        raise InvalidCredentials("The current password is incorrect.")
    check_password_policy(new_password, user.email)
    user.password_hash = hash_password(new_password)
    user.failed_logins = 0
    user.session_token = new_session_token()
    session.commit()
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
