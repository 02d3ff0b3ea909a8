"""A JPEG's frame header and EXIF orientation, read from its bytes without decoding.

The device decode path asks this of every file before batching it. Pillow answers the same
questions, but parsing each header in Python objects costs about 100 us a file; this walk over
the markers up to the first scan costs 7-8 us. It answers only for plain files: anything
unusual (no frame header before the scan, an Adobe marker, arithmetic or lossless coding, 12-bit
samples, a malformed segment or EXIF block) returns ``None`` and the caller asks Pillow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_SOI = b"\xff\xd8"
_SOS, _APP1, _APP14 = 0xDA, 0xE1, 0xEE
_FRAMES = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended, progressive Huffman
_OTHER_FRAMES = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length
ORIENTATION = 0x0112  # the EXIF tag


@dataclass(frozen=True, slots=True)
class JpegHeader:
    """What the device path needs to know of a JPEG before decoding it."""

    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]  # (h, v) per component, in frame order
    orientation: int  # EXIF orientation (1 when absent)

    @property
    def mode(self) -> str:
        """Pillow's mode for this frame: "L" (one component) or "RGB" (three)."""
        return "L" if len(self.sampling) == 1 else "RGB"


def read_header(data: bytes) -> JpegHeader | None:
    """The header of a plain 8-bit Huffman JPEG with one or three components, else None."""
    if not data.startswith(_SOI):
        return None
    n, i = len(data), 2
    frame: bytes | None = None
    exif: bytes | None = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker == _SOS:
            break
        (length,) = struct.unpack_from(">H", data, i + 2)
        if length < 2 or i + 2 + length > n:
            return None
        segment = data[i + 4 : i + 2 + length]
        if marker in _FRAMES:
            if frame is not None:
                return None
            frame = segment
        elif marker in _OTHER_FRAMES or marker == _APP14:
            return None
        elif marker == _APP1 and exif is None and segment.startswith(b"Exif\0\0"):
            exif = segment[6:]
        i += 2 + length
    else:
        return None  # no scan: truncated or not a JPEG
    if frame is None or len(frame) < 6 or frame[0] != 8:
        return None
    height, width = struct.unpack_from(">HH", frame, 1)
    count = frame[5]
    if count not in (1, 3) or len(frame) < 6 + 3 * count:
        return None
    sampling = tuple((frame[7 + 3 * k] >> 4, frame[7 + 3 * k] & 15) for k in range(count))
    orientation = 1 if exif is None else _exif_orientation(exif)
    if orientation is None:
        return None
    return JpegHeader(width, height, sampling, orientation)


def _exif_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 of an EXIF (TIFF) block, 1 when absent, None when malformed."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    end = "<" if tiff[:2] == b"II" else ">"
    magic, ifd = struct.unpack_from(end + "HI", tiff, 2)
    if magic != 42 or ifd + 2 > len(tiff):
        return None
    (entries,) = struct.unpack_from(end + "H", tiff, ifd)
    if ifd + 2 + 12 * entries > len(tiff):
        return None
    for k in range(entries):
        tag, kind, count = struct.unpack_from(end + "HHI", tiff, ifd + 2 + 12 * k)
        if tag == ORIENTATION:
            if kind != 3 or count != 1:  # SHORT, one value
                return None
            (value,) = struct.unpack_from(end + "H", tiff, ifd + 2 + 12 * k + 8)
            return int(value)
    return 1


__all__ = ["ORIENTATION", "JpegHeader", "read_header"]
