"""Stored predictions: save a predictor result, query a user's history, statistics, CSV export.

Every query is scoped by ``user_id`` so one user can never read another's rows: a foreign
id is simply "not found". Queries use the (user_id, created_at) and (user_id, emotion,
created_at) indices; the export streams in chunks so 100k rows never sit in memory.
"""

from __future__ import annotations

import base64
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

from sqlalchemy import and_, case, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from database.models import (
    KINDS,
    PROBABILITY_COLUMNS,
    STATUS_DROPPED,
    STATUS_USED,
    ModalityResult,
    Prediction,
    Transcript,
    UserDailyTally,
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
    idempotency_key: str | None = None,
) -> Prediction:
    """Persist a predictor result (the shape of MultimodalEmotionPredictor's dicts), with its
    ``transcript`` when the recording was transcribed.

    Plain INSERTs (one for the prediction, one executemany for its modality rows, one upsert of
    the day's tally), no ORM unit of work: the returned :class:`Prediction` is a detached
    object carrying what was stored, for the response. A second prediction with the same
    ``idempotency_key`` for the user raises :class:`~sqlalchemy.exc.IntegrityError`.
    """
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
        idempotency_key=idempotency_key,
    )
    prediction.set_probabilities(result.get("probabilities"))
    individual = result.get("individual_results") or {}
    dropped = result.get("dropped") or {}
    rows: list[ModalityResult] = []
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
    transcript = transcript_row(result["transcript"]) if result.get("transcript") else None
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
        "transcript": transcript_to_dict(prediction.transcript),
    }


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


def _tally_conditions(user_id: int, filters: Mapping[str, Any]) -> list[Any] | None:
    """The filters as conditions on ``user_daily_tallies``, or None when the tallies cannot
    answer them exactly (a modality filter, or date bounds in a zone other than UTC)."""
    dated = filters.get("date_from") or filters.get("date_to")
    if filters.get("modality") or (dated and (filters.get("tz") is not None or filters.get("tz_offset"))):
        return None
    conditions: list[Any] = [UserDailyTally.user_id == user_id]
    if filters.get("emotion"):
        conditions.append(UserDailyTally.emotion == filters["emotion"])
    if filters.get("kind"):
        conditions.append(UserDailyTally.kind == filters["kind"])
    if filters.get("date_from"):
        conditions.append(UserDailyTally.day >= filters["date_from"])
    if filters.get("date_to"):
        conditions.append(UserDailyTally.day <= filters["date_to"])
    return conditions


def count_predictions(session: Session, user_id: int, filters: Mapping[str, Any]) -> int:
    """How many predictions the filters keep: summed from the daily tallies where they can
    answer (O(days)), counted in the index otherwise."""
    tally = _tally_conditions(user_id, filters)
    if tally is not None:
        return int(session.scalar(select(func.sum(UserDailyTally.predictions)).where(*tally)) or 0)
    return session.scalar(select(func.count()).select_from(Prediction).where(*_conditions(user_id, filters))) or 0


def encode_cursor(prediction: Prediction) -> str:
    """An opaque position after ``prediction`` in the newest-first history (for ``cursor=``)."""
    raw = f"{prediction.created_at.isoformat()}|{prediction.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(value: str) -> tuple[dt.datetime, int]:
    try:
        padded = value + "=" * (-len(value) % 4)
        moment, _, pid = base64.urlsafe_b64decode(padded.encode("ascii")).decode().partition("|")
        return dt.datetime.fromisoformat(moment).replace(tzinfo=None), int(pid)
    except (ValueError, UnicodeError):
        message = "cursor is not one this server issued (use next_cursor)."
        raise InvalidInput(message, code="invalid_pagination") from None


