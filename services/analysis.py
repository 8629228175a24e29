"""Run the multimodal predictor on a user's inputs and store what it answered.

Routes call :func:`analyse`; it checks consent, runs the predictor (single-modality calls for
one input, fusion for the multimodal endpoint) and persists the result with the input
summaries. Raw bytes live only in memory here; nothing is written to disk unless
KEEP_UPLOADS is on. Model errors propagate as ``EmotionAppError`` (4xx/503) — we never store
or invent a prediction for a failed analysis.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from database.models import Prediction, User, utcnow
from errors import EmotionAppError, InvalidInput, ModelLoading, ModelUnavailable, UnusableInput
from inference.fusion import DEFAULT_STRATEGY, STRATEGIES, FusionEngine
from inference.labels import MODALITY_INPUTS
from inference.predictor import MultimodalEmotionPredictor
from inference.registry import RecognizerRegistry
from inference.transcriber import TEXT_LANGUAGE, Transcriber
from services.predictions.store import find_by_idempotency_key, store_prediction

log = logging.getLogger(__name__)

PREDICTOR_KEY = "moodlens_predictor"
REGISTRY_KEY = "moodlens_registry"
TRANSCRIBER_KEY = "moodlens_transcriber"
_predictor_lock = threading.Lock()


class IdempotencyKeyReused(EmotionAppError):
    """The key already names a prediction of another kind: the client mixed up two requests."""

    status = 409
    code = "idempotency_key_reused"


def replay(session: Session, user: User, kind: str, key: str | None) -> Prediction | None:
    """The prediction an earlier request with this ``Idempotency-Key`` stored, or None.

    A retry after a timeout or a 503 thus gets the stored answer, and nothing is stored twice.
    """
    if not key:
        return None
    stored = find_by_idempotency_key(session, user.id, key)
    if stored is not None and stored.kind != kind:
        raise IdempotencyKeyReused(
            f"This Idempotency-Key was already used for a {stored.kind} prediction; send a new key."
        )
    return stored


#: Set on a prediction that an earlier request stored under the same key (the answer is a replay).
_REPLAYED = "_moodlens_replayed"


def is_replay(prediction: Prediction) -> bool:
    """True when :func:`analyse` answered what an earlier request with the same key stored."""
    return bool(getattr(prediction, _REPLAYED, False))


class ConsentRequired(EmotionAppError):
    """Face and voice analysis need the user's recorded consent (EU AI Act, Art. 5(1)(f))."""

    status = 403
    code = "consent_required"


@dataclass
class MediaInput:
    """One uploaded file held in memory with its summary (name, sniffed type, size, duration)."""

    data: bytes
    summary: dict[str, Any] = field(default_factory=dict)


def get_registry(app: Flask) -> RecognizerRegistry:
    return app.extensions[REGISTRY_KEY]


def get_predictor(app: Flask) -> MultimodalEmotionPredictor:
    """The app's MultimodalEmotionPredictor, built on first use (models still load lazily)."""
    predictor = app.extensions.get(PREDICTOR_KEY)
    if predictor is not None:
        return predictor
    with _predictor_lock:
        predictor = app.extensions.get(PREDICTOR_KEY)
        if predictor is None:
            fusion = FusionEngine.from_models_dir(app.config["MODELS_DIR"])
            predictor = MultimodalEmotionPredictor(get_registry(app), fusion)
            app.extensions[PREDICTOR_KEY] = predictor
    return predictor


def get_fusion_engine(app: Flask) -> FusionEngine:
    """The fusion engine of the app's predictor (one per process; its artefacts load on first use)."""
    return get_predictor(app).fusion


def fusion_offer(app: Flask) -> tuple[str, list[str]]:
    """``(default strategy, unavailable strategies)`` for this server: the default is calibrated,
    or the first installed strategy when calibrated's temperatures are missing."""
    engine = get_fusion_engine(app)
    unavailable = engine.unavailable_strategies()
    offered = [s for s in STRATEGIES if s not in unavailable]
    return (DEFAULT_STRATEGY if DEFAULT_STRATEGY in offered or not offered else offered[0]), unavailable


def require_consent(user: User, *, image: bool, audio: bool) -> None:
    if (image or audio) and user.consent_given_at is None:
        what = " and ".join(x for x, given in (("face", image), ("voice", audio)) if given)
        raise ConsentRequired(
            f"Analysing your {what} needs your consent first. Give it on your profile page or with "
            'PUT /api/user/consent {"consent": true}; text analysis works without it.'
        )


def _keep_upload(app: Flask, user: User, name: str, media: MediaInput) -> str:
    """Write a raw upload to UPLOADS_DIR/<user id>/ (only when KEEP_UPLOADS is explicitly enabled).

    Returns the file's path relative to UPLOADS_DIR, stored with the prediction so deleting
    the prediction deletes the file.
    """
    folder = Path(app.config["UPLOADS_DIR"]) / str(user.id)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"{stamp}-{name}"
    path.write_bytes(media.data)
    return f"{user.id}/{path.name}"


