"""Recognise emotion in a voice recording with the bundled CNN-BiLSTM-attention model.

The recogniser decodes whatever the browser or user sent (``preprocessing.audio``), computes
the same standardised MFCC frames as training, and runs one compiled TensorFlow graph that
accepts any clip length. Besides the 7 probabilities it returns the attention weight of
every model time step with its time in seconds, so the UI can show which moments mattered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from inference.base import CARD_FILE, Recognizer
from inference.errors import InvalidInput
from inference.labels import NUM_EMOTIONS
from preprocessing.audio import (
    DEFAULT_MAX_SECONDS,
    N_FEATURES,
    TARGET_RATE,
    DecodedAudio,
    FeatureStats,
    decode_audio,
    frame_seconds,
    mfcc_features,
    pad_frames,
    standardise,
)

MODEL_FILE = "speech_model.keras"
STATS_FILE = "feature_stats.json"
#: Feature frames merged into one model time step by the network's max-pooling.
POOL_SIZE = 2
#: Threads the model may use per process (the web server runs several workers).
THREADS = 2


class SpeechRecognizer(Recognizer):
    """Voice emotion: uploaded audio bytes -> 7 probabilities plus attention over time."""

    modality: ClassVar[str] = "speech"
    required_files: ClassVar[tuple[str, ...]] = (CARD_FILE, MODEL_FILE, STATS_FILE)

    def _load(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        try:  # only possible before TensorFlow's runtime starts (another model may have started it)
            tf.config.threading.set_intra_op_parallelism_threads(THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        import keras

        from inference.speech_layers import CUSTOM_OBJECTS

        model = keras.models.load_model(self.model_dir / MODEL_FILE, custom_objects=CUSTOM_OBJECTS, compile=False)
        self._stats = FeatureStats.from_json(self.model_dir / STATS_FILE)

        # One graph for every clip length: the time axis is left open in the signature.
        @tf.function(input_signature=[tf.TensorSpec([None, None, N_FEATURES], tf.float32)], reduce_retracing=True)
        def infer(batch: Any) -> tuple[Any, Any]:
            probabilities, attention = model(batch, training=False)
            return probabilities, attention

        infer(tf.random.stateless_normal((1, 64, N_FEATURES), seed=(1, 2)))  # trace once, at load time
        # librosa compiles and caches its filters on first use: pay that here, not in a request.
        mfcc_features(np.random.default_rng(0).normal(0, 0.1, TARGET_RATE).astype(np.float32), TARGET_RATE)
        self._model = model
        self._infer = infer

    # -- preprocessing -------------------------------------------------------------------
    def features(self, decoded: DecodedAudio) -> np.ndarray:
        """Standardised ``(frames, 120)`` MFCC frames of a decoded clip (loads the statistics)."""
        self.load()
        return standardise(mfcc_features(decoded.signal, decoded.rate), self._stats)

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
        # Librosa centres frame j at j * hop; a model step pools frames 2i and 2i+1.
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
