"""The Python API: one object that runs the recognisers and fuses their answers.

The web routes call the same methods, so the API and the web application cannot disagree.

    predictor = MultimodalEmotionPredictor(RecognizerRegistry.from_models_dir("models"))
    predictor.predict_from_text("I can't believe we won!")
    predictor.predict_multimodal(image_path="photo.jpg", audio_path="clip.wav", text="...",
                                 strategy="calibrated", weights={"face": 0.5})

Every call returns an :class:`~inference.results.AnalysisResult` (emotion, confidence,
probabilities, each modality's ``Prediction``, ``dropped``, ``fusion``). In a multimodal call a
modality whose recogniser refuses (no face, silence, missing model, ...) is dropped and recorded
under ``dropped`` with its error code and message, as long as another modality succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from errors import EmotionAppError, InvalidInput, UnusableInput
from inference.base import Prediction
from inference.fusion import DEFAULT_STRATEGY, FusionEngine
from inference.labels import MODALITIES, MODALITY_INPUTS
from inference.registry import RecognizerRegistry
from inference.results import AnalysisResult

logger = logging.getLogger(__name__)


def _read_media(value: bytes | bytearray | memoryview | str | Path, modality: str) -> bytes:
    """Bytes as given, or the contents of the file a path names."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, Path)):
        path = Path(value)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise InvalidInput(f"The {modality} file {path.name!r} does not exist.", code="file_not_found") from None
        except OSError as exc:
            raise InvalidInput(f"The {modality} file {path.name!r} cannot be read: {exc.strerror}.") from None
    raise InvalidInput(f"The {modality} input must be bytes or a file path, not {type(value).__name__}.")


class MultimodalEmotionPredictor:
    """Runs face, speech and text recognisers from a registry and fuses their outputs."""

    def __init__(self, registry: RecognizerRegistry, fusion: FusionEngine | None = None) -> None:
        self.registry = registry
        self.fusion = fusion if fusion is not None else FusionEngine()

    # -- one modality -------------------------------------------------------------------
    def _run(self, modality: str, raw: Any, options: Mapping[str, Any] | None) -> Prediction:
        recognizer = self.registry.get(modality)  # ModelUnavailable when not bundled
        return recognizer.predict(raw, **dict(options or {}))

    def predict_from_image(self, image: bytes | str | Path, **options: Any) -> AnalysisResult:
        """Face emotion from image bytes or a path; raises the recogniser's error."""
        return AnalysisResult.single(self._run("face", _read_media(image, MODALITY_INPUTS["face"]), options))

    def predict_from_audio(self, audio: bytes | str | Path, **options: Any) -> AnalysisResult:
        """Speech emotion from audio bytes or a path; raises the recogniser's error."""
        return AnalysisResult.single(self._run("speech", _read_media(audio, MODALITY_INPUTS["speech"]), options))

    def predict_from_text(self, text: str, **options: Any) -> AnalysisResult:
        """Text emotion; raises the recogniser's error (e.g. empty text)."""
        if not isinstance(text, str):
            raise InvalidInput(f"The text must be a string, not {type(text).__name__}.")
        return AnalysisResult.single(self._run("text", text, options))

    # -- several modalities -------------------------------------------------------------
    def predict_multimodal(
        self,
        image_path: str | Path | None = None,
        audio_path: str | Path | None = None,
        text: str | None = None,
        *,
        image: bytes | None = None,
        audio: bytes | None = None,
        strategy: str = DEFAULT_STRATEGY,
        weights: Mapping[str, float] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        spoken_text: bool = False,
    ) -> AnalysisResult:
        """Run every given modality, drop the ones that fail, fuse the rest with ``strategy``.

        ``spoken_text``: ``text`` is the transcript of ``audio`` (see :meth:`FusionEngine.fuse`).

        Options are validated before any model runs. One given modality that fails raises its
        own error; several that all fail raise ``UnusableInput(code="no_usable_modality")``.
        """
        if image is not None and image_path is not None:
            raise InvalidInput("Give the image either as bytes or as a path, not both.")
        if audio is not None and audio_path is not None:
            raise InvalidInput("Give the audio either as bytes or as a path, not both.")
        inputs: dict[str, Any] = {}
        if image is not None or image_path is not None:
            inputs["face"] = image if image is not None else image_path
        if audio is not None or audio_path is not None:
            inputs["speech"] = audio if audio is not None else audio_path
        if text is not None:
            inputs["text"] = text
        if not inputs:
            raise InvalidInput("Give at least one of an image, an audio clip or a text.", code="no_input")
        options = dict(options or {})
        unknown = set(options) - set(MODALITIES)
        if unknown:
            raise InvalidInput(f"Unknown modality in options: {', '.join(sorted(unknown))}.")

        strategy, _ = self.fusion.validate(strategy, weights, inputs)
        self.registry.require_loaded(inputs)  # 503 model_loading rather than a fused answer missing one

        predictions: dict[str, Prediction] = {}
        dropped: dict[str, dict[str, str]] = {}
        for modality, raw in inputs.items():
            try:
                if modality == "text":
                    if not isinstance(raw, str):
                        raise InvalidInput(f"The text must be a string, not {type(raw).__name__}.")
                    payload = raw
                else:
                    payload = _read_media(raw, MODALITY_INPUTS[modality])
                predictions[modality] = self._run(modality, payload, options.get(modality))
            except EmotionAppError as exc:
                if len(inputs) == 1:
                    raise
                dropped[modality] = {"code": exc.code, "message": exc.message}
            except Exception:
                if len(inputs) == 1:
                    raise
                # An unexpected failure in one recogniser must not sink the others' answers.
                logger.exception("The %s recogniser failed unexpectedly", modality)
                dropped[modality] = {
                    "code": "recognizer_failed",
                    "message": f"The {modality} recogniser failed unexpectedly; it was left out.",
                }

        if not predictions:
            reasons = "; ".join(f"{m}: {d['message']}" for m, d in dropped.items())
            error = UnusableInput(f"No modality could be analysed ({reasons})", code="no_usable_modality")
            error.dropped = dropped  # type: ignore[attr-defined]  # for callers that store the reasons
            raise error

        fused = self.fusion.fuse(
            {m: p.probabilities for m, p in predictions.items()}, strategy, weights, spoken_text=spoken_text
        )
        return AnalysisResult.fused(fused, predictions, dropped)
