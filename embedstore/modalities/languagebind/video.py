"""LanguageBind's video processor (decord backend) reproduced with PyAV.

``num_frames`` frame indices ``linspace(0, n - 1, num_frames)`` truncated to integers (frames repeat
when the file has fewer), decoded as RGB, scaled to [0, 1], **normalised before resizing**, short
side to 224 with bilinear interpolation and no antialiasing (long side ``floor(long / short * 224)``),
centre crop 224. The official processor then flips the clip horizontally with probability 0.5 at
inference; here ``flip=False`` (the default) keeps it deterministic and ``flip=True`` applies it.
``clips_per_video`` > 1 splits the frame range into that many equal parts, one clip each, so
search hits carry time ranges; 1 (the default) is the official single clip over the whole video.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedstore.errors import EmbedstoreError, PayloadTooLarge
from embedstore.modalities.languagebind import audio as lb_audio
from embedstore.modalities.languagebind.image import SIZE, crop_box
from embedstore.modalities.sources import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Source,
    decoding,
    describe,
    invalid,
    open_source,
)
from embedstore.modalities.transforms import CLIP_MEAN, CLIP_STD
from embedstore.modalities.video import VideoItem, open_video

NUM_FRAMES = 8
_MEAN = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(3, 1, 1, 1)
_STD = torch.tensor(CLIP_STD, dtype=torch.float32).view(3, 1, 1, 1)


def frame_indices(n: int, num_frames: int = NUM_FRAMES, clips: int = 1) -> list[list[int]]:
    """Per clip, ``np.linspace(lo, hi, num_frames, dtype=int)`` over its share of ``n`` frames."""
    bounds = np.linspace(0, n, clips + 1)
    out = []
    for c in range(clips):
        lo, hi = int(bounds[c]), max(int(bounds[c + 1]) - 1, int(bounds[c]))
        out.append(np.linspace(lo, hi, num_frames, dtype=int).tolist())
    return out


def frames_to_clip(frames: np.ndarray, *, size: int = SIZE) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> normalised, resized, centre-cropped (3, T, size, size) float32."""
    x = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255.0
    x = (x - _MEAN) / _STD
    h, w = x.shape[-2:]
    if w < h:
        nh, nw = int(math.floor((float(h) / w) * size)), size
    else:
        nh, nw = size, int(math.floor((float(w) / h) * size))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    top, left = crop_box(nh, nw, size)
    return x[..., top : top + size, left : left + size].contiguous()


def _count_frames(container: Any, stream: Any) -> int:
    """Frames in the stream: from the header when given, else by counting packets (no decode)."""
    if stream.frames:
        return int(stream.frames)
    n = sum(1 for packet in container.demux(stream) if packet.size)
    container.seek(0, stream=stream)
    return n


def _decode(
    source: Source, limits: DecodeLimits, num_frames: int, clips: int
) -> tuple[list[np.ndarray], int, float]:
    """Per clip the (T, H, W, 3) RGB frames, the stream's frame count and its frame rate."""
    with open_source(source, limits) as f:
        with open_video(f, source, limits) as (container, stream):
            n = _count_frames(container, stream)
            if n == 0:
                raise invalid(source, "video stream holds no frames")
            if n > limits.max_video_frames:
                raise PayloadTooLarge(
                    f"{describe(source)}: {n} frames exceed the limit of {limits.max_video_frames}"
                )
            rate = float(stream.average_rate or 0) or 25.0
            groups = frame_indices(n, num_frames, clips)
            wanted = {i for g in groups for i in g}
            picked: dict[int, np.ndarray] = {}
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    picked[i] = frame.to_ndarray(format="rgb24")
                if i >= max(wanted):
                    break
    if not picked:
        raise invalid(source, "video stream holds no decodable frames")
    last = picked[max(picked)]  # a header that over-counts: later indices take the last frame
    return [np.stack([picked.get(i, last) for i in g]) for g in groups], n, rate


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    num_frames: int = NUM_FRAMES,
    clips_per_video: int = 1,
    flip: bool = False,
    audio: bool = True,
    mel_bins: int = lb_audio.MEL_BINS,
) -> VideoItem:
    """A video file as a ``VideoItem`` of (clips_per_video, 3, num_frames, 224, 224) clips."""
    if num_frames < 1 or clips_per_video < 1:
        raise invalid(source, "num_frames and clips_per_video must be at least 1")
    with decoding(source, "video"):
        groups, n, rate = _decode(source, limits, num_frames, clips_per_video)
        clips = [frames_to_clip(frames) for frames in groups]
        if flip:
            clips = [c.flip(-1) for c in clips]
        bounds = np.linspace(0, n, clips_per_video + 1) / rate
        sound = _sound(source, limits, mel_bins) if audio else None
    return VideoItem(
        clips=torch.stack(clips),
        starts=[float(b) for b in bounds[:-1]],
        ends=[float(b) for b in bounds[1:]],
        audio=sound,
        duration=float(n / rate),
    )


def _sound(source: Source, limits: DecodeLimits, mel_bins: int) -> torch.Tensor | None:
    import av

    from embedstore.modalities.audio import decode_av_audio

    with open_source(source, limits) as f, av.open(f, metadata_errors="ignore") as container:
        if not container.streams.audio:
            return None
        try:
            data, rate = decode_av_audio(container, source, limits)
            return lb_audio.waveform_to_input(
                torch.from_numpy(data), rate, source=source, mel_bins=mel_bins
            )
        except EmbedstoreError:
            return None
