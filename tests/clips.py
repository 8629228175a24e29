"""Short real video clips for the tests, encoded with PyAV (FFmpeg) from the fixtures.

``make_clip`` writes an MP4 (H.264 + AAC) or WebM (VP8 + Opus) in memory: a still image
(optionally with a black, face-free second half) over a voice recording, or either alone.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FACE = FIXTURES / "e2e" / "face_happy.png"
VOICE = FIXTURES / "e2e" / "speech_happy.wav"
FPS = 10


def voice_signal(seconds: float, rate: int = 48_000) -> np.ndarray:
    """The fixture voice, resampled to ``rate`` and repeated or cut to ``seconds``."""
    import soxr

    signal, source_rate = soundfile.read(VOICE, dtype="float32", always_2d=True)
    mono = soxr.resample(signal.mean(axis=1), source_rate, rate)
    repeats = int(np.ceil(seconds * rate / len(mono)))
    return np.tile(mono, repeats)[: int(seconds * rate)].astype(np.float32)


def make_clip(
    seconds: float = 2.0,
    *,
    container: str = "mp4",
    image: Path | None = FACE,
    audio: np.ndarray | str | None = "voice",
    black_after: float | None = None,
    size: tuple[int, int] = (320, 240),
) -> bytes:
    """Encode a clip; ``image=None`` leaves out the video track, ``audio=None`` the audio track."""
    import av
    from PIL import Image

    rate = 48_000
    if isinstance(audio, str):
        audio = voice_signal(seconds, rate)
    buffer = io.BytesIO()
    out = av.open(buffer, mode="w", format="mp4" if container == "mp4" else "webm")
    video_stream = audio_stream = None
    if image is not None:
        video_stream = out.add_stream("libx264" if container == "mp4" else "libvpx", rate=FPS)
        video_stream.width, video_stream.height = size
        video_stream.pix_fmt = "yuv420p"
        picture = Image.open(image).convert("RGB").resize(size)
        black = Image.new("RGB", size, (0, 0, 0))
    if audio is not None:
        audio_stream = out.add_stream("aac" if container == "mp4" else "libopus", rate=rate)
        audio_stream.layout = "mono"
    if video_stream is not None:
        for index in range(int(seconds * FPS)):
            when = index / FPS
            frame = av.VideoFrame.from_image(black if black_after is not None and when >= black_after else picture)
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            for packet in video_stream.encode(frame):
                out.mux(packet)
        for packet in video_stream.encode():
            out.mux(packet)
    if audio_stream is not None:
        chunk = 960
        for start in range(0, len(audio), chunk):
            piece = audio[start : start + chunk]
            if len(piece) < chunk:
                piece = np.pad(piece, (0, chunk - len(piece)))
            frame = av.AudioFrame.from_ndarray(piece[None, :].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in audio_stream.encode(frame):
                out.mux(packet)
        for packet in audio_stream.encode():
            out.mux(packet)
    out.close()
    return buffer.getvalue()
