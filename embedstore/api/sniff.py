"""File-type checks on uploads: sniff magic bytes and match them to the requested modality."""

from __future__ import annotations

import codecs
from pathlib import PurePath

from embedstore.errors import InvalidMedia, UnsupportedMediaType

#: What each sniffed kind of file can be embedded as (the first one is the default).
KIND_MODALITIES: dict[str, tuple[str, ...]] = {
    "image": ("vision", "depth", "thermal"),
    "audio": ("audio",),
    "video": ("video", "audio"),  # a container's soundtrack (a browser's WebM/Opus recording)
    "npy": ("depth", "thermal", "imu"),
    "text": ("text",),
}

#: File suffix used when an upload is stored, by sniffed format.
FORMAT_SUFFIX = {
    "png": ".png", "jpeg": ".jpg", "gif": ".gif", "bmp": ".bmp", "webp": ".webp", "tiff": ".tif",
    "wav": ".wav", "flac": ".flac", "ogg": ".ogg", "mp3": ".mp3", "m4a": ".m4a",
    "mp4": ".mp4", "mov": ".mov", "webm": ".webm", "avi": ".avi", "npy": ".npy", "txt": ".txt",
}  # fmt: skip

FORMAT_KIND = {
    "png": "image", "jpeg": "image", "gif": "image", "bmp": "image", "webp": "image",
    "tiff": "image", "wav": "audio", "flac": "audio", "ogg": "audio", "mp3": "audio",
    "m4a": "audio", "mp4": "video", "mov": "video", "webm": "video", "avi": "video",
    "npy": "npy", "txt": "text",
}  # fmt: skip

#: What a file name's suffix promises (binary kinds only need their magic bytes to match).
SUFFIX_KIND = {
    suffix: kind for kind, suffixes in {
        "image": (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"),
        "audio": (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus"),
        "video": (".mp4", ".mov", ".webm", ".mkv", ".avi"),
        "npy": (".npy",),
        "text": (".txt", ".md"),
    }.items() for suffix in suffixes
}  # fmt: skip

SNIFF_BYTES = 64


def _sniff_binary(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 10 and head[6:10] == b"\0\0\0\0":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "m4a"
        return "mov" if brand == b"qt  " else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    return None


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def sniff_format(head: bytes) -> str | None:
    """The file format named by the first bytes of a file (``png``, ``wav``, ``txt``...), or None."""
    return _sniff_binary(head) or ("txt" if head and _is_text(head) else None)


def check_upload(head: bytes, modality: str | None, filename: str = "upload") -> tuple[str, str]:
    """Return ``(format, modality)`` for an upload, or raise 415/422 naming the file.

    ``modality`` is what the caller asked for; without it the sniffed kind decides (``.npy``
    arrays must name theirs: depth, thermal and imu are never guessed).
    """
    if not head:
        raise InvalidMedia(f"Upload {filename!r} is empty", uri=filename, field="file")
    fmt = sniff_format(head)
    if fmt is None:
        raise UnsupportedMediaType(
            f"Upload {filename!r} is not a supported image, audio, video, text or .npy file"
        )
    kind = FORMAT_KIND[fmt]
    allowed = KIND_MODALITIES[kind]
    named = SUFFIX_KIND.get(PurePath(filename).suffix.lower())
    if kind == "text" and named not in (None, "text"):
        raise UnsupportedMediaType(
            f"Upload {filename!r} is named like a{'n' if named[0] in 'aeiou' else ''} {named} "
            "file but holds text, not a supported media format"
        )
    if modality is None:
        if kind == "npy":
            raise InvalidMedia(
                f"Upload {filename!r} is a .npy array: name its modality (depth, thermal or imu)",
                uri=filename,
                field="modality",
            )
        return fmt, allowed[0]
    if modality not in allowed:
        raise UnsupportedMediaType(
            f"Upload {filename!r} is a {fmt} file, which cannot be read as {modality!r} "
            f"(a {fmt} file can be: {', '.join(allowed)})"
        )
    return fmt, modality
