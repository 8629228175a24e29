"""Run the multimodal predictor on a user's inputs and store what it answered.

Routes call :func:`analyse`; it checks consent, runs the predictor (single-modality calls for
one input, fusion for the multimodal endpoint) and persists the result with the input
summaries. Raw bytes live only in memory here; nothing is written to disk unless
KEEP_UPLOADS is on. Model errors propagate as ``EmotionAppError`` (4xx/503) — we never store
or invent a prediction for a failed analysis.
"""

from __future__ import annotations

import inspect
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
from inference.errors import EmotionAppError, InvalidInput, ModelUnavailable
from inference.registry import RecognizerRegistry
from services.predictions import find_by_idempotency_key, store_prediction

log = logging.getLogger(__name__)

PREDICTOR_KEY = "moodlens_predictor"
REGISTRY_KEY = "moodlens_registry"
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


def get_predictor(app: Flask) -> Any:
    """The app's MultimodalEmotionPredictor, built on first use (models still load lazily)."""
    predictor = app.extensions.get(PREDICTOR_KEY)
    if predictor is not None:
        return predictor
    with _predictor_lock:
        predictor = app.extensions.get(PREDICTOR_KEY)
        if predictor is None:
            try:
                from inference.fusion import FusionEngine
                from inference.predictor import MultimodalEmotionPredictor
            except ImportError as exc:
                log.error("event=predictor_import_failed error=%r", str(exc))
                raise ModelUnavailable("The emotion predictor is not installed; predictions are unavailable.") from exc
            fusion = FusionEngine.from_models_dir(app.config["MODELS_DIR"])
            predictor = MultimodalEmotionPredictor(get_registry(app), fusion)
            app.extensions[PREDICTOR_KEY] = predictor
    return predictor


def get_fusion_engine(app: Flask) -> Any:
    """The fusion engine of the app's predictor (one per process), or None when none is installed."""
    try:
        return get_predictor(app).fusion
    except ModelUnavailable:
        return None


def fusion_offer(app: Flask) -> tuple[str, list[str]]:
    """``(default strategy, unavailable strategies)`` for this server: the default is calibrated,
    or the first installed strategy when calibrated's temperatures are missing."""
    from inference.fusion import DEFAULT_STRATEGY, STRATEGIES

    engine = get_fusion_engine(app)
    unavailable = engine.unavailable_strategies() if engine is not None else ["calibrated", "stacker"]
    offered = [s for s in STRATEGIES if s not in unavailable]
    return (DEFAULT_STRATEGY if DEFAULT_STRATEGY in offered or not offered else offered[0]), unavailable


#: Config limits handed to each recogniser (the names its ``_predict`` takes), so the models
#: enforce the same limits as the upload checks, also for formats only they can decode.
LIMIT_OPTIONS: dict[str, tuple[tuple[str, str, type], ...]] = {
    "face": (("max_pixels", "MAX_IMAGE_PIXELS", int),),
    "speech": (("max_seconds", "MAX_AUDIO_SECONDS", float),),
    "text": (("max_chars", "MAX_TEXT_CHARS", int),),
}


def recognizer_options(app: Flask, modality: str) -> dict[str, Any]:
    """The configured limits the modality's recogniser accepts (unknown names are left out)."""
    try:
        recognizer = get_registry(app).get(modality)
    except EmotionAppError:
        return {}  # the predictor raises the proper 503 itself
    try:
        parameters = inspect.signature(recognizer._predict).parameters
    except (TypeError, ValueError):
        return {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    options = {}
    for name, key, cast in LIMIT_OPTIONS.get(modality, ()):
        if (takes_any or name in parameters) and app.config.get(key) is not None:
            options[name] = cast(app.config[key])
    return options


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
    idempotency_key: str | None = None,
) -> Prediction:
    """Predict and store. ``kind`` is text/image/speech (one input) or multimodal (fusion).

    With an ``idempotency_key`` the user already stored a prediction under (a retry, or a
    concurrent twin), the answer is that prediction (:func:`is_replay` is true): the unique
    index decides, and this request's result is not stored.
    """
    require_consent(user, image=image is not None, audio=audio is not None)
    predictor = get_predictor(app)
    summaries: dict[str, dict[str, Any]] = {}
    if image is not None:
        summaries["face"] = dict(image.summary)
    if audio is not None:
        summaries["speech"] = dict(audio.summary)
    if text is not None:
        summaries["text"] = dict(text_summary or {"text": text, "characters": len(text)})

    if kind == "text":
        if text is None:
            raise InvalidInput("A text is required.", code="missing_text")
        result = predictor.predict_from_text(text, **recognizer_options(app, "text"))
    elif kind == "image":
        if image is None:
            raise InvalidInput("An image is required.", code="missing_image")
        result = predictor.predict_from_image(image.data, **recognizer_options(app, "face"))
    elif kind == "speech":
        if audio is None:
            raise InvalidInput("An audio recording is required.", code="missing_audio")
        result = predictor.predict_from_audio(audio.data, **recognizer_options(app, "speech"))
    elif kind == "multimodal":
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
        given = [m for m, value in (("face", image), ("speech", audio), ("text", text)) if value is not None]
        kwargs["options"] = {m: recognizer_options(app, m) for m in given}
        result = predictor.predict_multimodal(**kwargs)
    else:  # pragma: no cover - routes pass known kinds
        raise ValueError(kind)

    speech = (result.get("individual_results") or {}).get("speech")
    if speech and "speech" in summaries:
        duration = (speech.get("details") or {}).get("duration_seconds")
        if isinstance(duration, int | float):
            summaries["speech"]["duration_seconds"] = round(float(duration), 3)

    if app.config.get("KEEP_UPLOADS"):
        for name, modality, media in (("image", "face", image), ("audio", "speech", audio)):
            if media is not None:
                kept = _keep_upload(app, user, f"{name}-{media.summary.get('file_name') or name}", media)
                summaries[modality]["kept_file"] = kept

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
        ",".join(result.get("modalities_used") or []),
    )
    return prediction
