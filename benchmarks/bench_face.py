"""Latency of the face pipeline on one 640x480 photo: decode + detect + crop + classify.

    python -m benchmarks.bench_face [--repeats 50]

The photo is built from a FER2013 test face in tests/fixtures/face/, enlarged to a face the
size a webcam frame shows and placed on a lightly textured background, then JPEG-encoded,
so the timing covers what ``POST /api/predict/image`` does with a real upload. Besides wall
time it reports the process's CPU time, which stays meaningful when other processes compete for the CPU,
the stages, and the previous pipeline (Haar detection alone) timed in the same run, so the ratio
travels between machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
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


def _median_ms(work: Any, repeats: int) -> float:
    for _ in range(3):
        work()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append((time.perf_counter() - started) * 1000.0)
    return round(float(np.median(timings)), 2)


def run(repeats: int = 50) -> dict[str, Any]:
    """Median/p90 milliseconds of decode + detect + classify of one 640x480 photo, after warm-up,
    and, in the same run, the stages and the previous detector (Haar alone) for a ratio."""
    from inference.face import FaceRecognizer
    from preprocessing.image import crop_face, decode_image, detect_faces

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

    gray = decode_image(photo, max_pixels=40_000_000)
    (box,) = detect_faces(gray, recognizer.detector)[:1]
    face = crop_face(gray, box)[None]

    def previous_pipeline() -> None:  # what the service ran before the CNN detector: Haar alone
        grey = decode_image(photo, max_pixels=40_000_000)
        recognizer.predict_proba(np.stack([crop_face(grey, b) for b in detect_faces(grey)]))

    stages = {
        "decode_ms": _median_ms(lambda: decode_image(photo, max_pixels=40_000_000), repeats),
        "detect_ms": _median_ms(lambda: detect_faces(gray, recognizer.detector), repeats),
        "detect_haar_alone_ms": _median_ms(lambda: detect_faces(gray), repeats),
        "crop_and_classify_ms": _median_ms(lambda: recognizer.predict_proba(crop_face(gray, box)[None]), repeats),
        "classify_ms": _median_ms(lambda: recognizer.predict_proba(face), repeats),
    }
    previous_ms = _median_ms(previous_pipeline, repeats)
    median = round(float(np.median(timings)), 2)
    return {
        "benchmark": "face: JPEG decode + BlazeFace detection + crop + ONNX Runtime inference, 640x480 photo",
        "repeats": repeats,
        "model": recognizer.model_name,
        "load_ms": round(load_ms, 1),
        "faces_found": len(prediction.details["faces"]),
        "median_ms": median,
        "p90_ms": round(float(np.percentile(timings, 90)), 2),
        # CPU time of this process: what the work costs when other programs compete for the cores.
        "cpu_median_ms": round(float(np.median(cpu_timings)), 2),
        "stages": stages,
        "previous_pipeline_haar_alone_ms": previous_ms,
        "ratio_to_previous_pipeline": round(median / previous_ms, 2),
        "ratio_to_decode": round(median / stages["decode_ms"], 1),
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    print(json.dumps(run(parser.parse_args().repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
