"""The error contract: JSON errors for every failure, request ids, probes and the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from tests.conftest import Api, assert_error


@pytest.mark.no_database
def test_an_unknown_api_route_answers_404_json(api: Api) -> None:
    assert_error(api.get("/api/does-not-exist"), 404, "not_found")


@pytest.mark.no_database
def test_a_wrong_method_answers_405_json_with_allow(api: Api) -> None:
    response = api.client.get("/api/predict/text")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.no_database
def test_an_unknown_page_prefers_json_when_the_client_asks_for_it(api: Api) -> None:
    response = api.client.get("/no/such/page", headers={"Accept": "application/json"})
    assert_error(response, 404, "not_found")


@pytest.mark.no_database
def test_an_unknown_page_gets_an_html_error_page(api: Api) -> None:
    response = api.client.get("/no/such/page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "There is nothing at this address." in response.get_data(as_text=True)


@pytest.mark.no_database
def test_an_unexpected_exception_is_a_generic_500_json_without_a_traceback(app: Flask, caplog: Any) -> None:
    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    response = app.test_client().get("/api/boom", headers={"X-Request-ID": "req-123"})
    error = assert_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert "req-123" in error["message"]
    assert response.headers["X-Request-ID"] == "req-123"
    assert any("secret internal detail" in (r.exc_text or str(r.exc_info)) for r in caplog.records if r.exc_info)


@pytest.mark.no_database
def test_every_response_carries_a_request_id(api: Api) -> None:
    generated = api.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert api.get("/healthz", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"] == "abc-1"
    forged = api.get("/healthz", headers={"X-Request-ID": "bad id with spaces and <script>"}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", forged)


@pytest.mark.no_database
def test_healthz_answers_without_touching_the_database(api: Api) -> None:
    assert api.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_the_database_and_each_modality_once_every_model_is_loaded(
    app_factory: Any, registry: Any
) -> None:
    app = app_factory({"PRELOAD_MODELS": True})
    assert registry.wait_until_loaded(timeout=30)
    response = app.test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "ready" and body["database"]["ok"] is True and body["models_loading"] is False
    assert body["models"]["text"]["available"] is True and body["models"]["text"]["model_name"] == "test-text"
    assert sorted(body["available_modalities"]) == ["face", "speech", "text"]
    assert all(body["models"][m]["loaded"] for m in ("face", "speech", "text"))


def test_readyz_with_load_allowed_loads_the_models_and_turns_ready(app_factory: Any) -> None:
    api = Api(app_factory({"READYZ_ALLOW_LOAD": True}).test_client())
    assert api.get("/readyz").status_code == 503  # nothing preloaded in this app: not ready yet
    loaded = api.get("/readyz?load=1")
    assert loaded.status_code == 200 and loaded.get_json()["status"] == "ready"
    assert all(loaded.get_json()["models"][m]["loaded"] for m in ("face", "speech", "text"))


def test_readyz_answers_503_when_the_database_is_unreachable(app_factory: Any) -> None:
    app = app_factory({"DATABASE_URL": "mysql+pymysql://nobody:wrong@127.0.0.1:1/none"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["database"]["ok"] is False


@pytest.mark.no_database
def test_the_models_endpoint_lists_modalities_and_fusion_strategies(api: Api) -> None:
    body = api.get("/api/models").get_json()
    assert body["modalities"]["face"]["model_version"] == "0.0-test"
    assert "calibrated" in body["fusion"]["strategies"]
    assert body["emotions"][0] == "angry"


@pytest.mark.no_database
def test_the_openapi_document_describes_every_api_route(app: Flask, api: Api) -> None:
    spec = api.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, operations in spec["paths"].items() for method in operations}
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api") or rule.rule in {"/healthz", "/readyz"}):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} is missing from web/openapi.py"
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert operation["responses"], path


def test_the_openapi_enums_come_from_the_constants_the_code_checks_against() -> None:
    from database.models import KINDS
    from inference.fusion import STRATEGIES
    from web.openapi import build_spec

    spec = build_spec()
    predict = spec["paths"]["/api/predict/multimodal"]["post"]["requestBody"]["content"]
    form = predict["multipart/form-data"]["schema"]["$ref"].removeprefix("#/components/schemas/")
    strategy = spec["components"]["schemas"][form]["properties"]["strategy"]
    assert strategy["enum"] == list(STRATEGIES)
    kind_filter = next(p for p in spec["paths"]["/api/predictions"]["get"]["parameters"] if p["name"] == "kind")
    assert kind_filter["schema"]["enum"] == list(KINDS)
    assert spec["components"]["schemas"]["Prediction"]["properties"]["kind"]["enum"] == list(KINDS)


def test_log_lines_are_key_value_and_carry_the_request_id() -> None:
    import logging

    from web.logs import KeyValueFormatter

    record = logging.LogRecord("moodlens.access", logging.INFO, __file__, 1, "event=request status=%s", (200,), None)
    record.request_id = "abc"
    line = KeyValueFormatter().format(record)
    assert re.match(r"ts=\S+Z level=info logger=moodlens.access request_id=abc event=request status=200$", line)


def test_readyz_ignores_load_unless_the_deployment_allows_it(api: Api) -> None:
    response = api.get("/readyz?load=1")
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "unavailable"  # not loaded, and not loading
    assert not any(body["models"][m]["loaded"] for m in ("face", "speech", "text"))


def _registry_with_a_broken_text_model(tmp_path: Any) -> Any:
    from errors import ModelUnavailable
    from inference.registry import RecognizerRegistry
    from tests.conftest import KeywordTextRecognizer, write_card

    secret = str(tmp_path / "srv" / "secret-models" / "text")

    class BrokenText(KeywordTextRecognizer):
        def _load(self) -> None:
            raise ModelUnavailable(f"cannot open {secret}/model.onnx")

    broken = write_card(tmp_path / "srv" / "secret-models" / "text", "text")
    unreadable = tmp_path / "srv" / "secret-models" / "face"
    unreadable.mkdir(parents=True)
    (unreadable / "card.json").write_text("{not json")
    from tests.conftest import ColourFaceRecognizer

    registry = RecognizerRegistry({"text": BrokenText(broken), "face": ColourFaceRecognizer(unreadable)})
    return registry, secret


def test_model_errors_on_readyz_and_models_name_no_server_paths(app_factory: Any, tmp_path: Any, caplog: Any) -> None:
    registry, secret = _registry_with_a_broken_text_model(tmp_path)
    app = app_factory({"READYZ_ALLOW_LOAD": True}, registry_override=registry)
    client = app.test_client()
    caplog.set_level("WARNING")
    for url in ["/readyz?load=1", "/readyz", "/api/models"]:
        response = client.get(url)
        text = response.get_data(as_text=True)
        assert str(tmp_path) not in text and "secret-models" not in text, url
        models = response.get_json()["models" if url.startswith("/readyz") else "modalities"]
        assert models["face"]["available"] is False
        assert models["face"]["error"] == "The model could not be loaded; see the server log."
    loaded = client.get("/readyz?load=1").get_json()["models"]["text"]
    assert loaded == {
        "available": True,
        "loaded": False,
        "model_name": "test-text",
        "model_version": "0.0-test",
        "error": "The model could not be loaded; see the server log.",
    }
    assert any(secret in record.getMessage() for record in caplog.records)  # the detail is in the log
