"""History filters from query arguments (dates, time zone, emotion, kind, modality) and their SQL conditions."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, exists
from sqlalchemy.orm import aliased

from database.models import (
    KINDS,
    STATUS_USED,
    ModalityResult,
    Prediction,
    UserDailyTally,
)
from errors import InvalidInput
from inference.labels import EMOTIONS, MODALITIES

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


def sql_conditions(user_id: int, filters: Mapping[str, Any]) -> list[Any]:
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


def positive_int(value: Any, name: str, default: int, maximum: int | None = None) -> int:
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


def tally_conditions(user_id: int, filters: Mapping[str, Any]) -> list[Any] | None:
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
