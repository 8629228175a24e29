"""Write the served artefacts: one ONNX graph per model, checked against the framework.

    python -m model_training.export                      # face, speech, text and fusion
    python -m model_training.export face text --remeasure

Training frameworks stay in training: each training script ends by calling one of the
``export_*`` functions below, which writes the ONNX graph beside the framework weights and
returns the card fields (file, SHA-256, size, opset, parity). The command converts the models
committed today without retraining and, with ``--remeasure``, re-measures each card's test
figures through the served graph (the way the web application runs it).

Parity is the largest absolute difference between the framework's probabilities and the
graph's on the validation inputs; anything above :data:`PARITY_TOLERANCE` refuses the export.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.labels import MODALITIES, NUM_EMOTIONS
from model_training.common import DEFAULT_DATA_ROOT, DEFAULT_MODELS_DIR, classification_metrics

#: ONNX operator set of every exported graph.
OPSET = 17
#: Largest |framework - ONNX| probability difference an export may show (float32).
PARITY_TOLERANCE = 1e-4
FACE_ONNX = "face_model.onnx"
SPEECH_ONNX = "speech_model.onnx"
TEXT_ONNX = "model.onnx"
STACKER_ONNX = "stacker.onnx"
#: Float32 initializers at least this large are stored as float16 when that loses nothing.
_FP16_MIN_ELEMENTS = 1024
SERVING_SECTION = "## Serving (ONNX)"


class ParityError(RuntimeError):
    """The exported graph does not reproduce the framework's probabilities."""


# -- shared ------------------------------------------------------------------------------
def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _parity(reference: np.ndarray, served: np.ndarray, on: str) -> dict[str, Any]:
    reference = np.asarray(reference, dtype=np.float64)
    served = np.asarray(served, dtype=np.float64)
    if reference.shape != served.shape:
        raise ParityError(f"shapes differ: framework {reference.shape}, ONNX {served.shape}")
    diff = float(np.max(np.abs(reference - served))) if reference.size else 0.0
    agreement = float(np.mean(reference.argmax(axis=-1) == served.argmax(axis=-1))) if reference.size else 1.0
    report = {
        "max_abs_diff": diff,
        "argmax_agreement": agreement,
        "inputs": len(reference),
        "on": on,
        "tolerance": PARITY_TOLERANCE,
    }
    if not diff <= PARITY_TOLERANCE:
        raise ParityError(f"ONNX differs from the framework by {diff:.2e} (> {PARITY_TOLERANCE:g}) on {on}")
    return report


def artefact_fields(path: Path, parity: dict[str, Any], exporter: dict[str, str], **extra: Any) -> dict[str, Any]:
    """What a card says about a served file: name, SHA-256, size, opset, parity, tools."""
    return {
        "format": "onnx",
        "file": path.name,
        "sha256": sha256_of(path),
        "size_bytes": path.stat().st_size,
        "opset": OPSET,
        "runtime": "onnxruntime (CPUExecutionProvider)",
        "parity": parity,
        "exported_with": exporter,
        "exported_on": dt.date.today().isoformat(),
        **extra,
    }


def _ort_run(path: Path, batches: Sequence[np.ndarray], threads: int = 2) -> list[list[np.ndarray]]:
    from inference.onnx_session import open_session

    session = open_session(path, threads=threads)
    name = session.get_inputs()[0].name
    return [session.run(None, {name: batch}) for batch in batches]


