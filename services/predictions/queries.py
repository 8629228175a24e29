"""A user's history page (keyset cursor) and statistics, scoped by ``user_id``."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, case, func, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from database.models import (
    KINDS,
    STATUS_USED,
    ModalityResult,
    Prediction,
    Transcript,
    UserDailyTally,
)
from errors import InvalidInput
from inference.labels import EMOTIONS, MODALITIES
from services.predictions.filters import (
    DEFAULT_PER_PAGE,
    HistoryFilters,
    HistoryPage,
    parse_filters,
    sql_conditions,
    tally_conditions,
)
from services.predictions.serialize import (
    MODALITY_FIELDS,
    PREDICTION_FIELDS,
    TRANSCRIPT_FIELDS,
    modality_values_to_dict,
    prediction_values_to_dict,
    transcript_values_to_dict,
)


def count_predictions(session: Session, user_id: int, filters: HistoryFilters) -> int:
    """How many predictions the filters keep (tallies where they answer exactly, the index otherwise)."""
    return int(session.scalar(_total_statement(user_id, filters)) or 0)


def encode_cursor(prediction: Any) -> str:
    """An opaque position after ``prediction`` (anything with ``created_at`` and ``id``) in the
    newest-first history (for ``cursor=``)."""
    return _cursor(prediction.created_at, prediction.id)


def _cursor(created_at: dt.datetime, prediction_id: int) -> str:
    raw = f"{created_at.isoformat()}|{prediction_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(value: str) -> tuple[dt.datetime, int]:
    try:
        padded = value + "=" * (-len(value) % 4)
        moment, _, pid = base64.urlsafe_b64decode(padded.encode("ascii")).decode().partition("|")
        return dt.datetime.fromisoformat(moment).replace(tzinfo=None), int(pid)
    except (ValueError, UnicodeError):
        message = "cursor is not one this server issued (use next_cursor)."
        raise InvalidInput(message, code="invalid_pagination") from None


# Built once: an alias's column collection costs a proxy per column each time it is made.
_P = Prediction.__table__.alias("p")
_M = ModalityResult.__table__.alias("m")
_T = Transcript.__table__.alias("t")
_PAGE_COLUMNS = (
    *(_P.c[name] for name in PREDICTION_FIELDS),
    _T.c.id,
    *(_T.c[name] for name in TRANSCRIPT_FIELDS),
    _M.c.id,
    *(_M.c[name] for name in MODALITY_FIELDS),
)


def _page_statement(user_id: int, filters: HistoryPage, page: int, per_page: int) -> tuple[Any, dict[str, Any]]:
    """The page as one statement (and its parameters): one row per modality part, newest
    prediction first.

    The page's ids come from the covering (user_id, created_at, id) index alone in a derived
    table (no row is read for the rows skipped by an offset or a cursor); those rows are then
    joined by primary key with their transcript and modality parts, and ``total`` rides along
    as an uncorrelated scalar subquery (evaluated once, not per row). Without date or modality
    filters (the usual page) the statement is built once per shape, with bound parameters.
    """
    cursor = _decode_cursor(str(filters.cursor)) if filters.cursor else None
    if not (filters.date_from or filters.date_to or filters.modality):
        values = {"user_id": user_id, "emotion": filters.emotion, "kind": filters.kind}
        params: dict[str, Any] = {name: value for name, value in values.items() if value}
        statement = _bound_page_statement(tuple(params), cursor is not None)
        if cursor is not None:
            params["moment"], params["pid"] = cursor
        else:
            params["offset"] = (page - 1) * per_page
        params["limit"] = per_page
        return statement, params
    ids = select(Prediction.id).where(*sql_conditions(user_id, filters))
    if cursor is not None:
        moment, pid = cursor
        ids = ids.where(
            Prediction.created_at <= moment,
            or_(Prediction.created_at < moment, Prediction.id < pid),
        )
    else:
        ids = ids.offset((page - 1) * per_page)
    page_ids = ids.order_by(Prediction.created_at.desc(), Prediction.id.desc()).limit(per_page)
    return _page_rows(page_ids, _total_statement(user_id, filters)), {}


#: Equality filters of the usual page as bound parameters (the conditions of ``sql_conditions``).
_PAGE_BOUNDS = {
    "user_id": lambda: Prediction.user_id == bindparam("user_id"),
    "emotion": lambda: Prediction.emotion == bindparam("emotion"),
    "kind": lambda: Prediction.kind == bindparam("kind"),
}


@functools.lru_cache(maxsize=16)
def _bound_page_statement(bound: tuple[str, ...], by_cursor: bool) -> Any:
    """The page statement for equality filters only, built once per shape (building it and its
    cache key cost about as much as running it)."""
    ids = select(Prediction.id).where(*(_PAGE_BOUNDS[name]() for name in bound))
    if by_cursor:
        moment = bindparam("moment")
        ids = ids.where(
            Prediction.created_at <= moment,
            or_(Prediction.created_at < moment, Prediction.id < bindparam("pid")),
        )
    else:
        ids = ids.offset(bindparam("offset"))
    page_ids = ids.order_by(Prediction.created_at.desc(), Prediction.id.desc()).limit(bindparam("limit"))
    t = UserDailyTally
    total = select(func.coalesce(func.sum(t.predictions), 0)).where(*(_TALLY_BOUNDS[name](t) for name in bound))
    return _page_rows(page_ids, total)


def _page_rows(page_ids: Any, total: Any) -> Any:
    """The page's rows: the ids' predictions with transcript and modality parts, and the total."""
    ids = page_ids.subquery("page_ids")
    return (
        select(*_PAGE_COLUMNS, total.scalar_subquery())
        .select_from(
            _P.join(ids, ids.c.id == _P.c.id)
            .outerjoin(_T, _T.c.prediction_id == _P.c.id)
            .outerjoin(_M, _M.c.prediction_id == _P.c.id)
        )
        .order_by(_P.c.created_at.desc(), _P.c.id.desc(), _M.c.id)
    )


def _total_statement(user_id: int, filters: HistoryFilters) -> Any:
    """How many predictions the filters keep: summed from the daily tallies where they can
    answer (O(days)), counted in the index otherwise."""
    tally = tally_conditions(user_id, filters)
    if tally is not None:
        return select(func.coalesce(func.sum(UserDailyTally.predictions), 0)).where(*tally)
    return select(func.count()).select_from(Prediction).where(*sql_conditions(user_id, filters))


# Where each part of a page row ends (_PAGE_COLUMNS order: prediction, transcript, modality part, total).
_PREDICTION_END = len(PREDICTION_FIELDS)
_TRANSCRIPT_END = _PREDICTION_END + 1 + len(TRANSCRIPT_FIELDS)
_MODALITY_END = _TRANSCRIPT_END + 1 + len(MODALITY_FIELDS)


def list_predictions(session: Session, user_id: int, query: HistoryPage | Mapping[str, Any]) -> dict[str, Any]:
    """One page of the user's history, newest first, with total and page count.

    ``page`` pages by offset; ``cursor`` (the ``next_cursor`` of the previous page) continues
    right after that page's last row, as cheap on page 5,000 as on page 1 (keyset pagination
    on the (user_id, created_at, id) index). One round trip: the page is read as Core rows
    and its JSON built straight from them, without ORM objects.
    """
    filters = query if isinstance(query, HistoryPage) else parse_filters(query, HistoryPage)
    page = filters.page or 1
    per_page = filters.per_page or DEFAULT_PER_PAGE
    statement, params = _page_statement(user_id, filters, page, per_page)
    rows = session.connection().execute(statement, params).all()
    items: list[dict[str, Any]] = []
    last: tuple[Any, Any] | None = None
    current_id = None
    for row in rows:
        if row[0] != current_id:
            current_id = row[0]
            has_transcript = row[_PREDICTION_END] is not None
            transcript = (
                transcript_values_to_dict(row[_PREDICTION_END + 1 : _TRANSCRIPT_END]) if has_transcript else None
            )
            modalities: list[dict[str, Any]] = []
            items.append(prediction_values_to_dict(row[:_PREDICTION_END], modalities, transcript))
            last = (row[1], row[0])
        if row[_TRANSCRIPT_END] is not None:
            modalities.append(modality_values_to_dict(row[_TRANSCRIPT_END + 1 : _MODALITY_END]))
    if rows:
        total = int(rows[0][_MODALITY_END] or 0)
    else:  # an empty page (past the end, or no rows at all) still reports the total
        total = int(session.connection().scalar(_total_statement(user_id, filters)) or 0)
    return {
        "items": items,
        "page": None if filters.cursor else page,
        "per_page": per_page,
        "total": total,
        "pages": max(1, math.ceil(total / per_page)) if total else 0,
        "next_cursor": _cursor(*last) if last is not None and len(items) == per_page else None,
    }


def statistics(
    session: Session, user_id: int, filters: HistoryFilters | Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Counts per emotion, modality, kind and day plus the average confidence (UTC days).

    Read from the daily tallies (one statement over O(days) rows) whenever they answer the
    filters exactly; a modality filter or zoned date bounds scan the predictions instead.
    """
    if not isinstance(filters, HistoryFilters):
        filters = parse_filters(filters)
    tally = tally_conditions(user_id, filters)
    if tally is None:
        return _statistics_from_rows(session, user_id, filters)
    connection = session.connection()
    aggregated = _statistics_aggregated(connection, user_id, filters)
    if aggregated is not None:
        return aggregated
    return _statistics_from_tallies(connection.execute(_tally_rows_statement(tally)).all())


