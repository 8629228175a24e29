"""Face detection recall on FER2013 PrivateTest faces shown the way users send them.

    python -m model_training.evaluate_detection [--limit 3589] [--json out.json]

Every 48x48 PrivateTest face (the test split: this measures, it tunes nothing) is turned into
the pictures the face endpoint meets, enlarged with bicubic interpolation:

- **tight**: the face fills the whole frame (a close webcam, a phone selfie, a crop someone
  made), at 240, 480 and 640 px;
- **in a webcam frame**: the face, at a third and at half of the frame's height, on a
  640x480 background of its own mean grey.

It reports, for each framing, the fraction found by what the service runs
(``preprocessing.image.detect_faces`` with the BlazeFace detector of ``models/face_detector``:
the CNN, the CNN on a padded copy, then the Haar passes), by BlazeFace alone on the picture as
it is, and by the Haar passes alone (the detector before the CNN was added).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from model_training.common import DEFAULT_DATA_ROOT, DEFAULT_MODELS_DIR

TIGHT_SIDES = (240, 480, 640)
FRAME = (480, 640)
FRAME_FRACTIONS = (1 / 3, 1 / 2)


def framings(face: np.ndarray) -> dict[str, np.ndarray]:
    """The test pictures of one 48x48 face, by name."""
    import cv2

    pictures = {
        f"tight {side} px": cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC) for side in TIGHT_SIDES
    }
    for fraction in FRAME_FRACTIONS:
        side = round(FRAME[0] * fraction)
        canvas = np.full(FRAME, int(face.mean()), dtype=np.uint8)
        y, x = (FRAME[0] - side) // 2, (FRAME[1] - side) // 2
        canvas[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        pictures[f"{side} px face in 640x480"] = canvas
    return pictures


def recall(faces: np.ndarray, detector: Any) -> dict[str, Any]:
    """Fraction of ``faces`` found in each framing: served pipeline, CNN alone, Haar alone."""
    from preprocessing import image

    counts: dict[str, dict[str, int]] = {}
    for face in faces:
        for name, picture in framings(face).items():
            row = counts.setdefault(name, {"served": 0, "cnn": 0, "haar": 0})
            row["served"] += bool(image.detect_faces(picture, detector))
            row["cnn"] += bool(detector.detect(picture))
            row["haar"] += bool(image.detect_faces(picture))
    n = len(faces)
    return {"n": n, "framings": {name: {k: v / n for k, v in row.items()} for name, row in counts.items()}}


def main(argv: list[str] | None = None) -> int:
    from model_training.datasets import load_fer_csv
    from preprocessing.face_detection import BlazeFaceDetector

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer-csv", type=Path, default=DEFAULT_DATA_ROOT / "face" / "fer2013.csv.gz")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "moodlens" / "face")
    parser.add_argument("--detector-dir", type=Path, default=DEFAULT_MODELS_DIR / "face_detector")
    parser.add_argument("--limit", type=int, default=0, help="only the first N PrivateTest faces (0: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    faces, _ = load_fer_csv(args.fer_csv, args.cache_dir)["PrivateTest"]
    if args.limit:
        faces = faces[: args.limit]
    detector = BlazeFaceDetector(args.detector_dir)
    detector.load()
    figures = recall(faces, detector)
    for name, row in figures["framings"].items():
        print(f"{name:>24}: served {row['served']:.1%}, BlazeFace alone {row['cnn']:.1%}, Haar alone {row['haar']:.1%}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
