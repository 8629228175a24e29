"""Specification of the face recogniser: the committed model in models/face behind real OpenCV.

A FER2013 PrivateTest face is classified into the 7 labels; photos without a face, corrupt,
empty, mislabelled and oversized uploads get their clear 4xx error class; two faces give two
boxes; a missing model gives 503 (ModelUnavailable), never a guess.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from errors import (
    EmotionAppError,
    InputTooLarge,
    InvalidInput,
    ModelUnavailable,
    UnsupportedMediaType,
    UnusableInput,
)
from inference.face import FaceRecognizer
from inference.labels import EMOTIONS
from tests.test_face_preprocessing import HAPPY, SURPRISE, encode, photo_with_faces, png_header_only

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO_ROOT / "models" / "face"

pytestmark = pytest.mark.slow  # the committed face model; a missing one fails in the fixtures


@pytest.fixture(scope="module")
def recognizer() -> FaceRecognizer:
    loaded = FaceRecognizer(MODEL_DIR)
    loaded.load()
    return loaded


def jpeg_photo(*faces: Path) -> bytes:
    return encode(np.stack([photo_with_faces(*faces)] * 3, axis=-1), "JPEG", quality=92)


def test_a_fer2013_test_face_is_classified_into_the_seven_labels(recognizer: FaceRecognizer) -> None:
    prediction = recognizer.predict(HAPPY.read_bytes(), pre_cropped=True)
    assert prediction.modality == "face"
    assert prediction.label in EMOTIONS
    assert set(prediction.probabilities_dict()) == set(EMOTIONS)
    assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-6)
    assert prediction.details["faces"][0]["box"] == [0, 0, 48, 48]
    assert prediction.model_name == recognizer.card["model_name"]


def test_the_clearly_happy_test_face_is_recognised_as_happy(recognizer: FaceRecognizer) -> None:
    prediction = recognizer.predict(HAPPY.read_bytes(), pre_cropped=True)
    assert prediction.label == "happy"


def test_a_photo_gets_the_largest_face_with_its_box_and_the_image_size(recognizer: FaceRecognizer) -> None:
    prediction = recognizer.predict(jpeg_photo(HAPPY))
    details = prediction.details
    assert details["image"] == {"width": 640, "height": 480}
    assert len(details["faces"]) == 1
    face = details["faces"][0]
    x, y, w, h = face["box"]
    assert 0 <= x < 640 and 0 <= y < 480 and w > 60 and h > 60
    assert face["emotion"] == prediction.label
    assert face["probabilities"] == pytest.approx(prediction.probabilities_dict(), abs=1e-6)


def test_two_faces_in_one_picture_give_two_boxes_each_with_probabilities(recognizer: FaceRecognizer) -> None:
    prediction = recognizer.predict(jpeg_photo(SURPRISE, HAPPY))
    faces = prediction.details["faces"]
    assert len(faces) == 2
    assert faces[0]["box"][2] * faces[0]["box"][3] >= faces[1]["box"][2] * faces[1]["box"][3]
    for face in faces:
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction.probabilities_dict() == pytest.approx(faces[0]["probabilities"], abs=1e-6)


def test_a_selfie_where_the_face_fills_the_640x480_frame_is_classified(recognizer: FaceRecognizer) -> None:
    import cv2

    face = np.asarray(Image.open(SURPRISE).convert("L"))
    selfie = cv2.resize(face, (640, 480), interpolation=cv2.INTER_CUBIC)
    prediction = recognizer.predict(encode(selfie, "JPEG"))
    assert len(prediction.details["faces"]) == 1
    assert prediction.details["faces"][0]["box"][2] > 300


def test_a_photo_without_a_face_is_refused_with_422_no_face_detected(recognizer: FaceRecognizer) -> None:
    landscape = np.tile(np.linspace(30, 230, 640, dtype=np.uint8), (480, 1))
    with pytest.raises(UnusableInput) as error:
        recognizer.predict(encode(landscape, "PNG"))
    assert error.value.status == 422
    assert error.value.code == "no_face_detected"
    assert "No face was detected" in error.value.message


@pytest.mark.parametrize(
    ("upload", "error_class", "status"),
    [
        pytest.param(b"", InvalidInput, 400, id="zero-byte file"),
        pytest.param(b"Dear diary, this is text renamed selfie.jpg", UnsupportedMediaType, 415, id="text as .jpg"),
        pytest.param(HAPPY.read_bytes()[:300], UnusableInput, 422, id="truncated PNG"),
        pytest.param(png_header_only(20_000, 20_000), InputTooLarge, 413, id="20000x20000 bomb"),
    ],
)
def test_unusable_uploads_get_their_clear_4xx_error(
    recognizer: FaceRecognizer, upload: bytes, error_class: type[EmotionAppError], status: int
) -> None:
    with pytest.raises(error_class) as error:
        recognizer.predict(upload)
    assert error.value.status == status
    assert 400 <= error.value.status < 500


def test_the_pixel_limit_is_an_option(recognizer: FaceRecognizer) -> None:
    with pytest.raises(InputTooLarge):
        recognizer.predict(jpeg_photo(HAPPY), max_pixels=100_000)


def test_predict_proba_takes_a_batch_with_or_without_channel_axis(recognizer: FaceRecognizer) -> None:
    faces = np.stack([np.asarray(Image.open(p), np.float32) / 127.5 - 1.0 for p in (HAPPY, SURPRISE)])
    for batch in (faces, faces[..., None]):
        probabilities = recognizer.predict_proba(batch)
        assert probabilities.shape == (2, 7)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert recognizer.predict_proba(np.repeat(faces, 70, axis=0)).shape == (140, 7)


def test_a_missing_model_folder_raises_model_unavailable_503(tmp_path: Path) -> None:
    missing = FaceRecognizer(tmp_path / "face")
    assert not missing.is_available()
    with pytest.raises(ModelUnavailable) as error:
        missing.predict(HAPPY.read_bytes(), pre_cropped=True)
    assert error.value.status == 503


def test_a_model_folder_without_its_weights_raises_model_unavailable(tmp_path: Path) -> None:
    shutil.copy(MODEL_DIR / "card.json", tmp_path / "card.json")
    with pytest.raises(ModelUnavailable):
        FaceRecognizer(tmp_path).predict(HAPPY.read_bytes(), pre_cropped=True)


def test_the_registry_serves_the_committed_face_model() -> None:
    from inference.registry import RecognizerRegistry

    registry = RecognizerRegistry.from_models_dir(REPO_ROOT / "models")
    assert "face" in registry.available()
    prediction = registry.get("face").predict(HAPPY.read_bytes(), pre_cropped=True)
    assert prediction.modality == "face"


def test_the_model_card_reports_privatetest_metrics_and_the_model_is_small() -> None:
    import json

    card = json.loads((MODEL_DIR / "card.json").read_text())
    assert card["modality"] == "face"
    metrics = card["test_metrics"]["FER2013 PrivateTest (original labels)"]
    assert metrics["n"] == 3589
    assert 0.0 < metrics["accuracy"] <= 1.0
    assert card["size_bytes"] <= 10_000_000
    assert card["input"]["size"] == 48
    assert (MODEL_DIR / "confusion_matrix.png").is_file()
    assert (MODEL_DIR / "training_curves.png").is_file()
    # The robustness suite was measured on the served model's test split and is in the card.
    robustness = card["robustness"]
    assert (robustness["split"], robustness["n"]) == ("PrivateTest", 3589)
    assert robustness["conditions"]["clean"]["accuracy"] == pytest.approx(metrics["accuracy"], abs=0.002)
    assert "## Robustness (camera conditions)" in (MODEL_DIR / "MODEL_CARD.md").read_text()


def test_evaluation_counts_images_without_a_face_instead_of_dropping_them(tmp_path: Path) -> None:
    from model_training.eval_face import evaluate

    (tmp_path / "img").mkdir()
    Image.fromarray(photo_with_faces(HAPPY)).save(tmp_path / "img" / "one_face.png")
    landscape = np.tile(np.linspace(30, 230, 320, dtype=np.uint8), (240, 1))
    Image.fromarray(landscape).save(tmp_path / "img" / "no_face.png")
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "emotion"])
        writer.writerows([["img/one_face.png", "happy"], ["img/no_face.png", "Sadness"]])
    args = argparse.Namespace(
        labels=tmp_path / "labels.csv", pre_cropped=False, models_dir=REPO_ROOT / "models", max_pixels=40_000_000
    )
    result = evaluate(args)
    assert result["images"] == 2
    assert result["classified"] == 1
    assert result["no_face_detected"] == 1
    assert result["no_face_images"] == ["img/no_face.png"]
    assert len(result["confusion_matrix"]) == 7
    assert result["accuracy_all_images"] <= result["accuracy"]


def test_evaluation_of_pre_cropped_faces_skips_detection(tmp_path: Path) -> None:
    from model_training.eval_face import evaluate

    for path in (HAPPY, SURPRISE):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "labels.csv").write_text(f"path,emotion\n{HAPPY.name},happy\n{SURPRISE.name},surprise\n")
    args = argparse.Namespace(
        labels=tmp_path / "labels.csv", pre_cropped=True, models_dir=REPO_ROOT / "models", max_pixels=40_000_000
    )
    result = evaluate(args)
    assert result["classified"] == 2
    assert result["no_face_detected"] == 0
    assert set(result) >= {"accuracy", "macro_f1", "confusion_matrix", "per_class"}


def test_a_webp_photo_is_served_like_a_jpeg(recognizer: FaceRecognizer) -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo_with_faces(HAPPY)).save(buffer, "WEBP", quality=90)
    assert len(recognizer.predict(buffer.getvalue()).details["faces"]) == 1
