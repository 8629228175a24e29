"""Which recogniser serves which modality; routes and fusion ask here and never special-case."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from errors import ModelLoading, ModelUnavailable
from inference.base import InputLimits, Recognizer
from inference.labels import MODALITIES

log = logging.getLogger("moodlens.models")

#: What a client is told to wait while the models load (they load in a few seconds).
RETRY_AFTER_SECONDS = 2


class RecognizerRegistry:
    """A mapping modality -> recogniser, with availability reporting for /readyz and the UI."""

    def __init__(self, recognizers: Mapping[str, Recognizer], *, limits: InputLimits | None = None) -> None:
        unknown = set(recognizers) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities: {sorted(unknown)}")
        self._recognizers = dict(recognizers)
        if limits is not None:
            self.set_limits(limits)
        self._loader: threading.Thread | None = None
        self._loader_lock = threading.Lock()
        self._load_seconds: float | None = None
        self._load_errors: dict[str, str | None] = {}

    @classmethod
    def from_models_dir(cls, models_dir: str | Path, *, limits: InputLimits | None = None) -> RecognizerRegistry:
        """The bundled recognisers, one sub-folder of ``models_dir`` each (nothing loads yet)."""
        from inference.face import FaceRecognizer
        from inference.speech import SpeechRecognizer
        from inference.text import TextRecognizer

        root = Path(models_dir)
        return cls(
            {
                "face": FaceRecognizer(root / "face"),
                "speech": SpeechRecognizer(root / "speech"),
                "text": TextRecognizer(root / "text"),
            },
            limits=limits,
        )

    def set_limits(self, limits: InputLimits) -> None:
        """Give every recogniser the configured input limits (the app does this for its registry)."""
        for recognizer in self._recognizers.values():
            recognizer.limits = limits

    def get(self, modality: str) -> Recognizer:
        """The recogniser for ``modality``; :class:`ModelUnavailable` when it is not bundled,
        :class:`ModelLoading` (503 with Retry-After) while the background load has not reached it."""
        recognizer = self._recognizers.get(modality)
        if recognizer is None or not recognizer.is_available():
            raise ModelUnavailable(f"No {modality} model is installed; {modality} predictions are unavailable.")
        if not recognizer.is_loaded and self.loading:
            raise ModelLoading(
                f"The {modality} model is still loading (the server has just started); try again in a few seconds.",
                retry_after=RETRY_AFTER_SECONDS,
            )
        return recognizer

    def require_loaded(self, modalities: Iterable[str]) -> None:
        """Raise :class:`ModelLoading` when any of ``modalities`` is still loading (a fused
        answer must not silently leave out a model that is about to be ready)."""
        for modality in modalities:
            recognizer = self._recognizers.get(modality)
            if recognizer is not None and recognizer.is_available():
                self.get(modality)

    # -- loading before the first request ----------------------------------------------
    def start_loading(self, *extra: Callable[[], Any]) -> threading.Thread:
        """Load every available model (then run ``extra``, e.g. the fusion artefacts) in a
        background thread, so the server answers probes, pages and 503s while it loads."""
        with self._loader_lock:
            if self._loader is None:
                self._loader = threading.Thread(
                    target=self._load_in_background, args=extra, name="model-loader", daemon=True
                )
                self._loader.start()
            return self._loader

    def _load_in_background(self, *extra: Callable[[], Any]) -> None:
        started = time.perf_counter()
        errors = self.load_all()
        for step in extra:
            try:
                step()
            except Exception:  # a broken extra artefact is reported where it is used
                log.exception("event=model_preload_failed step=%s", getattr(step, "__name__", step))
        self._load_errors = errors
        self._load_seconds = time.perf_counter() - started
        failed = sorted(m for m, e in errors.items() if e)
        log.info(
            "event=models_loaded seconds=%.2f loaded=%s failed=%s",
            self._load_seconds,
            ",".join(m for m, e in errors.items() if not e) or "-",
            ",".join(failed) or "-",
        )

    @property
    def loading(self) -> bool:
        """True while the background load runs."""
        loader = self._loader
        return loader is not None and loader.is_alive()

    def wait_until_loaded(self, timeout: float | None = None) -> bool:
        """Block until the background load is over (tests, command-line tools); True when done."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return not self.loading

    @property
    def load_seconds(self) -> float | None:
        """How long the background load took (None before it finished)."""
        return self._load_seconds

    def ready(self) -> bool:
        """Every bundled model is loaded."""
        return all(self._recognizers[m].is_loaded for m in self.available())

    def __iter__(self) -> Iterator[str]:
        return iter(self._recognizers)

    def available(self) -> list[str]:
        return [m for m in MODALITIES if m in self._recognizers and self._recognizers[m].is_available()]

    def load_all(self) -> dict[str, str | None]:
        """Load every available model now (used by /readyz and worker start); returns errors."""
        errors: dict[str, str | None] = {}
        for modality in self.available():
            try:
                self._recognizers[modality].load()
                errors[modality] = None
            except ModelUnavailable as exc:
                errors[modality] = exc.message
        return errors

    def status(self) -> dict[str, dict[str, Any]]:
        """Per-modality availability, load state and model identity (never loads a model)."""
        report: dict[str, dict[str, Any]] = {}
        for modality in MODALITIES:
            recognizer = self._recognizers.get(modality)
            available = recognizer is not None and recognizer.is_available()
            entry: dict[str, Any] = {"available": available, "loaded": bool(recognizer and recognizer.is_loaded)}
            if available and recognizer is not None:
                try:
                    entry["model_name"] = recognizer.model_name
                    entry["model_version"] = recognizer.model_version
                except ModelUnavailable as exc:
                    entry["available"] = False
                    entry["error"] = exc.message
            report[modality] = entry
        return report
