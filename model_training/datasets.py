"""Dataset loaders shared by the training, evaluation, export and fusion scripts.

Each modality's corpus reader lives here rather than in its ``train_*`` script, so the
fusion triples, the evaluators and the exporters read data without importing a training
script (and its framework).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.labels import EMOTIONS, NUM_EMOTIONS
from preprocessing.image import normalise_face
from preprocessing.text import clean_text

# -- face: FER2013 CSV, FER+ votes, image folders ---------------------------------------------
IMAGE_SIZE = 48

#: FER2013 ``emotion`` codes: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
FER_CODE_TO_EMOTION: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_TO_OURS = np.array([EMOTIONS.index(name) for name in FER_CODE_TO_EMOTION], dtype=np.int64)

#: FER+ vote columns, in file order, mapped to our labels (contempt, unknown, NF are dropped).
FERPLUS_COLUMNS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
FERPLUS_TO_OURS: dict[str, str] = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
}

#: Folder names users meet in image-folder releases of FER2013 and similar sets.
FOLDER_ALIASES: dict[str, str] = {
    "angry": "angry",
    "anger": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "neutral": "neutral",
    "calm": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".pgm", ".tif", ".tiff"}


Split = tuple[np.ndarray, np.ndarray]  # (n, 48, 48) uint8 images, (n,) int labels in EMOTIONS order


def _cache_path(cache_dir: Path, *parts: str) -> Path:
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
    return cache_dir / f"face_{digest}.npz"


def load_fer_csv(path: Path, cache_dir: Path | None) -> dict[str, Split]:
    """FER2013 CSV (plain or .gz) -> {"Training", "PublicTest", "PrivateTest"} splits.

    Decoding 35,887 pixel strings takes a while, so the arrays are cached as .npz (outside
    the repository) keyed by the file's path, size and modification time.
    """
    stat = path.stat()
    cache = _cache_path(cache_dir, str(path.resolve()), str(stat.st_size), str(stat.st_mtime)) if cache_dir else None
    if cache is not None and cache.is_file():
        data = np.load(cache)
        return {name: (data[f"{name}_x"], data[f"{name}_y"]) for name in ("Training", "PublicTest", "PrivateTest")}

    opener = gzip.open if path.suffix == ".gz" else open
    images: dict[str, list[np.ndarray]] = {"Training": [], "PublicTest": [], "PrivateTest": []}
    labels: dict[str, list[int]] = {"Training": [], "PublicTest": [], "PrivateTest": []}
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            usage = row["Usage"].strip()
            if usage not in images:
                raise ValueError(f"{path}: unknown Usage {usage!r}")
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            if pixels.size != IMAGE_SIZE * IMAGE_SIZE:
                raise ValueError(f"{path}: a row has {pixels.size} pixels, expected {IMAGE_SIZE * IMAGE_SIZE}")
            images[usage].append(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE))
            labels[usage].append(int(FER_TO_OURS[int(row["emotion"])]))
    splits = {name: (np.stack(images[name]), np.array(labels[name], dtype=np.int64)) for name in images}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"{n}_{k}": v for n, (x, y) in splits.items() for k, v in (("x", x), ("y", y))}
        np.savez(cache, **arrays)
    return splits


def load_ferplus(path: Path) -> dict[str, np.ndarray]:
    """FER+ votes (fer2013new.csv, row-aligned with FER2013) -> per-split (n, 7) vote counts."""
    votes: dict[str, list[list[float]]] = {"Training": [], "PublicTest": [], "PrivateTest": []}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            counts = [0.0] * NUM_EMOTIONS
            for column in FERPLUS_COLUMNS:
                counts[EMOTIONS.index(FERPLUS_TO_OURS[column])] = float(row[column])
            votes[row["Usage"].strip()].append(counts)
    return {name: np.array(rows, dtype=np.float32) for name, rows in votes.items()}


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """Majority FER+ label per row, or -1 where the emotion votes have no strict winner or none at all."""
    top = votes.max(axis=1)
    winners = (votes == top[:, None]).sum(axis=1)
    majority = votes.argmax(axis=1)
    return np.where((top > 0) & (winners == 1), majority, -1)


def _read_image_folder(root: Path) -> Split:
    from PIL import Image

    images: list[np.ndarray] = []
    labels: list[int] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        emotion = FOLDER_ALIASES.get(folder.name.lower())
        if emotion is None:
            print(f"skipping folder {folder} (not one of the 7 emotions)")
            continue
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(file) as image:
                gray = image.convert("L")
                if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
                    gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
                images.append(np.asarray(gray, dtype=np.uint8))
            labels.append(EMOTIONS.index(emotion))
    if not images:
        raise ValueError(f"{root}: no images found in emotion folders")
    return np.stack(images), np.array(labels, dtype=np.int64)


def _first_existing(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for candidate in (root / name, root / name.lower(), root / name.capitalize()):
            if candidate.is_dir():
                return candidate
    return None


def load_image_folders(root: Path, seed: int) -> dict[str, Split]:
    """train/<emotion>/*, validation/<emotion>/* and test/<emotion>/* (FER2013 Kaggle layout)."""
    train_dir = _first_existing(root, ("train", "training"))
    if train_dir is None:
        raise ValueError(f"{root}: expected a train/ folder with one sub-folder per emotion")
    train = _read_image_folder(train_dir)
    val_dir = _first_existing(root, ("validation", "val", "valid", "PublicTest"))
    if val_dir is not None:
        val = _read_image_folder(val_dir)
    else:
        from sklearn.model_selection import train_test_split

        x_train, x_val, y_train, y_val = train_test_split(
            train[0], train[1], test_size=0.1, stratify=train[1], random_state=seed
        )
        train, val = (x_train, y_train), (x_val, y_val)
        print("no validation folder: holding out a stratified 10 % of train/ for validation")
    test_dir = _first_existing(root, ("test", "PrivateTest"))
    splits = {"Training": train, "PublicTest": val}
    if test_dir is not None:
        splits["PrivateTest"] = _read_image_folder(test_dir)
    return splits


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 faces -> float32 in [-1, 1] with a channel axis: the one normalisation serving uses."""
    return normalise_face(images)[..., None]


# -- speech: RAVDESS file names or emotion folders ------------------------------------------
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".webm", ".m4a")

#: RAVDESS emotion codes (third field of the file name) -> our labels.
RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "neutral",  # calm
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
#: Folder names other corpora use -> our labels.
FOLDER_LABELS = {
    "angry": "angry",
    "anger": "angry",
    "ang": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "fea": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "hap": "happy",
    "neutral": "neutral",
    "calm": "neutral",
    "neu": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "ps": "surprise",
    "sur": "surprise",
}


@dataclass(frozen=True)
class Clip:
    path: Path
    label: int
    speaker: str


def speaker_key(raw: str) -> str:
    """'07' and '7' name the same actor."""
    return str(int(raw)) if raw.isdigit() else raw


def list_clips(data_root: Path, pattern: str | None, labels_from: str, speaker_regex: str) -> list[Clip]:
    """Every labelled audio file under ``data_root``; unknown labels are skipped with a count."""
    patterns = [pattern] if pattern else ["**/*.wav", "**/*.flac"]
    paths = sorted({p for pat in patterns for p in data_root.glob(pat) if p.suffix.lower() in AUDIO_SUFFIXES})
    speaker_re = re.compile(speaker_regex)
    clips: list[Clip] = []
    skipped: Counter[str] = Counter()
    for path in paths:
        if labels_from == "filename":
            fields = path.stem.split("-")
            if len(fields) != 7 or fields[2] not in RAVDESS_EMOTIONS:
                skipped["not a RAVDESS speech file name"] += 1
                continue
            label = RAVDESS_EMOTIONS[fields[2]]
        else:
            folder = path.parent.name.lower()
            if folder not in FOLDER_LABELS:
                skipped[f"folder {folder!r}"] += 1
                continue
            label = FOLDER_LABELS[folder]
        match = speaker_re.search(path.relative_to(data_root).as_posix())
        if match is None:
            skipped["no speaker in name"] += 1
            continue
        clips.append(Clip(path=path, label=EMOTIONS.index(label), speaker=speaker_key(match.group(1))))
    if skipped:
        print(f"skipped {sum(skipped.values())} files: {dict(skipped)}", flush=True)
    return clips


# -- text: GoEmotions, CARER, user CSVs ---------------------------------------------------
EKMAN_TO_LABEL = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "joy": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}
#: Label spellings accepted from CSVs and CARER, mapped onto EMOTIONS.
LABEL_ALIASES = {
    **{e: e for e in EMOTIONS},
    **EKMAN_TO_LABEL,
    "love": "happy",
    "happiness": "happy",
    "sadness": "sad",
    "anger": "angry",
    "fearful": "fear",
    "surprised": "surprise",
    "disgusted": "disgust",
    "calm": "neutral",
}
CARER_NAME = "CARER"
GOEMOTIONS_NAME = "GoEmotions"


@dataclass
class TextSet:
    """Texts with soft targets; ``hard`` is the class index, or -1 for multi-class rows."""

    name: str
    texts: list[str] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)
    hard: list[int] = field(default_factory=list)
    label_sets: list[tuple[int, ...]] = field(default_factory=list)

    def add(self, text: str, classes: set[int]) -> None:
        try:
            text = clean_text(text)
        except Exception:  # empty rows cannot be learnt from or scored
            return
        target = np.zeros(NUM_EMOTIONS, dtype=np.float32)
        target[sorted(classes)] = 1.0 / len(classes)
        self.texts.append(text)
        self.targets.append(target)
        self.hard.append(next(iter(classes)) if len(classes) == 1 else -1)
        self.label_sets.append(tuple(sorted(classes)))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, name: str, keep: list[bool]) -> TextSet:
        out = TextSet(name)
        for i, k in enumerate(keep):
            if k:
                out.texts.append(self.texts[i])
                out.targets.append(self.targets[i])
                out.hard.append(self.hard[i])
                out.label_sets.append(self.label_sets[i])
        return out


def label_index(name: str) -> int:
    key = name.strip().lower()
    if key not in LABEL_ALIASES:
        raise ValueError(f"unknown label {name!r}; use one of {', '.join(EMOTIONS)}")
    return EMOTIONS.index(LABEL_ALIASES[key])


def load_goemotions(directory: Path, split: str) -> TextSet:
    """One GoEmotions split (``train``/``dev``/``test``) with fine labels mapped to our 7."""
    names = (directory / "emotions.txt").read_text(encoding="utf-8").split()
    ekman = json.loads((directory / "ekman_mapping.json").read_text(encoding="utf-8"))
    fine_to_label = {fine: EKMAN_TO_LABEL[group] for group, fines in ekman.items() for fine in fines}
    fine_to_label["neutral"] = "neutral"
    data = TextSet(f"{GOEMOTIONS_NAME} {split}")
    with (directory / f"{split}.tsv").open(encoding="utf-8", newline="") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            classes = {EMOTIONS.index(fine_to_label[names[int(i)]]) for i in parts[1].split(",") if i}
            if classes:
                data.add(parts[0], classes)
    return data


def load_carer(directory: Path, split: str) -> TextSet:
    """One CARER split (``train``/``val``/``test``): ``text;label`` lines, 6 labels."""
    data = TextSet(f"{CARER_NAME} {split}")
    with (directory / f"{split}.txt").open(encoding="utf-8") as handle:
        for line in handle:
            text, _, label = line.rstrip("\n").rpartition(";")
            if text:
                data.add(text, {label_index(label)})
    return data


def load_csv(path: Path, text_col: str, label_col: str, sep: str) -> TextSet:
    """A user's CSV with one text column and one label column (labels as in LABEL_ALIASES)."""
    data = TextSet(path.stem)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle, delimiter=sep):
            data.add(row[text_col], {label_index(row[label_col])})
    return data


def load_corpora(args: argparse.Namespace) -> tuple[TextSet, list[TextSet], list[TextSet]]:
    """Train set, validation sets and test sets (one per corpus, so each is reported alone)."""
    if args.train_csv:
        if not (args.val_csv and args.test_csv):
            raise SystemExit("--train-csv needs --val-csv and --test-csv as well")
        load = lambda p: load_csv(Path(p), args.text_col, args.label_col, args.sep)  # noqa: E731
        return load(args.train_csv), [load(args.val_csv)], [load(args.test_csv)]
    ge, carer = Path(args.goemotions_dir), Path(args.carer_dir)
    train = TextSet("train")
    for part in (load_goemotions(ge, "train"), load_carer(carer, "train")):
        train.texts += part.texts
        train.targets += part.targets
        train.hard += part.hard
        train.label_sets += part.label_sets
    val = [load_carer(carer, "val"), load_goemotions(ge, "dev")]
    test = [load_carer(carer, "test"), load_goemotions(ge, "test")]
    return train, val, test
