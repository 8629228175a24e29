"""Specification of the text recogniser with the real bundled model (models/text/)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from errors import InputTooLarge, ModelUnavailable, UnusableInput
from inference.labels import EMOTIONS
from inference.registry import RecognizerRegistry
from inference.text import TextRecognizer

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
TEXT_MODEL_DIR = MODELS_DIR / "text"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recognizer() -> TextRecognizer:
    model = TextRecognizer(TEXT_MODEL_DIR)
    assert model.is_available(), "the committed text model is missing from models/text/"
    model.load()
    return model


@pytest.mark.parametrize(
    ("sentence", "emotion"),
    [
        ("I just got the job of my dreams, I am so happy and excited!", "happy"),
        ("This is outrageous, I am furious that they lied to us again.", "angry"),
        ("I'm terrified, there is someone walking around outside my house in the dark.", "fear"),
        ("My grandmother passed away last night and I can't stop crying.", "sad"),
    ],
)
def test_clearly_emotional_sentences_get_their_emotion(recognizer: TextRecognizer, sentence: str, emotion: str) -> None:
    prediction = recognizer.predict(sentence)
    assert prediction.label == emotion, prediction.probabilities_dict()


def test_a_prediction_has_seven_probabilities_summing_to_one_and_names_the_model(recognizer: TextRecognizer) -> None:
    prediction = recognizer.predict("Thanks so much, this made my day!").to_dict()
    assert list(prediction["probabilities"]) == list(EMOTIONS)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert prediction["modality"] == "text"
    assert prediction["model_name"] == recognizer.card["model_name"]
    assert prediction["details"] == {"characters": 33, "tokens": prediction["details"]["tokens"], "windows": 1}


def test_emoji_only_text_is_classified_by_what_the_emoji_mean(recognizer: TextRecognizer) -> None:
    prediction = recognizer.predict("😀🎉")
    assert prediction.details["characters"] == 2
    assert prediction.details["windows"] == 1
    assert prediction.details["tokens"] > 2  # spelled out ("grinning face party popper"), not one unknown token
    assert prediction.label == "happy", prediction.probabilities_dict()


@pytest.mark.parametrize("blank", ["", "   \n\t  "])
def test_empty_or_whitespace_only_text_is_refused_with_422(recognizer: TextRecognizer, blank: str) -> None:
    with pytest.raises(UnusableInput) as caught:
        recognizer.predict(blank)
    assert caught.value.status == 422


@pytest.mark.parametrize("invisible", ["\u200b", "\ufe0f", "\u200b \u200d\u2060"])
def test_text_of_only_invisible_characters_is_refused_rather_than_answered_with_the_prior(
    recognizer: TextRecognizer, invisible: str
) -> None:
    with pytest.raises(UnusableInput) as caught:
        recognizer.predict(invisible)
    assert caught.value.status == 422
    assert caught.value.code == "empty_text"


def test_text_that_tokenises_to_nothing_is_refused_with_422(recognizer: TextRecognizer) -> None:
    flag = "\U0001f1eb\U0001f1f7"  # a flag: regional-indicator letters, which carry no emotion and are dropped
    with pytest.raises(UnusableInput) as caught:
        recognizer.predict(flag)
    assert caught.value.code == "empty_text"
    assert "no words or emoji the model can read" in caught.value.message
    with pytest.raises(UnusableInput, match="text 2 of 2"):
        recognizer.predict_proba(["I love this!", flag])


def test_text_over_the_character_limit_is_refused_with_413(recognizer: TextRecognizer) -> None:
    with pytest.raises(InputTooLarge) as caught:
        recognizer.predict("I am happy. " * 500)
    assert caught.value.status == 413
    with pytest.raises(InputTooLarge):
        recognizer.predict("I am happy.", max_chars=5)


def test_a_3000_character_text_is_classified_through_several_windows(recognizer: TextRecognizer) -> None:
    paragraph = (
        "We spent the whole summer by the lake with friends, swimming every morning and "
        "laughing late into the night around the fire. "
    )
    text = (paragraph * 30)[:3000]
    prediction = recognizer.predict(text)
    assert prediction.details["characters"] == len(text.strip())
    assert prediction.details["tokens"] > 128
    assert prediction.details["windows"] > 1


def test_a_long_text_is_not_cut_its_end_still_counts(recognizer: TextRecognizer) -> None:
    calm = "The meeting covers the quarterly schedule, the room booking and the parking rules. " * 12
    grief = "I am heartbroken and crying, my dog died this morning and I miss him so much. " * 12
    only_calm = recognizer.predict(calm)
    calm_then_grief = recognizer.predict(calm + grief)
    sad = EMOTIONS.index("sad")
    assert calm_then_grief.details["windows"] > only_calm.details["windows"]
    assert calm_then_grief.probabilities[sad] > only_calm.probabilities[sad] + 0.2


def test_predict_proba_answers_a_batch_in_scikit_learn_shape(recognizer: TextRecognizer) -> None:
    probabilities = recognizer.predict_proba(["I love this!", "I hate waiting in line.", "word " * 400])
    assert probabilities.shape == (3, len(EMOTIONS))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_the_model_card_documents_test_metrics_windowing_and_the_served_graph(recognizer: TextRecognizer) -> None:
    card = recognizer.card
    assert card["modality"] == "text"
    assert {"CARER test", "GoEmotions test, single-Ekman rows"} <= set(card["test_metrics"])
    assert "window" in card["long_text"]
    assert card["inference"]["quantisation"] in {"float32", "dynamic-int8"}
    served = card["serving"]
    assert served["file"] == "model.onnx" and served["opset"] >= 17
    assert served["size_bytes"] == (TEXT_MODEL_DIR / "model.onnx").stat().st_size <= 50 * 1024 * 1024
    assert served["parity"]["max_abs_diff"] <= 1e-4
    for split, measured in card["test_metrics"].items():  # re-measured through the graph: no drop
        assert served["test_metrics"][split]["accuracy"] >= measured["accuracy"] - 1e-9


@pytest.mark.training
def test_the_onnx_graph_and_eager_pytorch_give_the_same_probabilities(recognizer: TextRecognizer) -> None:
    """The served graph is an implementation detail: same tokens, same windows, same numbers."""
    from model_training.text_network import framework_forward

    texts = ["I love this!", "Why would they do that to us?", "🙂", "so tired of waiting " * 60]
    framework = TextRecognizer(TEXT_MODEL_DIR, forward=framework_forward(TEXT_MODEL_DIR))
    assert np.allclose(recognizer.predict_proba(texts), framework.predict_proba(texts), atol=1e-4)


@pytest.mark.training
def test_the_rust_tokenizer_gives_the_training_tokenizer_s_ids() -> None:
    """Serving reads tokenizer.json with ``tokenizers``; training used transformers' AutoTokenizer."""
    from transformers import AutoTokenizer

    from inference.text import load_tokenizer

    ours, special = load_tokenizer(TEXT_MODEL_DIR)
    theirs = AutoTokenizer.from_pretrained(str(TEXT_MODEL_DIR), local_files_only=True)
    theirs.model_max_length = 10**9
    texts = ["Hello World!", "Café naïve — déjà vu?!", "I'm SO happy :) #blessed", "日本語", "tired " * 300]
    for text in texts:
        assert ours.encode(text, add_special_tokens=False).ids == theirs(text, add_special_tokens=False)["input_ids"]
    assert special == (theirs.cls_token_id, theirs.sep_token_id, theirs.pad_token_id)


