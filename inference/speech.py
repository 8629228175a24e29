"""Recognise emotion in a voice recording with the bundled CNN-BiLSTM-attention model.

The recogniser decodes whatever the browser or user sent (``preprocessing.audio``), computes
the same standardised MFCC frames as training (in numpy), and runs the ONNX graph exported at
the end of training, which accepts any clip length (no TensorFlow in the serving process).
Besides the 7 probabilities it returns the attention weight of every model time step with its
time in seconds, so the UI can show which moments mattered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from errors import InvalidInput, ModelUnavailable
from inference.base import CARD_FILE, Recognizer
from inference.labels import NUM_EMOTIONS
from inference.onnx_session import open_session
from preprocessing.audio import (
    DEFAULT_MAX_SECONDS,
    TARGET_RATE,
    DecodedAudio,
    FeatureStats,
    decode_audio,
    frame_seconds,
    mfcc_features,
    pad_frames,
    standardise,
    warm_up_decoding,
)

MODEL_FILE = "speech_model.onnx"
STATS_FILE = "feature_stats.json"
#: Feature frames merged into one model time step by the network's max-pooling.
POOL_SIZE = 2
#: Threads the model may use per process (the web server runs several workers).
THREADS = 2


class SpeechRecognizer(Recognizer):
    """Voice emotion: uploaded audio bytes -> 7 probabilities plus attention over time."""

    modality: ClassVar[str] = "speech"
    required_files: ClassVar[tuple[str, ...]] = (CARD_FILE, MODEL_FILE, STATS_FILE)

    def __init__(self, model_dir: Any, *, threads: int = THREADS) -> None:
        super().__init__(model_dir)
        self._threads = threads
        self._session: Any = None
        self._input_name = ""
        self._stats: FeatureStats | None = None

    def _load(self) -> None:
        self._stats = FeatureStats.from_json(self.model_dir / STATS_FILE)
        session = open_session(self.model_dir / MODEL_FILE, threads=self._threads)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 2 or outputs[0].shape[-1] != NUM_EMOTIONS:
            raise ModelUnavailable(
                "The speech model file does not map feature frames to 7 probabilities and attention."
            )
        self._input_name = inputs[0].name
        self._session = session
        # One clip-sized pass through features and graph (ONNX Runtime plans each new input
        # length; the MFCC filters are built once), so the first recording costs what later ones do.
        seconds = np.arange(4 * TARGET_RATE, dtype=np.float32) / TARGET_RATE
        tone = (0.1 * np.sin(2 * np.pi * 220.0 * seconds)).astype(np.float32)
        frames = standardise(mfcc_features(tone, TARGET_RATE), self._stats)
        session.run(None, {self._input_name: pad_frames([frames])})
        warm_up_decoding()

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, attention = self._session.run(None, {self._input_name: batch})
        return probabilities, attention

    @property
    def stats(self) -> FeatureStats:
        """The training frames' mean and standard deviation (read once; no model needed)."""
        if self._stats is None:
            self._stats = FeatureStats.from_json(self.model_dir / STATS_FILE)
        return self._stats

    # -- preprocessing -------------------------------------------------------------------
    def features(self, decoded: DecodedAudio) -> np.ndarray:
        """Standardised ``(frames, 120)`` MFCC frames of a decoded clip."""
        return standardise(mfcc_features(decoded.signal, decoded.rate), self.stats)

    def preprocess(self, raw: bytes, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> tuple[np.ndarray, DecodedAudio]:
        """Decode and featurise one upload; raises the 4xx errors of :func:`decode_audio`."""
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise InvalidInput("A speech prediction needs the recording's bytes.", code="invalid_audio")
        decoded = decode_audio(bytes(raw), target_rate=TARGET_RATE, max_seconds=max_seconds)
        return self.features(decoded), decoded

    # -- prediction ----------------------------------------------------------------------
    def predict_proba(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Standardised feature sequences (each ``(frames, 120)``, any lengths) -> ``(n, 7)``."""
        self.load()
        sequences = [np.asarray(seq, dtype=np.float32) for seq in batch]
        if not sequences:
            return np.zeros((0, NUM_EMOTIONS), dtype=np.float32)
        probabilities, _ = self._infer(pad_frames(sequences))
        return np.asarray(probabilities, dtype=np.float32)

    def _predict(self, raw: bytes, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> tuple[np.ndarray, dict[str, Any]]:
        features, decoded = self.preprocess(raw, max_seconds=max_seconds)
        probabilities, attention = self._infer(pad_frames([features]))
        weights = np.asarray(attention, dtype=np.float64)[0]
        # The STFT centres frame j at j * hop; a model step pools frames 2i and 2i+1.
        step = frame_seconds(decoded.rate) * POOL_SIZE
        clip_seconds = decoded.trimmed_seconds
        timeline = [
            {"time": round(min((i + 0.25) * step, clip_seconds), 3), "weight": round(float(w), 5)}
            for i, w in enumerate(weights)
        ]
        details = {
            "duration_seconds": round(decoded.duration_seconds, 3),
            "sample_rate": decoded.original_rate,
            "channels": decoded.channels,
            "container": decoded.container,
            "trimmed": {"start": round(decoded.trim_start, 3), "end": round(decoded.trim_end, 3)},
            "attention": timeline,
        }
        return np.asarray(probabilities)[0], details
