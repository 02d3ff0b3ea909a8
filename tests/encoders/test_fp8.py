"""The fp8 linear path on CPU: per-row e4m3 quantisation, the quantised product, and its effect on
the tiny ImageBind's embeddings of the fixtures' inputs.

Bounds: e4m3 keeps 3 mantissa bits, so rounding a value in the normal range moves it by at most
half a spacing, 2**-4 of its magnitude; below the smallest normal (2**-6 of the scale unit) the
spacing is fixed at 2**-9 units, an absolute error of at most 2**-10 * scale.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from embedstore.encoders import create_encoder
from embedstore.encoders.fp8 import (
    FP8_DTYPE,
    FP8_MAX,
    Fp8Linear,
    dequantize_rows,
    quantize_rows,
    swap_linears,
)
from embedstore.errors import InvalidConfig

REL = 2.0**-4  # half a spacing of 3 mantissa bits, relative
SUB = 2.0**-10  # half the subnormal spacing, in units of the row's scale


def _rows(seed: int) -> torch.Tensor:
    """Rows of very different magnitudes, with outliers, zeros and tiny values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 96, generator=g) * torch.logspace(-3, 3, 64).unsqueeze(1)
    x[:, 5] *= 50.0  # an outlier column: the rows' scales follow it
    x[3] = 0.0
    x[7, :10] = 1e-9
    return x


def test_quantise_dequantise_per_row_within_the_e4m3_bound() -> None:
    x = _rows(0)
    q, scale = quantize_rows(x)
    assert q.dtype == FP8_DTYPE and q.shape == x.shape and scale.shape == (64, 1)
    assert float(q.float().abs().amax()) == FP8_MAX  # each non-zero row's max maps to 448
    back = dequantize_rows(q, scale)
    bound = torch.maximum(REL * x.abs(), SUB * scale)
    assert bool(((back - x).abs() <= bound * (1 + 1e-6)).all())
    assert bool((back[3] == 0).all())  # an all-zero row stays zero (no division by zero)
    # the bound is tight: rounding really happens (mean relative error of normal values ~1-2%)
    normal = x.abs() > 2.0**-6 * FP8_MAX * scale
    rel = ((back - x).abs() / x.abs())[normal]
    assert 0.005 < float(rel.mean()) < REL


def test_emulated_fp8_linear_equals_the_reference_within_the_quantisation_bound() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(96, 48)
    x = _rows(1)[:, :96].reshape(4, 16, 96)
    fp8 = Fp8Linear(linear, emulate=True)
    got = fp8(x)
    want = linear(x).detach()
    assert got.shape == want.shape == (4, 16, 48)
    # |x'w' - xw| <= (|x| + ex)(|w| + ew)(2 REL + REL^2) per term, summed over the inner dimension
    _, xs = quantize_rows(x.reshape(-1, 96))
    _, ws = quantize_rows(linear.weight.detach())
    ax = x.reshape(-1, 96).abs() + SUB * xs
    aw = linear.weight.detach().abs() + SUB * ws
    bound = (ax @ aw.t()) * (2 * REL + REL**2) + 1e-5 * (ax @ aw.t())  # + float32 sum rounding
    err = (got.reshape(-1, 48) - want.reshape(-1, 48)).abs()
    assert bool((err <= bound).all())
    assert float(err.max()) > 0  # the operands were quantised, not passed through


def test_scaled_mm_kernel_equals_the_emulation_up_to_its_bf16_output() -> None:
    # torch._scaled_mm has a CPU kernel: the non-emulated path runs here too, on the same e4m3
    # operands, its float32 accumulator rounded once to bfloat16 (8 bits: 2**-9 relative)
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    x = torch.randn(5, 7, 64)
    emulated = Fp8Linear(linear, emulate=True)(x)
    kernel = Fp8Linear(linear)(x)
    assert kernel.dtype == x.dtype and kernel.shape == emulated.shape
    product = emulated - linear.bias.detach()
    assert bool(((kernel - emulated).abs() <= 2.0**-8 * product.abs() + 1e-6).all())


def test_swap_needs_an_fp8_gpu_unless_emulated() -> None:
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32), nn.Linear(32, 8))
    with pytest.raises(InvalidConfig, match="compute capability >= 8.9") as err:
        swap_linears(model)
    assert err.value.field == "precision"
    assert sum(isinstance(m, Fp8Linear) for m in model.modules()) == 0  # untouched
    assert swap_linears(model, emulate=True) == 2  # 32 -> 8 is not a multiple of 16: kept
    assert isinstance(model[0], Fp8Linear) and type(model[3]) is nn.Linear


# e4m3 rounding moves each operand by ~2-4% rms, so one quantised matmul's output sits at cosine
# ~0.999 from the exact one; the tiny towers chain 3-5 of them without residual dilution worth
# the name (1-2 blocks of width 32-64), giving 0.997-0.999 (measured: text 0.9973, depth 0.9983,
# thermal 0.9988, the others >= 0.999). Anything wrong (a scale off by a row, a transposed
# weight, an unscaled product) drops the cosine far below 0.9.
TINY_MIN_COSINE = 0.995


def test_tiny_imagebind_with_emulated_fp8_trunks_keeps_the_embeddings(
    tiny_a_io: dict[str, Any],
) -> None:
    enc = create_encoder("imagebind_test", device="cpu")
    model: Any = enc.model  # type: ignore[attr-defined]
    names = ["vision", "vision_video", "text", "audio", "depth", "thermal", "imu"]
    with torch.inference_mode():
        ref = {n: model.embed(tiny_a_io[n]["modality"], tiny_a_io[n]["input"]) for n in names}
        assert swap_linears(model.modality_trunks, emulate=True) > 0
        for n in names:
            got = model.embed(tiny_a_io[n]["modality"], tiny_a_io[n]["input"])
            cos = (got * ref[n]).sum(-1)
            assert float(cos.min()) >= TINY_MIN_COSINE, (n, cos)
            assert float(cos.min()) < 1 - 1e-6, n  # fp8 really ran
