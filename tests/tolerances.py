"""Float comparisons for the tests, each tolerance derived from the numerics it covers.

The suite targets any x86-64 CPU with AVX2 (AMD or Intel, with or without AVX-512). FFT, BLAS and
oneDNN pick different kernels per CPU, and on one CPU the thread count or the memory alignment can
reorder a float32 sum, so results of float pipelines are compared with tolerances. Bitwise checks
remain only where the arithmetic is exact on every CPU:

- integers: token ids, item ids, uint8/uint16 pixels and depths, index ids;
- copies: arrays through the shared-memory transport, save/load round trips, stored vectors;
- the vision transform: Pillow resizes 8-bit images with fixed-point integer arithmetic, and the
  float32 ``/255``, ``- mean``, ``/ std`` that follow are single, correctly rounded IEEE-754
  operations per element, with no sum whose order could change.
"""

from __future__ import annotations

import torch

FLOAT32_EPS = 2.0**-23  # 1.19e-7, the spacing of float32 just above 1.0

# ImageBind's audio input is the normalised log-mel energy (log E - MEAN) / STD, STD = 9.138. A
# float32 FFT has an absolute error of about eps * |X|max per bin, so a mel band far below the
# frame's loudest one gets a large *relative* error, which the log turns into an absolute one:
# a band 80 dB down has |X| = 1e-4 |X|max, so ~1.2e-3 relative error in |X|, 2.4e-3 in its
# energy and in log E, 2.6e-4 after the division by STD. Measured on
# the 8 reference files: the official float32 output differs from a float64 evaluation of the
# same recipe by at most 2.1e-4 (mean 7e-7); an Intel Xeon (AVX-512) run differs from the
# AMD-made reference by at most 2.4e-4 in 42% of the elements. Two float32 runs may each sit
# that far from the exact value on opposite sides, hence AUDIO_ATOL = 1e-3 (~4x the worst
# measured, a 0.9% error in one band's energy), and the mean difference must stay at rounding
# level. A wrong recipe moves values by 1e-2 and more (e.g. clips centred independently: 1.4e-2).
AUDIO_ATOL = 1e-3
AUDIO_MEAN_ATOL = 1e-5  # ~15x the measured mean float32 error of 7e-7


def assert_audio_close(got: torch.Tensor, want: torch.Tensor) -> None:
    """Two log-mel inputs (3, 1, 128, 204) equal up to float32 FFT rounding on any CPU."""
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, atol=AUDIO_ATOL, rtol=0)
    mean = float((got.double() - want.double()).abs().mean())
    assert mean <= AUDIO_MEAN_ATOL, f"mean |difference| {mean:.2e} exceeds float32 rounding"


# The same float32 computation run twice on one CPU (another process, thread count or batch):
# only the order of float32 sums may differ. A sum of K terms then moves by about
# sqrt(K) * eps relative to its magnitude; K is at most a few thousand here (matmuls over a
# hidden width, resampling kernels, bilinear/bicubic taps), so 1e-5 absolute on values of order
# 1 (normalised pixels, unit embeddings) and 1e-5 relative hold with margin, while any real
# mix-up (another file, another model, a lossy cast to float16 at 1e-3) is far outside.
SAME_CPU = {"atol": 1e-5, "rtol": 1e-5}


def assert_same_float32(got: torch.Tensor, want: torch.Tensor) -> None:
    """One float32 computation repeated on this CPU: equal up to the order of its sums."""
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, **SAME_CPU)
