"""Reading uploads and text bodies safely: in memory, type sniffed from content, limits enforced.

The sniffing here is a cheap gate (magic bytes, header-only size/duration checks) that
answers 413/415/422 before any model runs; the modality's preprocessing still decodes fully
and raises its own clear errors for anything that gets past it.
"""

from __future__ import annotations

import io
import json
from typing import Any

import soundfile
from flask import current_app, request
from PIL import Image, UnidentifiedImageError
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from errors import InputTooLarge, InvalidInput, UnsupportedMediaType, UnusableInput
from preprocessing.media_type import sniff_clip_type, sniff_media_type
from services.analysis import MediaInput
from web.schemas import text_limit

#: What the face preprocessing decodes; GIF and TIFF are recognised only to name them in the 415.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp")
AUDIO_TYPES = (
    "audio/wav",
    "audio/flac",
    "audio/ogg",
    "audio/mpeg",
    "audio/webm",
    "audio/mp4",
    "audio/aiff",
)


def _summary(file: FileStorage, data: bytes, media_type: str) -> dict[str, Any]:
    name = secure_filename(file.filename or "")[:120] or None
    return {"file_name": name, "media_type": media_type, "size_bytes": len(data)}


def _check_image(data: bytes) -> dict[str, int]:
    """Width and height from the header; 413 beyond MAX_IMAGE_PIXELS, 415 if it does not parse."""
    max_pixels = int(current_app.config.get("MAX_IMAGE_PIXELS", 40_000_000))
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnsupportedMediaType(
            "The image could not be read; send a JPEG, PNG, WebP or BMP file.", code="undecodable_image"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise InputTooLarge(f"The image is too large (limit {max_pixels:,} pixels).", code="image_too_large") from exc
    if width * height > max_pixels:
        raise InputTooLarge(
            f"The image has {width * height:,} pixels; the limit is {max_pixels:,}.", code="image_too_large"
        )
    return {"width": width, "height": height}


def _audio_duration(data: bytes) -> float | None:
    """Duration from the header for formats libsndfile reads cheaply (None when unknown)."""
    try:
        info = soundfile.info(io.BytesIO(data))
        if info.samplerate > 0 and info.frames > 0:
            return float(info.frames) / float(info.samplerate)
    except Exception:  # unknown header: the speech preprocessing will decide
        return None
    return None


def read_upload(field: str, modality: str, *, required: bool = True) -> MediaInput | None:
    """The uploaded file in ``field`` as bytes + summary; 400/413/415/422 on bad uploads."""
    file = request.files.get(field)
    if file is None:
        if required:
            raise InvalidInput(
                f"Send the {'image' if modality == 'face' else 'recording'} as multipart/form-data field '{field}'.",
                code="missing_file",
            )
        return None
    data = file.read()
    if not data:
        if not required and not file.filename:
            return None  # an empty optional file input in a browser form
        raise UnusableInput(f"The uploaded '{field}' file is empty.", code="empty_file")
    media_type = sniff_media_type(data)
    allowed = IMAGE_TYPES if modality == "face" else AUDIO_TYPES
    if media_type not in allowed:
        what = (
            "an image (JPEG, PNG, WebP, BMP)"
            if modality == "face"
            else ("an audio recording (WAV, FLAC, OGG, MP3, WebM, MP4/M4A, AIFF)")
        )
        raise UnsupportedMediaType(
            f"The '{field}' upload is not {what} (detected from its content: {media_type or 'unknown'})."
        )
    summary = _summary(file, data, media_type)
    if modality == "face":
        summary.update(_check_image(data))
    else:
        duration = _audio_duration(data)
        if duration is not None:
            max_seconds = float(current_app.config.get("MAX_AUDIO_SECONDS", 60))
            if duration > max_seconds:
                raise InputTooLarge(
                    f"The recording lasts {duration:.1f} s; the limit is {max_seconds:g} s.", code="audio_too_long"
                )
            summary["duration_seconds"] = round(duration, 3)
    return MediaInput(data=data, summary=summary)


#: Containers a clip may come in (an audio-only file is analysed for the voice alone).
VIDEO_CONTAINERS = ("audio/mp4", "audio/webm", "video/quicktime", *AUDIO_TYPES)


def read_video_upload(field: str = "video") -> MediaInput:
    """The uploaded clip in ``field``: MP4/MOV (ftyp, moov), WebM/Matroska, or an audio file; 400/415."""
    file = request.files.get(field)
    if file is None:
        raise InvalidInput(f"Send the video as multipart/form-data field '{field}'.", code="missing_file")
    data = file.read()
    if not data:
        raise UnusableInput(f"The uploaded '{field}' file is empty.", code="empty_file")
    media_type = sniff_clip_type(data)
    if media_type not in VIDEO_CONTAINERS:
        raise UnsupportedMediaType(
            f"The '{field}' upload is not a video (MP4, WebM, MOV) or audio recording "
            f"(detected from its content: {media_type or 'unknown'}).",
            code="unsupported_video",
        )
    named = {"audio/mp4": "video/mp4", "audio/webm": "video/webm"}.get(media_type, media_type)
    return MediaInput(data=data, summary=_summary(file, data, named))


def check_text(value: Any, *, field: str = "text") -> str:
    """A usable text: a non-blank string within MAX_TEXT_CHARS (400/413/422 otherwise)."""
    if value is None:
        raise InvalidInput(f"Send the text in the '{field}' field.", code="missing_text")
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string.", code="invalid_text")
    if not value.strip():
        raise UnusableInput("The text is empty; write something to analyse.", code="empty_text")
    limit = text_limit()  # the document's maxLength too
    if len(value) > limit:
        raise InputTooLarge(f"The text has {len(value)} characters; the limit is {limit}.", code="text_too_long")
    return value


def json_body(*, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; 415 for other content types, 400 for malformed JSON."""
    if not request.is_json:
        if not required and not request.get_data(cache=True):
            return {}
        raise UnsupportedMediaType("Send a JSON body with 'Content-Type: application/json'.", code="expected_json")
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise InvalidInput("The JSON body is empty.", code="invalid_json")
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput("The body is not valid UTF-8.", code="invalid_encoding") from None
    except ValueError:
        raise InvalidInput("The body is not valid JSON.", code="invalid_json") from None
    except RecursionError:
        raise InvalidInput("The JSON body is nested too deeply.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidInput("The JSON body must be an object.", code="invalid_json")
    _require_encodable(body)
    return body


def _require_encodable(value: Any) -> None:
    """400 for strings no UTF-8 text can hold (lone surrogates such as "\\ud800" in JSON)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "The body contains characters that are not valid Unicode text.", code="invalid_encoding"
        ) from None


def form_or_json() -> dict[str, Any]:
    """Fields from a JSON object or an HTML form, whichever the client sent."""
    if request.is_json:
        return json_body()
    if request.mimetype in {"multipart/form-data", "application/x-www-form-urlencoded"}:
        return request.form.to_dict()
    if not request.get_data(cache=True):
        return {}
    raise UnsupportedMediaType(
        "Send JSON ('Content-Type: application/json') or a form (multipart/form-data).", code="unsupported_body"
    )
