"""History filters from query arguments (dates, time zone, emotion, kind, modality) and their SQL conditions.

:class:`HistoryFilters` (and :class:`HistoryPage`, :class:`ExportQuery`) is the one place the
filters are parsed: the API routes are validated with it, the document's query parameters are
generated from it, and :func:`parse_filters` applies it to any mapping of arguments.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema, model_validator
from sqlalchemy import and_, exists
from sqlalchemy.orm import aliased

from database.models import (
    KINDS,
    STATUS_USED,
    ModalityResult,
    Prediction,
    UserDailyTally,
)
from inference.labels import EMOTIONS, MODALITIES
from validation import input_error, omitted, refuse

#: The dates a history filter may name.
FIRST_DATE = dt.date(1000, 1, 1)


LAST_DATE = dt.date(9998, 12, 31)


MAX_TZ_OFFSET_MINUTES = 14 * 60  # UTC-12 .. UTC+14, with room either side


TZ_OFFSET = re.compile(r"[+-]?[0-9]{1,4}")


TIME_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")

#: History pages: items per page (default, most) and the highest page number.
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000

F = TypeVar("F", bound="HistoryFilters")


def _parse_date(value: Any, name: str) -> dt.date | None:
    """A YYYY-MM-DD date between FIRST_DATE and LAST_DATE (the document's pattern), or None when absent.

    An empty value (``date_to=``) is refused like any other malformed one: the document says "a date".
    """
    if value is None or isinstance(value, dt.date):
        return value
    try:
        date = dt.date.fromisoformat(str(value)) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)) else None
    except ValueError:
        date = None
    if date is None:
        raise refuse("invalid_filter", f"{name} must be a date like 2026-01-31.")
    # MySQL/MariaDB DATETIME starts at year 1000, and date_to is searched up to the next day.
    if not FIRST_DATE <= date <= LAST_DATE:
        raise refuse("invalid_filter", f"{name} must lie between {FIRST_DATE.isoformat()} and {LAST_DATE.isoformat()}.")
    return date


def _parse_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str | None:
    """One of ``allowed`` (any case), None when absent; an empty ``emotion=`` is refused as the document says."""
    if value is None:
        return None
    choice = str(value).strip().lower()
    if choice not in allowed:
        raise refuse("invalid_filter", f"{name} must be one of {', '.join(allowed)}.")
    return choice


def _parse_time_zone(value: Any) -> zoneinfo.ZoneInfo | None:
    """An IANA time zone such as ``Europe/Berlin`` (what browsers report), or None."""
    if value in (None, "") or isinstance(value, zoneinfo.ZoneInfo):
        return value or None
    name = str(value).strip()
    if len(name) <= 64 and TIME_ZONE_NAME.fullmatch(name):
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise refuse("invalid_filter", "tz must be an IANA time zone such as Europe/Berlin.")


def _parse_tz_offset(value: Any) -> int:
    """Minutes to add to a local time to get UTC (JavaScript's ``Date.getTimezoneOffset``); 0 = UTC days."""
    if value in (None, ""):
        return 0
    text = str(value).strip()
    if not TZ_OFFSET.fullmatch(text):
        raise refuse("invalid_filter", "tz_offset must be whole minutes, e.g. -60 for UTC+1.")
    minutes = int(text)
    if not -MAX_TZ_OFFSET_MINUTES <= minutes <= MAX_TZ_OFFSET_MINUTES:
        raise refuse(
            "invalid_filter",
            f"tz_offset must lie between -{MAX_TZ_OFFSET_MINUTES} and {MAX_TZ_OFFSET_MINUTES} minutes.",
        )
    return minutes


def _choice(name: str, allowed: tuple[str, ...], description: str) -> Any:
    return Annotated[
        Any,
        BeforeValidator(lambda value: _parse_choice(value, name, allowed)),
        WithJsonSchema({"type": "string", "enum": list(allowed), "description": description}),
    ]


#: A day the databases can hold: 1000-01-01 to 9998-12-31 (date_to is searched up to the next day).
DATE_PATTERN = r"^(1[0-9]{3}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}$"


def _day(name: str, description: str) -> Any:
    return Annotated[
        Any,
        BeforeValidator(lambda value: _parse_date(value, name)),
        WithJsonSchema(
            {
                "type": "string",
                "format": "date",
                "pattern": DATE_PATTERN,
                "description": f"{description} YYYY-MM-DD from 1000-01-01 to 9998-12-31; empty values are refused.",
            }
        ),
    ]


EmotionFilter = _choice("emotion", EMOTIONS, "Only this final emotion.")
ModalityFilter = _choice("modality", MODALITIES, "Only predictions that used this modality.")
KindFilter = _choice("kind", KINDS, "Only this kind.")
DateFrom = _day("date_from", "From this day (inclusive; UTC unless tz/tz_offset).")
DateTo = _day("date_to", "Up to this day (inclusive; UTC unless tz/tz_offset).")


class HistoryFilters(BaseModel):
    """The history filters of GET /predictions, /statistics and /predictions/export.csv.

    Parsed from query arguments (strings) with the same 400 ``invalid_filter`` answers the
    routes always gave; the document's query parameters are generated from this model.
    """

    model_config = ConfigDict(frozen=True)

    emotion: EmotionFilter = omitted()
    modality: ModalityFilter = omitted()
    kind: KindFilter = omitted()
    date_from: DateFrom = omitted()
    date_to: DateTo = omitted()
    tz: Annotated[
        Any,
        BeforeValidator(_parse_time_zone),
        WithJsonSchema(
            {
                "type": "string",
                "maxLength": 64,
                "example": "Europe/Berlin",
                "description": "IANA time zone: the dates are that zone's days, daylight saving included "
                "(statistics' by_day stays UTC).",
            }
        ),
    ] = omitted()
    tz_offset: Annotated[
        Any,
        BeforeValidator(_parse_tz_offset),
        WithJsonSchema(
            {
                "type": "integer",
                "minimum": -MAX_TZ_OFFSET_MINUTES,
                "maximum": MAX_TZ_OFFSET_MINUTES,
                "description": "Minutes from local time to UTC, as JavaScript's Date.getTimezoneOffset(): "
                "the dates are then local days.",
            }
        ),
    ] = 0

    @model_validator(mode="after")
    def _ordered_dates(self) -> HistoryFilters:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise refuse("invalid_filter", "date_from must not be after date_to.")
        return self


def _page_number(name: str, maximum: int) -> Any:
    return Annotated[
        Any,
        BeforeValidator(lambda value: positive_int(value, name, maximum)),
        WithJsonSchema({"type": "integer", "minimum": 1, "maximum": maximum}),
    ]


PageNumber = _page_number("page", MAX_PAGE)
PerPage = _page_number("per_page", MAX_PER_PAGE)


class HistoryPage(HistoryFilters):
    """GET /predictions: the filters plus the page (by number, or after a cursor)."""

    page: PageNumber = omitted(description="Page number (from 1).")
    per_page: PerPage = omitted(description="Items per page.")
    cursor: str = omitted(description="The previous page's next_cursor: the rows right after it.")


class ExportQuery(HistoryFilters):
    """GET /predictions/export.csv: the filters, and the timeline switch."""

    timeline: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "string",
                "enum": ["1"],
                "description": "1: the video predictions' timelines instead, one row per time step.",
            }
        ),
    ] = omitted()

    def wants_timeline(self) -> bool:
        return self.timeline in {"1", "true", "yes"}


