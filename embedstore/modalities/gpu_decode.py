"""JPEG decoding and resizing on a torch device (nvjpeg on CUDA), and audio fbank on the device.

The exact path (``vision.load``, ``audio.load``) stays the reference. Here, JPEG bytes are read on
the CPU, decoded in one batch by ``torchvision.io.decode_jpeg(..., device=...)``, then resized,
centre-cropped and CLIP-normalised on the device. The resize emulates Pillow's: antialiased
bicubic (a = -0.5) in two separable passes in Pillow's order, rounded to 8 bits after each.
Anything this path does not take (not a JPEG, CMYK, over the pixel limit, a decode error) goes
through the exact path, per file, in the calling thread. ``benchmarks/gpu_decode.py`` measures how far the result moves.
"""

from __future__ import annotations

import io
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import torch
from PIL import Image

from embedstore.errors import EmbedstoreError, InvalidMedia
from embedstore.modalities import audio as _audio
from embedstore.modalities import vision as _vision
from embedstore.modalities.jpeg_header import ORIENTATION, read_header
from embedstore.modalities.sources import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Source,
    decoding,
    describe,
    read_source,
)
from embedstore.modalities.transforms import CLIP_MEAN, CLIP_STD, SIZE, center_box, short_side_size

COSINE_BAR = 0.995  # the deviation from the exact path that "auto" accepts on CUDA
# Lowest cosine between this path on CUDA (nvjpeg decode, torch resize) and the exact one, over
# 285 JPEGs: 189 real photos (the ImageBind reference JPEGs, ViSP's JPEGs and camera frames, Tux
# Paint's photo stamps) and 96 640x480 / 1920x1080 cuts of the reference photos. Preprocessed
# tensors: 0.99954 (nvjpeg upsamples 4:2:0 chroma without libjpeg-turbo's smoothing); their
# embeddings: 0.99998 with imagebind_test and with ImageBind huge (random weights). Measured on an
# NVIDIA H200 by `python -m benchmarks.gpu_decode --device cuda --model test --model huge`
# (benchmarks/results/gpu-decode-cuda-h200.json); on CPU (libjpeg-turbo on both sides) 0.9999994.
MEASURED_MIN_COSINE = 0.99954
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
MODES = ("auto", "on", "off")
MAX_RESIZE_PIXELS = 1 << 26  # decoded pixels resized in one call (float32: 768 MiB for RGB)
_FAST_MODES = frozenset({"RGB", "L"})  # Pillow modes of JPEGs this path decodes
_EOI = b"\xff\xd9"  # a JPEG's last marker

Result = torch.Tensor | EmbedstoreError


def decode_device(mode: str, device: str | torch.device) -> str | None:
    """The device to decode JPEGs on under setting ``mode`` ("auto", "on", "off"), or None.

    "on" uses ``device`` whatever it is; "auto" uses it only when it is CUDA and the measured
    deviation passes ``COSINE_BAR``; "off" never.
    """
    if mode not in MODES:
        raise ValueError(f"gpu_decode must be one of {', '.join(MODES)}, not {mode!r}")
    dev = torch.device(device)
    if mode == "on" or (
        mode == "auto" and dev.type == "cuda" and MEASURED_MIN_COSINE >= COSINE_BAR
    ):
        return str(dev)
    return None


def is_jpeg_name(source: Source) -> bool:
    """True for a path whose suffix is .jpg or .jpeg (the files the device path is offered)."""
    return isinstance(source, Path | str) and Path(source).suffix.lower() in JPEG_SUFFIXES


# -- images ------------------------------------------------------------------------------------
def load_images(
    sources: Sequence[Source],
    device: str | torch.device,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    exif: bool = True,
) -> list[Result]:
    """Each source as ImageBind's (3, 224, 224) float32 input on ``device``, or its error.

    JPEGs are decoded in one ``decode_jpeg`` call; other files, CMYK JPEGs and files the batch
    decoder refuses take the exact path. Errors are returned in place (``InvalidMedia`` and
    friends naming the file), never raised.
    """
    dev = torch.device(device)
    out: list[Result | None] = [None] * len(sources)
    fast: list[tuple[int, bytes, int]] = []  # index, JPEG bytes, EXIF orientation
    for i, src in enumerate(sources):
        try:
            probed = _probe(src, limits, exif)
        except EmbedstoreError as e:
            out[i] = e
            continue
        if probed is None:
            out[i] = _exact(src, limits, exif, dev)
        else:
            fast.append((i, *probed))
    decoded = _decode_jpegs([data for _, data, _ in fast], dev)
    images: dict[int, torch.Tensor] = {}
    for (i, _, orientation), img in zip(fast, decoded):
        if img is None:
            out[i] = _exact(sources[i], limits, exif, dev)
        else:
            images[i] = _orient(img, orientation)
    for i, tensor in _resize_all(images).items():
        out[i] = tensor
    return cast(list[Result], out)  # every index was filled above


