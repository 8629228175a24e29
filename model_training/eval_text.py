"""Evaluate the shipped text recogniser on any labelled texts (``text,emotion`` CSV).

    python -m model_training.evaluate text --labels texts.csv [--models-dir models]

Texts go through the same clean-up and windowing as the web application. Labels may be
any of the 7 emotions or the common corpus spellings (joy, love, sadness, anger...).
Rows whose text is empty after clean-up are counted as skipped, not scored.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from errors import EmotionAppError
from model_training.common import DEFAULT_MODELS_DIR, classification_metrics, expected_calibration_error
from model_training.datasets import TextSet, label_index
from preprocessing.text import clean_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", required=True, help="CSV with columns text,emotion")
    parser.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR), help="folder holding text/")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="emotion")
    parser.add_argument("--threads", type=int, default=2)


def set_metrics(data: TextSet, probs: np.ndarray) -> dict[str, Any]:
    """Single-label metrics (rows with one class) plus any-label accuracy on multi-class rows."""
    pred = probs.argmax(axis=1)
    single = np.array([h >= 0 for h in data.hard])
    result: dict[str, Any] = {}
    if single.any():
        truth = np.array(data.hard)[single]
        result["single"] = classification_metrics(truth, pred[single])
        result["single"]["ece"] = expected_calibration_error(probs[single], truth)
    if (~single).any():
        hits = [int(pred[i]) in data.label_sets[i] for i in np.flatnonzero(~single)]
        result["multi"] = {"n": len(hits), "accuracy": float(np.mean(hits))}
    return result


def read_labelled_texts(
    path: Path, text_col: str = "text", label_col: str = "emotion"
) -> tuple[list[str], list[int], int]:
    """Cleaned texts, label indices and the number of rows skipped as unusable."""
    texts: list[str] = []
    labels: list[int] = []
    skipped = 0
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {text_col, label_col} - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"{path.name}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            try:
                text = clean_text(row[text_col] or "")
            except EmotionAppError:
                skipped += 1
                continue
            texts.append(text)
            labels.append(label_index(row[label_col]))
    return texts, labels, skipped


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class figures and confusion matrix of the shipped model."""
    from inference.text import TextRecognizer

    texts, labels, skipped = read_labelled_texts(Path(args.labels), args.text_col, args.label_col)
    if not texts:
        raise SystemExit("no usable labelled texts")
    recognizer = TextRecognizer(Path(args.models_dir) / "text", num_threads=args.threads)
    probabilities = recognizer.predict_proba(texts)
    predictions = np.asarray(probabilities).argmax(axis=1)
    metrics = classification_metrics(labels, predictions)
    metrics["ece"] = expected_calibration_error(probabilities, labels)
    metrics["skipped"] = skipped
    metrics["model_name"] = recognizer.model_name
    metrics["model_version"] = recognizer.model_version
    metrics["quantisation"] = recognizer.card.get("inference", {}).get("quantisation", "float32")
    return metrics
