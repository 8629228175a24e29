"""Actor-grouped cross-validation of the voice model over the training actors (resumable).

    python -m model_training.speech_folds [--folds 5] [--only 1,2] [--work-dir DIR] [train_speech options]

RAVDESS actors 1-20 are cut into folds of whole actors (5 folds of 4, each with two men and
two women where the corpus allows), and one network is trained per fold: it learns from the
other 16 actors and is early-stopped on its own fold. The fold's out-of-fold probabilities
are saved as soon as it finishes (``fold-K/oof.npz``), and a re-run skips every fold that
has them, so the work can span sessions. Together the folds give out-of-fold predictions
for all 1,200 training-actor clips: that is where architectures and hyper-parameters are
compared and where the temperature is fitted, with a sample big enough to measure
calibration. Actors 21-24 are never read here; they stay for the final measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from inference.calibration import fit_temperature, temperature_scale
from model_training.common import (
    classification_metrics,
    ece_noise_floor,
    expected_calibration_error,
    limit_tensorflow_threads,
)
from model_training.datasets import list_clips, speaker_key

#: Actors that never enter a fold: the test split of the model card.
TEST_ACTORS = ("21", "22", "23", "24")


def actor_folds(actors: list[str], n_folds: int, exclude: tuple[str, ...] = TEST_ACTORS) -> list[list[str]]:
    """Disjoint folds of whole actors, balanced by sex (RAVDESS: odd actor numbers are male).

    Actors are dealt round-robin from the sorted male and female lists, so each fold holds
    the same number of each where the counts allow. ``exclude`` (the test actors) never
    appears in any fold.
    """
    if n_folds < 2:
        raise ValueError("cross-validation needs at least two folds")
    keys = sorted({speaker_key(a) for a in actors} - {speaker_key(a) for a in exclude}, key=_sort_key)
    if len(keys) < n_folds:
        raise ValueError(f"{len(keys)} actors cannot fill {n_folds} folds")
    male = [a for a in keys if a.isdigit() and int(a) % 2 == 1]
    others = [a for a in keys if a not in male]
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for i, actor in enumerate(male + others):
        folds[i % n_folds].append(actor)
    return [sorted(f, key=_sort_key) for f in folds]


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated fold numbers to run (default: all)")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "moodlens-speech-folds"
    )
    return parser.parse_known_args(argv)


def fold_arguments(val_actors: list[str], fold_dir: Path, passthrough: list[str]) -> list[str]:
    """train_speech arguments of one fold: its actors validate, the test actors are left out entirely."""
    return [
        *passthrough,
        "--val-speakers",
        ",".join(val_actors),
        "--test-speakers",
        "",
        "--exclude-speakers",
        ",".join(TEST_ACTORS),
        "--output-dir",
        str(fold_dir),
    ]


def run_fold(fold: int, val_actors: list[str], work_dir: Path, passthrough: list[str]) -> dict:
    """Train one fold with train_speech's stages and save its out-of-fold probabilities."""
    from model_training import train_speech

    fold_dir = work_dir / f"fold-{fold}"
    args = train_speech.parse_args(fold_arguments(val_actors, fold_dir, passthrough))
    hp = train_speech.hyper_parameters(args)
    data = train_speech.load(args, hp)
    if data is None:
        raise SystemExit(2)
    fold_dir.mkdir(parents=True, exist_ok=True)
    # The member standardises with its own 16 training actors' statistics, in training and serving alike.
    data.stats.to_json(fold_dir / train_speech.STATS_FILE)
    fitted = train_speech.fit(args, hp, data, time.time())
    probs = train_speech.predict_in_batches(fitted.model, data.val_x)
    metrics = classification_metrics(data.y_val, probs.argmax(axis=1))
    summary = {
        "fold": fold,
        "actors": val_actors,
        "clips": len(data.val_clips),
        "accuracy": metrics["accuracy"],
        "uar": metrics["uar"],
        "ece": expected_calibration_error(probs, data.y_val),
        "best_epoch": fitted.best_epoch,
        "minutes": round(fitted.train_minutes, 1),
    }
    np.savez(
        fold_dir / "oof.npz",
        probabilities=probs,
        labels=data.y_val,
        paths=np.array([str(c.path.name) for c in data.val_clips]),
    )
    (fold_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def pooled(work_dir: Path) -> dict | None:
    """Accuracy, UAR and calibration over every finished fold's out-of-fold predictions.

    The temperature of each fold is fitted on the *other* folds' predictions (cross-fitted),
    so the calibrated ECE is measured on predictions its temperature never saw; the noise
    floor says what a perfectly calibrated model would show on this many clips.
    """
    parts = [np.load(p) for p in sorted(work_dir.glob("fold-*/oof.npz"))]
    if not parts:
        return None
    probs = np.concatenate([p["probabilities"] for p in parts])
    labels = np.concatenate([p["labels"] for p in parts])
    metrics = classification_metrics(labels, probs.argmax(axis=1))
    summary = {
        "folds": len(parts),
        "clips": len(labels),
        "accuracy": metrics["accuracy"],
        "uar": metrics["uar"],
        "per_class_recall": {k: v["recall"] for k, v in metrics["per_class"].items()},
        "ece": expected_calibration_error(probs, labels),
        "temperature_all_folds": fit_temperature(probs, labels),
    }
    if len(parts) >= 2:
        calibrated = []
        for i, part in enumerate(parts):
            rest = [q for j, q in enumerate(parts) if j != i]
            t = fit_temperature(
                np.concatenate([q["probabilities"] for q in rest]), np.concatenate([q["labels"] for q in rest])
            )
            calibrated.append(temperature_scale(part["probabilities"], t))
        scaled = np.concatenate(calibrated)
        summary["ece_cross_fitted_temperature"] = expected_calibration_error(scaled, labels)
        summary["ece_noise_floor"] = ece_noise_floor(scaled, draws=300)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the folds that have no saved out-of-fold predictions yet, then print the pooled figures."""
    args, passthrough = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from model_training import train_speech

    speech_args = train_speech.parse_args(passthrough)
    clips = list_clips(speech_args.data_root, speech_args.glob, speech_args.labels_from, speech_args.speaker_regex)
    if not clips:
        print(f"no labelled audio found under {speech_args.data_root}", file=sys.stderr)
        return 2
    folds = actor_folds([c.speaker for c in clips], args.folds)
    wanted = {int(x) for x in args.only.split(",") if x.strip()} or set(range(1, len(folds) + 1))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    (args.work_dir / "folds.json").write_text(json.dumps(folds))

    import tensorflow as tf

    limit_tensorflow_threads(tf, speech_args.threads)
    for number, actors in enumerate(folds, start=1):
        done = args.work_dir / f"fold-{number}" / "oof.npz"
        if number not in wanted or done.exists():
            print(f"fold {number} (actors {actors}): {'done' if done.exists() else 'not asked for'}", flush=True)
            continue
        print(f"fold {number}: validation actors {actors}", flush=True)
        print(json.dumps(run_fold(number, actors, args.work_dir, passthrough)), flush=True)
    summary = pooled(args.work_dir)
    print(f"out-of-fold: {json.dumps(summary)}", flush=True)
    return 0


def _sort_key(speaker: str) -> tuple[int, str]:
    return (int(speaker), "") if speaker.isdigit() else (1 << 30, speaker)


if __name__ == "__main__":
    raise SystemExit(main())
