"""Batch jobs: a ZIP of images, voice recordings and video clips, or a CSV of texts.

``create_job`` checks the upload (size, item count, ZIP bombs, names), keeps it in
``JOBS_DIR/<user id>/`` and queues the job; the worker runs :func:`run_job`, which analyses
one item at a time with the same services as single predictions (same consent rules) and
stores each item's prediction and a ``job_items`` row as soon as it is done. A restarted job
therefore skips every item already stored, and a crash loses at most the item in flight.
A bad item fails alone with its reason. The upload is deleted when the job ends (unless
KEEP_UPLOADS is on). Every query is scoped by the owner: another user's job is "not found".
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from database.models import (
    JOB_FINISHED,
    PROBABILITY_COLUMNS,
    Job,
    JobItem,
    ModalityResult,
    Prediction,
    Transcript,
    User,
    utcnow,
)
from database.session import get_database
from errors import (
    EmotionAppError,
    InputTooLarge,
    InvalidInput,
    ModelLoading,
    ModelUnavailable,
    UnsupportedMediaType,
    UnusableInput,
)
from inference.labels import EMOTIONS
from preprocessing.media_type import sniff_clip_type
from services import analysis, video
from services.accounts import NotFound, database_id, isoformat
from services.predictions.export import spreadsheet_safe
from services.predictions.store import delete_prediction
from services.queue import enqueue

log = logging.getLogger(__name__)

ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!", b"BZh", b"\xfd7zXZ")
MAX_FAILURES_LISTED = 100
MAX_NAME = 255


class JobConflict(EmotionAppError):
    status = 409
    code = "job_finished"


class QueueUnavailable(EmotionAppError):
    """The task queue (Redis, or the SQLite queue file) could not take the job."""

    status = 503
    code = "queue_unavailable"


@dataclass(frozen=True)
class Item:
    """One unit of work: its position in the upload, its name, and how to read it."""

    position: int
    name: str
    member: str | None = None  # the ZIP member
    text: str | None = None  # a CSV row's text
    refused: tuple[str, str] | None = None  # (code, message) found while listing


# -- reading uploads ---------------------------------------------------------------------------
def _unsafe_name(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return name.startswith(("/", "\\")) or ".." in path.parts or (len(name) > 1 and name[1] == ":")


def zip_items(path: Path, config: Any) -> list[Item]:
    """The ZIP's files in archive order; unsafe ones refused per item, a bomb refuses the job."""
    max_items = int(config.get("JOB_MAX_ITEMS", 500))
    max_unpacked = float(config.get("JOB_MAX_UNPACKED_MB", 500)) * 1024 * 1024
    max_ratio = float(config.get("JOB_MAX_RATIO", 100))
    max_member = float(config.get("MAX_UPLOAD_MB", 20)) * 1024 * 1024
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UnusableInput("The ZIP archive could not be read; it may be damaged.", code="corrupt_archive") from exc
    infos = [i for i in infos if not i.filename.startswith("__MACOSX/") and PurePosixPath(i.filename).name[:1] != "."]
    if not infos:
        raise UnusableInput("The ZIP archive holds no files.", code="empty_job")
    if len(infos) > max_items:
        raise InputTooLarge(f"The ZIP holds {len(infos)} files; the limit is {max_items}.", code="too_many_items")
    unpacked = sum(i.file_size for i in infos)
    if unpacked > max_unpacked:
        raise InputTooLarge(
            f"The ZIP unpacks to {unpacked / 1e6:.0f} MB; the limit is {max_unpacked / 1e6:.0f} MB.",
            code="job_too_large",
        )
    items = []
    for position, info in enumerate(infos):
        name = info.filename[:MAX_NAME]
        refused = None
        if _unsafe_name(info.filename):
            refused = ("unsafe_name", "The file name points outside the archive; it was not read.")
        elif info.flag_bits & 0x1:
            refused = ("encrypted_file", "The file is encrypted; it was not read.")
        elif info.file_size > max_member:
            refused = ("item_too_large", f"The file is larger than {max_member / 1e6:.0f} MB.")
        elif info.compress_size and info.file_size / info.compress_size > max_ratio:
            refused = ("zip_bomb", f"The file is compressed more than {max_ratio:g}:1 (a ZIP bomb?); it was not read.")
        items.append(Item(position=position, name=name, member=info.filename, refused=refused))
    return items


