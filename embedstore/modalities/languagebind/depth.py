"""LanguageBind's depth processor: a single-channel millimetre map to a 3-channel normalised image.

Depth / 1000 (metres), clipped to [0.01, max_depth] and divided by ``max_depth`` (10 on the hub),
copied to 3 channels, resized and cropped like images and normalised with the **RGB** CLIP
statistics (the official quirk). 8-bit maps are read as 0..255 "millimetres" like the official
``cv2.imread(IMREAD_UNCHANGED)``; multi-channel files raise `InvalidMedia` naming the file.
"""

from __future__ import annotations

import numpy as np
import torch

from embedstore.modalities.languagebind.image import normalize, resize_crop
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, decoding, invalid
from embedstore.modalities.vision import open_image

MAX_DEPTH = 10.0


def depth_to_unit(depth_mm: np.ndarray, max_depth: float = MAX_DEPTH) -> torch.Tensor:
    """(H, W) millimetres -> float32 metres clipped to [0.01, max_depth] / max_depth."""
    x = torch.from_numpy(np.asarray(depth_mm, dtype=np.float32).copy()) / 1000
    if max_depth > 0:
        return x.clamp(min=0.01).clamp(max=max_depth) / max_depth
    x = x.clamp(min=0.01)  # max_depth 0: the official code divides by the map's maximum
    return x / x.max()


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    max_depth: float = MAX_DEPTH,
    antialias: bool = True,
) -> torch.Tensor:
    """A depth PNG/TIFF in millimetres as LanguageBind's (3, 224, 224) float32 input."""
    img = open_image(source, limits, exif=False)
    with decoding(source, "depth map"):
        arr = np.asarray(img)
        if arr.ndim != 2:
            raise invalid(
                source,
                f"a {img.mode} image with {arr.shape[-1]} channels; LanguageBind depth takes a "
                "single-channel depth map in millimetres",
            )
        unit = depth_to_unit(arr, max_depth)
        x = unit[None].expand(3, -1, -1).contiguous()
        return normalize(resize_crop(x, antialias=antialias)).contiguous()
