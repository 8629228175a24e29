"""What a file is, named from its first bytes (magic numbers), never from its name or the client's header.

The one table every layer asks: the upload checks (web/uploads.py) and the batch-job members
(services/jobs.py) answer 415 from it, the image decoder picks its Pillow format and the audio
decoder its container from it.
"""

from __future__ import annotations

#: The first atoms of a QuickTime movie without an ``ftyp`` box (older .mov files).
QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free")


def sniff_media_type(data: bytes) -> str | None:
    """The media type from the first bytes (never from the file name or the client's header)."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM") and len(head) >= 26:
        return "image/bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return "audio/mpeg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"  # Matroska/WebM: what browsers' MediaRecorder produces
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    return None


def sniff_clip_type(data: bytes) -> str | None:
    """Like :func:`sniff_media_type`, also naming a QuickTime movie without an ``ftyp`` box."""
    media_type = sniff_media_type(data)
    if media_type is None and data[4:8] in QUICKTIME_ATOMS:
        return "video/quicktime"
    return media_type
