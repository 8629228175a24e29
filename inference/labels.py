"""The one list of emotion labels, in the order every model, column and chart uses, and the one
vocabulary of modalities (what a model reads), inputs (what a client sends) and kinds (what was asked)."""

from __future__ import annotations

from collections.abc import Mapping

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_EMOTIONS: int = len(EMOTIONS)

#: The modalities a recogniser can serve, in the order the UI and the fusion stacker use.
MODALITIES: tuple[str, ...] = ("face", "speech", "text")

#: The input each modality reads: the upload field, the predictor's argument, the kept file's prefix.
MODALITY_INPUTS: Mapping[str, str] = {"face": "image", "speech": "audio", "text": "text"}

#: The prediction kinds (``/api/predict/<kind>``, the stored ``kind``) and the modalities whose
#: inputs each one takes (a transcript's words, derived from the recording, are not an input).
KIND_MODALITIES: Mapping[str, tuple[str, ...]] = {
    "text": ("text",),
    "image": ("face",),
    "speech": ("speech",),
    "multimodal": MODALITIES,
    "video": ("face", "speech"),
}


def emotion_index(label: str) -> int:
    """Position of ``label`` in :data:`EMOTIONS`; raises ``ValueError`` for unknown labels."""
    try:
        return EMOTIONS.index(label)
    except ValueError:
        raise ValueError(f"unknown emotion {label!r}; expected one of {', '.join(EMOTIONS)}") from None


class EmotionProbabilities:
    """Mixin for the typed results (a modality's ``Prediction``, a ``FusionResult``) that hold
    ``probabilities`` in :data:`EMOTIONS` order: one place turns them into a label -> value map."""

    probabilities: tuple[float, ...]

    def probabilities_dict(self) -> dict[str, float]:
        return {emotion: float(p) for emotion, p in zip(EMOTIONS, self.probabilities, strict=True)}
