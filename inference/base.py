"""The one recogniser interface every modality implements.

A recogniser is built cheaply (no imports of TensorFlow/PyTorch), loads its model lazily
and once per process on first use (after gunicorn forks), and answers ``predict(raw)`` with
a :class:`Prediction`. ``predict_proba(batch)`` follows scikit-learn's shape for evaluation
scripts and the fusion stacker: preprocessed inputs in, an ``(n, 7)`` array out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from errors import ModelUnavailable
from inference.labels import EMOTIONS, NUM_EMOTIONS, EmotionProbabilities

logger = logging.getLogger(__name__)

CARD_FILE = "card.json"


@dataclass(frozen=True)
class Prediction(EmotionProbabilities):
    """One modality's answer: 7 probabilities in :data:`EMOTIONS` order plus context."""

    modality: str
    probabilities: tuple[float, ...]
    model_name: str
    model_version: str
    latency_ms: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        probs = np.asarray(self.probabilities, dtype=float)
        if probs.shape != (NUM_EMOTIONS,) or not np.all(np.isfinite(probs)) or np.any(probs < 0):
            raise ValueError(f"{self.modality}: expected {NUM_EMOTIONS} finite probabilities")
        if not np.isclose(probs.sum(), 1.0, atol=1e-3):
            raise ValueError(f"{self.modality}: probabilities sum to {probs.sum():.4f}, not 1")

    @property
    def label(self) -> str:
        return EMOTIONS[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(max(self.probabilities))

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "emotion": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities_dict(),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "latency_ms": round(self.latency_ms, 2),
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class InputLimits:
    """The largest input the recognisers accept (None: the recogniser's own default).

    Set on every recogniser when the registry is built from the configuration, so the models
    refuse what the upload checks refuse, also for formats only a model's decoder can read.
    """

    max_pixels: int | None = None  # face: pixels of the decoded image
    max_seconds: float | None = None  # speech: seconds of the decoded recording
    max_chars: int | None = None  # text: characters

    #: Which limit each modality's recogniser takes (the keyword of its ``_predict``).
    BY_MODALITY: ClassVar[Mapping[str, str]] = {"face": "max_pixels", "speech": "max_seconds", "text": "max_chars"}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InputLimits:
        """The limits the app is configured with (MAX_IMAGE_PIXELS, MAX_AUDIO_SECONDS, MAX_TEXT_CHARS)."""

        def read(key: str, cast: type) -> Any:
            value = config.get(key)
            return None if value is None else cast(value)

        return cls(
            max_pixels=read("MAX_IMAGE_PIXELS", int),
            max_seconds=read("MAX_AUDIO_SECONDS", float),
            max_chars=read("MAX_TEXT_CHARS", int),
        )

    def for_modality(self, modality: str) -> dict[str, int | float]:
        """The keyword options ``modality``'s recogniser gets (empty when its limit is unset)."""
        name = self.BY_MODALITY.get(modality)
        value = getattr(self, name) if name else None
        return {} if value is None else {name: value}  # type: ignore[dict-item]


def normalise_probabilities(probs: np.ndarray) -> tuple[float, ...]:
    """Renormalise a float32 softmax row so it sums to 1 in float64."""
    row = np.asarray(probs, dtype=np.float64).reshape(NUM_EMOTIONS)
    row = np.clip(row, 0.0, None)
    return tuple(float(p) for p in row / row.sum())


class Recognizer(ABC):
    """Base class: lazy, thread-safe, load-once model wrapper for one modality."""

    modality: ClassVar[str]
    #: Files (relative to ``model_dir``) that must exist for the model to be available.
    required_files: ClassVar[tuple[str, ...]] = (CARD_FILE,)

    def __init__(self, model_dir: str | Path, *, limits: InputLimits | None = None) -> None:
        self.model_dir = Path(model_dir)
        #: The input limits (the registry sets the configured ones); a call's own options win.
        self.limits = limits or InputLimits()
        self._lock = threading.Lock()
        self._loaded = False
        self._card: dict[str, Any] | None = None

    # -- availability and loading -------------------------------------------------------
    def model_files(self) -> tuple[str, ...]:
        """The files (relative to ``model_dir``) the model needs: :attr:`required_files` unless
        the card lists them (a recogniser whose card names its own files overrides this)."""
        return self.required_files

    def is_available(self) -> bool:
        """True when every required model file is present (cheap; loads nothing)."""
        return not self.missing_files()

    def missing_files(self) -> list[str]:
        """The required files that are not there, as the 503 message names them."""
        return [name for name in self.model_files() if not (self.model_dir / name).is_file()]

    @property
    def is_loaded(self) -> bool:
        return self._loaded

    @property
    def card(self) -> dict[str, Any]:
        """The model card (``card.json``) written by the training script."""
        if self._card is None:
            path = self.model_dir / CARD_FILE
            try:
                self._card = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ModelUnavailable(f"The {self.modality} model card is missing or unreadable.") from exc
        return self._card

    @property
    def model_name(self) -> str:
        return str(self.card.get("model_name", f"{self.modality}-model"))

    @property
    def model_version(self) -> str:
        return str(self.card.get("version", "unknown"))

    def load(self) -> None:
        """Load the model once; later calls are free. Raises :class:`ModelUnavailable`."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            if not self.is_available():
                missing = self.missing_files()
                raise ModelUnavailable(
                    f"The {self.modality} model is not installed (missing {', '.join(missing)} "
                    f"in {self.model_dir.name}/); {self.modality} predictions are unavailable."
                )
            try:
                self._load()
            except ModelUnavailable:
                raise
            except Exception as exc:  # a broken file must not look like a client error
                # The exception may name server paths: it goes to the log, not to the client.
                logger.exception("The %s model in %s failed to load", self.modality, self.model_dir)
                raise ModelUnavailable(f"The {self.modality} model failed to load; see the server log.") from exc
            self._loaded = True

    @abstractmethod
    def _load(self) -> None:
        """Import the framework and read the weights (called once, under the lock)."""

    # -- prediction ---------------------------------------------------------------------
    @abstractmethod
    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed inputs -> ``(n, 7)`` probabilities (scikit-learn's shape)."""

    @abstractmethod
    def _predict(self, raw: Any, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Raw input -> (7 probabilities, modality details). Raise ``EmotionAppError`` subclasses."""

    def predict(self, raw: Any, **options: Any) -> Prediction:
        """Preprocess, infer and describe one raw input (bytes for media, str for text).

        The recogniser's :attr:`limits` apply unless ``options`` name a limit themselves.
        """
        self.load()
        started = time.perf_counter()
        probabilities, details = self._predict(raw, **{**self.limits.for_modality(self.modality), **options})
        latency_ms = (time.perf_counter() - started) * 1000.0
        return Prediction(
            modality=self.modality,
            probabilities=normalise_probabilities(probabilities),
            model_name=self.model_name,
            model_version=self.model_version,
            latency_ms=latency_ms,
            details=details,
        )
