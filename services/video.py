"""Emotion over time in a video clip: the face in sampled frames, the voice in short windows.

The clip is decoded in-process with PyAV (FFmpeg's libraries): frames are sampled at
``face_fps`` and each goes through the face recogniser; the audio track is resampled to
16 kHz mono and cut into windows (``window`` seconds long, every ``hop`` seconds), each
through the speech recogniser. A frame without a face is marked "no face" and a window
without a voice "no voice"; neither is guessed. Each time step (one voice window and the
frames inside it) is fused with the request's fusion strategy, and the whole clip is fused
from the mean face and mean voice probabilities. Without an audio track, or with no face in
any frame, the other modality answers alone and the result says which was missing and why.

Both recognisers are called through the one recogniser interface (frames as PNG bytes,
windows as WAV bytes), so the clip is analysed by exactly the models single predictions use.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile
from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from database.models import Prediction, VideoTimeline
from errors import InputTooLarge, InvalidInput, UnusableInput
from inference.base import Prediction as ModalityPrediction
from inference.labels import EMOTIONS, KIND_MODALITIES
from inference.results import AnalysisResult
from services.analysis import _keep_upload, get_predictor, require_consent
from services.predictions.export import spreadsheet_safe
from services.predictions.filters import HistoryFilters, sql_conditions
from services.predictions.serialize import to_jsonable
from services.predictions.store import store_prediction
from services.video_words import ClipWords, add_words, words_for_clip

SPEECH_RATE = 16_000
#: Frames are scaled down to this width before face detection (detection does not need more).
FRAME_MAX_WIDTH = 640
THUMBNAIL_HEIGHT = 72
#: Shortest stretch of audio analysed as a window of its own (the speech model needs 0.5 s).
MIN_WINDOW_SECONDS = 1.0


#: Adds fields to the timeline steps in place: ``annotate(steps, audio_16k_mono_or_None)``.
StepAnnotator = Callable[[list[dict[str, Any]], "np.ndarray | None"], None]


@dataclass(frozen=True)
class VideoSettings:
    """How a clip is sampled (from VIDEO_FACE_FPS, VIDEO_WINDOW_SECONDS, VIDEO_HOP_SECONDS, MAX_VIDEO_SECONDS)."""

    face_fps: float = 2.0
    window: float = 2.0
    hop: float = 1.0
    max_seconds: float = 60.0
    thumbnails: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, thumbnails: bool = True) -> VideoSettings:
        return cls(
            face_fps=float(config.get("VIDEO_FACE_FPS", 2.0)),
            window=float(config.get("VIDEO_WINDOW_SECONDS", 2.0)),
            hop=float(config.get("VIDEO_HOP_SECONDS", 1.0)),
            max_seconds=float(config.get("MAX_VIDEO_SECONDS", 60.0)),
            thumbnails=thumbnails,
        )


@dataclass
class DecodedVideo:
    """Sampled frames (time, RGB image) and the mono 16 kHz audio track of one clip."""

    frames: list[tuple[float, Any]] = field(default_factory=list)
    audio: np.ndarray | None = None
    duration: float = 0.0
    has_video: bool = False
    has_audio: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


def _corrupt() -> UnusableInput:
    return UnusableInput(
        "The video could not be decoded; it may be damaged or cut short. Send an MP4, WebM or MOV file.",
        code="corrupt_video",
    )


def _too_long(seconds: float, limit: float) -> InputTooLarge:
    return InputTooLarge(f"The video lasts {seconds:.1f} s; the limit is {limit:g} s.", code="video_too_long")


def decode_video(data: bytes, settings: VideoSettings) -> DecodedVideo:
    """Decode the clip once, keeping one frame per 1/face_fps seconds and all of the audio.

    Raises 422 ``corrupt_video`` (FFmpeg cannot read it), 422 ``no_media_streams`` and 413
    ``video_too_long``; the upload checks answer 415 for files that are no media container.
    """
    import av  # the FFmpeg libraries load only when a clip is decoded

    if not data:
        raise InvalidInput("The uploaded video is empty.", code="empty_file")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise _corrupt() from exc  # the upload checks already sniffed a media container
    out = DecodedVideo()
    try:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise UnusableInput("The file holds neither a video nor an audio track.", code="no_media_streams")
        if container.duration and container.duration / 1e6 > settings.max_seconds + 0.5:
            raise _too_long(container.duration / 1e6, settings.max_seconds)
        out.has_video, out.has_audio = video is not None, audio is not None
        if video is not None:
            video.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SPEECH_RATE) if audio is not None else None
        chunks: list[np.ndarray] = []
        step = 1.0 / settings.face_fps
        next_sample = 0.0
        first_video: float | None = None
        end = 0.0
        streams = [s for s in (video, audio) if s is not None]
        for frame in container.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                when = float(frame.time or 0.0)
                first_video = when if first_video is None else first_video
                when -= first_video
                end = max(end, when + (1.0 / float(video.average_rate or 25)))  # type: ignore[union-attr]
                if when > settings.max_seconds + 0.5:
                    raise _too_long(when, settings.max_seconds)
                if when + 1e-6 >= next_sample:
                    out.frames.append((when, frame.to_image()))
                    next_sample += step * max(1, math.floor((when - next_sample) / step) + 1)
            elif resampler is not None:
                for piece in resampler.resample(frame):
                    chunks.append(piece.to_ndarray().reshape(-1))
                if sum(len(c) for c in chunks) > (settings.max_seconds + 0.5) * SPEECH_RATE:
                    raise _too_long(sum(len(c) for c in chunks) / SPEECH_RATE, settings.max_seconds)
        if resampler is not None:
            for piece in resampler.resample(None):
                chunks.append(piece.to_ndarray().reshape(-1))
        if video is not None and not out.frames:
            out.has_video = False
        if audio is not None:
            out.audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
            if not len(out.audio):
                out.has_audio = False
        audio_seconds = len(out.audio) / SPEECH_RATE if out.audio is not None else 0.0
        out.duration = max(end, audio_seconds)
        if out.duration > settings.max_seconds + 0.5:
            raise _too_long(out.duration, settings.max_seconds)
        if not out.frames and audio_seconds == 0.0:
            raise _corrupt()
        out.summary = {
            "container": container.format.name,
            "duration_seconds": round(out.duration, 3),
            "video_codec": video.codec_context.name if video is not None else None,
            "audio_codec": audio.codec_context.name if audio is not None else None,
            "width": int(video.codec_context.width) if video is not None else None,
            "height": int(video.codec_context.height) if video is not None else None,
        }
    except (av.FFmpegError, ValueError, OSError, EOFError, IndexError) as exc:
        raise _corrupt() from exc
    finally:
        container.close()
    return out


def windows(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """The time steps ``(start, end)``: windows every ``hop`` seconds, plus one that reaches the end."""
    if duration <= 0:
        return []
    if duration <= window:
        return [(0.0, duration)]
    steps = []
    start = 0.0
    while start + window <= duration + 1e-6:
        steps.append((round(start, 3), round(start + window, 3)))
        start += hop
    if duration - steps[-1][1] > 0.25:
        steps.append((round(max(0.0, duration - window), 3), round(duration, 3)))
    return steps


def _png(image: Any) -> bytes:
    if image.width > FRAME_MAX_WIDTH:
        image = image.resize((FRAME_MAX_WIDTH, round(image.height * FRAME_MAX_WIDTH / image.width)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _thumbnail(image: Any) -> str:
    small = image.resize((max(1, round(image.width * THUMBNAIL_HEIGHT / image.height)), THUMBNAIL_HEIGHT))
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _wav(signal: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(signal, -1.0, 1.0), SPEECH_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _probs(values: np.ndarray | list[float]) -> dict[str, float]:
    return {e: round(float(p), 6) for e, p in zip(EMOTIONS, values, strict=True)}


def _mean(rows: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(np.stack(rows), axis=0)
    return mean / mean.sum()


def _summary_of(
    label: str, probs: np.ndarray, recognizer: Any, latency_ms: float, details: dict[str, Any]
) -> ModalityPrediction:
    """The clip's answer for one modality (the mean over its frames or windows), as a recogniser's."""
    return ModalityPrediction(
        modality=label,
        probabilities=tuple(_probs(probs).values()),
        model_name=recognizer.model_name,
        model_version=recognizer.model_version,
        latency_ms=latency_ms,
        details=details,
    )


def analyse_video(
    predictor: Any,
    data: bytes,
    settings: VideoSettings,
    *,
    strategy: str,
    weights: Mapping[str, float] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    step_annotators: Sequence[StepAnnotator] = (),
) -> dict[str, Any]:
    """The clip's :class:`AnalysisResult` (``analysis``) plus ``timeline``, ``counts`` and ``thumbnails``.

    Each of ``step_annotators`` is called once with the finished timeline steps and the clip's
    16 kHz mono audio (None without an audio track) and may add fields to the steps (for
    example the words spoken in each window); the steps are stored as they leave here.

    Raises the 4xx errors of :func:`decode_video`, 422 ``no_usable_modality`` when neither a
    face nor a voice was found anywhere, and 503 when a model is missing or still loading.
    """
    options = dict(options or {})
    fusion = predictor.fusion
    strategy, _ = fusion.validate(strategy, weights, KIND_MODALITIES["video"])
    decoded = decode_video(data, settings)
    wanted = [m for m, present in (("face", decoded.has_video), ("speech", decoded.has_audio)) if present]
    predictor.registry.require_loaded(wanted)

    # -- face: every sampled frame ------------------------------------------------------------
    frame_results: list[tuple[float, np.ndarray | None]] = []
    thumbnails: list[dict[str, Any]] = []
    face_seconds = 0.0
    face_reason: dict[str, str] | None = None
    if decoded.has_video:
        face = predictor.registry.get("face")
        started = time.perf_counter()
        for when, image in decoded.frames:
            try:
                prediction = face.predict(_png(image), **dict(options.get("face") or {}))
                frame_results.append((when, np.asarray(prediction.probabilities)))
            except UnusableInput:
                frame_results.append((when, None))
            if settings.thumbnails:
                thumbnails.append({"time": round(when, 3), "image": _thumbnail(image)})
        face_seconds = time.perf_counter() - started
        if not any(p is not None for _, p in frame_results):
            face_reason = {
                "code": "no_face_detected",
                "message": f"No face was detected in any of the {len(frame_results)} sampled frames.",
            }
    else:
        face_reason = {"code": "no_video_track", "message": "The file has no video track, so no face was analysed."}

    # -- voice: every window ------------------------------------------------------------------
    steps = windows(decoded.duration, settings.window, settings.hop)
    voice_results: list[np.ndarray | None] = []
    voice_seconds = 0.0
    voice_reason: dict[str, str] | None = None
    if decoded.has_audio and decoded.audio is not None:
        speech = predictor.registry.get("speech")
        started = time.perf_counter()
        for start, end in steps:
            piece = decoded.audio[int(start * SPEECH_RATE) : int(end * SPEECH_RATE)]
            if len(piece) < MIN_WINDOW_SECONDS * SPEECH_RATE * 0.5 or not np.any(piece):
                voice_results.append(None)
                continue
            try:
                prediction = speech.predict(_wav(piece), max_seconds=settings.window + 1.0)
                voice_results.append(np.asarray(prediction.probabilities))
            except UnusableInput:
                voice_results.append(None)
        voice_seconds = time.perf_counter() - started
        if not any(p is not None for p in voice_results):
            voice_reason = {"code": "no_speech", "message": f"No voice was heard in any of the {len(steps)} windows."}
    else:
        voice_results = [None] * len(steps)
        voice_reason = {"code": "no_audio_track", "message": "The file has no audio track, so no voice was analysed."}

    if face_reason and voice_reason:
        dropped = {"face": face_reason, "speech": voice_reason}
        error = UnusableInput(
            f"Nothing could be analysed: {face_reason['message']} {voice_reason['message']}", code="no_usable_modality"
        )
        error.dropped = dropped  # type: ignore[attr-defined]
        raise error

    def fuse(parts: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        if len(parts) == 1:
            return next(iter(parts.values())), None
        fused = fusion.fuse(parts, strategy, weights)
        return np.asarray(fused.probabilities), fused

    # -- the timeline ---------------------------------------------------------------------------
    timeline = []
    for index, ((start, end), voice) in enumerate(zip(steps, voice_results, strict=True)):
        last = index == len(steps) - 1
        inside = [p for when, p in frame_results if start - 1e-6 <= when and (when < end - 1e-6 or last)]
        faces = [p for p in inside if p is not None]
        parts: dict[str, np.ndarray] = {}
        step: dict[str, Any] = {"time": round((start + end) / 2, 3), "start": start, "end": end}
        if faces:
            parts["face"] = _mean(faces)
            step["face"] = _probs(parts["face"])
        else:
            step["face"] = None
            step["face_status"] = "no face" if inside else ("no video" if not decoded.has_video else "no frames")
        step["frames"] = len(inside)
        step["frames_with_face"] = len(faces)
        if voice is not None:
            parts["speech"] = voice
            step["voice"] = _probs(voice)
        else:
            step["voice"] = None
            step["voice_status"] = "no voice" if decoded.has_audio else "no audio"
        if parts:
            fused_probs, _ = fuse(parts)
            step["fused"] = _probs(fused_probs)
            step["emotion"] = EMOTIONS[int(np.argmax(fused_probs))]
        else:
            step["fused"] = None
            step["emotion"] = None
        timeline.append(step)

    for annotate in step_annotators:
        annotate(timeline, decoded.audio if decoded.has_audio else None)

    # -- the whole clip -------------------------------------------------------------------------
    individual: dict[str, ModalityPrediction] = {}
    overall: dict[str, np.ndarray] = {}
    faces_found = [p for _, p in frame_results if p is not None]
    voices_found = [p for p in voice_results if p is not None]
    if faces_found:
        overall["face"] = _mean(faces_found)
        individual["face"] = _summary_of(
            "face",
            overall["face"],
            predictor.registry.get("face"),
            face_seconds * 1000,
            {"frames_sampled": len(frame_results), "frames_with_face": len(faces_found), "fps": settings.face_fps},
        )
    if voices_found:
        overall["speech"] = _mean(voices_found)
        individual["speech"] = _summary_of(
            "speech",
            overall["speech"],
            predictor.registry.get("speech"),
            voice_seconds * 1000,
            {"windows": len(steps), "windows_with_voice": len(voices_found), "window_seconds": settings.window},
        )
    probabilities, fused = fuse(overall)
    best = int(np.argmax(probabilities))
    dropped = {m: reason for m, reason in (("face", face_reason), ("speech", voice_reason)) if reason}
    counts = {
        "frames_sampled": len(frame_results),
        "frames_with_face": len(faces_found),
        "windows": len(steps),
        "windows_with_voice": len(voices_found),
        "face_fps": settings.face_fps,
        "window_seconds": settings.window,
        "hop_seconds": settings.hop,
        "duration_seconds": round(decoded.duration, 3),
    }
    analysis = AnalysisResult(
        emotion=EMOTIONS[best],
        confidence=float(probabilities[best]),
        probabilities=tuple(_probs(probabilities).values()),
        predictions=individual,
        dropped=dropped,
        fusion=fused,
    )
    return {
        "analysis": analysis,
        "strategy": strategy,
        "timeline": timeline,
        "counts": counts,
        "model_versions": {m: f"{p.model_name} {p.model_version}" for m, p in analysis.predictions.items()},
        "video": decoded.summary,
        "thumbnails": thumbnails,
    }


def timeline_steps(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The clean per-step list of a video result or stored timeline (time, start, end, face, voice, fused)."""
    return [dict(step) for step in result.get("timeline") or []]