#: The JSON array aggregate by dialect (same meaning, different names).
_JSON_AGGREGATES = {"mysql": "json_arrayagg", "mariadb": "json_arrayagg", "sqlite": "json_group_array"}
#: The tally filters as bound parameters (the conditions of ``tally_conditions``).
_TALLY_BOUNDS = {
    "user_id": lambda t: t.user_id == bindparam("user_id"),
    "emotion": lambda t: t.emotion == bindparam("emotion"),
    "kind": lambda t: t.kind == bindparam("kind"),
    "date_from": lambda t: t.day >= bindparam("date_from"),
    "date_to": lambda t: t.day <= bindparam("date_to"),
}


@functools.lru_cache(maxsize=64)
def _aggregated_statement(dialect: str, bound: tuple[str, ...]) -> Any:
    """The aggregating statement for one dialect and set of filters, built once: building it
    (seven CASEs) and its cache key cost more than running it.

    Grouped by (day, kind), the primary key's order after ``user_id``: one pass over the tally
    rows, no temporary table, no sort.
    """
    array_agg = getattr(func, _JSON_AGGREGATES[dialect])
    t = UserDailyTally
    groups = (
        select(
            t.day.label("day"),
            t.kind.label("kind"),
            func.sum(t.confidence_sum).label("confidence"),
            *(
                func.sum(case((t.emotion == emotion, t.predictions), else_=0)).label(f"e{index}")
                for index, emotion in enumerate(EMOTIONS)
            ),
            *(func.sum(getattr(t, f"{m}_used")).label(m) for m in MODALITIES),
        )
        .where(*(_TALLY_BOUNDS[name](t) for name in bound))
        .group_by(t.day, t.kind)
        .subquery("groups")
    )
    values = (
        groups.c.day,
        groups.c.kind,
        *(groups.c[f"e{i}"] for i in range(len(EMOTIONS))),
        *(groups.c[m] for m in MODALITIES),
    )
    return select(array_agg(func.json_array(*values)), func.sum(groups.c.confidence), func.count()).select_from(groups)


