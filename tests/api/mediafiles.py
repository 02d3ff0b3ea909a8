"""Small real media files made in memory."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from PIL import Image


def png_bytes(color: tuple[int, int, int], size: int = 48) -> bytes:
    """A solid-colour PNG."""
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG")
    return out.getvalue()


def wav_bytes(freq: float = 440.0, seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A sine tone as 16-bit WAV."""
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    sf.write(out, 0.5 * np.sin(2 * np.pi * freq * t), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def mp4_bytes(seconds: float = 3.0, fps: int = 8, size: int = 64) -> bytes:
    """A small MPEG-4 video whose frames fade from black to white (no sound)."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        n = int(seconds * fps)
        for i in range(n):
            pixels = np.full((size, size, 3), int(255 * i / max(n - 1, 1)), np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return out.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """An array in ``.npy`` format."""
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()