def load_image_batch(
    sources: Sequence[Source],
    device: str | torch.device,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    exif: bool = True,
) -> torch.Tensor:
    """``load_images`` stacked into (B, 3, 224, 224); raises the first file's error."""
    results = load_images(sources, device, limits, exif=exif)
    for r in results:
        if isinstance(r, EmbedstoreError):
            raise r
    return torch.stack(results)  # type: ignore[arg-type]


def _probe(source: Source, limits: DecodeLimits, exif: bool) -> tuple[bytes, int] | None:
    """The bytes and EXIF orientation of a JPEG this path can take, else None (exact path)."""
    data = read_source(source, limits)  # size checks; InvalidMedia naming the file
    if not data.rstrip(b"\0").endswith(_EOI):
        return None  # truncated (nvjpeg decodes those silently, grey below the cut): exact path
    header = read_header(data)  # plain files, without Pillow's per-file cost
    if header is not None:
        w, h = header.width, header.height
        if header.sampling not in _DEVICE_LAYOUTS or w * h > limits.max_pixels or not w or not h:
            return None
        return data, header.orientation if exif else 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                w, h = img.size
                if img.format != "JPEG" or img.mode not in _FAST_MODES:
                    return None
                if not device_layout(img):
                    return None
                if w * h > limits.max_pixels or w == 0 or h == 0:
                    return None
                orientation = int(img.getexif().get(ORIENTATION, 1)) if exif else 1
        except Exception:
            return None  # unreadable header, decompression bomb, bad EXIF: the exact path says why
    return data, orientation


# Component sampling factors (h, v) nvjpeg decodes like libjpeg-turbo, measured on an H200
# (benchmarks/gpu_decode.py, the "layout:" rows): grey 1x1 and YCbCr 4:4:4 (pixel cosine 1.0),
# 4:2:2 and 4:2:0 (0.99986 at worst). A grey JPEG that declares 2x2 (legal, and meaningless for one
# component: ViSP's Solvay photos) comes back scrambled (pixel cosine 0.18 to 0.34), so it and any
# layout not listed take the exact path.
_DEVICE_LAYOUTS = frozenset(
    {((1, 1),), ((1, 1),) * 3, ((2, 1), (1, 1), (1, 1)), ((2, 2), (1, 1), (1, 1))}
)


def device_layout(img: Image.Image) -> bool:
    """True when a JPEG's component sampling is one the device decoder is known to get right."""
    layer = getattr(img, "layer", None)
    if not layer:
        return False
    return tuple((h, v) for _id, h, v, _q in layer) in _DEVICE_LAYOUTS


def _exact(source: Source, limits: DecodeLimits, exif: bool, device: torch.device) -> Result:
    """The exact CPU path for one file, moved to ``device``; its error is returned, not raised."""
    try:
        with decoding(source, "image"):
            return _vision.load(source, limits, exif=exif).to(device)
    except EmbedstoreError as e:
        return e


def _decode_jpegs(datas: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """Decode to uint8 (3, H, W) on ``device`` in one call; one file at a time if the batch fails."""
    if not datas:
        return []
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        warnings.filterwarnings("ignore", message=".*decoding and encoding capabilities.*")
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            pass
        out: list[torch.Tensor | None] = []
        for t in tensors:
            try:
                img = decode_jpeg([t], mode=ImageReadMode.RGB, device=device)
                out.append(img[0])
            except RuntimeError:
                out.append(None)
        return out


_TRANSPOSE: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    2: lambda x: x.flip(-1),
    3: lambda x: x.flip(-2, -1),
    4: lambda x: x.flip(-2),
    5: lambda x: x.transpose(-2, -1),
    6: lambda x: torch.rot90(x, -1, dims=(-2, -1)),
    7: lambda x: x.transpose(-2, -1).flip(-2, -1),
    8: lambda x: torch.rot90(x, 1, dims=(-2, -1)),
}