TIMELINE_CSV_HEADER = (
    ["prediction_id", "time", "start", "end", "emotion", "frames", "frames_with_face", "face_status", "voice_status"]
    + [f"face_p_{e}" for e in EMOTIONS]
    + [f"voice_p_{e}" for e in EMOTIONS]
    + [f"fused_p_{e}" for e in EMOTIONS]
)


def timeline_csv_rows(prediction_id: int, steps: list[dict[str, Any]]) -> list[list[Any]]:
    """One CSV row per step, in TIMELINE_CSV_HEADER order (blank probabilities for "no face"/"no voice")."""
    rows = []
    for step in steps:
        row: list[Any] = [
            prediction_id,
            step.get("time"),
            step.get("start"),
            step.get("end"),
            step.get("emotion") or "",
            step.get("frames", ""),
            step.get("frames_with_face", ""),
            step.get("face_status", "face" if step.get("face") else ""),
            step.get("voice_status", "voice" if step.get("voice") else ""),
        ]
        for key in ("face", "voice", "fused"):
            probs = step.get(key) or {}
            row += [f"{probs[e]:.6g}" if e in probs else "" for e in EMOTIONS]
        rows.append(row)
    return rows


def store_video(
    session: Any, user_id: int, result: Mapping[str, Any], video_summary: Mapping[str, Any], *, keep_thumbnails: bool
) -> Any:
    """Store a video result: a ``video`` prediction with its timeline row (thumbnails only when kept)."""
    analysis: AnalysisResult = result["analysis"]
    summaries: dict[str, dict[str, Any]] = {}
    for modality in ("face", "speech"):
        if modality in analysis.predictions or modality in analysis.dropped:
            summaries[modality] = dict(video_summary)
    if "text" in analysis.predictions or "text" in analysis.dropped:
        words = (analysis.transcript or {}).get("text") or ""
        summaries["text"] = {"source": "transcript", "characters": len(words)}
    prediction = store_prediction(session, user_id, "video", analysis, summaries, commit=False)
    summary = {
        "counts": result.get("counts"),
        "model_versions": result.get("model_versions"),
        "video": result.get("video"),
        "strategy": result.get("strategy"),
        "dropped": dict(analysis.dropped),
    }
    if keep_thumbnails:
        summary["thumbnails"] = result.get("thumbnails")
    # store_prediction writes plain INSERTs and returns a detached prediction: the timeline row
    # is added on its own (by key, so no cascade inserts the prediction twice), then attached.
    timeline = VideoTimeline(
        prediction_id=prediction.id, steps=to_jsonable(result.get("timeline") or []), summary=to_jsonable(summary)
    )
    session.add(timeline)
    session.commit()
    set_committed_value(prediction, "video_timeline", timeline)
    return prediction


