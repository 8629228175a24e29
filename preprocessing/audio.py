"""Turn whatever audio a user sends into the clean mono signal and MFCC frames the voice model saw.

Training and serving both go through :func:`decode_audio` and :func:`mfcc_features`, so the
model never meets a signal prepared differently from its training data. The container is
recognised from magic bytes (never the file name); libsndfile reads WAV/FLAC/OGG, and the
rest (MP3, the WebM/Opus of browsers' MediaRecorder, MP4/M4A) is decoded in-process by PyAV's
FFmpeg libraries or, where PyAV is not installed, by the system ``ffmpeg`` binary.
Unusable recordings are refused with a 4xx error rather than analysed.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from errors import InputTooLarge, InvalidInput, UnsupportedMediaType, UnusableInput
from preprocessing.media_type import sniff_media_type

#: The rate every signal is resampled to (the training corpus is stored at 16 kHz).
TARGET_RATE = 16_000
DEFAULT_MAX_SECONDS = 60.0
MIN_SECONDS = 0.5

N_MFCC = 40
N_FEATURES = 3 * N_MFCC
#: FFT 2048 / hop 512 at 22,050 Hz is a 92.9 ms window and a 23.2 ms hop; the same in time at 16 kHz.
N_FFT = 1486
HOP_LENGTH = 372
N_MELS = 64

#: Frames quieter than this (dBFS, RMS) never count as speech, however quiet the whole clip is.
#: (The quietest RAVDESS recordings peak near -54 dBFS.)
SILENCE_FLOOR_DB = -65.0
#: Speech rises and falls; a recording whose loud frames are within this many dB of its quiet
#: frames (10th percentile) is steady noise or hum, not a voice.
MIN_DYNAMIC_RANGE_DB = 10.0
#: Frames more than this far below the loudest frame are treated as leading/trailing silence.
TRIM_TOP_DB = 40.0
TRIM_FRAME = 512
TRIM_HOP = 128
#: Kept around the detected speech so onsets and decays are not clipped.
TRIM_MARGIN_SECONDS = 0.05
PEAK_LEVEL = 0.95

FFMPEG_TIMEOUT_SECONDS = 30.0
_SOUNDFILE_CONTAINERS = {"wav", "flac", "ogg", "aiff"}


@dataclass(frozen=True)
class DecodedAudio:
    """A mono float32 signal at ``rate`` (trimmed, peak-normalised) and what the upload was."""

    signal: np.ndarray
    rate: int
    original_rate: int
    channels: int
    #: Duration of the upload before trimming, in seconds.
    duration_seconds: float
    container: str
    #: Where the kept speech starts and ends, in seconds of the upload.
    trim_start: float
    trim_end: float

    @property
    def trimmed_seconds(self) -> float:
        return len(self.signal) / self.rate


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature mean and standard deviation of the training frames."""

    mean: np.ndarray
    std: np.ndarray

    def to_json(self, path: Path) -> None:
        payload = {"mean": self.mean.tolist(), "std": self.std.tolist(), "n_features": int(self.mean.size)}
        Path(path).write_text(json.dumps(payload) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: Path) -> FeatureStats:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        mean = np.asarray(payload["mean"], dtype=np.float32)
        std = np.asarray(payload["std"], dtype=np.float32)
        if mean.shape != (N_FEATURES,) or std.shape != (N_FEATURES,):
            raise ValueError(f"feature statistics must hold {N_FEATURES} values each")
        return cls(mean=mean, std=std)

    @classmethod
    def fit(cls, frames: np.ndarray) -> FeatureStats:
        """Statistics over a stack of training frames ``(n, 120)``."""
        frames = np.asarray(frames, dtype=np.float64)
        return cls(mean=frames.mean(axis=0).astype(np.float32), std=frames.std(axis=0).astype(np.float32))


