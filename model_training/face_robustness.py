"""Face model robustness: FER2013 accuracy when its faces arrive the way users' photos do.

    python -m model_training.face_robustness                         # PublicTest (for tuning)
    python -m model_training.face_robustness --split PrivateTest     # the card's final figures
    python -m model_training.face_robustness --model-dir /tmp/face-candidate --json out.json

FER2013 faces are clean, loosely framed 48x48 crops; a webcam or phone photo is enlarged,
JPEG-compressed, lit differently, a little blurred, and framed by a detector. Each condition
below changes the 48x48 face in one of those ways, then sends it through the service's own
preprocessing (``preprocessing.image``: ``decode_image`` for encoded pictures and
``whole_image_face``'s interpolation back to 48x48) and the served ONNX graph
(``inference.face.FaceRecognizer.predict_proba``), so the figure is what the product does.
The drop is accuracy points below the clean faces of the same split.

Use PublicTest to choose training augmentation; PrivateTest only for the card.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from model_training.common import DEFAULT_DATA_ROOT, DEFAULT_MODELS_DIR

#: Side of the enlarged copy: a face in a webcam frame or a tight phone crop is this size or more.
WEBCAM_SIDE = 224

Perturbation = Callable[[np.ndarray], np.ndarray]


def _enlarged(face: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(face, (WEBCAM_SIDE, WEBCAM_SIDE), interpolation=cv2.INTER_CUBIC)


def _reframed(fraction: float) -> Perturbation:
    """Crop ``fraction`` of the side off every edge (> 0: tighter) or add it (< 0: looser,
    filled by replicating the border, as ``crop_face`` does at a frame's edge)."""
    import cv2

    def reframe(face: np.ndarray) -> np.ndarray:
        big = _enlarged(face)
        cut = round(abs(fraction) * WEBCAM_SIDE)
        if fraction > 0:
            return big[cut:-cut, cut:-cut]
        return cv2.copyMakeBorder(big, cut, cut, cut, cut, cv2.BORDER_REPLICATE)

    return reframe


def _through_decoder(fmt: str, **options: Any) -> Perturbation:
    """The enlarged face saved as an RGB ``fmt`` file and read back by the service's decoder
    (its compression and its RGB -> grey conversion)."""
    from PIL import Image

    def encode_decode(face: np.ndarray) -> np.ndarray:
        from preprocessing.image import decode_image

        buffer = io.BytesIO()
        Image.fromarray(_enlarged(face)).convert("RGB").save(buffer, format=fmt, **options)
        return decode_image(buffer.getvalue(), max_pixels=10**7)

    return encode_decode


def _levels(gain: float, offset: float) -> Perturbation:
    def adjust(face: np.ndarray) -> np.ndarray:
        mean = face.mean()
        return np.clip((face.astype(np.float32) - mean) * gain + mean + offset, 0, 255).astype(np.uint8)

    return adjust


def _blur(sigma: float) -> Perturbation:
    import cv2

    return lambda face: cv2.GaussianBlur(face, (0, 0), sigma)


def _low_resolution(side: int) -> Perturbation:
    """A face only ``side`` pixels tall in the photo (the service enlarges it back to 48)."""
    import cv2

    return lambda face: cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)


#: Condition name -> what it does to a uint8 48x48 face (the result goes through whole_image_face).
CONDITIONS: dict[str, Perturbation] = {
    "clean": lambda face: face,
    "enlarged to 224 px (service interpolation back)": _enlarged,
    "RGB photo through the service decoder": _through_decoder("PNG"),
    "tighter crop (10 % off each side)": _reframed(0.10),
    "tighter crop (5 % off each side)": _reframed(0.05),
    "looser crop (10 % added each side)": _reframed(-0.10),
    "looser crop (20 % added each side)": _reframed(-0.20),
    "JPEG quality 50": _through_decoder("JPEG", quality=50),
    "JPEG quality 30": _through_decoder("JPEG", quality=30),
    "brighter (+40 levels)": _levels(1.0, 40.0),
    "darker (-40 levels)": _levels(1.0, -40.0),
    "low contrast (x0.6)": _levels(0.6, 0.0),
    "high contrast (x1.5)": _levels(1.5, 0.0),
    "blur (sigma 1 px at 48 px)": _blur(1.0),
    "low resolution (24 px face)": _low_resolution(24),
}


