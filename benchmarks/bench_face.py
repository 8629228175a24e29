"""Latency of the face pipeline on one 640x480 photo: decode + detect + crop + classify.

    python -m benchmarks.bench_face [--repeats 50]

The photo is built from a FER2013 test face in tests/fixtures/face/, enlarged to a face the
size a webcam frame shows and placed on a lightly textured background, then JPEG-encoded,
so the timing covers what ``POST /api/predict/image`` does with a real upload. Besides wall
time it reports the process's CPU time, which stays meaningful when other processes compete for the CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "face" / "fer2013_privatetest_32318_happy.png"


def webcam_like_photo(face_png: Path = FIXTURE, face_side: int = 180) -> bytes:
    """A 640x480 colour JPEG with one face of ``face_side`` pixels slightly left of centre."""
    import cv2
    from PIL import Image

    face = np.asarray(Image.open(face_png).convert("L"))
    rng = np.random.default_rng(7)
    canvas = (rng.normal(170, 12, (480, 640)).clip(0, 255)).astype(np.uint8)
    canvas = cv2.GaussianBlur(canvas, (9, 9), 0)
    big = cv2.resize(face, (face_side, face_side), interpolation=cv2.INTER_CUBIC)
    y, x = (480 - face_side) // 2, 200
    canvas[y : y + face_side, x : x + face_side] = big
    rgb = np.stack([canvas, canvas, np.clip(canvas.astype(int) + 10, 0, 255).astype(np.uint8)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def run(repeats: int = 50) -> dict[str, Any]:
    """Median/p90 milliseconds of decode + detect + classify of one 640x480 photo, after warm-up."""
    from inference.face import FaceRecognizer

    recognizer = FaceRecognizer(REPO_ROOT / "models" / "face")
    load_started = time.perf_counter()
    recognizer.load()
    load_ms = (time.perf_counter() - load_started) * 1000.0
    photo = webcam_like_photo()
    for _ in range(5):
        recognizer.predict(photo)
    timings, cpu_timings = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        prediction = recognizer.predict(photo)
        timings.append((time.perf_counter() - started) * 1000.0)
        cpu_timings.append((time.process_time() - cpu_started) * 1000.0)
    return {
        "benchmark": "face: JPEG decode + Haar detection + crop + ONNX Runtime inference, 640x480 photo",
        "repeats": repeats,
        "model": recognizer.model_name,
        "load_ms": round(load_ms, 1),
        "faces_found": len(prediction.details["faces"]),
        "median_ms": round(float(np.median(timings)), 2),
        "p90_ms": round(float(np.percentile(timings, 90)), 2),
        # CPU time of this process: what the work costs when other programs compete for the cores.
        "cpu_median_ms": round(float(np.median(cpu_timings)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    print(json.dumps(run(parser.parse_args().repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
