"""Stored predictions as JSON: bounded, NaN-free details and the API's row shape."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from database.models import (
    STATUS_USED,
    ModalityResult,
    Prediction,
    Transcript,
)
from inference.labels import EMOTIONS
from services.accounts import isoformat

MAX_SERIES_POINTS = 200


MAX_LIST_ITEMS = 50

PROBABILITY_FIELDS = tuple(f"p_{emotion}" for emotion in EMOTIONS)
#: Column names, in the order the ``*_values_to_dict`` builders take them.
PREDICTION_FIELDS = (
    "id",
    "created_at",
    "kind",
    "emotion",
    "confidence",
    "fusion_strategy",
    "fusion_weights",
    "fusion_explanation",
    *PROBABILITY_FIELDS,
)
MODALITY_FIELDS = (
    "modality",
    "status",
    "emotion",
    "confidence",
    "model_name",
    "model_version",
    "latency_ms",
    "details",
    "input_summary",
    "error_code",
    "error_message",
    *PROBABILITY_FIELDS,
)
TRANSCRIPT_FIELDS = (
    "text",
    "language",
    "language_probability",
    "duration_seconds",
    "segments",
    "used_as_text",
    "model_name",
    "model_version",
)


def to_jsonable(value: Any, depth: int = 0) -> Any:
    """Plain JSON types only: NumPy scalars/arrays converted, NaN/inf -> None, depth bounded."""
    if depth > 8:
        return None
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v, depth + 1) for v in value]
    tolist = getattr(value, "tolist", None)  # NumPy arrays and scalars
    if callable(tolist):
        return to_jsonable(tolist(), depth + 1)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def downsample_series(points: list[Any], limit: int = MAX_SERIES_POINTS) -> list[Any]:
    """At most ``limit`` points. Series of {time, weight} dicts are averaged per bin (keeping
    the shape of an attention curve); other lists keep evenly spaced items."""
    n = len(points)
    if n <= limit:
        return points
    edges = [round(i * n / limit) for i in range(limit + 1)]
    averaged = all(
        isinstance(p, Mapping) and isinstance(p.get("weight"), int | float) and isinstance(p.get("time"), int | float)
        for p in points
    )
    out: list[Any] = []
    for start, stop in itertools.pairwise(edges):
        chunk = points[start:stop] or [points[min(start, n - 1)]]
        if averaged:
            extra = {k: v for k, v in chunk[0].items() if k not in {"time", "weight"}}
            out.append(
                {
                    **extra,
                    "time": sum(float(p["time"]) for p in chunk) / len(chunk),
                    "weight": sum(float(p["weight"]) for p in chunk) / len(chunk),
                }
            )
        else:
            out.append(chunk[0])
    return out


def bound_details(details: Any) -> dict[str, Any]:
    """Details safe to store: JSON types, long series downsampled to ≤ 200 points."""
    clean = to_jsonable(details or {})
    if not isinstance(clean, dict):
        return {"value": clean}

    def shrink(value: Any, depth: int = 0) -> Any:
        if isinstance(value, list):
            if len(value) > MAX_SERIES_POINTS:
                value = downsample_series(value)
            return [shrink(v, depth + 1) for v in value]
        if isinstance(value, dict) and depth < 4:
            return {k: shrink(v, depth + 1) for k, v in value.items()}
        return value

    return shrink(clean)


def transcript_to_dict(row: Transcript | None) -> dict[str, Any] | None:
    """The stored transcript as the API shows it (None when the recording was not transcribed)."""
    if row is None:
        return None
    return transcript_values_to_dict([getattr(row, name) for name in TRANSCRIPT_FIELDS])


def transcript_values_to_dict(values: Sequence[Any]) -> dict[str, Any]:
    """A transcript from its column values (TRANSCRIPT_FIELDS order): ORM rows and Core rows alike."""
    text, language, language_probability, duration_seconds, segments, used_as_text, model_name, model_version = values
    return {
        "text": text,
        "language": language,
        "language_probability": language_probability,
        "duration_seconds": duration_seconds,
        "segments": segments or [],
        "used_as_text": bool(used_as_text),
        "model_name": model_name,
        "model_version": model_version,
    }


def probabilities_to_dict(values: Sequence[Any]) -> dict[str, float]:
    """The seven ``p_<emotion>`` column values (EMOTIONS order) as the API's probabilities."""
    return {emotion: float(value or 0.0) for emotion, value in zip(EMOTIONS, values, strict=True)}


def modality_to_dict(row: ModalityResult) -> dict[str, Any]:
    return modality_values_to_dict([getattr(row, name) for name in MODALITY_FIELDS])


def modality_values_to_dict(values: Sequence[Any]) -> dict[str, Any]:
    """One modality's part from its column values (MODALITY_FIELDS order: ORM rows and Core rows alike)."""
    (
        modality,
        status,
        emotion,
        confidence,
        model_name,
        model_version,
        latency_ms,
        details,
        input_summary,
        error_code,
        error_message,
        *probabilities,
    ) = values
    used = status == STATUS_USED
    return {
        "modality": modality,
        "status": status,
        "emotion": emotion,
        "confidence": confidence,
        "probabilities": probabilities_to_dict(probabilities) if used else None,
        "model_name": model_name,
        "model_version": model_version,
        "latency_ms": latency_ms,
        "details": details or {},
        "input_summary": input_summary or {},
        "error": None if used else {"code": error_code, "message": error_message},
    }


def prediction_to_dict(prediction: Prediction) -> dict[str, Any]:
    return prediction_values_to_dict(
        [getattr(prediction, name) for name in PREDICTION_FIELDS],
        [modality_to_dict(row) for row in prediction.modality_results],
        transcript_to_dict(prediction.transcript),
    )


def prediction_values_to_dict(
    values: Sequence[Any], modalities: list[dict[str, Any]], transcript: dict[str, Any] | None
) -> dict[str, Any]:
    """A prediction from its column values (PREDICTION_FIELDS order), its modality parts and transcript.

    The history page builds these straight from Core rows (no ORM objects); single reads pass
    their ORM row's attributes, so both answer the same document.
    """
    pid, created_at, kind, emotion, confidence, strategy, weights, explanation, *probabilities = values
    fusion = None
    if strategy:
        fusion = {"strategy": strategy, "weights": weights or {}, "explanation": explanation or {}}
    return {
        "id": pid,
        "created_at": isoformat(created_at),
        "kind": kind,
        "emotion": emotion,
        "confidence": confidence,
        "probabilities": probabilities_to_dict(probabilities),
        "fusion": fusion,
        "modalities": modalities,
        "transcript": transcript,
    }
