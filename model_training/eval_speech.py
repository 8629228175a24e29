"""Evaluate the shipped speech recogniser on any labelled set of recordings.

    python -m model_training.evaluate speech --labels clips.csv [--models-dir models]

``clips.csv`` has the columns ``path,emotion`` (paths relative to the CSV). Emotions are
the 7 labels or common synonyms (fearful, surprised, calm, ...). Every file goes through
the same decoder and model as the web application; files it refuses (silence, too short,
damaged, missing) are counted and listed in the result, never dropped silently.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from errors import EmotionAppError
from inference.labels import EMOTIONS
from model_training.common import DEFAULT_MODELS_DIR, classification_metrics, expected_calibration_error
from model_training.datasets import FOLDER_LABELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", type=Path, required=True, help="CSV with columns path,emotion")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="folder holding speech/")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest clip accepted")


def read_labels(csv_path: Path) -> tuple[list[tuple[Path, int]], list[dict[str, str]]]:
    """(path, label index) rows, plus the rows whose emotion is not one we recognise."""
    rows: list[tuple[Path, int]] = []
    unknown: list[dict[str, str]] = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"path", "emotion"} <= set(reader.fieldnames):
            raise SystemExit(f"{csv_path} needs the columns path,emotion")
        for row in reader:
            name = (row["emotion"] or "").strip().lower()
            label = name if name in EMOTIONS else FOLDER_LABELS.get(name)
            if label is None:
                unknown.append({"path": row["path"], "emotion": row["emotion"]})
                continue
            rows.append(((csv_path.parent / row["path"]).resolve(), EMOTIONS.index(label)))
    return rows, unknown


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Accuracy, macro-F1, UAR, ECE and the confusion matrix over the files the model accepted."""
    from inference.speech import SpeechRecognizer

    recognizer = SpeechRecognizer(Path(args.models_dir) / "speech")
    recognizer.load()
    rows, unknown = read_labels(Path(args.labels))
    y_true: list[int] = []
    probabilities: list[np.ndarray] = []
    refused: list[dict[str, str]] = []
    for path, label in rows:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            refused.append({"path": str(path.name), "code": "missing_file", "message": str(exc)})
            continue
        try:
            prediction = recognizer.predict(raw, max_seconds=args.max_seconds)
        except EmotionAppError as exc:
            refused.append({"path": str(path.name), "code": exc.code, "message": exc.message})
            continue
        y_true.append(label)
        probabilities.append(np.asarray(prediction.probabilities))
    result: dict[str, Any] = {
        "modality": "speech",
        "model_name": recognizer.model_name,
        "model_version": recognizer.model_version,
        "labels_file": str(args.labels),
        "files": len(rows) + len(unknown),
        "evaluated": len(y_true),
        "refused_count": len(refused),
        "refused": refused,
        "unknown_label_count": len(unknown),
        "unknown_labels": unknown,
    }
    if y_true:
        probs = np.stack(probabilities)
        result.update(classification_metrics(y_true, probs.argmax(axis=1)))
        result["ece"] = expected_calibration_error(probs, y_true)
    return result
