"""Fit the fusion artefacts on *validation* data and write models/fusion/.

    python -m model_training.train_fusion                 # then evaluates on the test triples
    python -m model_training.train_fusion --no-evaluate --train-per-label 600

1. Runs the bundled face, speech and text recognisers once over each model's validation split
   (cached outside the repository, see :mod:`model_training.triples`).
2. Fits one temperature per modality by minimising the NLL of its whole validation split
   (``temperatures.json``), for the ``calibrated`` strategy.
3. Builds label-matched validation triples and trains the ``stacker`` strategy, a scikit-learn
   Random Forest over the 21 probabilities plus a 3-value presence mask, with random modality
   dropout (every triple is shown with all three modalities and ``--copies`` times with a random
   non-empty subset), so it answers any subset; exported to ONNX (``stacker.onnx``, no pickle).
4. Writes ``card.json`` and ``MODEL_CARD.md``, then (unless ``--no-evaluate``) runs
   :mod:`model_training.evaluate_fusion` on the test triples, which adds the test figures.

Hyper-parameters are fixed in advance (no search); the test split is measured once, at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.calibration import TEMPERATURES_FILE, fit_temperature, negative_log_likelihood, temperature_scale
from inference.fusion import (
    STACKER_FILE,
    fuse_calibrated,
    stacker_feature_matrix,
    stacker_proba,
)
from inference.labels import EMOTIONS, MODALITIES
from model_training.common import card_hash, directory_size_bytes, expected_calibration_error, seed_everything
from model_training.fusion_card import write_card
from model_training.triples import (
    add_data_arguments,
    build_triples,
    describe,
    load_pools,
    split_pool,
    triple_probabilities,
)

MODEL_NAME = "moodlens-fusion"
DATA_LICENCES = (
    "Face: FER2013 (Goodfellow et al. 2013; research use). Speech: RAVDESS (Livingstone & Russo 2018; "
    "CC BY-NC-SA 4.0). Text: GoEmotions (Demszky et al. 2020; Apache-2.0) and CARER (Saravia et al. 2018; "
    "research use). The fusion artefacts are fitted on the three models' outputs on these validation splits."
)


# -- temperatures --------------------------------------------------------------------------
def fit_temperatures(pools: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """One NLL-minimising temperature per modality, on its whole validation split."""
    temperatures: dict[str, float] = {}
    report: dict[str, Any] = {}
    for modality in MODALITIES:
        pool = pools[modality]
        t = fit_temperature(pool.probabilities, pool.labels)
        temperatures[modality] = round(t, 6)
        scaled = temperature_scale(pool.probabilities, t)
        report[modality] = {
            "n": len(pool),
            "source": pool.source,
            "temperature": t,
            "nll_before": negative_log_likelihood(pool.probabilities, pool.labels),
            "nll_after": negative_log_likelihood(pool.probabilities, pool.labels, t),
            "ece_before": expected_calibration_error(pool.probabilities, pool.labels),
            "ece_after": expected_calibration_error(scaled, pool.labels),
            "accuracy": float((pool.probabilities.argmax(axis=1) == pool.labels).mean()),
        }
    return temperatures, report


#: Fewer validation mixtures than this for a set of modalities leave its mixture unscaled.
MIN_FUSED_ROWS = 200


def fit_fused_temperatures(
    probs: dict[str, np.ndarray], labels: np.ndarray, temperatures: dict[str, float]
) -> tuple[dict[str, float], dict[str, Any]]:
    """A temperature for the calibrated strategy's *mixture*, per set of modalities it used.

    Every subset of two or more modalities of each validation triple is fused as the API fuses
    it (default weights, gating), grouped by the modalities the mixture kept, and each group's
    NLL-minimising temperature is fitted: averaging calibrated answers softens them, and this
    restores what the confidence says. Label never changes.
    """
    rows: dict[str, list[tuple[np.ndarray, int]]] = {}
    for size in range(2, len(MODALITIES) + 1):
        for subset in itertools.combinations(MODALITIES, size):
            for i, label in enumerate(labels):
                result = fuse_calibrated({m: probs[m][i] for m in subset}, temperatures=temperatures)
                used = result.explanation["used"]
                if len(used) > 1:
                    rows.setdefault("+".join(used), []).append((np.array(result.probabilities), int(label)))
    fused: dict[str, float] = {}
    report: dict[str, Any] = {}
    for key in sorted(rows, key=lambda k: (-k.count("+"), k)):
        p = np.stack([r[0] for r in rows[key]])
        y = np.array([r[1] for r in rows[key]])
        if len(y) < MIN_FUSED_ROWS:
            report[key] = {"n": len(y), "temperature": None, "why": f"fewer than {MIN_FUSED_ROWS} validation mixtures"}
            continue
        t = fit_temperature(p, y)
        fused[key] = round(t, 6)
        report[key] = {
            "n": len(y),
            "temperature": t,
            "ece_before": expected_calibration_error(p, y),
            "ece_after": expected_calibration_error(temperature_scale(p, t), y),
        }
    return fused, report


# -- the stacker ---------------------------------------------------------------------------
def dropout_masks(n: int, copies: int, drop_probability: float, rng: np.random.Generator) -> np.ndarray:
    """``(n * (copies + 1), 3)`` presence masks: all present once, then ``copies`` random non-empty subsets."""
    masks = [np.ones((n, len(MODALITIES)))]
    for _ in range(copies):
        mask = (rng.random((n, len(MODALITIES))) >= drop_probability).astype(float)
        empty = mask.sum(axis=1) == 0
        while empty.any():  # an empty subset is never a request: redraw it
            mask[empty] = (rng.random((int(empty.sum()), len(MODALITIES))) >= drop_probability).astype(float)
            empty = mask.sum(axis=1) == 0
        masks.append(mask)
    return np.concatenate(masks)


def stacker_training_set(
    probs: dict[str, np.ndarray], labels: np.ndarray, copies: int, drop_probability: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features (with modality dropout applied through the presence mask) and labels."""
    rng = np.random.default_rng(seed)
    masks = dropout_masks(len(labels), copies, drop_probability, rng)
    repeated = {m: np.tile(probs[m], (copies + 1, 1)) for m in MODALITIES}
    return stacker_feature_matrix(repeated, masks), np.tile(labels, copies + 1)


