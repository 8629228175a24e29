"""Specification of the face robustness suite (model_training/face_robustness.py).

Every condition turns a 48x48 face into a picture the service's preprocessing takes; the suite
measures the served model on each and reports the drop below clean faces; ``--card`` writes
the table into the model card once, replacing an earlier one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.face import FaceRecognizer
from model_training import face_robustness
from preprocessing.image import FACE_SIZE, whole_image_face
from tests.test_face_preprocessing import HAPPY, SURPRISE, face

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_every_condition_gives_a_picture_the_service_turns_into_a_48x48_face() -> None:
    happy = face(HAPPY)
    for name, perturb in face_robustness.CONDITIONS.items():
        picture = perturb(happy)
        assert picture.dtype == np.uint8 and picture.ndim == 2, name
        assert whole_image_face(picture).shape == (FACE_SIZE, FACE_SIZE), name
    assert face_robustness.CONDITIONS["clean"](happy) is happy
    assert face_robustness.CONDITIONS["looser crop (20 % added each side)"](happy).shape[0] > 224
    assert face_robustness.CONDITIONS["low resolution (24 px face)"](happy).shape == (24, 24)


@pytest.mark.slow
def test_the_suite_measures_the_served_model_and_writes_its_table_into_the_card_once(tmp_path: Path) -> None:
    model_dir = tmp_path / "face"
    shutil.copytree(REPO_ROOT / "models" / "face", model_dir, ignore=shutil.ignore_patterns("*.keras", "*.png"))
    recognizer = FaceRecognizer(model_dir, detector_dir=REPO_ROOT / "models" / "face_detector")
    recognizer.load()
    faces = np.stack([face(HAPPY), face(SURPRISE)] * 2)
    labels = np.array([3, 6, 3, 6])  # happy, surprise
    figures = face_robustness.measure(recognizer, faces, labels)
    assert set(figures) == set(face_robustness.CONDITIONS)
    assert figures["clean"]["drop_points"] == 0.0
    for row in figures.values():
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["drop_points"] == pytest.approx((figures["clean"]["accuracy"] - row["accuracy"]) * 100)

    payload = {"split": "PrivateTest", "n": 4, "conditions": figures}
    table = face_robustness.markdown_table(figures, "PrivateTest", 4)
    for _ in range(2):
        face_robustness.write_to_card(model_dir, payload, table)
    card = json.loads((model_dir / "card.json").read_text())
    assert card["robustness"]["conditions"] == figures and card["robustness"]["n"] == 4
    markdown = (model_dir / "MODEL_CARD.md").read_text()
    assert markdown.count("## Robustness (camera conditions)") == 1
    assert "| JPEG quality 30 |" in markdown and "## Serving (ONNX)" in markdown  # earlier sections are kept