# -- container detection -------------------------------------------------------------------
#: The container name the decoders use for each audio type (see preprocessing/media_type.py).
CONTAINERS = {
    "audio/wav": "wav",
    "audio/flac": "flac",
    "audio/aiff": "aiff",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/webm": "webm",
    "audio/mp4": "mp4",
}


def detect_container(data: bytes) -> str:
    """Name the container from its magic bytes; :class:`UnsupportedMediaType` when it is not audio."""
    if not data:
        raise InvalidInput("The audio upload is empty (0 bytes).", code="empty_audio")
    container = CONTAINERS.get(sniff_media_type(data) or "")
    if container is None:
        raise UnsupportedMediaType(
            "This is not an audio format we can read; send WAV, FLAC, OGG, MP3, WebM/Opus, M4A or AIFF.",
            code="unsupported_audio_format",
        )
    if container == "ogg" and b"OpusHead" in data[:512]:
        return "ogg_opus"
    if container == "mp3" and data[0] == 0xFF and (data[1] & 0x06) == 0:
        return "aac"  # MPEG frame sync with layer bits 00: AAC in an ADTS stream, which ffmpeg reads too
    return container


# -- decoding ------------------------------------------------------------------------------
def _corrupt(container: str) -> UnusableInput:
    return UnusableInput(
        f"The {container.upper()} audio could not be decoded; the file looks damaged.", code="corrupt_audio"
    )


def _too_long(seconds: float, max_seconds: float) -> InputTooLarge:
    return InputTooLarge(
        f"The recording lasts {seconds:.1f} s; at most {max_seconds:g} s can be analysed.", code="too_long"
    )


def _read_with_soundfile(data: bytes, container: str, max_seconds: float) -> tuple[np.ndarray, int, int] | None:
    """(frames x channels float32, rate, channels), or ``None`` when libsndfile cannot parse the header.

    An encoding libsndfile does not know (say MP3 inside WAV) falls through to ffmpeg.
    """
    try:
        info = sf.info(io.BytesIO(data))
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError):
        return None
    if info.samplerate <= 0 or info.channels <= 0:
        return None
    # The header tells the length: refuse a long recording before decoding any of it.
    if info.frames > 0 and info.frames / info.samplerate > max_seconds:
        raise _too_long(info.frames / info.samplerate, max_seconds)
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as exc:
        # The header was valid but the audio is not: a damaged or truncated upload.
        raise _corrupt(container) from exc
    return samples, int(rate), int(samples.shape[1])


_STREAM_INFO = re.compile(r"Audio:.*?(\d+) Hz, ([^,]+)")
_CHANNEL_NAMES = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def _read_with_pyav(data: bytes, container: str, max_seconds: float) -> tuple[np.ndarray, int, int] | None:
    """(mono float32 at the original rate, rate, channels) via PyAV's in-process FFmpeg libraries.

    Decoding in-process costs a few milliseconds where starting the ffmpeg program costs a few
    hundred on a busy server. ``None`` when PyAV is not installed (then the ffmpeg binary decodes).
    """
    try:  # guarded: an image built without PyAV still decodes these formats, with the ffmpeg binary
        import av
    except ImportError:
        return None
    chunks: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as media:
            if not media.streams.audio:
                raise _corrupt(container)
            stream = media.streams.audio[0]
            rate = int(stream.rate or 0)
            channels = int(stream.channels or 1)
            if rate <= 0:
                raise _corrupt(container)
            if media.duration and media.duration / 1e6 > max_seconds + 0.5:  # header duration, microseconds
                raise _too_long(media.duration / 1e6, max_seconds)
            to_mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
            limit = int((max_seconds + 0.25) * rate)
            decoded = 0
            for frame in media.decode(stream):
                for out in to_mono.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    chunks.append(chunk)
                    decoded += len(chunk)
                if decoded > limit:  # stop early: the caller refuses it as too long
                    break
            else:
                chunks += [out.to_ndarray().reshape(-1) for out in to_mono.resample(None)]
    except (av.FFmpegError, OSError, ValueError, EOFError, IndexError) as exc:
        raise _corrupt(container) from exc
    if not chunks:
        raise _corrupt(container)
    return np.concatenate(chunks).astype(np.float32, copy=False), rate, channels


