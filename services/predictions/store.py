"""Saving a predictor result (prediction, modality rows, transcript, daily tally) and reading or deleting one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from database.models import (
    KINDS,
    STATUS_DROPPED,
    STATUS_USED,
    ModalityResult,
    Prediction,
    Transcript,
    UserDailyTally,
    utcnow,
)
from inference.labels import MODALITIES
from inference.results import AnalysisResult
from services.accounts import NotFound, database_id
from services.predictions.serialize import bound_details, to_jsonable


def store_prediction(
    session: Session,
    user_id: int,
    kind: str,
    result: AnalysisResult,
    input_summaries: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    created_at: dt.datetime | None = None,
    commit: bool = True,
    idempotency_key: str | None = None,
) -> Prediction:
    """Persist an analysis result as it is typed (its modalities' predictions, the dropped
    ones' reasons, the fusion), with its ``transcript`` when the recording was transcribed.

    Plain INSERTs (one for the prediction, one executemany for its modality rows, one upsert of
    the day's tally), no ORM unit of work: the returned :class:`Prediction` is a detached
    object carrying what was stored, for the response. A second prediction with the same
    ``idempotency_key`` for the user raises :class:`~sqlalchemy.exc.IntegrityError`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown prediction kind {kind!r}")
    input_summaries = input_summaries or {}
    fusion = result.fusion
    prediction = Prediction(
        user_id=user_id,
        created_at=created_at or utcnow(),
        kind=kind,
        emotion=result.emotion,
        confidence=result.confidence,
        fusion_strategy=fusion.strategy if fusion is not None else None,
        fusion_weights=to_jsonable(fusion.weights) if fusion is not None else None,
        fusion_explanation=bound_details(fusion.explanation) if fusion is not None else None,
        input_summary=to_jsonable(dict(input_summaries)),
        idempotency_key=idempotency_key,
    )
    prediction.set_probabilities(result.probabilities_dict())
    rows: list[ModalityResult] = []
    for modality in MODALITIES:
        summary = to_jsonable(input_summaries.get(modality)) if modality in input_summaries else None
        if modality in result.predictions:
            single = result.predictions[modality]
            row = ModalityResult(
                modality=modality,
                status=STATUS_USED,
                emotion=single.label,
                confidence=single.confidence,
                model_name=single.model_name[:100] or None,
                model_version=single.model_version[:50] or None,
                latency_ms=round(single.latency_ms, 2),
                details=bound_details(single.details),
                input_summary=summary,
            )
            row.set_probabilities(single.probabilities_dict())
        elif modality in result.dropped:
            reason = result.dropped[modality]
            row = ModalityResult(
                modality=modality,
                status=STATUS_DROPPED,
                input_summary=summary,
                error_code=str(reason.get("code") or "error")[:64],
                error_message=str(reason.get("message") or "")[:500],
            )
            row.set_probabilities(None)
        else:
            continue
        rows.append(row)
    values = {column: getattr(prediction, column) for column in _PREDICTION_COLUMNS}
    prediction.id = session.execute(insert(Prediction).values(values)).inserted_primary_key[0]
    for row in rows:
        row.prediction_id = prediction.id
    if rows:
        session.execute(
            insert(ModalityResult), [{column: getattr(row, column) for column in _RESULT_COLUMNS} for row in rows]
        )
    used = {row.modality for row in rows if row.status == STATUS_USED}
    _add_to_tally(session, prediction, used, +1)
    transcript = transcript_row(result.transcript) if result.transcript else None
    if transcript is not None:
        transcript.prediction_id = prediction.id
        session.execute(insert(Transcript).values({c: getattr(transcript, c) for c in _TRANSCRIPT_COLUMNS}))
    if commit:
        session.commit()
    set_committed_value(prediction, "modality_results", rows)
    set_committed_value(prediction, "transcript", transcript)
    return prediction


def transcript_row(transcript: Mapping[str, Any]) -> Transcript:
    """A :class:`Transcript` row from the answer's ``transcript`` dict."""
    return Transcript(
        text=str(transcript.get("text") or ""),
        language=str(transcript.get("language") or "")[:16],
        language_probability=to_jsonable(transcript.get("language_probability")),
        duration_seconds=to_jsonable(transcript.get("duration_seconds")),
        segments=bound_details({"segments": transcript.get("segments") or []})["segments"],
        used_as_text=bool(transcript.get("used_as_text")),
        model_name=str(transcript.get("model_name") or "")[:100] or None,
        model_version=str(transcript.get("model_version") or "")[:100] or None,
    )


_PREDICTION_COLUMNS = tuple(c.key for c in Prediction.__table__.columns if c.key != "id")


_RESULT_COLUMNS = tuple(c.key for c in ModalityResult.__table__.columns if c.key != "id")


_TRANSCRIPT_COLUMNS = tuple(c.key for c in Transcript.__table__.columns if c.key != "id")


def _add_to_tally(session: Session, prediction: Any, used: set[str], sign: int) -> None:
    """Count ``prediction`` into (sign=+1) or out of (sign=-1) its user's tally for its UTC day."""
    values = {
        "user_id": prediction.user_id,
        "day": prediction.created_at.date(),
        "kind": prediction.kind,
        "emotion": prediction.emotion,
        "predictions": sign,
        "confidence_sum": sign * float(prediction.confidence),
        **{f"{m}_used": sign * int(m in used) for m in MODALITIES},
    }
    if sign < 0:  # the row exists: the prediction was counted when it was stored
        table = UserDailyTally.__table__
        key = [table.c[name] == values[name] for name in ("user_id", "day", "kind", "emotion")]
        session.execute(
            update(UserDailyTally).where(*key).values({name: table.c[name] + values[name] for name in _TALLY_COUNTERS})
        )
        session.execute(delete(UserDailyTally).where(*key, table.c.predictions <= 0))
        return
    dialect = session.get_bind().dialect.name
    if dialect in {"mysql", "mariadb"}:
        statement = mysql_insert(UserDailyTally).values(values)
        statement = statement.on_duplicate_key_update(
            {name: UserDailyTally.__table__.c[name] + statement.inserted[name] for name in _TALLY_COUNTERS}
        )
    else:
        statement = sqlite_insert(UserDailyTally).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["user_id", "day", "kind", "emotion"],
            set_={name: UserDailyTally.__table__.c[name] + statement.excluded[name] for name in _TALLY_COUNTERS},
        )
    session.execute(statement)


_TALLY_COUNTERS = ("predictions", "confidence_sum", *(f"{m}_used" for m in MODALITIES))


def find_by_idempotency_key(session: Session, user_id: int, key: str) -> Prediction | None:
    """The user's prediction stored under ``key`` (with its modality rows), or None."""
    return session.scalar(
        select(Prediction)
        .where(Prediction.user_id == user_id, Prediction.idempotency_key == key)
        .options(selectinload(Prediction.modality_results))
    )


def get_prediction(session: Session, user_id: int, prediction_id: Any) -> Prediction:
    """The user's own prediction; anybody else's id (or a bad id) is :class:`NotFound`."""
    pid = database_id(prediction_id)
    if pid is None:
        raise NotFound("No such prediction.")
    prediction = session.scalar(
        select(Prediction)
        .where(Prediction.id == pid, Prediction.user_id == user_id)
        .options(selectinload(Prediction.modality_results), selectinload(Prediction.transcript))
    )
    if prediction is None:
        raise NotFound("No such prediction.")
    return prediction


def delete_prediction(
    session: Session, user_id: int, prediction_id: Any, *, uploads_dir: str | Path | None = None
) -> None:
    """Delete one of the user's predictions, and its kept uploads when ``uploads_dir`` is given."""
    prediction = get_prediction(session, user_id, prediction_id)
    kept = kept_files(prediction.input_summary, user_id, uploads_dir)
    used = {row.modality for row in prediction.modality_results if row.status == STATUS_USED}
    session.execute(delete(ModalityResult).where(ModalityResult.prediction_id == prediction.id))
    session.execute(delete(Transcript).where(Transcript.prediction_id == prediction.id))
    if session.execute(delete(Prediction).where(Prediction.id == prediction.id)).rowcount:
        _add_to_tally(session, prediction, used, -1)  # only the request that deleted the row counts it out
    session.commit()
    for path in kept:
        path.unlink(missing_ok=True)


def kept_files(input_summary: Any, user_id: int, uploads_dir: str | Path | None) -> list[Path]:
    """The raw uploads kept for a prediction (``kept_file`` in its summaries), inside the user's folder."""
    if uploads_dir is None or not isinstance(input_summary, dict):
        return []
    folder = (Path(uploads_dir) / str(user_id)).resolve()
    paths = []
    for summary in input_summary.values():
        name = summary.get("kept_file") if isinstance(summary, dict) else None
        if not isinstance(name, str) or not name:
            continue
        path = (Path(uploads_dir) / name).resolve()
        if path.parent == folder:  # never outside the owner's folder, whatever the row says
            paths.append(path)
    return paths
