"""The predictor with the real bundled face, speech and text models and fusion artefacts.

Every model is committed, so a missing one fails here instead of skipping. The inputs are the committed
fixtures (a FER2013 test face, a photo for the browser tests, a RAVDESS test-actor clip).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from inference.fusion import STRATEGIES, FusionEngine
from inference.labels import EMOTIONS, MODALITIES

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PHOTO = FIXTURES / "e2e" / "face_happy.png"
CLIP = FIXTURES / "speech" / "03-01-05-02-02-02-24.flac"

pytestmark = pytest.mark.slow


def _missing() -> list[str]:
    return [m for m in (*MODALITIES, "fusion") if not (MODELS / m / "card.json").is_file()]


@pytest.fixture(scope="module")
def predictor():
    missing = _missing()
    assert not missing, f"committed models missing: {', '.join(f'models/{m}' for m in missing)}"
    from inference.predictor import MultimodalEmotionPredictor
    from inference.registry import RecognizerRegistry

    registry = RecognizerRegistry.from_models_dir(MODELS)
    return MultimodalEmotionPredictor(registry, FusionEngine.from_models_dir(MODELS))


def test_the_fusion_artefacts_belong_to_the_bundled_models():
    assert not _missing(), f"committed models missing: {', '.join(_missing())}"
    card = json.loads((MODELS / "fusion" / "card.json").read_text(encoding="utf-8"))
    engine = FusionEngine.from_models_dir(MODELS)

    assert set(engine.temperatures) == set(MODALITIES)  # fitted, not the identity
    assert engine.stacker_available()
    for modality in MODALITIES:
        bundled = json.loads((MODELS / modality / "card.json").read_text(encoding="utf-8"))
        assert card["component_models"][modality]["model_version"] == str(bundled.get("version", "unknown")), (
            f"models/fusion was fitted on another {modality} model version; rerun model_training.train_fusion"
        )


def test_a_clearly_happy_text_is_happy(predictor):
    result = predictor.predict_from_text("This is the best day of my life, I am so happy and grateful!")

    assert result.emotion == "happy"
    assert result.fusion is None


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_photo_voice_and_text_are_fused_by_every_strategy(predictor, strategy):
    result = predictor.predict_multimodal(
        image=PHOTO.read_bytes(),
        audio=CLIP.read_bytes(),
        text="I am furious, this is completely unacceptable!",
        strategy=strategy,
    )

    assert result.modalities_used == ["face", "speech", "text"]
    assert result.dropped == {}
    assert result.emotion in EMOTIONS
    assert sum(result.probabilities_dict().values()) == pytest.approx(1.0, abs=1e-6)
    assert result.fusion.strategy == strategy
    explanation = result.fusion.explanation
    assert set(explanation["used"]) | set(explanation["gated_out"]) == {"face", "speech", "text"}
    if strategy == "calibrated":
        assert explanation["calibration"] == "fitted"


def test_a_photo_without_a_face_is_dropped_and_the_voice_and_text_still_answer(predictor):
    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank, format="PNG")

    result = predictor.predict_multimodal(image=blank.getvalue(), audio=CLIP.read_bytes(), text="so angry right now")

    assert result.modalities_used == ["speech", "text"]
    assert set(result.dropped) == {"face"}
    assert result.dropped["face"]["code"] and result.dropped["face"]["message"]
