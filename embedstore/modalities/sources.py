"""Inputs of the loaders (a path or bytes), decoding limits and error helpers."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from embedstore.confine import check_opened
from embedstore.errors import EmbedstoreError, InvalidMedia, PayloadTooLarge

Source = Path | str | bytes


class NamedBytes(bytes):
    """Bytes read from somewhere with a name (an object storage URI) that messages use."""

    name: str

    def __new__(cls, data: bytes | bytearray, name: str) -> NamedBytes:
        self = super().__new__(cls, data)
        self.name = name
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # to decode workers with its name
        return (NamedBytes, (bytes(self), self.name))


@dataclass(frozen=True)
class DecodeLimits:
    """Size and time bounds that keep a hostile or huge file from exhausting the machine."""

    max_file_bytes: int = 2 * 1024 * 1024 * 1024
    max_pixels: int = 89_478_485
    max_duration_s: float = 3600.0
    max_video_frames: int = 20_000
    timeout_s: float = 60.0
    roots: tuple[str, ...] = ()
    """When set, a path is read only if the file actually opened lies inside one of these
    (resolved) folders or is one of these files: a link swapped in after the walk is refused."""

    @classmethod
    def from_settings(cls, settings: Any) -> DecodeLimits:
        """Limits taken from ``embedstore.config.Settings``."""
        return cls(
            max_file_bytes=settings.max_file_bytes,
            max_pixels=settings.max_image_pixels,
            timeout_s=settings.decode_timeout_s,
        )


DEFAULT_LIMITS = DecodeLimits()


def describe(source: Source) -> str:
    """A short name for messages: the path, or ``<N bytes>`` for in-memory data."""
    if isinstance(source, NamedBytes):
        return source.name
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return str(source)


def source_size(source: Source) -> int:
    """Size in bytes of the file or buffer; raises ``InvalidMedia`` when the path is unreadable."""
    if isinstance(source, bytes | bytearray | memoryview):
        return len(source)
    try:
        return os.stat(source).st_size
    except OSError as e:
        raise InvalidMedia(f"{source}: cannot read file ({e.strerror})", uri=str(source)) from e


def check_size(source: Source, limits: DecodeLimits) -> int:
    """Reject empty sources and sources over ``max_file_bytes``; returns the size."""
    size = source_size(source)
    name = describe(source)
    if size == 0:
        raise InvalidMedia(f"{name}: file is empty", uri=name)
    if size > limits.max_file_bytes:
        raise PayloadTooLarge(f"{name}: {size} bytes exceeds the limit of {limits.max_file_bytes}")
    if not isinstance(source, bytes | bytearray | memoryview) and Path(source).is_dir():
        raise InvalidMedia(f"{name}: is a directory", uri=name)
    return size


@contextmanager
def open_source(source: Source, limits: DecodeLimits) -> Iterator[IO[bytes]]:
    """A binary file object for a path or bytes, after the size checks."""
    check_size(source, limits)
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(source))
        return
    try:
        f = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise InvalidMedia(f"{source}: cannot open file ({e.strerror})", uri=str(source)) from e
    with f:
        if limits.roots:
            check_opened(f.fileno(), source, limits.roots)
        yield f


def read_source(source: Source, limits: DecodeLimits) -> bytes:
    """All bytes of a path or buffer, after the size checks."""
    with open_source(source, limits) as f:
        return f.read()


def read_text(source: Source, limits: DecodeLimits) -> str:
    """A ``str`` as itself; a path or buffer decoded as UTF-8 (a BOM dropped), after the size checks."""
    if isinstance(source, str):
        return source
    raw = read_source(source, limits)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise invalid(source, f"not UTF-8 text ({e.reason} at byte {e.start})") from e


def invalid(source: Source, reason: str) -> InvalidMedia:
    """An ``InvalidMedia`` naming the source."""
    name = describe(source)
    return InvalidMedia(f"{name}: {reason}", uri=name)


@contextmanager
def decoding(source: Source, what: str) -> Iterator[None]:
    """Turn any library error raised inside the block into ``InvalidMedia`` naming the source."""
    try:
        yield
    except EmbedstoreError:
        raise
    except MemoryError as e:
        raise PayloadTooLarge(f"{describe(source)}: out of memory while decoding {what}") from e
    except Exception as e:  # decoders raise anything: OSError, ValueError, av.FFmpegError, ...
        reason = str(e) or type(e).__name__
        raise invalid(source, f"cannot decode {what}: {reason}") from e