def csv_items(data: bytes, config: Any) -> list[Item]:
    """Rows of a CSV with a ``text`` column (and optionally ``id``); 400/413 for a bad file."""
    max_items = int(config.get("JOB_MAX_ITEMS", 500))
    max_chars = int(config.get("MAX_TEXT_CHARS", 5000))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("The CSV is not UTF-8 text.", code="invalid_csv") from None
    try:
        reader = csv.DictReader(io.StringIO(text))
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "text" not in fields:
            raise InvalidInput(
                "The CSV needs a header row with a 'text' column (and optionally 'id').", code="invalid_csv"
            )
        reader.fieldnames = fields
        items = []
        for position, row in enumerate(reader):
            if position >= max_items:
                raise InputTooLarge(f"The CSV has more than {max_items} rows.", code="too_many_items")
            value = row.get("text") or ""
            name = (row.get("id") or "").strip()[:MAX_NAME] or f"row {position + 1}"
            refused = None
            if not value.strip():
                refused = ("empty_text", "The text is empty.")
            elif len(value) > max_chars:
                refused = ("text_too_long", f"The text has {len(value)} characters; the limit is {max_chars}.")
            items.append(Item(position=position, name=name, text=value, refused=refused))
    except csv.Error as exc:
        raise InvalidInput(f"The CSV could not be parsed: {exc}.", code="invalid_csv") from None
    if not items:
        raise UnusableInput("The CSV has no rows.", code="empty_job")
    return items


def detect_source(data: bytes, file_name: str) -> str:
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return "zip"
    if file_name.lower().endswith(".csv") or b"\x00" not in data[:4096]:
        return "csv"
    raise UnsupportedMediaType("Send a ZIP of images, recordings and clips, or a CSV of texts.", code="unsupported_job")


def list_items(job: Job, path: Path, config: Any) -> list[Item]:
    if job.source == "zip":
        return zip_items(path, config)
    return csv_items(path.read_bytes(), config)


# -- creating, reading, cancelling ---------------------------------------------------------
def _jobs_dir(app: Flask) -> Path:
    return Path(app.config["JOBS_DIR"])


