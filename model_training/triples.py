"""Label-matched (face, speech, text) triples for fitting and measuring fusion.

No public corpus here has one person's face, voice and words together, so a *triple* is
three independent examples that share a label: a FER2013 face, a RAVDESS clip and a
GoEmotions/CARER text. Fusion trained and measured on such triples learns how to combine
three *independent* pieces of evidence; real people's modalities are correlated, so the gain
measured here is an optimistic estimate of the gain in use. Say so wherever the numbers go.

Splits never mix: validation triples (fit temperatures, train the stacker) draw only from
each model's validation data, test triples only from its test data:

=========  ==========================  ===============================  ====================================
split      face (FER2013 ``Usage``)    speech (RAVDESS actors)          text (single-label rows)
=========  ==========================  ===============================  ====================================
validation PublicTest                  the speech model's validation    GoEmotions ``dev`` + CARER ``val``
test       PrivateTest                 the speech model's test actors   GoEmotions ``test`` + CARER ``test``
=========  ==========================  ===============================  ====================================

All three corpora have all 7 labels (RAVDESS calm counts as neutral; CARER has no neutral or
disgust, GoEmotions supplies them; CARER love counts as happy, as in the text model). A label
a pool lacks is skipped and reported, never filled in from another label.

Triples are balanced: ``per_label`` of each label, drawn with a seeded generator. Each
modality's examples of a label are shuffled and used in turn, reshuffled when used up, so small
pools (a few dozen speech clips per label) are reused evenly rather than at random.

Each recogniser runs once per example; its probabilities are cached (outside the repository)
keyed by the model card's hash, so rebuilding triples is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.labels import EMOTIONS, MODALITIES, NUM_EMOTIONS
from model_training.common import DEFAULT_DATA_ROOT, DEFAULT_MODELS_DIR, card_hash

SPLITS = ("validation", "test")
DEFAULT_CACHE_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "moodlens-fusion-cache"
DEFAULT_VAL_SPEAKERS = ("19", "20")
DEFAULT_TEST_SPEAKERS = ("21", "22", "23", "24")
RAVDESS_SPEAKER_REGEX = r"-(\d+)\.[A-Za-z0-9]+$"


@dataclass
class Pool:
    """One modality's examples for one split: stable ids, labels and the raw inputs."""

    modality: str
    split: str
    source: str
    ids: list[str]
    labels: np.ndarray
    inputs: Any  # images (n, 48, 48) uint8, a list of Paths, or a list of texts
    refused: dict[str, str] = field(default_factory=dict)
    #: ``(n, 7)`` probabilities of the modality's recogniser, once :func:`pool_probabilities` ran.
    probabilities: np.ndarray | None = None
    #: Who produced each example (speech: the speaker), so folds can keep a speaker together.
    groups: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def label_counts(self) -> dict[str, int]:
        return {e: int((self.labels == i).sum()) for i, e in enumerate(EMOTIONS)}

    def keep(self, mask: np.ndarray) -> Pool:
        """The pool restricted to ``mask`` (used to leave out inputs a recogniser refused)."""
        index = np.flatnonzero(mask)
        inputs = self.inputs[index] if isinstance(self.inputs, np.ndarray) else [self.inputs[i] for i in index]
        probabilities = None if self.probabilities is None else self.probabilities[index]
        ids = [self.ids[i] for i in index]
        groups = None if self.groups is None else [self.groups[i] for i in index]
        return Pool(
            self.modality, self.split, self.source, ids, self.labels[index], inputs, self.refused, probabilities, groups
        )


@dataclass
class Triples:
    """``labels[i]`` with ``index[modality][i]`` pointing into that modality's pool."""

    split: str
    labels: np.ndarray
    index: dict[str, np.ndarray]
    skipped_labels: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


