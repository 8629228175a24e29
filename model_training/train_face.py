"""Train the facial-expression CNN (MiniXception family) on FER2013 and write models/face/.

    python -m model_training.train_face                       # FER2013 CSV beside the repo
    python -m model_training.train_face --fer-csv fer2013.csv.gz --ferplus fer2013new.csv
    python -m model_training.train_face --image-dir fer2013/  # train/<emotion>/*.png folders

The FER2013 ``Usage`` column gives the split: Training to fit, PublicTest for validation
(early stopping, learning-rate schedule, checkpointing) and PrivateTest only for the final
measurement in the model card. Image folders use ``train/`` to fit, ``validation/`` (or
``val/``, ``PublicTest/``; a stratified 10 % of ``train/`` when absent) to validate and
``test/`` (or ``PrivateTest/``) to measure.

Faces are 48x48 grayscale scaled to [-1, 1] (``(x / 255 - 0.5) * 2``), the normalisation
``preprocessing.image.crop_face`` reproduces at serving time. The script writes the Keras
model, its ONNX graph (mirror-averaged) that the recogniser serves, ``card.json``,
``MODEL_CARD.md``, a confusion-matrix PNG and a training-curve PNG.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.labels import EMOTIONS, NUM_EMOTIONS
from model_training.common import (
    DEFAULT_DATA_ROOT,
    DEFAULT_MODELS_DIR,
    classification_metrics,
    expected_calibration_error,
    limit_tensorflow_threads,
    plot_confusion_matrix,
    plot_training_curves,
    seed_everything,
    write_model_card,
)
from model_training.datasets import (
    IMAGE_SIZE,
    Split,
    ferplus_majority,
    load_fer_csv,
    load_ferplus,
    load_image_folders,
    normalise,
)

KERAS_FILE = "face_model.keras"
ONNX_FILE = "face_model.onnx"
NORMALISATION = "grayscale uint8 -> float32 (x / 255 - 0.5) * 2, range [-1, 1]"


def class_weights(labels: np.ndarray, power: float) -> dict[int, float]:
    """Inverse-frequency weights raised to ``power`` (0 = none, 1 = balanced), mean 1 over samples."""
    counts = np.bincount(labels, minlength=NUM_EMOTIONS).astype(np.float64)
    raw = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1) / NUM_EMOTIONS) ** power, 0.0)
    raw /= (raw[labels]).mean()
    return {i: float(raw[i]) for i in range(NUM_EMOTIONS)}


# -- model -----------------------------------------------------------------------------------
def build_mini_xception(filters: tuple[int, ...], l2: float, dropout: float) -> Any:
    """MiniXception (Arriaga et al., 2017): two Conv2D(8) entry layers, residual separable
    blocks with 1x1 strided shortcuts, a final Conv2D to 7 maps, global average pooling."""
    import keras
    from keras import layers

    regulariser = keras.regularizers.L2(l2) if l2 > 0 else None
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = inputs
    for _ in range(2):
        x = layers.Conv2D(8, 3, use_bias=False, kernel_regularizer=regulariser)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    for width in filters:
        shortcut = layers.Conv2D(width, 1, strides=2, padding="same", use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
        x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, depthwise_regularizer=regulariser)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, depthwise_regularizer=regulariser)(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.Add()([x, shortcut])
    if dropout > 0:
        x = layers.Dropout(dropout)(x)
    x = layers.Conv2D(NUM_EMOTIONS, 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax", name="probabilities")(x)
    name = "mini_xception_" + "_".join(str(f) for f in filters)
    return keras.Model(inputs, outputs, name=name)


# -- augmentation ----------------------------------------------------------------------------
def make_augmenter(rotation_deg: float, shift: float, zoom: float) -> Any:
    """One random affine warp per image (flip, rotation, shift, zoom) in a single resampling op."""
    import tensorflow as tf

    size = float(IMAGE_SIZE)
    centre = (size - 1.0) / 2.0

    def augment(images: Any, targets: Any, *weights: Any) -> Any:
        n = tf.shape(images)[0]
        angle = tf.random.uniform([n], -1.0, 1.0) * (rotation_deg * np.pi / 180.0)
        scale = 1.0 + tf.random.uniform([n], -zoom, zoom)  # >1 shows more of the picture (zoom out)
        flip = tf.where(tf.random.uniform([n]) < 0.5, -1.0, 1.0)
        dx = tf.random.uniform([n], -shift, shift) * size
        dy = tf.random.uniform([n], -shift, shift) * size
        cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
        # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2), about the centre.
        a0, a1 = cos * flip, -sin
        b0, b1 = sin * flip, cos
        a2 = centre - a0 * centre - a1 * centre + dx
        b2 = centre - b0 * centre - b1 * centre + dy
        zeros = tf.zeros([n])
        transform = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transform,
            output_shape=tf.constant([IMAGE_SIZE, IMAGE_SIZE]),
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )
        return (warped, targets, *weights)

    return augment


def make_degrader(probability: float, jpeg_quality: tuple[int, int] = (30, 70)) -> Any:
    """Photometric and camera degradations the robustness suite measures, each on a random
    share ``probability`` of a batch's faces: brightness and contrast, Gaussian-like blur, a
    resolution round trip (down to 20-36 px and back, as an enlarged webcam crop looks) and JPEG
    compression. FER2013 faces are clean 48x48 crops; users' photos are not.

    Works on a batch in the model's [-1, 1] scale and leaves the targets untouched.
    """
    import tensorflow as tf

    size = IMAGE_SIZE
    kernel_1d = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32)
    kernel = np.outer(kernel_1d, kernel_1d)
    kernel = (kernel / kernel.sum()).reshape(5, 5, 1, 1)

    def chosen(n: Any) -> Any:
        return tf.cast(tf.random.uniform([n, 1, 1, 1]) < probability, tf.float32)

    def jpeg(face: Any) -> Any:
        pixels = tf.cast(tf.clip_by_value((face / 2.0 + 0.5) * 255.0, 0.0, 255.0), tf.uint8)
        squeezed = tf.image.random_jpeg_quality(pixels, jpeg_quality[0], jpeg_quality[1])
        return (tf.cast(squeezed, tf.float32) / 255.0 - 0.5) * 2.0

    def degrade(images: Any, targets: Any, *weights: Any) -> Any:
        n = tf.shape(images)[0]
        x = images
        # Brightness and contrast about each face's own mean.
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        contrast = tf.random.uniform([n, 1, 1, 1], 0.6, 1.4)
        shift = tf.random.uniform([n, 1, 1, 1], -0.4, 0.4)
        adjusted = tf.clip_by_value((x - mean) * contrast + mean + shift, -1.0, 1.0)
        pick = chosen(n)
        x = pick * adjusted + (1.0 - pick) * x
        # Blur: a blend with a 5x5 binomial-blurred copy (strength uniform in [0, 1]).
        blurred = tf.nn.conv2d(tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC"), kernel, 1, "VALID")
        pick = chosen(n) * tf.random.uniform([n, 1, 1, 1])
        x = pick * blurred + (1.0 - pick) * x
        # Resolution round trip: one small size per batch, bilinear both ways.
        small = tf.random.uniform([], 20, 37, dtype=tf.int32)
        round_trip = tf.image.resize(tf.image.resize(x, [small, small], "area"), [size, size], "bilinear")
        pick = chosen(n)
        x = pick * round_trip + (1.0 - pick) * x
        # JPEG at low quality.
        pick = chosen(n)
        x = pick * tf.map_fn(jpeg, x, fn_output_signature=tf.float32) + (1.0 - pick) * x
        return (tf.ensure_shape(x, images.shape), targets, *weights)

    return degrade


def cosine_by_epoch(base_lr: float, epochs: int, floor: float = 1e-5) -> Any:
    """LearningRateScheduler: cosine over the planned epochs. It depends only on the epoch number,
    so a run resumed from its backup continues the same schedule."""
    import keras

    def rate(epoch: int, _lr: float) -> float:
        fraction = min(epoch / max(epochs - 1, 1), 1.0)
        return float(floor + (base_lr - floor) * 0.5 * (1.0 + np.cos(np.pi * fraction)))

    return keras.callbacks.LearningRateScheduler(rate, verbose=1)


# -- training --------------------------------------------------------------------------------
class TimeBudget:
    """Keras callback factory: stop after the epoch that crosses a wall-clock budget."""

    @staticmethod
    def create(minutes: float) -> Any:
        import keras

        class _TimeBudget(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.started = time.monotonic()
                self.epoch_seconds: list[float] = []
                self._epoch_start = self.started
                self.stopped_for_time = False

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._epoch_start = time.monotonic()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                now = time.monotonic()
                self.epoch_seconds.append(now - self._epoch_start)
                longest = max(self.epoch_seconds)
                if now - self.started + longest > minutes * 60.0:
                    print(f"\nstopping: the next epoch would pass the {minutes:.0f}-minute budget")
                    self.stopped_for_time = True
                    self.model.stop_training = True

        return _TimeBudget()


BACKUP_STATE = "state.json"


class EpochBackup:
    """Keras callback factory: after every epoch, the model (with its optimiser state) as
    ``model-<epochs done>.keras``, then ``state.json`` naming it, each written to a temporary
    file and renamed into place, then older models removed. A process killed at any moment
    leaves a state that names a whole model of the epoch it says (Keras' own BackupAndRestore
    writes in place, and a kill during that write left a file that could not be opened)."""

    @staticmethod
    def create(folder: Path) -> Any:
        import keras

        class _EpochBackup(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                folder.mkdir(parents=True, exist_ok=True)
                name = f"model-{epoch + 1}.keras"
                partial = folder / f"partial-{name}"
                self.model.save(partial)
                os.replace(partial, folder / name)
                state = folder / f"partial-{BACKUP_STATE}"
                state.write_text(json.dumps({"epochs_done": epoch + 1, "model": name}))
                os.replace(state, folder / BACKUP_STATE)
                for older in folder.glob("model-*.keras"):
                    if older.name != name:
                        older.unlink(missing_ok=True)

        return _EpochBackup()


def cosine_by_time(base_lr: float, minutes: float, floor: float = 1e-5) -> Any:
    """Keras callback: cosine-anneal the learning rate over the wall-clock budget.

    On a shared CPU the number of epochs that fit is unknown up front; annealing by elapsed
    time still ends training at a low learning rate, which a plateau schedule may never reach.
    """
    import keras

    class _CosineByTime(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.started = time.monotonic()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            fraction = min((time.monotonic() - self.started) / (minutes * 60.0), 1.0)
            lr = floor + (base_lr - floor) * 0.5 * (1.0 + np.cos(np.pi * fraction))
            self.model.optimizer.learning_rate.assign(lr)
            print(f"epoch {epoch + 1}: learning rate {lr:.2e} ({fraction:.0%} of the time budget used)")

    return _CosineByTime()


def predict_with_flip(model: Any, x: np.ndarray, tta: bool, batch_size: int = 512) -> np.ndarray:
    """Softmax probabilities, averaged with the mirrored face when ``tta`` is on."""
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    if tta:
        probs = (probs + model.predict(x[:, :, ::-1, :], batch_size=batch_size, verbose=0)) / 2.0
    return np.asarray(probs, dtype=np.float64)


def choose_ensemble(
    model: Any, member_paths: list[Path], x_val: np.ndarray, y_val: np.ndarray, tta: bool
) -> tuple[Any, dict[str, Any] | None]:
    """Average ``model`` with earlier trained networks when that beats ``model`` alone on validation.

    Networks of different widths and seeds make different mistakes, so their mean softmax is
    often more accurate than either. The decision uses validation (PublicTest) only; the served
    model is then one Keras graph holding every member, so the recogniser does not change.
    """
    if not member_paths:
        return model, None
    import keras

    earlier = [keras.models.load_model(path) for path in member_paths]
    names = [model.name] + [m.name for m in earlier]
    for index, member in enumerate(earlier, start=1):  # unique names inside the combined graph;
        member.name = f"earlier{index}_{member.name}"  # this run's network keeps its own
    members = [model, *earlier]
    alone = [classification_metrics(y_val, predict_with_flip(m, x_val, tta).argmax(axis=1)) for m in members]
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    averaged = keras.layers.Average(name="probabilities")([member(inputs) for member in members])
    ensemble = keras.Model(inputs, averaged, name="ensemble_" + "_plus_".join(names))
    combined = classification_metrics(y_val, predict_with_flip(ensemble, x_val, tta).argmax(axis=1))
    use = combined["accuracy"] > alone[0]["accuracy"]
    report = {
        "members": names,
        "member_files": ["(this run)"] + [Path(p).name for p in member_paths],
        "validation_accuracy_alone": [round(a["accuracy"], 4) for a in alone],
        "validation_accuracy_averaged": round(combined["accuracy"], 4),
        "used": use,
        "rule": "serve the average of the members' softmax when it beats this run's network alone on PublicTest",
    }
    print("ensemble on validation:", json.dumps(report), flush=True)
    return (ensemble if use else model), report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data (FER2013 CSV by default)")
    data.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="datasets folder (face/ inside)")
    data.add_argument("--fer-csv", type=Path, help="FER2013 CSV or .csv.gz (default DATA_ROOT/face/fer2013.csv.gz)")
    data.add_argument("--image-dir", type=Path, help="image folders train/<emotion>/*, [validation/], [test/]")
    data.add_argument("--ferplus", type=Path, help="FER+ votes (fer2013new.csv), row-aligned with the FER2013 CSV")
    data.add_argument(
        "--ferplus-weight",
        type=float,
        default=0.0,
        help="share of the FER+ vote distribution in the training target (0 = FER+ only for evaluation)",
    )
    data.add_argument("--limit", type=int, default=0, help="use only the first N training faces (smoke tests)")
    data.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "moodlens-cache")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=100)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--filters", default="16,32,64,128", help="residual block widths")
    train.add_argument("--l2", type=float, default=1e-4)
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--class-weight-power", type=float, default=0.5, help="0 none, 1 fully balanced")
    train.add_argument("--rotation", type=float, default=10.0, help="max rotation in degrees")
    train.add_argument("--shift", type=float, default=0.1, help="max shift as a fraction of the side")
    train.add_argument("--zoom", type=float, default=0.1, help="max zoom in/out as a fraction")
    train.add_argument("--patience", type=int, default=15, help="early-stopping patience on val accuracy")
    train.add_argument("--lr-patience", type=int, default=5, help="epochs without improvement before LR halves")
    train.add_argument(
        "--schedule",
        choices=("plateau", "cosine-time", "cosine-epochs"),
        default="plateau",
        help="halve the LR on validation plateaus, cosine-anneal it over --time-budget-min, or over --epochs "
        "(the one a resumed run continues exactly)",
    )
    train.add_argument(
        "--degrade",
        type=float,
        default=0.0,
        help="share of faces given each camera degradation (brightness/contrast, blur, low resolution, JPEG)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="back up the run after every epoch (OUTPUT/backup/) and continue from the last backup when one is "
        "there: a run stopped part-way picks up where it was",
    )
    train.add_argument("--time-budget-min", type=float, default=0.0, help="stop before this wall-clock budget")
    train.add_argument("--no-tta", action="store_true", help="do not average with the mirrored face")
    train.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--output", type=Path, default=DEFAULT_MODELS_DIR / "face")
    train.add_argument(
        "--from-checkpoint",
        type=Path,
        help="skip fitting: finish (evaluate, export, card) from a checkpoint this script wrote",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        help="warm start: begin fitting from the weights of a .keras model of the same architecture",
    )
    train.add_argument(
        "--ensemble-with",
        type=Path,
        action="append",
        default=[],
        help="a trained .keras face model to average with this run's network if that is better on validation",
    )
    train.add_argument("--note", action="append", default=[], help="a remark for the model card (repeatable)")
    train.add_argument(
        "--fit-minutes",
        type=float,
        default=0.0,
        help="with --from-checkpoint: the wall-clock minutes the interrupted fit took (for the card)",
    )
    return parser.parse_args(argv)


@dataclass
class FaceData:
    """The loaded splits and what fitting needs from them."""

    splits: dict[str, Split]
    votes: dict[str, np.ndarray] | None
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    targets: np.ndarray
    sample_weight: np.ndarray


@dataclass
class Fitted:
    model: Any
    epochs_run: int
    time_budget: Any
    ensemble: dict[str, Any] | None = None


def load(args: argparse.Namespace) -> FaceData:
    """Read the splits, normalise them and build the (optionally FER+-mixed) training targets."""
    if args.image_dir:
        splits = load_image_folders(args.image_dir, args.seed)
        source = f"image folders under {args.image_dir.name}/"
    else:
        fer_csv = args.fer_csv or args.data_root / "face" / "fer2013.csv.gz"
        splits = load_fer_csv(fer_csv, args.cache_dir)
        source = fer_csv.name
    votes = load_ferplus(args.ferplus) if args.ferplus else None
    if votes is not None and args.image_dir:
        raise SystemExit("--ferplus needs the FER2013 CSV (its rows align with the CSV, not with image folders)")

    x_train_u8, y_train = splits["Training"]
    if args.limit:
        x_train_u8, y_train = x_train_u8[: args.limit], y_train[: args.limit]
    x_val_u8, y_val = splits["PublicTest"]
    if args.limit:
        x_val_u8, y_val = x_val_u8[: max(args.limit // 4, 256)], y_val[: max(args.limit // 4, 256)]
    x_train, x_val = normalise(x_train_u8), normalise(x_val_u8)
    print(f"data: {source}: train {len(y_train)}, validation {len(y_val)}")

    # Training targets: one-hot original labels, optionally mixed with the FER+ vote distribution.
    targets = np.eye(NUM_EMOTIONS, dtype=np.float32)[y_train]
    if votes is not None and args.ferplus_weight > 0:
        train_votes = votes["Training"][: len(y_train)]
        totals = train_votes.sum(axis=1, keepdims=True)
        has_votes = totals[:, 0] > 0
        dist = np.divide(train_votes, totals, out=np.zeros_like(train_votes), where=totals > 0)
        mixed = (1 - args.ferplus_weight) * targets + args.ferplus_weight * dist
        targets = np.where(has_votes[:, None], mixed, targets).astype(np.float32)
    if len(y_train) < args.batch_size:
        raise SystemExit(f"only {len(y_train)} training faces: fewer than one batch of {args.batch_size}")
    weights = class_weights(y_train, args.class_weight_power)
    sample_weight = np.array([weights[int(c)] for c in y_train], dtype=np.float32)
    print("class weights:", {EMOTIONS[i]: round(w, 3) for i, w in weights.items()})

    return FaceData(splits, votes, source, x_train, y_train, x_val, y_val, targets, sample_weight)


def fit(args: argparse.Namespace, data: FaceData) -> Fitted:
    """Train (or reload a checkpoint), then decide on validation whether an ensemble is served."""
    import keras
    import tensorflow as tf

    x_train, y_train, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    targets, sample_weight = data.targets, data.sample_weight
    filters = tuple(int(f) for f in args.filters.split(","))
    args.output.mkdir(parents=True, exist_ok=True)
    checkpoint = args.output / "checkpoint_best.keras"
    history_csv = args.output / "history.csv"
    time_budget = None

    if args.from_checkpoint:
        model = keras.models.load_model(args.from_checkpoint)
        epochs_run = _history_length(history_csv)
    else:
        model = build_mini_xception(filters, args.l2, args.dropout)
        if args.init_from:
            # Continue an interrupted run: same architecture, fresh optimiser and schedule.
            model.set_weights(keras.models.load_model(args.init_from).get_weights())
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss=keras.losses.CategoricalCrossentropy(),
            metrics=["accuracy"],
        )
        model.summary(print_fn=lambda line, **_: print(line))
        augment = make_augmenter(args.rotation, args.shift, args.zoom)
        train_ds = (
            tf.data.Dataset.from_tensor_slices((x_train, targets, sample_weight))
            .shuffle(len(y_train), seed=args.seed, reshuffle_each_iteration=True)
            # Full batches only: a short last batch crashes oneDNN's training kernels for the wider
            # models (segfault, reproduced with 32-256 filters); the reshuffle covers every face.
            .batch(args.batch_size, drop_remainder=True)
            .map(augment, num_parallel_calls=1)
        )
        if args.degrade > 0:
            train_ds = train_ds.map(make_degrader(args.degrade), num_parallel_calls=1)
        train_ds = train_ds.prefetch(2)
        val_targets = np.eye(NUM_EMOTIONS, dtype=np.float32)[y_val]
        val_ds = tf.data.Dataset.from_tensor_slices((x_val, val_targets)).batch(512)
        backup = args.output / "backup"
        initial_epoch = 0
        if args.resume and (backup / BACKUP_STATE).is_file():
            # The last completed epoch's model, optimiser state included; later rows of the history
            # (an epoch logged just before the process was stopped) are dropped with it.
            state = json.loads((backup / BACKUP_STATE).read_text())
            initial_epoch = int(state["epochs_done"])
            model = keras.models.load_model(backup / state["model"])
            _truncate_history(history_csv, initial_epoch)
            print(f"resuming from the backup after epoch {initial_epoch}")
        resuming = initial_epoch > 0
        # A resumed run keeps the best checkpoint of its earlier part unless it beats it.
        best_so_far = max(_read_history(history_csv).get("val_accuracy", [0.0])) if resuming else None
        callbacks: list[Any] = [
            keras.callbacks.ModelCheckpoint(
                checkpoint,
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                initial_value_threshold=best_so_far,
            ),
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=args.patience, restore_best_weights=True
            ),
            keras.callbacks.CSVLogger(str(history_csv), append=resuming),
        ]
        if args.resume:
            callbacks.append(EpochBackup.create(backup))
        if args.schedule == "cosine-epochs":
            callbacks.append(cosine_by_epoch(args.learning_rate, args.epochs))
        elif args.schedule == "cosine-time":
            if args.time_budget_min <= 0:
                raise SystemExit("--schedule cosine-time needs --time-budget-min")
            callbacks.append(cosine_by_time(args.learning_rate, args.time_budget_min))
        else:
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_accuracy", mode="max", factor=0.5, patience=args.lr_patience, min_lr=1e-5
                )
            )
        if args.time_budget_min > 0:
            time_budget = TimeBudget.create(args.time_budget_min)
            callbacks.append(time_budget)
        fit = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=args.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=1,
        )
        epochs_run = initial_epoch + len(fit.history.get("loss", []))
        if args.resume and not (time_budget and time_budget.stopped_for_time):
            shutil.rmtree(backup, ignore_errors=True)  # finished: the next run starts afresh
        # EarlyStopping restores the best weights only when it fires; the checkpoint is the best.
        if checkpoint.is_file():
            model = keras.models.load_model(checkpoint)

    model, ensemble = choose_ensemble(model, list(args.ensemble_with), x_val, y_val, not args.no_tta)
    return Fitted(model, epochs_run, time_budget, ensemble)


def main(argv: list[str] | None = None) -> int:
    """load -> fit -> export -> evaluate -> write the card."""
    args = parse_args(argv)
    started = time.monotonic()
    import tensorflow as tf

    limit_tensorflow_threads(tf, args.threads)
    seed_everything(args.seed)
    tta = not args.no_tta
    data = load(args)
    fitted = fit(args, data)
    serving = export(args, fitted.model, data.x_val, tta)
    evaluation = evaluate(args, fitted.model, data, tta)
    write_card(args, data=data, fitted=fitted, evaluation=evaluation, serving=serving, tta=tta, started=started)
    return 0


def _describe_model(path: Path) -> str:
    """The warm-start model as the card names it: file and, beside it, its card's training date."""
    card_file = Path(path).parent / "card.json"
    trained = json.loads(card_file.read_text()).get("trained_on") if card_file.is_file() else None
    return f"{Path(path).name}" + (f" (trained {trained})" if trained else "")


