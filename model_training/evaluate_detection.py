"""Face detection recall on FER2013 PrivateTest faces shown the way users send them.

    python -m model_training.evaluate_detection [--limit 3589] [--json out.json]

Every 48x48 PrivateTest face (the test split: this measures, it tunes nothing) is turned into
the pictures the face endpoint meets, enlarged with bicubic interpolation:

- **tight**: the face fills the whole frame (a close webcam, a phone selfie, a crop someone
  made), at 240, 480 and 640 px;
- **in a webcam frame**: the face, at a third and at half of the frame's height, on a
  640x480 background of its own mean grey.

It reports the fraction found by ``preprocessing.image.detect_faces`` with and without the
padded pass (``PAD_FRACTION``), so the figure for each framing shows what the pass adds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from model_training.common import DEFAULT_DATA_ROOT

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


def recall(faces: np.ndarray) -> dict[str, dict[str, Any]]:
    from preprocessing import image

    found: dict[str, dict[str, int]] = {}
    for face in faces:
        for name, picture in framings(face).items():
            counts = found.setdefault(name, {"padded": 0, "unpadded": 0})
            direct = bool(image._detect_at(picture, image.DETECT_SIDE))
            if not direct and max(picture.shape) > image.DETECT_SIDE * 1.5:
                direct = bool(image._detect_at(picture, image.DETECT_SIDE_FINE))
            counts["unpadded"] += direct
            counts["padded"] += bool(image.detect_faces(picture))
    n = len(faces)
    return {
        name: {"n": n, "found": counts["padded"] / n, "found_without_padded_pass": counts["unpadded"] / n}
        for name, counts in found.items()
    }


def main(argv: list[str] | None = None) -> int:
    from model_training.datasets import load_fer_csv

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer-csv", type=Path, default=DEFAULT_DATA_ROOT / "face" / "fer2013.csv.gz")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "moodlens" / "face")
    parser.add_argument("--limit", type=int, default=0, help="only the first N PrivateTest faces (0: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    faces, _ = load_fer_csv(args.fer_csv, args.cache_dir)["PrivateTest"]
    if args.limit:
        faces = faces[: args.limit]
    figures = recall(faces)
    for name, row in figures.items():
        print(f"{name:>24}: {row['found']:.1%} found (without the padded pass {row['found_without_padded_pass']:.1%})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