# -- pools ---------------------------------------------------------------------------------
def face_pool(
    split: str,
    fer_csv: Path | None = None,
    image_dir: Path | None = None,
    seed: int = 42,
    cache_dir: Path = DEFAULT_CACHE_DIR,
) -> Pool:
    """FER2013 PublicTest (validation) or PrivateTest (test); or validation/ and test/ folders."""
    from model_training.datasets import load_fer_csv, load_image_folders

    usage = {"validation": "PublicTest", "test": "PrivateTest"}[split]
    if image_dir is not None:
        splits = load_image_folders(Path(image_dir), seed)
        source = f"image folders {Path(image_dir).name}/ ({usage} role)"
    else:
        path = Path(fer_csv) if fer_csv else DEFAULT_DATA_ROOT / "face" / "fer2013.csv.gz"
        splits = load_fer_csv(path, Path(cache_dir))
        source = f"FER2013 {usage}"
    if usage not in splits:
        raise SystemExit(f"the face data has no {usage} split")
    images, labels = splits[usage]
    ids = [f"fer:{usage}:{i}" for i in range(len(labels))]
    return Pool("face", split, source, ids, np.asarray(labels, dtype=np.int64), images)


def speech_speakers(models_dir: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validation and test actors as the speech model's card records them (else the defaults)."""
    card_path = Path(models_dir) / "speech" / "card.json"
    val, test = DEFAULT_VAL_SPEAKERS, DEFAULT_TEST_SPEAKERS
    if card_path.is_file():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        if card.get("validation_actors") and card.get("test_actors"):  # an actor-fold model says so plainly
            return tuple(map(str, card["validation_actors"])), tuple(map(str, card["test_actors"]))
        for key in card.get("validation_metrics", {}):
            found = re.findall(r"\d+", key.split("actors", 1)[-1])
            if found:
                val = tuple(str(int(x)) for x in found)
        split = str(card.get("split", ""))
        match = re.search(r"test on actors \[([^\]]*)\]", split)
        if match:
            test = tuple(str(int(x)) for x in re.findall(r"\d+", match.group(1)))
    return val, test


def speech_pool(
    split: str,
    speakers: Sequence[str],
    data_root: Path | None = None,
    labels_from: str = "filename",
    speaker_regex: str = RAVDESS_SPEAKER_REGEX,
) -> Pool:
    """The clips of ``speakers`` (RAVDESS file names, or ``<emotion>/`` folders with --labels-from folder)."""
    from model_training.datasets import list_clips

    root = Path(data_root) if data_root else DEFAULT_DATA_ROOT / "speech" / "ravdess"
    wanted = {str(int(s)) if str(s).isdigit() else str(s) for s in speakers}
    clips = [c for c in list_clips(root, None, labels_from, speaker_regex) if c.speaker in wanted]
    if not clips:
        raise SystemExit(f"no speech clips for speakers {sorted(wanted)} under {root}")
    ids = [f"speech:{c.path.relative_to(root).as_posix()}" for c in clips]
    labels = np.array([c.label for c in clips], dtype=np.int64)
    source = f"RAVDESS actors {'+'.join(sorted(wanted, key=lambda s: (len(s), s)))}"
    pool = Pool("speech", split, source, ids, labels, [c.path for c in clips])
    pool.groups = [c.speaker for c in clips]
    return pool


def out_of_fold_file(models_dir: Path) -> Path | None:
    """The speech model's saved out-of-fold probabilities (an actor-fold model), or None."""
    folder = Path(models_dir) / "speech"
    card_path = folder / "card.json"
    if not card_path.is_file():
        return None
    name = (json.loads(card_path.read_text(encoding="utf-8")).get("files") or {}).get("out_of_fold")
    return folder / name if name else None


def attach_out_of_fold(pool: Pool, path: Path) -> Pool:
    """The validation clips' probabilities from an actor-fold model's out-of-fold file.

    Each clip's probabilities come from models that never heard its actor, which is what a
    validation output must be; the served ensemble itself learnt from every one of these
    actors, so running it here would be in-sample. Clips without a saved row (refused by the
    decoder when the folds ran) are left out and listed as refused.
    """
    saved = np.load(path, allow_pickle=False)
    by_name = {str(n): row for n, row in zip(saved["names"], saved["probabilities"], strict=True)}
    names = [Path(p).name for p in pool.inputs]
    keep = np.array([n in by_name for n in names])
    refused = {pool.ids[i]: "no out-of-fold prediction" for i in np.flatnonzero(~keep)}
    rows = np.array([by_name.get(n, np.full(NUM_EMOTIONS, 1.0 / NUM_EMOTIONS)) for n in names], dtype=np.float64)
    with_probs = Pool(pool.modality, pool.split, pool.source + " (out-of-fold)", pool.ids, pool.labels, pool.inputs)
    with_probs.refused = refused
    with_probs.probabilities = rows / rows.sum(axis=1, keepdims=True)
    with_probs.groups = pool.groups
    return with_probs.keep(keep)


def text_pool(
    split: str,
    *,
    goemotions_dir: Path | None = None,
    carer_dir: Path | None = None,
    csv_path: Path | None = None,
    text_col: str = "text",
    label_col: str = "emotion",
    sep: str = ",",
) -> Pool:
    """Single-label GoEmotions dev/test + CARER val/test rows, or a user's labelled CSV."""
    from model_training.datasets import load_carer, load_csv, load_goemotions

    if csv_path is not None:
        parts = [load_csv(Path(csv_path), text_col, label_col, sep)]
    else:
        text_root = DEFAULT_DATA_ROOT / "text"
        ge = Path(goemotions_dir) if goemotions_dir else text_root / "goemotions"
        carer = Path(carer_dir) if carer_dir else text_root / "emotions_nlp"
        ge_split, carer_split = {"validation": ("dev", "val"), "test": ("test", "test")}[split]
        parts = [load_goemotions(ge, ge_split), load_carer(carer, carer_split)]
    ids: list[str] = []
    labels: list[int] = []
    texts: list[str] = []
    for part in parts:
        for i, (text, hard) in enumerate(zip(part.texts, part.hard, strict=True)):
            if hard >= 0:  # multi-label rows have no single truth to match
                ids.append(f"text:{part.name}:{i}")
                labels.append(hard)
                texts.append(text)
    source = " + ".join(f"{p.name} (single-label rows)" for p in parts)
    return Pool("text", split, source, ids, np.asarray(labels, dtype=np.int64), texts)


def split_pool(pool: Pool, fold: int, n_folds: int, seed: int) -> tuple[Pool, Pool]:
    """(the other folds, fold ``fold``) of ``pool``: by group (speaker) when there are enough
    groups, else by example, stratified by label so every fold keeps every label it can."""
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(pool), dtype=int)
    if pool.groups is not None and len(set(pool.groups)) >= n_folds:
        names = sorted(set(pool.groups))
        order = rng.permutation(len(names))
        fold_of = {names[j]: rank % n_folds for rank, j in enumerate(order)}
        assignment = np.array([fold_of[g] for g in pool.groups])
    else:
        for label in np.unique(pool.labels):
            members = rng.permutation(np.flatnonzero(pool.labels == label))
            assignment[members] = np.arange(len(members)) % n_folds
    return pool.keep(assignment != fold), pool.keep(assignment == fold)


