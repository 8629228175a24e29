"""Retried prediction POSTs (``Idempotency-Key``), the daily tallies behind statistics and
history totals, and keyset pagination of the history.

A key names one prediction of one user: the retry gets the stored answer (same body, header
``Idempotent-Replayed: true``) and nothing is stored twice. The tallies must always equal what
grouping the prediction rows themselves gives, after inserts and deletions alike.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from sqlalchemy import func, select, text

from database.migrate import downgrade, upgrade
from database.models import Prediction, UserDailyTally
from database.session import Database, get_database
from services import analysis
from services.predictions import filters, queries, store
from tests.conftest import Api, assert_error
from tests.test_api_history import ROWS, _result, _user_id, seed


def _text(api: Api, body: str = "a happy day", **headers: str) -> Any:
    return api.post("/api/predict/text", json={"text": body}, headers=headers)


def _count(app: Any) -> int:
    with get_database(app).session() as session:
        return session.scalar(select(func.count()).select_from(Prediction)) or 0


# -- Idempotency-Key ---------------------------------------------------------------------------
def test_a_retried_post_with_the_same_key_returns_the_stored_prediction_and_stores_nothing_new(
    app: Any, user_api: Api
) -> None:
    first = _text(user_api, **{"Idempotency-Key": "3f1c-retry"})
    again = _text(user_api, **{"Idempotency-Key": "3f1c-retry"})
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert _count(app) == 1
    assert user_api.get("/api/statistics").get_json()["total"] == 1


def test_requests_without_a_key_or_with_different_keys_each_store_their_own(app: Any, user_api: Api) -> None:
    assert _text(user_api).status_code == 201
    assert _text(user_api).status_code == 201
    assert _text(user_api, **{"Idempotency-Key": "a"}).status_code == 201
    assert _text(user_api, **{"Idempotency-Key": "b"}).status_code == 201
    assert _count(app) == 4


def test_keys_belong_to_one_user(app: Any, user_api: Api, new_api: Any) -> None:
    other = new_api()
    assert other.register("grace@example.com").status_code == 201
    mine = _text(user_api, **{"Idempotency-Key": "shared-key"}).get_json()
    theirs = _text(other, "so sad", **{"Idempotency-Key": "shared-key"}).get_json()
    assert mine["id"] != theirs["id"] and theirs["emotion"] == "sad"
    assert _count(app) == 2


def test_a_key_reused_for_another_kind_of_prediction_is_a_409(user_api: Api) -> None:
    assert _text(user_api, **{"Idempotency-Key": "k-1"}).status_code == 201
    from tests.conftest import png_bytes

    response = user_api.post(
        "/api/predict/image",
        data={"image": (__import__("io").BytesIO(png_bytes()), "face.png")},
        headers={"Idempotency-Key": "k-1"},
    )
    assert_error(response, 409, "idempotency_key_reused")


@pytest.mark.parametrize("key", ["", " ", "x" * 65, "has space", "ümlaut"])
def test_a_malformed_key_is_a_400_and_stores_nothing(app: Any, user_api: Api, key: str) -> None:
    assert_error(_text(user_api, **{"Idempotency-Key": key}), 400, "invalid_idempotency_key")
    assert _count(app) == 0


def test_when_a_concurrent_request_stored_the_key_first_its_prediction_is_the_answer(app: Any, user_api: Api) -> None:
    """The race the unique index decides: the route's look-up found nothing, then another
    request with the same key committed first; this one answers that request's prediction."""
    user_id = _user_id(user_api)
    with app.app_context(), get_database(app).session() as session:
        from database.models import User

        user = session.get(User, user_id)
        winner = store.store_prediction(session, user_id, "text", _result("happy", 0.8), idempotency_key="race")
        answer = analysis.analyse(app, session, user, kind="text", text="so sad", idempotency_key="race")
        assert answer.id == winner.id and answer.emotion == "happy"
    assert _count(app) == 1


# -- tallies -------------------------------------------------------------------------------------
FILTERS = [
    {},
    {"emotion": "happy"},
    {"kind": "text"},
    {"date_from": "2026-03-02"},
    {"date_from": "2026-03-01", "date_to": "2026-03-02", "emotion": "sad"},
    {"modality": "text"},  # answered from the rows
    {"date_from": "2026-03-02", "tz": "Europe/Berlin"},  # answered from the rows
]


def _from_rows(app: Any, user_id: int, args: dict[str, str]) -> dict[str, Any]:
    with get_database(app).session() as session:
        return queries._statistics_from_rows(session, user_id, filters.parse_filters(args))


def _assert_tallies_match_rows(app: Any, api: Api, user_id: int) -> None:
    for args in FILTERS:
        served = api.get("/api/statistics", query_string=args).get_json()
        expected = _from_rows(app, user_id, args)
        assert served["average_confidence"] == pytest.approx(expected.pop("average_confidence"), abs=1e-6), args
        served.pop("average_confidence")
        assert served == expected, args
        history = api.get("/api/predictions", query_string={**args, "per_page": 2}).get_json()
        assert history["total"] == expected["total"], args


