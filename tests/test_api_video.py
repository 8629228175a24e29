"""POST /api/predict/video: a clip's face and voice over time, stored as a ``video`` prediction.

The clips are real MP4 (H.264 + AAC) and WebM (VP8 + Opus) files encoded in the test from the
fixture face photo and voice recording (tests/clips.py). The recognisers are the test doubles
(a black frame has no face; silence has no voice), so every step's answer is known; the last
test runs the real bundled models.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.registry import RecognizerRegistry
from tests.clips import VOICE, make_clip
from tests.conftest import Api, assert_error, png_bytes

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def send(api: Api, clip: bytes, name: str = "clip.mp4", **fields: Any) -> Any:
    return api.post("/api/predict/video", data={"video": (io.BytesIO(clip), name), **fields})


def test_a_clip_with_a_face_and_a_voice_answers_both_over_time_and_fused(user_api: Api) -> None:
    response = send(user_api, make_clip(3.0))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["kind"] == "video"
    assert [m["modality"] for m in body["modalities"]] == ["face", "speech"]
    assert body["fusion"]["strategy"] == "calibrated"
    video = body["video"]
    assert video["counts"]["frames_sampled"] == 6 and video["counts"]["frames_with_face"] == 6
    assert video["counts"]["windows"] == 2 and video["counts"]["windows_with_voice"] == 2
    assert set(video["model_versions"]) == {"face", "speech"}
    assert [(s["start"], s["end"]) for s in video["timeline"]] == [(0.0, 2.0), (1.0, 3.0)]
    for step in video["timeline"]:
        assert step["face"]["surprise"] == pytest.approx(0.8, abs=1e-3)  # the face double
        assert step["voice"]["sad"] == pytest.approx(0.65, abs=1e-3)  # the voice double
        assert sum(step["fused"].values()) == pytest.approx(1.0, abs=1e-3)
    assert len(video["thumbnails"]) == 6 and video["thumbnails"][0]["image"].startswith("data:image/jpeg;base64,")

    stored = user_api.get(f"/api/predictions/{body['id']}").get_json()
    assert stored["video"]["timeline"] == video["timeline"]
    assert stored["video"]["thumbnails"] == []  # frames are not kept unless KEEP_UPLOADS is on


def test_a_webm_recording_marks_the_steps_without_a_face(user_api: Api) -> None:
    body = send(user_api, make_clip(4.0, container="webm", black_after=2.0), "rec.webm").get_json()
    steps = body["video"]["timeline"]
    assert [s["start"] for s in steps] == [0.0, 1.0, 2.0]
    assert steps[0]["face"] is not None and steps[0]["frames_with_face"] == 4
    assert steps[2]["face"] is None and steps[2]["face_status"] == "no face"
    assert steps[2]["fused"] == steps[2]["voice"]  # the voice alone answers that step
    assert body["video"]["counts"]["frames_with_face"] == 4


def test_a_clip_without_audio_answers_with_the_face_and_says_why_the_voice_is_missing(user_api: Api) -> None:
    body = send(user_api, make_clip(2.0, audio=None)).get_json()
    assert body["emotion"] == "surprise" and body["fusion"] is None
    speech = next(m for m in body["modalities"] if m["modality"] == "speech")
    assert speech["status"] == "dropped" and speech["error"]["code"] == "no_audio_track"
    assert all(s["voice"] is None and s["voice_status"] == "no audio" for s in body["video"]["timeline"])


def test_silence_is_marked_no_voice_not_guessed(user_api: Api) -> None:
    body = send(user_api, make_clip(2.0, audio=np.zeros(96_000, np.float32))).get_json()
    assert body["emotion"] == "surprise"
    assert body["video"]["timeline"][0]["voice_status"] == "no voice"
    speech = next(m for m in body["modalities"] if m["modality"] == "speech")
    assert speech["error"]["code"] == "no_speech"


def test_an_audio_file_sent_as_video_answers_with_the_voice_alone(user_api: Api) -> None:
    response = send(user_api, VOICE.read_bytes(), "voice.wav")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["emotion"] == "sad"  # the voice double
    face = next(m for m in body["modalities"] if m["modality"] == "face")
    assert face["error"]["code"] == "no_video_track"


def test_a_black_silent_clip_has_nothing_to_analyse(user_api: Api) -> None:
    from tests.clips import FIXTURES

    black = FIXTURES.parent / "black.png"
    from PIL import Image

    Image.new("RGB", (64, 48)).save(black)
    try:
        response = send(user_api, make_clip(2.0, image=black, audio=np.zeros(96_000, np.float32)))
    finally:
        black.unlink()
    assert_error(response, 422, "no_usable_modality")
    assert user_api.get("/api/predictions").get_json()["total"] == 0


def test_corrupt_and_wrong_type_uploads_are_refused_and_nothing_is_stored(user_api: Api) -> None:
    clip = make_clip(2.0)
    assert_error(send(user_api, clip[: len(clip) // 3]), 422, "corrupt_video")
    assert_error(send(user_api, png_bytes(), "face.png"), 415, "unsupported_video")
    assert_error(send(user_api, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500), 422, "corrupt_video")
    assert_error(send(user_api, b""), 422, "empty_file")
    assert_error(user_api.post("/api/predict/video", data={}), 400, "missing_file")
    assert user_api.get("/api/predictions").get_json()["total"] == 0


def test_a_clip_longer_than_the_limit_is_413(app_factory: Any) -> None:
    api = Api(app_factory({"MAX_VIDEO_SECONDS": 2}).test_client())
    api.register()
    api.give_consent()
    assert_error(send(api, make_clip(4.0)), 413, "video_too_long")


def test_video_needs_consent(api: Api) -> None:
    api.register()
    assert_error(send(api, make_clip(2.0)), 403, "consent_required")


def test_history_statistics_and_both_csv_exports_include_video(user_api: Api) -> None:
    prediction_id = send(user_api, make_clip(3.0)).get_json()["id"]
    assert user_api.get("/api/predictions?kind=video").get_json()["total"] == 1
    assert user_api.get("/api/statistics").get_json()["by_kind"]["video"] == 1
    rows = list(csv.DictReader(io.StringIO(user_api.get("/api/predictions/export.csv").get_data(as_text=True))))
    assert [r["\ufeffid"] for r in rows] == [str(prediction_id)] and rows[0]["kind"] == "video"
    response = user_api.get("/api/predictions/export.csv?timeline=1")
    assert "moodlens-timeline.csv" in response.headers["Content-Disposition"]
    steps = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(s["prediction_id"], s["start"], s["end"]) for s in steps] == [
        (str(prediction_id), "0.0", "2.0"),
        (str(prediction_id), "1.0", "3.0"),
    ]
    assert float(steps[0]["face_p_surprise"]) == pytest.approx(0.8, abs=1e-3)
    assert user_api.delete(f"/api/predictions/{prediction_id}").status_code == 204
    assert user_api.get("/api/predictions/export.csv?timeline=1").get_data(as_text=True).count("\n") == 1


@pytest.mark.slow
@pytest.mark.skipif(not (MODELS / "face" / "card.json").is_file(), reason="the bundled models are missing")
def test_the_real_models_see_the_happy_face_and_voice_in_a_clip(app_factory: Any) -> None:
    from app import build_registry

    registry: RecognizerRegistry = build_registry(MODELS)
    api = Api(app_factory({"MODELS_DIR": str(MODELS)}, registry_override=registry).test_client())
    api.register()
    api.give_consent()
    response = send(api, make_clip(3.0, container="webm"), "rec.webm")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["emotion"] == "happy"
    assert {m["modality"]: m["status"] for m in body["modalities"]} == {"face": "used", "speech": "used"}
    assert all(step["face"]["happy"] > 0.5 for step in body["video"]["timeline"])


def test_with_keep_uploads_the_clip_and_its_frames_are_kept_and_deleted_with_the_prediction(
    app_factory: Any, tmp_path: Path
) -> None:
    uploads = tmp_path / "kept"
    api = Api(app_factory({"KEEP_UPLOADS": True, "UPLOADS_DIR": str(uploads)}).test_client())
    api.register()
    api.give_consent()
    body = send(api, make_clip(2.0), "mine.mp4").get_json()
    stored = api.get(f"/api/predictions/{body['id']}").get_json()
    assert len(stored["video"]["thumbnails"]) == 4
    kept = list(uploads.rglob("*mine.mp4"))
    assert len(kept) == 1
    assert api.delete(f"/api/predictions/{body['id']}").status_code == 204
    assert not kept[0].exists()


def test_step_annotators_can_add_fields_to_every_step(registry: RecognizerRegistry, models_dir: Path) -> None:
    from inference.fusion import FusionEngine
    from inference.predictor import MultimodalEmotionPredictor
    from services.video import VideoSettings, analyse_video, timeline_steps

    predictor = MultimodalEmotionPredictor(registry, FusionEngine.from_models_dir(models_dir))
    seen: list[int] = []

    def words(steps: list[dict[str, Any]], audio: Any) -> None:
        seen.append(len(audio))
        for step in steps:
            step["words"] = f"{step['start']}-{step['end']}"

    result = analyse_video(predictor, make_clip(3.0), VideoSettings(), strategy="weighted", step_annotators=[words])
    assert [s["words"] for s in timeline_steps(result)] == ["0.0-2.0", "1.0-3.0"]
    assert len(seen) == 1 and abs(seen[0] - 48_000) < 1_000  # 3 s of 16 kHz audio (AAC pads a frame)
