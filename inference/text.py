"""Text emotion recogniser: a fine-tuned MiniLM-L6 encoder, mean pooling and a 7-way head.

Emoji are written out as their Unicode names before tokenisation (the vocabulary has none).

Texts longer than one 128-token window are not cut: they are split into overlapping windows
(stride 64 tokens), each window is classified, and the window probabilities are averaged
weighted by the number of text tokens in each window.

Serving needs no PyTorch and no transformers: the Rust ``tokenizers`` library reads
``tokenizer.json`` (the same ids as the training tokenizer) and ONNX Runtime runs
``model.onnx``, the graph ``model_training.export`` writes at the end of training (float16
weights computed in float32, the same probabilities as the PyTorch model within 1e-4).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from errors import ModelUnavailable, UnusableInput
from inference.base import CARD_FILE, Recognizer
from inference.batching import MicroBatcher
from inference.calibration import softmax
from inference.labels import NUM_EMOTIONS
from preprocessing.text import DEFAULT_MAX_CHARS, clean_text, spell_out_emoji

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
HEAD_FILE = "head.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
WINDOW_TOKENS = 128
WINDOW_STRIDE = 64
BATCH_WINDOWS = 64

#: ``(input_ids, attention_mask) -> logits``, both int64 ``(windows, tokens)``.
Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]


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
    required_files: ClassVar[tuple[str, ...]] = (CARD_FILE, MODEL_FILE, HEAD_FILE, TOKENIZER_FILE)

    def __init__(
        self,
        model_dir: str | Path,
        *,
        num_threads: int = 1,
        spell_emoji: bool = True,
        forward: Forward | None = None,
    ) -> None:
        """``forward`` replaces the served graph (training compares the framework's network with
        it through the same tokenisation and windows); serving leaves it None."""
        super().__init__(model_dir)
        self._num_threads = num_threads
        self._spell_emoji = spell_emoji
        self._forward_override = forward
        self._infer_lock = threading.Lock()
        self._forward: Forward | None = None
        self._class_log_bias = np.zeros(NUM_EMOTIONS)
        self._tokenizer: Any = None
        self._special: tuple[int, int, int] = (0, 0, 0)
        # Concurrent requests of one worker share one graph call (inference/batching.py).
        self._batcher: MicroBatcher[str, tuple[np.ndarray, int, int]] = MicroBatcher(self._classify_each)

    def model_files(self) -> tuple[str, ...]:
        """The graph is not needed when a ``forward`` replaces it (training's comparisons)."""
        return self.required_files if self._forward_override is None else (CARD_FILE, HEAD_FILE, TOKENIZER_FILE)

    # -- loading --------------------------------------------------------------------------
    def _load(self) -> None:
        self._tokenizer, self._special = load_tokenizer(self.model_dir)
        head = json.loads((self.model_dir / HEAD_FILE).read_text(encoding="utf-8"))
        self._class_log_bias = np.asarray(head.get("class_log_bias", [0.0] * NUM_EMOTIONS), dtype=np.float64)
        if self._forward_override is not None:
            self._forward = self._forward_override
            return
        from inference.onnx_session import open_session

        session = open_session(self.model_dir / MODEL_FILE, threads=self._num_threads)
        names = {i.name for i in session.get_inputs()}
        if names != {"input_ids", "attention_mask"} or session.get_outputs()[0].shape[-1] != NUM_EMOTIONS:
            raise ModelUnavailable("The text model file does not take input_ids/attention_mask to 7 logits.")
        self._forward = session_forward(session)
        self._forward(np.ones((1, 4), dtype=np.int64), np.ones((1, 4), dtype=np.int64))  # first run allocates

    # -- prediction -----------------------------------------------------------------------
    def _predict(self, raw: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[np.ndarray, dict[str, Any]]:
        text = clean_text(raw, max_chars=max_chars)
        probabilities, n_tokens, n_windows = self._batcher.submit(text)
        return probabilities, {"characters": len(text), "tokens": n_tokens, "windows": n_windows}

    def _classify_each(self, texts: list[str]) -> list[tuple[np.ndarray, int, int]]:
        """The batching hook: one :meth:`_classify` call for texts of concurrent requests."""
        probabilities, n_tokens, n_windows = self._classify(texts)
        return list(zip(probabilities, n_tokens, n_windows, strict=True))

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
        with self._infer_lock:  # one tokenizer per process; calls are cheap, so serialise them
            encoded = [e.ids for e in self._tokenizer.encode_batch(model_inputs, add_special_tokens=False)]
        unreadable = [index for index, ids in enumerate(encoded) if not ids]
        if unreadable:  # [CLS][SEP] alone would answer the model's prior, not an emotion
            where = "" if len(texts) == 1 else f" (text {unreadable[0] + 1} of {len(texts)})"
            raise UnusableInput(f"The text contains no words or emoji the model can read{where}.", code="empty_text")
        cls_id, sep_id, pad_id = self._special
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
        forward = self._forward
        assert forward is not None  # set by load()
        with self._infer_lock:
            for begin in range(0, len(order), BATCH_WINDOWS):
                chunk = order[begin : begin + BATCH_WINDOWS]
                width = max(len(windows[i]) for i in chunk)
                ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(chunk), width), dtype=np.int64)
                for row, i in enumerate(chunk):
                    ids[row, : len(windows[i])] = windows[i]
                    mask[row, : len(windows[i])] = 1
                window_probs[chunk] = softmax(forward(ids, mask))
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


def load_tokenizer(model_dir: Path) -> tuple[Any, tuple[int, int, int]]:
    """The Rust tokenizer from ``tokenizer.json`` with no truncation or padding (the windows are
    ours), and the ids of its [CLS], [SEP] and [PAD] tokens."""
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    config_path = model_dir / TOKENIZER_CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    ids = []
    for key, default in (("cls_token", "[CLS]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]")):
        token = config.get(key, default)
        token = token.get("content", default) if isinstance(token, dict) else token
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise ModelUnavailable(f"The text tokenizer has no {token} token.")
        ids.append(int(token_id))
    return tokenizer, (ids[0], ids[1], ids[2])


def session_forward(session: Any) -> Forward:
    """``(ids, mask) -> logits`` through an ONNX Runtime session of the text graph."""

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]

    return forward
