"""The one typed answer of an analysis, from the predictor to the store.

The predictor (and the video service, for a clip) returns an :class:`AnalysisResult`; the store
maps it onto its rows as it is, and the API serialises the stored prediction once, at the edge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.base import Prediction
from inference.fusion import FusionResult
from inference.labels import MODALITIES, EmotionProbabilities


@dataclass(frozen=True)
class AnalysisResult(EmotionProbabilities):
    """The overall emotion, each used modality's :class:`Prediction`, why the others were left
    out (``{modality: {"code", "message"}}``), the fusion (None for one modality) and the
    transcript the words came from (None unless the recording was transcribed)."""

    emotion: str
    confidence: float
    probabilities: tuple[float, ...]
    predictions: Mapping[str, Prediction]
    dropped: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fusion: FusionResult | None = None
    transcript: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # The modalities in their canonical order, whatever order they were analysed in.
        ordered = {m: self.predictions[m] for m in MODALITIES if m in self.predictions}
        object.__setattr__(self, "predictions", ordered)

    @classmethod
    def single(cls, prediction: Prediction) -> AnalysisResult:
        """One modality's answer as the whole answer."""
        return cls(
            emotion=prediction.label,
            confidence=prediction.confidence,
            probabilities=tuple(prediction.probabilities),
            predictions={prediction.modality: prediction},
        )

    @classmethod
    def fused(
        cls,
        fusion: FusionResult,
        predictions: Mapping[str, Prediction],
        dropped: Mapping[str, Mapping[str, str]] | None = None,
    ) -> AnalysisResult:
        """The fusion of ``predictions`` as the answer."""
        return cls(
            emotion=fusion.label,
            confidence=fusion.confidence,
            probabilities=tuple(fusion.probabilities),
            predictions=predictions,
            dropped=dict(dropped or {}),
            fusion=fusion,
        )

    @property
    def modalities_used(self) -> list[str]:
        return list(self.predictions)

    def with_transcript(self, transcript: Mapping[str, Any] | None) -> AnalysisResult:
        return dataclasses.replace(self, transcript=transcript)

    def with_dropped(self, modality: str, reason: Mapping[str, str]) -> AnalysisResult:
        """The same answer, also saying why ``modality`` was left out."""
        return dataclasses.replace(self, dropped={**self.dropped, modality: dict(reason)})
