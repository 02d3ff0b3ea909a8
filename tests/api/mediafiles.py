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
