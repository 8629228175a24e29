"""Seconds of processing per second of video: decode + face frames + voice windows + fusion.

    python -m benchmarks.bench_video [--seconds 30] [--repeats 3]

The clip is a WebM (VP8 + Opus, 320x240, 10 fps) encoded from the fixture face photo and
speech recording, the format browsers' MediaRecorder sends. The figure is the median wall
time (and this process's CPU time) divided by the clip's length. As a reference measured in
the same run, the same work done as separate single predictions (one face photo per sampled
frame, one voice clip per window) is timed too; the ratio says what the video path costs on
top of its parts, whatever the machine. Every figure is printed with the date and machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def run(repeats: int = 3, seconds: float = 30.0) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT))
    from app import build_registry
    from errors import UnusableInput
    from inference.fusion import FusionEngine
    from inference.predictor import MultimodalEmotionPredictor
    from services.video import VideoSettings, _png, _wav, analyse_video, decode_video, windows
    from tests.clips import make_clip

    registry = build_registry(REPO_ROOT / "models")
    registry.load_all()
    predictor = MultimodalEmotionPredictor(registry, FusionEngine.from_models_dir(REPO_ROOT / "models"))
    settings = VideoSettings(max_seconds=max(60.0, seconds + 1), thumbnails=False)
    clip = make_clip(seconds, container="webm")
    analyse_video(predictor, make_clip(2.0, container="webm"), settings, strategy="calibrated")  # warm-up

    walls, cpus = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = analyse_video(predictor, clip, settings, strategy="calibrated")
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)

    # Reference: the same frames and windows as separate single predictions (no decoding counted).
    decoded = decode_video(clip, settings)
    photos = [_png(image) for _, image in decoded.frames]
    assert decoded.audio is not None
    clips = [_wav(decoded.audio[int(a * 16000) : int(b * 16000)]) for a, b in windows(decoded.duration, 2.0, 1.0)]
    face, speech = registry.get("face"), registry.get("speech")
    reference = []
    for _ in range(repeats):
        started = time.perf_counter()
        for photo in photos:
            face.predict(photo)
        for wav in clips:
            with contextlib.suppress(UnusableInput):  # a window without a voice, as the video path marks it
                speech.predict(wav)
        reference.append(time.perf_counter() - started)

    wall, cpu, parts = float(np.median(walls)), float(np.median(cpus)), float(np.median(reference))
    return {
        "benchmark": f"video: {seconds:g} s WebM (VP8 + Opus, 320x240) -> face at 2 fps, voice 2 s / 1 s, fused",
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}",
        "repeats": repeats,
        "clip_seconds": seconds,
        "frames": result["counts"]["frames_sampled"],
        "windows": result["counts"]["windows"],
        "median_ms": round(wall * 1000, 1),
        "p90_ms": round(float(np.percentile(walls, 90)) * 1000, 1),
        "seconds_per_video_second": round(wall / seconds, 4),
        "cpu_seconds_per_video_second": round(cpu / seconds, 4),
        "reference_single_predictions_ms": round(parts * 1000, 1),
        "ratio_to_single_predictions": round(wall / parts, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(json.dumps(run(args.repeats, args.seconds), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