def _orient(img: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation (as ``PIL.ImageOps.exif_transpose`` does) to a (C, H, W) tensor."""
    fn = _TRANSPOSE.get(orientation)
    return fn(img) if fn is not None else img


def _resize_all(images: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Resize + crop + normalise every image; images of one size share one call."""
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, img in images.items():
        by_shape[tuple(img.shape)].append(i)
    out: dict[int, torch.Tensor] = {}
    for shape, idx in by_shape.items():
        step = max(1, MAX_RESIZE_PIXELS // (shape[1] * shape[2]))
        for s in range(0, len(idx), step):
            chunk = idx[s : s + step]
            batch = resize_crop_normalize(torch.stack([images[i] for i in chunk]))
            out.update(zip(chunk, batch))
    return out


def _bicubic(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    y = torch.nn.functional.interpolate(
        x, size=size, mode="bicubic", align_corners=False, antialias=True
    )
    return y.round_().clamp_(0, 255)


def resize_crop_normalize(images: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> CLIP-normalised float32 (B, 3, size, size), on the images' device.

    Short side to ``size`` by antialiased bicubic in two passes, each rounded to 8 bits as Pillow
    does, then the centre crop of ``transforms.resize_center_crop``. Each pass works row by row
    (width) or column by column (height), so the crop of the other axis can come between them.
    """
    h, w = images.shape[-2:]
    nw, nh = short_side_size(w, h, size=size)
    left, top, right, bottom = center_box(nw, nh, size=size)
    x = images.to(torch.float32, copy=True)
    # Pillow's pass order for a short-side resize: height first when both axes shrink and the
    # image is more than twice as tall as wide, else width first (fitted on Pillow 13 over random
    # sizes; tests/modalities/test_gpu_decode.py pins it). The wrong order moves pixels by up to
    # ~12 levels on sharp edges (a quarter of them on a noise image).
    if nw != w and nh != h and w > size and h > 2 * w:
        x = _bicubic(x, (nh, w))[..., top:bottom, :]
        x = _bicubic(x, (size, nw))[..., left:right]
    else:
        if nw != w:
            x = _bicubic(x, (h, nw))
        x = x[..., left:right]
        if nh != h:
            x = _bicubic(x, (nh, x.shape[-1]))
        x = x[..., top:bottom, :]
    x = x.div_(255)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std).contiguous()


# -- audio -------------------------------------------------------------------------------------
def resample_on(waveform: torch.Tensor, orig: int, new: int = _audio.SAMPLE_RATE) -> torch.Tensor:
    """``audio.resample`` on the waveform's device (the same sinc kernel, moved there)."""
    if orig == new or waveform.device.type == "cpu":
        return _audio.resample(waveform, orig, new)
    import math

    import torchaudio
    import torchaudio.functional.functional as _F

    gcd = math.gcd(orig, new)
    if new // gcd > _audio.MAX_CACHED_PHASES or not hasattr(_F, "_apply_sinc_resample_kernel"):
        return torchaudio.functional.resample(waveform, orig, new)
    kernel, width = _audio._resample_kernel(orig, new)
    kernel = kernel.to(waveform.device)
    return _F._apply_sinc_resample_kernel(waveform, orig, new, gcd, kernel, width)  # type: ignore[no-any-return]


def load_audio(
    source: Source,
    device: str | torch.device,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    independent_clips: bool = False,
) -> torch.Tensor:
    """An audio file as ImageBind's (3, 1, 128, 204) float32 input, computed on ``device``.

    Decoding stays on the CPU (soundfile, PyAV); resampling to 16 kHz, the clip split and the
    Kaldi fbank run on ``device``. Raises what ``audio.load`` raises.
    """
    waveform, rate = _audio.read_waveform(source, limits)
    with decoding(source, "audio"):
        wave = resample_on(waveform.to(torch.device(device)), rate)
        return _audio.waveform_to_clips(
            wave, _audio.SAMPLE_RATE, source=source, independent_clips=independent_clips
        )


def load_audios(
    sources: Sequence[Source], device: str | torch.device, limits: DecodeLimits = DEFAULT_LIMITS
) -> list[Result]:
    """``load_audio`` for each source; errors are returned in place, naming the file."""
    out: list[Result] = []
    for src in sources:
        try:
            out.append(load_audio(src, device, limits))
        except EmbedstoreError as e:
            out.append(e)
        except Exception as e:  # a decoder bug must not end the batch
            out.append(InvalidMedia(f"{describe(src)}: decoder failed: {e}", uri=describe(src)))
    return out
