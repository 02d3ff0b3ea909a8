"""LanguageBind's image and thermal processors: PIL decode (no RGB conversion), float resize, crop.

The float tensor is resized with the short side to 224 (bicubic; ``antialias=True`` is what the
pinned torchvision does today, ``antialias=False`` what the torchvision the repo documents did),
centre-cropped with Python rounding and normalised with the CLIP mean/std. Images that are not
3-channel (grayscale, RGBA, palette, 16-bit) fail in the official code; here they raise
`InvalidMedia` naming the file, unless ``convert_rgb=True`` converts them first.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, decoding, invalid
from embedstore.modalities.transforms import CLIP_MEAN, CLIP_STD
from embedstore.modalities.vision import open_image

SIZE = 224
MEAN = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(3, 1, 1)
STD = torch.tensor(CLIP_STD, dtype=torch.float32).view(3, 1, 1)


def short_side(h: int, w: int, size: int = SIZE) -> tuple[int, int]:
    """(h, w) with the short side at ``size`` and the long side ``int(size * long / short)``."""
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


def crop_box(h: int, w: int, size: int = SIZE) -> tuple[int, int]:
    """(top, left) of the centre crop, Python ``round`` (halves to even) as torchvision does."""
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0))


def resize_crop(x: torch.Tensor, *, antialias: bool = True, size: int = SIZE) -> torch.Tensor:
    """Bicubic short-side resize of a float (C, H, W) tensor (no clamping), then a centre crop."""
    h, w = x.shape[-2:]
    nh, nw = short_side(h, w, size)
    if (nh, nw) != (h, w):
        x = F.interpolate(
            x[None], size=(nh, nw), mode="bicubic", align_corners=False, antialias=antialias
        )[0]
    if nh < size or nw < size:
        raise ValueError(f"resized to {nw}x{nh}, smaller than the {size} px crop")
    top, left = crop_box(nh, nw, size)
    return x[..., top : top + size, left : left + size]


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` with the OpenAI CLIP statistics, per channel."""
    return (x - MEAN) / STD


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    antialias: bool = True,
    convert_rgb: bool = False,
) -> torch.Tensor:
    """An RGB image as LanguageBind's (3, 224, 224) float32 input (image and thermal towers)."""
    img = open_image(source, limits, exif=False)
    with decoding(source, "image"):
        if img.mode != "RGB":
            if not convert_rgb:
                raise invalid(
                    source,
                    f"a {img.mode} image; the LanguageBind processor takes 3-channel RGB images "
                    "only (convert_rgb=True converts it first)",
                )
            img = img.convert("RGB")
        return normalize(resize_crop(to_tensor(img), antialias=antialias)).contiguous()


def to_tensor(img: Image.Image) -> torch.Tensor:
    """(C, H, W) float32 in [0, 1] from an 8-bit PIL image."""
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255)
