"""Face recogniser: photo bytes -> every face's box and 7 emotion probabilities.

Serves the TFLite conversion written by ``model_training.train_face`` (about 1 ms per face
on a 2-core CPU, against ~50 ms for an eager Keras call). All faces of a photo go through
the network in one batch; the prediction's probabilities are the largest face's.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, ClassVar

import numpy as np

from inference.base import CARD_FILE, Recognizer
from inference.errors import InvalidInput, ModelUnavailable, UnusableInput
from inference.labels import EMOTIONS, NUM_EMOTIONS
from preprocessing.image import FACE_SIZE, crop_face, decode_image, detect_faces, whole_image_face

MODEL_FILE = "face_model.tflite"
#: Faces classified per photo at most (largest first), so a crowd photo cannot stall a worker.
MAX_FACES = 20
#: Rows per interpreter call in predict_proba (keeps tensor reallocation rare).
CHUNK = 64


class FaceRecognizer(Recognizer):
    """MiniXception facial-expression classifier behind OpenCV Haar face detection."""

    modality: ClassVar[str] = "face"
    required_files: ClassVar[tuple[str, ...]] = (MODEL_FILE, CARD_FILE)

    def __init__(self, model_dir: Any, *, threads: int = 1) -> None:
        super().__init__(model_dir)
        self._threads = threads
        self._interpreter: Any = None
        self._input_index = 0
        self._output_index = 0
        self._batch = 0
        self._invoke_lock = threading.Lock()

    def _load(self) -> None:
        size = int(self.card.get("input", {}).get("size", FACE_SIZE))
        if size != FACE_SIZE:
            raise ModelUnavailable(f"The face model expects {size}x{size} inputs; this code crops {FACE_SIZE}.")
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to LiteRT; it still works
            warnings.simplefilter("ignore", UserWarning)
            interpreter = tf.lite.Interpreter(model_path=str(self.model_dir / MODEL_FILE), num_threads=self._threads)
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1 or int(outputs[0]["shape"][-1]) != NUM_EMOTIONS:
            raise ModelUnavailable("The face model file does not have one input and a 7-way output.")
        self._input_index = inputs[0]["index"]
        self._output_index = outputs[0]["index"]
        self._interpreter = interpreter
        self._resize(1)

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input_index, [batch, FACE_SIZE, FACE_SIZE, 1])
            self._interpreter.allocate_tensors()
            self._batch = batch

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """(n, 48, 48) or (n, 48, 48, 1) normalised float32 faces -> (n, 7) probabilities."""
        self.load()
        faces = np.asarray(batch, dtype=np.float32)
        if faces.ndim == 3:
            faces = faces[..., None]
        if faces.ndim != 4 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE, 1):
            raise ValueError(f"expected faces of shape (n, {FACE_SIZE}, {FACE_SIZE}[, 1]), got {faces.shape}")
        results = []
        with self._invoke_lock:  # one interpreter per process; invoke is not re-entrant
            for start in range(0, len(faces), CHUNK):
                chunk = np.ascontiguousarray(faces[start : start + CHUNK])
                self._resize(len(chunk))
                self._interpreter.set_tensor(self._input_index, chunk)
                self._interpreter.invoke()
                results.append(np.array(self._interpreter.get_tensor(self._output_index), dtype=np.float64))
        if not results:
            return np.zeros((0, NUM_EMOTIONS))
        return np.concatenate(results, axis=0)

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
            found = detect_faces(gray)
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
