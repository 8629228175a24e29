"""Stored predictions: save a predictor result, query a user's history, statistics, CSV export.

Every query is scoped by ``user_id`` so one user can never read another's rows: a foreign
id is simply "not found". Queries use the (user_id, created_at) and (user_id, emotion,
created_at) indices; the export streams in chunks so 100k rows never sit in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import math
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.orm import Session, aliased, selectinload

from database.models import (
    KINDS,
    PROBABILITY_COLUMNS,
    STATUS_DROPPED,
    STATUS_USED,
    ModalityResult,
    Prediction,
    utcnow,
)
from inference.errors import InvalidInput
from inference.labels import EMOTIONS, MODALITIES
from services.accounts import NotFound, database_id, isoformat

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
MAX_SERIES_POINTS = 200
MAX_LIST_ITEMS = 50
EXPORT_CHUNK = 1000


# -- making results storable -------------------------------------------------------------
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


def _error_dict(error: Any) -> tuple[str | None, str | None]:
    if not error:
        return None, None
    if isinstance(error, Mapping):
        return str(error.get("code") or "error")[:64], str(error.get("message") or "")[:500]
    return "error", str(error)[:500]


def store_prediction(
    session: Session,
    user_id: int,
    kind: str,
    result: Mapping[str, Any],
    input_summaries: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    created_at: dt.datetime | None = None,
    commit: bool = True,
) -> Prediction:
    """Persist a predictor result (the shape of MultimodalEmotionPredictor's dicts)."""
    if kind not in KINDS:
        raise ValueError(f"unknown prediction kind {kind!r}")
    input_summaries = input_summaries or {}
    fusion = result.get("fusion") or None
    prediction = Prediction(
        user_id=user_id,
        created_at=created_at or utcnow(),
        kind=kind,
        emotion=str(result["emotion"]),
        confidence=float(result["confidence"]),
        fusion_strategy=str(fusion["strategy"]) if fusion and fusion.get("strategy") else None,
        fusion_weights=to_jsonable(fusion.get("weights")) if fusion else None,
        fusion_explanation=bound_details(fusion.get("explanation")) if fusion else None,
        input_summary=to_jsonable(dict(input_summaries)),
    )
    prediction.set_probabilities(result.get("probabilities"))
    individual = result.get("individual_results") or {}
    dropped = result.get("dropped") or {}
    for modality in MODALITIES:
        summary = to_jsonable(input_summaries.get(modality)) if modality in input_summaries else None
        if modality in individual:
            single = individual[modality]
            row = ModalityResult(
                modality=modality,
                status=STATUS_USED,
                emotion=single.get("emotion"),
                confidence=float(single["confidence"]) if single.get("confidence") is not None else None,
                model_name=str(single.get("model_name") or "")[:100] or None,
                model_version=str(single.get("model_version") or "")[:50] or None,
                latency_ms=float(single["latency_ms"]) if single.get("latency_ms") is not None else None,
                details=bound_details(single.get("details")),
                input_summary=summary,
            )
            row.set_probabilities(single.get("probabilities"))
        elif modality in dropped:
            code, message = _error_dict(dropped[modality])
            row = ModalityResult(
                modality=modality,
                status=STATUS_DROPPED,
                input_summary=summary,
                error_code=code,
                error_message=message,
            )
            row.set_probabilities(None)
        else:
            continue
        prediction.modality_results.append(row)
    session.add(prediction)
    if commit:
        session.commit()
    else:
        session.flush()
    return prediction


# -- reading -----------------------------------------------------------------------------
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
    }


def get_prediction(session: Session, user_id: int, prediction_id: Any) -> Prediction:
    """The user's own prediction; anybody else's id (or a bad id) is :class:`NotFound`."""
    pid = database_id(prediction_id)
    if pid is None:
        raise NotFound("No such prediction.")
    prediction = session.scalar(
        select(Prediction)
        .where(Prediction.id == pid, Prediction.user_id == user_id)
        .options(selectinload(Prediction.modality_results))
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
    session.execute(delete(ModalityResult).where(ModalityResult.prediction_id == prediction.id))
    session.execute(delete(Prediction).where(Prediction.id == prediction.id))
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


#: The dates a history filter may name.
FIRST_DATE = dt.date(1000, 1, 1)
LAST_DATE = dt.date(9998, 12, 31)
MAX_TZ_OFFSET_MINUTES = 14 * 60  # UTC-12 .. UTC+14, with room either side
TZ_OFFSET = re.compile(r"[+-]?[0-9]{1,4}")
TIME_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")


def _parse_date(value: Any, name: str) -> dt.date | None:
    """A YYYY-MM-DD date between FIRST_DATE and LAST_DATE (the spec's pattern), or None when absent.

    An empty value (``date_to=``) is refused like any other malformed one: the spec says "a date".
    """
    if value is None:
        return None
    try:
        date = dt.date.fromisoformat(str(value)) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)) else None
    except ValueError:
        date = None
    if date is None:
        raise InvalidInput(f"{name} must be a date like 2026-01-31.", code="invalid_filter")
    # MySQL/MariaDB DATETIME starts at year 1000, and date_to is searched up to the next day.
    if not FIRST_DATE <= date <= LAST_DATE:
        raise InvalidInput(
            f"{name} must lie between {FIRST_DATE.isoformat()} and {LAST_DATE.isoformat()}.", code="invalid_filter"
        )
    return date


