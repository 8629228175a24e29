"""The API's request bodies and form fields as pydantic models: checked here, described from here.

``web/openapi.py`` generates the document's request schemas from these models, so what the
routes accept and what the document says cannot disagree. The models parse shapes and types;
meaning stays with the services (a valid email, a strong password, a known fusion strategy,
usable weights: :mod:`inference.fusion`), which answer with their own precise codes.

JSON bodies are validated strictly (a string must be a string, as the JSON Schema says); form
fields arrive as strings and are parsed.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar

from flask import current_app, has_app_context
from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictBool, WithJsonSchema

from database.models import IDEMPOTENCY_KEY_LENGTH
from inference.fusion import STRATEGIES
from inference.labels import MODALITIES
from validation import documented_required, omitted, refuse

DEFAULT_MAX_TEXT_CHARS = 5000


def text_limit() -> int:
    """MAX_TEXT_CHARS of the running app: the 413 limit and the document's ``maxLength``."""
    if has_app_context():
        return int(current_app.config.get("MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS))
    return DEFAULT_MAX_TEXT_CHARS


def _configured_text_limit(schema: dict[str, Any]) -> None:
    schema["maxLength"] = text_limit()


class JsonBody(BaseModel):
    """A JSON object: types as the document states them; missing fields left to the service."""

    model_config = ConfigDict(strict=True, json_schema_extra=documented_required)
    required_fields: ClassVar[tuple[str, ...]] = ()


class RegisterBody(JsonBody):
    required_fields = ("email", "password")
    email: str = omitted(json_schema_extra={"format": "email"})
    password: str = omitted()
    name: str = omitted()
    consent: StrictBool = omitted()


class LoginBody(JsonBody):
    required_fields = ("email", "password")
    email: str = omitted()
    password: str = omitted()
    remember: StrictBool = omitted()


class ProfileBody(JsonBody):
    name: str = omitted()


class PasswordBody(JsonBody):
    required_fields = ("current_password", "new_password")
    current_password: str = omitted()
    new_password: str = omitted()


class ConsentBody(JsonBody):
    required_fields = ("consent",)
    consent: StrictBool = omitted()


class TokenBody(JsonBody):
    name: str = omitted()


class TextBody(JsonBody):
    required_fields = ("text",)
    text: str = omitted(json_schema_extra=_configured_text_limit)


IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_LENGTH}}}")


def _idempotency_key(value: Any) -> str | None:
    """1-64 visible ASCII characters (surrounding blanks dropped), None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not _IDEMPOTENCY_KEY.fullmatch(value.strip()):
        raise refuse(
            "invalid_idempotency_key",
            f"{IDEMPOTENCY_HEADER} must be 1 to {IDEMPOTENCY_KEY_LENGTH} visible ASCII characters, e.g. a UUID.",
        )
    return value.strip()


class PredictHeaders(BaseModel):
    """The headers of a prediction POST that may be retried safely."""

    idempotency_key: Annotated[
        Any,
        BeforeValidator(_idempotency_key),
        WithJsonSchema(
            {
                "type": "string",
                "minLength": 1,
                "maxLength": IDEMPOTENCY_KEY_LENGTH,
                "description": "Retry safely: a request with a key this user already sent answers the prediction "
                "stored then (header `Idempotent-Replayed: true`) instead of storing another.",
            }
        ),
    ] = omitted(alias=IDEMPOTENCY_HEADER)


# -- multipart forms (a JSON object with the same fields is accepted too) --------------------
#: An uploaded file: described here, read and sniffed by web/uploads.py.
File = Annotated[Any, WithJsonSchema({"type": "string", "format": "binary"})]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def parse_flag(value: Any) -> bool | None:
    """true/false, 1/0, yes/no, on/off (any case) or a JSON boolean; None when absent."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise refuse("invalid_transcribe", "transcribe must be true or false.")


def _transcribe(description: str) -> Any:
    """A ``transcribe`` flag: parsed by :func:`parse_flag`, described as "true"/"false"."""
    return Annotated[
        Any,
        BeforeValidator(parse_flag),
        WithJsonSchema({"type": "string", "enum": ["true", "false"], "description": description}),
    ]


