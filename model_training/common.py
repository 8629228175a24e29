"""What every training and evaluation script shares: seeding, metrics, model cards, plots.

Metrics are computed the same way for every modality so the cards and the README compare
like with like: accuracy, macro-F1, unweighted average recall (UAR), per-class
precision/recall/F1 and the confusion matrix, always over the 7 labels in EMOTIONS order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.labels import EMOTIONS, NUM_EMOTIONS

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_data_root() -> Path:
    """Where the training data lives: $MOODLENS_DATA_ROOT, else datasets/ in the repo (git-ignored),
    else a shared/datasets folder beside the checkout (a team's common copy)."""
    configured = os.environ.get("MOODLENS_DATA_ROOT")
    if configured:
        return Path(configured)
    inside = REPO_ROOT / "datasets"
    return inside if inside.is_dir() else REPO_ROOT.parent / "shared" / "datasets"


DEFAULT_DATA_ROOT = _default_data_root()
DEFAULT_MODELS_DIR = REPO_ROOT / "models"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when imported) TensorFlow and PyTorch."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    try:
        import tensorflow as tf

        tf.random.set_seed(seed)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, Any]:
    """Accuracy, macro-F1, UAR, per-class P/R/F1/support and the confusion matrix (rows = truth)."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        recall_score,
    )

    labels = list(range(NUM_EMOTIONS))
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    present = sorted(set(y_true.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # Macro averages run over the classes present in the truth, so a corpus without
        # "disgust" is not penalised for a class it cannot contain.
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class": {
            EMOTIONS[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": list(EMOTIONS),
    }


def expected_calibration_error(probabilities: np.ndarray, y_true: Sequence[int], bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al., 2017)."""
    probabilities = np.asarray(probabilities, dtype=float)
    y_true = np.asarray(y_true, dtype=int)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def ece_noise_floor(probabilities: np.ndarray, bins: int = 15, draws: int = 1000, seed: int = 0) -> dict[str, float]:
    """The ECE a *perfectly calibrated* model with these confidences would show on this many examples.

    ECE is biased upwards on small sets (each bin's accuracy is a noisy estimate), so a measured
    ECE means little below this floor. Each draw marks every example correct with probability
    equal to its confidence and measures the ECE; returns the mean and 95th percentile.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    confidence = probabilities.max(axis=1)
    predicted = probabilities.argmax(axis=1)
    wrong_label = (predicted + 1) % probabilities.shape[1]
    rng = np.random.default_rng(seed)
    values = [
        expected_calibration_error(
            probabilities, np.where(rng.random(len(confidence)) < confidence, predicted, wrong_label), bins
        )
        for _ in range(draws)
    ]
    return {"mean": float(np.mean(values)), "p95": float(np.percentile(values, 95))}


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], path: Path, title: str) -> None:
    """Row-normalised confusion matrix PNG with counts, labels written out (not colour alone)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(NUM_EMOTIONS), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(NUM_EMOTIONS), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(NUM_EMOTIONS):
        for j in range(NUM_EMOTIONS):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_training_curves(history: dict[str, Sequence[float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch for train and validation (keys as Keras names them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history and len(history[key]):
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def directory_size_bytes(path: Path, names: Sequence[str] | None = None) -> int:
    """Total size of the shipped weight files (or of every file under ``path``)."""
    files = [path / n for n in names] if names else [p for p in path.rglob("*") if p.is_file()]
    return int(sum(f.stat().st_size for f in files if f.is_file()))


def write_model_card(output_dir: Path, card: dict[str, Any], markdown_sections: Sequence[str] = ()) -> None:
    """Write ``card.json`` (machine-readable, read by the recogniser) and ``MODEL_CARD.md``.

    ``card`` must hold at least ``model_name``, ``modality``, ``data``, ``split`` and
    ``test_metrics``; ``version`` and ``trained_on`` are filled in when absent.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    card = dict(card)
    today = dt.date.today().isoformat()
    card.setdefault("version", today)
    card.setdefault("trained_on", today)
    card.setdefault("labels", list(EMOTIONS))
    (output_dir / "card.json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")

    lines = [f"# Model card: {card['model_name']}", ""]
    lines += [f"- **Modality:** {card['modality']}", f"- **Trained on:** {card['trained_on']}"]
    if "size_bytes" in card:
        lines.append(f"- **Size:** {card['size_bytes'] / 1e6:.2f} MB")
    lines += ["", "## Data", "", str(card["data"]), "", "## Split", "", str(card["split"]), ""]
    lines += ["## Test metrics", ""]
    for split_name, metrics in card["test_metrics"].items():
        lines.append(f"### {split_name}")
        lines.append("")
        lines.append(metrics_markdown(metrics))
        lines.append("")
    lines += list(markdown_sections)
    (output_dir / "MODEL_CARD.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """Headline figures plus a per-class table in Markdown."""
    head = (
        f"n = {metrics['n']}, accuracy = **{metrics['accuracy']:.4f}**, "
        f"macro-F1 = **{metrics['macro_f1']:.4f}**, UAR = {metrics['uar']:.4f}"
    )
    rows = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, values in metrics["per_class"].items():
        cells = [f"{values[key]:.3f}" for key in ("precision", "recall", "f1")]
        rows.append(f"| {label} | {' | '.join(cells)} | {values['support']} |")
    return head + "\n\n" + "\n".join(rows)


def limit_tensorflow_threads(tf: Any, threads: int) -> None:
    """Pin TensorFlow's thread pools, unless TensorFlow already ran in this process.

    The pools can be set only before TensorFlow first runs an op; a second training call in one
    process (a notebook, the test suite) keeps the pools the first call made instead of failing.
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        print(f"TensorFlow is already initialised in this process; --threads {threads} is not applied")


def card_hash(model_dir: Path) -> str:
    """Short SHA-1 of a model folder's card.json ("nocard" without one): names the exact model version."""
    card = Path(model_dir) / "card.json"
    return hashlib.sha1(card.read_bytes()).hexdigest()[:12] if card.is_file() else "nocard"