def train_stacker(
    features: np.ndarray, labels: np.ndarray, args: argparse.Namespace, max_features: str | None = "sqrt"
) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=args.n_estimators,
        min_samples_leaf=args.min_samples_leaf,
        max_depth=args.max_depth,
        max_features=max_features,
        n_jobs=args.threads,
        random_state=args.seed,
    )
    model.fit(features, labels)
    model.n_jobs = 1  # serving predicts one row at a time; threads only cost there
    return model


#: The small grid chosen from by validation-only cross-validation (``--no-select`` skips it).
STACKER_GRID: tuple[dict[str, Any], ...] = tuple(
    {"min_samples_leaf": leaf, "max_features": features} for leaf in (5, 20, 50, 100) for features in ("sqrt", None)
)
ALL_SUBSETS: tuple[tuple[int, ...], ...] = tuple(
    mask for mask in itertools.product((0, 1), repeat=len(MODALITIES)) if any(mask)
)


def subset_accuracy(model: Any, probs: dict[str, np.ndarray], labels: np.ndarray) -> float:
    """Mean accuracy over the 7 non-empty modality subsets (the stacker must serve them all)."""
    scores = []
    for mask in ALL_SUBSETS:
        present = np.tile(np.asarray(mask, dtype=float), (len(labels), 1))
        predicted = stacker_proba(model, stacker_feature_matrix(probs, present)).argmax(axis=1)
        scores.append(float((predicted == labels).mean()))
    return float(np.mean(scores))


