"""MultimodalEmotionPredictor: the contract's result shape, dropping failed modalities, refusals.

The recognisers here are small test-only subclasses of the real ``Recognizer`` base class
(real loading, card and ``Prediction`` code paths), answering fixed probabilities or raising
the errors real recognisers raise, so every dropping rule can be exercised without models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from errors import InvalidInput, ModelUnavailable, UnusableInput
from inference.base import InputLimits, Recognizer
from inference.fusion import FusionEngine, InvalidFusionOptions
from inference.labels import EMOTIONS
from inference.predictor import MultimodalEmotionPredictor
from inference.registry import RecognizerRegistry
from inference.results import AnalysisResult


def one_hot_ish(label: str, top: float = 0.7) -> np.ndarray:
    row = np.full(7, (1.0 - top) / 6)
    row[EMOTIONS.index(label)] = top
    return row


class FixedRecognizer(Recognizer):
    """Answers fixed probabilities and records what it was given."""

    def __init__(self, model_dir: Path, modality: str, probabilities: np.ndarray, error: Exception | None = None):
        super().__init__(model_dir)
        self.modality = modality  # type: ignore[misc]
        self.probabilities = probabilities
        self.error = error
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def _load(self) -> None:
        pass

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return np.tile(self.probabilities, (len(batch), 1))

    def _predict(self, raw: Any, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
        self.calls.append((raw, options))
        if self.error is not None:
            raise self.error
        return self.probabilities, {"seen": len(raw)}


def make_recognizer(root: Path, modality: str, label: str, *, error: Exception | None = None, card: bool = True):
    folder = root / modality
    folder.mkdir(parents=True, exist_ok=True)
    if card:
        (folder / "card.json").write_text(json.dumps({"model_name": f"test-{modality}", "version": "t1"}))
    return FixedRecognizer(folder, modality, one_hot_ish(label), error)


@pytest.fixture
def recognizers(tmp_path):
    return {
        "face": make_recognizer(tmp_path, "face", "happy"),
        "speech": make_recognizer(tmp_path, "speech", "happy"),
        "text": make_recognizer(tmp_path, "text", "sad"),
    }


def predictor_for(recognizers, tmp_path, temperatures: dict[str, float] | None = None) -> MultimodalEmotionPredictor:
    """A predictor whose fusion folder holds fitted temperatures (1.0 each unless given), no stacker."""
    fusion_dir = tmp_path / "fusion"
    fusion_dir.mkdir(exist_ok=True)
    fitted = {"face": 1.0, "speech": 1.0, "text": 1.0} if temperatures is None else temperatures
    (fusion_dir / "temperatures.json").write_text(json.dumps({"temperatures": fitted}))
    return MultimodalEmotionPredictor(RecognizerRegistry(recognizers), FusionEngine(fusion_dir))


def test_single_modality_calls_return_the_contract_shape_without_fusion(recognizers, tmp_path):
    predictor = predictor_for(recognizers, tmp_path)

    result = predictor.predict_from_text("what a lovely day")

    assert isinstance(result, AnalysisResult)
    assert result.emotion == "sad"
    assert result.confidence == pytest.approx(0.7)
    assert list(result.probabilities_dict()) == list(EMOTIONS)
    assert result.modalities_used == ["text"]
    assert result.predictions["text"].model_name == "test-text"
    assert result.dropped == {}
    assert result.fusion is None


def test_image_and_audio_accept_bytes_or_a_path(recognizers, tmp_path):
    predictor = predictor_for(recognizers, tmp_path)
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG fake bytes")

    assert predictor.predict_from_image(picture).modalities_used == ["face"]
    assert predictor.predict_from_image(str(picture)).emotion == "happy"
    assert predictor.predict_from_audio(b"RIFF....").modalities_used == ["speech"]
    assert recognizers["face"].calls[0][0] == b"\x89PNG fake bytes"


def test_a_missing_file_is_a_400_not_a_crash(recognizers, tmp_path):
    with pytest.raises(InvalidInput) as caught:
        predictor_for(recognizers, tmp_path).predict_from_image(tmp_path / "nope.jpg")
    assert caught.value.status == 400
    assert caught.value.code == "file_not_found"


def test_single_modality_calls_raise_the_recognisers_own_error(tmp_path):
    refusing = make_recognizer(
        tmp_path, "face", "happy", error=UnusableInput("No face found.", code="no_face_detected")
    )
    predictor = MultimodalEmotionPredictor(RecognizerRegistry({"face": refusing}), FusionEngine(None))

    with pytest.raises(UnusableInput) as caught:
        predictor.predict_from_image(b"img")
    assert caught.value.code == "no_face_detected"
    with pytest.raises(ModelUnavailable):
        predictor.predict_from_text("hello")  # no text recogniser in this registry


def test_all_three_are_fused_with_the_default_calibrated_strategy(recognizers, tmp_path):
    result = predictor_for(recognizers, tmp_path).predict_multimodal(image=b"i", audio=b"a", text="t")

    assert isinstance(result, AnalysisResult)
    assert result.modalities_used == ["face", "speech", "text"]
    assert result.emotion == "happy"  # two happy against one sad
    assert result.dropped == {}
    assert result.fusion.strategy == "calibrated"
    assert result.fusion.weights == {"face": 0.4, "speech": 0.3, "text": 0.3}
    explanation = result.fusion.explanation
    assert explanation["used"] == ["face", "speech", "text"]
    assert sum(explanation["effective_weights"].values()) == pytest.approx(1.0)
    assert explanation["gated_out"] == {}
    assert explanation["calibration"] == "fitted"
    assert explanation["temperatures"] == {"face": 1.0, "speech": 1.0, "text": 1.0}
    assert set(result.predictions) == {"face", "speech", "text"}
    assert sum(result.probabilities_dict().values()) == pytest.approx(1.0)


def test_a_photo_without_a_face_is_dropped_and_the_others_still_answer(recognizers, tmp_path):
    recognizers["face"].error = UnusableInput("No face was found in the image.", code="no_face_detected")

    result = predictor_for(recognizers, tmp_path).predict_multimodal(image=b"i", audio=b"a", text="t")

    assert result.modalities_used == ["speech", "text"]
    assert result.dropped == {"face": {"code": "no_face_detected", "message": "No face was found in the image."}}
    assert "face" not in result.predictions
    assert result.fusion.explanation["used"] == ["speech", "text"]


def test_a_modality_without_a_model_is_dropped_with_model_unavailable(recognizers, tmp_path):
    recognizers["speech"] = make_recognizer(tmp_path / "empty", "speech", "happy", card=False)

    result = predictor_for(recognizers, tmp_path).predict_multimodal(image=b"i", audio=b"a", text="t")

    assert result.modalities_used == ["face", "text"]
    assert result.dropped["speech"]["code"] == "model_unavailable"


def test_an_unexpected_recogniser_failure_is_dropped_when_others_answer(recognizers, tmp_path):
    recognizers["text"].error = RuntimeError("boom")

    result = predictor_for(recognizers, tmp_path).predict_multimodal(image=b"i", text="t")

    assert result.modalities_used == ["face"]
    assert result.dropped["text"]["code"] == "recognizer_failed"
    assert "boom" not in result.dropped["text"]["message"]


def test_one_given_modality_that_fails_raises_its_own_error(recognizers, tmp_path):
    recognizers["text"].error = UnusableInput("The text is empty.", code="empty_text")

    with pytest.raises(UnusableInput) as caught:
        predictor_for(recognizers, tmp_path).predict_multimodal(text="   ")
    assert caught.value.code == "empty_text"


def test_several_modalities_that_all_fail_raise_no_usable_modality_naming_each_reason(recognizers, tmp_path):
    recognizers["face"].error = UnusableInput("No face was found.", code="no_face_detected")
    recognizers["speech"].error = UnusableInput("The clip is silent.", code="silent_audio")

    with pytest.raises(UnusableInput) as caught:
        predictor_for(recognizers, tmp_path).predict_multimodal(image=b"i", audio=b"a")
    assert caught.value.status == 422
    assert caught.value.code == "no_usable_modality"
    assert "No face was found." in caught.value.message and "The clip is silent." in caught.value.message
    assert set(caught.value.dropped) == {"face", "speech"}


@pytest.mark.parametrize(
    ("strategy", "weights"),
    [("median", None), ("weighted", {"face": -1}), ("weighted", {"voice": 1}), ("adaptive", {"text": float("nan")})],
)
def test_invalid_options_are_refused_with_422_before_any_model_runs(recognizers, tmp_path, strategy, weights):
    predictor = predictor_for(recognizers, tmp_path)

    with pytest.raises(InvalidFusionOptions) as caught:
        predictor.predict_multimodal(image=b"i", text="t", strategy=strategy, weights=weights)
    assert caught.value.status == 422
    assert all(not r.calls for r in recognizers.values())


def test_weights_that_are_zero_for_every_given_modality_are_refused_before_any_model_runs(recognizers, tmp_path):
    with pytest.raises(InvalidFusionOptions):
        predictor_for(recognizers, tmp_path).predict_multimodal(
            image=b"i", text="t", strategy="weighted", weights={"face": 0, "text": 0}
        )
    assert all(not r.calls for r in recognizers.values())


def test_the_stacker_without_a_trained_model_is_503_before_any_model_runs(recognizers, tmp_path):
    with pytest.raises(ModelUnavailable):
        predictor_for(recognizers, tmp_path).predict_multimodal(image=b"i", text="t", strategy="stacker")
    assert all(not r.calls for r in recognizers.values())


def test_calibrated_fusion_without_a_temperatures_file_is_503_before_any_model_runs(recognizers, tmp_path):
    predictor = MultimodalEmotionPredictor(RecognizerRegistry(recognizers), FusionEngine(tmp_path / "no-fusion"))

    with pytest.raises(ModelUnavailable, match="temperature") as caught:
        predictor.predict_multimodal(image=b"i", text="t")
    assert caught.value.status == 503
    assert all(not r.calls for r in recognizers.values())
    assert predictor.predict_multimodal(image=b"i", text="t", strategy="weighted").emotion == "happy"


def test_calibrated_fusion_needs_a_fitted_temperature_for_every_given_modality(recognizers, tmp_path):
    predictor = predictor_for(recognizers, tmp_path, temperatures={"face": 1.2, "text": 0.8})

    with pytest.raises(ModelUnavailable, match="speech"):
        predictor.predict_multimodal(image=b"i", audio=b"a", text="t")
    assert all(not r.calls for r in recognizers.values())
    result = predictor.predict_multimodal(image=b"i", text="t")
    assert result.fusion.explanation["temperatures"] == {"face": 1.2, "text": 0.8}


def test_user_weights_change_the_fused_answer(recognizers, tmp_path):
    predictor = predictor_for(recognizers, tmp_path)

    default = predictor.predict_multimodal(image=b"i", text="t", strategy="weighted")
    text_heavy = predictor.predict_multimodal(image=b"i", text="t", strategy="weighted", weights={"text": 0.9})

    assert default.emotion == "happy"
    assert text_heavy.emotion == "sad"
    assert text_heavy.fusion.weights == {"face": 0.4, "text": 0.9}


@pytest.mark.parametrize("strategy", ["calibrated", "weighted", "adaptive", "voting"])
def test_every_strategy_answers_through_the_predictor(recognizers, tmp_path, strategy):
    result = predictor_for(recognizers, tmp_path).predict_multimodal(audio=b"a", text="t", strategy=strategy)

    assert result.fusion.strategy == strategy
    assert result.emotion in EMOTIONS


def test_per_modality_options_reach_their_recogniser(recognizers, tmp_path):
    predictor_for(recognizers, tmp_path).predict_multimodal(
        image=b"i", text="t", options={"face": {"detect_all": True}}
    )

    assert recognizers["face"].calls[0][1] == {"detect_all": True}
    assert recognizers["text"].calls[0][1] == {}


def test_paths_work_in_the_multimodal_call_too(recognizers, tmp_path):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF fake")

    result = predictor_for(recognizers, tmp_path).predict_multimodal(audio_path=clip, text="t")

    assert result.modalities_used == ["speech", "text"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"image": b"i", "image_path": "x.png"},
        {"audio": b"a", "audio_path": "x.wav"},
        {"text": "t", "options": {"smell": {}}},
    ],
)
def test_malformed_calls_are_400(recognizers, tmp_path, kwargs):
    with pytest.raises(InvalidInput) as caught:
        predictor_for(recognizers, tmp_path).predict_multimodal(**kwargs)
    assert caught.value.status == 400


class BrokenRecognizer(FixedRecognizer):
    """A recogniser whose weights file cannot be read."""

    def _load(self) -> None:
        raise OSError(f"Unable to open file: {self.model_dir / 'face_model.onnx'} is truncated")


def test_a_model_that_fails_to_load_is_503_with_a_generic_message_and_the_cause_is_logged(tmp_path, caplog):
    folder = tmp_path / "face"
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps({"model_name": "test-face", "version": "t1"}))
    broken = BrokenRecognizer(folder, "face", one_hot_ish("happy"))

    with caplog.at_level("ERROR", logger="inference.base"), pytest.raises(ModelUnavailable) as caught:
        broken.predict(b"img")

    assert caught.value.status == 503
    assert caught.value.message == "The face model failed to load; see the server log."
    assert str(tmp_path) not in caught.value.message
    logged = [record for record in caplog.records if record.name == "inference.base"]
    assert logged and logged[0].exc_info is not None
    assert "is truncated" in str(logged[0].exc_info[1])


def test_the_registry_gives_each_recogniser_its_own_configured_limit(recognizers):
    limits = InputLimits.from_config({"MAX_IMAGE_PIXELS": "1000", "MAX_AUDIO_SECONDS": 2, "MAX_TEXT_CHARS": 50})
    registry = RecognizerRegistry(recognizers, limits=limits)

    for modality in ("face", "speech", "text"):
        registry.get(modality).predict(b"raw")

    assert recognizers["face"].calls[-1][1] == {"max_pixels": 1000}
    assert recognizers["speech"].calls[-1][1] == {"max_seconds": 2.0}
    assert recognizers["text"].calls[-1][1] == {"max_chars": 50}


def test_a_limit_given_with_the_call_wins_and_an_unset_limit_is_left_to_the_recogniser(recognizers):
    registry = RecognizerRegistry(recognizers, limits=InputLimits(max_seconds=60.0))

    registry.get("speech").predict(b"window", max_seconds=3.0)
    registry.get("text").predict("words")

    assert recognizers["speech"].calls[-1][1] == {"max_seconds": 3.0}
    assert recognizers["text"].calls[-1][1] == {}
