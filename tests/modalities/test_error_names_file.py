"""Every decoding error names the file when the caller gave a path (never ``<N bytes>``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedstore.errors import EmbedstoreError
from embedstore.modalities import load


def _tiff16() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)).save(out, "TIFF")
    return out.getvalue()


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


CASES = {
    "thermal": ("frame.tif", _half(_tiff16())),  # the case from issue 14: a truncated 16-bit TIFF
    "depth": ("depth.tif", _half(_tiff16())),
    "vision": ("photo.png", _half(_png())),
    "audio": ("sound.wav", b"RIFF" + b"\xff" * 60),
    "video": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\xff" * 200),
    "imu": ("motion.npy", b"\x93NUMPY" + b"\xff" * 40),
}


@pytest.mark.parametrize("modality", sorted(CASES))
def test_decoding_error_names_the_file(tmp_path: Path, modality: str) -> None:
    name, data = CASES[modality]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(EmbedstoreError) as err:
        load(modality, path)
    assert str(err.value).startswith(f"{path}: "), str(err.value)
    assert "bytes>" not in str(err.value)
