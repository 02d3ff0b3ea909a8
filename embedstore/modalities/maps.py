"""Reading single-channel 2-D maps (depth, thermal) from images, ``.npy`` files and ViSP ``.bin``."""

from __future__ import annotations

import io
import struct

import numpy as np

from embedstore.errors import UnsupportedMediaType
from embedstore.modalities.sources import (
    DecodeLimits,
    Source,
    decoding,
    describe,
    invalid,
    read_source,
)
from embedstore.modalities.vision import open_image

_NPY_MAGIC = b"\x93NUMPY"
_IMAGE_MAGICS = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"GIF8",
    b"RIFF",
    b"P5",
    b"P2",
)


def read_map(source: Source, limits: DecodeLimits) -> np.ndarray:
    """A 2-D array (H, W) in its stored dtype: 8/16-bit or float image, ``.npy``, or ViSP ``.bin``."""
    data = read_source(source, limits)
    if data.startswith(_NPY_MAGIC):
        with decoding(source, "numpy array"):
            arr = np.load(io.BytesIO(data), allow_pickle=False)
    elif data.startswith(_IMAGE_MAGICS):
        img = open_image(data, limits, exif=False, name=describe(source))
        with decoding(source, "image"):
            arr = np.asarray(img)
    elif _is_visp_bin(data):
        h, w = struct.unpack_from("<II", data)
        arr = np.frombuffer(data, dtype="<u2", offset=8).reshape(h, w)
    else:
        raise UnsupportedMediaType(
            f"{describe(source)}: not a PNG/TIFF/JPEG image, .npy array or ViSP .bin depth file"
        )
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8:
        arr = arr[..., :3].mean(axis=-1)  # grey stored as RGB: average the colour channels
    arr = np.squeeze(arr)
    if arr.ndim != 2 or min(arr.shape) == 0:
        raise invalid(source, f"expected a single-channel 2-D map, got shape {arr.shape}")
    if arr.size > limits.max_pixels:
        raise invalid(source, f"{arr.size} values exceed the pixel limit of {limits.max_pixels}")
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise invalid(source, f"unsupported array dtype {arr.dtype}")
    return arr


def _is_visp_bin(data: bytes) -> bool:
    if len(data) < 10:
        return False
    h, w = struct.unpack_from("<II", data)
    return h > 0 and w > 0 and len(data) == 8 + 2 * h * w
