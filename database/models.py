"""SQLAlchemy 2.0 typed models: users, API tokens, predictions and one row per modality.

Portable between SQLite and MySQL/MariaDB: explicit string lengths, utf8mb4 tables so emoji
in texts survive, JSON stored as text (both backends accept it and Alembic compares it
cleanly), microsecond timestamps on MySQL so "newest first" is stable. Times are naive UTC.
The indices serve the hot paths for a user with 100k predictions: history pages and date
filters (user_id, created_at), emotion filters and statistics (user_id, emotion, created_at),
and the per-prediction modality rows (prediction_id, modality).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from inference.labels import EMOTIONS, KIND_MODALITIES

#: Table options every table gets on MySQL/MariaDB (ignored by SQLite).
MYSQL_TABLE_ARGS: dict[str, str] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}

#: Column names of the seven probabilities, in EMOTIONS order.
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{emotion}" for emotion in EMOTIONS)

#: The stored prediction kinds: those of the vocabulary in inference/labels.py.
KINDS: tuple[str, ...] = tuple(KIND_MODALITIES)

STATUS_USED = "used"
STATUS_DROPPED = "dropped"


def new_session_token() -> str:
    """A fresh random value that ties login sessions to one account and one password."""
    return secrets.token_urlsafe(24)


def utcnow() -> dt.datetime:
    """Naive UTC now: DATETIME columns on MySQL carry no zone, so we store UTC everywhere."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


#: Microsecond precision on MySQL (default DATETIME drops fractions, making ordering ambiguous).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class JSONText(TypeDecorator[Any]):
    """JSON serialised into a TEXT column (MEDIUMTEXT on MySQL): portable and compact."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.MEDIUMTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return json.loads(value)


__all__ = [
    "ApiToken",
    "Base",
    "Job",
    "JobItem",
    "LoginSession",
    "ModalityResult",
    "Prediction",
    "Transcript",
    "User",
    "UserDailyTally",
    "VideoTimeline",
]

#: Longest Idempotency-Key a client may send (UUIDs and ULIDs fit with room to spare).
IDEMPOTENCY_KEY_LENGTH = 64


class Base(DeclarativeBase):
    """Declarative base shared by every model and by Alembic's autogenerate."""

    # Named unique constraints, identical to the migrations, so autogenerate sees no difference.
    metadata = MetaData(naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"})


class ProbabilityColumns:
    """The seven probability columns (one float per emotion, EMOTIONS order)."""

    p_angry: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    p_disgust: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    p_fear: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    p_happy: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    p_neutral: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    p_sad: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    p_surprise: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)

    @property
    def probabilities(self) -> dict[str, float]:
        return {emotion: float(getattr(self, f"p_{emotion}") or 0.0) for emotion in EMOTIONS}

    def set_probabilities(self, probabilities: dict[str, float] | None) -> None:
        probabilities = probabilities or {}
        for emotion in EMOTIONS:
            setattr(self, f"p_{emotion}", float(probabilities.get(emotion, 0.0)))


