"""The average of the actor-fold voice models, measured once on the held-out actors 21-24.

    python -m model_training.speech_ensemble [--work-dir DIR] [train_speech options]

Run it after ``model_training.speech_folds`` has trained every fold. Each fold model
standardises its MFCCs with the statistics of its own 16 training actors, so each member is
fed its own standardised copy of a clip (the statistics are written beside the member as
``feature_stats.json``); the ensemble is the mean of the members' probabilities. Its
temperature is fitted on the pooled out-of-fold predictions of actors 1-20, never on the
test actors, whose figures are printed beside each single member's and saved as
``ensemble.json`` in the work folder.

When ``model_training.speech_encoder_probe`` has run in the same work folder, the Whisper-base
encoder probe (refitted on all of actors 1-20 with the regulariser chosen out-of-fold) is
measured too, alone and averaged with the networks' mean (one vote each); that pair's
temperature comes from the averaged out-of-fold predictions of both.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inference.calibration import fit_temperature, temperature_scale
from inference.labels import EMOTIONS
from model_training.common import (
    classification_metrics,
    ece_noise_floor,
    expected_calibration_error,
    limit_tensorflow_threads,
)
from model_training.datasets import list_clips
from model_training.speech_folds import TEST_ACTORS, parse_args


def ensemble_summary(
    member_probabilities: Sequence[np.ndarray],
    labels: np.ndarray,
    oof_probabilities: np.ndarray,
    oof_labels: np.ndarray,
) -> dict:
    """Test figures of the mean of the members, with the temperature fitted on out-of-fold predictions only."""
    mean = np.mean(np.stack(member_probabilities), axis=0)
    temperature = fit_temperature(oof_probabilities, oof_labels)
    scaled = temperature_scale(mean, temperature)
    metrics = classification_metrics(labels, mean.argmax(axis=1))
    return {
        "clips": len(labels),
        "members": len(member_probabilities),
        "accuracy": metrics["accuracy"],
        "uar": metrics["uar"],
        "macro_f1": metrics["macro_f1"],
        "per_class_recall": {e: metrics["per_class"][e]["recall"] for e in EMOTIONS if e in metrics["per_class"]},
        "confusion_matrix": metrics["confusion_matrix"],
        "ece": expected_calibration_error(mean, labels),
        "temperature_from_out_of_fold": temperature,
        "ece_calibrated": expected_calibration_error(scaled, labels),
        "ece_noise_floor": ece_noise_floor(scaled, draws=300),
        "member_accuracy": [classification_metrics(labels, p.argmax(axis=1))["accuracy"] for p in member_probabilities],
    }


def member_test_probabilities(
    fold_dir: Path, val_actors: list[str], passthrough: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One fold model's probabilities on the test actors (standardised with that fold's training statistics),
    their labels and the clips' file names."""
    import keras

    from model_training import train_speech
    from model_training.speech_layers import CUSTOM_OBJECTS

    args = train_speech.parse_args(
        [
            *passthrough,
            "--val-speakers",
            ",".join(val_actors),
            "--test-speakers",
            ",".join(TEST_ACTORS),
            "--output-dir",
            str(fold_dir),
        ]
    )
    data = train_speech.load(args, train_speech.hyper_parameters(args))
    if data is None:
        raise SystemExit(2)
    data.stats.to_json(fold_dir / train_speech.STATS_FILE)
    model = keras.models.load_model(fold_dir / train_speech.KERAS_FILE, custom_objects=CUSTOM_OBJECTS, compile=False)
    return train_speech.predict_in_batches(model, data.test_x), data.y_test, [c.path.name for c in data.test_clips]


def main(argv: list[str] | None = None) -> int:
    """Predict the test actors with every fold model, average, and print the figures."""
    args, passthrough = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    folds_file = args.work_dir / "folds.json"
    oof_files = sorted(args.work_dir.glob("fold-*/oof.npz"))
    if not folds_file.exists():
        print(f"{folds_file} is missing: run model_training.speech_folds first", file=sys.stderr)
        return 2
    folds = json.loads(folds_file.read_text())
    if len(oof_files) != len(folds):
        print(f"{len(oof_files)} of {len(folds)} folds trained: run model_training.speech_folds", file=sys.stderr)
        return 2
    import tensorflow as tf

    limit_tensorflow_threads(tf, 2)
    members, labels, names = [], None, []
    for number, actors in enumerate(folds, start=1):
        probabilities, labels, names = member_test_probabilities(args.work_dir / f"fold-{number}", actors, passthrough)
        members.append(probabilities)
    parts = [np.load(p) for p in oof_files]
    oof_probs = np.concatenate([p["probabilities"] for p in parts])
    oof_labels = np.concatenate([p["labels"] for p in parts])
    summaries = {"fold_networks": ensemble_summary(members, labels, oof_probs, oof_labels)}
    probe_file = args.work_dir / "encoder_probe_oof.npz"
    if probe_file.exists():
        probe_oof = np.load(probe_file)
        order = {name: i for i, name in enumerate(probe_oof["paths"])}
        aligned = probe_oof["probabilities"][[order[name] for p in parts for name in p["paths"]]]
        probe_test = encoder_probe_test_probabilities(
            passthrough, str(probe_oof["pooling"]), float(probe_oof["regulariser"]), names
        )
        summaries["encoder_probe"] = ensemble_summary([probe_test], labels, aligned, oof_labels)
        summaries["networks_and_probe"] = ensemble_summary(
            [np.mean(members, axis=0), probe_test], labels, (oof_probs + aligned) / 2, oof_labels
        )
    (args.work_dir / "ensemble.json").write_text(json.dumps(summaries, indent=2))
    for name, summary in summaries.items():
        print(f"{name} on actors {','.join(TEST_ACTORS)}: {json.dumps(summary)}", flush=True)
    return 0


def encoder_probe_test_probabilities(
    passthrough: list[str], pooling: str, regulariser: float, names: list[str]
) -> np.ndarray:
    """The encoder probe fitted on actors 1-20, predicting the test clips ``names`` in that order."""
    from model_training import speech_encoder_probe, train_speech

    speech_args = train_speech.parse_args(passthrough)
    clips = list_clips(speech_args.data_root, speech_args.glob, speech_args.labels_from, speech_args.speaker_regex)
    train_clips = [c for c in clips if c.speaker not in TEST_ACTORS]
    by_name = {c.path.name: c for c in clips if c.speaker in TEST_ACTORS}
    test_clips = [by_name[name] for name in names]
    cache = speech_encoder_probe.parse_args([]).cache_dir
    x_train, _ = speech_encoder_probe.embed_clips(train_clips, cache, 1)
    x_test, _ = speech_encoder_probe.embed_clips(test_clips, cache, 1, name="embeddings-test")
    x_train, x_test = (speech_encoder_probe.pool_columns(x, pooling) for x in (x_train, x_test))
    probe = speech_encoder_probe.fit_probe(x_train, np.array([c.label for c in train_clips]), regulariser)
    return probe.predict_proba(x_test)


if __name__ == "__main__":
    raise SystemExit(main())
