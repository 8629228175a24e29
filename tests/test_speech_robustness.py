"""The degraded recordings of the voice robustness table are what they claim to be, and the app decodes them."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from model_training.speech_robustness import (
    CONDITIONS,
    RATE,
    degraded_upload,
    quiet,
    reverberant,
    telephone,
    with_noise,
)
from preprocessing.audio import decode_audio

pytestmark = [pytest.mark.no_database, pytest.mark.training]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "speech.flac"


def _voice_like() -> np.ndarray:
    """The bundled example recording: real speech, 16 kHz mono, about 5 s."""
    signal, rate = soundfile.read(EXAMPLE, dtype="float32")
    assert rate == RATE
    return signal


def _power_above(signal: np.ndarray, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal)) ** 2
    freqs = np.fft.rfftfreq(len(signal), 1 / RATE)
    return float(spectrum[freqs > hz].sum() / spectrum.sum())


def test_the_telephone_band_removes_what_lies_above_3400_hz():
    clean = _voice_like()
    assert _power_above(clean, 3600) > 0.005
    assert _power_above(telephone(clean, np.random.default_rng(0)), 3600) < 0.001


@pytest.mark.parametrize("snr_db", [20, 10])
def test_background_noise_is_added_at_the_stated_signal_to_noise_ratio(snr_db):
    clean = _voice_like()
    noisy = with_noise(snr_db)(clean, np.random.default_rng(0))
    measured = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.1)


def test_the_room_keeps_the_length_and_the_quiet_microphone_is_30_db_down():
    clean = _voice_like()
    assert len(reverberant(clean, np.random.default_rng(0))) == len(clean)
    assert 20 * np.log10(np.abs(quiet(clean, None)).max() / np.abs(clean).max()) == pytest.approx(-30, abs=0.01)


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_every_condition_is_an_upload_the_app_decodes(condition):
    decoded = decode_audio(degraded_upload(_voice_like(), condition, seed=0))
    assert decoded.rate == RATE
    assert 2.0 < decoded.trimmed_seconds <= len(_voice_like()) / RATE + 0.1


def test_the_same_seed_gives_the_same_recording():
    clean = _voice_like()
    assert degraded_upload(clean, "noise_10db", seed=3) == degraded_upload(clean, "noise_10db", seed=3)
