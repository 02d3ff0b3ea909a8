"""Video: PyAV decoding into ImageBind's 2-second, 2-frame clips plus the sound track."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO, Any

import torch
from PIL import Image

from embedstore.errors import EmbedstoreError, PayloadTooLarge
from embedstore.modalities.audio import clip_windows, decode_av_audio, waveform_to_clips
from embedstore.modalities.registry import Modality, register_modality
from embedstore.modalities.sources import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Source,
    decoding,
    describe,
    invalid,
    open_source,
)
from embedstore.modalities.transforms import image_to_tensor

log = logging.getLogger(__name__)

EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi"})
SEEK_GAP_S = 5.0  # decode forward over gaps shorter than this, seek over longer ones


@dataclass
class VideoItem:
    """A decoded video: vision clips (S, 3, T, 224, 224), their times, the sound and the duration."""

    clips: torch.Tensor
    starts: list[float]
    ends: list[float]
    audio: torch.Tensor | None
    duration: float
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def open_video(f: IO[bytes], source: Source, limits: DecodeLimits) -> Iterator[tuple[Any, Any]]:
    """The PyAV container of ``f`` and its first video stream, checked against the pixel limit."""
    import av

    try:
        container = av.open(f, metadata_errors="ignore")
    except av.error.InvalidDataError as e:
        raise invalid(source, f"not a video file we can read ({e.strerror or e})") from e
    with container:
        if not container.streams.video:
            raise invalid(source, "no video stream")
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        if w * h > limits.max_pixels:
            raise PayloadTooLarge(f"{describe(source)}: {w}x{h} frames exceed the pixel limit")
        yield container, stream


def frame_times(
    duration: float, clips: int, clip_seconds: float, frames: int, fps: float
) -> tuple[list[tuple[float, float]], list[float]]:
    """Clip windows (ImageBind's constant clip sampler) and ``frames`` evenly spaced times in each."""
    windows: list[tuple[float, float]] = []
    times: list[float] = []
    last = 1.0 / fps if fps > 0 else 0.0
    for start, end in clip_windows(duration, clip_seconds, clips):
        s, e = float(start), float(min(end, Fraction(duration)))
        windows.append((s, e))
        span = max(e - s - last, 0.0)
        times.extend(s + span * k / max(frames - 1, 1) for k in range(frames))
    return windows, times


def _frame_time(frame: Any, stream: Any) -> float:
    if frame.pts is None:
        return float(frame.time or 0.0)
    return float((frame.pts - (stream.start_time or 0)) * stream.time_base)


def _grab_frames(
    container: Any, source: Source, times: list[float], limits: DecodeLimits
) -> list[Image.Image]:
    """The decoded frame nearest to each time, decoding forward and seeking over long gaps."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    order = sorted(range(len(times)), key=times.__getitem__)
    picked: dict[int, Any] = {}
    decoded, i = 0, 0
    last: tuple[float, Any] | None = None
    while i < len(order):
        if last is not None and times[order[i]] - last[0] > SEEK_GAP_S:
            offset = int(times[order[i]] / stream.time_base) + (stream.start_time or 0)
            container.seek(offset, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            decoded += 1
            if decoded > limits.max_video_frames:
                raise PayloadTooLarge(
                    f"{describe(source)}: more than {limits.max_video_frames} frames decoded"
                )
            t = _frame_time(frame, stream)
            while i < len(order) and t >= times[order[i]] - 1e-6:
                target = times[order[i]]
                earlier = last is not None and last[0] <= target and target - last[0] < t - target
                picked[order[i]] = last[1] if earlier and last is not None else frame
                i += 1
            last = (t, frame)
            if i == len(order) or times[order[i]] - t > SEEK_GAP_S:
                break
        else:  # end of stream: the remaining times take the last frame
            if last is None:
                raise invalid(source, "video stream holds no decodable frames")
            for j in order[i:]:
                picked[j] = last[1]
            i = len(order)
    return [picked[j].to_image() for j in range(len(times))]


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return None


def _audio_track(source: Source, limits: DecodeLimits) -> torch.Tensor | None:
    import av

    with open_source(source, limits) as f, av.open(f, metadata_errors="ignore") as container:
        if not container.streams.audio:
            return None
        try:
            data, rate = decode_av_audio(container, source, limits)
            return waveform_to_clips(torch.from_numpy(data), rate, source=source)
        except EmbedstoreError as e:
            log.warning("%s: sound track skipped: %s", describe(source), e)
            return None


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    clips_per_video: int = 5,
    clip_seconds: float = 2.0,
    frames_per_clip: int = 2,
    audio: bool = True,
) -> VideoItem:
    """A video file as ``VideoItem``: ``clips_per_video`` clips spread over the whole video."""
    name = describe(source)
    with open_source(source, limits) as f, decoding(source, "video"):
        with open_video(f, source, limits) as (container, stream):
            duration = _duration(container, stream)
            if duration is None or duration <= 0:
                raise invalid(source, "video has no duration")
            if duration > limits.max_duration_s:
                raise PayloadTooLarge(
                    f"{name}: {duration:.0f} s exceeds the limit of {limits.max_duration_s:.0f} s"
                )
            fps = float(stream.average_rate or 0)
            windows, times = frame_times(
                duration, clips_per_video, clip_seconds, frames_per_clip, fps
            )
            frames = _grab_frames(container, source, times, limits)
        pixels = torch.stack([image_to_tensor(img) for img in frames])  # (S*T, 3, 224, 224)
        clips = pixels.view(clips_per_video, frames_per_clip, 3, 224, 224).transpose(1, 2)
        sound = _audio_track(source, limits) if audio else None
    return VideoItem(
        clips=clips.contiguous(),
        starts=[s for s, _ in windows],
        ends=[e for _, e in windows],
        audio=sound,
        duration=duration,
    )


VIDEO = register_modality(
    Modality("video", load, EXTENSIONS, "video -> VideoItem (S, 3, 2, 224, 224) clips + sound")
)
