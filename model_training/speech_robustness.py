"""How the voice-model candidates hold up on recordings like users make: actors 21-24, degraded.

    python -m model_training.speech_robustness [--work-dir DIR] [--conditions clean,telephone,...]

Run after ``model_training.speech_ensemble`` (it needs the fold networks, their
``feature_stats.json`` and the encoder probe's out-of-fold file in the work folder). Every
test clip is degraded the way a browser, a phone or a room would (telephone band, Opus and MP3
at low bit rates, background noise at 20 and 10 dB SNR, room reverberation, a quiet level),
turned into the bytes an upload would carry, and decoded by the web application's own decoder,
then scored by the mean of the fold networks, the Whisper-base encoder probe and the pair.
The noise and the room are seeded, so a re-run gives the same table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_training.common import DEFAULT_DATA_ROOT
from model_training.datasets import list_clips
from model_training.speech_folds import TEST_ACTORS

RATE = 16000


def telephone(signal: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
    """300-3400 Hz band at 8 kHz sampling, back up to 16 kHz (what a phone line leaves)."""
    from scipy.signal import butter, resample_poly, sosfilt

    narrow = resample_poly(signal, 1, 2)
    band = sosfilt(butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos"), narrow)
    return resample_poly(band, 2, 1).astype(np.float32)


def with_noise(snr_db: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """Brown-ish background noise (white noise, low-passed) at ``snr_db`` below the speech power."""

    def add(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.signal import butter, sosfilt

        noise = sosfilt(butter(2, 1000, fs=RATE, output="sos"), rng.standard_normal(len(signal)))
        speech_power = float(np.mean(signal**2)) or 1e-12
        noise *= np.sqrt(speech_power / (float(np.mean(noise**2)) * 10 ** (snr_db / 10)))
        return (signal + noise).astype(np.float32)

    return add


def reverberant(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small room: an exponentially decaying noise impulse response, RT60 about 0.4 s."""
    from scipy.signal import fftconvolve

    t = np.arange(int(0.4 * RATE)) / RATE
    response = rng.standard_normal(len(t)) * np.exp(-6.9 * t / 0.4)
    response[0] = 1.0
    wet = fftconvolve(signal, response / np.sqrt(np.sum(response**2)))[: len(signal)]
    return wet.astype(np.float32)