class User(Base):
    """An account. ``consent_given_at`` records consent to face/voice processing (None = not given)."""

    __tablename__ = "users"
    # AUTOINCREMENT on SQLite: a deleted account's id is never issued again.
    __table_args__ = ({**MYSQL_TABLE_ARGS, "sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    display_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    consent_given_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failed_login_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    #: Part of every login session's id; a new value (password change) ends the other sessions.
    session_token: Mapped[str] = mapped_column(String(64), nullable=False, default=new_session_token, server_default="")

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    # Flask-Login protocol (kept here so the model needs no Flask import).
    is_active = True
    is_anonymous = False

    @property
    def is_authenticated(self) -> bool:
        return True

    #: The login session (``LoginSession.id``) this request runs under; set at login and by the loader.
    login_session_id = None  # not a column

    def get_id(self) -> str:
        """What Flask-Login keeps in the session and remember cookie.

        "<id>:<session token>:<login session id>": the login session row must still exist
        (logout deletes it), and the token must match (a password change rotates it).
        """
        return f"{self.id}:{self.session_token}:{self.login_session_id or ''}"

    @property
    def has_consent(self) -> bool:
        return self.consent_given_at is not None


def new_login_session_id() -> str:
    """A random, unguessable id for one login (kept in the session and the remember cookie)."""
    return secrets.token_urlsafe(32)


class LoginSession(Base):
    """One login (browser session or remember cookie); deleting the row ends it server-side."""

    __tablename__ = "login_sessions"
    __table_args__ = (
        Index("ix_login_sessions_user_id", "user_id"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_login_session_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)


class ApiToken(Base):
    """A personal API token; only its SHA-256 digest is stored, the prefix is for display."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_user_id", "user_id"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")


class Prediction(ProbabilityColumns, Base):
    """One analysis request's final answer (single modality or fused)."""

    __tablename__ = "predictions"
    __table_args__ = (
        # Newest-first pages read (user_id, created_at, id) in index order, no sort, no row scan.
        Index("ix_predictions_user_created_id", "user_id", "created_at", "id"),
        Index("ix_predictions_user_emotion_created", "user_id", "emotion", "created_at"),
        Index("ix_predictions_user_kind_created", "user_id", "kind", "created_at"),
        # A retried POST with the same Idempotency-Key finds the prediction its first try stored.
        Index("uq_predictions_user_idempotency_key", "user_id", "idempotency_key", unique=True),
        {**MYSQL_TABLE_ARGS, "sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    emotion: Mapped[str] = mapped_column(String(16), nullable=False)
    confidence: Mapped[float] = mapped_column(Double, nullable=False)
    fusion_strategy: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fusion_weights: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    fusion_explanation: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    input_summary: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(IDEMPOTENCY_KEY_LENGTH), nullable=True)

    modality_results: Mapped[list[ModalityResult]] = relationship(
        back_populates="prediction",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ModalityResult.id",
    )
    #: Only for kind "video": the per-step timeline (read on demand, never in history lists).
    video_timeline: Mapped[VideoTimeline | None] = relationship(
        back_populates="prediction", cascade="all, delete-orphan", passive_deletes=True, uselist=False, lazy="select"
    )
    #: What was said in the recording, when the user asked for a transcript (personal data, like a typed text).
    transcript: Mapped[Transcript | None] = relationship(
        back_populates="prediction", cascade="all, delete-orphan", passive_deletes=True, uselist=False
    )


class ModalityResult(ProbabilityColumns, Base):
    """One modality's part in a prediction: used (with its answer) or dropped (with the reason)."""

    __tablename__ = "modality_results"
    __table_args__ = (
        Index("ix_modality_results_prediction_modality", "prediction_id", "modality"),
        Index("ix_modality_results_modality_status_prediction", "modality", "status", "prediction_id"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"), nullable=False)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    emotion: Mapped[str | None] = mapped_column(String(16), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Double, nullable=True)
    model_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Double, nullable=True)
    details: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    input_summary: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)

    prediction: Mapped[Prediction] = relationship(back_populates="modality_results")


class VideoTimeline(Base):
    """A video prediction's timeline: per step face/voice/fused probabilities and the counts."""

    __tablename__ = "video_timelines"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    steps: Mapped[Any] = mapped_column(JSONText, nullable=False)
    summary: Mapped[Any | None] = mapped_column(JSONText, nullable=True)

    prediction: Mapped[Prediction] = relationship(back_populates="video_timeline")


JOB_STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")
JOB_FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class Job(Base):
    """A batch of files (ZIP) or texts (CSV) analysed in the background by the task queue."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_user_created", "user_id", "created_at"),
        Index("ix_jobs_status", "status"),
        {**MYSQL_TABLE_ARGS, "sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    source: Mapped[str] = mapped_column(String(8), nullable=False)  # zip or csv
    file_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The upload inside JOBS_DIR until the job ends (relative path; None once deleted).
    upload_path: Mapped[str | None] = mapped_column(String(300), nullable=True)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    #: Seconds the finished items took in total (for the ETA of the rest).
    busy_seconds: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    #: Transcribe the recordings and clips (``transcribe=true``): the words join each result.
    transcribe: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())

    items: Mapped[list[JobItem]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True, order_by="JobItem.position"
    )


class JobItem(Base):
    """One finished item of a job: its prediction, or the reason it failed. Written as soon as it is done."""

    __tablename__ = "job_items"
    __table_args__ = (
        Index("uq_job_items_job_position", "job_id", "position", unique=True),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="SET NULL"), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    seconds: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)

    job: Mapped[Job] = relationship(back_populates="items")


class Transcript(Base):
    """The words of a prediction's recording (Whisper): stored, shown, exported and deleted with it."""

    __tablename__ = "transcripts"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    language: Mapped[str] = mapped_column(String(16), nullable=False)
    language_probability: Mapped[float | None] = mapped_column(Double, nullable=True)
    duration_seconds: Mapped[float | None] = mapped_column(Double, nullable=True)
    segments: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    #: Whether the words were the text modality (False: explicit text won, other language, no words).
    used_as_text: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    model_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)

    prediction: Mapped[Prediction] = relationship(back_populates="transcript")


class UserDailyTally(Base):
    """Per user, UTC day, kind and emotion: how many predictions, their confidence sum and how
    many used each modality. Kept in step with ``predictions`` on every insert and delete, so
    statistics and history totals cost O(days), not O(rows)."""

    __tablename__ = "user_daily_tallies"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    emotion: Mapped[str] = mapped_column(String(16), primary_key=True)
    predictions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    confidence_sum: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    face_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    speech_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    text_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
