"""FP8 (e4m3) linear layers with per-row scaling, through ``torch._scaled_mm``.

`swap_linears` replaces the ``nn.Linear`` layers of a model (in ImageBind: each block's attention
output projection, both MLP projections and the heads' projections; the packed q/k/v projection is a
raw parameter and stays in the model's dtype) by `Fp8Linear`. Weights are quantised once per output
row, activations per row (per token) at every call; the fp8 product is rescaled by the outer
product of the two scale vectors. The fp8 kernels need CUDA compute capability >= 8.9 (Ada,
Hopper and newer); elsewhere `swap_linears` raises `InvalidConfig` unless ``emulate=True``, which
computes the same quantised product as a float32 matmul of the dequantised values (the CPU
reference for the numerics).

Nothing here runs on the default encode path: only ``--precision fp8`` in the throughput benchmark
uses it.
"""

from __future__ import annotations

import torch
from torch import nn

from embedstore.errors import InvalidConfig

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8_DTYPE).max)  # 448
MIN_CAPABILITY = (8, 9)
ALIGN = 16  # _scaled_mm wants both matrix dimensions of the weight divisible by 16


def fp8_supported(device: torch.device | str) -> bool:
    """True when ``device`` is a CUDA device with fp8 matmuls (capability >= 8.9)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= MIN_CAPABILITY


def require_fp8(device: torch.device | str) -> None:
    """Raise `InvalidConfig` (field ``precision``) unless ``device`` runs fp8 matmuls."""
    device = torch.device(device)
    if fp8_supported(device):
        return
    if device.type == "cuda" and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(device)
        why = f"{torch.cuda.get_device_name(device)} has compute capability {major}.{minor}"
    else:
        why = f"device {str(device)!r} is not a CUDA GPU"
    raise InvalidConfig(
        f"precision fp8 needs a CUDA GPU with compute capability >= 8.9 (Ada, Hopper or newer); "
        f"{why}. Use bf16 or fp16 here.",
        field="precision",
    )


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row e4m3 quantisation of (M, K): ``(q, scale)`` with ``x ~= q.float() * scale``.

    ``scale`` is (M, 1) float32, the row's absolute maximum over 448 (all-zero rows get a tiny
    scale and quantise to zeros).
    """
    amax = x.detach().abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12)
    scale = amax / FP8_MAX
    q = (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q, scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 values that ``(q, scale)`` from `quantize_rows` stand for."""
    return q.float() * scale


class Fp8Linear(nn.Module):
    """``nn.Linear`` inference with e4m3 weights and activations, each scaled per row."""

    def __init__(self, linear: nn.Linear, *, emulate: bool = False) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.emulate = emulate
        q, scale = quantize_rows(linear.weight.detach())
        self.weight_fp8: torch.Tensor
        self.weight_scale: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("weight_fp8", q)
        self.register_buffer("weight_scale", scale.t().contiguous())  # (1, N) for _scaled_mm
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` with both operands quantised to e4m3 per row; output in ``x.dtype``."""
        lead = x.shape[:-1]
        xq, xscale = quantize_rows(x.reshape(-1, self.in_features))
        if self.emulate:
            w = dequantize_rows(self.weight_fp8, self.weight_scale.t())
            y = dequantize_rows(xq, xscale) @ w.t()
        else:  # row-wise scaling wants a bf16 output and the weight column-major (a transpose)
            y = torch._scaled_mm(
                xq,
                self.weight_fp8.t(),
                scale_a=xscale,
                scale_b=self.weight_scale,
                out_dtype=torch.bfloat16,
            )
        y = y.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        """Sizes and mode, like ``nn.Linear``."""
        mode = "emulated" if self.emulate else "scaled_mm"
        return f"in_features={self.in_features}, out_features={self.out_features}, {mode}"


def swap_linears(model: nn.Module, *, emulate: bool = False) -> int:
    """Replace every ``nn.Linear`` of ``model`` whose sizes are multiples of 16 by `Fp8Linear`.

    In place; returns how many were swapped. Without ``emulate`` the model's device must support
    fp8 (`require_fp8`).
    """
    if not emulate:
        param = next(model.parameters(), None)
        require_fp8(param.device if param is not None else torch.device("cpu"))
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (
                type(child) is nn.Linear
                and child.in_features % ALIGN == 0
                and child.out_features % ALIGN == 0
            ):
                setattr(parent, name, Fp8Linear(child, emulate=emulate))
                swapped += 1
    return swapped
