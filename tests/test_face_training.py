"""Specification of model_training/train_face.py's data handling (no network is trained here).

FER2013's emotion codes map onto our label order, the CSV is read plain or gzipped and split
by its Usage column, users' image folders with common name variants are understood, FER+
votes give majority labels only where there is a clear winner, and disgust gets the largest
class weight.
"""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from inference.labels import EMOTIONS
from model_training.common import DEFAULT_DATA_ROOT
from model_training.datasets import FER_TO_OURS, ferplus_majority, load_fer_csv, load_ferplus, load_image_folders
from model_training.train_face import class_weights, parse_args

pytestmark = pytest.mark.training  # the training test group: frameworks are imported here


def fer_row(code: int, grey: int, usage: str) -> str:
    return f"{code},{' '.join([str(grey)] * 2304)},{usage}\n"


def test_fer2013_emotion_codes_map_onto_our_label_order() -> None:
    fer_names = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
    assert [EMOTIONS[i] for i in FER_TO_OURS] == [name.lower() for name in fer_names]


@pytest.mark.parametrize("compressed", [False, True])
def test_the_fer2013_csv_is_read_plain_or_gzipped_and_split_by_usage(tmp_path: Path, compressed: bool) -> None:
    text = "emotion,pixels,Usage\n" + fer_row(3, 10, "Training") + fer_row(4, 20, "Training")
    text += fer_row(6, 30, "PublicTest") + fer_row(1, 40, "PrivateTest")
    path = tmp_path / ("fer.csv.gz" if compressed else "fer.csv")
    if compressed:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    splits = load_fer_csv(path, cache_dir=tmp_path / "cache")
    x, y = splits["Training"]
    assert x.shape == (2, 48, 48) and x.dtype == np.uint8
    assert [EMOTIONS[i] for i in y] == ["happy", "sad"]
    assert EMOTIONS[splits["PublicTest"][1][0]] == "neutral"
    assert EMOTIONS[splits["PrivateTest"][1][0]] == "disgust"
    cached = load_fer_csv(path, cache_dir=tmp_path / "cache")  # second read comes from the .npz cache
    np.testing.assert_array_equal(cached["Training"][0], x)


def test_image_folders_with_common_emotion_names_are_understood(tmp_path: Path) -> None:
    for split, folders in {
        "train": ["Happy", "surprised", "fearful", "anger"],
        "validation": ["happiness", "Surprise"],
        "test": ["sad"],
    }.items():
        for folder in folders:
            (tmp_path / split / folder).mkdir(parents=True)
            Image.fromarray(np.full((64, 64), 99, np.uint8)).save(tmp_path / split / folder / "a.png")
    (tmp_path / "train" / "contempt").mkdir()  # not one of our 7: skipped
    splits = load_image_folders(tmp_path, seed=42)
    x, y = splits["Training"]
    assert x.shape == (4, 48, 48)
    assert sorted(EMOTIONS[i] for i in y) == ["angry", "fear", "happy", "surprise"]
    assert sorted(EMOTIONS[i] for i in splits["PublicTest"][1]) == ["happy", "surprise"]
    assert [EMOTIONS[i] for i in splits["PrivateTest"][1]] == ["sad"]


def test_fewer_training_faces_than_one_batch_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    from model_training.train_face import main

    for split, folder in [("train", "happy"), ("train", "sad"), ("validation", "happy")]:
        (tmp_path / split / folder).mkdir(parents=True)
        Image.fromarray(np.full((48, 48), 99, np.uint8)).save(tmp_path / split / folder / "a.png")
    with pytest.raises(SystemExit, match="only 2 training faces: fewer than one batch of 64"):
        main(["--image-dir", str(tmp_path), "--batch-size", "64", "--output", str(tmp_path / "out")])


def test_ferplus_majority_labels_skip_ties_and_rows_without_votes(tmp_path: Path) -> None:
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    rows = [
        "PrivateTest,a.png,0,9,1,0,0,0,0,0,0,0\n",  # clear happiness
        "PrivateTest,b.png,4,0,0,4,0,0,0,2,0,0\n",  # tie neutral/sadness
        "PrivateTest,,0,0,0,0,0,0,0,0,0,10\n",  # not a face
    ]
    path = tmp_path / "fer2013new.csv"
    path.write_text(header + "".join(rows))
    votes = load_ferplus(path)["PrivateTest"]
    majority = ferplus_majority(votes)
    assert EMOTIONS[majority[0]] == "happy"
    assert majority[1] == -1 and majority[2] == -1


