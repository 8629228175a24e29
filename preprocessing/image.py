"""Photo bytes -> grayscale frame -> face boxes -> 48x48 model inputs.

Every failure is an :class:`~errors.EmotionAppError` with a clear message, so the
web layer answers bad uploads with a 4xx instead of a 500. The format is recognised from the
content (magic bytes), never from the file name, and the pixel count is checked from the
header before any pixel is decoded, so a "decompression bomb" costs nothing.

Face detection runs the BlazeFace CNN (``preprocessing.face_detection``, when the recogniser
passes one) and, for what it misses, the frontal-face Haar cascade bundled with OpenCV, on a
downscaled copy of the frame (a full 640x480 frame costs several times more) with the boxes
mapped back to the original coordinates.
"""

from __future__ import annotations

import contextlib
import io
import queue
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from errors import InputTooLarge, InvalidInput, UnsupportedMediaType, UnusableInput
from preprocessing.media_type import sniff_media_type

if TYPE_CHECKING:
    from preprocessing.face_detection import BlazeFaceDetector, Detection

#: Side of the square grayscale face the model takes (FER2013's size).
FACE_SIZE = 48
#: Fraction of the detected box added on every side before cropping. Chosen on FER2013
#: PublicTest faces pasted into photos: the bare Haar box (0) matched the training framing
#: best; every wider margin from 0.05 to 0.3 lost accuracy, a tighter one (-0.1) too.
DEFAULT_MARGIN = 0.0
#: The longer side of the copy the detector scans first; a second, finer pass runs only when
#: the first finds nothing in a larger picture.
DETECT_SIDE = 320
DETECT_SIDE_FINE = 640
#: A face that fills the frame (a close webcam, a selfie, an already-cropped face) leaves the
#: cascade no room for its search window: when nothing is found, the frame is scanned once
#: more inside a border of this fraction of its longer side on every side.
PAD_FRACTION = 0.35
#: Smallest face the detector reports, in pixels of the scanned copy.
MIN_FACE = 24
#: The CNN detector's second look, for a face that fills the frame: a border of this fraction
#: of the longer side (chosen on FER2013 PublicTest faces enlarged to fill the frame).
CNN_PAD_FRACTION = 0.25

FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP"}


