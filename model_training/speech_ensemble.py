"""The average of the actor-fold voice models, measured once on the held-out actors 21-24.

    python -m model_training.speech_ensemble [--work-dir DIR] [train_speech options]

Run it after ``model_training.speech_folds`` has trained every fold. Each fold model
standardises its MFCCs with the statistics of its own 16 training actors, so each member is
fed its own standardised copy of a clip (the statistics are written beside the member as
``feature_stats.json``); the ensemble is the mean of the members' probabilities. Its
temperature is fitted on the pooled out-of-fold predictions of actors 1-20, never on the
test actors, whose figures are printed beside each single member's and saved as
``ensemble.json`` in the work folder.
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
) -> tuple[np.ndarray, np.ndarray]:
    """One fold model's probabilities on the test actors, standardised with that fold's training statistics."""
    import keras

    from inference.speech_layers import CUSTOM_OBJECTS
    from model_training import train_speech

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
    return train_speech.predict_in_batches(model, data.test_x), data.y_test


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
    members, labels = [], None
    for number, actors in enumerate(folds, start=1):
        probabilities, labels = member_test_probabilities(args.work_dir / f"fold-{number}", actors, passthrough)
        members.append(probabilities)
    parts = [np.load(p) for p in oof_files]
    summary = ensemble_summary(
        members,
        labels,
        np.concatenate([p["probabilities"] for p in parts]),
        np.concatenate([p["labels"] for p in parts]),
    )
    (args.work_dir / "ensemble.json").write_text(json.dumps(summary, indent=2))
    print(f"ensemble on actors {','.join(TEST_ACTORS)}: {json.dumps(summary)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
