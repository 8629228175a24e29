"""Errors that carry an HTTP status, so routes can answer any failure with a clear 4xx/503.

Preprocessing and recognisers raise these; the web layer turns them into
``{"error": {"code": ..., "message": ...}}`` with ``status``. Never catch them to invent a
prediction instead.
"""

from __future__ import annotations


class EmotionAppError(Exception):
    """Base class: a client-facing failure with a stable machine-readable code."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(EmotionAppError):
    """The request is malformed (missing field, wrong JSON shape)."""

    status = 400
    code = "invalid_input"


class UnusableInput(EmotionAppError):
    """The input decoded but cannot be analysed (no face, silence, empty text)."""

    status = 422
    code = "unusable_input"


class UnsupportedMediaType(EmotionAppError):
    """The bytes are not a format we decode (checked from content, not the file name)."""

    status = 415
    code = "unsupported_media_type"


class InputTooLarge(EmotionAppError):
    """The input exceeds a configured limit (bytes, pixels, seconds, characters)."""

    status = 413
    code = "input_too_large"


class ModelUnavailable(EmotionAppError):
    """The modality's model is not bundled or failed to load: we refuse rather than guess."""

    status = 503
    code = "model_unavailable"


class ModelLoading(ModelUnavailable):
    """The model is being loaded right now (the server just started): retry in a moment."""

    status = 503
    code = "model_loading"

    def __init__(self, message: str, *, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
