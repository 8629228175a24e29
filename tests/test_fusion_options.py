"""Invalid strategies and weights are refused with 422 invalid_fusion_options."""

from __future__ import annotations

import math

import pytest

from errors import EmotionAppError
from inference.fusion import FusionEngine, InvalidFusionOptions, resolve_weights, validate_strategy

ROWS = {"face": [0.1, 0.0, 0.0, 0.8, 0.1, 0.0, 0.0], "text": [0.0, 0.0, 0.0, 0.2, 0.8, 0.0, 0.0]}


def test_invalid_fusion_options_is_a_422_client_error():
    error = InvalidFusionOptions("bad")
    assert isinstance(error, EmotionAppError)
    assert error.status == 422
    assert error.code == "invalid_fusion_options"


@pytest.mark.parametrize("strategy", ["bogus", "", "stack", 3, ["weighted"]])
def test_an_unknown_strategy_is_refused(strategy):
    with pytest.raises(InvalidFusionOptions, match="strategy"):
        validate_strategy(strategy)


def test_strategy_names_are_accepted_in_any_case_and_none_means_the_default():
    assert validate_strategy(" Weighted ") == "weighted"
    assert validate_strategy(None) == "calibrated"


@pytest.mark.parametrize(
    "weights",
    [
        {"face": -0.1},
        {"face": math.nan},
        {"speech": math.inf},
        {"speech": 1e300},
        {"text": "heavy"},
        {"face": True},
        {"face": None},
        {"smell": 0.5},
        {"face": 0, "speech": 0, "text": 0},
        [0.4, 0.3, 0.3],
        "face=1",
    ],
)
def test_invalid_weights_are_refused(weights):
    with pytest.raises(InvalidFusionOptions):
        resolve_weights(weights)


def test_numeric_strings_from_form_fields_are_accepted():
    assert resolve_weights({"face": "0.5", "text": "1"}) == {"face": 0.5, "speech": 0.3, "text": 1.0}


def test_weights_that_are_zero_for_every_modality_given_are_refused():
    with pytest.raises(InvalidFusionOptions, match="all zero"):
        resolve_weights({"face": 0, "text": 0}, ["face", "text"])
    # the same weights are fine when speech (weight 0.3) is part of the request
    assert resolve_weights({"face": 0, "text": 0}, ["face", "speech"])["speech"] == 0.3


@pytest.mark.parametrize("strategy", ["calibrated", "weighted", "adaptive", "voting"])
def test_the_engine_refuses_bad_weights_for_every_strategy(strategy):
    engine = FusionEngine(None)
    with pytest.raises(InvalidFusionOptions):
        engine.fuse(ROWS, strategy, {"face": -1})
    with pytest.raises(InvalidFusionOptions):
        engine.validate(strategy, {"face": "x"}, ["face"])


def test_the_engine_refuses_an_unknown_strategy():
    with pytest.raises(InvalidFusionOptions):
        FusionEngine(None).fuse(ROWS, "median")


def test_weights_sent_with_voting_are_ignored_and_the_explanation_says_so():
    result = FusionEngine(None).fuse(ROWS, "voting", {"face": 0.9})

    assert result.weights == {}
    assert "ignored" in result.explanation["weights_note"]