def video_to_dict(prediction: Any) -> dict[str, Any] | None:
    """The ``video`` object of a stored video prediction (timeline, counts, model versions)."""
    row = prediction.video_timeline if prediction.kind == "video" else None
    if row is None:
        return None
    summary = row.summary or {}
    return {
        "timeline": row.steps,
        "counts": summary.get("counts") or {},
        "model_versions": summary.get("model_versions") or {},
        "source": summary.get("video") or {},
        "thumbnails": summary.get("thumbnails") or [],
    }


def analyse_upload(
    app: Any,
    session: Any,
    user: Any,
    clip: Any,
    *,
    strategy: str,
    weights: Mapping[str, float] | None = None,
    transcribe: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Consent check, analysis and storage of one uploaded clip: ``(prediction, result)``.

    With ``transcribe`` the clip's words join its timeline and its overall result
    (services/video_words.py) and the transcript is stored with the prediction; a server
    without a transcriber answers from face and voice and says why the words are missing.
    The clip itself stays in memory unless KEEP_UPLOADS is on (then it is kept like any
    upload, and so are the frame thumbnails).
    """
    require_consent(user, image=True, audio=True)
    keep = bool(app.config.get("KEEP_UPLOADS"))
    predictor = get_predictor(app)
    words = words_for_clip(app, predictor, strategy=strategy, weights=weights) if transcribe else None
    result = analyse_video(
        predictor,
        clip.data,
        VideoSettings.from_config(app.config),
        strategy=strategy,
        weights=weights,
        step_annotators=[words] if isinstance(words, ClipWords) else (),
    )
    if isinstance(words, ClipWords):
        result = add_words(result, words, predictor.fusion)
    elif words is not None:  # no transcriber here: face and voice answer, and the reason is given
        result = {**result, "analysis": result["analysis"].with_dropped("text", words)}
    summary = {**clip.summary, **{k: v for k, v in result["video"].items() if v is not None}}
    if keep:
        summary["kept_file"] = _keep_upload(app, user, f"video-{clip.summary.get('file_name') or 'clip'}", clip)
    prediction = store_video(session, user.id, result, summary, keep_thumbnails=keep)
    return prediction, result


def export_timeline_csv(session: Any, user_id: int, filters: Any = None) -> Any:
    """The user's video predictions (the history filters apply) as one CSV row per time step."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(TIMELINE_CSV_HEADER)
    yield buffer.getvalue()
    conditions = [*sql_conditions(user_id, filters or HistoryFilters()), Prediction.kind == "video"]
    last_id = 0
    while True:
        rows = session.execute(
            select(VideoTimeline.prediction_id, VideoTimeline.steps)
            .join(Prediction, Prediction.id == VideoTimeline.prediction_id)
            .where(*conditions, Prediction.id > last_id)
            .order_by(Prediction.id)
            .limit(100)
        ).all()
        if not rows:
            break
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        for prediction_id, steps in rows:
            for row in timeline_csv_rows(prediction_id, steps or []):
                writer.writerow([spreadsheet_safe(v) for v in row])
        yield buffer.getvalue()
        last_id = rows[-1][0]