def test_the_rare_disgust_class_gets_the_largest_class_weight() -> None:
    counts = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830}
    counts["surprise"] = 3171
    labels = np.concatenate([np.full(n, EMOTIONS.index(e)) for e, n in counts.items()])
    weights = class_weights(labels, power=0.5)
    assert max(weights, key=weights.get) == EMOTIONS.index("disgust")
    assert min(weights, key=weights.get) == EMOTIONS.index("happy")
    assert class_weights(labels, power=0.0)[EMOTIONS.index("disgust")] == pytest.approx(1.0)


def test_defaults_are_seed_42_adam_at_1e3_and_the_models_face_folder() -> None:
    args = parse_args([])
    assert args.seed == 42
    assert args.learning_rate == pytest.approx(1e-3)
    assert args.output.parts[-2:] == ("models", "face")
    assert args.data_root == DEFAULT_DATA_ROOT


@pytest.mark.needs_data
@pytest.mark.skipif(
    not (DEFAULT_DATA_ROOT / "face" / "fer2013new.csv").is_file(),
    reason="the FER+ label file is not beside the repository (face/ under the data root)",
)
def test_the_real_ferplus_file_aligns_with_the_fer2013_usage_blocks() -> None:
    votes = load_ferplus(DEFAULT_DATA_ROOT / "face" / "fer2013new.csv")
    assert {name: len(v) for name, v in votes.items()} == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}


def constant_network(probabilities: list[float], name: str) -> Any:
    """A Keras face model that answers the same probabilities for every face."""
    import keras

    inputs = keras.Input((48, 48, 1))
    dense = keras.layers.Dense(len(EMOTIONS), activation="softmax")
    outputs = dense(keras.layers.Flatten()(inputs))
    bias = np.log(np.maximum(np.asarray(probabilities, np.float32), 1e-9))
    dense.set_weights([np.zeros((48 * 48, len(EMOTIONS)), np.float32), bias])
    return keras.Model(inputs, outputs, name=name)


@pytest.mark.slow
@pytest.mark.training
def test_an_ensemble_is_served_only_when_it_beats_this_run_on_validation(tmp_path: Path) -> None:
    import keras

    from inference.onnx_session import open_session
    from model_training.export import export_face
    from model_training.train_face import choose_ensemble

    x_val = np.zeros((8, 48, 48, 1), np.float32)
    this_run = constant_network([0.6, 0.4, 0, 0, 0, 0, 0], "this_run")  # says angry
    constant_network([0.1, 0.9, 0, 0, 0, 0, 0], "earlier").save(tmp_path / "earlier.keras")  # says disgust
    earlier = [tmp_path / "earlier.keras"]

    kept, report = choose_ensemble(this_run, earlier, x_val, np.zeros(8, int), tta=True)  # truth: angry
    assert kept is this_run and report is not None and not report["used"]
    assert report["validation_accuracy_alone"] == [1.0, 0.0] and report["validation_accuracy_averaged"] == 0.0

    averaged, report = choose_ensemble(this_run, earlier, x_val, np.ones(8, int), tta=True)  # truth: disgust
    assert report is not None and report["used"] and report["member_files"] == ["(this run)", "earlier.keras"]
    assert report["members"] == ["this_run", "earlier"] and this_run.name == "this_run"
    assert averaged.name == "ensemble_this_run_plus_earlier"
    assert np.allclose(averaged.predict(x_val[:1], verbose=0)[0, :2], [0.35, 0.65], atol=1e-5)

    # It is saved, reloaded and exported as one graph the recogniser serves unchanged.
    averaged.save(tmp_path / "ensemble.keras")
    reloaded = keras.models.load_model(tmp_path / "ensemble.keras")
    assert np.allclose(reloaded.predict(x_val[:1], verbose=0)[0, :2], [0.35, 0.65], atol=1e-5)
    fields = export_face(tmp_path / "ensemble.keras", tmp_path / "served.onnx", test_time_flip=True, validation=x_val)
    assert fields["parity"]["max_abs_diff"] <= 1e-4
    session = open_session(tmp_path / "served.onnx")
    served = session.run(None, {session.get_inputs()[0].name: x_val[:1]})[0]
    assert np.allclose(served[0, :2], [0.35, 0.65], atol=1e-5)

    assert choose_ensemble(this_run, [], x_val, np.ones(8, int), tta=True) == (this_run, None)