def _statistics_aggregated(connection: Any, user_id: int, filters: HistoryFilters) -> dict[str, Any] | None:
    """Statistics with the database doing the aggregation: one statement answers one row, the
    (day, kind) groups as one compact JSON array ``[day, kind, 7 emotion counts, 3 modality
    counts]``, so the driver parses three values instead of a dozen columns per day. None
    where the dialect has no JSON aggregates, or MariaDB cut the array at
    ``group_concat_max_len`` (decades of days): the caller reads plain rows then. Only for
    filters the tallies answer (``tally_conditions`` is not None).
    """
    dialect = connection.dialect.name
    if dialect not in _JSON_AGGREGATES:
        return None
    values = {
        "user_id": user_id,
        "emotion": filters.emotion,
        "kind": filters.kind,
        "date_from": filters.date_from,
        "date_to": filters.date_to,
    }
    params = {name: value for name, value in values.items() if value}
    summary, confidence_sum, groups = connection.execute(_aggregated_statement(dialect, tuple(params)), params).one()
    try:
        entries = json.loads(summary) if summary else []
    except ValueError:  # cut at group_concat_max_len
        return None
    if len(entries) != groups:  # a cut can also fall between two entries and still parse
        return None
    n_emotions = len(EMOTIONS)
    emotion_totals = [0] * n_emotions
    days: dict[str, list[int]] = {}
    kinds = dict.fromkeys(KINDS, 0)
    modalities = dict.fromkeys(MODALITIES, 0)
    for day, kind, *counts in entries:
        per_emotion = [int(c or 0) for c in counts[:n_emotions]]
        count = sum(per_emotion)
        kinds[kind] = kinds.get(kind, 0) + count
        for modality, used in zip(MODALITIES, counts[n_emotions:], strict=True):
            modalities[modality] += int(used or 0)
        if not count:
            continue
        day_counts = days.setdefault(str(day)[:10], [0] * n_emotions)
        for index, c in enumerate(per_emotion):
            day_counts[index] += c
            emotion_totals[index] += c
    total = sum(emotion_totals)
    return {
        "total": total,
        "average_confidence": round(float(confidence_sum or 0.0) / total, 6) if total else None,
        "by_emotion": dict(zip(EMOTIONS, emotion_totals, strict=True)),
        "by_modality": modalities,
        "by_kind": kinds,
        "by_day": [
            {"date": day, "count": sum(days[day]), "by_emotion": dict(zip(EMOTIONS, days[day], strict=True))}
            for day in sorted(days)
        ],
    }


