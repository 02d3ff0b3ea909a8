"""Real media for the ingest tests, made from the reference assets in ../shared."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image
from testdata import ASSETS, require_data

NAMES = ("dog", "car", "bird")


def make_library(root: Path, names: Sequence[str] = NAMES, size: int = 96) -> Path:
    """Small PNGs, 1-second 16 kHz WAVs and a caption per object, in two folders."""
    require_data(ASSETS, f"reference assets not found at {ASSETS}")
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "sounds").mkdir(exist_ok=True)
    for name in names:
        with Image.open(ASSETS / f"{name}_image.jpg") as im:
            im.convert("RGB").resize((size, size)).save(root / "images" / f"{name}.png")
        data, sr = sf.read(ASSETS / f"{name}_audio.wav", dtype="float32", always_2d=True)
        mono = data.mean(axis=1)[:sr]
        idx = np.linspace(0, len(mono) - 1, 16000).astype(np.int64)
        sf.write(root / "sounds" / f"{name}.wav", mono[idx], 16000)
        (root / f"{name}.txt").write_text(f"A photo of a {name}.\n", encoding="utf-8")
    return root


def many_images(root: Path, n: int, size: int = 48) -> Path:
    """``n`` distinct PNGs (crops of the real photos), for throughput and resume tests."""
    require_data(ASSETS, f"reference assets not found at {ASSETS}")
    root.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(ASSETS / f"{name}_image.jpg").convert("RGB") for name in NAMES]
    for i in range(n):
        im = photos[i % len(photos)]
        x, y = (i * 7) % (im.width - size), (i * 13) % (im.height - size)
        im.crop((x, y, x + size, y + size)).save(root / f"img{i:05d}.png")
    return root


def copy(src: Path, dst: Path) -> Path:
    """Copy a file with its mtime."""
    shutil.copy2(src, dst)
    return dst


def index_json(invoke: Callable[..., Any], *args: Any, ok: bool = True) -> dict[str, Any]:
    """``embedstore index ... --json`` parsed."""
    result = invoke("index", *args, "--encoder", "imagebind_test", "--json", ok=ok)
    return json.loads(result.stdout)


def make_video(path: Path, name: str = "dog", seconds: float = 3.0, fps: int = 10) -> Path:
    """An MP4 panning over a real photo, with that object's real sound as an AAC track."""
    import av

    require_data(ASSETS, f"reference assets not found at {ASSETS}")
    with Image.open(ASSETS / f"{name}_image.jpg") as im:
        photo = np.asarray(im.convert("RGB").resize((192, 144)))
    data, sr = sf.read(ASSETS / f"{name}_audio.wav", dtype="float32", always_2d=True)
    mono = np.ascontiguousarray(data.mean(axis=1)[: int(sr * seconds)])
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 128, 96, "yuv420p"
        audio = out.add_stream("aac", rate=sr)
        audio.layout = "mono"
        for i in range(int(seconds * fps)):
            x = i * (photo.shape[1] - 128) // max(int(seconds * fps) - 1, 1)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[24:120, x : x + 128]))
            out.mux(video.encode(frame))
        out.mux(video.encode())
        step = 1024
        for i in range(0, len(mono), step):
            chunk = mono[i : i + step]
            if len(chunk) < step:
                chunk = np.pad(chunk, (0, step - len(chunk)))
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = sr
            frame.pts = i
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return path