def _ffmpeg_binary() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise UnsupportedMediaType(
            "This audio format needs the ffmpeg decoder, which is not installed on the server.",
            code="decoder_missing",
        )
    return path


def _read_with_ffmpeg(data: bytes, container: str, target_rate: int, max_seconds: float) -> tuple[np.ndarray, int, int]:
    """Decode with the system ffmpeg straight to mono float32 at ``target_rate``.

    Decoding stops just past ``max_seconds`` so a very long upload costs little before it is
    refused. MP4 needs a seekable input (its index may sit at the end), so it goes via a file.
    """
    limit = f"{max_seconds + 0.25:.3f}"
    command = [_ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]
    tmp_path: str | None = None
    stdin_data: bytes | None = data
    try:
        if container == "mp4":
            handle, tmp_path = tempfile.mkstemp(suffix=".m4a")
            with os.fdopen(handle, "wb") as tmp:
                tmp.write(data)
            command += ["-i", tmp_path]
            stdin_data = None
        else:
            command += ["-i", "pipe:0"]
        command += ["-vn", "-t", limit, "-f", "f32le", "-ac", "1", "-ar", str(target_rate), "pipe:1"]
        try:
            result = subprocess.run(
                command, input=stdin_data, capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise _corrupt(container) from exc
    finally:
        if tmp_path is not None:
            Path(tmp_path).unlink(missing_ok=True)
    stderr = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0 or len(result.stdout) < 4:
        raise _corrupt(container)
    signal = np.frombuffer(result.stdout[: len(result.stdout) // 4 * 4], dtype="<f4").astype(np.float32)
    original_rate, channels = target_rate, 1
    match = _STREAM_INFO.search(stderr)
    if match:
        original_rate = int(match.group(1))
        layout = match.group(2).strip().split("(")[0].strip()
        channels = _CHANNEL_NAMES.get(layout, 1)
        digits = re.match(r"(\d+) channels", layout)
        if digits:
            channels = int(digits.group(1))
    return signal.reshape(-1, 1), original_rate, channels


def _resample(signal: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) so no aliasing reaches the features."""
    if rate == target_rate:
        return signal.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(signal, rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def _frame_rms_db(signal: np.ndarray) -> np.ndarray:
    """RMS level of short frames in dBFS (frame 32 ms, hop 8 ms at 16 kHz)."""
    if len(signal) < TRIM_FRAME:
        signal = np.pad(signal, (0, TRIM_FRAME - len(signal)))
    frames = np.lib.stride_tricks.sliding_window_view(signal, TRIM_FRAME)[::TRIM_HOP]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def trim_silence(signal: np.ndarray, rate: int) -> tuple[int, int]:
    """Sample range ``[start, end)`` holding the speech; :class:`UnusableInput` for silence."""
    if signal.size == 0 or not np.all(np.isfinite(signal)):
        raise UnusableInput("The recording holds no usable audio samples.", code="no_speech")
    levels = _frame_rms_db(signal)
    loudest = float(levels.max())
    if loudest < SILENCE_FLOOR_DB:
        raise UnusableInput(
            "The recording is silent: no speech was heard. Check the microphone and try again.", code="no_speech"
        )
    if len(levels) >= 10 and loudest - float(np.percentile(levels, 10)) < MIN_DYNAMIC_RANGE_DB:
        raise UnusableInput(
            "The recording holds only steady noise: no speech was heard. Try again closer to the microphone.",
            code="no_speech",
        )
    threshold = max(loudest - TRIM_TOP_DB, SILENCE_FLOOR_DB)
    active = np.flatnonzero(levels >= threshold)
    margin = int(TRIM_MARGIN_SECONDS * rate)
    start = max(int(active[0]) * TRIM_HOP - margin, 0)
    end = min(int(active[-1]) * TRIM_HOP + TRIM_FRAME + margin, len(signal))
    return start, end


def decode_audio(
    data: bytes, *, target_rate: int = TARGET_RATE, max_seconds: float = DEFAULT_MAX_SECONDS
) -> DecodedAudio:
    """Decode, mix to mono, resample, trim silence and peak-normalise one uploaded recording.

    Raises :class:`InvalidInput` (empty upload), :class:`UnsupportedMediaType` (not audio),
    :class:`InputTooLarge` ``too_long``, and :class:`UnusableInput` ``corrupt_audio``,
    ``no_speech`` or ``too_short``.
    """
    container = detect_container(bytes(data[:512]) if len(data) > 512 else bytes(data))
    data = bytes(data)
    decoded = _read_with_soundfile(data, container, max_seconds) if container in _SOUNDFILE_CONTAINERS else None
    if decoded is not None:
        samples, original_rate, channels = decoded
        mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
        duration = len(mono) / original_rate
        if duration > max_seconds:
            raise _too_long(duration, max_seconds)
        signal = _resample(mono, original_rate, target_rate)
    elif (in_process := _read_with_pyav(data, container, max_seconds)) is not None:
        mono, original_rate, channels = in_process
        duration = len(mono) / original_rate
        if duration > max_seconds:
            raise _too_long(duration, max_seconds)
        signal = _resample(mono, original_rate, target_rate)
    else:
        samples, original_rate, channels = _read_with_ffmpeg(data, container, target_rate, max_seconds)
        signal = samples[:, 0]
        duration = len(signal) / target_rate
        if duration > max_seconds:
            raise _too_long(duration, max_seconds)
    if signal.size == 0:
        raise _corrupt(container)

    start, end = trim_silence(signal, target_rate)
    speech = signal[start:end]
    if len(speech) < MIN_SECONDS * target_rate:
        raise UnusableInput(
            f"Only {len(speech) / target_rate:.2f} s of speech was heard; record at least {MIN_SECONDS:g} s.",
            code="too_short",
        )
    peak = float(np.max(np.abs(speech)))
    speech = (speech * (PEAK_LEVEL / peak)).astype(np.float32)
    return DecodedAudio(
        signal=speech,
        rate=target_rate,
        original_rate=int(original_rate),
        channels=int(channels),
        duration_seconds=float(duration),
        container=container,
        trim_start=start / target_rate,
        trim_end=end / target_rate,
    )


# -- features ------------------------------------------------------------------------------
def _scaled_frames(rate: int) -> tuple[int, int]:
    """FFT and hop lengths that keep the 92.9 ms window and 23.2 ms hop at any rate."""
    if rate == TARGET_RATE:
        return N_FFT, HOP_LENGTH
    return round(N_FFT * rate / TARGET_RATE), round(HOP_LENGTH * rate / TARGET_RATE)


def frame_seconds(rate: int = TARGET_RATE) -> float:
    """Seconds between consecutive feature frames."""
    return _scaled_frames(rate)[1] / rate


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    mels = frequencies / (200.0 / 3)
    log_region = frequencies >= 1000.0
    mels[log_region] = 15.0 + np.log(frequencies[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    frequencies = mels * (200.0 / 3)
    log_region = mels >= 15.0
    frequencies[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log_region] - 15.0))
    return frequencies


@functools.lru_cache(maxsize=8)
def mel_filterbank(
    rate: int, n_fft: int, n_mels: int = N_MELS, fmin: float = 20.0, fmax: float | None = None
) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` float32 triangular filters, Slaney-normalised (librosa's default)."""
    fmax = rate / 2 if fmax is None else fmax
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / rate)
    mel_freqs = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = np.subtract.outer(mel_freqs, fft_freqs)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None].astype(np.float32)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=8)
