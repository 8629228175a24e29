"""Train the voice-emotion model: MFCC frames -> Conv1D -> BiLSTM x2 -> attention -> 7 emotions.

    python -m model_training.train_speech [--data-root DIR] [--glob '**/*.flac'] [--epochs 70]

The split is speaker-independent: RAVDESS actors 1-20 train the model, two of them
(``--val-speakers``, one male and one female) are held out for early stopping, and actors
21-24 are touched once, at the end, for the test figures in the model card. A random split
of files would put the same voices in training and test and inflate the accuracy.

Labels come from RAVDESS file names (``03-01-05-01-02-01-12.wav``: third field emotion,
last field actor) or, with ``--labels-from folder``, from each file's parent folder
(``angry/clip.wav``); the speaker is then found with ``--speaker-regex`` in the path
relative to the data root, and ``--val-speakers``/``--test-speakers`` name the held-out
ones. Original 48 kHz WAV files and 16 kHz FLAC copies both work: every file goes through
the serving decoder.
Features of the clips and their augmented copies are cached (``--cache-dir``) so a re-run
skips the decoding.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from errors import EmotionAppError
from inference.labels import NUM_EMOTIONS
from inference.speech import MODEL_FILE as ONNX_FILE
from inference.speech import STATS_FILE
from model_training.common import (
    DEFAULT_DATA_ROOT,
    DEFAULT_MODELS_DIR,
    classification_metrics,
    directory_size_bytes,
    expected_calibration_error,
    limit_tensorflow_threads,
    plot_confusion_matrix,
    plot_training_curves,
    seed_everything,
    write_model_card,
)
from model_training.datasets import Clip, list_clips, speaker_key
from preprocessing.audio import (
    N_FEATURES,
    TARGET_RATE,
    FeatureStats,
    decode_audio,
    frame_seconds,
    mfcc_features,
    pad_frames,
    standardise,
)

#: The framework weights (the served graph, ``speech_model.onnx``, is exported from them).
KERAS_FILE = "speech_model.keras"


def _augment(signal: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One perturbed copy of a trimmed, normalised clip (speed, pitch or additive noise)."""
    import librosa
    import soxr

    if kind.startswith("speed"):
        factor = float(kind[5:])
        # Playing faster = fewer samples at the same rate (tempo and pitch both change, as in Kaldi).
        out = soxr.resample(signal, TARGET_RATE, TARGET_RATE / factor, quality="HQ")
    elif kind == "pitch":
        steps = float(rng.choice([-2.5, -1.5, 1.5, 2.5]))
        out = librosa.effects.pitch_shift(signal, sr=TARGET_RATE, n_steps=steps, n_fft=1024, hop_length=256)
    elif kind == "noise":
        snr_db = float(rng.uniform(10.0, 25.0))
        power = float(np.mean(signal**2))
        out = signal + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), size=signal.shape)
    else:
        raise ValueError(kind)
    out = np.asarray(out, dtype=np.float32)
    gain = float(rng.uniform(0.5, 1.0))
    return out * (gain / max(float(np.max(np.abs(out))), 1e-6))


