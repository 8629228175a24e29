"""Evaluate the shipped face recogniser on any labelled image set.

    python -m model_training.evaluate face --labels faces.csv [--pre-cropped] [--models-dir models]

``faces.csv`` has columns ``path,emotion`` with paths relative to the CSV. Detection runs as
in the web application unless ``--pre-cropped``; images where no face is found are counted
and listed, never dropped silently: the headline metrics cover the images a face was found
in, and ``accuracy_all_images`` counts every missed face as a wrong answer.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from errors import EmotionAppError
from inference.labels import EMOTIONS, emotion_index
from model_training.common import DEFAULT_MODELS_DIR, classification_metrics, expected_calibration_error

#: Spellings of the labels users' CSVs often carry.
ALIASES = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "surprised": "surprise",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", type=Path, required=True, help="CSV with columns path,emotion")
    parser.add_argument("--pre-cropped", action="store_true", help="images are face crops: skip detection")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="folder holding face/")
    parser.add_argument("--max-pixels", type=int, default=40_000_000, help="refuse larger images")


def read_labels(path: Path) -> list[tuple[Path, int]]:
    """(image path, label index) rows of a ``path,emotion`` CSV; paths are relative to the CSV."""
    rows: list[tuple[Path, int]] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"path", "emotion"} <= set(reader.fieldnames):
            raise SystemExit(f"{path}: expected a header with columns path,emotion")
        for line, row in enumerate(reader, start=2):
            label = row["emotion"].strip().lower()
            try:
                index = emotion_index(ALIASES.get(label, label))
            except ValueError as exc:
                raise SystemExit(f"{path}:{line}: {exc}") from None
            rows.append((path.parent / row["path"].strip(), index))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return rows


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from inference.face import FaceRecognizer

    recognizer = FaceRecognizer(Path(args.models_dir) / "face")
    recognizer.load()
    truths: list[int] = []
    probabilities: list[np.ndarray] = []
    no_face: list[str] = []
    refused: dict[str, str] = {}
    rows = read_labels(args.labels)
    for path, label in rows:
        try:
            prediction = recognizer.predict(path.read_bytes(), pre_cropped=args.pre_cropped, max_pixels=args.max_pixels)
        except EmotionAppError as exc:
            if exc.code == "no_face_detected":
                no_face.append(str(path.relative_to(args.labels.parent)))
            else:
                refused[str(path.relative_to(args.labels.parent))] = f"{exc.code}: {exc.message}"
            continue
        except OSError as exc:
            refused[str(path)] = f"unreadable: {exc}"
            continue
        truths.append(label)
        probabilities.append(np.asarray(prediction.probabilities))

    result: dict[str, Any] = {
        "model_name": recognizer.model_name,
        "model_version": recognizer.model_version,
        "images": len(rows),
        "classified": len(truths),
        "no_face_detected": len(no_face),
        "refused": len(refused),
        "pre_cropped": bool(args.pre_cropped),
    }
    if truths:
        probs = np.stack(probabilities)
        predicted = probs.argmax(axis=1)
        result.update(classification_metrics(truths, predicted))
        result["ece"] = expected_calibration_error(probs, truths)
        result["accuracy_all_images"] = float((predicted == np.asarray(truths)).sum() / len(rows))
    else:
        result["labels"] = list(EMOTIONS)
    result["no_face_images"] = no_face[:50]
    result["refused_images"] = dict(list(refused.items())[:50])
    return result