def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II rows (``scipy.fft.dct(type=2, norm="ortho")``, first ``n_out`` only)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    matrix = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    matrix[0] /= np.sqrt(2.0)
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=8)
def _savgol_weights(width: int, order: int) -> np.ndarray:
    """Savitzky-Golay derivative weights (polynomial order = derivative order), for ``delta``."""
    half = width // 2
    positions = np.arange(-half, half + 1, dtype=np.float64)
    vander = positions[:, None] ** np.arange(order + 1)[None, :]
    weights = np.linalg.pinv(vander)[order] * math.factorial(order)
    weights.setflags(write=False)
    return weights


def delta(features: np.ndarray, width: int, order: int) -> np.ndarray:
    """Local derivative along time (last axis), edges repeated: librosa's ``feature.delta``."""
    half = width // 2
    padded = np.pad(features, ((0, 0), (half, half)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)
    return np.einsum("ftw,w->ft", windows, _savgol_weights(width, order)).astype(features.dtype)


def mfcc_features(signal: np.ndarray, rate: int = TARGET_RATE) -> np.ndarray:
    """``(frames, 120)`` float32: 40 MFCC, their deltas and delta-deltas (not yet standardised).

    The same computation as ``librosa.feature.mfcc`` and ``librosa.feature.delta`` with the
    training settings (centred Hann STFT with zero padding, power mel spectrogram, dB with an
    80 dB floor, orthonormal DCT-II), in numpy alone: the serving process imports no librosa.
    ``tests/test_speech_preprocessing.py`` holds it equal to librosa.
    """
    n_fft, hop = _scaled_frames(rate)
    signal = np.asarray(signal, dtype=np.float32)
    if len(signal) < n_fft:
        signal = np.pad(signal, (0, n_fft - len(signal)))
    padded = np.pad(signal, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (frames, bins)
    mel = mel_filterbank(rate, n_fft, N_MELS, 20.0, rate / 2) @ power.T  # (mels, frames)
    decibels = 10.0 * np.log10(np.maximum(mel, 1e-10))
    decibels = np.maximum(decibels, decibels.max() - 80.0)
    mfcc = (_dct_matrix(N_MFCC, N_MELS) @ decibels).astype(np.float32)
    width = min(9, mfcc.shape[1] if mfcc.shape[1] % 2 == 1 else mfcc.shape[1] - 1)
    if width < 3:
        first = np.zeros_like(mfcc)
        second = np.zeros_like(mfcc)
    else:
        first = delta(mfcc, width, 1)
        second = delta(mfcc, width, 2)
    return np.concatenate([mfcc, first, second], axis=0).T.astype(np.float32)


def warm_up_decoding() -> None:
    """Import the decoders and build the 16 kHz filter tables before the first request."""
    import importlib

    for name in ("soxr", "av"):  # PyAV is optional (the ffmpeg binary is the fallback)
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    mfcc_features(np.random.default_rng(0).normal(0.0, 0.1, TARGET_RATE).astype(np.float32), TARGET_RATE)


def standardise(features: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """Apply the training-time mean/std (a zero std is treated as 1)."""
    std = np.where(stats.std > 1e-8, stats.std, 1.0)
    return ((features - stats.mean) / std).astype(np.float32)


def pad_frames(sequences: list[np.ndarray], max_frames: int | None = None) -> np.ndarray:
    """Zero-pad standardised ``(frames, 120)`` sequences into one batch (the model masks zero frames).

    The length is rounded up to an even number so the model's 2x pooling keeps the last frame
    of every clip, and a clip gets the same answer alone as inside a padded batch.
    """
    length = max(len(seq) for seq in sequences)
    if max_frames:
        length = min(length, max_frames)
    length = max(2, length + length % 2)
    batch = np.zeros((len(sequences), length, N_FEATURES), dtype=np.float32)
    for i, seq in enumerate(sequences):
        batch[i, : min(len(seq), length)] = seq[:length]
    return batch
