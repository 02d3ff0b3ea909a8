"""IMU recordings (3-axis accelerometer + 3-axis gyroscope) -> (6, 2000) float32.

ImageBind's IMU encoder takes 6 channels x 2000 samples (Ego4D IMU, 200 Hz, 10 s). Values are
passed through unscaled, channels in the order ax, ay, az, gx, gy, gz. Never guessed from the
extension: name the modality.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from embedstore.modalities.registry import Modality, register_modality
from embedstore.modalities.sources import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Source,
    decoding,
    invalid,
    read_source,
)

CHANNELS = 6
SAMPLES = 2000
TARGET_RATE = 200.0


def _parse(data: bytes, source: Source) -> tuple[np.ndarray, str | None]:
    """(samples, columns) float array and the header line (if any) of a ``.npy`` or CSV file."""
    if data.startswith(b"\x93NUMPY"):
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        return np.asarray(arr, dtype=np.float64), None
    text = data.decode("utf-8-sig")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise invalid(source, "no data rows")
    header = None
    delimiter = "," if "," in lines[0] else None
    try:
        float((lines[0].split(delimiter) or ["x"])[0])
    except ValueError:
        header, lines = lines[0], lines[1:]
    arr = np.loadtxt(lines, delimiter=delimiter, ndmin=2, dtype=np.float64)
    return arr, header


def _orient(
    arr: np.ndarray, source: Source, columns: list[int] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(6, n) channels and the timestamps (seconds) when a leading time column was present."""
    if arr.ndim != 2:
        raise invalid(source, f"expected a 2-D table, got shape {arr.shape}")
    if arr.shape[0] in (CHANNELS, CHANNELS + 1) and arr.shape[1] > CHANNELS + 1:
        arr = arr.T  # stored channel-major
    times = None
    if columns is not None:
        arr = arr[:, columns]
    elif arr.shape[1] == CHANNELS + 1:
        times, arr = arr[:, 0], arr[:, 1:]
    if arr.shape[1] != CHANNELS:
        raise invalid(
            source, f"expected {CHANNELS} channels (ax ay az gx gy gz), got {arr.shape[1]}"
        )
    if arr.shape[0] < 2 or not np.isfinite(arr).all():
        raise invalid(source, "need at least 2 finite samples per channel")
    return np.ascontiguousarray(arr.T), times


def _rate_from_times(times: np.ndarray, scale: float) -> float | None:
    steps = np.diff(times) * scale
    step = float(np.median(steps)) if steps.size else 0.0
    return 1.0 / step if step > 0 else None


def _resize(x: torch.Tensor, n: int) -> torch.Tensor:
    """Linear resampling of (6, m) to (6, n), antialiased when shrinking."""
    if x.shape[1] == n:
        return x
    return torch.nn.functional.interpolate(
        x[None, :, :, None],
        size=(n, 1),
        mode="bilinear",
        align_corners=False,
        antialias=x.shape[1] > n,
    )[0, :, :, 0]


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    sample_rate: float | None = None,
    columns: list[int] | None = None,
    time_scale: float = 1.0,
    window_s: float = SAMPLES / TARGET_RATE,
) -> torch.Tensor:
    """A CSV or ``.npy`` IMU recording as (6, 2000) float32.

    With a sample rate (``sample_rate=`` Hz, or derived from a leading time column scaled to
    seconds by ``time_scale``) the series is resampled to 200 Hz and its central ``window_s``
    seconds are kept (zero padded at the end when shorter). Without one, the whole recording is
    stretched to 2000 samples.
    """
    data = read_source(source, limits)
    with decoding(source, "IMU data"):
        arr, _ = _parse(data, source)
        channels, times = _orient(arr, source, columns)
        rate = sample_rate or (_rate_from_times(times, time_scale) if times is not None else None)
        x = torch.from_numpy(channels.astype(np.float32))
        if rate is None:
            return _resize(x, SAMPLES).contiguous()
        n = max(int(round(x.shape[1] * TARGET_RATE / rate)), 1)
        x = _resize(x, n)
        keep = int(round(window_s * TARGET_RATE))
        if n > keep:
            start = (n - keep) // 2
            x = x[:, start : start + keep]
        if x.shape[1] < keep:
            x = torch.nn.functional.pad(x, (0, keep - x.shape[1]))
        return _resize(x, SAMPLES).contiguous()


IMU = register_modality(
    Modality("imu", load, frozenset(), "accelerometer + gyroscope -> float32 (6, 2000)")
)
