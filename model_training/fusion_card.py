"""The fusion model card (card.json + MODEL_CARD.md), shared by training and evaluation.

``train_fusion`` writes the card after fitting; ``evaluate_fusion`` adds the test figures to
it. Both import the card from here, so neither script imports the other's module for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inference.fusion import DEFAULT_GATE_THRESHOLD, DEFAULT_WEIGHTS, STRATEGIES
from model_training.common import write_model_card


def _card_sections(card: dict[str, Any]) -> list[str]:
    lines = [
        "## What fusion does",
        "",
        f"Strategies: {', '.join(STRATEGIES)} (default calibrated; see inference/fusion.py). Default base "
        f"weights {DEFAULT_WEIGHTS}, gate threshold {DEFAULT_GATE_THRESHOLD}.",
        "",
        "## Temperatures (fitted on each model's validation split by minimising NLL)",
        "",
        "| modality | validation data | n | T | NLL before -> after | ECE before -> after |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for modality, v in card["calibration"].items():
        lines.append(
            f"| {modality} | {v['source']} | {v['n']} | {v['temperature']:.3f} | {v['nll_before']:.4f} -> "
            f"{v['nll_after']:.4f} | {v['ece_before']:.4f} -> {v['ece_after']:.4f} |"
        )
    fused = {k: v for k, v in card.get("fused_calibration", {}).items() if v.get("temperature") is not None}
    if fused:
        lines += [
            "",
            "## The calibrated mixture's temperature (by the modalities it used)",
            "",
            "Averaging calibrated modalities gives an under-confident mixture; the calibrated strategy scales it by a "
            "temperature fitted on the validation triples' mixtures (every subset of two or more modalities, default "
            "weights and gating). The label never changes.",
            "",
            "| modalities used | validation mixtures | T | ECE before -> after |",
            "|---|---:|---:|---:|",
        ]
        for key, v in fused.items():
            lines.append(
                f"| {key} | {v['n']} | {v['temperature']:.3f} | {v['ece_before']:.4f} -> {v['ece_after']:.4f} |"
            )
    stacker = card["stacker"]
    lines += [
        "",
        "## Stacker",
        "",
        f"scikit-learn {stacker['sklearn_version']} RandomForestClassifier {stacker['hyper_parameters']} over "
        "24 features: face, speech and text probabilities (7 each, zeros when absent) and a presence mask. "
        f"Trained on {stacker['training_rows']} rows: {stacker['triples']} validation triples, each shown with all "
        f"three modalities and {stacker['dropout_copies']} more times with each modality dropped with probability "
        f"{stacker['drop_probability']} (empty subsets redrawn). Out-of-bag accuracy is not reported: copies of a "
        "triple share its probabilities. Served as an ONNX graph (skl2onnx): loading it reads data, never a pickle, "
        "and needs no scikit-learn.",
    ]
    grid = stacker.get("selection", {}).get("grid") or []
    if grid:
        lines += [
            "",
            "Settings chosen by 2-fold cross-validation inside the validation data (each modality's validation "
            "examples halved, speech by speaker; triples built within each half), scored by the mean accuracy over "
            "the 7 modality subsets:",
            "",
            "| min_samples_leaf | max_features | mean subset accuracy |",
            "|---:|---|---:|",
        ]
        lines += [
            f"| {row['min_samples_leaf']} | {row['max_features'] or 'all'} | {row['mean_subset_accuracy']:.4f} |"
            for row in grid
        ]
    lines += [
        "",
        "## Limits",
        "",
        "Triples pair independent examples from three corpora by label; real faces, voices and words of one person "
        "are correlated, so the fused gain measured here is optimistic. The temperatures and the stacker belong to "
        "the exact face, speech and text model versions listed in card.json; retrain fusion when a model changes.",
    ]
    return lines


def write_card(output_dir: Path, card: dict[str, Any], evaluation_markdown: str | None = None) -> None:
    """card.json and MODEL_CARD.md; the test evaluation table is appended when given."""
    sections = _card_sections(card)
    if evaluation_markdown:
        body = evaluation_markdown.splitlines()[1:]  # drop its own title
        sections += ["", "## Test evaluation (model_training.evaluate_fusion)", ""]
        sections += [f"#{line}" if line.startswith("## ") else line for line in body]
    write_model_card(output_dir, card, sections)


def update_card_with_evaluation(
    fusion_dir: Path, result: dict[str, Any], full_metrics: dict[str, Any], evaluation_markdown: str
) -> None:
    """Put the test figures (all three modalities, default and best strategy) into the card."""
    path = fusion_dir / "card.json"
    if not path.is_file():
        return
    card = json.loads(path.read_text(encoding="utf-8"))
    best = result["targets"]["best_strategy"]
    card["test_metrics"] = {
        f"test triples, all three, {name} strategy": full_metrics[name]
        for name in dict.fromkeys(["calibrated", best])
        if name in full_metrics
    }
    card["evaluation"] = {
        "targets": result["targets"],
        "single": result["single"],
        "fused": result["fused"],
        "calibration": result["calibration"],
        "data": result["data"],
    }
    write_card(fusion_dir, card, evaluation_markdown)
