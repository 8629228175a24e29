"""What the audio decoder accepts, what it refuses, and the features it hands the voice model.

The formats browsers and users send (WAV at any rate and depth, FLAC, OGG, MP3, WebM/Opus)
are generated here from one real RAVDESS test-actor recording with soundfile and the system
ffmpeg, so no format is tested on synthetic tones alone.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from errors import InputTooLarge, InvalidInput, UnsupportedMediaType, UnusableInput
from preprocessing.audio import (
    N_FEATURES,
    TARGET_RATE,
    FeatureStats,
    decode_audio,
    detect_container,
    frame_seconds,
    mfcc_features,
    pad_frames,
    standardise,
)

FIXTURE = Path(__file__).parent / "fixtures" / "speech" / "03-01-05-02-02-02-24.flac"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the system ffmpeg binary is not installed")


# -- test data shared with test_speech_recognizer.py -----------------------------------------
def fixture_bytes() -> bytes:
    return FIXTURE.read_bytes()


def fixture_signal() -> tuple[np.ndarray, int]:
    signal, rate = sf.read(FIXTURE, dtype="float32")
    return signal, rate


def resampled(signal: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    import soxr

    return soxr.resample(signal, rate, new_rate, quality="HQ").astype(np.float32)


def wav_bytes(signal: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def stereo_44k_wav() -> bytes:
    signal, rate = fixture_signal()
    mono = resampled(signal, rate, 44_100)
    stereo = np.stack([mono, 0.6 * mono], axis=1)
    return wav_bytes(stereo, 44_100, "PCM_24")


def mono_8k_wav() -> bytes:
    signal, rate = fixture_signal()
    return wav_bytes(resampled(signal, rate, 8_000), 8_000, "PCM_16")


def ffmpeg_encode(data: bytes, *output_args: str) -> bytes:
    """Re-encode ``data`` with the system ffmpeg (as a browser or phone would have)."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0", *output_args, "pipe:1"]
    return subprocess.run(command, input=data, capture_output=True, check=True, timeout=60).stdout


def mp3_bytes() -> bytes:
    return ffmpeg_encode(stereo_44k_wav(), "-c:a", "libmp3lame", "-b:a", "96k", "-f", "mp3")


def webm_opus_bytes() -> bytes:
    """What Chrome's MediaRecorder uploads: Opus at 48 kHz in a WebM container."""
    return ffmpeg_encode(fixture_bytes(), "-ar", "48000", "-c:a", "libopus", "-b:a", "48k", "-f", "webm")


# -- accepted formats --------------------------------------------------------------------------
def test_flac_recording_is_decoded_to_trimmed_peak_normalised_mono_at_16_khz() -> None:
    audio = decode_audio(fixture_bytes(), target_rate=TARGET_RATE, max_seconds=60)
    assert audio.container == "flac"
    assert audio.rate == TARGET_RATE and audio.original_rate == 16_000 and audio.channels == 1
    assert audio.signal.dtype == np.float32 and audio.signal.ndim == 1
    assert audio.duration_seconds == pytest.approx(5.105, abs=0.01)
    # RAVDESS clips start and end with silence, which is cut away.
    assert 0.0 < audio.trim_start < audio.trim_end < audio.duration_seconds
    assert audio.trimmed_seconds == pytest.approx(audio.trim_end - audio.trim_start, abs=1e-3)
    assert np.max(np.abs(audio.signal)) == pytest.approx(0.95, abs=1e-3)


def test_stereo_44_1_khz_24_bit_wav_is_mixed_to_mono_and_resampled() -> None:
    audio = decode_audio(stereo_44k_wav(), target_rate=TARGET_RATE, max_seconds=60)
    reference = decode_audio(fixture_bytes(), target_rate=TARGET_RATE, max_seconds=60)
    assert (audio.container, audio.original_rate, audio.channels) == ("wav", 44_100, 2)
    assert audio.rate == TARGET_RATE
    assert audio.trimmed_seconds == pytest.approx(reference.trimmed_seconds, abs=0.05)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_32", "FLOAT"])
def test_8_khz_mono_wav_of_any_bit_depth_is_accepted(subtype: str) -> None:
    signal, rate = fixture_signal()
    audio = decode_audio(wav_bytes(resampled(signal, rate, 8_000), 8_000, subtype), target_rate=TARGET_RATE)
    assert (audio.container, audio.original_rate, audio.channels, audio.rate) == ("wav", 8_000, 1, TARGET_RATE)
    assert audio.trimmed_seconds > 1.0


