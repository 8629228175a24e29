"""Models load before the first request: while they load, the server says so instead of hanging.

A recogniser double whose load waits on an event stands for a model still loading; the app
is built with ``PRELOAD_MODELS`` on, as every server process is.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from inference.registry import RecognizerRegistry
from tests.conftest import Api, ColourFaceRecognizer, KeywordTextRecognizer, LoudnessSpeechRecognizer


class SlowTextRecognizer(KeywordTextRecognizer):
    """Text double that finishes loading only when the test releases it."""

    release = threading.Event()

    def _load(self) -> None:
        assert self.release.wait(timeout=30), "the test never released the load"
        super()._load()


@pytest.fixture
def loading(app_factory: Any, models_dir: Any) -> Any:
    SlowTextRecognizer.release = threading.Event()
    registry = RecognizerRegistry(
        {
            "face": ColourFaceRecognizer(models_dir / "face"),
            "speech": LoudnessSpeechRecognizer(models_dir / "speech"),
            "text": SlowTextRecognizer(models_dir / "text"),
        }
    )
    app = app_factory({"PRELOAD_MODELS": True}, registry_override=registry)
    yield app, registry
    SlowTextRecognizer.release.set()
    registry.wait_until_loaded(timeout=30)


def _logged_in(app: Any) -> Api:
    api = Api(app.test_client())
    assert api.register().status_code == 201
    return api


def test_readyz_is_503_loading_with_retry_after_until_every_model_is_loaded(loading: Any) -> None:
    app, registry = loading
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "loading" and response.get_json()["models_loading"] is True
    assert int(response.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200  # alive all along

    SlowTextRecognizer.release.set()
    assert registry.wait_until_loaded(timeout=30)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    assert "Retry-After" not in ready.headers


def test_a_prediction_during_loading_is_503_model_loading_and_nothing_is_stored(loading: Any) -> None:
    app, registry = loading
    api = _logged_in(app)
    response = api.post("/api/predict/text", json={"text": "I am so happy"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "model_loading"
    assert "loading" in response.get_json()["error"]["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert api.get("/api/predictions").get_json()["total"] == 0

    SlowTextRecognizer.release.set()
    assert registry.wait_until_loaded(timeout=30)
    assert api.post("/api/predict/text", json={"text": "I am so happy"}).status_code == 201


def test_a_multimodal_request_during_loading_waits_rather_than_fusing_without_the_loading_model(
    loading: Any,
) -> None:
    app, _ = loading
    api = _logged_in(app)
    response = api.post("/api/predict/multimodal", data={"text": "I am so happy"})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "model_loading"


def test_the_analyse_page_says_the_models_are_warming_up(loading: Any) -> None:
    app, registry = loading
    api = _logged_in(app)
    html = api.get("/analyse").get_data(as_text=True)
    assert "The models are warming up" in html and 'id="models-warming" role="status" hidden' not in html
    assert api.get("/api/models").get_json()["loading"] is True

    SlowTextRecognizer.release.set()
    assert registry.wait_until_loaded(timeout=30)
    assert 'id="models-warming" role="status" hidden' in api.get("/analyse").get_data(as_text=True)
    assert api.get("/api/models").get_json()["loading"] is False
