"""While the database is unreachable, the app answers 503 ``database_unavailable`` with
``Retry-After`` (never a 500, never a hang past the configured timeouts) and recovers by itself
when the database is back.

The outage is real: the app reaches MariaDB through a loopback TCP relay
(benchmarks/tcp_relay.py) that the test cuts, which resets every open connection and refuses
new ones, as a crashed or unplugged server does. SQLite has no server to lose, so these tests
run on MariaDB only.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from benchmarks.tcp_relay import TcpRelay
from database.models import Prediction
from database.session import get_database
from tests.conftest import Api, assert_error

pytestmark = pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)

#: The timeouts the app runs with here; every answer during the outage must come well within them.
TIMEOUTS = {"DATABASE_CONNECT_TIMEOUT": 2, "DATABASE_READ_TIMEOUT": 5, "DATABASE_WRITE_TIMEOUT": 5}


def _via(url: str, port: int) -> str:
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


@pytest.fixture
def relay(clean_database_url: str) -> Any:
    parsed = make_url(clean_database_url)
    relay = TcpRelay((parsed.host or "127.0.0.1", parsed.port or 3306)).start()
    yield relay
    relay.stop()


@pytest.fixture
def outage_app(app_factory: Any, clean_database_url: str, relay: TcpRelay) -> Any:
    return app_factory({"DATABASE_URL": _via(clean_database_url, relay.port), "DATABASE_RETRY_AFTER": 7, **TIMEOUTS})


def _token(api: Api) -> str:
    assert api.register().status_code == 201
    return api.post("/api/tokens", json={"name": "outage"}).get_json()["token"]


def _assert_unavailable(response: Any) -> None:
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == "7"


def test_predictions_history_and_pages_answer_503_with_retry_after_while_the_database_is_down(
    outage_app: Any, relay: TcpRelay
) -> None:
    api = Api(outage_app.test_client())
    token = _token(api)
    assert api.post("/api/predict/text", token=token, json={"text": "a happy day"}).status_code == 201

    relay.stop()
    started = time.monotonic()
    _assert_unavailable(api.post("/api/predict/text", token=token, json={"text": "a happy day"}))
    _assert_unavailable(api.get("/api/predictions", token=token))
    _assert_unavailable(api.get("/api/statistics", token=token))
    page = api.client.get("/history", headers={"Accept": "text/html"})  # the logged-in session's page
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "7"
    assert "text/html" in page.headers["Content-Type"]
    assert time.monotonic() - started < 4 * TIMEOUTS["DATABASE_CONNECT_TIMEOUT"]
    ready = api.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["database"]["ok"] is False

    relay.start()  # the same port answers again: no restart of the app needed
    assert api.post("/api/predict/text", token=token, json={"text": "a happy day"}).status_code == 201
    assert api.get("/api/predictions", token=token).get_json()["total"] == 2


def test_a_database_port_with_nothing_behind_it_answers_503_quickly(app_factory: Any, clean_database_url: str) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = app_factory({"DATABASE_URL": _via(clean_database_url, port), **TIMEOUTS})
    api = Api(app.test_client())
    started = time.monotonic()
    _unavailable = api.get("/api/predictions", token="ml_not-checked-without-a-database")
    assert_error(_unavailable, 503, "database_unavailable")
    assert int(_unavailable.headers["Retry-After"]) >= 1
    assert_error(api.post("/api/login", json={"email": "a@example.com", "password": "x" * 12}), 503)
    assert time.monotonic() - started < 2 * TIMEOUTS["DATABASE_CONNECT_TIMEOUT"]


def test_a_client_retrying_with_its_idempotency_key_after_an_outage_gets_one_stored_prediction(
    outage_app: Any, relay: TcpRelay
) -> None:
    api = Api(outage_app.test_client())
    token = _token(api)
    headers = {"Idempotency-Key": "retry-after-outage-1"}
    relay.stop()
    _assert_unavailable(api.post("/api/predict/text", token=token, json={"text": "so sad"}, headers=headers))
    relay.start()
    first = api.post("/api/predict/text", token=token, json={"text": "so sad"}, headers=headers)
    again = api.post("/api/predict/text", token=token, json={"text": "so sad"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    with get_database(outage_app).session() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 1
