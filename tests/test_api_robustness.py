"""No input makes any endpoint answer 500: junk bodies, wrong types, odd ids and headers."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask

from tests.conftest import Api, assert_error

JUNK_BODIES: list[dict[str, Any]] = [
    {},
    {"data": b"", "content_type": "application/json"},
    {"data": b"\xff\xfe\x00garbage", "content_type": "application/json"},
    {"data": b"[1, 2, 3]", "content_type": "application/json"},
    {"data": b'"just a string"', "content_type": "application/json"},
    {"data": b"null", "content_type": "application/json"},
    {"json": {"email": ["x"], "password": {"a": 1}, "text": None, "name": 5, "consent": "maybe"}},
    {"json": {"text": "a" * 10, "strategy": ["x"], "weights": [1, 2]}},
    {"data": b"<xml/>", "content_type": "application/xml"},
    {
        "data": {"image": (io.BytesIO(b"\x00" * 100), "x.png"), "text": "nul \x00 byte"},
        "content_type": "multipart/form-data",
    },
    {
        "data": b'--B\r\nContent-Disposition: form-data; name="text"\r\n\r\n\xff\xfe not utf-8\r\n--B--\r\n',
        "content_type": "multipart/form-data; boundary=B",
    },
    {"data": b"--B\r\ntruncated multipart", "content_type": "multipart/form-data; boundary=B"},
    {"data": {"audio": (io.BytesIO(b"RIFF\x00\x00\x00\x00WAVEjunk"), "x.wav")}, "content_type": "multipart/form-data"},
    {"data": {"image": (io.BytesIO(b"\xff\xd8\xff\xe0broken jpeg"), "x.jpg")}, "content_type": "multipart/form-data"},
]


def _write_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api"):
            continue
        url = rule.rule.replace("<int:token_id>", "999999").replace("<int:prediction_id>", "999999")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS", "GET"}):
            routes.append((method, url))
    return routes


@pytest.mark.parametrize("body_index", range(len(JUNK_BODIES)))
def test_junk_sent_to_every_write_endpoint_never_causes_a_500(app: Flask, user_api: Api, body_index: int) -> None:
    for method, url in _write_routes(app):
        if url in {"/api/user", "/api/logout"}:
            continue  # would end the session the loop relies on
        body = dict(JUNK_BODIES[body_index])
        if isinstance(body.get("data"), dict):  # file streams are consumed by each request
            body["data"] = {
                k: (io.BytesIO(v[0].getvalue()), v[1]) if isinstance(v, tuple) else v for k, v in body["data"].items()
            }
        response = user_api.request(method, url, **body)
        assert response.status_code < 500, (method, url, body_index, response.get_data(as_text=True)[:300])
        assert response.is_json, (method, url)


@pytest.mark.parametrize(
    "url",
    [
        "/api/predictions/abc",
        "/api/predictions/-1",
        "/api/predictions/99999999999999999999999",
        "/api/predictions?page=99999999999999999999&per_page=1",
        "/api/predictions?date_from=2026-02-30",
        "/api/statistics?emotion=%00",
        "/api/tokens/0",
        "/api/%ff%fe",
    ],
)
def test_odd_urls_never_cause_a_500(user_api: Api, url: str) -> None:
    response = user_api.get(url)
    assert response.status_code < 500 and response.is_json, response.get_data(as_text=True)[:300]


def test_odd_authorization_headers_never_cause_a_500(api: Api) -> None:
    for header in ["Bearer", "Bearer ", "Basic abc", "Bearer " + "x" * 5000, "bearer ml_ünïcode"]:
        response = api.client.get("/api/user/profile", headers={"Authorization": header})
        assert response.status_code == 401 and response.is_json


def test_deeply_nested_json_is_a_400_not_a_crash(user_api: Api) -> None:
    for method, url in [
        ("POST", "/api/login"),
        ("POST", "/api/predict/text"),
        ("POST", "/api/predict/multimodal"),
        ("PUT", "/api/user/consent"),
    ]:
        response = user_api.request(method, url, data=b"[" * 200_000, content_type="application/json")
        error = assert_error(response, 400, "invalid_json")
        assert "nested too deeply" in error["message"]


def test_nested_weights_in_a_form_field_are_a_clear_422(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/multimodal",
        data={"text": "I am happy", "weights": "[" * 200_000},
        content_type="multipart/form-data",
    )
    assert_error(response, 422, "invalid_fusion_options")


@pytest.mark.parametrize("field", ["email", "password", "name", "text", "current_password", "new_password"])
def test_lone_surrogates_in_json_strings_are_refused_as_invalid_encoding(user_api: Api, field: str) -> None:
    fields = {"email": "x@example.org", "password": "Whatever-123", field: "bad \ud800 text"}
    raw = json.dumps(fields).encode()  # ASCII JSON with the escape "\\ud800" in it
    for method, url in [
        ("POST", "/api/register"),
        ("POST", "/api/login"),
        ("PATCH", "/api/user/profile"),
        ("PUT", "/api/user/password"),
        ("POST", "/api/predict/text"),
        ("POST", "/api/predict/multimodal"),
    ]:
        response = user_api.request(method, url, data=raw, content_type="application/json")
        error = assert_error(response, 400, "invalid_encoding")
        assert "not valid Unicode" in error["message"], (method, url)


@pytest.mark.parametrize(
    "fields",
    [
        {"json": {"text": "I am happy", "weights": {"text": 10**400}}},
        {"json": {"text": "I am happy", "weights": {"text": -(10**400)}}},
        {"json": {"text": "I am happy", "weight_text": 10**400}},
        {"data": {"text": "I am happy", "weight_text": "1" * 400}, "content_type": "multipart/form-data"},
        {
            "data": {"text": "I am happy", "weights": '{"text": 1%s}' % ("0" * 400)},
            "content_type": "multipart/form-data",
        },
    ],
)
def test_weights_too_large_for_a_float_are_a_clear_422(user_api: Api, fields: dict[str, Any]) -> None:
    response = user_api.post("/api/predict/multimodal", **fields)
    assert_error(response, 422, "invalid_fusion_options")


@pytest.mark.parametrize(
    "query",
    ["date_to=9999-12-31", "date_from=0001-01-01", "date_from=0001-01-01&date_to=9999-12-31", "date_to=0999-12-31"],
)
def test_dates_at_the_ends_of_the_calendar_are_a_clear_400(user_api: Api, query: str) -> None:
    for url in ["/api/predictions", "/api/statistics"]:
        response = user_api.get(f"{url}?{query}")
        error = assert_error(response, 400, "invalid_filter")
        assert "must lie between 1000-01-01 and 9998-12-31" in error["message"], url


def test_dates_inside_the_supported_range_still_filter(user_api: Api) -> None:
    response = user_api.get("/api/predictions?date_from=1000-01-01&date_to=9998-12-31")
    assert response.status_code == 200 and response.get_json()["items"] == []
    for offset in ("-840", "840"):  # the calendar's ends shifted by the widest time zones
        response = user_api.get(f"/api/predictions?date_from=1000-01-01&date_to=9998-12-31&tz_offset={offset}")
        assert response.status_code == 200 and response.get_json()["items"] == []


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "Europe/" + "x" * 80, "A\x00B"])
def test_an_unknown_or_hostile_time_zone_name_is_a_clear_400(user_api: Api, zone: str) -> None:
    for url in ["/api/predictions", "/api/statistics", "/api/predictions/export.csv"]:
        response = user_api.get(url, query_string={"date_from": "2026-01-01", "tz": zone})
        error = assert_error(response, 400, "invalid_filter")
        assert "IANA time zone" in error["message"], url


@pytest.mark.parametrize("offset", ["abc", "1.5", "841", "-100000", "9" * 400, "1_0", "٣٠"])
def test_a_time_zone_offset_that_is_not_whole_minutes_in_range_is_a_clear_400(user_api: Api, offset: str) -> None:
    for url in ["/api/predictions", "/api/statistics", "/api/predictions/export.csv"]:
        response = user_api.get(f"{url}?date_from=2026-01-01&tz_offset={offset}")
        error = assert_error(response, 400, "invalid_filter")
        assert "tz_offset" in error["message"], url
