"""Decoding throughput: files/s for images, audio and video, embedstore vs a plain decode.

Modes per kind: ``plain`` is a single-process decode with the usual library call and no
preprocessing (Pillow ``open().convert("RGB")``, ``soundfile.read``, PyAV decoding every video
frame); ``embedstore`` is ``modalities.decode_many`` (decode + official ImageBind preprocessing)
with 0 (in-process) or N worker processes. Media are real: the ImageBind reference photos and
sounds, re-encoded at several sizes, and MP4s (H.264 + AAC) made from them.

    python -m benchmarks.decode --smoke
    python -m benchmarks.decode --workers 0,1,2 --out benchmarks/results/decode-cpu.json
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import click
import numpy as np
import soundfile
import torch
from PIL import Image

from benchmarks.common import ROOT, emit, output_options, parse_ints, result_doc
from embedstore.modalities import DecodeTask, decode_many

ASSETS = ROOT.parent / "shared" / "fixtures" / "imagebind" / "assets"
SMOKE: dict[str, Any] = {
    "images": 9,
    "audio": 4,
    "videos": 1,
    "video_seconds": 3.0,
    "workers": "0,2",
}


def make_images(folder: Path, n: int) -> list[Path]:
    """``n`` JPEG/PNG files from the three reference photos at 640 to 1920 px wide."""
    photos = [
        Image.open(ASSETS / f"{name}_image.jpg").convert("RGB") for name in ("bird", "car", "dog")
    ]
    out = []
    for i in range(n):
        img = photos[i % 3]
        width = (640, 1280, 1920)[(i // 3) % 3]
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.BICUBIC)
        path = folder / f"img{i:04d}.{'png' if i % 5 == 4 else 'jpg'}"
        img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path)
        out.append(path)
    return out


def make_audio(folder: Path, n: int) -> list[Path]:
    """``n`` copies of the reference WAVs (2.6 to 5 s, 44.1 kHz)."""
    sources = sorted(ASSETS.glob("*_audio.wav"))
    out = []
    for i in range(n):
        path = folder / f"snd{i:04d}.wav"
        shutil.copyfile(sources[i % len(sources)], path)
        out.append(path)
    return out


def make_video(
    path: Path, seconds: float = 10.0, fps: int = 25, size: tuple[int, int] = (640, 360)
) -> Path:
    """An H.264 + AAC MP4 cycling through the reference photos with the bird's call."""
    photos = [
        Image.open(ASSETS / f"{n}_image.jpg").convert("RGB").resize(size)
        for n in ("bird", "car", "dog")
    ]
    data, rate = soundfile.read(ASSETS / "bird_audio.wav", dtype="float32", always_2d=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.codec_context.gop_size = 2 * fps
        audio = out.add_stream("aac", rate=rate)
        n = int(seconds * fps)
        for k in range(n):
            frame = av.VideoFrame.from_image(photos[(k * 3 // n) % 3])
            out.mux(video.encode(frame))
        out.mux(video.encode())
        mono = np.ascontiguousarray(np.tile(data[:, 0], 3)[: int(seconds * rate)][None])
        sound = av.AudioFrame.from_ndarray(mono, format="fltp", layout="mono")
        sound.sample_rate = rate
        out.mux(audio.encode(sound))
        out.mux(audio.encode())
    return path


def plain_decode(kind: str, path: Path) -> None:
    """The baseline: decode only, one file at a time, in this process."""
    if kind == "vision":
        with Image.open(path) as img:
            img.convert("RGB")
    elif kind == "audio":
        soundfile.read(path, dtype="float32", always_2d=True)
    else:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                pass


def plain_decode_all(kind: str, files: list[Path]) -> int:
    """Decode every file with ``plain_decode``; returns the count."""
    for path in files:
        plain_decode(kind, path)
    return len(files)


def _time(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn()
    return time.perf_counter() - t0, n


def run_embedstore(kind: str, files: list[Path], workers: int) -> tuple[float, int]:
    """Seconds to decode+preprocess all files with ``decode_many``; raises if any failed."""
    tasks = [DecodeTask(i, kind, p) for i, p in enumerate(files)]

    def go() -> int:
        done = 0
        for task, value in decode_many(tasks, workers):
            if isinstance(value, Exception):
                raise RuntimeError(f"{task.key}: {value}")
            done += 1
        return done

    return _time(go)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--images", type=int, default=96, show_default=True, help="Number of image files.")
@click.option("--audio", type=int, default=32, show_default=True, help="Number of WAV files.")
@click.option("--videos", type=int, default=6, show_default=True, help="Number of MP4 files.")
@click.option(
    "--video-seconds", type=float, default=10.0, show_default=True, help="Length of each MP4."
)
@click.option(
    "--workers", default="0,1,2", show_default=True, help="Worker counts for decode_many."
)
@output_options
def main(
    images: int,
    audio: int,
    videos: int,
    video_seconds: float,
    workers: str,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Measure files/s of plain decoding and of embedstore's decode_many at several worker counts."""
    if smoke:
        images, audio, videos = SMOKE["images"], SMOKE["audio"], SMOKE["videos"]
        video_seconds, workers = SMOKE["video_seconds"], SMOKE["workers"]
    torch.set_num_threads(1)
    counts = parse_ints(workers)
    rows = []
    with tempfile.TemporaryDirectory(prefix="embedstore-decode-") as tmp:
        folder = Path(tmp)
        media = {
            "vision": make_images(folder, images),
            "audio": make_audio(folder, audio),
            "video": [make_video(folder / f"vid{i:03d}.mp4", video_seconds) for i in range(videos)],
        }
        run_embedstore("vision", media["vision"][:1], max(counts))  # start the worker server once
        pool_start = {n: run_embedstore("vision", media["vision"][:1], n)[0] for n in counts}
        for kind, files in media.items():
            if not files:
                continue
            mb = sum(p.stat().st_size for p in files) / 1e6
            seconds, _ = _time(functools.partial(plain_decode_all, kind, files))
            rows.append(_row(kind, "plain", 0, len(files), mb, seconds))
            for n in counts:
                seconds, _ = run_embedstore(kind, files, n)
                row = _row(kind, "embedstore", n, len(files), mb, seconds)
                rows.append({**row, "pool_start_s": round(pool_start[n], 3)})
    params = {
        "images": images,
        "audio": audio,
        "videos": videos,
        "video_seconds": video_seconds,
        "workers": counts,
        "smoke": smoke,
    }
    emit(result_doc("decode", params, rows), as_json=as_json, out=out, plot=None)


def _row(
    kind: str, mode: str, workers: int, files: int, mb: float, seconds: float
) -> dict[str, Any]:
    return {
        "kind": kind,
        "mode": mode,
        "workers": workers,
        "files": files,
        "mb": round(mb, 1),
        "seconds": round(seconds, 3),
        "files_per_s": round(files / seconds, 2),
    }


if __name__ == "__main__":
    main()
