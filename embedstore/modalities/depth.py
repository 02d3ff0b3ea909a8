"""Depth maps -> ImageBind's normalised disparity (1, 224, 224) float32.

ImageBind feeds depth as disparity (Omnivore's SUN RGB-D recipe): depth in metres becomes
``baseline * focal / depth``, clamped at ``max_disparity`` and divided by it, then standardised
with ``(x - 0.0418) / 0.0295``. The defaults are a Kinect-like camera (baseline 7.5 cm, focal
518.86 px). Never guessed from the extension: name the modality.
"""

from __future__ import annotations

import numpy as np
import torch

from embedstore.modalities.maps import read_map
from embedstore.modalities.registry import Modality, register_modality
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, decoding
from embedstore.modalities.transforms import map_to_tensor

FOCAL_PX = 518.857901
BASELINE_M = 0.075
MAX_DISPARITY = 75.0
MEAN, STD = 0.0418, 0.0295


def depth_to_disparity(
    depth_m: np.ndarray,
    *,
    focal_length: float = FOCAL_PX,
    baseline: float = BASELINE_M,
    min_depth: float = 0.01,
    max_depth: float = 50.0,
) -> np.ndarray:
    """``baseline * focal / depth`` with depth clipped to [min, max]; invalid depth (<= 0, NaN) -> 0."""
    valid = np.isfinite(depth_m) & (depth_m > 0)
    clipped = np.clip(np.where(valid, depth_m, 1.0), min_depth, max_depth)
    return np.where(valid, baseline * focal_length / clipped, 0.0).astype(np.float32)


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    depth_scale: float | None = None,
    focal_length: float = FOCAL_PX,
    baseline: float = BASELINE_M,
    min_depth: float = 0.01,
    max_depth: float = 50.0,
    max_disparity: float = MAX_DISPARITY,
    mean: float = MEAN,
    std: float = STD,
) -> torch.Tensor:
    """A depth map as (1, 224, 224) float32 normalised disparity.

    ``depth_scale`` converts stored values to metres: default 0.001 for integer data (16-bit PNG,
    ViSP ``.bin``: millimetres) and 1.0 for float data (``.npy``, float TIFF: metres).
    """
    raw = read_map(source, limits)
    with decoding(source, "depth"):
        if depth_scale is None:
            depth_scale = 1.0 if np.issubdtype(raw.dtype, np.floating) else 0.001
        metres = raw.astype(np.float32) * np.float32(depth_scale)
        disparity = depth_to_disparity(
            metres,
            focal_length=focal_length,
            baseline=baseline,
            min_depth=min_depth,
            max_depth=max_depth,
        )
        x = map_to_tensor(disparity)
        x = x.clamp_(max=max_disparity).div_(max_disparity)
        return x.sub_(mean).div_(std)


DEPTH = register_modality(
    Modality("depth", load, frozenset(), "depth map -> float32 (1, 224, 224) normalised disparity")
)