def test_camera_degradations_keep_shape_range_and_targets_and_are_off_at_probability_zero() -> None:
    from model_training.train_face import make_degrader

    rng = np.random.default_rng(0)
    faces = rng.uniform(-1, 1, (32, 48, 48, 1)).astype(np.float32)
    targets = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 32)]
    untouched, same_targets, weights = make_degrader(0.0)(faces, targets, np.ones(32, np.float32))
    np.testing.assert_allclose(np.asarray(untouched), faces, atol=1e-6)
    degraded, same_targets, _ = make_degrader(1.0)(faces, targets, np.ones(32, np.float32))
    degraded = np.asarray(degraded)
    assert degraded.shape == faces.shape and degraded.dtype == np.float32
    assert degraded.min() >= -1.0 - 1e-5 and degraded.max() <= 1.0 + 1e-5
    assert np.abs(degraded - faces).mean() > 0.05  # every face was changed
    # Blur and resolution loss smooth a noisy face: neighbouring pixels become alike.
    assert np.abs(np.diff(degraded, axis=2)).mean() < np.abs(np.diff(faces, axis=2)).mean()
    np.testing.assert_array_equal(np.asarray(same_targets), targets)
    assert weights.shape == (32,)


def test_the_epoch_cosine_schedule_starts_at_the_base_rate_and_ends_at_the_floor() -> None:
    from model_training.train_face import cosine_by_epoch

    schedule = cosine_by_epoch(3e-4, epochs=11).schedule
    rates = [schedule(epoch, 0.0) for epoch in range(11)]
    assert rates[0] == pytest.approx(3e-4) and rates[-1] == pytest.approx(1e-5)
    assert rates[5] == pytest.approx((3e-4 + 1e-5) / 2)
    assert all(a > b for a, b in itertools.pairwise(rates))


@pytest.mark.slow
def test_a_training_run_stopped_part_way_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    import csv
    import os
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(1)
    csv_path = tmp_path / "fer.csv"
    with open(csv_path, "w") as handle:
        handle.write("emotion,pixels,Usage\n")
        for i in range(640):
            usage = "Training" if i < 512 else ("PublicTest" if i < 576 else "PrivateTest")
            pixels = " ".join(str(v) for v in rng.integers(0, 256, 2304))
            handle.write(f"{i % 7},{pixels},{usage}\n")
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "model_training.train_face", "--fer-csv", str(csv_path), "--cache-dir",
        str(tmp_path / "cache"), "--filters", "8", "--epochs", "12", "--batch-size", "32", "--patience", "99",
        "--schedule", "cosine-epochs", "--resume", "--degrade", "0.2", "--output", str(out), "--threads", "1",
    ]  # fmt: skip
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo), "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    history = out / "history.csv"
    while time.monotonic() < deadline and first.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 4:  # header + 3 epochs
            break
        time.sleep(0.2)
    assert first.poll() is None, "the first run ended before it could be stopped"
    first.send_signal(signal.SIGKILL)  # what a session's end does to a process still running
    first.wait()
    assert (out / "backup").is_dir()
    stopped_after = len(history.read_text().splitlines()) - 1
    before = history.read_text().splitlines()

    finished = subprocess.run(command, check=False, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    with open(history) as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == list(range(12))  # continued where it stopped: no epoch twice, none missing
    assert stopped_after < 12
    assert "resuming from the backup after epoch" in finished.stdout
    resumed_at = int(finished.stdout.split("resuming from the backup after epoch ")[1].split()[0])
    assert 1 <= resumed_at <= stopped_after
    assert history.read_text().splitlines()[: resumed_at + 1] == before[: resumed_at + 1]  # earlier rows kept
    assert not (out / "backup").exists()  # a finished run leaves no backup behind
    assert (out / "face_model.onnx").is_file() and (out / "card.json").is_file()