def create_job(
    app: Flask, session: Session, user: User, data: bytes, file_name: str, *, transcribe: bool = False
) -> Job:
    """Check and keep the upload, create the job row and queue it (the caller answers 202).

    ``transcribe``: the recordings and clips are transcribed and their words fused like a
    single prediction's (texts of a CSV are words already)."""
    if not data:
        raise UnusableInput("The uploaded file is empty.", code="empty_file")
    source = detect_source(data, file_name)
    folder = _jobs_dir(app) / str(user.id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.{source}"
    path.write_bytes(data)
    try:
        items = zip_items(path, app.config) if source == "zip" else csv_items(data, app.config)
        if source == "zip":
            analysis.require_consent(user, image=True, audio=True)
    except EmotionAppError:
        path.unlink(missing_ok=True)
        raise
    job = Job(
        user_id=user.id,
        status="queued",
        source=source,
        file_name=(file_name or "")[:200] or None,
        upload_path=f"{user.id}/{path.name}",
        total=len(items),
        transcribe=bool(transcribe),
    )
    session.add(job)
    session.commit()
    try:
        enqueue(app, job.id)
    except Exception as exc:  # the broker is down: say so, and keep nothing half-queued
        log.exception("event=job_enqueue_failed job_id=%s", job.id)
        _finish(app, session, job, "failed", QueueUnavailable("The job queue is unavailable; try again later."))
        raise QueueUnavailable("The job queue is unavailable right now; nothing was queued. Try again later.") from exc
    log.info("event=job_queued job_id=%s user_id=%s items=%s source=%s", job.id, user.id, job.total, source)
    session.refresh(job)
    return job


def get_job(session: Session, user_id: int, job_id: Any) -> Job:
    jid = database_id(job_id)
    job = session.scalar(select(Job).where(Job.id == jid, Job.user_id == user_id)) if jid is not None else None
    if job is None:
        raise NotFound("No such job.")
    return job


def list_jobs(session: Session, user_id: int, limit: int = 50) -> list[Job]:
    return list(
        session.scalars(
            select(Job).where(Job.user_id == user_id).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
        )
    )


def cancel_job(app: Flask, session: Session, user_id: int, job_id: Any) -> Job:
    """Stop a queued or running job (the worker stops before its next item); 409 once it has ended."""
    job = get_job(session, user_id, job_id)
    if job.status in JOB_FINISHED:
        raise JobConflict(f"The job has already ended ({job.status}).")
    job.status = "cancelled"
    job.finished_at = utcnow()
    _delete_upload(app, job)
    session.commit()
    return job


def job_to_dict(session: Session, job: Job) -> dict[str, Any]:
    failures = session.execute(
        select(JobItem.name, JobItem.error_code, JobItem.error_message)
        .where(JobItem.job_id == job.id, JobItem.error_code.is_not(None))
        .order_by(JobItem.position)
        .limit(MAX_FAILURES_LISTED)
    ).all()
    processed = job.done + job.failed
    remaining = max(job.total - processed, 0)
    eta = None
    if job.status in {"queued", "running"} and processed:
        eta = round(job.busy_seconds / processed * remaining, 1)
    return {
        "id": job.id,
        "status": job.status,
        "source": job.source,
        "file_name": job.file_name,
        "total": job.total,
        "done": processed,
        "succeeded": job.done,
        "failed": job.failed,
        "progress": round(processed / job.total, 4) if job.total else 0.0,
        "eta_seconds": eta,
        "failures": [{"name": n, "code": c, "message": m} for n, c, m in failures],
        "transcribe": bool(job.transcribe),
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "created_at": isoformat(job.created_at),
        "started_at": isoformat(job.started_at),
        "finished_at": isoformat(job.finished_at),
        "links": {
            "self": f"/api/jobs/{job.id}",
            "results": f"/api/jobs/{job.id}/results.csv",
            "page": f"/jobs/{job.id}",
        },
    }


RESULTS_HEADER = (
    ["item", "name", "prediction_id", "kind", "emotion", "confidence"]
    + [f"p_{e}" for e in EMOTIONS]
    + ["error", "transcript", "transcript_note"]
)


def _transcript_notes(session: Session, prediction_ids: list[int]) -> dict[int, tuple[str, str]]:
    """``{prediction id: (transcript text, why the words were left out)}`` for the job's predictions."""
    if not prediction_ids:
        return {}
    notes: dict[int, tuple[str, str]] = {}
    for prediction_id, text in session.execute(
        select(Transcript.prediction_id, Transcript.text).where(Transcript.prediction_id.in_(prediction_ids))
    ):
        notes[prediction_id] = (text or "", "")
    for prediction_id, code, message in session.execute(
        select(ModalityResult.prediction_id, ModalityResult.error_code, ModalityResult.error_message).where(
            ModalityResult.prediction_id.in_(prediction_ids),
            ModalityResult.modality == "text",
            ModalityResult.error_code.is_not(None),
        )
    ):
        notes[prediction_id] = (notes.get(prediction_id, ("", ""))[0], f"{code}: {message}")
    return notes


def results_csv(session: Session, job: Job) -> Iterator[str]:
    """One row per finished item, in upload order: its prediction or its error, and the words
    heard in it (``transcript``) or why they were left out (``transcript_note``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(RESULTS_HEADER)
    rows = session.execute(
        select(JobItem, Prediction)
        .outerjoin(Prediction, Prediction.id == JobItem.prediction_id)
        .where(JobItem.job_id == job.id)
        .order_by(JobItem.position)
    ).all()
    notes = _transcript_notes(session, [p.id for _, p in rows if p is not None])
    for item, prediction in rows:
        row: list[Any] = [item.position + 1, item.name]
        if prediction is not None:
            row += [prediction.id, prediction.kind, prediction.emotion, f"{prediction.confidence:.6g}"]
            row += [f"{getattr(prediction, c):.6g}" for c in PROBABILITY_COLUMNS]
            row += ["", *notes.get(prediction.id, ("", ""))]
        else:
            error = f"{item.error_code}: {item.error_message}" if item.error_code else "prediction deleted"
            row += ["", "", "", ""] + [""] * len(EMOTIONS) + [error, "", ""]
        writer.writerow([spreadsheet_safe(v) for v in row])
    yield buffer.getvalue()


def delete_user_files(app: Flask, user_id: int) -> None:
    """Remove every job upload of an account (its rows go with the account)."""
    shutil.rmtree(_jobs_dir(app) / str(user_id), ignore_errors=True)


def _delete_upload(app: Flask, job: Job) -> None:
    if job.upload_path and not app.config.get("KEEP_UPLOADS"):
        (_jobs_dir(app) / job.upload_path).unlink(missing_ok=True)
        job.upload_path = None


# -- running (the worker) -------------------------------------------------------------------
MEDIA_KINDS = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "image",
    "image/bmp": "image",
    "audio/wav": "speech",
    "audio/flac": "speech",
    "audio/ogg": "speech",
    "audio/mpeg": "speech",
    "audio/aiff": "speech",
    "audio/mp4": "video",
    "audio/webm": "video",
    "video/quicktime": "video",
}


def _analyse_member(app: Flask, session: Session, user: User, *, job: Job, item: Item, data: bytes) -> Prediction:
    if any(data.startswith(magic) for magic in ARCHIVE_MAGIC):
        raise UnsupportedMediaType("Archives inside the archive are not opened.", code="nested_archive")
    media_type = sniff_clip_type(data)
    kind = MEDIA_KINDS.get(media_type or "")
    if kind is None:
        raise UnsupportedMediaType(
            f"Not an image, voice recording or video clip (detected: {media_type or 'unknown'}).",
            code="unsupported_media_type",
        )
    summary = {
        "file_name": PurePosixPath(item.name).name[:120],
        "media_type": media_type,
        "size_bytes": len(data),
        "job_id": job.id,
    }
    media = analysis.MediaInput(data=data, summary=summary)
    if kind == "video":
        strategy = analysis.fusion_offer(app)[0]
        prediction, _ = video.analyse_upload(app, session, user, media, strategy=strategy, transcribe=job.transcribe)
        return prediction
    if kind == "image":
        return analysis.analyse(app, session, user, kind="image", image=media)
    if job.transcribe:
        try:
            analysis.get_transcriber(app)
        except ModelLoading:
            raise  # the job waits and is retried, as for a recogniser that is loading
        except ModelUnavailable as exc:  # switched off or refused: the voice answers, the reason is kept
            reason = {"code": exc.code, "message": f"The words were not transcribed: {exc.message}"}
            return analysis.analyse(app, session, user, kind="speech", audio=media, transcript_dropped=reason)
    return analysis.analyse(app, session, user, kind="speech", audio=media, transcribe=job.transcribe)


def _read_member(archive: zipfile.ZipFile, item: Item, limit: int) -> bytes:
    """The member's bytes, never more than ``limit`` whatever its header claims."""
    with archive.open(item.member or "") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InputTooLarge("The file unpacks to more than the archive said.", code="zip_bomb")
    return data


def run_job(app: Flask, job_id: int, *, max_items: int | None = None) -> None:
    """Analyse the job's items not yet stored (at most ``max_items`` this call), then finish it."""
    database = get_database(app)
    with database.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status in JOB_FINISHED:
            return
        if job.status == "queued":
            job.status = "running"
            job.started_at = job.started_at or utcnow()
            session.commit()
        path = _jobs_dir(app) / (job.upload_path or "")
        try:
            if not job.upload_path or not path.is_file():
                raise UnusableInput("The job's upload is gone; submit the files again.", code="upload_missing")
            items = list_items(job, path, app.config)
        except EmotionAppError as exc:
            _finish(app, session, job, "failed", exc)
            return
        stored = set(session.scalars(select(JobItem.position).where(JobItem.job_id == job.id)))
        archive = zipfile.ZipFile(path) if job.source == "zip" else None
        member_limit = int(float(app.config.get("MAX_UPLOAD_MB", 20)) * 1024 * 1024)
        handled = 0
        try:
            for item in items:
                if item.position in stored:
                    continue  # done before a restart
                if max_items is not None and handled >= max_items:
                    return
                session.expire_all()
                job = session.get(Job, job_id)
                user = session.get(User, job.user_id) if job is not None else None
                if job is None or user is None or job.status != "running":
                    return  # cancelled, or the account was deleted
                _run_item(app, session, user, job=job, item=item, archive=archive, limit=member_limit)
                handled += 1
        finally:
            if archive is not None:
                archive.close()
        job = session.get(Job, job_id)
        if job is not None and job.status == "running":
            _finish(app, session, job, "done", None)


def _run_item(
    app: Flask, session: Session, user: User, *, job: Job, item: Item, archive: zipfile.ZipFile | None, limit: int
) -> None:
    started = time.perf_counter()
    prediction_id = None
    error: tuple[str, str] | None = item.refused
    if error is None:
        try:
            if archive is not None:
                data = _read_member(archive, item, limit)
                prediction = _analyse_member(app, session, user, job=job, item=item, data=data)
            else:
                summary = {"text": item.text, "characters": len(item.text or ""), "job_id": job.id, "id": item.name}
                prediction = analysis.analyse(app, session, user, kind="text", text=item.text, text_summary=summary)
            prediction_id = prediction.id
        except EmotionAppError as exc:
            session.rollback()
            if exc.status == 503:
                raise  # a model is missing or loading: the job waits for a retry, nothing is marked failed
            error = (exc.code, exc.message)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            session.rollback()
            log.warning("event=job_item_unreadable job_id=%s item=%s error=%r", job.id, item.position, str(exc))
            error = ("unreadable_file", "The file could not be read from the archive.")
    seconds = time.perf_counter() - started
    session.add(
        JobItem(
            job_id=job.id,
            position=item.position,
            name=item.name,
            prediction_id=prediction_id,
            error_code=error[0][:64] if error else None,
            error_message=error[1][:500] if error else None,
            seconds=seconds,
        )
    )
    if error:
        job.failed += 1
    else:
        job.done += 1
    job.busy_seconds += seconds
    try:
        session.commit()
    except IntegrityError:  # another run of the same job stored this item first: drop our copy
        session.rollback()
        if prediction_id is not None:
            delete_prediction(session, user.id, prediction_id, uploads_dir=None)


def _finish(app: Flask, session: Session, job: Job, status: str, error: EmotionAppError | None) -> None:
    job.status = status
    job.finished_at = utcnow()
    if error is not None:
        job.error_code, job.error_message = error.code, error.message[:500]
    _delete_upload(app, job)
    session.commit()
    log.info("event=job_finished job_id=%s status=%s done=%s failed=%s", job.id, status, job.done, job.failed)


def unfinished_job_ids(app: Flask) -> list[int]:
    """Jobs a worker should (re)start: queued or running ones (run_job skips stored items)."""
    with get_database(app).session() as session:
        return list(session.scalars(select(Job.id).where(Job.status.in_(("queued", "running"))).order_by(Job.id)))
