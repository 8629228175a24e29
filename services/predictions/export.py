"""Streaming CSV export in chunks, with spreadsheet-formula neutralising."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from database.models import (
    PROBABILITY_COLUMNS,
    STATUS_USED,
    ModalityResult,
    Prediction,
    Transcript,
)
from inference.labels import EMOTIONS, MODALITIES
from services.accounts import isoformat
from services.predictions.filters import HistoryFilters, sql_conditions

EXPORT_CHUNK = 1000


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(value: Any) -> Any:
    """Neutralise user text a spreadsheet would run as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


MODALITY_CSV_FIELDS = ("status", "emotion", "confidence", "model_name", "model_version", "latency_ms", "error")


INPUT_CSV_FIELDS = ("file_name", "media_type", "size_bytes", "duration_seconds", "text")


#: The recording's words (last columns, so older spreadsheets keep their column letters).
TRANSCRIPT_CSV_FIELDS = ("text", "language", "used_as_text")


def export_header() -> list[str]:
    header = ["id", "created_at", "kind", "emotion", "confidence"]
    header += [f"p_{e}" for e in EMOTIONS]
    header += ["fusion_strategy", "fusion_weights"]
    for modality in MODALITIES:
        header += [f"{modality}_{field}" for field in MODALITY_CSV_FIELDS]
        header += [f"{modality}_p_{e}" for e in EMOTIONS]
        header += [f"{modality}_input_{field}" for field in INPUT_CSV_FIELDS]
    header += [f"transcript_{field}" for field in TRANSCRIPT_CSV_FIELDS]
    return header


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


_PREDICTION_EXPORT_COLUMNS = (
    Prediction.id,
    Prediction.created_at,
    Prediction.kind,
    Prediction.emotion,
    Prediction.confidence,
    *(getattr(Prediction, c) for c in PROBABILITY_COLUMNS),
    Prediction.fusion_strategy,
    Prediction.fusion_weights,
    Prediction.input_summary,
)


_RESULT_EXPORT_COLUMNS = (
    ModalityResult.prediction_id,
    ModalityResult.modality,
    ModalityResult.status,
    ModalityResult.emotion,
    ModalityResult.confidence,
    ModalityResult.model_name,
    ModalityResult.model_version,
    ModalityResult.latency_ms,
    ModalityResult.error_code,
    ModalityResult.error_message,
    ModalityResult.input_summary,
    *(getattr(ModalityResult, c) for c in PROBABILITY_COLUMNS),
)


def export_row(prediction: Any, rows: list[Any], transcript: Any = None) -> list[Any]:
    """One CSV row from a prediction, its modality results and its transcript (ORM objects or column rows)."""
    row: list[Any] = [
        prediction.id,
        isoformat(prediction.created_at),
        prediction.kind,
        prediction.emotion,
        _fmt(prediction.confidence),
    ]
    row += [_fmt(getattr(prediction, c)) for c in PROBABILITY_COLUMNS]
    weights = prediction.fusion_weights
    row += [prediction.fusion_strategy or "", json.dumps(weights, sort_keys=True) if weights else ""]
    by_modality = {r.modality: r for r in rows}
    summaries = prediction.input_summary if isinstance(prediction.input_summary, dict) else {}
    for modality in MODALITIES:
        result = by_modality.get(modality)
        if result is None:
            row += [""] * (len(MODALITY_CSV_FIELDS) + len(EMOTIONS))
        else:
            used = result.status == STATUS_USED
            error = f"{result.error_code}: {result.error_message}" if result.error_code else ""
            row += [
                result.status,
                result.emotion or "",
                _fmt(result.confidence),
                result.model_name or "",
                result.model_version or "",
                _fmt(result.latency_ms),
                error,
            ]
            row += [_fmt(getattr(result, c)) if used else "" for c in PROBABILITY_COLUMNS]
        summary = (result.input_summary if result is not None else None) or summaries.get(modality)
        if not isinstance(summary, dict):
            summary = {}
        row += [_fmt(summary.get(field)) for field in INPUT_CSV_FIELDS]
    if transcript is None:
        row += [""] * len(TRANSCRIPT_CSV_FIELDS)
    else:
        row += [transcript.text or "", transcript.language or "", "yes" if transcript.used_as_text else "no"]
    return [spreadsheet_safe(v) for v in row]


def export_csv(session: Session, user_id: int, filters: HistoryFilters | None = None) -> Iterator[str]:
    """The user's history (all of it, or what ``filters`` from :func:`parse_filters` keep) as CSV
    text chunks, oldest first, streamed in batches.

    Reads plain column rows (no ORM objects) in keyset-paginated chunks, so memory stays flat
    and 100k predictions export in seconds. Starts with a UTF-8 byte-order mark so
    spreadsheet programs read accents and emoji.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(export_header())
    yield buffer.getvalue()
    conditions = sql_conditions(user_id, filters or HistoryFilters())
    last_id = 0
    while True:
        predictions = session.execute(
            select(*_PREDICTION_EXPORT_COLUMNS)
            .where(*conditions, Prediction.id > last_id)
            .order_by(Prediction.id)
            .limit(EXPORT_CHUNK)
        ).all()
        if not predictions:
            break
        ids = [p.id for p in predictions]
        results: dict[int, list[Any]] = {}
        for result in session.execute(select(*_RESULT_EXPORT_COLUMNS).where(ModalityResult.prediction_id.in_(ids))):
            results.setdefault(result.prediction_id, []).append(result)
        transcripts = {
            t.prediction_id: t
            for t in session.execute(
                select(Transcript.prediction_id, Transcript.text, Transcript.language, Transcript.used_as_text).where(
                    Transcript.prediction_id.in_(ids)
                )
            )
        }
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        for prediction in predictions:
            writer.writerow(export_row(prediction, results.get(prediction.id, []), transcripts.get(prediction.id)))
        yield buffer.getvalue()
        last_id = ids[-1]
