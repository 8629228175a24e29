"""One validation layer: the pydantic models check the requests, and the document is generated from them.

Pure validation: no test here reads or writes rows, so none runs on both databases.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import BaseModel

from errors import EmotionAppError, InvalidInput
from inference.fusion import InvalidFusionOptions, resolve_weights
from inference.labels import EMOTIONS
from services.predictions.filters import ExportQuery, HistoryFilters, HistoryPage, parse_filters
from tests.conftest import Api, assert_error
from validation import input_error, refuse
from web import schemas
from web.answers import answer_schemas
from web.openapi import build_spec

pytestmark = pytest.mark.no_database


def _component(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    return spec["components"]["schemas"][ref.removeprefix("#/components/schemas/")]


# -- the document follows the models ---------------------------------------------------------
def test_the_documented_text_limit_is_the_configured_one(app_factory: Any) -> None:
    """Before: ``maxLength: 5000`` was written by hand whatever MAX_TEXT_CHARS said."""
    app = app_factory({"MAX_TEXT_CHARS": 120})
    spec = Api(app.test_client()).get("/api/openapi.json").get_json()
    text_body = spec["paths"]["/api/predict/text"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert _component(spec, text_body["$ref"])["properties"]["text"]["maxLength"] == 120
    assert spec["components"]["schemas"]["MultimodalForm"]["properties"]["text"]["maxLength"] == 120


def test_every_request_body_is_a_component_generated_from_a_model() -> None:
    spec = build_spec()
    models = {name for name, value in vars(schemas).items() if isinstance(value, type) and issubclass(value, BaseModel)}
    bodies = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                name = content["schema"]["$ref"].removeprefix("#/components/schemas/")
                assert name in models, f"{method.upper()} {path}: {name}"
                bodies += 1
    assert bodies == 12


def test_the_answers_components_are_generated_from_the_answer_models() -> None:
    components = build_spec()["components"]["schemas"]
    for name, schema in answer_schemas().items():
        assert components[name] == schema, name
    assert components["Probabilities"]["required"] == list(EMOTIONS)
    assert components["Error"]["required"] == ["error"]


def test_the_upload_endpoints_describe_their_files_as_multipart() -> None:
    spec = build_spec()
    for path, field in [
        ("/api/predict/image", "image"),
        ("/api/predict/speech", "audio"),
        ("/api/predict/video", "video"),
        ("/api/jobs", "file"),
    ]:
        form = _component(
            spec, spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        )
        assert form["properties"][field] == {"type": "string", "format": "binary", "title": field.title()}
        assert form["required"] == [field], path


def test_the_history_filters_are_the_documented_query_parameters() -> None:
    spec = build_spec()
    names = {p["name"] for p in spec["paths"]["/api/statistics"]["get"]["parameters"]}
    assert names == set(HistoryFilters.model_fields)
    page = {p["name"] for p in spec["paths"]["/api/predictions"]["get"]["parameters"]}
    assert page == set(HistoryPage.model_fields)
    export = {p["name"] for p in spec["paths"]["/api/predictions/export.csv"]["get"]["parameters"]}
    assert export == set(ExportQuery.model_fields)


def test_no_documentation_page_loads_anything_from_a_cdn(app: Any) -> None:
    """spectree's own pages (Swagger UI, Redoc, ... from a CDN) are not registered; /docs renders offline."""
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert not [rule for rule in rules if rule.startswith("/apidoc")]


# -- filters ---------------------------------------------------------------------------------
def test_filters_parse_into_a_typed_model() -> None:
    filters = parse_filters(
        {
            "emotion": " HAPPY ",
            "kind": "text",
            "date_from": "2026-01-01",
            "date_to": "2026-01-31",
            "tz": "Europe/Berlin",
        }
    )
    assert filters.emotion == "happy" and filters.kind == "text" and filters.modality is None
    assert (filters.date_from, filters.date_to) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert str(filters.tz) == "Europe/Berlin" and filters.tz_offset == 0
    assert parse_filters({"tz_offset": "-60", "tz": ""}).tz_offset == -60
    assert parse_filters({}) == HistoryFilters()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"emotion": ""}, "emotion must be one of angry,"),
        ({"modality": "nose"}, "modality must be one of face, speech, text."),
        ({"date_to": "2026-1-1"}, "date_to must be a date like 2026-01-31."),
        ({"date_from": "0999-12-31"}, "date_from must lie between 1000-01-01 and 9998-12-31."),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_from must not be after date_to."),
        ({"tz": "Mars/Olympus"}, "tz must be an IANA time zone such as Europe/Berlin."),
        ({"tz_offset": "1.5"}, "tz_offset must be whole minutes, e.g. -60 for UTC+1."),
        ({"tz_offset": "841"}, "tz_offset must lie between -840 and 840 minutes."),
    ],
)
def test_bad_filters_are_a_400_invalid_filter_saying_what_is_wrong(args: dict[str, str], message: str) -> None:
    with pytest.raises(EmotionAppError) as caught:
        parse_filters(args)
    assert (caught.value.status, caught.value.code) == (400, "invalid_filter")
    assert caught.value.message.startswith(message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"page": "0"}, "page must be at least 1 and at most 1000000."),
        ({"per_page": "101"}, "per_page must be at least 1 and at most 100."),
        ({"per_page": "many"}, "per_page must be a whole number."),
    ],
)
def test_bad_pages_are_a_400_invalid_pagination(args: dict[str, str], message: str) -> None:
    with pytest.raises(EmotionAppError) as caught:
        parse_filters(args, HistoryPage)
    assert (caught.value.status, caught.value.code, caught.value.message) == (400, "invalid_pagination", message)


