"""Thermal images (LLVIP-style, one channel) -> (1, 224, 224) float32 in [0, 1].

Never guessed from the extension: a grey PNG is indistinguishable from a photo, so the caller
names the modality.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from PIL import Image

from embedstore.modalities.maps import read_map
from embedstore.modalities.registry import Modality, register_modality
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, decoding
from embedstore.modalities.transforms import resize_center_crop


def scale_to_unit(arr: np.ndarray, scaling: Literal["dtype", "minmax"]) -> np.ndarray:
    """Map raw values to [0, 1]: by the integer type's range, or by the image's own min..max."""
    x = arr.astype(np.float32)
    if scaling == "minmax" or not np.issubdtype(arr.dtype, np.integer):
        finite = x[np.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if scaling == "dtype" and lo >= 0.0 and hi <= 1.0:
            return np.nan_to_num(x, nan=0.0)
        return np.nan_to_num((x - lo) / (hi - lo if hi > lo else 1.0), nan=0.0)
    return x / np.float32(np.iinfo(arr.dtype).max)


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    scaling: Literal["dtype", "minmax"] = "dtype",
    mean: float = 0.0,
    std: float = 1.0,
) -> torch.Tensor:
    """A single-channel image as (1, 224, 224): bicubic short-side resize, centre crop, [0, 1].

    ``scaling="dtype"`` divides 8-bit data by 255 and 16-bit by 65535; ``"minmax"`` stretches each
    image (useful for raw radiometric 16-bit frames). ``mean``/``std`` standardise afterwards.
    """
    raw = read_map(source, limits)
    with decoding(source, "thermal image"):
        if raw.dtype == np.uint8 and scaling == "dtype":  # the LLVIP recipe: PIL resize, then /255
            img = resize_center_crop(Image.fromarray(np.ascontiguousarray(raw)))
            x = torch.from_numpy(np.asarray(img, dtype=np.float32) / np.float32(255))[None]
        else:
            unit = np.ascontiguousarray(scale_to_unit(raw, scaling), dtype=np.float32)
            img = resize_center_crop(Image.fromarray(unit))
            x = torch.from_numpy(np.asarray(img, dtype=np.float32).clip(0, 1))[None]
        return x.sub_(mean).div_(std)


THERMAL = register_modality(
    Modality("thermal", load, frozenset(), "one-channel thermal image -> float32 (1, 224, 224)")
)