def _choice(args: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    """One of ``allowed`` (any case), None when absent; an empty ``emotion=`` is refused as the spec says."""
    value = args.get(name)
    if value is None:
        return None
    choice = str(value).strip().lower()
    if choice not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}.", code="invalid_filter")
    return choice


def parse_filters(args: Mapping[str, Any]) -> dict[str, Any]:
    """Validated history filters from query arguments (400 on bad values, empty ones included)."""
    emotion = _choice(args, "emotion", EMOTIONS)
    modality = _choice(args, "modality", MODALITIES)
    kind = _choice(args, "kind", KINDS)
    date_from = _parse_date(args.get("date_from"), "date_from")
    date_to = _parse_date(args.get("date_to"), "date_to")
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("date_from must not be after date_to.", code="invalid_filter")
    return {
        "emotion": emotion,
        "modality": modality,
        "kind": kind,
        "date_from": date_from,
        "date_to": date_to,
        "tz": _parse_time_zone(args.get("tz")),
        "tz_offset": _parse_tz_offset(args.get("tz_offset")),
    }


def _parse_time_zone(value: Any) -> zoneinfo.ZoneInfo | None:
    """An IANA time zone such as ``Europe/Berlin`` (what browsers report), or None."""
    if value in (None, ""):
        return None
    name = str(value).strip()
    if len(name) <= 64 and TIME_ZONE_NAME.fullmatch(name):
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise InvalidInput("tz must be an IANA time zone such as Europe/Berlin.", code="invalid_filter")


def _parse_tz_offset(value: Any) -> int:
    """Minutes to add to a local time to get UTC (JavaScript's ``Date.getTimezoneOffset``); 0 = UTC days."""
    if value in (None, ""):
        return 0
    text = str(value).strip()
    if not TZ_OFFSET.fullmatch(text):
        raise InvalidInput("tz_offset must be whole minutes, e.g. -60 for UTC+1.", code="invalid_filter")
    minutes = int(text)
    if not -MAX_TZ_OFFSET_MINUTES <= minutes <= MAX_TZ_OFFSET_MINUTES:
        raise InvalidInput(
            f"tz_offset must lie between -{MAX_TZ_OFFSET_MINUTES} and {MAX_TZ_OFFSET_MINUTES} minutes.",
            code="invalid_filter",
        )
    return minutes


def _day_start_utc(day: dt.date, filters: Mapping[str, Any]) -> dt.datetime:
    """Midnight starting ``day`` in the user's zone, as the naive UTC time the database stores.

    A named zone gets each boundary's own offset (a range across a daylight-saving change stays
    exact); a fixed ``tz_offset`` shifts both; neither means UTC days.
    """
    midnight = dt.datetime.combine(day, dt.time.min)
    zone = filters.get("tz")
    if zone is not None:
        return midnight.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
    return midnight + dt.timedelta(minutes=filters.get("tz_offset") or 0)


def _conditions(user_id: int, filters: Mapping[str, Any]) -> list[Any]:
    conditions: list[Any] = [Prediction.user_id == user_id]
    if filters.get("emotion"):
        conditions.append(Prediction.emotion == filters["emotion"])
    if filters.get("kind"):
        conditions.append(Prediction.kind == filters["kind"])
    if filters.get("date_from"):
        conditions.append(Prediction.created_at >= _day_start_utc(filters["date_from"], filters))
    if filters.get("date_to"):  # inclusive: the whole of that day
        conditions.append(Prediction.created_at < _day_start_utc(filters["date_to"] + dt.timedelta(days=1), filters))
    if filters.get("modality"):
        # An alias of its own: the statistics query selects ModalityResult too, and the plain
        # class would be auto-correlated to it (an EXISTS with no FROM clause: a 500).
        used = aliased(ModalityResult)
        conditions.append(
            exists().where(
                and_(
                    used.prediction_id == Prediction.id,
                    used.modality == filters["modality"],
                    used.status == STATUS_USED,
                )
            )
        )
    return conditions


