"""Face recogniser: photo bytes -> every face's box and 7 emotion probabilities.

Serves the ONNX graph written by ``model_training.export`` at the end of training (the
flip-averaged MiniXception, run by ONNX Runtime; no TensorFlow in the serving process). Faces
are found by the BlazeFace CNN of ``models/face_detector`` and, for what it misses, OpenCV's
Haar cascade. All faces of a photo go through the network in one batch; the prediction's
probabilities are the largest face's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from errors import InvalidInput, ModelUnavailable, UnusableInput
from inference.base import CARD_FILE, Recognizer
from inference.labels import EMOTIONS, NUM_EMOTIONS
from inference.onnx_session import open_session
from preprocessing.face_detection import BlazeFaceDetector
from preprocessing.image import FACE_SIZE, crop_face, decode_image, detect_faces, warm_up, whole_image_face

MODEL_FILE = "face_model.onnx"
#: Faces classified per photo at most (largest first), so a crowd photo cannot stall a worker.
MAX_FACES = 20
#: Rows per session call in predict_proba (bounds the activation memory of one call).
CHUNK = 256


class FaceRecognizer(Recognizer):
    """MiniXception facial-expression classifier behind BlazeFace (then Haar) face detection."""

    modality: ClassVar[str] = "face"
    required_files: ClassVar[tuple[str, ...]] = (MODEL_FILE, CARD_FILE)

    def __init__(self, model_dir: Any, *, threads: int = 1, detector_dir: Any = None) -> None:
        super().__init__(model_dir)
        self._threads = threads
        self._session: Any = None
        self._input_name = ""
        #: The face detector's folder: ``models/face_detector`` beside the face model by default.
        self.detector = BlazeFaceDetector(detector_dir or self.model_dir.parent / "face_detector", threads=threads)

    def missing_files(self) -> list[str]:
        """The face model's files, and the face detector's beside them."""
        missing = super().missing_files()
        if not self.detector.available:
            missing.append(f"the face detector in {self.detector.model_dir.name}/")
        return missing

    def _load(self) -> None:
        size = int(self.card.get("input", {}).get("size", FACE_SIZE))
        if size != FACE_SIZE:
            raise ModelUnavailable(f"The face model expects {size}x{size} inputs; this code crops {FACE_SIZE}.")
        session = open_session(self.model_dir / MODEL_FILE, threads=self._threads)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or outputs[0].shape[-1] != NUM_EMOTIONS:
            raise ModelUnavailable("The face model file does not have one input and a 7-way output.")
        self._input_name = inputs[0].name
        self._session = session
        session.run(None, {self._input_name: np.zeros((1, FACE_SIZE, FACE_SIZE, 1), np.float32)})  # allocates once
        self.detector.load()  # ModelUnavailable (503) when models/face_detector is missing, like any model
        warm_up()  # OpenCV and the face detector, so the first photo costs what later ones do

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """(n, 48, 48) or (n, 48, 48, 1) normalised float32 faces -> (n, 7) probabilities."""
        self.load()
        faces = np.asarray(batch, dtype=np.float32)
        if faces.ndim == 3:
            faces = faces[..., None]
        if faces.ndim != 4 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE, 1):
            raise ValueError(f"expected faces of shape (n, {FACE_SIZE}, {FACE_SIZE}[, 1]), got {faces.shape}")
        if not len(faces):
            return np.zeros((0, NUM_EMOTIONS))
        results = [
            self._session.run(None, {self._input_name: np.ascontiguousarray(faces[start : start + CHUNK])})[0]
            for start in range(0, len(faces), CHUNK)
        ]  # an ONNX Runtime session may be run from several threads at once
        return np.concatenate(results, axis=0).astype(np.float64)

    def _predict(
        self, raw: Any, *, pre_cropped: bool = False, max_pixels: int = 40_000_000, **_: Any
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise InvalidInput("The face recogniser takes the bytes of an image file.")
        gray = decode_image(bytes(raw), max_pixels=max_pixels)
        height, width = gray.shape
        if pre_cropped:
            boxes = [[0, 0, width, height]]
            faces = whole_image_face(gray)[None]
            detected = 1
        else:
            found = detect_faces(gray, self.detector)
            if not found:
                raise UnusableInput(
                    "No face was detected in the image. Use a well-lit photo of a face looking at the camera.",
                    code="no_face_detected",
                )
            detected = len(found)
            found = found[:MAX_FACES]
            boxes = [box.as_list() for box in found]
            faces = np.stack([crop_face(gray, box) for box in found])
        probabilities = self.predict_proba(faces)
        described = []
        for box, raw_row in zip(boxes, probabilities, strict=True):
            row = raw_row / raw_row.sum()
            best = int(np.argmax(row))
            described.append(
                {
                    "box": [int(v) for v in box],
                    "emotion": EMOTIONS[best],
                    "confidence": float(row[best]),
                    "probabilities": {e: float(p) for e, p in zip(EMOTIONS, row, strict=True)},
                }
            )
        details: dict[str, Any] = {
            "faces": described,
            "faces_detected": detected,
            "image": {"width": int(width), "height": int(height)},
            "pre_cropped": pre_cropped,
        }
        return probabilities[0], details