@dataclass(frozen=True)
class FaceBox:
    """A face's axis-aligned box in pixels of the decoded (EXIF-rotated) image."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


#: The Pillow format of each image type the face preprocessing decodes.
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/bmp": "BMP"}


def sniff_format(data: bytes) -> str | None:
    """The Pillow format of a JPEG, PNG, WebP or BMP image (from its magic bytes), or None."""
    return PILLOW_FORMATS.get(sniff_media_type(data) or "")


def decode_image(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Decode JPEG/PNG/WebP/BMP bytes into a grayscale uint8 array, honouring EXIF orientation.

    Raises InvalidInput (empty upload), UnsupportedMediaType (not one of the four formats),
    InputTooLarge (more than ``max_pixels`` pixels, read from the header without decoding)
    and UnusableInput with code ``corrupt_image`` (the pixels cannot be decoded).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput("The image must be sent as the bytes of an image file.")
    data = bytes(data)
    if not data:
        raise InvalidInput("The image file is empty (0 bytes).", code="empty_file")
    kind = sniff_format(data)
    if kind is None:
        raise UnsupportedMediaType(
            "The file is not a JPEG, PNG, WebP or BMP image (checked from its content).",
            code="unsupported_image_format",
        )

    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind])
    except Image.DecompressionBombError as exc:
        raise InputTooLarge(
            f"The image has too many pixels (the limit is {max_pixels:,}).", code="image_too_large"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnusableInput(
            f"The {FORMAT_NAMES[kind]} image is corrupt or truncated and cannot be decoded.", code="corrupt_image"
        ) from exc

    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise UnusableInput("The image has no pixels.", code="corrupt_image")
        if width * height > max_pixels:
            raise InputTooLarge(
                f"The image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}.",
                code="image_too_large",
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
                oriented = ImageOps.exif_transpose(image)
                gray = oriented.convert("L")
        except Image.DecompressionBombError as exc:
            raise InputTooLarge(
                f"The image has too many pixels (the limit is {max_pixels:,}).", code="image_too_large"
            ) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise UnusableInput(
                f"The {FORMAT_NAMES[kind]} image is corrupt or truncated and cannot be decoded.",
                code="corrupt_image",
            ) from exc
        return np.asarray(gray, dtype=np.uint8)


# -- detection -------------------------------------------------------------------------------
#: Idle Haar cascades. OpenCV's classifier is not safe to share between threads, so each call
#: borrows one; cascades made while the model loads are reused by any request thread later.
_cascades: queue.SimpleQueue[object] = queue.SimpleQueue()


def _new_cascade() -> object:
    import cv2

    cv2.setNumThreads(2)
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's frontal-face cascade could not be read from {path}")
    return cascade


@contextlib.contextmanager
def _cascade() -> Iterator[object]:
    """A cascade no other thread is using, returned to the pool afterwards."""
    try:
        cascade = _cascades.get_nowait()
    except queue.Empty:
        cascade = _new_cascade()
    try:
        yield cascade
    finally:
        _cascades.put(cascade)


def warm_up(cascades: int = 2) -> None:
    """Pay the first-use costs (OpenCV, Pillow, the cascade files) before the first request."""
    from PIL import Image  # noqa: F401  (imported for its side effect: loaded once, now)

    made = [_new_cascade() for _ in range(cascades)]
    for cascade in made:
        _cascades.put(cascade)
    detect_faces(np.full((120, 160), 128, dtype=np.uint8))


def scaled(gray: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """``gray`` resized by ``scale`` (area-averaged when shrinking), at least one pixel each way so
    a 4000x5 strip keeps a row, with the exact x and y factors for mapping boxes back."""
    import cv2

    height, width = gray.shape
    if scale == 1.0:
        return gray, 1.0, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
    return small, size[0] / width, size[1] / height


def _detect_at(gray: np.ndarray, side: int) -> list[FaceBox]:
    height, width = gray.shape
    scale = min(side / max(height, width), 4.0)
    small, _, _ = scaled(gray, scale)
    with _cascade() as cascade:
        found = cascade.detectMultiScale(  # type: ignore[attr-defined]
            small, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE)
        )
    boxes = []
    for x, y, w, h in np.asarray(found, dtype=np.float64).reshape(-1, 4).tolist():
        x0, y0 = max(round(x / scale), 0), max(round(y / scale), 0)
        x1, y1 = min(round((x + w) / scale), width), min(round((y + h) / scale), height)
        if x1 > x0 and y1 > y0:
            boxes.append(FaceBox(x0, y0, x1 - x0, y1 - y0))
    return boxes


def detect_faces(gray: np.ndarray, detector: BlazeFaceDetector | None = None) -> list[FaceBox]:
    """Every face in a grayscale frame, largest first (empty list when none).

    With a CNN ``detector`` (the recogniser's), its faces are the answer, from the frame or, when
    it finds none, from a copy inside a padded border. When there is none, or it found nothing,
    the Haar cascade scans the frame at a longer side of 320 px; only when that finds nothing in
    a larger picture is it scanned again at 640 px, so small faces in big photos are still found,
    and only when both find nothing inside a padded border, so faces that fill the frame are too.
    """
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("detect_faces expects a 2-D uint8 grayscale array")
    boxes = _detect_cnn(gray, detector) if detector is not None else []
    if boxes:
        return sorted(boxes, key=lambda b: (-b.area, b.x, b.y))
    boxes = _detect_at(gray, DETECT_SIDE)
    if not boxes and max(gray.shape) > DETECT_SIDE * 1.5:
        boxes = _detect_at(gray, DETECT_SIDE_FINE)
    if not boxes:
        boxes = _detect_padded(gray)
    return sorted(boxes, key=lambda b: (-b.area, b.x, b.y))


def _detect_cnn(gray: np.ndarray, detector: BlazeFaceDetector) -> list[FaceBox]:
    """The CNN's faces as FER2013-framed squares: from the frame, else from a padded copy (a face
    that fills the frame), else from overlapping tiles (a face small in a large frame)."""
    height, width = gray.shape
    found = [_face_square(d, detector) for d in detector.detect(gray)]
    if not found:
        found = [_face_square(d, detector) for d in detector.detect(gray, pad_fraction=CNN_PAD_FRACTION)]
    if not found:
        found = [_face_square(d, detector) for d in detector.detect_tiled(gray)]
    return _mostly_inside(found, width, height)


def _face_square(detection: Detection, detector: BlazeFaceDetector) -> tuple[float, float, float, float]:
    """The detector's box as the square a FER2013 face image would show (the framing the face
    model was trained on): the card's scale and vertical shift, measured on PublicTest."""
    square = detector.card.get("face_square", {})
    scale, shift_y = float(square.get("scale", 1.0)), float(square.get("shift_y", 0.0))
    side = max(detection.x1 - detection.x0, detection.y1 - detection.y0)
    cx = (detection.x0 + detection.x1) / 2.0
    cy = (detection.y0 + detection.y1) / 2.0 + shift_y * side
    half = scale * side / 2.0
    return cx - half, cy - half, cx + half, cy + half


