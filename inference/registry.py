"""Which recogniser serves which modality; routes and fusion ask here and never special-case."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from inference.base import Recognizer
from inference.errors import ModelUnavailable
from inference.labels import MODALITIES


class RecognizerRegistry:
    """A mapping modality -> recogniser, with availability reporting for /readyz and the UI."""

    def __init__(self, recognizers: Mapping[str, Recognizer]) -> None:
        unknown = set(recognizers) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities: {sorted(unknown)}")
        self._recognizers = dict(recognizers)

    @classmethod
    def from_models_dir(cls, models_dir: str | Path) -> RecognizerRegistry:
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
            }
        )

    def get(self, modality: str) -> Recognizer:
        """The recogniser for ``modality``; :class:`ModelUnavailable` when it is not bundled."""
        recognizer = self._recognizers.get(modality)
        if recognizer is None or not recognizer.is_available():
            raise ModelUnavailable(f"No {modality} model is installed; {modality} predictions are unavailable.")
        return recognizer

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
