"""Text emotion recogniser: a fine-tuned MiniLM-L6 encoder, mean pooling and a 7-way head.

Emoji are written out as their Unicode names before tokenisation (the vocabulary has none).

Texts longer than one 128-token window are not cut: they are split into overlapping windows
(stride 64 tokens), each window is classified, and the window probabilities are averaged
weighted by the number of text tokens in each window. PyTorch and transformers are imported
only when the model loads, so the web layer stays light until text is first analysed.

The network is served by ONNX Runtime when the card says so: at load the PyTorch model built
from the float16 weights is exported to an in-memory ONNX graph (about 1.5 s, once per process)
and ONNX Runtime runs it in float32, about twice as fast as eager PyTorch with the same outputs
(differences ~1e-6). Nothing extra is stored in the repository.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from inference.base import CARD_FILE, Recognizer
from inference.calibration import softmax
from inference.errors import ModelUnavailable, UnusableInput
from inference.labels import NUM_EMOTIONS
from preprocessing.text import DEFAULT_MAX_CHARS, clean_text, spell_out_emoji

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HEAD_FILE = "head.json"
WINDOW_TOKENS = 128
WINDOW_STRIDE = 64
BATCH_WINDOWS = 64
RUNTIMES = ("torch", "onnxruntime")


def build_classifier(encoder_config: Any, pooling: str = "mean", dropout: float = 0.1) -> Any:
    """The network both training and serving use: BERT encoder -> mean pooling -> linear head.

    Mean pooling matches how all-MiniLM-L6-v2 was pre-trained (a sentence embedding), so the
    head starts from a meaningful representation.
    """
    import torch
    from torch import nn
    from transformers import BertModel

    if pooling != "mean":
        raise ValueError(f"unsupported pooling {pooling!r}")

    class MeanPoolClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = BertModel(encoder_config, add_pooling_layer=False)
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(encoder_config.hidden_size, NUM_EMOTIONS)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return self.classifier(self.dropout(pooled))

    return MeanPoolClassifier()


def window_spans(n_tokens: int, window: int = WINDOW_TOKENS - 2, stride: int = WINDOW_STRIDE) -> list[tuple[int, int]]:
    """Start/end token offsets of overlapping windows covering ``n_tokens`` text tokens.

    ``window`` excludes the two special tokens ([CLS], [SEP]) added to every window.
    """
    if n_tokens <= window:
        return [(0, n_tokens)]
    spans = []
    start = 0
    while True:
        end = min(start + window, n_tokens)
        spans.append((start, end))
        if end >= n_tokens:
            return spans
        start += stride


class TextRecognizer(Recognizer):
    """Serves the fine-tuned text model bundled in ``models/text/``."""

    modality: ClassVar[str] = "text"
    required_files: ClassVar[tuple[str, ...]] = (CARD_FILE, WEIGHTS_FILE, CONFIG_FILE, HEAD_FILE, "tokenizer.json")

    def __init__(
        self,
        model_dir: str | Path,
        *,
        num_threads: int = 1,
        quantise: bool | None = None,
        runtime: str | None = None,
        spell_emoji: bool = True,
    ) -> None:
        super().__init__(model_dir)
        if runtime is not None and runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        self._num_threads = num_threads
        self._spell_emoji = spell_emoji
        self._quantise_override = quantise
        self._runtime_override = runtime
        self._infer_lock = threading.Lock()
        self._model: Any = None
        self._forward: Any = None
        self._class_log_bias = np.zeros(NUM_EMOTIONS)
        self._tokenizer: Any = None
        self.quantisation = "none"
        self.runtime = "torch"

    # -- loading --------------------------------------------------------------------------
    def _load(self) -> None:
        import torch

        if torch.get_num_threads() > self._num_threads:
            torch.set_num_threads(self._num_threads)
        self._model, self._tokenizer = load_text_model(self.model_dir)
        head = json.loads((self.model_dir / HEAD_FILE).read_text(encoding="utf-8"))
        self._class_log_bias = np.asarray(head.get("class_log_bias", [0.0] * NUM_EMOTIONS), dtype=np.float64)
        quantise = self._quantise_override
        if quantise is None:
            quantise = str(self.card.get("inference", {}).get("quantisation", "none")) == "dynamic-int8"
        runtime = self._runtime_override or str(self.card.get("inference", {}).get("runtime", "torch"))
        if quantise:
            self._model = quantise_dynamic_int8(self._model)
            self.quantisation = "dynamic-int8"
            runtime = "torch"  # the int8 path is PyTorch's dynamic quantisation
        if runtime == "onnxruntime":
            try:
                self._forward = onnxruntime_forward(self._model, self._num_threads)
                self._model = None  # the session holds its own float32 copy of the weights
            except Exception:
                if self._runtime_override:  # asked for by name (tests, training): say it failed
                    raise
                # Same weights, same answers, only slower: serving text beats refusing it.
                logger.warning("ONNX Runtime is unavailable for the text model; serving with PyTorch", exc_info=True)
                runtime = "torch"
        if runtime != "onnxruntime":
            self._forward = torch_forward(self._model)
        self.runtime = runtime

    # -- prediction -----------------------------------------------------------------------
    def _predict(self, raw: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[np.ndarray, dict[str, Any]]:
        text = clean_text(raw, max_chars=max_chars)
        probabilities, n_tokens, n_windows = self._classify([text])
        return probabilities[0], {"characters": len(text), "tokens": n_tokens[0], "windows": n_windows[0]}

    def predict_proba(self, batch: Sequence[str] | np.ndarray) -> np.ndarray:
        """Cleaned texts -> ``(n, 7)`` probabilities (each long text through its windows).

        Raises :class:`UnusableInput` (``empty_text``) when a text tokenises to nothing.
        """
        self.load()
        texts = [str(t) for t in batch]
        if not texts:
            return np.zeros((0, NUM_EMOTIONS), dtype=np.float32)
        return self._classify(texts)[0]

    def _classify(self, texts: list[str]) -> tuple[np.ndarray, list[int], list[int]]:
        """Tokenise once, classify every window, combine windows by token-weighted averaging."""
        model_inputs = [spell_out_emoji(text) for text in texts] if self._spell_emoji else texts
        with self._infer_lock:  # a fast tokenizer must not be called from two threads at once
            encoded = self._tokenizer(model_inputs, add_special_tokens=False, truncation=False)["input_ids"]
        unreadable = [index for index, ids in enumerate(encoded) if not ids]
        if unreadable:  # [CLS][SEP] alone would answer the model's prior, not an emotion
            where = "" if len(texts) == 1 else f" (text {unreadable[0] + 1} of {len(texts)})"
            raise UnusableInput(f"The text contains no words or emoji the model can read{where}.", code="empty_text")
        cls_id, sep_id, pad_id = (
            self._tokenizer.cls_token_id,
            self._tokenizer.sep_token_id,
            self._tokenizer.pad_token_id,
        )
        windows: list[list[int]] = []
        owners: list[int] = []
        weights: list[float] = []
        n_windows: list[int] = []
        for index, ids in enumerate(encoded):
            spans = window_spans(len(ids))
            n_windows.append(len(spans))
            for start, end in spans:
                windows.append([cls_id, *ids[start:end], sep_id])
                owners.append(index)
                weights.append(float(max(end - start, 1)))
        order = np.argsort([len(w) for w in windows], kind="stable")
        window_probs = np.zeros((len(windows), NUM_EMOTIONS), dtype=np.float64)
        with self._infer_lock:
            for begin in range(0, len(order), BATCH_WINDOWS):
                chunk = order[begin : begin + BATCH_WINDOWS]
                width = max(len(windows[i]) for i in chunk)
                ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(chunk), width), dtype=np.int64)
                for row, i in enumerate(chunk):
                    ids[row, : len(windows[i])] = windows[i]
                    mask[row, : len(windows[i])] = 1
                window_probs[chunk] = softmax(self._forward(ids, mask))
        combined = np.zeros((len(texts), NUM_EMOTIONS), dtype=np.float64)
        totals = np.zeros(len(texts), dtype=np.float64)
        for i, (owner, weight) in enumerate(zip(owners, weights, strict=True)):
            combined[owner] += weight * window_probs[i]
            totals[owner] += weight
        combined /= totals[:, None]
        combined = apply_class_log_bias(combined, self._class_log_bias)
        return combined.astype(np.float32), [len(ids) for ids in encoded], n_windows


def apply_class_log_bias(probabilities: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Shift each class's log-probability by a constant fitted on validation (prior correction).

    The training mix (many neutral Reddit comments, few disgust) sets priors that do not suit
    every use; ``bias`` is fitted on the validation sets only and stored in ``head.json``.
    """
    bias = np.asarray(bias, dtype=np.float64)
    if not np.any(bias):
        return probabilities
    return softmax(np.log(np.clip(probabilities, 1e-12, None)) + bias)


