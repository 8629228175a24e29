"""Shipping the voice model: the fold networks and the encoder head become one served folder.

The release runs end to end on a small synthetic corpus in RAVDESS's layout (24 actors, one
voiced clip per emotion each) with untrained fold networks, so what is checked is the
plumbing, not accuracy: which actors feed which file, that the served folder loads and
predicts, and that the out-of-fold file holds each training-actor clip once and no test actor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.labels import EMOTIONS
from model_training.datasets import list_clips
from model_training.speech_folds import TEST_ACTORS, actor_folds
from tests.test_speech_preprocessing import wav_bytes

pytestmark = [pytest.mark.training, pytest.mark.slow, pytest.mark.no_database]

#: RAVDESS emotion codes, one clip each (calm is left out: it maps to neutral).
CODES = ("01", "03", "04", "05", "06", "07", "08")
ACTORS = [f"{n:02d}" for n in range(1, 25)]


def voiced_clip(seed: int) -> np.ndarray:
    """1.2 s of a buzzy, syllable-like tone with pauses (it passes the decoder's speech checks)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.2 * 16_000)) / 16_000
    pitch = 110 + 80 * rng.random()
    voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8))
    syllables = (np.sin(2 * np.pi * (3 + 2 * rng.random()) * t) > 0).astype(float)
    return (0.3 * voice * syllables + 0.001 * rng.normal(size=t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ravdess")
    for a, actor in enumerate(ACTORS):
        folder = root / f"Actor_{actor}"
        folder.mkdir()
        for c, code in enumerate(CODES):
            name = f"03-01-{code}-01-01-01-{actor}.wav"
            (folder / name).write_bytes(wav_bytes(voiced_clip(100 * a + c), 16_000))
    return root


@pytest.fixture(scope="module")
def released(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fold folders as speech_folds leaves them (untrained networks), then the probe and the release."""
    from model_training import release_speech, speech_encoder_probe
    from preprocessing.audio import FeatureStats, decode_audio, mfcc_features
    from tests.test_export_parity import voice_network

    work = tmp_path_factory.mktemp("folds")
    cache = tmp_path_factory.mktemp("embeddings")
    clips = list_clips(corpus, None, "filename", r"-(\d+)\.[A-Za-z0-9]+$")
    folds = actor_folds([c.speaker for c in clips], 5)
    (work / "folds.json").write_text(json.dumps(folds))
    network = voice_network(work / "network.keras")
    for number, actors in enumerate(folds, start=1):
        fold_dir = work / f"fold-{number}"
        fold_dir.mkdir()
        (fold_dir / "speech_model.keras").write_bytes(network.read_bytes())
        training = [c for c in clips if c.speaker not in actors and c.speaker not in TEST_ACTORS]
        frames = [mfcc_features(decode_audio(c.path.read_bytes()).signal) for c in training]
        FeatureStats.fit(np.concatenate(frames)).to_json(fold_dir / "feature_stats.json")
        (fold_dir / "summary.json").write_text(json.dumps({"best_epoch": 1, "minutes": 0.1, "accuracy": 0.2}))
        np.savez(fold_dir / "oof.npz", probabilities=np.zeros((1, 7)))
    assert (
        speech_encoder_probe.main(["--data-root", str(corpus), "--work-dir", str(work), "--cache-dir", str(cache)]) == 0
    )
    output = tmp_path_factory.mktemp("models") / "speech"
    arguments = ["--work-dir", str(work), "--embedding-cache", str(cache), "--data-root", str(corpus)]
    assert release_speech.main([*arguments, "--output-dir", str(output)]) == 0
    return output


def test_the_served_folder_lists_five_networks_and_the_encoder_head(released: Path) -> None:
    card = json.loads((released / "card.json").read_text())
    members = card["files"]["members"]
    assert len(members) == 5
    for member in members:
        assert (released / member["graph"]).is_file() and (released / member["feature_stats"]).is_file()
    assert (released / card["files"]["encoder_head"]).is_file()
    assert card["encoder"]["model_sha256"] and card["encoder"]["pooling"] in ("mean", "mean+std")
    markdown = (released / "MODEL_CARD.md").read_text()
    training_rows = [line for line in markdown.splitlines() if line[:4] in {f"| {k} " for k in range(1, 6)}]
    assert len(training_rows) == 5  # one row per fold in the training table


def test_each_network_standardises_with_statistics_of_actors_outside_its_fold(released: Path) -> None:
    card = json.loads((released / "card.json").read_text())
    stats = [json.loads((released / m["feature_stats"]).read_text())["mean"] for m in card["files"]["members"]]
    assert len({tuple(s) for s in stats}) == 5  # five different training sets


def test_out_of_fold_file_holds_each_training_actor_clip_once_and_no_test_actor(released: Path) -> None:
    saved = np.load(released / "out_of_fold.npz")
    names = [str(n) for n in saved["names"]]
    assert len(names) == len(set(names)) == 20 * len(CODES)
    assert not any(name.split("-")[-1].split(".")[0] in TEST_ACTORS for name in names)
    assert np.allclose(saved["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    card = json.loads((released / "card.json").read_text())
    assert card["validation_actors"] == [a for member in card["members"] for a in member["validation_actors"]]
    assert card["test_actors"] == list(TEST_ACTORS)


def test_the_test_actors_are_measured_through_the_served_recogniser(released: Path, corpus: Path) -> None:
    from inference.speech import SpeechRecognizer

    card = json.loads((released / "card.json").read_text())
    test = card["test_metrics"]["RAVDESS actors 21-24"]
    assert test["n"] == len(TEST_ACTORS) * len(CODES)
    recognizer = SpeechRecognizer(released)
    clip = (corpus / "Actor_24" / "03-01-05-01-01-01-24.wav").read_bytes()
    prediction = recognizer.predict(clip)
    assert recognizer.member_count == 5
    assert len(prediction.probabilities) == len(EMOTIONS)
    assert prediction.details["attention"]
    members, head, _ = recognizer.predict_parts([recognizer.preprocess(clip)[0]])
    expected = (np.mean([m[0] for m in members], axis=0) + head[0]) / 2
    assert np.allclose(prediction.probabilities, expected, atol=1e-6)
