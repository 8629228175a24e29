"""What was said in a video clip, on its timeline: one signal more beside the face and the voice.

The clip's audio track is transcribed once (Whisper-base, the transcriber single recordings
use). Each segment's text is classified by the text recogniser and placed on every timeline
step it overlaps: the step gets a ``words`` entry (the text and the text probabilities, the
mean over its segments when several overlap) and its fused result is fused again with the
words under the spoken-words rule (``FusionEngine.fuse(..., spoken_text=True)``): words the
text model reads as neutral carry no emotion of their own, so they are gated out and the face
and voice decide. The whole transcript is classified once more for the clip's overall result.

Without an audio track, without words, in another language than English, or with no
transcriber on the server, the clip is still answered from face and voice, and ``dropped``
says why the words are missing; nothing is guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from errors import InvalidInput, ModelLoading, ModelUnavailable, UnusableInput
from inference.labels import EMOTIONS
from inference.results import AnalysisResult
from inference.transcriber import TEXT_LANGUAGE
from services.analysis import get_transcriber


def _probs(values: Any) -> dict[str, float]:
    return {e: round(float(p), 6) for e, p in zip(EMOTIONS, values, strict=True)}


def _vector(probabilities: Mapping[str, float]) -> np.ndarray:
    return np.asarray([float(probabilities[e]) for e in EMOTIONS], dtype=np.float64)


def _mean(rows: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(np.stack(rows), axis=0)
    return mean / mean.sum()


def reason(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


class ClipWords:
    """A step annotator for :func:`services.video.analyse_video` that puts the words on the steps.

    After the analysis, ``transcript`` holds the clip's transcript (None when nothing was
    transcribed), ``overall`` the text recogniser's result on all of it (None when the words
    were left out) and ``dropped`` why they were left out.
    """

    def __init__(
        self,
        transcriber: Any,
        text_recognizer: Any,
        fusion: Any,
        *,
        strategy: str,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.transcriber = transcriber
        self.text = text_recognizer
        self.fusion = fusion
        self.strategy = strategy
        self.weights = weights
        self.transcript: dict[str, Any] | None = None
        self.overall: Any = None
        self.dropped: dict[str, str] | None = None

    def _classify(self, text: str) -> Any:
        try:
            return self.text.predict(text)  # under the text model's configured limits
        except (InvalidInput, UnusableInput):
            return None

    def __call__(self, steps: list[dict[str, Any]], audio: np.ndarray | None) -> None:
        if audio is None or not len(audio) or not np.any(audio):
            self.dropped = reason("no_audio_track", "The clip has no sound, so no words were transcribed.")
            return
        heard = self.transcriber.transcribe_signal(audio)
        self.transcript = {**heard.to_dict(), "used_as_text": False}
        if not heard.has_words:
            self.dropped = reason("no_words", "No words were heard in the clip, so the text modality was left out.")
            return
        if heard.language != TEXT_LANGUAGE:
            self.dropped = reason(
                "unsupported_language",
                f"The clip was transcribed as language '{heard.language}'; the text model understands English "
                "only, so the words were not analysed.",
            )
            return
        self.overall = self._classify(heard.text)
        if self.overall is None:
            self.dropped = reason("text_unusable", "The transcript could not be analysed by the text model.")
            return
        self.transcript["used_as_text"] = True
        segments = []
        for segment in heard.segments:
            if any(ch.isalnum() for ch in segment.text):
                prediction = self._classify(segment.text)
                if prediction is not None:
                    segments.append((segment, np.asarray(prediction.probabilities, dtype=np.float64)))
        for step in steps:
            over = [(s, p) for s, p in segments if s.start < step["end"] and s.end > step["start"]]
            if not over:
                step["words"] = None
                continue
            words = _mean([p for _, p in over])
            step["words"] = {"text": " ".join(s.text for s, _ in over), "probabilities": _probs(words)}
            parts = {m: _vector(step[key]) for m, key in (("face", "face"), ("speech", "voice")) if step.get(key)}
            parts["text"] = words
            if len(parts) == 1:
                fused_probs = words
            else:
                fused = self.fusion.fuse(parts, self.strategy, self.weights, spoken_text=True)
                fused_probs = np.asarray(fused.probabilities)
                if "text" in (fused.explanation.get("gated_out") or {}):
                    step["words"]["gated_out"] = True
            step["fused"] = _probs(fused_probs)
            step["emotion"] = EMOTIONS[int(np.argmax(fused_probs))]


def words_for_clip(
    app: Any, predictor: Any, *, strategy: str, weights: Mapping[str, float] | None
) -> ClipWords | dict[str, str]:
    """The annotator for a clip, or the reason (``code``, ``message``) its words cannot be transcribed.

    503 ``model_loading`` is raised (the caller retries); a transcriber or text model that is
    switched off, missing or refused answers the clip without words, with the reason.
    """
    try:
        transcriber = get_transcriber(app)
        predictor.registry.require_loaded(["text"])
        text = predictor.registry.get("text")
    except ModelLoading:
        raise
    except ModelUnavailable as exc:
        return reason(exc.code, f"The words were not transcribed: {exc.message}")
    return ClipWords(
        transcriber,
        text,
        predictor.fusion,
        strategy=strategy,
        weights=weights,
    )


def add_words(result: dict[str, Any], words: ClipWords, fusion: Any) -> dict[str, Any]:
    """The clip's result with the transcript, the words' overall result and the fusion redone with them."""
    analysis: AnalysisResult = result["analysis"]
    result = dict(result)
    if words.transcript is not None:
        analysis = analysis.with_transcript(words.transcript)
    if words.overall is None:
        if words.dropped is not None:
            analysis = analysis.with_dropped("text", words.dropped)
        result["analysis"] = analysis
        return result
    text = dataclasses.replace(words.overall, details={"source": "transcript"})
    predictions = {**analysis.predictions, "text": text}
    parts = {m: np.asarray(p.probabilities, dtype=np.float64) for m, p in predictions.items()}
    fused = fusion.fuse(parts, words.strategy, words.weights, spoken_text=True)
    probabilities = np.asarray(fused.probabilities)
    best = int(np.argmax(probabilities))
    result["analysis"] = AnalysisResult(
        emotion=EMOTIONS[best],
        confidence=float(probabilities[best]),
        probabilities=tuple(_probs(probabilities).values()),
        predictions=predictions,
        dropped=analysis.dropped,
        fusion=fused,
        transcript=analysis.transcript,
    )
    result["model_versions"] = {
        **(result.get("model_versions") or {}),
        "text": f"{text.model_name} {text.model_version}",
    }
    return result
    individual = dict(result.get("individual_results") or {})
    individual["text"] = {**words.overall.to_dict(), "details": {"source": "transcript"}}
    parts = {m: _vector(individual[m]["probabilities"]) for m in ("face", "speech", "text") if m in individual}
    fused = fusion.fuse(parts, words.strategy, words.weights, spoken_text=True)
    probabilities = np.asarray(fused.probabilities)
    best = int(np.argmax(probabilities))
    result.update(
        emotion=EMOTIONS[best],
        confidence=float(probabilities[best]),
        probabilities=_probs(probabilities),
        individual_results=individual,
        modalities_used=[m for m in ("face", "speech", "text") if m in parts],
        fusion=fused.to_dict(),
        model_versions={
            **(result.get("model_versions") or {}),
            "text": f"{individual['text']['model_name']} {individual['text']['model_version']}",
        },
    )
    return result
