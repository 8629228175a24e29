"""Stored predictions as JSON: bounded, NaN-free details and the API's row shape."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping
from typing import Any

from database.models import (
    STATUS_USED,
    ModalityResult,
    Prediction,
    Transcript,
)
from services.accounts import isoformat

MAX_SERIES_POINTS = 200


MAX_LIST_ITEMS = 50


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
    return {
        "text": row.text,
        "language": row.language,
        "language_probability": row.language_probability,
        "duration_seconds": row.duration_seconds,
        "segments": row.segments or [],
        "used_as_text": bool(row.used_as_text),
        "model_name": row.model_name,
        "model_version": row.model_version,
    }


def modality_to_dict(row: ModalityResult) -> dict[str, Any]:
    used = row.status == STATUS_USED
    return {
        "modality": row.modality,
        "status": row.status,
        "emotion": row.emotion,
        "confidence": row.confidence,
        "probabilities": row.probabilities if used else None,
        "model_name": row.model_name,
        "model_version": row.model_version,
        "latency_ms": row.latency_ms,
        "details": row.details or {},
        "input_summary": row.input_summary or {},
        "error": None if used else {"code": row.error_code, "message": row.error_message},
    }


def prediction_to_dict(prediction: Prediction) -> dict[str, Any]:
    fusion = None
    if prediction.fusion_strategy:
        fusion = {
            "strategy": prediction.fusion_strategy,
            "weights": prediction.fusion_weights or {},
            "explanation": prediction.fusion_explanation or {},
        }
    return {
        "id": prediction.id,
        "created_at": isoformat(prediction.created_at),
        "kind": prediction.kind,
        "emotion": prediction.emotion,
        "confidence": prediction.confidence,
        "probabilities": prediction.probabilities,
        "fusion": fusion,
        "modalities": [modality_to_dict(row) for row in prediction.modality_results],
        "transcript": transcript_to_dict(prediction.transcript),
    }