def quiet(signal: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
    """30 dB quieter (a distant microphone; the decoder normalises the level back)."""
    return (signal * 10 ** (-30 / 20)).astype(np.float32)


def compressed(codec: str, bitrate: str) -> Callable[[np.ndarray], bytes]:
    """Encode with ffmpeg as a browser or phone would: Opus in Ogg, or MP3."""
    container, encoder = {"opus": ("ogg", "libopus"), "mp3": ("mp3", "libmp3lame")}[codec]

    def encode(signal: np.ndarray) -> bytes:
        command = ["ffmpeg", "-loglevel", "error", "-f", "wav", "-i", "pipe:0"]
        command += ["-c:a", encoder, "-b:a", bitrate, "-f", container, "pipe:1"]
        return subprocess.run(command, input=wav_bytes(signal), capture_output=True, check=True).stdout

    return encode


def wav_bytes(signal: np.ndarray) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(signal, -1, 1), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


#: condition -> (signal degradation, encoding of the upload)
CONDITIONS: dict[str, tuple[Callable | None, Callable[[np.ndarray], bytes]]] = {
    "clean": (None, wav_bytes),
    "telephone": (telephone, wav_bytes),
    "opus_24k": (None, compressed("opus", "24k")),
    "mp3_32k": (None, compressed("mp3", "32k")),
    "noise_20db": (with_noise(20), wav_bytes),
    "noise_10db": (with_noise(10), wav_bytes),
    "reverb": (reverberant, wav_bytes),
    "quiet_30db": (quiet, wav_bytes),
}


def degraded_upload(signal: np.ndarray, condition: str, seed: int) -> bytes:
    """The bytes a user would upload of ``signal`` recorded under ``condition``."""
    transform, encode = CONDITIONS[condition]
    if transform is not None:
        signal = transform(signal, np.random.default_rng(seed))
    return encode(signal)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT / "speech" / "ravdess")
    parser.add_argument("--speaker-regex", default=r"-(\d+)\.[A-Za-z0-9]+$")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "moodlens-speech-folds"
    )
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is needed for the compressed conditions", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import soundfile
    import tensorflow as tf

    from errors import EmotionAppError
    from model_training import speech_encoder_probe, train_speech
    from model_training.common import classification_metrics, limit_tensorflow_threads
    from model_training.speech_layers import CUSTOM_OBJECTS
    from preprocessing.audio import FeatureStats, decode_audio, mfcc_features, standardise

    limit_tensorflow_threads(tf, 2)
    folds = json.loads((args.work_dir / "folds.json").read_text())
    members = []
    for number in range(1, len(folds) + 1):
        fold_dir = args.work_dir / f"fold-{number}"
        stats = FeatureStats.from_json(fold_dir / train_speech.STATS_FILE)
        model = keras.models.load_model(
            fold_dir / train_speech.KERAS_FILE, custom_objects=CUSTOM_OBJECTS, compile=False
        )
        members.append((stats, model))

    clips = list_clips(args.data_root, None, "filename", args.speaker_regex)
    train_clips = [c for c in clips if c.speaker not in TEST_ACTORS]
    test_clips = [c for c in clips if c.speaker in TEST_ACTORS]
    probe_oof = np.load(args.work_dir / "encoder_probe_oof.npz")
    pooling = str(probe_oof["pooling"])
    cache = speech_encoder_probe.parse_args([]).cache_dir
    x_train, _ = speech_encoder_probe.embed_clips(train_clips, cache, 1)
    probe = speech_encoder_probe.fit_probe(
        speech_encoder_probe.pool_columns(x_train, pooling),
        np.array([c.label for c in train_clips]),
        float(probe_oof["regulariser"]),
    )
    from inference.speech_encoder import WhisperEncoder

    encoder = WhisperEncoder(threads=1)

    table: dict[str, dict] = {}
    for condition in [c for c in args.conditions.split(",") if c]:
        kept, features, pooled = [], [], []
        refused = 0
        for index, clip in enumerate(test_clips):
            signal, rate = soundfile.read(clip.path, dtype="float32")
            if rate != RATE:
                raise SystemExit(f"{clip.path} is at {rate} Hz; the corpus copy here is at {RATE} Hz")
            try:
                decoded = decode_audio(degraded_upload(signal, condition, seed=index), max_seconds=60.0)
            except EmotionAppError:
                refused += 1
                continue
            kept.append(clip.label)
            features.append(mfcc_features(decoded.signal, decoded.rate))
            pooled.append(speech_encoder_probe.pooled_states(encoder.states(decoded.signal)))
        labels = np.array(kept)
        networks = np.mean(
            [
                train_speech.predict_in_batches(model, [standardise(f, stats) for f in features])
                for stats, model in members
            ],
            axis=0,
        )
        probe_probs = probe.predict_proba(speech_encoder_probe.pool_columns(np.stack(pooled), pooling))
        row = {"clips": len(labels), "refused": refused}
        for name, probs in (("networks", networks), ("probe", probe_probs), ("pair", (networks + probe_probs) / 2)):
            metrics = classification_metrics(labels, probs.argmax(axis=1))
            row[name] = {"accuracy": metrics["accuracy"], "uar": metrics["uar"]}
        table[condition] = row
        print(f"{condition}: {json.dumps(row)}", flush=True)
    if "clean" in table:
        for row in table.values():
            for name in ("networks", "probe", "pair"):
                row[name]["drop_points"] = round(100 * (table["clean"][name]["accuracy"] - row[name]["accuracy"]), 1)
    (args.work_dir / "robustness.json").write_text(json.dumps(table, indent=2))
    print(json.dumps(table), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