def measure(recognizer: Any, faces: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Accuracy and drop (points below clean) for every condition."""
    from preprocessing.image import whole_image_face

    figures: dict[str, dict[str, float]] = {}
    for name, perturb in CONDITIONS.items():
        inputs = np.stack([whole_image_face(perturb(face)) for face in faces])
        accuracy = float((recognizer.predict_proba(inputs).argmax(axis=1) == labels).mean())
        figures[name] = {"accuracy": accuracy}
    clean = figures["clean"]["accuracy"]
    for row in figures.values():
        row["drop_points"] = round((clean - row["accuracy"]) * 100.0, 2)
    return figures


def markdown_table(figures: dict[str, dict[str, float]], split: str, n: int) -> str:
    lines = [f"| condition ({split}, n = {n}) | accuracy | drop (points) |", "|---|---:|---:|"]
    lines += [f"| {name} | {row['accuracy']:.4f} | {row['drop_points']:+.2f} |" for name, row in figures.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from inference.face import FaceRecognizer
    from model_training.datasets import load_fer_csv

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer-csv", type=Path, default=DEFAULT_DATA_ROOT / "face" / "fer2013.csv.gz")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "moodlens" / "face")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODELS_DIR / "face")
    parser.add_argument("--split", choices=("PublicTest", "PrivateTest"), default="PublicTest")
    parser.add_argument("--limit", type=int, default=0, help="only the first N faces of the split (0: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--card",
        action="store_true",
        help="write the table into the model's card.json and MODEL_CARD.md (use with --split PrivateTest)",
    )
    args = parser.parse_args(argv)
    faces, labels = load_fer_csv(args.fer_csv, args.cache_dir)[args.split]
    if args.limit:
        faces, labels = faces[: args.limit], labels[: args.limit]
    recognizer = FaceRecognizer(args.model_dir, detector_dir=DEFAULT_MODELS_DIR / "face_detector")  # not used here
    recognizer.load()
    figures = measure(recognizer, faces, labels)
    print(markdown_table(figures, args.split, len(labels)))
    worst = max((row["drop_points"], name) for name, row in figures.items())
    print(f"largest drop: {worst[0]:.2f} points ({worst[1]})")
    payload: dict[str, Any] = {"split": args.split, "n": len(labels), "conditions": figures}
    if args.json:
        args.json.write_text(json.dumps({**payload, "model_dir": str(args.model_dir)}, indent=2))
    if args.card:
        write_to_card(args.model_dir, payload, markdown_table(figures, args.split, len(labels)))
    return 0


def write_to_card(model_dir: Path, payload: dict[str, Any], table: str) -> None:
    """The suite's figures as the card's ``robustness`` field and a section of MODEL_CARD.md
    (replacing an earlier one)."""
    import datetime as dt

    card_file = model_dir / "card.json"
    card = json.loads(card_file.read_text(encoding="utf-8"))
    card["robustness"] = {**payload, "measured_on": dt.date.today().isoformat(), "script": __name__}
    card_file.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    markdown = model_dir / "MODEL_CARD.md"
    text = markdown.read_text(encoding="utf-8") if markdown.is_file() else ""
    heading = "## Robustness (camera conditions)"
    if heading in text:
        start = text.index(heading)
        following = text.find("\n## ", start + len(heading))
        text = text[:start].rstrip("\n") + ("\n\n" + text[following + 1 :] if following != -1 else "")
    worst = max(payload["conditions"].items(), key=lambda item: item[1]["drop_points"])
    section = [
        heading,
        "",
        f"`python -m model_training.face_robustness --split {payload['split']}` "
        f"({card['robustness']['measured_on']}): each FER2013 face changed as a user's photo changes it, then "
        "the service's own decoding, 48x48 resizing and served graph. Largest drop: "
        f"{worst[1]['drop_points']:.1f} points ({worst[0]}).",
        "",
        table,
        "",
    ]
    markdown.write_text(text.rstrip("\n") + "\n\n" + "\n".join(section), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