def test_a_missing_model_folder_is_model_unavailable(tmp_path: Path) -> None:
    missing = TextRecognizer(tmp_path / "text")
    assert not missing.is_available()
    with pytest.raises(ModelUnavailable) as caught:
        missing.predict("I am happy")
    assert caught.value.status == 503


def test_a_corrupt_graph_file_is_model_unavailable_not_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "text"
    folder.mkdir()
    for name in TextRecognizer.required_files:
        source = TEXT_MODEL_DIR / name
        assert source.is_file(), f"the committed text model file models/text/{name} is missing"
        (folder / name).write_bytes(b"not a model" if name == "model.onnx" else source.read_bytes())
    with pytest.raises(ModelUnavailable):
        TextRecognizer(folder).predict("I am happy")


def test_the_registry_serves_the_bundled_text_model(recognizer: TextRecognizer) -> None:
    registry = RecognizerRegistry.from_models_dir(MODELS_DIR)
    assert "text" in registry.available()
    assert isinstance(registry.get("text"), TextRecognizer)


def test_the_evaluation_script_scores_a_labelled_csv(recognizer: TextRecognizer, tmp_path: Path) -> None:
    from model_training import eval_text

    labels = tmp_path / "texts.csv"
    with labels.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "emotion"])
        writer.writerow(["I am so happy and grateful today!", "happy"])
        writer.writerow(["I'm so scared of what the doctor will say.", "fear"])
        writer.writerow(["   ", "neutral"])
    parser = argparse.ArgumentParser()
    eval_text.add_arguments(parser)
    result = eval_text.evaluate(parser.parse_args(["--labels", str(labels), "--models-dir", str(MODELS_DIR)]))
    assert result["n"] == 2
    assert result["skipped"] == 1
    assert result["accuracy"] == 1.0
    assert len(result["confusion_matrix"]) == len(EMOTIONS)
    json.dumps(result)  # the CLI prints it as JSON


def test_concurrent_requests_get_the_same_answers_as_one_at_a_time(recognizer: TextRecognizer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = ["I love you all so much!", "Get out of my house right now!", "Is it going to rain?"] * 4
    sequential = [recognizer.predict(t).probabilities for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda t: recognizer.predict(t).probabilities, texts))
    assert np.allclose(sequential, concurrent, atol=1e-6)