# -- bodies and the error envelope -----------------------------------------------------------
def test_a_refusal_keeps_its_code_and_status_and_a_wrong_type_names_its_field() -> None:
    class Probe(BaseModel):
        name: str = "x"

    with pytest.raises(Exception) as caught:
        schemas.parse_flag("perhaps")
    assert caught.value.type == "invalid_transcribe"  # type: ignore[attr-defined]
    try:
        Probe.model_validate({"name": 42})
    except Exception as exc:
        error = input_error(exc)  # type: ignore[arg-type]
    assert isinstance(error, InvalidInput) and error.code == "invalid_request"
    assert error.message.startswith("name: ")
    assert refuse("some_code", "Because.", 422).type == "some_code"


def test_json_bodies_are_typed_strictly_and_leave_missing_fields_to_the_services() -> None:
    body = schemas.RegisterBody.model_validate({"password": "x"})
    assert body.email is None and body.consent is None  # invalid_email comes from the service
    for wrong in ({"consent": "yes"}, {"email": 5}, {"email": None}):
        with pytest.raises(ValueError):
            schemas.RegisterBody.model_validate(wrong)
    schema = schemas.RegisterBody.model_json_schema()
    assert schema["required"] == ["email", "password"] and "default" not in schema["properties"]["email"]


def test_fusion_options_are_parsed_by_the_form_and_judged_once_by_fusion() -> None:
    """The form model only parses (a JSON string or object, the weight_<modality> fields); fusion decides."""
    form = schemas.MultimodalForm.model_validate(
        {"strategy": "weighted", "weights": json.dumps({"face": 1, "nose": 2}), "weight_text": "0.5", "weight_face": ""}
    )
    assert form.strategy == "weighted"
    assert form.fusion_weights() == {"face": 1, "nose": 2, "text": "0.5"}
    with pytest.raises(InvalidFusionOptions, match="Unknown modality in weights: nose"):
        resolve_weights(form.fusion_weights())
    assert resolve_weights({"text": "0.5"})["text"] == 0.5
    for weight in (10**400, "heavy", -1, True):
        with pytest.raises(InvalidFusionOptions):
            resolve_weights({"face": weight})
    with pytest.raises(ValueError) as caught:
        schemas.MultimodalForm.model_validate({"weights": "{not json"})
    error = input_error(caught.value)  # type: ignore[arg-type]
    assert (error.status, error.code) == (422, "invalid_fusion_options")
    with pytest.raises(ValueError) as caught:
        schemas.VideoForm.model_validate({"strategy": 5})
    error = input_error(caught.value)  # type: ignore[arg-type]
    assert (error.status, error.code, error.message) == (400, "invalid_fusion_options", "strategy must be a string.")


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/api/predictions?emotion=", None),
        ("GET", "/api/statistics?tz_offset=abc", None),
        ("PATCH", "/api/user/profile", {"name": 42}),
        ("POST", "/api/tokens", {"name": None}),
    ],
)
def test_anonymous_requests_get_401_before_any_validation(api: Api, method: str, url: str, body: Any) -> None:
    """Log in first is the useful answer, whatever else is wrong with the request."""
    assert_error(api.request(method, url, json=body), 401, "unauthorized")


def test_the_idempotency_key_header_is_a_model_too() -> None:
    assert schemas.PredictHeaders.model_validate({"Idempotency-Key": " 1b9d-4e2f "}).idempotency_key == "1b9d-4e2f"
    assert schemas.PredictHeaders.model_validate({}).idempotency_key is None
    for bad in ("", "ünïcode", "x" * 65, "two words"):
        with pytest.raises(ValueError) as caught:
            schemas.PredictHeaders.model_validate({"Idempotency-Key": bad})
        assert input_error(caught.value).code == "invalid_idempotency_key"  # type: ignore[arg-type]
    parameters = build_spec()["paths"]["/api/predict/text"]["post"]["parameters"]
    assert [p["name"] for p in parameters if p["in"] == "header"] == ["Idempotency-Key"]