def _tally_rows_statement(tally: list[Any]) -> Any:
    """A row per day (the seven emotion counts as columns), then a row per kind (its count and
    modality counts), in one statement."""
    t = UserDailyTally
    zero = literal(0)
    per_day = select(
        t.day,
        null().label("kind"),
        func.sum(t.confidence_sum),
        *(func.sum(case((t.emotion == emotion, t.predictions), else_=0)) for emotion in EMOTIONS),
        *(zero for _ in MODALITIES),
    ).where(*tally)
    per_kind = select(
        null(),
        t.kind,
        zero,
        func.sum(t.predictions),
        *(zero for _ in EMOTIONS[1:]),
        *(func.sum(getattr(t, f"{m}_used")) for m in MODALITIES),
    ).where(*tally)
    return union_all(per_day.group_by(t.day), per_kind.group_by(t.kind))


def _statistics_from_tallies(rows: Any) -> dict[str, Any]:
    """The statistics document from the per-day and per-kind tally rows of :func:`statistics`."""
    total = 0
    confidence_sum = 0.0
    emotion_totals = [0] * len(EMOTIONS)
    by_day: list[tuple[str, int, list[int]]] = []
    kinds = dict.fromkeys(KINDS, 0)
    modalities = dict.fromkeys(MODALITIES, 0)
    n_emotions = len(EMOTIONS)
    for day, kind, summed, *counts in rows:
        if kind is not None:  # a kind row: its count, then its modality counts
            kinds[kind] = int(counts[0] or 0)
            for modality, used in zip(MODALITIES, counts[n_emotions:], strict=True):
                modalities[modality] += int(used or 0)
            continue
        confidence_sum += float(summed or 0.0)
        per_emotion = [int(c or 0) for c in counts[:n_emotions]]
        count = sum(per_emotion)
        if not count:
            continue
        total += count
        for index, c in enumerate(per_emotion):
            emotion_totals[index] += c
        by_day.append((_day_key(day), count, per_emotion))
    by_day.sort(key=lambda entry: entry[0])
    return {
        "total": total,
        "average_confidence": round(confidence_sum / total, 6) if total else None,
        "by_emotion": dict(zip(EMOTIONS, emotion_totals, strict=True)),
        "by_modality": modalities,
        "by_kind": kinds,
        "by_day": [
            {"date": key, "count": count, "by_emotion": dict(zip(EMOTIONS, per_emotion, strict=True))}
            for key, count, per_emotion in by_day
        ],
    }


def _day_key(value: Any) -> str:
    """A day as ``YYYY-MM-DD`` (a date object, or the string some drivers answer)."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)[:10]


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
        key = _day_key(date_value)
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


def _statistics_from_rows(session: Session, user_id: int, filters: HistoryFilters) -> dict[str, Any]:
    """Statistics grouped straight from the predictions (filters the tallies cannot answer)."""
    conditions = sql_conditions(user_id, filters)
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
