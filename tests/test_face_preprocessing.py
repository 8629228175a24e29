"""Specification of preprocessing/image.py: decoding uploads safely, finding and cropping faces.

Real Pillow and real OpenCV (the Haar cascade that ships with it); no model is loaded here.
The faces are FER2013 PrivateTest images from tests/fixtures/face/.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from errors import InputTooLarge, InvalidInput, UnsupportedMediaType, UnusableInput
from preprocessing.image import (
    FACE_SIZE,
    FaceBox,
    crop_face,
    decode_image,
    detect_faces,
    normalise_face,
    sniff_format,
    whole_image_face,
)

FIXTURES = Path(__file__).parent / "fixtures" / "face"
SURPRISE = FIXTURES / "fer2013_privatetest_32308_surprise.png"
HAPPY = FIXTURES / "fer2013_privatetest_32318_happy.png"
LIMIT = 40_000_000


def encode(array: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def face(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def photo_with_faces(*paths: Path, side: int = 160) -> np.ndarray:
    """A 640x480 grey photo with the given FER faces enlarged side by side (as Haar finds them)."""
    import cv2

    canvas = np.full((480, 640), 200, np.uint8)
    spots = [(60, 160), (400, 140)]
    for path, (x, y) in zip(paths, spots, strict=False):
        canvas[y : y + side, x : x + side] = cv2.resize(face(path), (side, side), interpolation=cv2.INTER_CUBIC)
    return canvas


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but carries almost no data (a bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# -- decoding --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_jpeg_png_webp_and_bmp_decode_to_a_grayscale_uint8_array(fmt: str) -> None:
    colour = np.zeros((30, 40, 3), np.uint8)
    colour[..., 0] = 255  # pure red -> one grey level everywhere
    gray = decode_image(encode(colour, fmt), max_pixels=LIMIT)
    assert gray.shape == (30, 40)
    assert gray.dtype == np.uint8
    assert int(gray.std()) <= 2


def test_the_format_is_recognised_from_the_content_not_a_name() -> None:
    assert sniff_format(encode(np.zeros((4, 4), np.uint8), "PNG")) == "PNG"
    assert sniff_format(b"GIF89a....") is None
    assert sniff_format(b"hello, I am a text file renamed photo.jpg") is None


def test_exif_orientation_is_honoured() -> None:
    landscape = np.zeros((40, 60, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    gray = decode_image(encode(landscape, "JPEG", exif=exif), max_pixels=LIMIT)
    assert gray.shape == (60, 40)


def test_a_zero_byte_file_is_refused_as_invalid_input_400() -> None:
    with pytest.raises(InvalidInput) as error:
        decode_image(b"", max_pixels=LIMIT)
    assert error.value.status == 400
    assert "empty" in error.value.message


def test_a_text_file_renamed_jpg_is_refused_as_unsupported_media_type_415() -> None:
    with pytest.raises(UnsupportedMediaType) as error:
        decode_image(b"I am not a picture, only named photo.jpg\n", max_pixels=LIMIT)
    assert error.value.status == 415


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_image_is_refused_as_corrupt_image_422(fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (120, 160), dtype=np.uint8)
    data = encode(noise, fmt)
    with pytest.raises(UnusableInput) as error:
        decode_image(data[: len(data) // 2], max_pixels=LIMIT)
    assert error.value.status == 422
    assert error.value.code == "corrupt_image"


def test_garbage_after_a_valid_signature_is_refused_as_corrupt_image_422() -> None:
    with pytest.raises(UnusableInput) as error:
        decode_image(b"\xff\xd8\xff\xe0" + b"\x13\x37" * 200, max_pixels=LIMIT)
    assert error.value.code == "corrupt_image"


def test_a_20000_by_20000_decompression_bomb_is_refused_with_413_from_its_header() -> None:
    bomb = png_header_only(20_000, 20_000)
    assert len(bomb) < 200
    with pytest.raises(InputTooLarge) as error:
        decode_image(bomb, max_pixels=LIMIT)
    assert error.value.status == 413


def test_an_image_over_the_configured_pixel_limit_is_refused_with_413() -> None:
    flat = encode(np.zeros((1200, 1000), np.uint8), "PNG")  # a few kB, 1.2 million pixels
    with pytest.raises(InputTooLarge) as error:
        decode_image(flat, max_pixels=1_000_000)
    assert "1,200,000" in error.value.message


# -- detection -------------------------------------------------------------------------------
def test_two_faces_in_one_photo_give_two_boxes_largest_first() -> None:
    photo = photo_with_faces(SURPRISE, HAPPY)
    boxes = detect_faces(photo)
    assert len(boxes) == 2
    assert boxes[0].area >= boxes[1].area
    centres = sorted(b.x + b.w // 2 for b in boxes)
    assert centres[0] < 320 < centres[1]  # one face on each side of the photo


def test_a_photo_without_a_face_gives_no_boxes() -> None:
    rng = np.random.default_rng(3)
    scenery = np.tile(np.linspace(40, 220, 640, dtype=np.uint8), (480, 1))
    scenery[100:300, 150:450] = rng.integers(90, 110, (200, 300), dtype=np.uint8)
    assert detect_faces(scenery) == []


def test_a_face_in_a_large_photo_is_found_at_original_coordinates() -> None:
    import cv2

    big = cv2.resize(photo_with_faces(HAPPY), (1920, 1440), interpolation=cv2.INTER_LINEAR)
    boxes = detect_faces(big)
    assert len(boxes) == 1
    box = boxes[0]
    assert 60 * 3 - 60 < box.x < 60 * 3 + 60  # the face was placed at x=60 in the 640 px photo
    assert box.w > 300


def _filling(face_png: Path, width: int, height: int) -> np.ndarray:
    """The 48x48 face enlarged to fill a whole frame, as a close webcam or a selfie shows it."""
    import cv2

    face = np.asarray(Image.open(face_png).convert("L"))
    return cv2.resize(face, (width, height), interpolation=cv2.INTER_CUBIC)


def test_a_face_filling_a_640x480_frame_is_found_by_the_padded_pass() -> None:
    from preprocessing import image

    frame = _filling(SURPRISE, 640, 480)
    assert image._detect_at(frame, image.DETECT_SIDE) == []  # no room for the search window
    boxes = detect_faces(frame)
    assert len(boxes) == 1
    box = boxes[0]
    assert box.x >= 0 and box.y >= 0 and box.x + box.w <= 640 and box.y + box.h <= 480
    assert box.w > 300  # the face, not a small patch of it


def test_a_tight_face_crop_is_found() -> None:
    for face in (HAPPY, SURPRISE):
        assert len(detect_faces(_filling(face, 240, 240))) == 1


# -- cropping --------------------------------------------------------------------------------
def test_crop_face_gives_a_normalised_48x48_float32_face() -> None:
    crop = crop_face(photo_with_faces(HAPPY), FaceBox(60, 160, 160, 160))
    assert crop.shape == (FACE_SIZE, FACE_SIZE)
    assert crop.dtype == np.float32
    assert -1.0 <= crop.min() < crop.max() <= 1.0


def test_a_box_at_the_edge_of_the_photo_is_still_cropped_square() -> None:
    crop = crop_face(np.full((100, 100), 128, np.uint8), FaceBox(0, 0, 90, 90))
    assert crop.shape == (FACE_SIZE, FACE_SIZE)


def test_serving_normalisation_is_exactly_the_training_normalisation() -> None:
    from model_training.datasets import normalise

    faces = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    np.testing.assert_array_equal(normalise(faces)[..., 0], normalise_face(faces))
    np.testing.assert_array_equal(whole_image_face(faces[0]), normalise_face(faces[0]))