# -- face --------------------------------------------------------------------------------
def export_face(
    keras_path: str | Path,
    onnx_path: str | Path,
    *,
    test_time_flip: bool = True,
    validation: np.ndarray | None = None,
) -> dict[str, Any]:
    """Keras face network (flip-averaged when ``test_time_flip``) -> ONNX; returns card fields.

    ``validation`` holds normalised ``(n, 48, 48, 1)`` faces (FER2013 PublicTest when called
    from training); without it, 256 seeded random faces check the graph.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    onnx_path = Path(onnx_path)
    model = keras.models.load_model(keras_path, compile=False)
    size = int(model.input_shape[1])
    served = model
    if test_time_flip:
        inputs = keras.Input((size, size, 1), name="face")
        mirrored = keras.layers.Lambda(lambda t: keras.ops.flip(t, axis=2), name="mirror")(inputs)
        outputs = keras.layers.Average(name="probabilities")([model(inputs), model(mirrored)])
        served = keras.Model(inputs, outputs, name=f"{model.name}_flip_averaged")
    on = "FER2013 PublicTest (validation) faces"
    if validation is None:
        validation = np.random.default_rng(0).uniform(-1, 1, (256, size, size, 1)).astype(np.float32)
        on = "256 seeded random faces"
    validation = np.asarray(validation, dtype=np.float32).reshape(-1, size, size, 1)
    served(validation[:8])  # Keras exports only a model that has been called
    served.export(str(onnx_path), format="onnx", opset_version=OPSET, verbose=False)
    reference = served.predict(validation, batch_size=512, verbose=0)
    chunks = [validation[i : i + 512] for i in range(0, len(validation), 512)]
    graph = np.concatenate([out[0] for out in _ort_run(onnx_path, chunks)])
    return artefact_fields(
        onnx_path,
        _parity(reference, graph, on),
        _versions("keras", "tensorflow-cpu", "tensorflow", "tf2onnx", "onnx", "onnxruntime"),
        test_time_flip=bool(test_time_flip),
        input="(batch, 48, 48, 1) float32 in [-1, 1]",
    )


# -- speech ------------------------------------------------------------------------------
def export_speech(
    keras_path: str | Path,
    onnx_path: str | Path,
    *,
    validation: Sequence[np.ndarray] | None = None,
    float16_weights: bool = False,
) -> dict[str, Any]:
    """Keras CNN-BiLSTM-attention -> ONNX with an open time axis; returns card fields.

    ``validation`` holds standardised ``(frames, 120)`` sequences (the validation actors when
    called from training); both outputs, probabilities and attention, are checked.
    ``float16_weights`` rounds the trained weights to float16 before the export and stores them
    so (half the file; inference stays float32): the graph is checked against the *rounded*
    network, and what the rounding costs is for the caller to measure on held-out clips.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from model_training.speech_layers import CUSTOM_OBJECTS  # registers the custom layers
    from preprocessing.audio import N_FEATURES, pad_frames

    onnx_path = Path(onnx_path)
    model = keras.models.load_model(keras_path, custom_objects=CUSTOM_OBJECTS, compile=False)
    on = "validation actors' clips"
    if validation is None:
        rng = np.random.default_rng(0)
        validation = [rng.normal(0, 1, (int(n), N_FEATURES)).astype(np.float32) for n in rng.integers(60, 400, 32)]
        on = "32 seeded random feature sequences (60-400 frames)"
    sequences = [np.asarray(s, dtype=np.float32) for s in validation]
    if float16_weights:
        model.set_weights([_round_to_float16(w) for w in model.get_weights()])
    model(pad_frames(sequences[:2]), training=False)
    model.export(str(onnx_path), format="onnx", opset_version=OPSET, verbose=False)
    extra: dict[str, Any] = {}
    if float16_weights:
        import onnx

        graph = onnx.load(str(onnx_path))
        converted, kept = _store_float16(graph)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(onnx_path))
        extra["weights_storage"] = (
            f"trained weights rounded to float16, stored as float16 + Cast to float32 "
            f"({converted} initializers converted, {kept} kept float32)"
        )
        extra["compute"] = "float32"
    # Similar lengths share a batch, so padding stays short, exactly as serving pads one clip.
    order = np.argsort([len(s) for s in sequences], kind="stable")
    batches = [pad_frames([sequences[i] for i in order[j : j + 16]]) for j in range(0, len(order), 16)]
    probs_ref, attention_ref = [], []
    for batch in batches:
        probabilities, attention = model(batch, training=False)
        probs_ref.append(np.asarray(probabilities))
        attention_ref.append(np.asarray(attention))
    outputs = _ort_run(onnx_path, batches)
    parity = _parity(np.concatenate(probs_ref), np.concatenate([o[0] for o in outputs]), on)
    attention_diff = max(float(np.max(np.abs(a - o[1]))) for a, o in zip(attention_ref, outputs, strict=True))
    if not attention_diff <= PARITY_TOLERANCE:
        raise ParityError(f"the speech attention output differs by {attention_diff:.2e}")
    parity["attention_max_abs_diff"] = attention_diff
    return artefact_fields(
        onnx_path,
        parity,
        _versions("keras", "tensorflow-cpu", "tensorflow", "tf2onnx", "onnx", "onnxruntime"),
        input="(batch, frames, 120) float32 standardised MFCC frames, zero-padded; outputs probabilities and "
        "attention over frames / 2",
        **extra,
    )