def list_predictions(session: Session, user_id: int, args: Mapping[str, Any]) -> dict[str, Any]:
    """One page of the user's history, newest first, with total and page count.

    ``page`` pages by offset; ``cursor`` (the ``next_cursor`` of the previous page) continues
    right after that page's last row, as cheap on page 5,000 as on page 1 (keyset pagination
    on the (user_id, created_at, id) index).
    """
    page = _positive_int(args.get("page"), "page", 1, 1_000_000)
    per_page = _positive_int(args.get("per_page"), "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    filters = parse_filters(args)
    conditions = _conditions(user_id, filters)
    # Two steps: the page's ids from the covering (user_id, created_at, id) index alone (no row
    # is read for the rows skipped by an offset or a cursor), then those rows by primary key.
    query = select(Prediction.id).where(*conditions)
    cursor = args.get("cursor")
    if cursor:
        moment, pid = _decode_cursor(str(cursor))
        query = query.where(
            Prediction.created_at <= moment,
            or_(Prediction.created_at < moment, Prediction.id < pid),
        )
    else:
        query = query.offset((page - 1) * per_page)
    ids = session.scalars(query.order_by(Prediction.created_at.desc(), Prediction.id.desc()).limit(per_page)).all()
    found = (
        {
            p.id: p
            for p in session.scalars(
                select(Prediction)
                .where(Prediction.id.in_(ids))
                .options(selectinload(Prediction.modality_results), selectinload(Prediction.transcript))
            )
        }
        if ids
        else {}
    )
    rows = [found[i] for i in ids if i in found]
    total = count_predictions(session, user_id, filters)
    return {
        "items": [prediction_to_dict(p) for p in rows],
        "page": None if cursor else page,
        "per_page": per_page,
        "total": total,
        "pages": max(1, math.ceil(total / per_page)) if total else 0,
        "next_cursor": encode_cursor(rows[-1]) if len(rows) == per_page else None,
    }


def statistics(session: Session, user_id: int, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Counts per emotion, modality, kind and day plus the average confidence (UTC days).

    Read from the daily tallies (two grouped queries over O(days) rows) whenever they answer
    the filters exactly; a modality filter or zoned date bounds scan the predictions instead.
    """
    filters = parse_filters(args or {})
    tally = _tally_conditions(user_id, filters)
    if tally is None:
        return _statistics_from_rows(session, user_id, filters)
    t = UserDailyTally
    # One row per day with the seven emotion counts as columns: the driver parses 1 row, not 7.
    per_emotion = [func.sum(case((t.emotion == emotion, t.predictions), else_=0)) for emotion in EMOTIONS]
    day_rows = session.execute(
        select(t.day, func.sum(t.confidence_sum), *per_emotion).where(*tally).group_by(t.day)
    ).all()
    by_day = [
        (day, emotion, count, summed if index == 0 else 0.0)
        for day, summed, *counts in day_rows
        for index, (emotion, count) in enumerate(zip(EMOTIONS, counts, strict=True))
    ]
    by_kind = session.execute(
        select(
            t.kind,
            func.sum(t.predictions),
            *(func.sum(getattr(t, f"{m}_used")) for m in MODALITIES),
        )
        .where(*tally)
        .group_by(t.kind)
    ).all()
    modalities = dict.fromkeys(MODALITIES, 0)
    kinds = dict.fromkeys(KINDS, 0)
    for kind, count, *used in by_kind:
        kinds[kind] = int(count or 0)
        for modality, n in zip(MODALITIES, used, strict=True):
            modalities[modality] += int(n or 0)
    return _statistics_answer(by_day, kinds, modalities)


def _statistics_answer(day_rows: Any, by_kind: dict[str, int], by_modality: dict[str, int]) -> dict[str, Any]:
    """The statistics document from (day, emotion, count, confidence sum) rows."""
    total = 0
    confidence_sum = 0.0
    by_emotion = dict.fromkeys(EMOTIONS, 0)
    days: dict[str, dict[str, Any]] = {}
    for date_value, emotion, raw_count, summed in day_rows:
        count = int(raw_count or 0)
        confidence_sum += float(summed or 0.0)
        if not count:
            continue
        total += count
        key = date_value.isoformat() if hasattr(date_value, "isoformat") else str(date_value)[:10]
        entry = days.setdefault(key, {"date": key, "count": 0, "by_emotion": dict.fromkeys(EMOTIONS, 0)})
        entry["count"] += count
        if emotion in by_emotion:
            entry["by_emotion"][emotion] += count
            by_emotion[emotion] += count
    return {
        "total": total,
        "average_confidence": round(confidence_sum / total, 6) if total else None,
        "by_emotion": by_emotion,
        "by_modality": by_modality,
        "by_kind": by_kind,
        "by_day": [days[key] for key in sorted(days)],
    }


def _statistics_from_rows(session: Session, user_id: int, filters: Mapping[str, Any]) -> dict[str, Any]:
    """Statistics grouped straight from the predictions (filters the tallies cannot answer)."""
    conditions = _conditions(user_id, filters)
    day = func.date(Prediction.created_at)
    day_rows = session.execute(
        select(day, Prediction.emotion, func.count(), func.sum(Prediction.confidence))
        .where(*conditions)
        .group_by(day, Prediction.emotion)
    ).all()
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
    return _statistics_answer(day_rows, by_kind, by_modality)


# -- CSV export --------------------------------------------------------------------------
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
