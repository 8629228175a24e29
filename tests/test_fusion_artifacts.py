"""Fitted artefacts: temperature fitting and loading, and the stacker's loading and refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from errors import ModelUnavailable
from inference.calibration import (
    fit_temperature,
    load_temperatures,
    negative_log_likelihood,
    temperature_scale,
)
from inference.fusion import STACKER_FILE, FusionEngine, stacker_feature_matrix, stacker_features
from inference.labels import EMOTIONS, MODALITIES


def test_temperature_one_is_the_identity_and_no_temperature_changes_the_label():
    row = np.array([0.05, 0.05, 0.1, 0.6, 0.1, 0.05, 0.05])

    assert temperature_scale(row, 1.0) == pytest.approx(row)
    for t in (0.3, 0.8, 1.7, 5.0):
        assert int(np.argmax(temperature_scale(row, t))) == 3


def test_temperature_scaling_is_p_to_the_one_over_t_renormalised():
    row = np.array([0.64, 0.06, 0.06, 0.06, 0.06, 0.06, 0.06])
    # T = 2: sqrt -> 0.8 and 0.244949 x 6; sum 2.269694
    scaled = temperature_scale(row, 2.0)
    assert scaled[0] == pytest.approx(0.8 / (0.8 + 6 * np.sqrt(0.06)))
    assert scaled[0] == pytest.approx(0.352470, abs=1e-6)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_a_non_positive_temperature_is_refused(temperature):
    with pytest.raises(ValueError):
        temperature_scale([1 / 7] * 7, temperature)


def test_fitting_recovers_the_temperature_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 1.5, size=(6000, 7))
    true_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in true_probs])
    overconfident = np.exp(2.0 * logits) / np.exp(2.0 * logits).sum(axis=1, keepdims=True)

    fitted = fit_temperature(overconfident, labels)

    assert fitted == pytest.approx(2.0, rel=0.1)
    assert negative_log_likelihood(overconfident, labels, fitted) < negative_log_likelihood(overconfident, labels)


def test_temperatures_are_read_from_the_fusion_folder(tmp_path):
    (tmp_path / "temperatures.json").write_text(json.dumps({"temperatures": {"face": 1.4, "text": 0.9}}))

    engine = FusionEngine(tmp_path)

    assert engine.temperatures == {"face": 1.4, "text": 0.9}
    result = engine.fuse({"face": [0.1, 0, 0, 0.8, 0.1, 0, 0]}, "calibrated")
    assert result.explanation["temperatures"] == {"face": 1.4}
    (tmp_path / "temperatures.json").write_text(json.dumps({"temperatures": {"face": 1.4, "speech": 1.1, "text": 0.9}}))
    assert FusionEngine(tmp_path).status()["calibration"] == "fitted"


def test_a_missing_temperatures_file_makes_calibrated_fusion_503_and_the_status_says_so(tmp_path):
    engine = FusionEngine(tmp_path)

    assert engine.temperatures == {}
    assert load_temperatures(tmp_path / "temperatures.json") == {}
    assert engine.status()["calibration"].startswith("unavailable")
    with pytest.raises(ModelUnavailable, match=r"temperatures\.json is missing") as caught:
        engine.fuse({"face": [1 / 7] * 7}, "calibrated")
    assert caught.value.status == 503
    with pytest.raises(ModelUnavailable):
        engine.validate("calibrated", None, ["face"])
    assert engine.fuse({"face": [1 / 7] * 7}, "weighted").strategy == "weighted"


def test_temperatures_lacking_a_modality_make_calibrated_fusion_of_that_modality_503(tmp_path):
    (tmp_path / "temperatures.json").write_text(json.dumps({"temperatures": {"face": 1.4}}))
    engine = FusionEngine(tmp_path)

    with pytest.raises(ModelUnavailable, match="text"):
        engine.fuse({"face": [0.1, 0, 0, 0.8, 0.1, 0, 0], "text": [1 / 7] * 7}, "calibrated")
    assert engine.status()["calibration"] == "unavailable (no fitted temperature for speech, text)"


@pytest.mark.parametrize("content", ['{"face": -2}', '{"smell": 1.0}', "not json", '["face"]'])
def test_a_broken_temperatures_file_makes_fusion_unavailable_rather_than_guessing(tmp_path, content):
    (tmp_path / "temperatures.json").write_text(content)

    with pytest.raises(ModelUnavailable) as caught:
        FusionEngine(tmp_path).fuse({"face": [1 / 7] * 7}, "calibrated")
    assert "see the server log" in caught.value.message


def test_the_stacker_strategy_without_a_trained_model_is_503(tmp_path):
    engine = FusionEngine(tmp_path)

    assert not engine.stacker_available()
    with pytest.raises(ModelUnavailable, match="stacker") as caught:
        engine.fuse({"face": [1 / 7] * 7}, "stacker")
    assert caught.value.status == 503
    with pytest.raises(ModelUnavailable):
        engine.validate("stacker", None, ["face"])


def test_a_corrupt_stacker_file_is_503(tmp_path):
    (tmp_path / STACKER_FILE).write_bytes(b"not an ONNX file")

    with pytest.raises(ModelUnavailable, match="failed to load") as caught:
        FusionEngine(tmp_path).fuse({"face": [1 / 7] * 7}, "stacker")
    assert str(tmp_path) not in caught.value.message  # server paths stay in the log


def test_stacker_features_are_three_probability_blocks_then_the_presence_mask():
    face = np.full(7, 1 / 7)
    text = np.eye(7)[3]

    features = stacker_features({"face": face, "text": text})

    assert features.shape == (24,)
    assert features[:7] == pytest.approx(face)
    assert features[7:14] == pytest.approx(np.zeros(7))
    assert features[14:21] == pytest.approx(text)
    assert features[21:].tolist() == [1.0, 0.0, 1.0]
    batch = stacker_feature_matrix({m: np.tile(row, (2, 1)) for m, row in (("face", face), ("text", text))})
    assert batch == pytest.approx(np.tile(features, (2, 1)))


def _train_small_forest(path):
    """A real (tiny) Random Forest, fitted on separable rows and exported as serving reads it."""
    from sklearn.ensemble import RandomForestClassifier

    from model_training.export import export_stacker

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, size=300)  # "surprise" (6) never occurs in training
    rows = {m: np.eye(7)[labels] * 0.7 + 0.1 / 7 * 3 for m in MODALITIES}
    features = stacker_feature_matrix(rows)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(features, labels)
    export_stacker(model, path / STACKER_FILE, validation_features=features)
    return model


@pytest.mark.training
def test_a_trained_stacker_is_loaded_and_maps_its_classes_onto_the_seven_labels(tmp_path):
    _train_small_forest(tmp_path)
    engine = FusionEngine(tmp_path)
    sad = np.eye(7)[EMOTIONS.index("sad")] * 0.7 + 0.1 / 7 * 3

    result = engine.fuse({"face": sad, "speech": sad}, "stacker")

    assert engine.stacker_available()
    assert result.label == "sad"
    assert len(result.probabilities) == 7
    assert result.probabilities[EMOTIONS.index("surprise")] == 0.0
    assert sum(result.probabilities) == pytest.approx(1.0)
    assert result.explanation["presence_mask"] == {"face": 1, "speech": 1, "text": 0}
    assert set(result.explanation["effective_weights"]) == {"face", "speech"}
    assert result.weights == {}