def _positive_int(value: Any, name: str, default: int, maximum: int | None = None) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a whole number.", code="invalid_pagination") from None
    if number < 1 or (maximum is not None and number > maximum):
        limit = f" and at most {maximum}" if maximum else ""
        raise InvalidInput(f"{name} must be at least 1{limit}.", code="invalid_pagination")
    return number


def list_predictions(session: Session, user_id: int, args: Mapping[str, Any]) -> dict[str, Any]:
    """One page of the user's history, newest first, with total and page count."""
    page = _positive_int(args.get("page"), "page", 1, 1_000_000)
    per_page = _positive_int(args.get("per_page"), "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    conditions = _conditions(user_id, parse_filters(args))
    total = session.scalar(select(func.count()).select_from(Prediction).where(*conditions)) or 0
    rows = session.scalars(
        select(Prediction)
        .where(*conditions)
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
        .options(selectinload(Prediction.modality_results))
    ).all()
    return {
        "items": [prediction_to_dict(p) for p in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": max(1, math.ceil(total / per_page)) if total else 0,
    }


def statistics(session: Session, user_id: int, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Counts per emotion, modality, kind and day plus the average confidence (UTC days).

    Three grouped queries: (day, emotion) gives the totals, the per-emotion counts and the
    confidence sum; kinds and modalities have their own.
    """
    conditions = _conditions(user_id, parse_filters(args or {}))
    total = 0
    confidence_sum = 0.0
    by_emotion = dict.fromkeys(EMOTIONS, 0)
    day = func.date(Prediction.created_at)
    days: dict[str, dict[str, Any]] = {}
    for date_value, emotion, raw_count, summed in session.execute(
        select(day, Prediction.emotion, func.count(), func.sum(Prediction.confidence))
        .where(*conditions)
        .group_by(day, Prediction.emotion)
    ):
        count = int(raw_count)
        total += count
        confidence_sum += float(summed or 0.0)
        key = date_value.isoformat() if hasattr(date_value, "isoformat") else str(date_value)[:10]
        entry = days.setdefault(key, {"date": key, "count": 0, "by_emotion": dict.fromkeys(EMOTIONS, 0)})
        entry["count"] += count
        if emotion in by_emotion:
            entry["by_emotion"][emotion] += count
            by_emotion[emotion] += count
    by_kind = dict.fromkeys(KINDS, 0)
    for kind, count in session.execute(
        select(Prediction.kind, func.count()).where(*conditions).group_by(Prediction.kind)
    ):
        by_kind[kind] = int(count)
    by_modality = dict.fromkeys(MODALITIES, 0)
    for modality, count in session.execute(
        select(ModalityResult.modality, func.count())
        .join(Prediction, Prediction.id == ModalityResult.prediction_id)
        .where(*conditions, ModalityResult.status == STATUS_USED)
        .group_by(ModalityResult.modality)
    ):
        if modality in by_modality:
            by_modality[modality] = int(count)
    return {
        "total": total,
        "average_confidence": round(confidence_sum / total, 6) if total else None,
        "by_emotion": by_emotion,
        "by_modality": by_modality,
        "by_kind": by_kind,
        "by_day": [days[key] for key in sorted(days)],
    }


# -- CSV export --------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(value: Any) -> Any:
    """Neutralise user text a spreadsheet would run as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


MODALITY_CSV_FIELDS = ("status", "emotion", "confidence", "model_name", "model_version", "latency_ms", "error")
INPUT_CSV_FIELDS = ("file_name", "media_type", "size_bytes", "duration_seconds", "text")


def export_header() -> list[str]:
    header = ["id", "created_at", "kind", "emotion", "confidence"]
    header += [f"p_{e}" for e in EMOTIONS]
    header += ["fusion_strategy", "fusion_weights"]
    for modality in MODALITIES:
        header += [f"{modality}_{field}" for field in MODALITY_CSV_FIELDS]
        header += [f"{modality}_p_{e}" for e in EMOTIONS]
        header += [f"{modality}_input_{field}" for field in INPUT_CSV_FIELDS]
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


def export_row(prediction: Any, rows: list[Any]) -> list[Any]:
    """One CSV row from a prediction and its modality results (ORM objects or column rows)."""
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
    return [spreadsheet_safe(v) for v in row]


def export_csv(session: Session, user_id: int, filters: Mapping[str, Any] | None = None) -> Iterator[str]:
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
    conditions = _conditions(user_id, filters or {})
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
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        for prediction in predictions:
            writer.writerow(export_row(prediction, results.get(prediction.id, [])))
        yield buffer.getvalue()
        last_id = ids[-1]
