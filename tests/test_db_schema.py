"""The schema: migrations from empty to head on both backends, model parity, emoji, cascades, indices."""

from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select

from database.migrate import downgrade, upgrade
from database.models import Base, ModalityResult, Prediction, User, utcnow
from database.session import Database, make_engine
from inference.base import Prediction as ModalityPrediction
from inference.fusion import FusionResult
from inference.labels import EMOTIONS
from inference.results import AnalysisResult
from services.predictions.store import store_prediction
from tests.conftest import drop_everything

TABLES = {"users", "api_tokens", "predictions", "modality_results"}


def test_migrations_build_the_schema_from_an_empty_database_and_match_the_models(database_url: str) -> None:
    drop_everything(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            assert not TABLES & set(inspect(connection).get_table_names())
        upgrade(database_url)
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) >= TABLES
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert context.get_current_revision() is not None
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrations_downgrade_to_empty_and_upgrade_again(database_url: str) -> None:
    downgrade(database_url, "base")
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            assert not TABLES & set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    upgrade(database_url)
    upgrade(database_url)  # idempotent at head


def test_the_indices_for_history_statistics_and_export_exist(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            prediction_indices = {tuple(i["column_names"]) for i in inspector.get_indexes("predictions")}
            result_indices = {tuple(i["column_names"]) for i in inspector.get_indexes("modality_results")}
    finally:
        engine.dispose()
    # newest-first pages in index order (ties by id), and retried POSTs found by their key
    assert ("user_id", "created_at", "id") in prediction_indices
    assert ("user_id", "idempotency_key") in prediction_indices
    assert ("user_id", "emotion", "created_at") in prediction_indices
    assert ("prediction_id", "modality") in result_indices
    assert ("modality", "status", "prediction_id") in result_indices


def _user(session: object, email: str = "ada@example.com") -> User:
    user = User(email=email, password_hash="x", display_name="Ada 👩‍🔬", created_at=utcnow(), failed_logins=0)
    session.add(user)  # type: ignore[attr-defined]
    session.commit()  # type: ignore[attr-defined]
    return user


def _result(text_emotion: str = "happy") -> AnalysisResult:
    probs = tuple(1.0 if emotion == text_emotion else 0.0 for emotion in EMOTIONS)
    text = ModalityPrediction(modality="text", probabilities=probs, model_name="m", model_version="1", latency_ms=1.0)
    fusion = FusionResult(
        strategy="calibrated",
        probabilities=probs,
        label=text_emotion,
        confidence=1.0,
        weights={"text": 1.0},
        explanation={"note": "ünïcödé"},
    )
    return AnalysisResult(
        emotion=text_emotion,
        confidence=1.0,
        probabilities=probs,
        predictions={"text": text},
        dropped={"face": {"code": "no_face_detected", "message": "No face 🙈"}},
        fusion=fusion,
    )


def test_emoji_and_accents_survive_a_round_trip(clean_database_url: str) -> None:
    database = Database(clean_database_url)
    text = "Ich bin so glücklich 😀🎉 — 你好"
    try:
        with database.session() as session:
            user = _user(session)
            stored = store_prediction(session, user.id, "multimodal", _result(), {"text": {"text": text}})
            prediction_id = stored.id
        with database.session() as session:
            prediction = session.get(Prediction, prediction_id)
            assert prediction.input_summary["text"]["text"] == text
            assert prediction.fusion_explanation == {"note": "ünïcödé"}
            assert session.scalar(select(User.display_name)) == "Ada 👩‍🔬"
            dropped = session.scalar(select(ModalityResult).where(ModalityResult.status == "dropped"))
            assert dropped.error_message == "No face 🙈"
    finally:
        database.dispose()


def test_deleting_a_user_in_the_database_cascades_to_predictions_and_results(clean_database_url: str) -> None:
    database = Database(clean_database_url)
    try:
        with database.session() as session:
            user = _user(session)
            store_prediction(session, user.id, "text", _result())
            session.execute(delete(User).where(User.id == user.id))
            session.commit()
            assert session.scalar(select(func.count()).select_from(Prediction)) == 0
            assert session.scalar(select(func.count()).select_from(ModalityResult)) == 0
    finally:
        database.dispose()


def test_timestamps_keep_microseconds_so_newest_first_is_stable(clean_database_url: str) -> None:
    database = Database(clean_database_url)
    moment = dt.datetime(2026, 3, 1, 12, 0, 0, 123456)
    try:
        with database.session() as session:
            user = _user(session)
            stored = store_prediction(session, user.id, "text", _result(), created_at=moment)
            session.expire_all()
            assert session.get(Prediction, stored.id).created_at == moment
    finally:
        database.dispose()


def test_email_addresses_are_unique(clean_database_url: str) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    database = Database(clean_database_url)
    try:
        with database.session() as session:
            _user(session)
            with pytest.raises(IntegrityError):
                _user(session)
    finally:
        database.dispose()


def test_upgrading_a_database_from_0001_keeps_every_row_and_gives_each_account_a_session_token(
    database_url: str,
) -> None:
    from sqlalchemy import text

    drop_everything(database_url)
    upgrade(database_url, "0001_initial")
    engine = make_engine(database_url)
    probabilities = ", ".join(f"p_{e}" for e in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"))
    try:
        with engine.begin() as connection:
            for number in (1, 2):
                connection.execute(
                    text(
                        "INSERT INTO users (id, email, password_hash, display_name, created_at, failed_logins) "
                        "VALUES (:id, :email, 'x', 'Ada', :now, 0)"
                    ),
                    {"id": number, "email": f"ada{number}@example.com", "now": utcnow()},
                )
            connection.execute(
                text(
                    f"INSERT INTO predictions (user_id, created_at, kind, emotion, confidence, {probabilities}) "
                    "VALUES (1, :now, 'text', 'happy', 1.0, 0, 0, 0, 1, 0, 0, 0)"
                ),
                {"now": utcnow()},
            )
        upgrade(database_url)
        with engine.connect() as connection:
            tokens = connection.execute(text("SELECT session_token FROM users ORDER BY id")).scalars().all()
            assert connection.execute(text("SELECT COUNT(*) FROM predictions")).scalar() == 1
    finally:
        engine.dispose()
    assert len(tokens) == 2 and all(len(token) >= 32 for token in tokens) and tokens[0] != tokens[1]


def test_ids_of_deleted_accounts_and_predictions_are_never_issued_again(clean_database_url: str) -> None:
    database = Database(clean_database_url)
    try:
        with database.session() as session:
            first = _user(session, "first@example.com")
            first_id = first.id
            first_prediction = store_prediction(session, first_id, "text", _result()).id
            session.execute(delete(User).where(User.id == first_id))
            session.commit()
            second = _user(session, "second@example.com")
            assert second.id > first_id
            assert store_prediction(session, second.id, "text", _result()).id > first_prediction
            assert second.session_token and second.session_token != ""
    finally:
        database.dispose()