def load_text_model(model_dir: Path) -> tuple[Any, Any]:
    """Read config, head description, fp16 weights (as float32) and tokenizer from ``model_dir``."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertConfig

    model_dir = Path(model_dir)
    head = json.loads((model_dir / HEAD_FILE).read_text(encoding="utf-8"))
    config = BertConfig.from_pretrained(str(model_dir), local_files_only=True)
    model = build_classifier(config, pooling=head.get("pooling", "mean"))
    state = {k: v.to(torch.float32) for k, v in load_file(str(model_dir / WEIGHTS_FILE)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelUnavailable(f"The text model weights do not match its config (missing {missing[:3]}).")
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    tokenizer.model_max_length = 10**9  # we window long texts ourselves; silence the length warning
    return model, tokenizer


def quantise_dynamic_int8(model: Any) -> Any:
    """Dynamic int8 quantisation of every Linear layer (weights int8, activations on the fly)."""
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def torch_forward(model: Any) -> Any:
    """``(ids, mask) -> logits`` with eager PyTorch (the path dynamic int8 needs)."""
    import torch

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        return logits.float().numpy()

    return forward


def onnxruntime_forward(model: Any, num_threads: int) -> Any:
    """``(ids, mask) -> logits`` with ONNX Runtime over an in-memory export of ``model``.

    The graph has dynamic batch and sequence axes, so windows of any length up to 128 tokens run
    through the one session.
    """
    import io
    import warnings

    import onnxruntime
    import torch

    # A padded batch of two, so the traced graph keeps the attention-mask path it must honour.
    example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    example[1][1, 5:] = 0
    graph = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # notes about Python-side shape checks
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")  # a note, not a problem
        torch.onnx.export(
            model,
            example,
            graph,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(graph.getvalue(), options, providers=["CPUExecutionProvider"])

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]

    return forward