def test_ogg_vorbis_is_decoded() -> None:
    signal, rate = fixture_signal()
    buffer = io.BytesIO()
    sf.write(buffer, resampled(signal, rate, 22_050), 22_050, format="OGG", subtype="VORBIS")
    audio = decode_audio(buffer.getvalue(), target_rate=TARGET_RATE)
    assert (audio.container, audio.original_rate) == ("ogg", 22_050)


def test_aiff_is_decoded() -> None:
    signal, rate = fixture_signal()
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, format="AIFF", subtype="PCM_16")
    audio = decode_audio(buffer.getvalue(), target_rate=TARGET_RATE)
    assert (audio.container, audio.original_rate, audio.channels) == ("aiff", 16_000, 1)


@needs_ffmpeg
def test_mp3_is_decoded_with_ffmpeg_and_reports_its_original_format() -> None:
    audio = decode_audio(mp3_bytes(), target_rate=TARGET_RATE)
    assert (audio.container, audio.original_rate, audio.channels) == ("mp3", 44_100, 2)
    assert audio.rate == TARGET_RATE and audio.trimmed_seconds > 1.0


@needs_ffmpeg
def test_browser_webm_opus_recording_is_decoded() -> None:
    audio = decode_audio(webm_opus_bytes(), target_rate=TARGET_RATE)
    assert (audio.container, audio.original_rate, audio.channels) == ("webm", 48_000, 1)
    assert audio.trimmed_seconds > 1.0


@needs_ffmpeg
def test_ogg_opus_recording_is_decoded() -> None:
    data = ffmpeg_encode(fixture_bytes(), "-ar", "48000", "-c:a", "libopus", "-f", "ogg")
    audio = decode_audio(data, target_rate=TARGET_RATE)
    assert audio.container == "ogg_opus" and audio.trimmed_seconds > 1.0


@needs_ffmpeg
@pytest.mark.parametrize("make", [mp3_bytes, webm_opus_bytes], ids=["mp3", "webm-opus"])
def test_ffmpeg_program_decodes_compressed_audio_where_pyav_is_not_installed(make) -> None:
    from preprocessing.audio import _read_with_ffmpeg

    data = make()
    samples, original_rate, channels = _read_with_ffmpeg(data, detect_container(data), TARGET_RATE, 60.0)
    in_process = decode_audio(data, target_rate=TARGET_RATE)
    assert samples.shape[1] == 1 and original_rate == in_process.original_rate and channels == in_process.channels
    assert len(samples) / TARGET_RATE == pytest.approx(in_process.duration_seconds, abs=0.1)


# -- refused uploads ---------------------------------------------------------------------------
def test_zero_bytes_are_refused_as_invalid_input_400() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_audio(b"", target_rate=TARGET_RATE)
    assert caught.value.status == 400 and caught.value.code == "empty_audio"


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(0).bytes(4096),
        b"Hello, this is a text file, not a recording.\n",
        b"\x89PNG\r\n\x1a\n" + bytes(100),
    ],
    ids=["random-bytes", "text-file", "png-image"],
)
def test_bytes_that_are_not_audio_are_refused_as_unsupported_media_type_415(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        decode_audio(data, target_rate=TARGET_RATE)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    "data",
    [b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40), b"fLaC" + bytes(200), b"\x1a\x45\xdf\xa3" + bytes(300)],
    ids=["wav-header-only", "flac-garbage", "webm-garbage"],
)
def test_damaged_audio_is_refused_as_corrupt_audio_422(data: bytes) -> None:
    if data.startswith(b"\x1a\x45") and shutil.which("ffmpeg") is None:
        pytest.skip("the system ffmpeg binary is not installed")
    with pytest.raises(UnusableInput) as caught:
        decode_audio(data, target_rate=TARGET_RATE)
    assert caught.value.status == 422 and caught.value.code == "corrupt_audio"