def analyse(
    app: Flask,
    session: Session,
    user: User,
    *,
    kind: str,
    image: MediaInput | None = None,
    audio: MediaInput | None = None,
    text: str | None = None,
    text_summary: Mapping[str, Any] | None = None,
    strategy: str | None = None,
    weights: Mapping[str, float] | None = None,
    transcribe: bool = False,
    transcript: Mapping[str, Any] | None = None,
    transcript_dropped: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
) -> Prediction:
    """Predict and store. ``kind`` is text/image/speech (one input) or multimodal (fusion).

    With ``transcribe`` the recording's words become the text modality (unless a text is
    given: typed text wins) and the transcript is returned and stored with the prediction.

    With an ``idempotency_key`` the user already stored a prediction under (a retry, or a
    concurrent twin), the answer is that prediction (:func:`is_replay` is true): the unique
    index decides, and this request's result is not stored.
    """
    require_consent(user, image=image is not None, audio=audio is not None)
    if transcribe:
        return _analyse_with_transcript(
            app, session, user, kind=kind, image=image, audio=audio, text=text, strategy=strategy, weights=weights
        )
    predictor = get_predictor(app)
    summaries: dict[str, dict[str, Any]] = {}
    if image is not None:
        summaries["face"] = dict(image.summary)
    if audio is not None:
        summaries["speech"] = dict(audio.summary)
    if text is not None:
        summaries["text"] = dict(text_summary or {"text": text, "characters": len(text)})
    elif transcript_dropped is not None:
        summaries["text"] = {"source": "transcript"}

    if kind == "text":
        if text is None:
            raise InvalidInput("A text is required.", code="missing_text")
        result = predictor.predict_from_text(text)
    elif kind == "image":
        if image is None:
            raise InvalidInput("An image is required.", code="missing_image")
        result = predictor.predict_from_image(image.data)
    elif kind == "speech" and text is None:
        if audio is None:
            raise InvalidInput("An audio recording is required.", code="missing_audio")
        result = predictor.predict_from_audio(audio.data)
    elif kind in {"multimodal", "speech"}:  # a transcribed recording: voice + its words
        if image is None and audio is None and text is None:
            raise InvalidInput("Send at least one of image, audio or text.", code="no_input")
        kwargs: dict[str, Any] = {
            "image": image.data if image is not None else None,
            "audio": audio.data if audio is not None else None,
            "text": text,
        }
        if strategy is not None:
            kwargs["strategy"] = strategy
        if weights is not None:
            kwargs["weights"] = dict(weights)
        if transcript is not None and transcript.get("used_as_text"):
            kwargs["spoken_text"] = True  # neutral words must not drown the voice
        result = predictor.predict_multimodal(**kwargs)
    else:  # pragma: no cover - routes pass known kinds
        raise ValueError(kind)

    speech = result.predictions.get("speech")
    if speech is not None and "speech" in summaries:
        duration = speech.details.get("duration_seconds")
        if isinstance(duration, int | float):
            summaries["speech"]["duration_seconds"] = round(float(duration), 3)

    if app.config.get("KEEP_UPLOADS"):
        for modality, media in (("face", image), ("speech", audio)):
            if media is not None:
                name = MODALITY_INPUTS[modality]
                kept = _keep_upload(app, user, f"{name}-{media.summary.get('file_name') or name}", media)
                summaries[modality]["kept_file"] = kept

    if transcript is not None:
        result = result.with_transcript(transcript)
    if transcript_dropped is not None:
        result = result.with_dropped("text", transcript_dropped)
    try:
        prediction = store_prediction(session, user.id, kind, result, summaries, idempotency_key=idempotency_key)
    except IntegrityError:
        session.rollback()
        stored = replay(session, user, kind, idempotency_key)
        if stored is None:
            raise
        setattr(stored, _REPLAYED, True)
        return stored
    log.info(
        "event=prediction_stored prediction_id=%s user_id=%s kind=%s emotion=%s modalities=%s",
        prediction.id,
        user.id,
        kind,
        prediction.emotion,
        ",".join(result.modalities_used),
    )
    return prediction


# -- transcripts ---------------------------------------------------------------------------
def build_transcriber(app: Flask) -> Transcriber:
    """The process's transcriber (Whisper-base), its model joined into INSTANCE_DIR on first load."""
    return Transcriber(
        Path(app.config["INSTANCE_DIR"]) / "whisper-base",
        compute_type=str(app.config.get("TRANSCRIBE_COMPUTE_TYPE") or "int8"),
        beam_size=int(app.config.get("TRANSCRIBE_BEAM_SIZE") or 5),
    )