def _truncate_history(history_csv: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows (the epochs the backup holds)."""
    if history_csv.is_file():
        lines = history_csv.read_text(encoding="utf-8").splitlines(keepends=True)
        history_csv.write_text("".join(lines[: epochs + 1]), encoding="utf-8")


def _history_length(history_csv: Path) -> int:
    if not history_csv.is_file():
        return 0
    with open(history_csv, encoding="utf-8") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def _read_history(history_csv: Path) -> dict[str, list[float]]:
    if not history_csv.is_file():
        return {}
    with open(history_csv, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(r[key]) for r in rows] for key in (rows[0].keys() if rows else []) if key != "epoch"}


def evaluate(args: argparse.Namespace, model: Any, data: FaceData, tta: bool) -> dict[str, Any]:
    """Validation and test figures (and the confusion-matrix and training-curve plots)."""
    out: Path = args.output
    x_val, y_val, splits, votes = data.x_val, data.y_val, data.splits, data.votes
    val_probs = predict_with_flip(model, x_val, tta)
    validation_metrics = classification_metrics(y_val, val_probs.argmax(axis=1))
    validation_metrics["ece"] = expected_calibration_error(val_probs, y_val)
    validation_plain = classification_metrics(y_val, predict_with_flip(model, x_val, False).argmax(axis=1))
    print(f"validation accuracy {validation_metrics['accuracy']:.4f} (without flip {validation_plain['accuracy']:.4f})")

    test_metrics: dict[str, Any] = {}
    if "PrivateTest" in splits:
        x_test_u8, y_test = splits["PrivateTest"]
        test_probs = predict_with_flip(model, normalise(x_test_u8), tta)
        name = "FER2013 PrivateTest (original labels)" if not args.image_dir else "test folder"
        metrics = classification_metrics(y_test, test_probs.argmax(axis=1))
        metrics["ece"] = expected_calibration_error(test_probs, y_test)
        test_metrics[name] = metrics
        plot_confusion_matrix(metrics["confusion_matrix"], out / "confusion_matrix.png", f"Face: {name}")
        if votes is not None:
            majority = ferplus_majority(votes["PrivateTest"])
            keep = majority >= 0
            fer_plus = classification_metrics(majority[keep], test_probs[keep].argmax(axis=1))
            fer_plus["excluded_no_majority"] = int((~keep).sum())
            test_metrics["FER2013 PrivateTest (FER+ majority labels)"] = fer_plus
        print(json.dumps({k: round(v["accuracy"], 4) for k, v in test_metrics.items()}))
    plot_training_curves(_read_history(out / "history.csv"), out / "training_curves.png", "Face MiniXception")

    return {"validation": validation_metrics, "validation_plain": validation_plain, "test": test_metrics}


def export(args: argparse.Namespace, model: Any, x_val: np.ndarray, tta: bool) -> dict[str, Any]:
    """Save the Keras model and export the served ONNX graph (checked against Keras on ``x_val``)."""
    from model_training.export import export_face

    out: Path = args.output
    model.save(out / KERAS_FILE)
    return export_face(out / KERAS_FILE, out / ONNX_FILE, test_time_flip=tta, validation=x_val)


def write_card(
    args: argparse.Namespace,
    *,
    data: FaceData,
    fitted: Fitted,
    evaluation: dict[str, Any],
    serving: dict[str, Any],
    tta: bool,
    started: float,
) -> None:
    """card.json and MODEL_CARD.md."""
    out: Path = args.output
    model, ensemble, epochs_run, time_budget = fitted.model, fitted.ensemble, fitted.epochs_run, fitted.time_budget
    votes, source = data.votes, data.source
    filters = tuple(int(f) for f in args.filters.split(","))
    validation_metrics, validation_plain = evaluation["validation"], evaluation["validation_plain"]
    test_metrics = evaluation["test"]
    minutes = (time.monotonic() - started) / 60.0 + (args.fit_minutes if args.from_checkpoint else 0.0)
    size = (out / ONNX_FILE).stat().st_size
    uses_ferplus_targets = votes is not None and args.ferplus_weight > 0
    provenance = {
        "datasets": [
            {
                "name": "FER2013",
                "file": source,
                "citation": "Goodfellow et al., Challenges in Representation Learning (ICML 2013 workshop)",
                "licence": "research use only (Kaggle Facial Expression Recognition Challenge terms)",
            }
        ],
    }
    if votes is not None:
        provenance["datasets"].append(
            {
                "name": "FER+ (fer2013new.csv)",
                "citation": "Barsoum et al., ICMI 2016",
                "licence": "MIT (Microsoft Corporation)",
                "use": "training targets mixed in" if uses_ferplus_targets else "evaluation labels only",
            }
        )
    data_text = "; ".join(
        f"{d['name']} ({d['citation']}; licence: {d['licence']}" + (f"; {d['use']}" if "use" in d else "") + ")"
        for d in provenance["datasets"]
    )
    card = {
        "model_name": f"face-{model.name.replace('_', '-')}",
        "modality": "face",
        "architecture": (
            f"MiniXception, residual separable blocks {list(filters)}, GAP + softmax"
            if not (ensemble and ensemble["used"])
            else f"mean softmax of {len(ensemble['members'])} MiniXception networks: this run's (blocks "
            f"{list(filters)}) and {', '.join(ensemble['member_files'][1:])}"
        ),
        "data": data_text,
        "datasets": provenance["datasets"],
        "split": (
            "FER2013 Usage column: Training to fit, PublicTest for validation (early stopping, LR schedule, "
            "checkpoint selection), PrivateTest only for this final measurement"
            if not args.image_dir
            else "train/ to fit, validation/ (or 10 % of train/) to validate, test/ only to measure"
        ),
        "test_metrics": test_metrics,
        "validation_metrics": validation_metrics,
        "validation_accuracy_without_flip": validation_plain["accuracy"],
        "size_bytes": size,
        "files": {"serving": ONNX_FILE, "keras": KERAS_FILE},
        "serving": serving,
        "input": {
            "size": IMAGE_SIZE,
            "channels": 1,
            "normalisation": NORMALISATION,
            "face_crop": (
                "BlazeFace box mapped to the face image's square (models/face_detector/card.json, measured on "
                "PublicTest); the Haar box (margin 0, chosen on PublicTest) for faces BlazeFace misses; "
                "preprocessing.image.crop_face"
            ),
        },
        "test_time_flip": tta,
        **({"ensemble": ensemble} if ensemble else {}),
        "training": {
            "epochs_run": epochs_run,
            "stopped_for_time_budget": bool(time_budget and time_budget.stopped_for_time),
            "finished_from_checkpoint": bool(args.from_checkpoint),
            "warm_start_from": _describe_model(args.init_from) if args.init_from else None,
            "wall_clock_minutes": round(minutes, 1),
            "hardware": "2-core CPU",
            "seed": args.seed,
            "hyper_parameters": {
                "optimizer": "Adam",
                "learning_rate": args.learning_rate,
                "lr_schedule": (
                    f"cosine annealing over a {args.time_budget_min:.0f}-minute wall-clock budget to 1e-5"
                    if args.schedule == "cosine-time"
                    else f"cosine annealing over {args.epochs} epochs to 1e-5"
                    if args.schedule == "cosine-epochs"
                    else f"halve on val-accuracy plateau ({args.lr_patience} epochs), min 1e-5"
                ),
                "batch_size": args.batch_size,
                "max_epochs": args.epochs,
                "early_stopping_patience": args.patience,
                "l2": args.l2,
                "dropout": args.dropout,
                "class_weight_power": args.class_weight_power,
                "augmentation": {
                    "horizontal_flip": True,
                    "rotation_deg": args.rotation,
                    "shift": args.shift,
                    "zoom": args.zoom,
                    "degradations": (
                        {
                            "share_each": args.degrade,
                            "kinds": "brightness/contrast, blur, 20-36 px round trip, JPEG quality 30-70",
                        }
                        if args.degrade > 0
                        else None
                    ),
                },
                "ferplus_target_weight": args.ferplus_weight if votes is not None else 0.0,
                "train_limit": args.limit or None,
            },
        },
        "licence": "Weights derived from FER2013 (research use only); code under the repository licence",
        "notes": list(args.note),
    }
    write_model_card(out, card, _card_sections(args, card, minutes))
    print(f"wrote {out} ({size / 1e6:.2f} MB ONNX) in {minutes:.1f} min")


def _card_sections(args: argparse.Namespace, card: dict[str, Any], minutes: float) -> list[str]:
    """MODEL_CARD.md's sections after the common header."""
    validation_metrics, ensemble = card["validation_metrics"], card.get("ensemble")
    epochs_run, tta = card["training"]["epochs_run"], card["test_time_flip"]
    sections = []
    if args.note:
        sections += ["## Notes", "", *[f"- {note}" for note in args.note], ""]
    sections += [
        "## Validation (FER2013 PublicTest)",
        "",
        f"accuracy {validation_metrics['accuracy']:.4f}, macro-F1 {validation_metrics['macro_f1']:.4f}",
        "",
    ]
    if ensemble:
        sections += [
            "## Ensemble (decided on validation)",
            "",
            f"Members {', '.join(ensemble['member_files'])}: PublicTest accuracy alone "
            f"{', '.join(f'{a:.4f}' for a in ensemble['validation_accuracy_alone'])}, averaged "
            f"{ensemble['validation_accuracy_averaged']:.4f}; "
            + ("the average is served." if ensemble["used"] else "this run's network alone is served."),
            "",
        ]
    sections += [
        "## Training",
        "",
        f"{epochs_run} epochs, {minutes:.1f} minutes on a 2-core CPU, seed {args.seed}, Adam "
        f"{args.learning_rate}, batch {args.batch_size}; augmentation flips, rotation {args.rotation} deg, "
        f"shift {args.shift}, zoom {args.zoom}"
        + (
            f"; camera degradations (brightness/contrast, blur, 20-36 px round trip, JPEG 30-70) each on "
            f"{args.degrade:.0%} of the faces"
            if args.degrade > 0
            else ""
        )
        + (f"; FER+ vote distribution {args.ferplus_weight:.0%} of the target" if args.ferplus_weight > 0 else "")
        + f"; class weights (inverse frequency)^{args.class_weight_power}.",
        "",
        "## Input",
        "",
        f"48x48 grayscale face crop, {NORMALISATION}. Served as an ONNX graph (ONNX Runtime)"
        + (" with the mirrored face averaged in." if tta else "."),
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "![training curves](training_curves.png)",
    ]
    return sections


if __name__ == "__main__":
    raise SystemExit(main())