Transcribe = _transcribe(
    "Transcribe the recording: its words become the text modality (English; a typed text wins). "
    "503 transcriber_unavailable when the server has no transcriber."
)
VideoTranscribe = _transcribe(
    "Transcribe the clip's audio (default false): the words join the timeline steps and the clip's "
    "result. Without a transcriber the clip is still answered and text is dropped with its reason."
)
JobTranscribe = _transcribe(
    "Transcribe the recordings and clips (default false); results.csv gets transcript and transcript_note."
)
QueryTranscribe = _transcribe("Like the form field (the form or JSON field wins).")


def _strategy(value: Any) -> str | None:
    """A string or nothing (an empty form field is nothing); whether it is a known strategy is fusion's call."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise refuse("invalid_fusion_options", "strategy must be a string.")
    return value


def _fusion_error(message: str) -> Exception:
    return refuse("invalid_fusion_options", message, 422)


def _weights(value: Any) -> dict[str, Any] | None:
    """A JSON object, or a form field holding one; its keys and numbers are checked by fusion."""
    if value in (None, ""):
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            weights = json.loads(value)
        except (ValueError, RecursionError):
            weights = None
        if isinstance(weights, dict):
            return weights
        raise _fusion_error('weights must be a JSON object like {"face": 0.5, "speech": 0.2, "text": 0.3}.')
    raise _fusion_error("weights must be a JSON object.")


def _weight(value: Any) -> Any:
    """One modality's weight as sent (empty form field: none); fusion checks it is a usable number."""
    return None if value == "" else value


Strategy = Annotated[
    Any,
    BeforeValidator(_strategy),
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(STRATEGIES),
            "description": "Default: GET /api/models' default_strategy (calibrated when its temperatures are "
            "installed).",
        }
    ),
]
Weights = Annotated[
    Any,
    BeforeValidator(_weights),
    WithJsonSchema({"type": "string", "description": 'JSON object, e.g. {"face": 0.5, "text": 0.5}'}),
]
Weight = Annotated[Any, BeforeValidator(_weight), WithJsonSchema({"type": "number"})]


class FormFields(BaseModel):
    """Fields of a multipart form or of a JSON object (files are read by web/uploads.py)."""

    model_config = ConfigDict(json_schema_extra=documented_required)
    required_fields: ClassVar[tuple[str, ...]] = ()


class TranscribeQuery(BaseModel):
    """``?transcribe=`` in the query string: used when the form or JSON fields do not say."""

    transcribe: QueryTranscribe = omitted()


class FusionFields(FormFields):
    strategy: Strategy = omitted()
    weights: Weights = omitted()

    def fusion_weights(self) -> dict[str, Any] | None:
        """``weights`` overridden by the weight_<modality> fields; None when neither was sent."""
        merged = dict(self.weights or {})
        for modality in MODALITIES:
            value = getattr(self, f"weight_{modality}", None)
            if value is not None:
                merged[modality] = value
        return merged or None


class ImageForm(FormFields):
    required_fields = ("image",)
    image: File = omitted()


class SpeechForm(FormFields):
    required_fields = ("audio",)
    audio: File = omitted()
    transcribe: Transcribe = omitted()


class MultimodalForm(FusionFields):
    image: File = omitted()
    audio: File = omitted()
    text: Annotated[Any, WithJsonSchema({"type": "string"})] = omitted(json_schema_extra=_configured_text_limit)
    weight_face: Weight = omitted()
    weight_speech: Weight = omitted()
    weight_text: Weight = omitted()
    transcribe: Transcribe = omitted()


class VideoForm(FusionFields):
    required_fields = ("video",)
    video: File = omitted()
    weights: Annotated[
        Any,
        BeforeValidator(_weights),
        WithJsonSchema({"type": "string", "description": 'JSON object, e.g. {"face": 0.6, "speech": 0.4}'}),
    ] = omitted()
    transcribe: VideoTranscribe = omitted()


class JobForm(FormFields):
    required_fields = ("file",)
    file: File = omitted()
    transcribe: JobTranscribe = omitted()
