"""The bundled voice model, end to end: real recordings in, 7 probabilities and attention out.

These tests load the committed model in ``models/speech`` (no mocks). Recordings in the
formats users send are generated from the RAVDESS test-actor fixture (actor 24, never seen
in training or validation).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from errors import (
    EmotionAppError,
    InputTooLarge,
    InvalidInput,
    ModelUnavailable,
    UnsupportedMediaType,
    UnusableInput,
)
from inference.labels import EMOTIONS
from inference.speech import SpeechRecognizer
from model_training.common import DEFAULT_DATA_ROOT
from tests.test_speech_preprocessing import (
    fixture_bytes,
    fixture_signal,
    mono_8k_wav,
    mp3_bytes,
    stereo_44k_wav,
    wav_bytes,
    webm_opus_bytes,
)

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "speech"
RAVDESS = DEFAULT_DATA_ROOT / "speech" / "ravdess"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recognizer() -> SpeechRecognizer:
    recognizer = SpeechRecognizer(MODEL_DIR)
    recognizer.load()
    return recognizer


def test_test_actor_recording_gets_probabilities_summing_to_one_and_attention_over_its_duration(
    recognizer: SpeechRecognizer,
) -> None:
    prediction = recognizer.predict(fixture_bytes())
    assert prediction.modality == "speech"
    assert len(prediction.probabilities) == len(EMOTIONS)
    assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-6)
    assert prediction.label in EMOTIONS
    assert prediction.model_name == recognizer.card["model_name"]

    details = prediction.details
    assert details["duration_seconds"] == pytest.approx(5.105, abs=0.01)
    assert (details["sample_rate"], details["channels"]) == (16_000, 1)
    trimmed = details["trimmed"]
    assert 0.0 <= trimmed["start"] < trimmed["end"] <= details["duration_seconds"]
    attention = details["attention"]
    speech_seconds = trimmed["end"] - trimmed["start"]
    times = [point["time"] for point in attention]
    weights = np.array([point["weight"] for point in attention])
    assert len(attention) > 10
    assert times == sorted(times)
    # One weight per model step, from the start to the end of the kept speech.
    assert times[0] < 0.1 and times[-1] == pytest.approx(speech_seconds, abs=0.1)
    assert weights.sum() == pytest.approx(1.0, abs=1e-3) and np.all(weights >= 0)
    json.dumps(prediction.to_dict())  # the stored prediction is plain JSON


def test_same_recording_gets_the_same_answer_twice(recognizer: SpeechRecognizer) -> None:
    first = recognizer.predict(fixture_bytes())
    second = recognizer.predict(fixture_bytes())
    assert np.allclose(first.probabilities, second.probabilities, atol=1e-6)


@pytest.mark.parametrize(
    ("make", "full_band"),
    [(stereo_44k_wav, True), (mp3_bytes, True), (webm_opus_bytes, True), (mono_8k_wav, False)],
    ids=["stereo-44.1kHz-wav", "mp3", "webm-opus", "mono-8kHz-wav"],
)
def test_every_upload_format_is_recognised(recognizer: SpeechRecognizer, make, full_band: bool) -> None:
    if make in (mp3_bytes, webm_opus_bytes) and shutil.which("ffmpeg") is None:
        pytest.skip("the system ffmpeg binary is not installed")
    prediction = recognizer.predict(make())
    probabilities = np.array(prediction.probabilities)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert prediction.details["attention"]
    if full_band:
        # Re-encoding at full bandwidth changes the sound a little, not the emotion profile.
        # (8 kHz audio loses everything above 4 kHz, so its profile may differ.)
        original = np.array(recognizer.predict(fixture_bytes()).probabilities)
        assert np.abs(probabilities - original).sum() < 0.3


def _short_burst() -> bytes:
    signal, rate = fixture_signal()
    loud = int(np.argmax(np.abs(signal)))
    burst = np.concatenate([np.zeros(rate // 2), signal[loud : loud + rate // 5], np.zeros(rate // 2)])
    return wav_bytes(burst.astype(np.float32), rate)


@pytest.mark.parametrize(
    ("make", "max_seconds", "error", "code"),
    [
        (lambda: wav_bytes(np.zeros(48_000, np.float32), 16_000), 60.0, UnusableInput, "no_speech"),
        (_short_burst, 60.0, UnusableInput, "too_short"),
        (fixture_bytes, 2.0, InputTooLarge, "too_long"),
        (lambda: b"", 60.0, InvalidInput, "empty_audio"),
        (lambda: np.random.default_rng(3).bytes(8000), 60.0, UnsupportedMediaType, "unsupported_audio_format"),
        (lambda: b"I am a text file, not audio.\n" * 20, 60.0, UnsupportedMediaType, "unsupported_audio_format"),
        (lambda: fixture_bytes()[:300], 60.0, UnusableInput, "corrupt_audio"),
    ],
    ids=["silence", "0.2-seconds", "over-the-limit", "zero-bytes", "random-bytes", "text-file", "truncated-flac"],
)
def test_unusable_uploads_get_their_clear_4xx_error(
    recognizer: SpeechRecognizer, make, max_seconds: float, error: type[EmotionAppError], code: str
) -> None:
    with pytest.raises(error) as caught:
        recognizer.predict(make(), max_seconds=max_seconds)
    assert 400 <= caught.value.status < 500
    assert caught.value.code == code


def test_text_instead_of_recording_bytes_is_invalid_input_400(recognizer: SpeechRecognizer) -> None:
    with pytest.raises(InvalidInput) as caught:
        recognizer.predict("a transcript is not a recording")
    assert caught.value.status == 400


def test_batch_of_clips_of_different_lengths_gives_each_its_own_answer(recognizer: SpeechRecognizer) -> None:
    whole = fixture_bytes()
    signal, rate = fixture_signal()
    half = wav_bytes(signal[: len(signal) // 2], rate)
    features = [recognizer.preprocess(clip)[0] for clip in (whole, half)]
    batch = recognizer.predict_proba(features)
    assert batch.shape == (2, len(EMOTIONS))
    assert np.allclose(batch.sum(axis=1), 1.0, atol=1e-5)
    alone = [np.array(recognizer.predict(clip).probabilities) for clip in (whole, half)]
    assert np.allclose(batch[0], alone[0], atol=1e-4)  # the longest clip is not padded
    # The shorter one is zero-padded: the convolutions see the padding at its end, a small
    # difference that never changes the answer.
    assert np.allclose(batch[1], alone[1], atol=1e-2)
    assert batch[1].argmax() == alone[1].argmax()


def test_missing_model_folder_means_model_unavailable_503(tmp_path: Path) -> None:
    recognizer = SpeechRecognizer(tmp_path / "speech")
    assert not recognizer.is_available()
    with pytest.raises(ModelUnavailable) as caught:
        recognizer.predict(fixture_bytes())
    assert caught.value.status == 503


def test_model_card_reports_held_out_actor_accuracy_above_the_floor_and_a_small_model() -> None:
    card = json.loads((MODEL_DIR / "card.json").read_text(encoding="utf-8"))
    assert card["modality"] == "speech"
    test = card["test_metrics"]["RAVDESS actors 21-24"]
    assert test["n"] == 240
    assert test["accuracy"] >= 0.55
    assert test["accuracy"] > card["baseline"]["test_accuracy"]
    assert 0.0 < test["uar"] <= 1.0
    assert card["size_bytes"] <= 10 * 1024 * 1024


@pytest.mark.needs_data
@pytest.mark.skipif(not RAVDESS.is_dir(), reason="the RAVDESS corpus is not beside the repository")
def test_evaluation_script_scores_the_shipped_model_on_test_actors_and_lists_refusals(tmp_path: Path) -> None:
    import argparse

    from model_training import eval_speech

    clips = sorted(RAVDESS.glob("Actor_2[1-4]/*.flac"))[::10]
    codes = {
        "01": "neutral",
        "02": "calm",
        "03": "happy",
        "04": "sad",
        "05": "angry",
        "06": "fearful",
        "07": "disgust",
        "08": "surprised",
    }
    lines = ["path,emotion"] + [f"{clip},{codes[clip.stem.split('-')[2]]}" for clip in clips]
    silent = tmp_path / "silent.wav"
    silent.write_bytes(wav_bytes(np.zeros(16_000, np.float32), 16_000))
    lines.append("silent.wav,neutral")
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = eval_speech.evaluate(
        argparse.Namespace(labels=tmp_path / "clips.csv", models_dir=MODEL_DIR.parent, max_seconds=60.0)
    )
    assert result["evaluated"] == len(clips)
    assert result["refused_count"] == 1 and result["refused"][0]["code"] == "no_speech"
    assert {"accuracy", "macro_f1", "uar", "confusion_matrix"} <= set(result)
    assert np.sum(result["confusion_matrix"]) == len(clips)


def test_the_served_model_averages_five_fold_networks_and_the_encoder_head(recognizer: SpeechRecognizer) -> None:
    features, _ = recognizer.preprocess(fixture_bytes())
    members, head, _ = recognizer.predict_parts([features])
    assert recognizer.member_count == len(members) == 5
    assert head is not None
    combined = (np.mean([m[0] for m in members], axis=0) + head[0]) / 2
    assert np.allclose(recognizer.predict_proba([features])[0], combined, atol=1e-6)


def test_a_missing_member_graph_means_model_unavailable_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "speech"
    shutil.copytree(MODEL_DIR, folder)
    listed = SpeechRecognizer(folder).model_files()
    (folder / listed[-2]).unlink()
    recognizer = SpeechRecognizer(folder)
    assert not recognizer.is_available()
    with pytest.raises(ModelUnavailable) as caught:
        recognizer.predict(fixture_bytes())
    assert caught.value.status == 503 and Path(listed[-2]).name in caught.value.message


def test_without_the_whisper_weights_the_voice_model_is_unavailable_not_half_served(tmp_path: Path) -> None:
    empty = [tmp_path / "part1", tmp_path / "part2"]
    for folder in empty:
        folder.mkdir()
    recognizer = SpeechRecognizer(MODEL_DIR, encoder_part_dirs=empty)
    with pytest.raises(ModelUnavailable) as caught:
        recognizer.predict(fixture_bytes())
    assert caught.value.status == 503 and "Whisper-base" in caught.value.message


def test_the_voice_model_and_the_transcriber_share_one_whisper_base(
    recognizer: SpeechRecognizer, tmp_path: Path
) -> None:
    """One copy per process: loading the transcriber after the voice model loads no second Whisper-base."""
    from inference.speech_encoder import WhisperEncoder
    from inference.transcriber import Transcriber

    transcriber = Transcriber(tmp_path / "whisper-base")
    transcriber.load()
    assert WhisperEncoder(threads=2)._model is transcriber._model.model
