"""The arithmetic of every fusion strategy, pinned on examples computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from errors import ModelUnavailable
from inference.calibration import temperature_scale
from inference.fusion import (
    DEFAULT_STRATEGY,
    DEFAULT_WEIGHTS,
    STRATEGIES,
    FusionEngine,
    fuse_adaptive,
    fuse_calibrated,
    fuse_voting,
    fuse_weighted,
)
from inference.labels import EMOTIONS


def probs(**values: float) -> list[float]:
    """A 7-vector from named labels; the rest of the mass is spread evenly over the others."""
    rest = [e for e in EMOTIONS if e not in values]
    left = 1.0 - sum(values.values())
    return [values.get(e, left / len(rest) if rest else 0.0) for e in EMOTIONS]


def p(result, label: str) -> float:
    return result.probabilities[EMOTIONS.index(label)]


def test_the_contract_constants_are_the_agreed_ones():
    assert STRATEGIES == ("calibrated", "weighted", "adaptive", "voting", "stacker")
    assert DEFAULT_STRATEGY == "calibrated"
    assert DEFAULT_WEIGHTS == {"face": 0.40, "speech": 0.30, "text": 0.30}


# -- calibrated: the seed design's worked example -----------------------------------------
def test_seed_worked_example_gates_out_text_and_weights_face_and_speech_by_confidence():
    """Face happy 0.80 (confidence 0.80), speech happy 0.90 with calibrated confidence 0.95,
    text confidence 0.25 gated out. Effective weights 0.40 x 0.80 = 0.32 and 0.30 x 0.95 = 0.285.

    The speech temperature that turns happy 0.90 (others 0.1/6) into 0.95 solves
    54 ** (1/T) = 114, i.e. T = ln 54 / ln 114 (a fitted T < 1 sharpens an underconfident model).
    """
    face = probs(happy=0.80)
    speech = probs(happy=0.90)
    text = probs(neutral=0.25, happy=0.20)
    t_speech = math.log(54) / math.log(114)

    result = fuse_calibrated(
        {"face": face, "speech": speech, "text": text}, temperatures={"face": 1.0, "speech": t_speech, "text": 1.0}
    )

    assert result.explanation["calibrated_confidences"]["speech"] == pytest.approx(0.95, abs=1e-6)
    assert result.explanation["used"] == ["face", "speech"]
    assert "text" in result.explanation["gated_out"]
    assert "0.25" in result.explanation["gated_out"]["text"] and "0.30" in result.explanation["gated_out"]["text"]
    assert result.explanation["effective_weights"]["face"] == pytest.approx(0.32 / 0.605, abs=1e-6)
    assert result.explanation["effective_weights"]["speech"] == pytest.approx(0.285 / 0.605, abs=1e-6)
    # Final = (0.32 x face + 0.285 x speech) / (0.32 + 0.285)
    assert result.label == "happy"
    assert p(result, "happy") == pytest.approx((0.32 * 0.80 + 0.285 * 0.95) / 0.605)  # 0.870661
    assert p(result, "angry") == pytest.approx((0.32 * 0.2 / 6 + 0.285 * 0.05 / 6) / 0.605)
    assert result.confidence == pytest.approx(0.870661, abs=1e-6)
    assert sum(result.probabilities) == pytest.approx(1.0)
    assert result.explanation["calibration"] == "fitted"


@pytest.mark.parametrize("temperatures", [{}, {"face": 1.2}])
def test_calibrated_without_a_fitted_temperature_for_every_modality_is_503_not_a_guess(temperatures):
    with pytest.raises(ModelUnavailable) as caught:
        fuse_calibrated({"face": probs(happy=0.8), "text": probs(sad=0.6)}, temperatures=temperatures)

    assert caught.value.status == 503
    assert "text" in caught.value.message and "temperature" in caught.value.message


def test_fitted_temperatures_of_one_are_used_as_they_are():
    result = fuse_calibrated(
        {"face": probs(happy=0.8), "text": probs(sad=0.6)}, temperatures={"face": 1.0, "text": 1.0}
    )

    assert result.explanation["temperatures"] == {"face": 1.0, "text": 1.0}
    assert result.explanation["calibration"] == "fitted"
    # face 0.4 x 0.8 = 0.32, text 0.3 x 0.6 = 0.18
    assert p(result, "happy") == pytest.approx((0.32 * 0.8 + 0.18 * 0.4 / 6) / 0.5)


def test_calibrated_never_gates_out_the_last_modality_it_keeps_the_most_confident():
    face = probs(happy=0.25)
    speech = probs(angry=0.28)
    text = probs(sad=0.20)

    result = fuse_calibrated(
        {"face": face, "speech": speech, "text": text}, temperatures={"face": 1.0, "speech": 1.0, "text": 1.0}
    )

    assert result.explanation["used"] == ["speech"]
    assert set(result.explanation["gated_out"]) == {"face", "text"}
    assert result.label == "angry"
    assert result.probabilities == pytest.approx(speech)


def test_calibrated_applies_the_temperature_before_gating():
    # happy 0.5 softened by T = 3 drops below 0.30 and is gated out; the text stays.
    face = probs(happy=0.5)
    text = probs(sad=0.9)
    softened = temperature_scale(face, 3.0)
    assert softened.max() < 0.30

    result = fuse_calibrated({"face": face, "text": text}, temperatures={"face": 3.0, "text": 1.0})

    assert result.explanation["used"] == ["text"]
    assert result.explanation["calibrated_confidences"]["face"] == pytest.approx(softened.max())
    assert result.label == "sad"


def test_a_single_modality_is_its_own_calibrated_answer():
    result = fuse_calibrated({"text": probs(fear=0.7)}, temperatures={"text": 2.0})

    assert result.label == "fear"
    assert result.probabilities == pytest.approx(temperature_scale(probs(fear=0.7), 2.0).tolist())
    assert result.explanation["effective_weights"] == {"text": 1.0}


# -- weighted ------------------------------------------------------------------------------
def test_weighted_renormalises_the_default_weights_over_the_modalities_present():
    face = probs(happy=0.6, sad=0.4)
    text = probs(sad=1.0)

    result = fuse_weighted({"face": face, "text": text})

    # 0.40 and 0.30 renormalised -> 4/7 and 3/7
    assert result.explanation["effective_weights"] == pytest.approx({"face": 4 / 7, "text": 3 / 7}, abs=1e-6)
    assert p(result, "happy") == pytest.approx(0.6 * 4 / 7)
    assert p(result, "sad") == pytest.approx(0.4 * 4 / 7 + 3 / 7)
    assert result.label == "sad"


def test_weighted_with_all_three_is_the_seeds_linear_formula():
    result = fuse_weighted({"face": probs(happy=1.0), "speech": probs(sad=1.0), "text": probs(sad=1.0)})

    assert p(result, "happy") == pytest.approx(0.40)
    assert p(result, "sad") == pytest.approx(0.60)
    assert result.weights == {"face": 0.40, "speech": 0.30, "text": 0.30}


def test_user_weights_override_the_defaults_and_a_zero_weight_leaves_a_modality_out():
    result = fuse_weighted({"face": probs(happy=1.0), "text": probs(sad=1.0)}, {"face": 1, "text": 0})

    assert result.label == "happy"
    assert p(result, "happy") == pytest.approx(1.0)
    assert result.explanation["used"] == ["face"]
    assert result.explanation["gated_out"] == {"text": "base weight is 0"}


def test_a_partial_weight_mapping_keeps_the_defaults_for_the_rest():
    result = fuse_weighted({"face": probs(happy=1.0), "speech": probs(sad=1.0)}, {"face": 0.9})

    assert result.explanation["effective_weights"] == pytest.approx({"face": 0.75, "speech": 0.25}, abs=1e-6)


# -- adaptive ------------------------------------------------------------------------------
def test_adaptive_weights_each_modality_by_base_weight_times_its_confidence():
    face = probs(happy=0.9, sad=0.1)
    speech = probs(angry=0.5, neutral=0.5)

    result = fuse_adaptive({"face": face, "speech": speech})

    # face 0.40 x 0.9 = 0.36, speech 0.30 x 0.5 = 0.15, total 0.51
    assert result.explanation["effective_weights"]["face"] == pytest.approx(0.36 / 0.51, abs=1e-6)
    assert p(result, "happy") == pytest.approx(0.9 * 0.36 / 0.51)
    assert p(result, "sad") == pytest.approx(0.1 * 0.36 / 0.51)
    assert p(result, "angry") == pytest.approx(0.5 * 0.15 / 0.51)
    assert result.explanation["gated_out"] == {}


def test_adaptive_does_not_gate_a_low_confidence_modality():
    result = fuse_adaptive({"face": probs(happy=0.9), "text": probs(sad=0.2)})

    assert result.explanation["used"] == ["face", "text"]


# -- voting --------------------------------------------------------------------------------
def test_voting_majority_wins_and_probabilities_are_the_mean():
    face = probs(happy=0.6, sad=0.4)
    speech = probs(sad=0.7, happy=0.3)
    text = probs(happy=0.55, neutral=0.45)

    result = fuse_voting({"face": face, "speech": speech, "text": text})

    assert result.label == "happy"
    assert result.explanation["votes"] == {"happy": ["face", "text"], "sad": ["speech"]}
    assert p(result, "happy") == pytest.approx((0.6 + 0.3 + 0.55) / 3)
    assert p(result, "sad") == pytest.approx((0.4 + 0.7) / 3)
    assert result.confidence == pytest.approx((0.6 + 0.3 + 0.55) / 3)


def test_a_voting_tie_goes_to_the_label_with_the_larger_summed_probability():
    result = fuse_voting({"face": probs(happy=0.6, sad=0.4), "speech": probs(sad=0.9, happy=0.1)})

    assert result.label == "sad"  # happy 0.7 vs sad 1.3
    assert result.explanation["tie_break"]["tied"] == ["happy", "sad"]
    assert result.explanation["tie_break"]["summed_probabilities"] == pytest.approx({"happy": 0.7, "sad": 1.3})


def test_the_voted_label_can_differ_from_the_argmax_of_the_mean():
    face = probs(happy=0.4)
    speech = probs(happy=0.4)
    text = probs(sad=0.99)

    result = fuse_voting({"face": face, "speech": speech, "text": text})

    assert result.label == "happy"
    assert p(result, "sad") > p(result, "happy")
    assert result.confidence == pytest.approx((0.4 + 0.4 + 0.01 / 6) / 3)


# -- the engine dispatches to the same arithmetic ------------------------------------------
@pytest.mark.parametrize("strategy", ["calibrated", "weighted", "adaptive", "voting"])
def test_every_strategy_handles_every_non_empty_subset(strategy):
    engine = FusionEngine(None, temperatures={"face": 1.3, "speech": 0.9, "text": 1.1})
    rows = {"face": probs(happy=0.7), "speech": probs(angry=0.6), "text": probs(sad=0.5)}
    subsets = [("face",), ("speech",), ("text",), ("face", "speech"), ("face", "text"), ("speech", "text")]
    for subset in [*subsets, ("face", "speech", "text")]:
        result = engine.fuse({m: rows[m] for m in subset}, strategy)
        assert result.strategy == strategy
        assert sum(result.probabilities) == pytest.approx(1.0)
        assert set(result.explanation["used"]) <= set(subset)
        assert set(result.explanation["used"]) | set(result.explanation["gated_out"]) == set(subset)
        assert result.label in EMOTIONS
        assert np.all(np.asarray(result.probabilities) >= 0)


def test_the_engine_uses_its_fitted_temperatures_for_calibrated():
    engine = FusionEngine(None, temperatures={"face": 2.0})

    result = engine.fuse({"face": probs(happy=0.8)}, "calibrated")

    assert result.explanation["temperatures"] == {"face": 2.0}
    assert result.probabilities == pytest.approx(temperature_scale(probs(happy=0.8), 2.0).tolist())


def test_the_engine_refuses_calibrated_for_a_modality_without_a_fitted_temperature():
    engine = FusionEngine(None, temperatures={"face": 2.0})

    with pytest.raises(ModelUnavailable, match="speech"):
        engine.fuse({"face": probs(happy=0.8), "speech": probs(sad=0.6)}, "calibrated")
    with pytest.raises(ModelUnavailable, match="speech"):
        engine.validate("calibrated", None, ["face", "speech"])
    assert engine.validate("calibrated", None, ["face"])[0] == "calibrated"
    # the strategies that need no temperatures still answer
    assert engine.fuse({"face": probs(happy=0.8), "speech": probs(sad=0.6)}, "weighted").label == "happy"
