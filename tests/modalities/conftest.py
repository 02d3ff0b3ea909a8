"""Real media for the modality tests, made from the reference photos and sounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from testdata import ASSETS, require_data

torch.set_num_threads(2)


def make_video(
    path: Path,
    *,
    seconds: float = 6.0,
    fps: int = 10,
    sound: bool = True,
    size=(320, 240),
    gop: int = 0,
) -> Path:
    """Encode an H.264 (+ AAC) MP4: a third each of the bird, car and dog photos, with the bird's call."""
    import av  # only the video tests need PyAV

    photos = [
        Image.open(ASSETS / f"{n}_image.jpg").convert("RGB").resize(size)
        for n in ("bird", "car", "dog")
    ]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        if gop:
            video.codec_context.gop_size = gop  # a keyframe every `gop` frames
        audio = out.add_stream("aac", rate=44100) if sound else None
        n = int(seconds * fps)
        for k in range(n):
            for packet in video.encode(av.VideoFrame.from_image(photos[k * 3 // n])):
                out.mux(packet)
        out.mux(video.encode())
        if audio is not None:
            data, rate = soundfile.read(ASSETS / "bird_audio.wav", dtype="float32", always_2d=True)
            mono = np.ascontiguousarray(data[: int(seconds * rate), :1].T)
            frame = av.AudioFrame.from_ndarray(mono, format="fltp", layout="mono")
            frame.sample_rate = rate
            out.mux(audio.encode(frame))
            out.mux(audio.encode())
    return path


@pytest.fixture(scope="session")
def assets() -> Path:
    require_data(ASSETS, f"reference assets not found at {ASSETS}")
    return ASSETS


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory, assets: Path) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "pets.mp4")


@pytest.fixture(scope="session")
def silent_video_file(tmp_path_factory: pytest.TempPathFactory, assets: Path) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "silent.mp4", seconds=3.0, sound=False)
