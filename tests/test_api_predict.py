"""Prediction endpoints: what is stored and returned, consent, and every kind of bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from inference.labels import EMOTIONS
from inference.registry import RecognizerRegistry
from tests.conftest import (
    Api,
    ColourFaceRecognizer,
    KeywordTextRecognizer,
    assert_error,
    png_bytes,
    wav_bytes,
)


def _files(**files: tuple[bytes, str]) -> dict[str, Any]:
    return {name: (io.BytesIO(data), filename) for name, (data, filename) in files.items()}


def test_a_text_prediction_is_stored_and_returned_with_201(user_api: Api) -> None:
    response = user_api.post("/api/predict/text", json={"text": "I am so happy today 😀"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["kind"] == "text" and body["emotion"] == "happy"
    assert body["confidence"] == pytest.approx(0.7)
    assert list(body["probabilities"]) == list(EMOTIONS)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["fusion"] is None
    [text] = body["modalities"]
    assert text["modality"] == "text" and text["status"] == "used" and text["error"] is None
    assert text["model_name"] == "test-text" and text["model_version"] == "0.0-test"
    assert text["input_summary"]["text"] == "I am so happy today 😀"
    assert text["latency_ms"] >= 0
    stored = user_api.get(f"/api/predictions/{body['id']}").get_json()
    assert stored == body


def test_text_may_also_come_from_a_form_field(user_api: Api) -> None:
    response = user_api.post("/api/predict/text", data={"text": "so sad"})
    assert response.status_code == 201 and response.get_json()["emotion"] == "sad"


def test_an_image_prediction_reports_face_boxes(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/image",
        data=_files(image=(png_bytes(size=(80, 60)), "../../me.png")),
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["kind"] == "image" and body["emotion"] == "surprise"
    [face] = body["modalities"]
    assert face["details"]["faces"][0]["box"] == [20, 15, 40, 30]
    assert face["details"]["image"] == {"width": 80, "height": 60}
    assert face["input_summary"] == {
        "file_name": "me.png",
        "media_type": "image/png",
        "size_bytes": len(png_bytes(size=(80, 60))),
        "width": 80,
        "height": 60,
    }


def test_a_speech_prediction_reports_a_bounded_attention_curve_and_duration(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/speech", data=_files(audio=(wav_bytes(2.0), "clip.wav")), content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    [speech] = response.get_json()["modalities"]
    assert speech["emotion"] == "sad"
    attention = speech["details"]["attention"]
    assert 0 < len(attention) <= 200  # the recogniser gave 500 points
    assert attention[0]["time"] >= 0 and attention[-1]["time"] < 2.0
    assert speech["input_summary"]["duration_seconds"] == pytest.approx(2.0)
    assert speech["input_summary"]["media_type"] == "audio/wav"


def test_multimodal_fuses_all_three_and_records_the_strategy(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/multimodal",
        data={
            **_files(image=(png_bytes(), "face.png"), audio=(wav_bytes(1.0), "voice.wav")),
            "text": "happy happy",
            "strategy": "weighted",
            "weights": json.dumps({"face": 0.2, "speech": 0.2, "text": 0.6}),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["kind"] == "multimodal"
    assert body["fusion"]["strategy"] == "weighted"
    assert body["fusion"]["weights"]["text"] > body["fusion"]["weights"]["face"]
    assert body["emotion"] == "happy"  # text carries most of the weight
    assert [m["modality"] for m in body["modalities"]] == ["face", "speech", "text"]
    assert all(m["status"] == "used" for m in body["modalities"])


def test_multimodal_accepts_weights_as_separate_fields(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/multimodal",
        data={
            **_files(image=(png_bytes(), "f.png")),
            "text": "happy",
            "strategy": "weighted",
            "weight_face": "0.9",
            "weight_text": "0.1",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 201
    assert response.get_json()["emotion"] == "surprise"


def test_a_modality_that_cannot_be_analysed_is_dropped_and_recorded(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/multimodal",
        data={**_files(image=(png_bytes(colour=(0, 0, 0)), "dark.png")), "text": "angry words"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["emotion"] == "angry"
    face = next(m for m in body["modalities"] if m["modality"] == "face")
    assert face["status"] == "dropped" and face["error"]["code"] == "no_face_detected"
    assert face["probabilities"] is None and face["input_summary"]["file_name"] == "dark.png"


def test_multimodal_with_nothing_usable_is_refused_with_422(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/multimodal",
        data=_files(image=(png_bytes(colour=(0, 0, 0)), "a.png"), audio=(wav_bytes(silent=True), "b.wav")),
        content_type="multipart/form-data",
    )
    assert_error(response, 422, "no_usable_modality")
    assert user_api.get("/api/predictions").get_json()["total"] == 0


def test_multimodal_with_no_input_is_refused_with_400(user_api: Api) -> None:
    assert_error(user_api.post("/api/predict/multimodal", data={}, content_type="multipart/form-data"), 400)
    assert_error(user_api.post("/api/predict/multimodal", data={"text": "  "}), 422, "empty_text")


@pytest.mark.parametrize(
    "fields",
    [
        {"strategy": "magic"},
        {"weights": "{not json"},
        {"weights": json.dumps({"nose": 1.0})},
        {"weight_face": "heavy"},
        {"weights": json.dumps({"face": -1})},
    ],
)
def test_invalid_fusion_options_are_refused_with_422(user_api: Api, fields: dict[str, str]) -> None:
    response = user_api.post(
        "/api/predict/multimodal", data={"text": "happy", **fields}, content_type="multipart/form-data"
    )
    assert_error(response, 422, "invalid_fusion_options")


def test_face_and_speech_need_consent_but_text_does_not(api: Api) -> None:
    api.register()
    image = api.post(
        "/api/predict/image", data=_files(image=(png_bytes(), "x.png")), content_type="multipart/form-data"
    )
    assert "consent" in assert_error(image, 403, "consent_required")["message"]
    speech = api.post(
        "/api/predict/speech", data=_files(audio=(wav_bytes(), "x.wav")), content_type="multipart/form-data"
    )
    assert_error(speech, 403, "consent_required")
    multimodal = api.post(
        "/api/predict/multimodal",
        data={**_files(image=(png_bytes(), "x.png")), "text": "happy"},
        content_type="multipart/form-data",
    )
    assert_error(multimodal, 403, "consent_required")
    assert api.post("/api/predict/text", json={"text": "happy"}).status_code == 201


def test_revoking_consent_blocks_face_analysis_again(user_api: Api) -> None:
    user_api.put("/api/user/consent", json={"consent": False})
    response = user_api.post(
        "/api/predict/image", data=_files(image=(png_bytes(), "x.png")), content_type="multipart/form-data"
    )
    assert_error(response, 403, "consent_required")


def test_predictions_need_authentication(api: Api) -> None:
    assert_error(api.post("/api/predict/text", json={"text": "happy"}), 401, "unauthorized")


def test_a_missing_model_answers_503_and_nothing_is_stored(app_factory: Any, models_dir: Path) -> None:
    registry = RecognizerRegistry({"face": ColourFaceRecognizer(models_dir / "face")})
    app = app_factory(registry_override=registry)
    api = Api(app.test_client())
    api.register()
    error = assert_error(api.post("/api/predict/text", json={"text": "happy"}), 503, "model_unavailable")
    assert "text" in error["message"]
    assert api.get("/api/predictions").get_json()["total"] == 0


def test_without_fitted_temperatures_the_default_strategy_is_the_first_installed_one(
    app_factory: Any, registry: RecognizerRegistry, tmp_path: Path
) -> None:
    """No fusion/temperatures.json: /api/models names weighted as the default, and a request
    without a strategy gets it (and says so); asking for calibrated by name is a clear 503."""
    api = Api(app_factory({"MODELS_DIR": str(tmp_path)}, registry_override=registry).test_client())
    api.register()
    assert api.get("/api/models").get_json()["fusion"]["default_strategy"] == "weighted"
    response = api.post("/api/predict/multimodal", data={"text": "happy"}, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["fusion"]["strategy"] == "weighted"
    calibrated = api.post("/api/predict/multimodal", data={"text": "happy", "strategy": "calibrated"})
    assert "temperature" in assert_error(calibrated, 503, "model_unavailable")["message"]


def test_a_model_folder_without_its_files_answers_503(app_factory: Any, tmp_path: Path) -> None:
    registry = RecognizerRegistry({"text": KeywordTextRecognizer(tmp_path / "empty")})
    api = Api(app_factory(registry_override=registry).test_client())
    api.register()
    assert_error(api.post("/api/predict/text", json={"text": "happy"}), 503, "model_unavailable")


# -- bad input: never a 500 -----------------------------------------------------------------
def test_an_upload_over_the_size_limit_is_refused_with_413(app_factory: Any) -> None:
    app = app_factory({"MAX_UPLOAD_MB": 0.05})
    api = Api(app.test_client())
    api.register()
    api.give_consent()
    big = png_bytes(size=(10, 10)) + b"\0" * 60_000
    response = api.post("/api/predict/image", data=_files(image=(big, "big.png")), content_type="multipart/form-data")
    assert_error(response, 413, "payload_too_large")


def test_an_image_with_too_many_pixels_is_refused_with_413(app_factory: Any) -> None:
    api = Api(app_factory({"MAX_IMAGE_PIXELS": 1000}).test_client())
    api.register()
    api.give_consent()
    response = api.post(
        "/api/predict/image",
        data=_files(image=(png_bytes(size=(100, 100)), "a.png")),
        content_type="multipart/form-data",
    )
    assert_error(response, 413, "image_too_large")


def test_a_recording_over_the_duration_limit_is_refused_with_413(app_factory: Any) -> None:
    api = Api(app_factory({"MAX_AUDIO_SECONDS": 1}).test_client())
    api.register()
    api.give_consent()
    response = api.post(
        "/api/predict/speech", data=_files(audio=(wav_bytes(1.5), "a.wav")), content_type="multipart/form-data"
    )
    assert_error(response, 413, "audio_too_long")


def test_a_text_over_the_character_limit_is_refused_with_413(user_api: Api) -> None:
    assert_error(user_api.post("/api/predict/text", json={"text": "happy " * 1000}), 413, "text_too_long")


@pytest.mark.parametrize(
    ("field", "endpoint", "payload"),
    [
        ("image", "/api/predict/image", b"%PDF-1.4 this is a pdf"),
        ("image", "/api/predict/image", wav_bytes(0.2)),  # audio sent as image
        ("audio", "/api/predict/speech", png_bytes()),  # image sent as audio
        ("audio", "/api/predict/speech", b"plain text pretending to be audio"),
    ],
)
def test_the_wrong_file_type_is_refused_with_415_whatever_its_name(
    user_api: Api, field: str, endpoint: str, payload: bytes
) -> None:
    name = "photo.jpg" if field == "image" else "voice.wav"
    response = user_api.post(endpoint, data=_files(**{field: (payload, name)}), content_type="multipart/form-data")
    assert_error(response, 415, "unsupported_media_type")


def test_a_corrupt_image_with_a_valid_signature_is_refused_with_415(user_api: Api) -> None:
    corrupt = png_bytes()[:30]
    response = user_api.post(
        "/api/predict/image", data=_files(image=(corrupt, "x.png")), content_type="multipart/form-data"
    )
    assert_error(response, 415)


def test_missing_or_empty_upload_fields_are_refused_with_400_or_422(user_api: Api) -> None:
    assert_error(user_api.post("/api/predict/image", data={}, content_type="multipart/form-data"), 400, "missing_file")
    assert_error(user_api.post("/api/predict/speech", data={}, content_type="multipart/form-data"), 400, "missing_file")
    empty = user_api.post("/api/predict/image", data=_files(image=(b"", "x.png")), content_type="multipart/form-data")
    assert_error(empty, 422, "empty_file")


def test_a_photo_without_a_face_is_refused_with_422(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/image",
        data=_files(image=(png_bytes(colour=(0, 0, 0)), "x.png")),
        content_type="multipart/form-data",
    )
    assert_error(response, 422, "no_face_detected")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {}}, 400),
        ({"json": {"text": ""}}, 422),
        ({"json": {"text": "   \n"}}, 422),
        ({"json": {"text": 42}}, 400),
        ({"json": ["happy"]}, 400),
        ({"data": b"{not json", "content_type": "application/json"}, 400),
        ({"data": b'{"text": "caf\xe9"}', "content_type": "application/json"}, 400),
        ({"data": b"just text", "content_type": "text/plain"}, 415),
        ({"data": b"", "content_type": "application/json"}, 400),
    ],
)
def test_bad_text_bodies_get_a_clear_4xx(user_api: Api, kwargs: dict[str, Any], status: int) -> None:
    assert_error(user_api.post("/api/predict/text", **kwargs), status)


def test_raw_uploads_are_never_written_to_disk_by_default(app: Any, user_api: Api) -> None:
    uploads = Path(app.config["UPLOADS_DIR"])
    user_api.post("/api/predict/image", data=_files(image=(png_bytes(), "me.png")), content_type="multipart/form-data")
    assert not uploads.exists() or not any(uploads.rglob("*"))


def test_raw_uploads_are_kept_only_when_keep_uploads_is_on(app_factory: Any) -> None:
    app = app_factory({"KEEP_UPLOADS": True})
    api = Api(app.test_client())
    api.register()
    api.give_consent()
    api.post("/api/predict/image", data=_files(image=(png_bytes(), "me.png")), content_type="multipart/form-data")
    kept = [p for p in Path(app.config["UPLOADS_DIR"]).rglob("*") if p.is_file()]
    assert len(kept) == 1 and kept[0].read_bytes() == png_bytes()


def test_a_blank_text_box_beside_a_photo_means_no_text(user_api: Api) -> None:
    response = user_api.post(
        "/api/predict/multimodal",
        data={**_files(image=(png_bytes(), "f.png")), "text": "  "},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201
    assert [m["modality"] for m in response.get_json()["modalities"]] == ["face"]


def test_the_configured_limits_are_handed_to_the_recognisers(app_factory: Any, registry: RecognizerRegistry) -> None:
    api = Api(app_factory({"MAX_TEXT_CHARS": 123}).test_client())
    api.register()
    assert api.post("/api/predict/text", json={"text": "happy"}).status_code == 201
    assert registry.get("text").last_options == {"max_chars": 123}  # type: ignore[attr-defined]
    api.post("/api/predict/multimodal", data={"text": "sad"}, content_type="multipart/form-data")
    assert registry.get("text").last_options == {"max_chars": 123}  # type: ignore[attr-defined]


def _kept_uploads_app(app_factory: Any, tmp_path: Path) -> tuple[Any, Api, Path]:
    uploads = tmp_path / "kept-uploads"
    app = app_factory({"KEEP_UPLOADS": True, "UPLOADS_DIR": str(uploads)})
    api = Api(app.test_client())
    api.register()
    api.give_consent()
    return app, api, uploads


def test_deleting_a_prediction_deletes_its_kept_uploads(app_factory: Any, tmp_path: Path) -> None:
    _, api, uploads = _kept_uploads_app(app_factory, tmp_path)
    first = api.post(
        "/api/predict/multimodal",
        data={**_files(image=(png_bytes(), "me.png"), audio=(wav_bytes(), "me.wav")), "text": "happy"},
        content_type="multipart/form-data",
    ).get_json()
    second = api.post(
        "/api/predict/image", data=_files(image=(png_bytes(), "again.png")), content_type="multipart/form-data"
    ).get_json()
    user_folder = uploads / str(api.get("/api/user/profile").get_json()["user"]["id"])
    assert len(list(user_folder.iterdir())) == 3
    kept = {m["modality"]: m["input_summary"].get("kept_file") for m in first["modalities"]}
    assert (uploads / kept["face"]).read_bytes() == png_bytes()
    assert (uploads / kept["speech"]).read_bytes() == wav_bytes()

    assert api.delete(f"/api/predictions/{first['id']}").status_code == 204
    remaining = list(user_folder.iterdir())
    assert [p.name for p in remaining] == [Path(second["modalities"][0]["input_summary"]["kept_file"]).name]


def test_deleting_the_account_deletes_its_kept_uploads_folder(app_factory: Any, tmp_path: Path) -> None:
    app, api, uploads = _kept_uploads_app(app_factory, tmp_path)
    other = Api(app.test_client())
    other.register(email="bob@example.com")
    other.give_consent()
    for client in (api, other):
        client.post(
            "/api/predict/image", data=_files(image=(png_bytes(), "me.png")), content_type="multipart/form-data"
        )
    ada_id = api.get("/api/user/profile").get_json()["user"]["id"]
    bob_id = other.get("/api/user/profile").get_json()["user"]["id"]
    assert (uploads / str(ada_id)).is_dir()

    assert api.delete("/api/user").status_code == 204
    assert not (uploads / str(ada_id)).exists()
    assert len(list((uploads / str(bob_id)).iterdir())) == 1  # nobody else's files
