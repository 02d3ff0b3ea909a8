"""Resizing and cropping shared by the image-like modalities (vision, video, depth, thermal)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_MEAN = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(3, 1, 1)
_STD = torch.tensor(CLIP_STD, dtype=torch.float32).view(3, 1, 1)


def short_side_size(width: int, height: int, size: int = SIZE) -> tuple[int, int]:
    """(w, h) with the short side at ``size``; the long side is truncated, as torchvision does."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def center_box(width: int, height: int, size: int = SIZE) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centre crop; Python ``round`` (half to even) like torchvision."""
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return left, top, left + size, top + size


def resize_center_crop(img: Image.Image, size: int = SIZE) -> Image.Image:
    """Pillow bicubic resize of the short side to ``size``, then a centre crop."""
    new = short_side_size(*img.size, size=size)
    if new != img.size:
        img = img.resize(new, Image.Resampling.BICUBIC)
    return img.crop(center_box(*img.size, size=size))


def rgb_to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB 224x224 PIL image as the CLIP-normalised float32 (3, H, W) tensor."""
    arr = np.asarray(img, dtype=np.uint8)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div(255)
    return x.sub_(_MEAN).div_(_STD)


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """The official ImageBind image transform of an RGB PIL image: (3, 224, 224) float32."""
    return rgb_to_tensor(resize_center_crop(img.convert("RGB")))


def map_to_tensor(values: np.ndarray, size: int = SIZE) -> torch.Tensor:
    """A float (H, W) map resized (short side, antialiased bilinear) and centre-cropped: (1, 224, 224)."""
    x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    h, w = values.shape
    nw, nh = short_side_size(w, h, size=size)
    if (nw, nh) != (w, h):
        x = torch.nn.functional.interpolate(
            x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True
        )
    left, top, right, bottom = center_box(nw, nh, size=size)
    return x[0, :, top:bottom, left:right].contiguous()