def parse_filters(args: Mapping[str, Any] | None = None, model: type[F] = HistoryFilters) -> F:  # type: ignore[assignment]
    """Validated history filters from query arguments (400 on bad values, empty ones included)."""
    try:
        return model.model_validate(dict(args or {}))
    except ValidationError as exc:
        raise input_error(exc) from None


def _day_start_utc(day: dt.date, filters: HistoryFilters) -> dt.datetime:
    """Midnight starting ``day`` in the user's zone, as the naive UTC time the database stores.

    A named zone gets each boundary's own offset (a range across a daylight-saving change stays
    exact); a fixed ``tz_offset`` shifts both; neither means UTC days.
    """
    midnight = dt.datetime.combine(day, dt.time.min)
    zone = filters.tz
    if zone is not None:
        return midnight.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
    return midnight + dt.timedelta(minutes=filters.tz_offset or 0)


def sql_conditions(user_id: int, filters: HistoryFilters) -> list[Any]:
    conditions: list[Any] = [Prediction.user_id == user_id]
    if filters.emotion:
        conditions.append(Prediction.emotion == filters.emotion)
    if filters.kind:
        conditions.append(Prediction.kind == filters.kind)
    if filters.date_from:
        conditions.append(Prediction.created_at >= _day_start_utc(filters.date_from, filters))
    if filters.date_to:  # inclusive: the whole of that day
        conditions.append(Prediction.created_at < _day_start_utc(filters.date_to + dt.timedelta(days=1), filters))
    if filters.modality:
        # An alias of its own: the statistics query selects ModalityResult too, and the plain
        # class would be auto-correlated to it (an EXISTS with no FROM clause: a 500).
        used = aliased(ModalityResult)
        conditions.append(
            exists().where(
                and_(
                    used.prediction_id == Prediction.id,
                    used.modality == filters.modality,
                    used.status == STATUS_USED,
                )
            )
        )
    return conditions


def positive_int(value: Any, name: str, maximum: int) -> int | None:
    """A whole number from 1 to ``maximum`` (None when absent): 400 ``invalid_pagination`` otherwise."""
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise refuse("invalid_pagination", f"{name} must be a whole number.") from None
    if not 1 <= number <= maximum:
        raise refuse("invalid_pagination", f"{name} must be at least 1 and at most {maximum}.")
    return number


def tally_conditions(user_id: int, filters: HistoryFilters) -> list[Any] | None:
    """The filters as conditions on ``user_daily_tallies``, or None when the tallies cannot
    answer them exactly (a modality filter, or date bounds in a zone other than UTC)."""
    dated = filters.date_from or filters.date_to
    if filters.modality or (dated and (filters.tz is not None or filters.tz_offset)):
        return None
    conditions: list[Any] = [UserDailyTally.user_id == user_id]
    if filters.emotion:
        conditions.append(UserDailyTally.emotion == filters.emotion)
    if filters.kind:
        conditions.append(UserDailyTally.kind == filters.kind)
    if filters.date_from:
        conditions.append(UserDailyTally.day >= filters.date_from)
    if filters.date_to:
        conditions.append(UserDailyTally.day <= filters.date_to)
    return conditions