def extract_features(
    clips: list[Clip], cache_dir: Path, augment_kinds: dict[str, tuple[str, ...]], seed: int
) -> tuple[dict[Path, list[np.ndarray]], list[tuple[Path, str]]]:
    """Raw (unstandardised) features per clip: index 0 the clip itself, then its augmented copies.

    ``augment_kinds`` maps a speaker to the augmentations its clips get (training speakers
    only). Files the decoder refuses are returned separately and reported, never dropped
    silently.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    features: dict[Path, list[np.ndarray]] = {}
    refused: list[tuple[Path, str]] = []
    started = time.time()
    for number, clip in enumerate(clips, 1):
        kinds = augment_kinds.get(clip.speaker, ())
        digest = hashlib.sha1(
            f"{clip.path.resolve()}|{clip.path.stat().st_size}|{kinds}|{seed}|v1".encode()
        ).hexdigest()
        cached = cache_dir / f"{digest[:20]}.npz"
        if cached.is_file():
            with np.load(cached) as stored:
                features[clip.path] = [stored[f"f{i}"] for i in range(len(stored.files))]
        else:
            try:
                decoded = decode_audio(clip.path.read_bytes(), target_rate=TARGET_RATE, max_seconds=60.0)
            except EmotionAppError as exc:
                refused.append((clip.path, exc.code))
                continue
            rng = np.random.default_rng(int(digest[:8], 16))
            versions = [mfcc_features(decoded.signal, TARGET_RATE)]
            versions += [mfcc_features(_augment(decoded.signal, kind, rng), TARGET_RATE) for kind in kinds]
            np.savez(cached, **{f"f{i}": v for i, v in enumerate(versions)})
            features[clip.path] = versions
        if number % 100 == 0 or number == len(clips):
            print(f"features {number}/{len(clips)} ({time.time() - started:.0f} s)", flush=True)
    return features, refused


# -- model ---------------------------------------------------------------------------------
def build_model(hp: dict[str, Any]) -> tuple[Any, Any]:
    """(training model with one output, serving model with probabilities and attention)."""
    import keras
    from keras import layers

    from model_training.speech_layers import AttentionPooling, FrameMask

    inputs = keras.Input(shape=(None, N_FEATURES), name="mfcc")
    mask = FrameMask(pool_size=2, name="frame_mask")(inputs)
    x = inputs
    for i in (1, 2):
        x = layers.Conv1D(hp["conv_filters"], hp["conv_kernel"], padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"conv{i}_bn")(x)
        x = layers.Activation("relu", name=f"conv{i}_relu")(x)
    x = layers.MaxPooling1D(2, name="pool")(x)
    x = layers.Dropout(hp["dropout"], name="conv_dropout")(x)
    x = layers.Bidirectional(layers.LSTM(hp["lstm1"], return_sequences=True), name="bilstm1")(x, mask=mask)
    x = layers.Dropout(hp["dropout"], name="lstm_dropout")(x)
    x = layers.Bidirectional(layers.LSTM(hp["lstm2"], return_sequences=True), name="bilstm2")(x, mask=mask)
    context, weights = AttentionPooling(hp["attention_units"], name="attention")(x, mask=mask)
    x = layers.Dense(256, use_bias=False, name="dense1")(context)
    x = layers.BatchNormalization(name="dense1_bn")(x)
    x = layers.Activation("relu", name="dense1_relu")(x)
    x = layers.Dropout(hp["dense_dropout"], name="dense_dropout")(x)
    x = layers.Dense(128, activation="relu", name="dense2")(x)
    probabilities = layers.Dense(NUM_EMOTIONS, activation="softmax", name="emotion")(x)
    serving = keras.Model(inputs, [probabilities, weights], name="speech_emotion")
    training = keras.Model(inputs, probabilities, name="speech_emotion_train")
    return training, serving


def _spec_augment(seq: np.ndarray, rng: np.random.Generator, hp: dict[str, Any]) -> np.ndarray:
    """SpecAugment-style masking: zero a few time spans and a band of cepstral coefficients."""
    seq = seq.copy()
    frames = len(seq)
    for _ in range(hp["time_masks"]):
        width = int(rng.integers(0, hp["time_mask_width"] + 1))
        if 0 < width < frames // 3:
            start = int(rng.integers(0, frames - width))
            seq[start : start + width] = 0.0
    width = int(rng.integers(0, hp["coef_mask_width"] + 1))
    if width:
        start = int(rng.integers(1, 40 - width))
        for block in (0, 40, 80):  # the same coefficients in MFCC, delta and delta-delta
            seq[:, block + start : block + start + width] = 0.0
    return seq


def make_dataset(
    versions: list[list[np.ndarray]], labels: np.ndarray, hp: dict[str, Any], seed: int, class_weights: np.ndarray
) -> Any:
    """A tf.data pipeline drawing, each epoch, one (augmented or original) version per clip.

    Batches are padded to their longest clip, so the time axis is declared ``None``.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    batch_size = hp["batch_size"]
    n_batches = int(np.ceil(len(versions) / batch_size))

    def one_clip(options: list[np.ndarray]) -> np.ndarray:
        use_original = len(options) == 1 or rng.random() < hp["p_original"]
        seq = options[0 if use_original else int(rng.integers(1, len(options)))]
        if len(seq) > hp["max_frames"]:  # random crop = time shift for long clips
            start = int(rng.integers(0, len(seq) - hp["max_frames"] + 1))
            seq = seq[start : start + hp["max_frames"]]
        elif rng.random() < 0.5:  # shift the clip inside the padded window
            seq = np.concatenate([np.zeros((int(rng.integers(0, 8)), N_FEATURES), np.float32), seq])
        return _spec_augment(seq, rng, hp)

    def batches():
        order = rng.permutation(len(versions))
        for index in range(n_batches):
            ids = order[index * batch_size : (index + 1) * batch_size]
            y = np.eye(NUM_EMOTIONS, dtype=np.float32)[labels[ids]]
            yield pad_frames([one_clip(versions[i]) for i in ids]), y, class_weights[labels[ids]].astype(np.float32)

    signature = (
        tf.TensorSpec((None, None, N_FEATURES), tf.float32),
        tf.TensorSpec((None, NUM_EMOTIONS), tf.float32),
        tf.TensorSpec((None,), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def predict_in_batches(model: Any, sequences: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """Probabilities for variable-length sequences, batched by similar length to limit padding."""
    order = np.argsort([len(s) for s in sequences])
    out = np.zeros((len(sequences), NUM_EMOTIONS), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        result = model(pad_frames([sequences[i] for i in ids]), training=False)
        probs = result[0] if isinstance(result, list | tuple) else result
        out[ids] = np.asarray(probs)
    return out


# -- baseline ------------------------------------------------------------------------------
def svm_baseline(
    train: tuple[list[np.ndarray], np.ndarray],
    val: tuple[list[np.ndarray], np.ndarray],
    test: tuple[list[np.ndarray], np.ndarray],
) -> dict[str, Any]:
    """Mean/std of the 120 frame features + RBF SVM; C chosen on the validation speakers."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    def pooled(seqs: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.concatenate([s.mean(axis=0), s.std(axis=0)]) for s in seqs])

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = ((pooled(x), y) for x, y in (train, val, test))
    best = max(
        (1.0, 3.0, 10.0, 30.0),
        key=lambda c: make_pipeline(StandardScaler(), SVC(C=c)).fit(x_train, y_train).score(x_val, y_val),
    )
    clf = make_pipeline(StandardScaler(), SVC(C=best)).fit(x_train, y_train)
    metrics = classification_metrics(y_test, clf.predict(x_test))
    return {
        "name": "mean/std of 40 MFCC + deltas, RBF SVM (C chosen on the validation actors)",
        "C": best,
        "test_accuracy": metrics["accuracy"],
        "test_macro_f1": metrics["macro_f1"],
        "test_uar": metrics["uar"],
    }


# -- main ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT / "speech" / "ravdess")
    parser.add_argument("--glob", default=None, help="file pattern under the root (default: **/*.wav and **/*.flac)")
    parser.add_argument("--labels-from", choices=("filename", "folder"), default="filename")
    parser.add_argument(
        "--speaker-regex",
        default=r"-(\d+)\.[A-Za-z0-9]+$",
        help="regex whose first group is the speaker, searched in the path relative to the data root "
        "(default: the RAVDESS actor field; e.g. '^([^/]+)/' for ROOT/<speaker>/<emotion>/clip.wav)",
    )
    parser.add_argument("--val-speakers", default="19,20", help="speakers held out for early stopping")
    parser.add_argument(
        "--test-speakers",
        default="21,22,23,24",
        help="speakers used only for the final test (empty: no test split, as in cross-validation)",
    )
    parser.add_argument(
        "--exclude-speakers", default="", help="speakers left out entirely (cross-validation: the test actors)"
    )
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_MODELS_DIR / "speech")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "moodlens-speech-cache"
    )
    parser.add_argument("--epochs", type=int, default=70)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patience", type=int, default=15)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--augment", choices=("none", "full"), default="full")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="use only N clips per split (smoke tests)")
    return parser.parse_args(argv)


def hyper_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The network, optimiser and augmentation settings (fixed in advance; recorded in the card)."""
    return {
        "conv_filters": 64,
        "conv_kernel": 5,
        "lstm1": 128,
        "lstm2": 64,
        "attention_units": 64,
        "dropout": 0.3,
        "dense_dropout": 0.4,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "label_smoothing": 0.1,
        "max_frames": 256,
        "p_original": 0.35,
        "time_masks": 2,
        "time_mask_width": 12,
        "coef_mask_width": 6,
        "augment_copies": ["speed0.9", "speed1.1", "pitch", "noise"] if args.augment == "full" else [],
        "class_weights": "balanced",
    }


@dataclass
class SpeechData:
    """Speaker-independent splits, their standardised MFCC sequences and the training weights."""

    train_clips: list[Clip]
    val_clips: list[Clip]
    test_clips: list[Clip]
    val_speakers: set[str]
    test_speakers: set[str]
    features: dict[Path, list[np.ndarray]]
    refused: list[tuple[Path, str]]
    stats: FeatureStats
    train_versions: list[list[np.ndarray]]
    val_x: list[np.ndarray]
    test_x: list[np.ndarray]
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    class_weights: np.ndarray


@dataclass
class Fitted:
    model: Any  # the best validation epoch of the serving model, reloaded from the checkpoint
    history: dict[str, list[float]]
    best_epoch: int
    baseline: dict[str, Any]
    train_minutes: float


def _speakers(names: str) -> set[str]:
    return {speaker_key(s.strip()) for s in names.split(",") if s.strip()}


def split_clips(clips: list[Clip], args: argparse.Namespace) -> tuple[list[Clip], list[Clip], list[Clip]]:
    """Train, validation and test clips by speaker; excluded speakers are in none of them."""
    val, test, excluded = _speakers(args.val_speakers), _speakers(args.test_speakers), _speakers(args.exclude_speakers)
    kept = [c for c in clips if c.speaker not in excluded]
    return (
        [c for c in kept if c.speaker not in val | test],
        [c for c in kept if c.speaker in val],
        [c for c in kept if c.speaker in test],
    )


def load(args: argparse.Namespace, hp: dict[str, Any]) -> SpeechData | None:
    """List and split the clips by speaker, decode them once (cached) and standardise the features."""
    clips = list_clips(args.data_root, args.glob, args.labels_from, args.speaker_regex)
    if not clips:
        print(f"no labelled audio found under {args.data_root}", file=sys.stderr)
        return None
    val_speakers, test_speakers = _speakers(args.val_speakers), _speakers(args.test_speakers)
    train_clips, val_clips, test_clips = split_clips(clips, args)
    if args.limit:
        train_clips, val_clips, test_clips = (
            cs[:: max(len(cs) // args.limit, 1)][: args.limit] for cs in (train_clips, val_clips, test_clips)
        )
    if not (train_clips and val_clips and (test_clips or not test_speakers)):
        print("train, validation and test speakers must each have clips", file=sys.stderr)
        return None
    print(f"clips: train {len(train_clips)}, validation {len(val_clips)}, test {len(test_clips)}", flush=True)

    kinds = tuple(hp["augment_copies"])
    augment_kinds = {c.speaker: kinds for c in train_clips}
    features, refused = extract_features(train_clips + val_clips + test_clips, args.cache_dir, augment_kinds, args.seed)
    if refused:
        print(f"refused by the decoder ({len(refused)}): {[(p.name, code) for p, code in refused]}", flush=True)
    train_clips, val_clips, test_clips = (
        [c for c in cs if c.path in features] for cs in (train_clips, val_clips, test_clips)
    )

    stats = FeatureStats.fit(np.concatenate([features[c.path][0] for c in train_clips]))
    train_versions = [[standardise(v, stats) for v in features[c.path]] for c in train_clips]
    val_x = [standardise(features[c.path][0], stats) for c in val_clips]
    test_x = [standardise(features[c.path][0], stats) for c in test_clips]
    y_train, y_val, y_test = (np.array([c.label for c in cs]) for cs in (train_clips, val_clips, test_clips))
    counts = np.bincount(y_train, minlength=NUM_EMOTIONS).astype(float)
    class_weights = np.where(counts > 0, counts.sum() / (NUM_EMOTIONS * np.maximum(counts, 1)), 0.0)

    return SpeechData(
        train_clips,
        val_clips,
        test_clips,
        val_speakers,
        test_speakers,
        features,
        refused,
        stats,
        train_versions,
        val_x,
        test_x,
        y_train,
        y_val,
        y_test,
        class_weights,
    )


def fit(args: argparse.Namespace, hp: dict[str, Any], data: SpeechData, started: float) -> Fitted:
    """The SVM baseline on the same split, then the network; the best validation epoch is kept."""
    import keras

    from model_training.speech_layers import CUSTOM_OBJECTS

    features, y_train, y_val, y_test = data.features, data.y_train, data.y_val, data.y_test
    train_clips, val_clips, test_clips = data.train_clips, data.val_clips, data.test_clips
    train_versions, val_x, class_weights = data.train_versions, data.val_x, data.class_weights
    args.output_dir.mkdir(parents=True, exist_ok=True)
    baseline: dict[str, Any] = {}
    if test_clips:  # cross-validation folds have no test split: the baseline belongs to the final run
        baseline = svm_baseline(
            ([features[c.path][0] for c in train_clips], y_train),
            ([features[c.path][0] for c in val_clips], y_val),
            ([features[c.path][0] for c in test_clips], y_test),
        )
        print(f"baseline: {json.dumps(baseline)}", flush=True)

    training, serving = build_model(hp)
    training.compile(
        optimizer=keras.optimizers.Adam(hp["learning_rate"]),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=hp["label_smoothing"]),
        metrics=["accuracy"],
    )
    training.summary(print_fn=lambda line, *a, **k: print(line, flush=True))
    checkpoint = args.output_dir / KERAS_FILE

    class SaveServingModel(keras.callbacks.Callback):
        """Keep the best validation epoch of the two-output serving model on disk as we go."""

        def __init__(self) -> None:
            super().__init__()
            self.best = -1.0
            self.best_loss = float("inf")
            self.best_epoch = 0

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            acc, loss = float(logs.get("val_accuracy", 0.0)), float(logs.get("val_loss", np.inf))
            if acc > self.best or (acc == self.best and loss < self.best_loss):
                self.best, self.best_loss, self.best_epoch = acc, loss, epoch + 1
                serving.save(checkpoint)
                print(f"  saved epoch {epoch + 1} (val_accuracy {acc:.4f}, val_loss {loss:.4f})", flush=True)

    saver = SaveServingModel()
    y_val_onehot = keras.utils.to_categorical(y_val, NUM_EMOTIONS)
    history = training.fit(
        make_dataset(train_versions, y_train, hp, args.seed, class_weights),
        validation_data=(pad_frames(val_x), y_val_onehot),
        epochs=args.epochs,
        verbose=2,
        callbacks=[
            saver,
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=6, min_lr=1e-5, verbose=1),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=args.patience, restore_best_weights=False),
        ],
    )
    train_minutes = (time.time() - started) / 60.0
    best = keras.models.load_model(checkpoint, custom_objects=CUSTOM_OBJECTS, compile=False)
    return Fitted(best, history.history, saver.best_epoch, baseline, train_minutes)


def evaluate(args: argparse.Namespace, fitted: Fitted, data: SpeechData) -> dict[str, Any]:
    """Validation and test figures of the kept epoch, plus the confusion-matrix and training-curve plots."""
    best, y_val, y_test, val_x, test_x = fitted.model, data.y_val, data.y_test, data.val_x, data.test_x
    val_probs = predict_in_batches(best, val_x)
    test_probs = predict_in_batches(best, test_x)
    val_metrics = classification_metrics(y_val, val_probs.argmax(axis=1))
    test_metrics = classification_metrics(y_test, test_probs.argmax(axis=1))
    test_metrics["ece"] = expected_calibration_error(test_probs, y_test)
    print(f"validation: acc {val_metrics['accuracy']:.4f} UAR {val_metrics['uar']:.4f}", flush=True)
    print(
        f"test: acc {test_metrics['accuracy']:.4f} macro-F1 {test_metrics['macro_f1']:.4f} "
        f"UAR {test_metrics['uar']:.4f}",
        flush=True,
    )

    plot_confusion_matrix(
        test_metrics["confusion_matrix"], args.output_dir / "confusion_matrix.png", "Speech: RAVDESS test actors 21-24"
    )
    plot_training_curves(fitted.history, args.output_dir / "training_curves.png", "Speech model training")
    return {"validation": val_metrics, "test": test_metrics}


def export(args: argparse.Namespace, data: SpeechData) -> dict[str, Any]:
    """The feature statistics and the served ONNX graph (checked against Keras on the validation clips)."""
    from model_training.export import export_speech

    data.stats.to_json(args.output_dir / STATS_FILE)
    return export_speech(args.output_dir / KERAS_FILE, args.output_dir / ONNX_FILE, validation=data.val_x)


def write_card(
    args: argparse.Namespace,
    hp: dict[str, Any],
    *,
    data: SpeechData,
    fitted: Fitted,
    evaluation: dict[str, Any],
    serving: dict[str, Any],
) -> None:
    """card.json and MODEL_CARD.md."""
    train_clips, val_clips, test_clips = data.train_clips, data.val_clips, data.test_clips
    val_speakers, test_speakers, refused = data.val_speakers, data.test_speakers, data.refused
    val_metrics, test_metrics, baseline = evaluation["validation"], evaluation["test"], fitted.baseline
    train_minutes, kinds = fitted.train_minutes, tuple(hp["augment_copies"])
    epochs_run = len(fitted.history.get("loss", []))
    size = directory_size_bytes(args.output_dir, [ONNX_FILE, STATS_FILE])
    split = (
        f"Speaker-independent by actor: train on actors {sorted({c.speaker for c in train_clips}, key=_sort_key)}, "
        f"validation (early stopping, checkpoint choice) on actors {sorted(val_speakers, key=_sort_key)}, "
        f"test on actors {sorted(test_speakers, key=_sort_key)} (used once, for these figures)."
    )
    card = {
        "model_name": "speech-cnn-bilstm-attention",
        "modality": "speech",
        "data": (
            "RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391), audio-only speech, 24 actors x 60 clips; "
            "licence CC BY-NC-SA 4.0. Labels: neutral+calm -> neutral, fearful -> fear, surprised -> surprise."
        ),
        "split": split,
        "test_metrics": {"RAVDESS actors 21-24": test_metrics},
        "validation_metrics": {"RAVDESS actors " + "+".join(sorted(val_speakers, key=_sort_key)): val_metrics},
        "baseline": baseline,
        "size_bytes": size,
        "files": {"model": KERAS_FILE, "serving": ONNX_FILE, "feature_stats": STATS_FILE},
        "serving": serving,
        "training": {
            "epochs_run": epochs_run,
            "best_epoch": fitted.best_epoch,
            "wall_clock_minutes": round(train_minutes, 1),
            "hardware": f"CPU ({platform.processor() or platform.machine()}), {args.threads} threads",
            "seed": args.seed,
            "clips": {"train": len(train_clips), "validation": len(val_clips), "test": len(test_clips)},
            "refused_clips": [p.name for p, _ in refused],
            "hyper_parameters": hp,
            "optimizer": "Adam, ReduceLROnPlateau(val_loss, 0.5, patience 6), early stopping on val_accuracy",
        },
        "features": {
            "sample_rate": TARGET_RATE,
            "n_mfcc": 40,
            "per_frame": 120,
            "description": "40 MFCC + delta + delta-delta; 92.9 ms window, 23.25 ms hop "
            "(FFT 2048 / hop 512 at 22.05 kHz, same durations at 16 kHz)",
            "frame_seconds": frame_seconds(TARGET_RATE),
            "pooling": 2,
            "standardisation": STATS_FILE,
            "preprocessing": "mono, soxr resampling to 16 kHz, leading/trailing silence trimmed, peak-normalised",
        },
    }
    extra = [
        "## Baseline on the same split",
        "",
        f"{baseline['name']}: test accuracy {baseline['test_accuracy']:.4f}, macro-F1 {baseline['test_macro_f1']:.4f}, "
        f"UAR {baseline['test_uar']:.4f}.",
        "",
        "## Validation",
        "",
        f"accuracy {val_metrics['accuracy']:.4f}, macro-F1 {val_metrics['macro_f1']:.4f}, UAR {val_metrics['uar']:.4f} "
        f"(best epoch {fitted.best_epoch} of {epochs_run}).",
        "",
        "## Training",
        "",
        f"{train_minutes:.1f} minutes on {card['training']['hardware']}, seed {args.seed}. Augmentation: "
        f"{', '.join(kinds) or 'none'} (precomputed copies) plus SpecAugment-style time and coefficient masking "
        "and random time shifts; balanced class weights; label smoothing 0.1.",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "![training curves](training_curves.png)",
        "",
        "## Limits",
        "",
        "Acted North-American English read by 24 professional actors in a studio; two fixed sentences. "
        "Expect lower accuracy on spontaneous speech, other languages, noisy rooms and phone microphones. "
        "Non-commercial licence of the training data.",
    ]
    write_model_card(args.output_dir, card, extra)
    print(f"wrote {args.output_dir} ({size / 1e6:.2f} MB) in {train_minutes:.1f} min", flush=True)


def main(argv: list[str] | None = None) -> int:
    """load -> fit -> export -> evaluate -> write the card."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.time()
    seed_everything(args.seed)
    import keras
    import tensorflow as tf

    limit_tensorflow_threads(tf, args.threads)
    keras.utils.set_random_seed(args.seed)

    hp = hyper_parameters(args)
    data = load(args, hp)
    if data is None:
        return 2
    fitted = fit(args, hp, data, started)
    serving = export(args, data)
    evaluation = evaluate(args, fitted, data)
    write_card(args, hp, data=data, fitted=fitted, evaluation=evaluation, serving=serving)
    return 0


def _sort_key(speaker: str) -> tuple[int, str]:
    return (int(speaker), "") if speaker.isdigit() else (1 << 30, speaker)


if __name__ == "__main__":
    raise SystemExit(main())
