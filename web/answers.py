"""What the API answers, as pydantic models: the document's response components.

They describe (they do not build) the answers of ``services/*.to_dict`` and
``services/predictions/serialize.py``; the schemathesis run in tests/test_api_conformance.py
checks every answer against them. Fields are optional unless always present, like the
hand-written schemas they replace.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from database.models import KINDS
from inference.labels import EMOTIONS, MODALITIES
from validation import omitted

Emotion = Literal[EMOTIONS]  # type: ignore[valid-type]
Modality = Literal[MODALITIES]  # type: ignore[valid-type]
Kind = Literal[KINDS]  # type: ignore[valid-type]


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(Answer):
    code: str
    message: str


class Error(Answer):
    error: ErrorDetail


Probabilities = create_model(
    "Probabilities",
    __base__=Answer,
    __doc__="Probability per emotion; the seven values sum to 1.",
    **{emotion: (float, Field(ge=0, le=1)) for emotion in EMOTIONS},  # type: ignore[call-overload]
)


class User(Answer):
    id: int = omitted()
    email: str = omitted()
    name: str = omitted()
    created_at: dt.datetime = omitted()
    consent_given: bool = omitted()
    consent_given_at: dt.datetime | None = omitted()


class Token(Answer):
    id: int = omitted()
    name: str = omitted()
    prefix: str = omitted()
    token: str = omitted(description="Only in the creation response.")
    created_at: str = omitted()
    last_used_at: str | None = omitted()
    revoked_at: str | None = omitted()
    active: bool = omitted()


class ModalityError(Answer):
    code: str = omitted()
    message: str = omitted()


class ModalityResult(Answer):
    modality: Modality = omitted()
    status: Literal["used", "dropped"] = omitted()
    emotion: Emotion | None = omitted()
    confidence: float | None = omitted()
    probabilities: Probabilities | None = omitted()  # type: ignore[valid-type]
    model_name: str | None = omitted()
    model_version: str | None = omitted()
    latency_ms: float | None = omitted()
    details: dict[str, Any] = omitted(
        description="Face: faces[i].box [x, y, w, h] and image {width, height}; speech: attention [{time, weight}] "
        "(≤ 200 points) and duration_seconds."
    )
    input_summary: dict[str, Any] = omitted(
        description="file_name, media_type, size_bytes, duration_seconds (audio) or text (text)."
    )
    error: ModalityError | None = omitted()


class Fusion(Answer):
    strategy: str = omitted()
    weights: dict[str, Any] = omitted()
    explanation: dict[str, Any] = omitted()


class Segment(Answer):
    start: float = omitted()
    end: float = omitted()
    text: str = omitted()


class Transcript(Answer):
    text: str = omitted()
    language: str = omitted()
    language_probability: float | None = omitted()
    duration_seconds: float | None = omitted()
    segments: list[Segment] = omitted()
    used_as_text: bool = omitted()
    model_name: str | None = omitted()
    model_version: str | None = omitted()


class Prediction(Answer):
    id: int = omitted()
    created_at: dt.datetime = omitted()
    kind: Kind = omitted()
    emotion: Emotion = omitted()
    confidence: float = omitted()
    probabilities: Probabilities = omitted()  # type: ignore[valid-type]
    fusion: Fusion | None = omitted()
    modalities: list[ModalityResult] = omitted()
    transcript: Transcript | None = omitted(
        description="What was said, when the recording was transcribed (stored with the prediction)."
    )
    video: dict[str, Any] | None = omitted(
        description="Only for kind video: timeline steps (time, start, end, face, voice, fused probabilities or "
        "null with face_status/voice_status; words {text, probabilities, gated_out} when transcribed), counts, "
        "model_versions, thumbnails."
    )


class Job(Answer):
    id: int = omitted()
    status: Literal["queued", "running", "done", "failed", "cancelled"] = omitted()
    source: Literal["zip", "csv"] = omitted()
    file_name: str | None = omitted()
    total: int = omitted()
    done: int = omitted(description="Items finished, successfully or not.")
    succeeded: int = omitted()
    failed: int = omitted()
    progress: float = omitted()
    eta_seconds: float | None = omitted()
    failures: list[dict[str, Any]] = omitted()
    transcribe: bool = omitted(description="Recordings and clips are transcribed.")
    error: dict[str, Any] | None = omitted()
    created_at: dt.datetime = omitted()
    started_at: dt.datetime | None = omitted()
    finished_at: dt.datetime | None = omitted()
    links: dict[str, Any] = omitted()


class DayCount(Answer):
    date: dt.date = omitted()
    count: int = omitted()
    by_emotion: dict[str, Any] = omitted()


class Statistics(Answer):
    total: int = omitted()
    average_confidence: float | None = omitted()
    by_emotion: dict[str, Any] = omitted()
    by_modality: dict[str, Any] = omitted()
    by_kind: dict[str, Any] = omitted()
    by_day: list[DayCount] = omitted()


class UserAnswer(Answer):
    user: User = omitted()


class CsrfToken(Answer):
    csrf_token: str = omitted()


class LoggedOutEverywhere(Answer):
    logged_out: bool = omitted()
    sessions_ended: int = omitted()


class TokenList(Answer):
    items: list[Token] = omitted()


class JobList(Answer):
    items: list[Job] = omitted()


class PredictionPage(Answer):
    items: list[Prediction] = omitted()
    page: int | None = omitted(description="The page number; null for a page after a cursor.")
    per_page: int = omitted()
    total: int = omitted()
    pages: int = omitted()
    next_cursor: str | None = omitted(description="Pass as `cursor`.")


#: The answers the document names as components (their nested models come along).
COMPONENTS = (
    Error,
    User,
    Token,
    ModalityResult,
    Prediction,
    Job,
    Statistics,
    UserAnswer,
    CsrfToken,
    LoggedOutEverywhere,
    TokenList,
    JobList,
    PredictionPage,
)


def answer_schemas() -> dict[str, Any]:
    """The answers' JSON Schemas, keyed by component name, with ``$ref`` into the components."""
    _, top = models_json_schema(
        [(model, "serialization") for model in COMPONENTS], ref_template="#/components/schemas/{model}"
    )
    return top["$defs"]
