"""Images: Pillow decoding and the official ImageBind vision transform -> (3, 224, 224) float32."""

from __future__ import annotations

import warnings

import torch
from PIL import Image, ImageOps

from embedstore.errors import PayloadTooLarge, UnsupportedMediaType
from embedstore.modalities.registry import Modality, register_modality
from embedstore.modalities.sources import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Source,
    decoding,
    describe,
    open_source,
)
from embedstore.modalities.transforms import SIZE, image_to_tensor

EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def open_image(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    exif: bool = True,
    draft: int = 0,
    name: str | None = None,
) -> Image.Image:
    """Decode the first frame of an image fully, enforcing the pixel limit before decoding.

    ``name`` labels the errors when ``source`` holds the bytes of a file read earlier.
    """
    label: Source = name if name is not None else source
    name = describe(label)
    with open_source(source, limits) as f, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img: Image.Image = Image.open(f)
        except Image.UnidentifiedImageError as e:
            raise UnsupportedMediaType(f"{name}: not an image format Pillow can read") from e
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise PayloadTooLarge(f"{name}: image dimensions exceed the pixel limit ({e})") from e
        with decoding(label, "image"):
            w, h = img.size
            if w * h > limits.max_pixels:
                raise PayloadTooLarge(
                    f"{name}: {w}x{h} = {w * h} pixels exceeds the limit of {limits.max_pixels}"
                )
            if w == 0 or h == 0:
                raise ValueError(f"image has zero size {w}x{h}")
            if draft and min(w, h) > draft:  # JPEG only: decode at a reduced DCT scale
                scale = draft / min(w, h)
                img.draft("RGB", (int(w * scale) + 1, int(h * scale) + 1))
            img.load()
            if exif:
                img = ImageOps.exif_transpose(img)
        return img


def _flatten_alpha(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    exif: bool = True,
    flatten_alpha: bool = False,
    background: tuple[int, int, int] = (255, 255, 255),
    fast: bool = False,
) -> torch.Tensor:
    """An image file as ImageBind's (3, 224, 224) float32 input.

    ``exif`` applies the EXIF orientation (the official loader ignores it); ``flatten_alpha``
    composites transparent pixels over ``background`` instead of dropping alpha (the official way).
    ``fast`` lets libjpeg decode large JPEGs at a reduced scale (short side >= 448 px) first: several
    times faster on camera photos, no longer bit-identical to the official transform.
    """
    img = open_image(source, limits, exif=exif, draft=2 * SIZE if fast else 0)
    with decoding(source, "image"):
        if flatten_alpha:
            img = _flatten_alpha(img, background)
        return image_to_tensor(img)


VISION = register_modality(
    Modality("vision", load, EXTENSIONS, "images -> float32 (3, 224, 224), CLIP-normalised")
)
