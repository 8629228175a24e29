"""History, filters, pagination, statistics, CSV export, deletion and isolation between users."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest

from database.models import Prediction
from database.session import get_database
from inference.base import Prediction as ModalityPrediction
from inference.fusion import FusionResult
from inference.labels import EMOTIONS
from inference.results import AnalysisResult
from services.predictions.store import store_prediction
from tests.conftest import Api, assert_error, probabilities


def _result(emotion: str, confidence: float, modalities: tuple[str, ...] = ("text",), **extra: Any) -> AnalysisResult:
    probs = tuple(probabilities(emotion, confidence).tolist())
    single = {
        m: ModalityPrediction(m, probs, model_name=f"test-{m}", model_version="1", latency_ms=5.0) for m in modalities
    }
    fusion = FusionResult(
        strategy="weighted",
        probabilities=probs,
        label=emotion,
        confidence=confidence,
        weights={m: 1 / len(modalities) for m in modalities},
    )
    return AnalysisResult(
        emotion=emotion,
        confidence=confidence,
        probabilities=probs,
        predictions=single,
        dropped=extra.get("dropped", {}),
        fusion=fusion if len(modalities) > 1 else None,
    )


def _user_id(api: Api) -> int:
    return api.get("/api/user/profile").get_json()["user"]["id"]


def seed(app: Any, user_id: int, rows: list[tuple[str, str, float, tuple[str, ...], str]]) -> list[int]:
    """Store (day, emotion, confidence, modalities, text) rows for ``user_id``; returns ids."""
    ids = []
    with get_database(app).session() as session:
        for i, (day, emotion, confidence, modalities, text) in enumerate(rows):
            kind = (
                "multimodal"
                if len(modalities) > 1
                else {"text": "text", "face": "image", "speech": "speech"}[modalities[0]]
            )
            created = dt.datetime.fromisoformat(day) + dt.timedelta(hours=9, minutes=i)
            summaries = {"text": {"text": text}} if "text" in modalities else {}
            prediction = store_prediction(
                session, user_id, kind, _result(emotion, confidence, modalities), summaries, created_at=created
            )
            ids.append(prediction.id)
    return ids


ROWS = [
    ("2026-03-01", "happy", 0.8, ("text",), "a good day"),
    ("2026-03-01", "sad", 0.6, ("face",), ""),
    ("2026-03-02", "happy", 0.9, ("face", "text"), '=HYPERLINK("http://evil")'),
    ("2026-03-03", "angry", 0.5, ("speech",), ""),
    ("2026-03-03", "happy", 0.7, ("speech", "text"), "+1 great"),
]


@pytest.fixture
def seeded(app: Any, user_api: Api) -> tuple[Api, list[int]]:
    return user_api, seed(app, _user_id(user_api), ROWS)


def test_history_is_newest_first_and_paginated(seeded: tuple[Api, list[int]]) -> None:
    api, ids = seeded
    first = api.get("/api/predictions?per_page=2").get_json()
    assert (first["page"], first["per_page"], first["total"], first["pages"]) == (1, 2, 5, 3)
    assert [p["id"] for p in first["items"]] == [ids[4], ids[3]]
    last = api.get("/api/predictions?per_page=2&page=3").get_json()
    assert [p["id"] for p in last["items"]] == [ids[0]]
    assert api.get("/api/predictions?per_page=2&page=9").get_json()["items"] == []


def test_history_filters_by_emotion_modality_and_date_range(seeded: tuple[Api, list[int]]) -> None:
    api, ids = seeded

    def ids_for(query: str) -> list[int]:
        return sorted(p["id"] for p in api.get(f"/api/predictions?{query}").get_json()["items"])

    assert ids_for("emotion=happy") == [ids[0], ids[2], ids[4]]
    assert ids_for("modality=face") == [ids[1], ids[2]]
    assert ids_for("modality=speech&emotion=happy") == [ids[4]]
    assert ids_for("date_from=2026-03-02") == [ids[2], ids[3], ids[4]]
    assert ids_for("date_to=2026-03-01") == [ids[0], ids[1]]
    assert ids_for("date_from=2026-03-02&date_to=2026-03-02") == [ids[2]]
    assert ids_for("kind=multimodal") == [ids[2], ids[4]]


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=x",
        "per_page=1000",
        "emotion=bored",
        "modality=smell",
        "date_from=yesterday",
        "date_from=2026-03-05&date_to=2026-03-01",
    ],
)
def test_bad_history_parameters_are_refused_with_400(seeded: tuple[Api, list[int]], query: str) -> None:
    api, _ = seeded
    assert_error(api.get(f"/api/predictions?{query}"), 400)


def test_statistics_match_hand_computed_numbers(seeded: tuple[Api, list[int]]) -> None:
    api, _ = seeded
    stats = api.get("/api/statistics").get_json()
    assert stats["total"] == 5
    assert stats["average_confidence"] == pytest.approx((0.8 + 0.6 + 0.9 + 0.5 + 0.7) / 5)
    assert stats["by_emotion"] == {
        "angry": 1,
        "disgust": 0,
        "fear": 0,
        "happy": 3,
        "neutral": 0,
        "sad": 1,
        "surprise": 0,
    }
    assert stats["by_modality"] == {"face": 2, "speech": 2, "text": 3}
    assert stats["by_kind"] == {"text": 1, "image": 1, "speech": 1, "multimodal": 2, "video": 0}
    assert [(d["date"], d["count"]) for d in stats["by_day"]] == [
        ("2026-03-01", 2),
        ("2026-03-02", 1),
        ("2026-03-03", 2),
    ]
    assert stats["by_day"][2]["by_emotion"]["angry"] == 1 and stats["by_day"][2]["by_emotion"]["happy"] == 1


def test_date_filters_follow_the_users_own_days_when_the_page_sends_its_offset(
    seeded: tuple[Api, list[int]],
) -> None:
    """Stored times are UTC; a browser at UTC-10 (offset +600 min) sees 1 March 09:00 UTC as 28 February."""
    api, ids = seeded
    utc_day = api.get("/api/predictions?date_from=2026-03-01&date_to=2026-03-01").get_json()["items"]
    local_day = api.get("/api/predictions?date_from=2026-03-01&date_to=2026-03-01&tz_offset=600").get_json()["items"]
    assert sorted(item["id"] for item in utc_day) == [ids[0], ids[1]]
    assert [item["id"] for item in local_day] == [ids[2]]
    _, exported = _csv(api, "?date_from=2026-03-01&date_to=2026-03-01&tz_offset=600")
    assert [int(r["id"]) for r in exported] == [ids[2]]
    # What browsers send: the zone's name, so each end of the range gets its own offset.
    named = api.get("/api/predictions?date_from=2026-03-01&date_to=2026-03-01&tz=Pacific/Honolulu").get_json()
    assert [item["id"] for item in named["items"]] == [ids[2]]


def test_a_named_time_zone_keeps_each_end_of_a_range_across_a_daylight_saving_change(app: Any, user_api: Api) -> None:
    """Berlin moves from UTC+1 to UTC+2 on 29 March 2026: 31 March ends at 21:59:59 UTC, not 22:59:59."""
    ids = seed(app, _user_id(user_api), [("2026-03-31", "happy", 0.8, ("text",), "late")])  # 09:00 UTC
    with get_database(app).session() as session:  # move it to 22:30 UTC = 00:30 on 1 April in Berlin
        session.get(Prediction, ids[0]).created_at = dt.datetime(2026, 3, 31, 22, 30)
        session.commit()
    query = "/api/predictions?date_from=2026-03-01&date_to=2026-03-31"
    assert user_api.get(query + "&tz=Europe/Berlin").get_json()["items"] == []
    fixed_march_offset = user_api.get(query + "&tz_offset=-60").get_json()["items"]  # a single winter offset
    assert [item["id"] for item in fixed_march_offset] == ids


def test_statistics_of_a_new_user_are_zero(user_api: Api) -> None:
    stats = user_api.get("/api/statistics").get_json()
    assert stats["total"] == 0 and stats["average_confidence"] is None and stats["by_day"] == []
    assert set(stats["by_emotion"]) == set(EMOTIONS) and not any(stats["by_emotion"].values())


def test_statistics_accept_the_history_filters(seeded: tuple[Api, list[int]]) -> None:
    api, _ = seeded
    stats = api.get("/api/statistics?date_from=2026-03-03").get_json()
    assert stats["total"] == 2 and stats["average_confidence"] == pytest.approx(0.6)


def test_statistics_filtered_by_modality_count_only_predictions_that_used_it(seeded: tuple[Api, list[int]]) -> None:
    """The documented ``modality`` filter used to answer 500 (an auto-correlated EXISTS) on both databases."""
    api, _ = seeded
    response = api.get("/api/statistics?modality=text")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    stats = response.get_json()
    assert stats["total"] == 3 and stats["by_emotion"]["happy"] == 3
    assert stats["average_confidence"] == pytest.approx((0.8 + 0.9 + 0.7) / 3)
    assert stats["by_modality"] == {"face": 1, "speech": 1, "text": 3}
    assert api.get("/api/statistics?modality=face&emotion=sad").get_json()["total"] == 1


def _csv(api: Api, query: str = "") -> tuple[Any, list[dict[str, str]]]:
    response = api.get("/api/predictions/export.csv" + query)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return response, list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_the_csv_export_has_one_row_per_prediction_with_per_modality_columns(seeded: tuple[Api, list[int]]) -> None:
    api, ids = seeded
    response, rows = _csv(api)
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    streamed = api.client.get("/api/predictions/export.csv", buffered=False)
    assert streamed.is_streamed and "Content-Length" not in streamed.headers
    streamed.close()
    assert [int(r["id"]) for r in rows] == ids
    fused = rows[2]
    assert fused["kind"] == "multimodal" and fused["emotion"] == "happy"
    assert fused["face_status"] == "used" and fused["face_emotion"] == "happy"
    assert fused["speech_status"] == "" and fused["text_model_name"] == "test-text"
    assert float(fused["p_happy"]) == pytest.approx(0.9)
    assert float(fused["face_p_happy"]) == pytest.approx(0.9)
    assert fused["fusion_strategy"] == "weighted"
    assert rows[0]["text_input_text"] == "a good day"


def test_the_csv_export_neutralises_spreadsheet_formulas_in_user_text(seeded: tuple[Api, list[int]]) -> None:
    api, _ = seeded
    _, rows = _csv(api)
    assert rows[2]["text_input_text"] == '\'=HYPERLINK("http://evil")'
    assert rows[4]["text_input_text"] == "'+1 great"
    for row in rows:
        for value in row.values():
            assert not (value or "").startswith(("=", "+", "@")), value


def test_the_csv_export_keeps_only_what_the_history_filters_keep(seeded: tuple[Api, list[int]]) -> None:
    api, ids = seeded
    _, happy_text = _csv(api, "?emotion=happy&modality=text")
    assert [int(r["id"]) for r in happy_text] == [ids[0], ids[2], ids[4]]
    _, from_march_2 = _csv(api, "?date_from=2026-03-02&date_to=2026-03-02")
    assert [int(r["id"]) for r in from_march_2] == [ids[2]]


def test_a_bad_export_filter_is_a_400_before_any_csv_is_sent(seeded: tuple[Api, list[int]]) -> None:
    api, _ = seeded
    response = api.get("/api/predictions/export.csv?emotion=bored")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_filter"


def test_the_csv_export_of_an_empty_history_is_just_the_header(user_api: Api) -> None:
    _, rows = _csv(user_api)
    assert rows == []


def test_deleting_a_prediction_removes_it(seeded: tuple[Api, list[int]]) -> None:
    api, ids = seeded
    assert api.delete(f"/api/predictions/{ids[0]}").status_code == 204
    assert_error(api.get(f"/api/predictions/{ids[0]}"), 404, "not_found")
    assert api.get("/api/predictions").get_json()["total"] == 4
    assert_error(api.delete(f"/api/predictions/{ids[0]}"), 404)


def test_a_user_cannot_read_delete_or_export_another_users_predictions(
    app: Any, seeded: tuple[Api, list[int]], new_api: Any
) -> None:
    owner, ids = seeded
    intruder = new_api()
    intruder.register(email="eve@example.com")
    error = assert_error(intruder.get(f"/api/predictions/{ids[0]}"), 404, "not_found")
    assert "happy" not in error["message"]
    assert_error(intruder.delete(f"/api/predictions/{ids[0]}"), 404)
    assert intruder.get("/api/predictions").get_json()["total"] == 0
    assert intruder.get("/api/statistics").get_json()["total"] == 0
    _, rows = _csv(intruder)
    assert rows == []
    assert owner.get(f"/api/predictions/{ids[0]}").status_code == 200  # still there


def test_deleting_the_account_removes_every_prediction_and_token(app: Any, seeded: tuple[Api, list[int]]) -> None:
    from sqlalchemy import func, select

    from database.models import ApiToken, ModalityResult, Prediction, User

    api, _ = seeded
    token = api.post("/api/tokens", json={"name": "t"}).get_json()["token"]
    assert api.delete("/api/user").status_code == 204
    assert_error(api.get("/api/user/profile"), 401)
    assert_error(api.get("/api/user/profile", token=token), 401, "invalid_token")
    with get_database(app).session() as session:
        for model in (User, ApiToken, Prediction, ModalityResult):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model.__name__
    assert_error(api.login(), 401)
