"""Video: clips spread over the whole file, their times, and the sound track."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from tolerances import assert_same_float32

from embedstore import modalities
from embedstore.modalities import VideoItem
from embedstore.modalities.transforms import image_to_tensor


def _nearest_photo(frame: torch.Tensor, assets: Path) -> str:
    """Which source photo a decoded frame shows (compression noise aside)."""
    names = ("bird", "car", "dog")
    refs = [
        image_to_tensor(Image.open(assets / f"{n}_image.jpg").convert("RGB").resize((320, 240)))
        for n in names
    ]
    return names[min(range(3), key=lambda i: (frame - refs[i]).abs().mean().item())]


def test_video_clips_times_and_sound(video_file: Path, assets: Path) -> None:
    item = modalities.load("video", video_file)
    assert isinstance(item, VideoItem)
    assert item.clips.shape == (5, 3, 2, 224, 224) and item.clips.dtype == torch.float32
    assert item.duration == pytest.approx(6.0, abs=0.1)
    assert item.starts == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0], abs=0.05)
    assert item.ends == pytest.approx([2.0, 3.0, 4.0, 5.0, 6.0], abs=0.05)
    # the video shows bird for 0-2 s, car for 2-4 s, dog for 4-6 s; frames sit at each clip's ends
    shown = [[_nearest_photo(item.clips[s, :, t], assets) for t in range(2)] for s in range(5)]
    assert shown == [
        ["bird", "bird"],
        ["bird", "car"],
        ["car", "car"],
        ["car", "dog"],
        ["dog", "dog"],
    ]
    assert item.audio is not None and item.audio.shape == (3, 1, 128, 204)
    assert torch.isfinite(item.audio).all()


def test_video_without_sound_and_options(silent_video_file: Path) -> None:
    item = modalities.load("video", silent_video_file, clips_per_video=2, frames_per_clip=3)
    assert item.audio is None
    assert item.clips.shape == (2, 3, 3, 224, 224)
    assert item.starts == pytest.approx([0.0, 1.0], abs=0.05)


def test_video_sound_can_be_skipped(video_file: Path) -> None:
    assert modalities.load("video", video_file, audio=False).audio is None


def test_video_shorter_than_a_clip_repeats_its_frames(tmp_path: Path, assets: Path) -> None:
    from tests.modalities.conftest import make_video

    path = make_video(tmp_path / "blink.mp4", seconds=0.5, sound=False)
    item = modalities.load("video", path)
    assert item.clips.shape == (5, 3, 2, 224, 224)
    assert item.starts == [0.0] * 5 and item.ends == pytest.approx([0.5] * 5, abs=0.05)


def test_video_from_bytes(video_file: Path) -> None:
    item = modalities.load("video", video_file.read_bytes(), audio=False)
    assert_same_float32(item.clips, modalities.load("video", video_file, audio=False).clips)


def test_long_gaps_are_seeked_not_decoded(tmp_path: Path, assets: Path) -> None:
    from tests.modalities.conftest import make_video

    path = make_video(
        tmp_path / "long.mp4", seconds=30.0, fps=5, sound=False, size=(160, 120), gop=10
    )
    item = modalities.load("video", path, limits=modalities.DecodeLimits(max_video_frames=100))
    # 150 frames in all; each seek lands on a keyframe at most 2 s before its target
    assert item.starts == pytest.approx([0.0, 7.0, 14.0, 21.0, 28.0], abs=0.05)