def _transcriber(app: Flask) -> Transcriber:
    """The process's transcriber object, built once (its model loads separately)."""
    transcriber = app.extensions.get(TRANSCRIBER_KEY)
    if transcriber is None:
        with _predictor_lock:
            transcriber = app.extensions.get(TRANSCRIBER_KEY)
            if transcriber is None:
                transcriber = app.extensions[TRANSCRIBER_KEY] = build_transcriber(app)
    return transcriber


def get_transcriber(app: Flask) -> Transcriber:
    """The loaded transcriber; 503 ``model_loading`` while the background load has not reached
    it, 503 ``transcriber_unavailable`` when it is missing or its model failed the hash check."""
    if not app.config.get("TRANSCRIBE_ENABLED", True):
        raise ModelUnavailable(
            "Transcription is switched off on this server (TRANSCRIBE_ENABLED=false).", code="transcriber_unavailable"
        )
    transcriber = _transcriber(app)
    if not transcriber.is_loaded and transcriber.error is None and get_registry(app).loading:
        raise ModelLoading(
            "The transcriber is still loading (the server has just started); try again in a few seconds.",
            retry_after=2,
        )
    transcriber.load()  # raises TranscriberUnavailable (503) with the reason
    return transcriber


def transcriber_status(app: Flask) -> dict[str, Any]:
    """Whether ``transcribe=true`` can be asked for here (never loads the model)."""
    if not app.config.get("TRANSCRIBE_ENABLED", True):
        return {"available": False, "loaded": False, "error": "Transcription is switched off on this server."}
    transcriber = _transcriber(app)
    return {
        "available": transcriber.is_available() and transcriber.error is None,
        "loaded": transcriber.is_loaded,
        "error": transcriber.error,
        "model_name": "whisper-base",
        "languages_analysed": ["en"],
    }


def preload_transcriber(app: Flask) -> None:
    """Load the transcriber with the other models (a failure is kept and answered as 503 later)."""
    # Only beside a voice model: a server without one has no recordings to transcribe at start.
    if app.config.get("TRANSCRIBE_ENABLED", True) and "speech" in get_registry(app).available():
        with contextlib.suppress(ModelUnavailable):
            _transcriber(app).load()


def transcribe_recording(
    app: Flask, audio: MediaInput, typed_text: str | None
) -> tuple[dict[str, Any] | None, str | None, dict[str, str] | None]:
    """``(transcript, words for the text model, why the text modality was left out)``.

    Typed text wins (the transcript is only reported); another language than English, no
    words, or a recording without speech leave the text modality out with the reason.
    """
    transcriber = get_transcriber(app)
    max_seconds = float(app.config.get("MAX_AUDIO_SECONDS") or 60)
    try:
        heard = transcriber.transcribe(audio.data, max_seconds=max_seconds)
    except UnusableInput as exc:  # silence, too short, corrupt: the voice model says the same
        return None, None, {"code": exc.code, "message": f"No words were transcribed: {exc.message}"}
    transcript = heard.to_dict()
    transcript["used_as_text"] = False
    if typed_text is not None:
        return transcript, None, None
    if not heard.has_words:
        reason = {
            "code": "no_words",
            "message": "No words were heard in the recording, so the text modality was left out.",
        }
        return transcript, None, reason
    if heard.language != TEXT_LANGUAGE:
        reason = {
            "code": "unsupported_language",
            "message": f"The recording was transcribed as language '{heard.language}'; the text model understands "
            "English only, so the words were not analysed.",
        }
        return transcript, None, reason
    transcript["used_as_text"] = True
    return transcript, heard.text, None


def _analyse_with_transcript(
    app: Flask,
    session: Session,
    user: User,
    *,
    kind: str,
    image: MediaInput | None,
    audio: MediaInput | None,
    text: str | None,
    strategy: str | None,
    weights: Mapping[str, float] | None,
) -> Prediction:
    """Transcribe, then analyse voice + words (+ face) and store the transcript with the prediction."""
    if audio is None:
        raise InvalidInput("transcribe=true needs an audio recording.", code="missing_audio")
    transcript, words, dropped = transcribe_recording(app, audio, text)
    if text is None and words is not None:
        if strategy is None:
            strategy = fusion_offer(app)[0]
        return analyse(
            app,
            session,
            user,
            kind=kind,
            image=image,
            audio=audio,
            text=words,
            text_summary={"source": "transcript", "characters": len(words)},
            strategy=strategy,
            weights=weights,
            transcript=transcript,
        )
    try:
        return analyse(
            app,
            session,
            user,
            kind=kind,
            image=image,
            audio=audio,
            text=text,
            strategy=strategy,
            weights=weights,
            transcript=transcript,
            transcript_dropped=dropped,
        )
    except UnusableInput as exc:
        if dropped is not None and image is None and text is None:
            # One voice, no words: the voice model's refusal, with the words' reason beside it.
            raise UnusableInput(f"{exc.message} {dropped['message']}", code=exc.code) from exc
        raise
