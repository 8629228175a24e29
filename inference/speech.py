"""Recognise emotion in a voice recording: an ensemble of voice networks and a pretrained encoder.

The recogniser decodes whatever the browser or user sent (``preprocessing.audio``) and asks
two kinds of model, each for 7 probabilities:

- **the networks**: CNN-BiLSTM-attention graphs over standardised MFCC frames (one per actor
  fold when the model was trained by ``model_training.speech_folds``; each member standardises
  with its own training statistics), averaged;
- **the encoder head** (when the card lists one): Whisper-base's encoder states of the clip
  (``inference.speech_encoder``), pooled over time, through a small trained head.

The answer is the mean of the two (one vote each), exactly as the card's figures were measured.
Everything runs on ONNX Runtime and CTranslate2 (no training framework in the serving process).
Besides the probabilities it returns the networks' mean attention weight of every model time
step with its time in seconds, so the UI can show which moments mattered.

A model folder written by ``model_training.train_speech`` (one network, no head) is served the
same way, as an ensemble of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
#: The trained head over the pooled encoder states (an ONNX graph: vector in, 7 probabilities out).
HEAD_FILE = "encoder_head.onnx"
#: Feature frames merged into one model time step by the network's max-pooling.
POOL_SIZE = 2
#: Threads the model may use per process (the web server runs several workers).
THREADS = 2


@dataclass(frozen=True)
class VoiceFeatures:
    """What the voice model reads of one clip: its MFCC frames and the pooled encoder states."""

    #: ``(frames, 120)`` MFCC + deltas, not yet standardised (each network member does that).
    frames: np.ndarray
    #: The pooled Whisper-base states (None when the model has no encoder head).
    encoded: np.ndarray | None = None


@dataclass(frozen=True)
class Member:
    """One voice network of the ensemble: its graph and the statistics it standardises with."""

    graph: str
    feature_stats: str


def served_files(card: dict[str, Any]) -> tuple[list[Member], str | None]:
    """The network members and the encoder head (or None) a model card lists.

    A card from ``model_training.speech_ensemble`` lists ``files.members`` and
    ``files.encoder_head``; one from ``model_training.train_speech`` names a single graph.
    """
    files = card.get("files") or {}
    listed = files.get("members")
    if listed:
        members = [Member(str(m["graph"]), str(m["feature_stats"])) for m in listed]
    else:
        members = [Member(str(files.get("serving") or MODEL_FILE), str(files.get("feature_stats") or STATS_FILE))]
    head = files.get("encoder_head")
    return members, (str(head) if head else None)


class SpeechRecognizer(Recognizer):
    """Voice emotion: uploaded audio bytes -> 7 probabilities plus attention over time."""

    modality: ClassVar[str] = "speech"
    required_files: ClassVar[tuple[str, ...]] = (CARD_FILE,)

    def __init__(self, model_dir: Any, *, threads: int = THREADS, encoder_part_dirs: list[Path] | None = None) -> None:
        super().__init__(model_dir)
        self._threads = threads
        self._encoder_part_dirs = encoder_part_dirs
        self._members: list[tuple[Any, str, FeatureStats]] = []
        self._head: tuple[Any, str] | None = None
        self._encoder: Any = None
        self._pooling = "mean"

    def model_files(self) -> tuple[str, ...]:
        """The card plus every graph and statistics file it lists."""
        if not (self.model_dir / CARD_FILE).is_file():
            return (CARD_FILE,)
        try:
            members, head = served_files(self.card)
        except (ModelUnavailable, KeyError, TypeError):
            return (CARD_FILE,)
        names = [CARD_FILE, *(name for m in members for name in (m.graph, m.feature_stats))]
        return tuple(names + ([head] if head else []))

    def _load(self) -> None:
        members, head = served_files(self.card)
        loaded = []
        for member in members:
            session = open_session(self.model_dir / member.graph, threads=self._threads)
            inputs, outputs = session.get_inputs(), session.get_outputs()
            if len(inputs) != 1 or len(outputs) != 2 or outputs[0].shape[-1] != NUM_EMOTIONS:
                raise ModelUnavailable(
                    "A speech model file does not map feature frames to 7 probabilities and attention."
                )
            loaded.append((session, inputs[0].name, FeatureStats.from_json(self.model_dir / member.feature_stats)))
        if head is not None:
            from inference.speech_encoder import WhisperEncoder

            encoder = dict(self.card.get("encoder") or {})
            self._pooling = str(encoder.get("pooling", "mean"))
            session = open_session(self.model_dir / head, threads=self._threads)
            if session.get_outputs()[0].shape[-1] != NUM_EMOTIONS:
                raise ModelUnavailable("The speech encoder head does not give 7 probabilities.")
            self._encoder = WhisperEncoder(
                compute_type=str(encoder.get("compute_type", "int8")),
                threads=self._threads,
                part_dirs=self._encoder_part_dirs,
            )
            self._head = (session, session.get_inputs()[0].name)
        self._members = loaded
        # One clip-sized pass through features and graphs (ONNX Runtime plans each new input
        # length; the MFCC filters are built once), so the first recording costs what later ones do.
        seconds = np.arange(4 * TARGET_RATE, dtype=np.float32) / TARGET_RATE
        tone = (0.1 * np.sin(2 * np.pi * 220.0 * seconds)).astype(np.float32)
        self._infer([self._featurise(tone, TARGET_RATE)])
        warm_up_decoding()

    @property
    def member_count(self) -> int:
        """How many voice networks the loaded model averages."""
        return len(self._members)

    def _featurise(self, signal: np.ndarray, rate: int) -> VoiceFeatures:
        encoded = self._encoder.embed(signal, self._pooling) if self._encoder is not None else None
        return VoiceFeatures(mfcc_features(signal, rate), encoded)

    def predict_parts(self, batch: Sequence[VoiceFeatures]) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray]:
        """Each network member's ``(n, 7)`` probabilities, the encoder head's (None without one) and
        the networks' mean ``(n, steps)`` attention: what :meth:`predict_proba` combines."""
        self.load()
        return self._parts(batch)

    def _parts(self, batch: Sequence[VoiceFeatures]) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray]:
        members, attention = [], []
        for session, name, stats in self._members:
            probs, weights = session.run(None, {name: pad_frames([standardise(x.frames, stats) for x in batch])})
            members.append(np.asarray(probs, dtype=np.float64))
            attention.append(np.asarray(weights, dtype=np.float64))
        head = None
        if self._head is not None:
            if any(x.encoded is None for x in batch):
                raise ValueError("this voice model needs each clip's encoder states")
            session, name = self._head
            encoded = np.stack([np.asarray(x.encoded, dtype=np.float32) for x in batch])
            head = np.asarray(session.run(None, {name: encoded})[0], dtype=np.float64)
        return members, head, np.mean(attention, axis=0)

    def _infer(self, batch: Sequence[VoiceFeatures]) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 7)`` probabilities (the networks' mean and the head, one vote each) and the attention."""
        members, head, attention = self._parts(batch)
        networks = np.mean(members, axis=0)
        return (networks if head is None else (networks + head) / 2.0), attention

    # -- preprocessing -------------------------------------------------------------------
    def features(self, decoded: DecodedAudio) -> VoiceFeatures:
        """What the model reads of a decoded clip (MFCC frames, and the encoder states if it has a head)."""
        self.load()
        return self._featurise(decoded.signal, decoded.rate)

    def preprocess(self, raw: bytes, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> tuple[VoiceFeatures, DecodedAudio]:
        """Decode and featurise one upload; raises the 4xx errors of :func:`decode_audio`."""
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise InvalidInput("A speech prediction needs the recording's bytes.", code="invalid_audio")
        decoded = decode_audio(bytes(raw), target_rate=TARGET_RATE, max_seconds=max_seconds)
        return self.features(decoded), decoded

    # -- prediction ----------------------------------------------------------------------
    def predict_proba(self, batch: Sequence[VoiceFeatures]) -> np.ndarray:
        """Featurised clips (:meth:`features`, any lengths) -> ``(n, 7)``."""
        self.load()
        clips = list(batch)
        if not clips:
            return np.zeros((0, NUM_EMOTIONS), dtype=np.float32)
        probabilities, _ = self._infer(clips)
        return probabilities.astype(np.float32)

    def _predict(self, raw: bytes, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> tuple[np.ndarray, dict[str, Any]]:
        features, decoded = self.preprocess(raw, max_seconds=max_seconds)
        probabilities, attention = self._infer([features])
        weights = attention[0]
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
        return probabilities[0], details