def _round_to_float16(weights: np.ndarray) -> np.ndarray:
    """A float32 weight array rounded to the nearest float16 value (other dtypes unchanged)."""
    weights = np.asarray(weights)
    return weights.astype(np.float16).astype(np.float32) if weights.dtype == np.float32 else weights


def export_linear_head(pipeline: Any, onnx_path: str | Path, *, validation: np.ndarray, on: str) -> dict[str, Any]:
    """A fitted scikit-learn ``StandardScaler -> LogisticRegression`` pipeline as one ONNX graph
    (vector in, 7 probabilities out); its ``predict_proba`` on ``validation`` is the parity check."""
    scaler, regression = pipeline[0], pipeline[-1]
    scaler_mean, scaler_scale = scaler.mean_, scaler.scale_
    coefficients, intercepts = regression.coef_, regression.intercept_
    reference = pipeline
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = int(np.asarray(scaler_mean).size)
    weights = (np.asarray(coefficients, dtype=np.float64) / np.asarray(scaler_scale, dtype=np.float64)).T
    bias = np.asarray(intercepts, dtype=np.float64) - np.asarray(scaler_mean, dtype=np.float64) @ weights
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["encoded", "weights", "bias"], ["logits"], name="regression"),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1, name="softmax"),
        ],
        "speech_encoder_head",
        [helper.make_tensor_value_info("encoded", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", NUM_EMOTIONS])],
        [
            numpy_helper.from_array(weights.astype(np.float32), "weights"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="moodlens")
    onnx.checker.check_model(model)
    onnx_path = Path(onnx_path)
    onnx.save(model, str(onnx_path))
    validation = np.asarray(validation, dtype=np.float32)
    served = _ort_run(onnx_path, [validation])[0][0]
    return artefact_fields(
        onnx_path,
        _parity(reference.predict_proba(validation), served, on),
        _versions("scikit-learn", "onnx", "onnxruntime"),
        input=f"(batch, {width}) float32 pooled encoder states; output probabilities (batch, 7)",
    )


# -- text --------------------------------------------------------------------------------
def _store_float16(model: Any) -> tuple[int, int]:
    """Store float32 initializers as float16 + a Cast node wherever the round trip is exact.

    The trained weights are float16 already, so this loses nothing; ONNX Runtime folds the
    casts when it opens the session, and inference runs in float32 as before. Returns the
    number of initializers converted and kept.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts, converted, kept = [], 0, 0
    for initializer in list(graph.initializer):
        if initializer.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(initializer)
        if values.size < _FP16_MIN_ELEMENTS or not np.array_equal(values.astype(np.float16).astype(np.float32), values):
            kept += 1
            continue
        name = initializer.name
        half = numpy_helper.from_array(values.astype(np.float16), name=f"{name}__fp16")
        initializer.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
        converted += 1
    for node in reversed(casts):
        graph.node.insert(0, node)
    return converted, kept


def export_text(
    model_dir: str | Path,
    onnx_path: str | Path | None = None,
    *,
    validation_texts: Sequence[str] | None = None,
    threads: int = 1,
    int8: bool = False,
) -> dict[str, Any]:
    """The PyTorch text network in ``model_dir`` -> ONNX (float16-stored weights); card fields.

    Parity runs the whole recogniser (tokenizer, windows, class prior) twice on
    ``validation_texts``: once through eager PyTorch, once through the graph. With ``int8``
    the graph's MatMul weights are quantised (ONNX Runtime dynamic int8); its difference is
    reported, and training's validation rule, not the float32 tolerance, decides whether it
    is served.
    """
    import warnings

    import onnx
    import torch

    from inference.onnx_session import open_session
    from inference.text import TextRecognizer, session_forward
    from model_training.text_network import load_text_network, torch_forward

    model_dir = Path(model_dir)
    onnx_path = Path(onnx_path) if onnx_path else model_dir / TEXT_ONNX
    network = load_text_network(model_dir)
    # A padded batch of two, so the traced graph keeps the attention-mask path it must honour.
    example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    example[1][1, 5:] = 0
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # notes about Python-side shape checks
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            network,
            example,
            buffer,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "logits": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    if int8:
        import tempfile

        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as scratch:
            float_path = Path(scratch) / "float32.onnx"
            onnx.save(graph, str(float_path))
            quantize_dynamic(float_path, onnx_path, weight_type=QuantType.QInt8)
        storage = "int8 MatMul weights (ONNX Runtime dynamic quantisation), other initializers float32"
    else:
        converted, kept = _store_float16(graph)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(onnx_path))
        storage = f"float16 initializers + Cast to float32 ({converted} converted, {kept} kept float32)"

    on = "validation texts"
    if validation_texts is None:
        validation_texts = [
            "I can't believe you did this, I'm furious!",
            "What a lovely surprise, thank you so much 😊",
            "I'm scared of what the test results will say.",
            "The meeting is at 3 pm in room 204.",
            "This smells disgusting, I almost threw up.",
            "I miss her every single day. " * 40,
        ]
        on = "6 fixed sentences (one long enough for several windows)"
    texts = list(validation_texts)
    reference = TextRecognizer(model_dir, num_threads=threads, forward=torch_forward(network)).predict_proba(texts)
    served_forward = session_forward(open_session(onnx_path, threads=threads))
    served = TextRecognizer(model_dir, num_threads=threads, forward=served_forward).predict_proba(texts)
    if int8:
        diff = float(np.max(np.abs(reference - served)))
        agreement = float(np.mean(reference.argmax(1) == served.argmax(1)))
        parity = {
            "max_abs_diff": diff,
            "argmax_agreement": agreement,
            "inputs": len(texts),
            "on": on,
            "tolerance": None,
        }
    else:
        parity = _parity(reference, served, on)
    return artefact_fields(
        onnx_path,
        parity,
        _versions("torch", "transformers", "onnx", "onnxruntime"),
        weights_storage=storage,
        compute="int8 MatMul, float32 elsewhere" if int8 else "float32",
        input="input_ids, attention_mask (batch, tokens) int64; output logits (batch, 7)",
    )


# -- fusion stacker ----------------------------------------------------------------------
def export_stacker(
    model: Any, onnx_path: str | Path, *, validation_features: np.ndarray | None = None
) -> dict[str, Any]:
    """A fitted scikit-learn classifier (the Random Forest) -> ONNX via skl2onnx; card fields.

    The classes and the feature importances travel in the graph's metadata, so serving needs
    neither scikit-learn nor a pickle. Without ``validation_features``, 2,000 seeded rows per
    non-empty modality subset (Dirichlet-sampled probabilities plus the presence mask) check it.
    """
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from inference.fusion import stacker_feature_matrix

    onnx_path = Path(onnx_path)
    n_features = NUM_EMOTIONS * len(MODALITIES) + len(MODALITIES)
    graph = convert_sklearn(
        model,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )
    metadata = {
        "classes": json.dumps([int(c) for c in model.classes_]),
        "feature_importances": json.dumps([float(v) for v in getattr(model, "feature_importances_", [])]),
    }
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(onnx_path))

    on = "validation features"
    if validation_features is None:
        rng = np.random.default_rng(0)
        rows = []
        for mask in range(1, 2 ** len(MODALITIES)):
            present = np.asarray([[(mask >> j) & 1 for j in range(len(MODALITIES))]] * 2000, dtype=float)
            probs = {m: rng.dirichlet(np.full(NUM_EMOTIONS, 0.3), 2000) for m in MODALITIES}
            rows.append(stacker_feature_matrix(probs, present))
        validation_features = np.concatenate(rows)
        on = "2,000 seeded rows per non-empty modality subset (Dirichlet(0.3) probabilities)"
    features = np.asarray(validation_features, dtype=np.float32)
    reference = np.asarray(model.predict_proba(features), dtype=np.float64)
    outputs = _ort_run(onnx_path, [features])[0]
    return artefact_fields(
        onnx_path,
        _parity(reference, outputs[1], on),
        _versions("scikit-learn", "skl2onnx", "onnx", "onnxruntime"),
        input=f"features (batch, {n_features}) float32; outputs label, probabilities (batch, classes)",
    )


# -- re-measuring the cards' test figures through the served graphs ----------------------
def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("n", "accuracy", "macro_f1", "uar") if k in metrics}


def _face(models_dir: Path, data_root: Path, remeasure: bool) -> dict[str, Any]:
    from inference.face import FaceRecognizer
    from model_training.datasets import ferplus_majority, load_fer_csv, load_ferplus, normalise

    folder = models_dir / "face"
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    splits = load_fer_csv(data_root / "face" / "fer2013.csv.gz", cache_dir=None)
    x_val, _ = splits["PublicTest"]
    fields = export_face(
        folder / "face_model.keras",
        folder / FACE_ONNX,
        test_time_flip=bool(card.get("test_time_flip", True)),
        validation=normalise(x_val),
    )
    if remeasure:
        x_test, y_test = splits["PrivateTest"]
        probs = FaceRecognizer(folder, threads=2).predict_proba(normalise(x_test))
        served = {"FER2013 PrivateTest (original labels)": _headline(classification_metrics(y_test, probs.argmax(1)))}
        ferplus_path = data_root / "face" / "fer2013new.csv"
        if ferplus_path.is_file():
            majority = ferplus_majority(load_ferplus(ferplus_path)["PrivateTest"])
            keep = majority >= 0
            served["FER2013 PrivateTest (FER+ majority labels)"] = _headline(
                classification_metrics(majority[keep], probs[keep].argmax(1))
            )
        fields["test_metrics"] = served
    return fields


def _speech(models_dir: Path, data_root: Path, remeasure: bool) -> dict[str, Any]:
    from errors import EmotionAppError
    from inference.speech import SpeechRecognizer
    from model_training.datasets import list_clips
    from model_training.triples import DEFAULT_TEST_SPEAKERS, DEFAULT_VAL_SPEAKERS, RAVDESS_SPEAKER_REGEX
    from preprocessing.audio import FeatureStats, standardise

    folder = models_dir / "speech"
    if not (folder / "speech_model.keras").is_file():
        raise SystemExit(
            f"{folder} holds no single Keras network to re-export (an actor-fold ensemble is exported by "
            "python -m model_training.release_speech)"
        )
    clips = list_clips(data_root / "speech" / "ravdess", None, "filename", RAVDESS_SPEAKER_REGEX)
    recognizer = SpeechRecognizer(folder)
    stats = FeatureStats.from_json(folder / "feature_stats.json")

    def featurise(speakers: tuple[str, ...]) -> tuple[list[np.ndarray], list[int]]:
        sequences, labels = [], []
        for clip in clips:
            if clip.speaker.lstrip("0") not in {s.lstrip("0") for s in speakers}:
                continue
            try:
                sequences.append(standardise(recognizer.preprocess(clip.path.read_bytes())[0].frames, stats))
            except EmotionAppError:
                continue
            labels.append(clip.label)
        return sequences, labels

    val_x, _ = featurise(DEFAULT_VAL_SPEAKERS)
    fields = export_speech(folder / "speech_model.keras", folder / SPEECH_ONNX, validation=val_x)
    if remeasure:
        served_recognizer = SpeechRecognizer(folder)
        wanted = {s.lstrip("0") for s in DEFAULT_TEST_SPEAKERS}
        predicted, y_test = [], []
        for clip in clips:
            if clip.speaker.lstrip("0") not in wanted:
                continue
            try:
                predicted.append(int(np.argmax(served_recognizer.predict(clip.path.read_bytes()).probabilities)))
            except EmotionAppError:
                continue
            y_test.append(clip.label)
        name = "RAVDESS actors " + "-".join((DEFAULT_TEST_SPEAKERS[0], DEFAULT_TEST_SPEAKERS[-1]))
        fields["test_metrics"] = {name: _headline(classification_metrics(y_test, predicted))}
    return fields


def _text(models_dir: Path, data_root: Path, remeasure: bool, parity_rows: int) -> dict[str, Any]:
    from inference.text import TextRecognizer
    from model_training.datasets import CARER_NAME, GOEMOTIONS_NAME, load_carer, load_goemotions
    from model_training.eval_text import set_metrics

    folder = models_dir / "text"
    text_root = data_root / "text"
    val_sets = [load_goemotions(text_root / "goemotions", "dev"), load_carer(text_root / "emotions_nlp", "val")]
    texts = [t for s in val_sets for t in s.texts]
    step = max(1, len(texts) // parity_rows) if parity_rows else 1
    sample = texts[::step][: parity_rows or None]
    fields = export_text(folder, folder / TEXT_ONNX, validation_texts=sample, threads=2)
    fields["parity"]["on"] = f"{len(sample):,} validation texts (one in {step} of GoEmotions dev + CARER val)"
    if remeasure:
        recognizer = TextRecognizer(folder, num_threads=2)
        served = {}
        for data in (load_goemotions(text_root / "goemotions", "test"), load_carer(text_root / "emotions_nlp", "test")):
            corpus = data.name.rsplit(" ", 1)[0]
            title = f"{corpus} test, single-Ekman rows" if corpus == GOEMOTIONS_NAME else f"{CARER_NAME} test"
            served[title] = _headline(set_metrics(data, recognizer.predict_proba(data.texts))["single"])
        fields["test_metrics"] = served
    return fields


def _fusion(models_dir: Path) -> dict[str, Any]:
    import joblib  # the one place a pickle is read: converting the committed Random Forest once

    folder = models_dir / "fusion"
    legacy = folder / "stacker.joblib"
    if not legacy.is_file():
        raise SystemExit(f"{legacy} is gone: model_training.train_fusion writes {STACKER_ONNX} directly")
    return export_stacker(joblib.load(legacy), folder / STACKER_ONNX)


def update_card(folder: Path, fields: dict[str, Any], *, size_from_onnx: bool = True) -> None:
    """Write ``fields`` as the card's ``serving`` entry and its Markdown section."""
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["serving"] = fields
    card.setdefault("files", {})["serving"] = fields["file"]
    if size_from_onnx:
        card["size_bytes"] = fields["size_bytes"]
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    markdown = folder / "MODEL_CARD.md"
    text = markdown.read_text(encoding="utf-8") if markdown.is_file() else ""
    text = re.sub(rf"\n{re.escape(SERVING_SECTION)}\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip() + "\n"
    markdown.write_text(text + "\n" + serving_markdown(fields, card.get("test_metrics", {})), encoding="utf-8")


def serving_markdown(fields: dict[str, Any], framework_metrics: dict[str, Any]) -> str:
    """The card section: served file, checksum, parity and the test figures through the graph."""
    parity = fields["parity"]
    lines = [
        SERVING_SECTION,
        "",
        f"- **File:** `{fields['file']}` ({fields['size_bytes'] / 1e6:.2f} MB, ONNX opset {fields['opset']}, "
        f"run by ONNX Runtime on the CPU)",
        f"- **SHA-256:** `{fields['sha256']}`",
        f"- **Parity with the framework:** max |Δp| = {parity['max_abs_diff']:.1e} on {parity['on']} "
        f"(n = {parity['inputs']:,}, argmax agreement {parity['argmax_agreement']:.2%}; tolerance "
        f"{parity['tolerance']:g})",
    ]
    if "weights_storage" in fields:
        lines.append(f"- **Weights:** {fields['weights_storage']}; compute in {fields['compute']}")
    tools = ", ".join(f"{name} {version}" for name, version in fields["exported_with"].items())
    lines.append(f"- **Exported:** {fields['exported_on']} with {tools}")
    if fields.get("test_metrics"):
        lines += ["", "Test figures re-measured through the served graph:", ""]
        lines += ["| split | n | accuracy | macro-F1 | framework accuracy |", "|---|---:|---:|---:|---:|"]
        for name, metrics in fields["test_metrics"].items():
            before = framework_metrics.get(name, {}).get("accuracy")
            lines.append(
                f"| {name} | {metrics['n']} | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} | "
                f"{'' if before is None else f'{before:.4f}'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="any of face, speech, text, fusion (default: all four)")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--remeasure", action="store_true", help="re-measure the cards' test figures via ONNX")
    parser.add_argument("--text-parity-rows", type=int, default=2000, help="validation texts for text parity (0: all)")
    args = parser.parse_args(argv)
    wanted = args.models or [*MODALITIES, "fusion"]
    unknown = sorted(set(wanted) - {*MODALITIES, "fusion"})
    if unknown:
        parser.error(f"unknown models: {', '.join(unknown)}")
    for name in wanted:
        started = time.perf_counter()
        if name == "face":
            fields = _face(args.models_dir, args.data_root, args.remeasure)
        elif name == "speech":
            fields = _speech(args.models_dir, args.data_root, args.remeasure)
        elif name == "text":
            fields = _text(args.models_dir, args.data_root, args.remeasure, args.text_parity_rows)
        else:
            fields = _fusion(args.models_dir)
        fields["export_seconds"] = round(time.perf_counter() - started, 1)
        fields["machine"] = f"{os.cpu_count()}-core {platform.machine()} CPU"
        update_card(args.models_dir / name, fields, size_from_onnx=name != "fusion")
        print(json.dumps({name: fields}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
