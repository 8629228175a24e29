"""End to end through the API with the REAL bundled models (every one is committed; a missing one fails).

These run the recognisers trained by model_training/ from models/<modality>/, so they check
the whole chain: upload -> preprocessing -> model -> fusion -> database -> JSON.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from inference.registry import RecognizerRegistry
from tests.conftest import Api

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FACE_PHOTO = FIXTURES / "e2e" / "face_happy.png"
SPEECH_WAV = FIXTURES / "e2e" / "speech_happy.wav"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_registry() -> RecognizerRegistry:
    from app import build_registry

    missing = [m for m in ("face", "speech", "text") if not (MODELS / m / "card.json").is_file()]
    assert not missing, f"committed models missing from models/: {', '.join(missing)}"
    return build_registry(MODELS)


@pytest.fixture
def real_api(app_factory: Any, real_registry: RecognizerRegistry) -> Api:
    api = Api(app_factory({"MODELS_DIR": str(MODELS)}, registry_override=real_registry).test_client())
    assert api.register().status_code == 201
    assert api.give_consent().status_code == 200
    return api


def test_a_happy_sentence_is_stored_as_happy(real_api: Api) -> None:
    response = real_api.post("/api/predict/text", json={"text": "I am so happy today, this is wonderful!"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["emotion"] == "happy"
    [text] = body["modalities"]
    assert text["model_name"] and text["model_version"]
    stored = real_api.get(f"/api/predictions/{body['id']}").get_json()
    assert stored["emotion"] == "happy" and stored["modalities"][0]["input_summary"]["text"].startswith("I am so")


def test_a_face_photo_returns_face_boxes(real_api: Api) -> None:
    response = real_api.post(
        "/api/predict/image",
        data={"image": (io.BytesIO(FACE_PHOTO.read_bytes()), FACE_PHOTO.name)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    [face] = response.get_json()["modalities"]
    box = face["details"]["faces"][0]["box"]
    assert len(box) == 4 and box[2] > 0 and box[3] > 0
    assert face["details"]["image"]["width"] > 0


def _png(pixels: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _post_image(api: Api, data: bytes) -> Any:
    form = {"image": (io.BytesIO(data), "photo.png")}
    return api.post("/api/predict/image", data=form, content_type="multipart/form-data")


def test_a_tight_face_crop_is_found_and_a_strip_without_a_face_is_a_clear_422(real_api: Api) -> None:
    import cv2
    import numpy as np
    from PIL import Image

    face = np.asarray(Image.open(FIXTURES / "face" / "fer2013_privatetest_32318_happy.png").convert("L"))
    tight = cv2.resize(face, (300, 300), interpolation=cv2.INTER_CUBIC)  # a phone crop: the face is the picture
    response = _post_image(real_api, _png(tight))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["modalities"][0]["details"]["faces_detected"] == 1

    before = real_api.get("/api/predictions").get_json()["total"]
    for shape in ((5, 4000), (4000, 5), (300, 60000)):  # strips and a panorama: pixels within the limit
        strip = np.full(shape, 128, np.uint8)
        response = _post_image(real_api, _png(strip))
        assert response.status_code == 422, (shape, response.get_json())
        assert response.get_json()["error"]["code"] == "no_face_detected"
    assert real_api.get("/api/predictions").get_json()["total"] == before  # nothing stored for a refusal


def test_a_wav_recording_returns_an_attention_curve(real_api: Api) -> None:
    response = real_api.post(
        "/api/predict/speech",
        data={"audio": (io.BytesIO(SPEECH_WAV.read_bytes()), SPEECH_WAV.name)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    [speech] = response.get_json()["modalities"]
    attention = speech["details"]["attention"]
    assert 0 < len(attention) <= 200 and {"time", "weight"} <= set(attention[0])
    assert speech["input_summary"]["duration_seconds"] > 0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is needed to encode the MP3 and WebM test clips")
@pytest.mark.parametrize(
    ("suffix", "codec_args", "media_type"),
    [
        (".mp3", ["-c:a", "libmp3lame", "-b:a", "64k"], "audio/mpeg"),
        (".webm", ["-c:a", "libopus", "-b:a", "32k"], "audio/webm"),  # what browsers' MediaRecorder sends
    ],
)
def test_mp3_and_webm_opus_recordings_are_analysed_and_stored(
    real_api: Api, tmp_path: Path, suffix: str, codec_args: list[str], media_type: str
) -> None:
    encoded = tmp_path / f"clip{suffix}"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(SPEECH_WAV), *codec_args, str(encoded)],
        check=True,
        timeout=60,
    )
    response = real_api.post(
        "/api/predict/speech",
        data={"audio": (io.BytesIO(encoded.read_bytes()), encoded.name)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    [speech] = body["modalities"]
    assert speech["input_summary"]["media_type"] == media_type
    assert sum(speech["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    stored = real_api.get(f"/api/predictions/{body['id']}")
    assert stored.status_code == 200 and stored.get_json()["emotion"] == body["emotion"]


def test_all_three_real_models_fuse_into_one_stored_prediction(real_api: Api) -> None:
    response = real_api.post(
        "/api/predict/multimodal",
        data={
            "image": (io.BytesIO(FACE_PHOTO.read_bytes()), FACE_PHOTO.name),
            "audio": (io.BytesIO(SPEECH_WAV.read_bytes()), SPEECH_WAV.name),
            "text": "I am so happy today, this is wonderful!",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["kind"] == "multimodal" and body["fusion"]["strategy"]
    assert {m["modality"] for m in body["modalities"]} == {"face", "speech", "text"}