def test_statistics_and_totals_from_the_tallies_equal_grouping_the_rows(app: Any, user_api: Api) -> None:
    user_id = _user_id(user_api)
    ids = seed(app, user_id, ROWS * 3)
    _assert_tallies_match_rows(app, user_api, user_id)
    for prediction_id in ids[::2]:  # deletions count out of the right day, kind and emotion
        assert user_api.delete(f"/api/predictions/{prediction_id}").status_code == 204
    _assert_tallies_match_rows(app, user_api, user_id)
    for prediction_id in ids[1::2]:
        assert user_api.delete(f"/api/predictions/{prediction_id}").status_code == 204
    with get_database(app).session() as session:  # an emptied day leaves no row behind
        assert session.scalar(select(func.count()).select_from(UserDailyTally)) == 0
    assert user_api.get("/api/statistics").get_json()["total"] == 0


def test_statistics_read_as_plain_tally_rows_equal_the_database_aggregated_answer(app: Any, user_api: Api) -> None:
    """The database builds the (day, kind) groups as one JSON value; where it cannot (MariaDB cuts an
    aggregate at ``group_concat_max_len``), the plain tally rows give the same document."""
    user_id = _user_id(user_api)
    seed(app, user_id, ROWS * 2)
    with get_database(app).session() as session:
        for args in FILTERS[:5]:
            parsed = filters.parse_filters(args)
            tally = filters.tally_conditions(user_id, parsed)
            aggregated = queries._statistics_aggregated(session.connection(), user_id, parsed)
            assert aggregated is not None
            assert aggregated == queries._statistics_from_tallies(
                session.connection().execute(queries._tally_rows_statement(tally)).all()
            ), args
        happy = {"emotion": "happy"}
        expected = queries.statistics(session, user_id, happy)
        if session.connection().dialect.name in {"mysql", "mariadb"}:
            parsed = filters.parse_filters(happy)
            group = '["2026-03-01", "text", 0, 0, 0, 2, 0, 0, 0, 0, 0, 2]'  # one (day, kind) entry
            try:
                # Too short for any day; then cut right after the first entry, which still parses
                # as a JSON array (of one entry).
                for limit in (8, len(group)):
                    session.execute(text(f"SET SESSION group_concat_max_len = {limit}"))
                    assert queries._statistics_aggregated(session.connection(), user_id, parsed) is None, limit
                    assert queries.statistics(session, user_id, happy) == expected, limit
            finally:
                session.execute(text("SET SESSION group_concat_max_len = DEFAULT"))


def test_deleting_the_account_deletes_its_tallies(app: Any, user_api: Api) -> None:
    seed(app, _user_id(user_api), ROWS)
    user_api.delete("/api/user")
    with get_database(app).session() as session:
        assert session.scalar(select(func.count()).select_from(UserDailyTally)) == 0


def test_the_migration_fills_the_tallies_from_predictions_stored_before_it(database_url: str) -> None:
    downgrade(database_url, "0002_session_token")
    database = Database(database_url)
    try:
        with database.session() as session:
            session.execute(
                text(
                    "INSERT INTO users (email, password_hash, display_name, created_at, failed_logins, session_token)"
                    " VALUES ('old@example.com', '!', 'Old', '2026-01-01', 0, 't')"
                )
            )
            user_id = session.scalar(text("SELECT id FROM users WHERE email = 'old@example.com'"))
            for i, (emotion, kind) in enumerate(itertools.product(("happy", "sad"), ("text", "image"))):
                session.execute(
                    text(
                        "INSERT INTO predictions (user_id, created_at, kind, emotion, confidence, p_angry, p_disgust,"
                        " p_fear, p_happy, p_neutral, p_sad, p_surprise) VALUES (:u, :c, :k, :e, 0.5, 0, 0, 0, 0, 0,"
                        " 0, 0)"
                    ),
                    {"u": user_id, "c": dt.datetime(2026, 2, 1 + i % 2, 10), "k": kind, "e": emotion},
                )
            session.commit()
        upgrade(database_url)
        with database.session() as session:
            tallied = session.scalar(select(func.sum(UserDailyTally.predictions)))
            stats = queries.statistics(session, user_id)
            assert tallied == 4
            assert stats == queries._statistics_from_rows(session, user_id, filters.parse_filters({}))
            session.execute(text("DELETE FROM users"))
            session.commit()
    finally:
        database.dispose()


# -- keyset pagination -------------------------------------------------------------------------
def test_the_cursor_walks_the_whole_history_newest_first_without_gaps_or_repeats(app: Any, user_api: Api) -> None:
    ids = seed(app, _user_id(user_api), ROWS * 3)
    seen: list[int] = []
    page = user_api.get("/api/predictions", query_string={"per_page": 4}).get_json()
    while True:
        seen += [item["id"] for item in page["items"]]
        if not page["next_cursor"]:
            break
        page = user_api.get("/api/predictions", query_string={"per_page": 4, "cursor": page["next_cursor"]}).get_json()
        assert page["total"] == len(ids)
    by_offset = user_api.get("/api/predictions", query_string={"per_page": 100}).get_json()
    assert seen == [item["id"] for item in by_offset["items"]]
    assert sorted(seen) == sorted(ids)


@pytest.mark.parametrize("cursor", ["nonsense", "!!!", "MjAyNi0wMy0wMQ"])
def test_a_cursor_the_server_did_not_issue_is_a_400(user_api: Api, cursor: str) -> None:
    assert_error(user_api.get("/api/predictions", query_string={"cursor": cursor}), 400, "invalid_pagination")
