"""Latency of one voice prediction: decode + features + inference of a 4 s recording.

    python -m benchmarks.bench_speech [--repeats 20]

The clip is 4 s of continuous speech built from the RAVDESS test fixture (its trimmed speech
repeated), so the silence trimmer cannot shorten the work. It is timed as the 16 kHz FLAC the
corpus ships and, when ffmpeg is installed, as the 48 kHz WebM/Opus a browser uploads.
The model is loaded and warmed up before timing, as a web worker would be. The stages (decode;
MFCC and encoder features; the graphs) are timed too, and the total is printed as a ratio to the
decode, measured in the same run, with the date and machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "speech" / "03-01-05-02-02-02-24.flac"
CLIP_SECONDS = 4.0


def four_second_clip() -> tuple[bytes, bytes | None]:
    """(16 kHz FLAC bytes, 48 kHz WebM/Opus bytes or ``None`` without ffmpeg) of 4 s of speech."""
    from preprocessing.audio import decode_audio

    decoded = decode_audio(FIXTURE.read_bytes())
    samples = int(CLIP_SECONDS * decoded.rate)
    speech = np.tile(decoded.signal, int(np.ceil(samples / len(decoded.signal))))[:samples]
    buffer = io.BytesIO()
    sf.write(buffer, speech * 0.5, decoded.rate, format="FLAC", subtype="PCM_16")
    flac = buffer.getvalue()
    webm = None
    if shutil.which("ffmpeg"):
        command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0"]
        command += ["-ar", "48000", "-c:a", "libopus", "-b:a", "48k", "-f", "webm", "pipe:1"]
        webm = subprocess.run(command, input=flac, capture_output=True, check=True, timeout=60).stdout
    return flac, webm


def _time(recognizer: Any, data: bytes, repeats: int) -> dict[str, float]:
    for _ in range(3):  # warm-up: graph tracing, librosa's first calls, caches
        recognizer.predict(data)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        recognizer.predict(data)
        timings.append((time.perf_counter() - started) * 1000.0)
    return {
        "median_ms": round(float(np.median(timings)), 2),
        "p90_ms": round(float(np.percentile(timings, 90)), 2),
        "min_ms": round(float(np.min(timings)), 2),
    }


def run(repeats: int = 20) -> dict[str, Any]:
    """Median/p90 milliseconds of decode + features + inference of a 4 s clip, after warm-up."""
    from inference.speech import SpeechRecognizer

    recognizer = SpeechRecognizer(REPO_ROOT / "models" / "speech")
    load_started = time.perf_counter()
    recognizer.load()
    load_ms = (time.perf_counter() - load_started) * 1000.0
    flac, webm = four_second_clip()
    result: dict[str, Any] = {
        "benchmark": "speech: decode + MFCC features + inference, 4 s clip",
        "repeats": repeats,
        "model": recognizer.model_name,
        "load_ms": round(load_ms, 1),
        "flac_16khz": _time(recognizer, flac, repeats),
    }
    result.update(result["flac_16khz"])
    if webm is not None:
        result["webm_opus_48khz"] = _time(recognizer, webm, repeats)
    result["parts_ms"] = _parts(recognizer, flac, repeats)
    # The decoder does the same work on any voice model: the ratio to it travels between machines.
    result["ratio_to_decode"] = round(result["median_ms"] / result["parts_ms"]["decode"], 2)
    result["date"] = dt.date.today().isoformat()
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"
    return result


def _parts(recognizer: Any, data: bytes, repeats: int) -> dict[str, float]:
    """Median ms of each stage of one prediction: decode, features (MFCC and encoder), the graphs."""
    from preprocessing.audio import decode_audio

    stages: dict[str, list[float]] = {"decode": [], "features": [], "graphs": []}
    for _ in range(repeats):
        started = time.perf_counter()
        decoded = decode_audio(data)
        decoded_at = time.perf_counter()
        features = recognizer.features(decoded)
        featurised_at = time.perf_counter()
        recognizer.predict_parts([features])
        done = time.perf_counter()
        stages["decode"].append((decoded_at - started) * 1000)
        stages["features"].append((featurised_at - decoded_at) * 1000)
        stages["graphs"].append((done - featurised_at) * 1000)
    return {name: round(float(np.median(values)), 2) for name, values in stages.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    print(json.dumps(run(parser.parse_args().repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