def select_stacker(pools: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick RF settings by 2-fold cross-validation *within the validation data*.

    Each modality's validation examples are split in two (speech by speaker), triples are built
    inside each half, so no face, clip or text is on both sides of a fold.
    """
    scores: dict[int, list[float]] = {i: [] for i in range(len(STACKER_GRID))}
    for fold in range(2):
        halves = {m: split_pool(pool, fold, 2, args.seed) for m, pool in pools.items()}
        fit_pools = {m: h[0] for m, h in halves.items()}
        held_pools = {m: h[1] for m, h in halves.items()}
        fit = build_triples(fit_pools, max(args.train_per_label // 2, 1), args.seed, "validation")
        held = build_triples(held_pools, max(args.train_per_label // 4, 1), args.seed + 1, "validation")
        features, labels = stacker_training_set(
            triple_probabilities(fit, fit_pools), fit.labels, args.copies, args.drop_probability, args.seed
        )
        held_probs = triple_probabilities(held, held_pools)
        for i, params in enumerate(STACKER_GRID):
            trial = argparse.Namespace(**{**vars(args), "min_samples_leaf": params["min_samples_leaf"]})
            model = train_stacker(features, labels, trial, params["max_features"])
            scores[i].append(subset_accuracy(model, held_probs, held.labels))
    table = [
        {**STACKER_GRID[i], "fold_scores": scores[i], "mean_subset_accuracy": float(np.mean(scores[i]))}
        for i in range(len(STACKER_GRID))
    ]
    best = max(range(len(table)), key=lambda i: table[i]["mean_subset_accuracy"])
    for row in table:
        leaf, features, score = row["min_samples_leaf"], row["max_features"] or "all", row["mean_subset_accuracy"]
        print(f"stacker min_samples_leaf={leaf} max_features={features}: mean subset accuracy {score:.4f}", flush=True)
    return dict(STACKER_GRID[best]), table


# -- main ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--output-dir", type=Path, help="where to write (default MODELS_DIR/fusion)")
    parser.add_argument("--train-per-label", type=int, default=600, help="validation triples per label")
    parser.add_argument("--copies", type=int, default=4, help="modality-dropout copies of each triple")
    parser.add_argument("--drop-probability", type=float, default=0.4)
    parser.add_argument("--n-estimators", type=int, default=150)
    parser.add_argument("--min-samples-leaf", type=int, default=20, help="used as given with --no-select")
    parser.add_argument("--max-features", default="sqrt", help="'sqrt' or 'all'; used as given with --no-select")
    parser.add_argument(
        "--no-select", dest="select", action="store_false", help="skip the validation-only choice of RF settings"
    )
    parser.add_argument("--max-depth", type=int, default=14)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-evaluate", action="store_true", help="do not measure on the test triples afterwards")
    return parser.parse_args(argv)


def _component_models(registry: Any) -> dict[str, Any]:
    status = registry.status()
    return {
        m: {
            "model_name": status[m].get("model_name"),
            "model_version": status[m].get("model_version"),
            "card_sha1": card_hash(registry.get(m).model_dir),
        }
        for m in MODALITIES
    }


@dataclass
class Fitted:
    """The validation pools and triples, the fitted temperatures and the chosen stacker."""

    pools: dict[str, Any]
    triples: Any
    temperatures: dict[str, float]
    calibration: dict[str, Any]
    features: np.ndarray
    labels: np.ndarray
    model: Any
    max_features: str | None
    selection: list[dict[str, Any]]
    fused_temperatures: dict[str, float]
    fused_calibration: dict[str, Any]


def load(args: argparse.Namespace) -> Any | None:
    """The bundled recognisers whose outputs fusion is fitted on (None, with a message, when one is missing)."""
    from inference.registry import RecognizerRegistry

    registry = RecognizerRegistry.from_models_dir(args.models_dir)
    missing = [m for m in MODALITIES if m not in registry.available()]
    if missing:
        print(f"these models are not installed yet: {', '.join(missing)}", file=sys.stderr)
        return None
    return registry


def fit(args: argparse.Namespace, registry: Any) -> Fitted:
    """Temperatures per modality on its validation split, then the stacker on validation triples."""
    pools = load_pools(args, "validation", registry)
    temperatures, calibration = fit_temperatures(pools)
    for modality, v in calibration.items():
        print(
            f"{modality}: T = {v['temperature']:.3f}, validation ECE {v['ece_before']:.4f} -> {v['ece_after']:.4f}, "
            f"NLL {v['nll_before']:.4f} -> {v['nll_after']:.4f} (n={v['n']})",
            flush=True,
        )

    triples = build_triples(pools, args.train_per_label, args.seed, "validation")
    probs = triple_probabilities(triples, pools)
    fused_temperatures, fused_calibration = fit_fused_temperatures(probs, triples.labels, temperatures)
    for key, v in fused_calibration.items():
        if v["temperature"] is not None:
            print(
                f"calibrated mixture {key}: T = {v['temperature']:.3f}, validation ECE "
                f"{v['ece_before']:.4f} -> {v['ece_after']:.4f} (n={v['n']})",
                flush=True,
            )
    features, labels = stacker_training_set(probs, triples.labels, args.copies, args.drop_probability, args.seed)
    selection: list[dict[str, Any]] = []
    max_features: str | None = None if args.max_features == "all" else args.max_features
    if args.select:
        chosen, selection = select_stacker(pools, args)
        args.min_samples_leaf, max_features = chosen["min_samples_leaf"], chosen["max_features"]
    model = train_stacker(features, labels, args, max_features)

    return Fitted(
        pools,
        triples,
        temperatures,
        calibration,
        features,
        labels,
        model,
        max_features,
        selection,
        fused_temperatures,
        fused_calibration,
    )


def export(output_dir: Path, fitted: Fitted) -> dict[str, Any]:
    """temperatures.json and the stacker as an ONNX graph (checked against scikit-learn)."""
    from model_training.export import export_stacker

    temperatures, model, features = fitted.temperatures, fitted.model, fitted.features
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / TEMPERATURES_FILE).write_text(
        json.dumps(
            {
                "temperatures": temperatures,
                "fitted_on": "validation splits, NLL",
                "fused": fitted.fused_temperatures,
                "fused_fitted_on": "calibrated mixtures of the validation triples, by modalities used, NLL",
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return export_stacker(model, output_dir / STACKER_FILE, validation_features=features)


def build_card(
    args: argparse.Namespace,
    output_dir: Path,
    *,
    registry: Any,
    fitted: Fitted,
    serving: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    """card.json's content: the fitted artefacts, how they were chosen, and the component models."""
    from sklearn import __version__ as sklearn_version

    temperatures, calibration, triples, labels = fitted.temperatures, fitted.calibration, fitted.triples, fitted.labels
    pools, selection, max_features = fitted.pools, fitted.selection, fitted.max_features
    hyper = {
        "n_estimators": args.n_estimators,
        "min_samples_leaf": args.min_samples_leaf,
        "max_depth": args.max_depth,
        "max_features": max_features or "all",
    }
    card: dict[str, Any] = {
        "model_name": MODEL_NAME,
        "modality": "fusion (face + speech + text)",
        "version": dt.date.today().isoformat(),
        "data": DATA_LICENCES,
        "split": (
            "Fitted on label-matched validation triples (FER2013 PublicTest, the speech model's validation actors, "
            "GoEmotions dev + CARER val single-label rows); measured on test triples (FER2013 PrivateTest, the "
            "speech model's test actors, GoEmotions test + CARER test). See model_training/triples.py."
        ),
        "test_metrics": {},
        "labels": list(EMOTIONS),
        "files": {"temperatures": TEMPERATURES_FILE, "stacker": STACKER_FILE},
        "size_bytes": directory_size_bytes(output_dir, [TEMPERATURES_FILE, STACKER_FILE]),
        "serving": serving,
        "temperatures": temperatures,
        "calibration": calibration,
        "fused_temperatures": fitted.fused_temperatures,
        "fused_calibration": fitted.fused_calibration,
        "stacker": {
            "sklearn_version": sklearn_version,
            "numpy_version": np.__version__,
            "hyper_parameters": hyper,
            "triples": len(triples),
            "training_rows": len(labels),
            "dropout_copies": args.copies,
            "drop_probability": args.drop_probability,
            "features": "face[7], speech[7], text[7] probabilities (zeros when absent), presence mask[3]",
            "selection": {
                "method": "2-fold CV inside the validation data (speech split by speaker), mean accuracy over the "
                "7 modality subsets",
                "grid": selection,
            },
        },
        "validation_data": describe(pools, triples),
        "component_models": _component_models(registry),
        "training": {
            "seed": args.seed,
            "wall_clock_minutes": round((time.perf_counter() - started) / 60, 2),
            "hardware": f"CPU ({platform.machine()}), {args.threads} threads",
        },
    }
    return card


def main(argv: list[str] | None = None) -> int:
    """load -> fit -> export -> write the card -> evaluate on the test triples (adds the test figures)."""
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    seed_everything(args.seed)
    output_dir = Path(args.output_dir) if args.output_dir else Path(args.models_dir) / "fusion"
    started = time.perf_counter()
    registry = load(args)
    if registry is None:
        return 2
    fitted = fit(args, registry)
    serving = export(output_dir, fitted)
    card = build_card(args, output_dir, registry=registry, fitted=fitted, serving=serving, started=started)
    write_card(output_dir, card)
    print(
        f"wrote {output_dir.name}/: temperatures {fitted.temperatures}, stacker {card['size_bytes'] / 1e6:.2f} MB "
        f"({len(fitted.labels)} training rows)",
        flush=True,
    )

    if not args.no_evaluate:
        from model_training.evaluate_fusion import evaluate, markdown

        args.fusion_dir = output_dir
        args.no_write = False
        result = evaluate(args)
        sys.stdout.write(markdown(result))
    from model_training.export import update_card

    # Last, so the card's Serving section survives the evaluation's rewrite of MODEL_CARD.md.
    update_card(output_dir, serving, size_from_onnx=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