# -- triples -------------------------------------------------------------------------------
def build_triples(pools: dict[str, Pool], per_label: int, seed: int, split: str) -> Triples:
    """``per_label`` triples for every label all pools have, seeded and reproducible."""
    rng = np.random.default_rng(seed)
    labels: list[int] = []
    index: dict[str, list[int]] = {m: [] for m in pools}
    skipped: dict[str, str] = {}
    for label, emotion in enumerate(EMOTIONS):
        lacking = [m for m, pool in pools.items() if not np.any(pool.labels == label)]
        if lacking:
            skipped[emotion] = f"no {emotion} examples in the {', '.join(lacking)} data"
            continue
        labels += [label] * per_label
        for modality, pool in pools.items():
            candidates = np.flatnonzero(pool.labels == label)
            drawn: list[int] = []
            while len(drawn) < per_label:  # shuffle, use in turn, reshuffle when used up
                drawn += rng.permutation(candidates).tolist()
            index[modality] += drawn[:per_label]
    return Triples(
        split=split,
        labels=np.asarray(labels, dtype=np.int64),
        index={m: np.asarray(v, dtype=np.int64) for m, v in index.items()},
        skipped_labels=skipped,
    )


# -- running the recognisers once, with a cache --------------------------------------------
def _model_state(model_dir: Path) -> str:
    """Card content plus every file's name, size and modification time: a rewritten weight file
    invalidates the cache even when its card stays the same."""
    digest = hashlib.sha1(card_hash(model_dir).encode())
    for path in sorted(p for p in Path(model_dir).iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _face_runner(recognizer: Any) -> Callable[[Pool, np.ndarray], tuple[np.ndarray, dict[int, str]]]:
    """FER faces are already 48x48 crops: the recogniser's batch path, with its normalisation."""
    from model_training.datasets import normalise

    def run(pool: Pool, which: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        out = np.zeros((len(which), NUM_EMOTIONS))
        for start in range(0, len(which), 256):
            chunk = which[start : start + 256]
            out[start : start + len(chunk)] = recognizer.predict_proba(normalise(pool.inputs[chunk]))
        return out, {}

    return run


def _speech_runner(recognizer: Any) -> Callable[[Pool, np.ndarray], tuple[np.ndarray, dict[int, str]]]:
    """Clips go through the serving path (decode, trim, features, model) one file at a time."""
    from errors import EmotionAppError

    def run(pool: Pool, which: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        out = np.full((len(which), NUM_EMOTIONS), np.nan)
        refused: dict[int, str] = {}
        for row, i in enumerate(which):
            try:
                out[row] = recognizer.predict(Path(pool.inputs[i]).read_bytes()).probabilities
            except EmotionAppError as exc:  # refused clips are left out, never guessed
                refused[int(i)] = f"{exc.code}: {exc.message}"
        return out, refused

    return run


def _text_runner(recognizer: Any) -> Callable[[Pool, np.ndarray], tuple[np.ndarray, dict[int, str]]]:
    """Texts (already cleaned by the loaders) through the recogniser's batch path."""

    def run(pool: Pool, which: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
        out = np.zeros((len(which), NUM_EMOTIONS))
        for start in range(0, len(which), 256):
            chunk = which[start : start + 256]
            out[start : start + len(chunk)] = recognizer.predict_proba([pool.inputs[i] for i in chunk])
        return out, {}

    return run


RUNNERS = {"face": _face_runner, "speech": _speech_runner, "text": _text_runner}


def pool_probabilities(pool: Pool, recognizer: Any, cache_dir: Path = DEFAULT_CACHE_DIR) -> Pool:
    """Attach ``pool.probabilities`` (n, 7) for every example, computing only what is not cached.

    Examples the recogniser refuses are removed from the returned pool and listed in
    ``refused``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1("|".join(pool.ids).encode()).hexdigest()[:10]
    cache = cache_dir / f"{pool.modality}_{pool.split}_{_model_state(recognizer.model_dir)}_{key}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        probs = data["probabilities"]
        refused = json.loads(str(data["refused"]))
    else:
        recognizer.load()
        started = time.perf_counter()
        print(
            f"running the {pool.modality} model over {len(pool)} {pool.split} examples ...", file=sys.stderr, flush=True
        )
        probs, refused_rows = RUNNERS[pool.modality](recognizer)(pool, np.arange(len(pool)))
        refused = {pool.ids[i]: reason for i, reason in refused_rows.items()}
        print(f"  done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        np.savez(cache, probabilities=probs, refused=json.dumps(refused))
    keep = np.array([i not in refused for i in pool.ids])
    rows = np.where(keep[:, None], np.asarray(probs, dtype=np.float64), 1.0)
    with_probs = Pool(pool.modality, pool.split, pool.source, pool.ids, pool.labels, pool.inputs, refused)
    with_probs.probabilities = rows / rows.sum(axis=1, keepdims=True)
    with_probs.groups = pool.groups
    return with_probs.keep(keep)


def triple_probabilities(triples: Triples, pools: dict[str, Pool]) -> dict[str, np.ndarray]:
    """``{modality: (n, 7)}`` probabilities of each triple's member."""
    out: dict[str, np.ndarray] = {}
    for modality, pool in pools.items():
        if pool.probabilities is None:
            raise ValueError(f"the {modality} pool has no probabilities yet; run pool_probabilities first")
        out[modality] = pool.probabilities[triples.index[modality]]
    return out


# -- the one entry point the scripts use ---------------------------------------------------
def add_data_arguments(parser: Any) -> None:
    """Data, model and triple options shared by train_fusion and evaluate_fusion."""
    data = parser.add_argument_group("data (the datasets beside the repository by default)")
    data.add_argument(
        "--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="datasets folder (face/, speech/, text/)"
    )
    data.add_argument("--fer-csv", type=Path, help="FER2013 CSV or .csv.gz")
    data.add_argument("--image-dir", type=Path, help="face image folders: validation/<emotion>/*, test/<emotion>/*")
    data.add_argument("--speech-dir", type=Path, help="speech clips (RAVDESS layout, or <emotion>/ folders)")
    data.add_argument("--speech-labels-from", choices=("filename", "folder"), default="filename")
    data.add_argument("--speaker-regex", default=RAVDESS_SPEAKER_REGEX)
    data.add_argument("--val-speakers", help="validation speakers (default: as the speech model's card says)")
    data.add_argument("--test-speakers", help="test speakers (default: as the speech model's card says)")
    data.add_argument("--goemotions-dir", type=Path)
    data.add_argument("--carer-dir", type=Path)
    data.add_argument("--text-val-csv", type=Path, help="your own validation texts (columns --text-col, --label-col)")
    data.add_argument("--text-test-csv", type=Path, help="your own test texts")
    data.add_argument("--text-col", default="text")
    data.add_argument("--label-col", default="emotion")
    data.add_argument("--sep", default=",")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--per-label", type=int, default=300, help="triples per label and split")
    parser.add_argument("--seed", type=int, default=42)


def load_pools(args: Any, split: str, registry: Any) -> dict[str, Pool]:
    """Every modality's pool for ``split``, with the real recognisers' probabilities attached."""
    data_root = Path(args.data_root)
    val_speakers, test_speakers = speech_speakers(args.models_dir)
    if args.val_speakers:
        val_speakers = tuple(s.strip() for s in args.val_speakers.split(",") if s.strip())
    if args.test_speakers:
        test_speakers = tuple(s.strip() for s in args.test_speakers.split(",") if s.strip())
    text_csv = args.text_val_csv if split == "validation" else args.text_test_csv
    pools = {
        "face": face_pool(
            split, args.fer_csv or data_root / "face" / "fer2013.csv.gz", args.image_dir, args.seed, args.cache_dir
        ),
        "speech": speech_pool(
            split,
            val_speakers if split == "validation" else test_speakers,
            args.speech_dir or data_root / "speech" / "ravdess",
            args.speech_labels_from,
            args.speaker_regex,
        ),
        "text": text_pool(
            split,
            goemotions_dir=args.goemotions_dir or data_root / "text" / "goemotions",
            carer_dir=args.carer_dir or data_root / "text" / "emotions_nlp",
            csv_path=text_csv,
            text_col=args.text_col,
            label_col=args.label_col,
            sep=args.sep,
        ),
    }
    out_of_fold = out_of_fold_file(args.models_dir) if split == "validation" and not args.val_speakers else None
    return {
        m: attach_out_of_fold(pools[m], out_of_fold)
        if m == "speech" and out_of_fold is not None
        else pool_probabilities(pools[m], registry.get(m), Path(args.cache_dir))
        for m in MODALITIES
    }


def describe(pools: dict[str, Pool], triples: Triples) -> dict[str, Any]:
    """What went into a split's triples, for the card and the evaluation table."""
    return {
        "triples": len(triples),
        "per_label": {e: int((triples.labels == i).sum()) for i, e in enumerate(EMOTIONS)},
        "skipped_labels": triples.skipped_labels,
        "pools": {
            m: {
                "source": p.source,
                "examples": len(p),
                "distinct_used": len(np.unique(triples.index[m])),
                "label_counts": p.label_counts(),
                "refused": len(p.refused),
            }
            for m, p in pools.items()
        },
    }
