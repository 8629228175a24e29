"""The one list of emotion labels, in the order every model, column and chart uses."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_EMOTIONS: int = len(EMOTIONS)

#: The modalities a recogniser can serve, in the order the UI and the fusion stacker use.
MODALITIES: tuple[str, ...] = ("face", "speech", "text")


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