@pytest.mark.parametrize(
    "signal",
    [np.zeros(3 * 16_000, np.float32), np.random.default_rng(1).normal(0, 0.05, 3 * 16_000).astype(np.float32)],
    ids=["digital-silence", "steady-hiss"],
)
def test_recording_without_speech_is_refused_with_no_speech_422(signal: np.ndarray) -> None:
    with pytest.raises(UnusableInput) as caught:
        decode_audio(wav_bytes(signal, 16_000), target_rate=TARGET_RATE)
    assert caught.value.status == 422 and caught.value.code == "no_speech"


def test_clip_of_0_2_seconds_is_refused_as_too_short_422() -> None:
    signal, rate = fixture_signal()
    loud = int(np.argmax(np.abs(signal)))
    burst = np.concatenate([np.zeros(rate // 2), signal[loud : loud + rate // 5], np.zeros(rate // 2)])
    with pytest.raises(UnusableInput) as caught:
        decode_audio(wav_bytes(burst.astype(np.float32), rate), target_rate=TARGET_RATE)
    assert caught.value.status == 422 and caught.value.code == "too_short"


def test_clip_over_the_limit_is_refused_as_too_long_413() -> None:
    with pytest.raises(InputTooLarge) as caught:
        decode_audio(fixture_bytes(), target_rate=TARGET_RATE, max_seconds=2.0)
    assert caught.value.status == 413 and caught.value.code == "too_long"


@needs_ffmpeg
def test_compressed_clip_over_the_limit_is_refused_as_too_long_413() -> None:
    with pytest.raises(InputTooLarge) as caught:
        decode_audio(webm_opus_bytes(), target_rate=TARGET_RATE, max_seconds=2.0)
    assert caught.value.code == "too_long"


def test_container_is_recognised_from_magic_bytes_not_names() -> None:
    assert detect_container(fixture_bytes()) == "flac"
    assert detect_container(wav_bytes(np.zeros(100, np.float32), 8000)) == "wav"
    assert detect_container(b"ID3\x04" + bytes(20)) == "mp3"
    assert detect_container(b"\xff\xfb\x90\x00" + bytes(20)) == "mp3"
    assert detect_container(b"\x1a\x45\xdf\xa3" + bytes(20)) == "webm"
    assert detect_container(b"\x00\x00\x00\x20ftypM4A " + bytes(20)) == "mp4"
    assert detect_container(b"OggS" + bytes(24) + b"\x13OpusHead") == "ogg_opus"


# -- features ----------------------------------------------------------------------------------
def test_features_are_40_mfcc_with_deltas_at_a_23_ms_hop() -> None:
    audio = decode_audio(fixture_bytes(), target_rate=TARGET_RATE)
    features = mfcc_features(audio.signal, audio.rate)
    assert features.shape[1] == N_FEATURES == 120
    assert features.dtype == np.float32 and np.all(np.isfinite(features))
    assert frame_seconds(TARGET_RATE) == pytest.approx(512 / 22_050, rel=0.01)
    assert features.shape[0] == pytest.approx(audio.trimmed_seconds / frame_seconds(TARGET_RATE), abs=2)
    # The 22,050 Hz window gives the same frame count for the same audio.
    at_22k = mfcc_features(resampled(audio.signal, TARGET_RATE, 22_050), 22_050)
    assert abs(at_22k.shape[0] - features.shape[0]) <= 1


def test_saved_statistics_standardise_features_identically_after_a_round_trip(tmp_path: Path) -> None:
    audio = decode_audio(fixture_bytes(), target_rate=TARGET_RATE)
    features = mfcc_features(audio.signal, audio.rate)
    stats = FeatureStats.fit(features)
    stats.to_json(tmp_path / "stats.json")
    loaded = FeatureStats.from_json(tmp_path / "stats.json")
    standardised = standardise(features, loaded)
    assert np.allclose(standardised.mean(axis=0), 0, atol=1e-3)
    assert np.allclose(standardise(features, stats), standardised, atol=1e-6)


def test_padding_a_batch_keeps_each_sequence_and_rounds_up_to_an_even_length_for_pooling() -> None:
    batch = pad_frames([np.ones((3, N_FEATURES), np.float32), np.ones((5, N_FEATURES), np.float32)])
    assert batch.shape == (2, 6, N_FEATURES)
    assert np.all(batch[0, :3] == 1) and np.all(batch[0, 3:] == 0)
    assert np.all(batch[1, :5] == 1) and np.all(batch[1, 5:] == 0)