def _mostly_inside(corners: list[tuple[float, float, float, float]], width: int, height: int) -> list[FaceBox]:
    """The boxes clipped to the frame, keeping only faces mostly inside it (not ones a border made up)."""
    boxes = []
    for x0, y0, x1, y1 in corners:
        left, top = max(round(x0), 0), max(round(y0), 0)
        right, bottom = min(round(x1), width), min(round(y1), height)
        inside = FaceBox(left, top, max(right - left, 0), max(bottom - top, 0))
        if inside.w > 0 and inside.h > 0 and inside.area >= 0.5 * (x1 - x0) * (y1 - y0):
            boxes.append(inside)
    return boxes


def _detect_padded(gray: np.ndarray) -> list[FaceBox]:
    """Scan a copy inside a border of the frame's mean grey; boxes are clipped to the frame.

    The frame is shrunk to the scan size before the border is added, so the copy costs what the
    scan does, whatever the upload's shape."""
    import cv2

    height, width = gray.shape
    pad = PAD_FRACTION * max(height, width)
    small, sx, sy = scaled(gray, min(DETECT_SIDE / (max(height, width) + 2 * pad), 4.0))
    border = max(1, round(pad * sx))
    padded = cv2.copyMakeBorder(small, border, border, border, border, cv2.BORDER_CONSTANT, value=int(gray.mean()))
    corners = [
        ((b.x - border) / sx, (b.y - border) / sy, (b.x + b.w - border) / sx, (b.y + b.h - border) / sy)
        for b in _detect_at(padded, max(padded.shape))  # already at the scan size
    ]
    return _mostly_inside(corners, width, height)


# -- cropping and normalisation --------------------------------------------------------------
def normalise_face(faces: np.ndarray) -> np.ndarray:
    """uint8 grey levels -> float32 in [-1, 1]: ``(x / 255 - 0.5) * 2``, exactly as training did."""
    return ((np.asarray(faces, dtype=np.float32) / 255.0) - 0.5) * 2.0


def crop_face(gray: np.ndarray, box: FaceBox, *, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A square crop around ``box`` widened by ``margin`` per side, as a normalised 48x48 float32.

    Parts of the square outside the frame are filled by replicating the border, so a face at
    the edge stays centred as in the training images.
    """
    import cv2

    height, width = gray.shape
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    x1, y1 = x0 + max(round(side), 1), y0 + max(round(side), 1)
    pad = max(0, -x0, -y0, x1 - width, y1 - height)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    patch = gray[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if patch.shape[0] > FACE_SIZE else cv2.INTER_LINEAR
    patch = cv2.resize(patch, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)
    return normalise_face(patch)


def whole_image_face(gray: np.ndarray) -> np.ndarray:
    """An already-cropped face image (e.g. a 48x48 dataset face) resized and normalised as is."""
    import cv2

    if gray.shape != (FACE_SIZE, FACE_SIZE):
        interpolation = cv2.INTER_AREA if min(gray.shape) > FACE_SIZE else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)
    return normalise_face(gray)
