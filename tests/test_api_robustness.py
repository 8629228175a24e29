"""No input makes any endpoint answer 500: junk bodies, wrong types, odd ids and headers."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask

from tests.conftest import Api

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
