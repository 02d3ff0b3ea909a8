"""LoRA on a Linear layer with the key layout the official (peft) checkpoints use.

``lora_A.default.weight`` (r, in) and ``lora_B.default.weight`` (out, r) sit beside ``weight`` and
``bias``; unmerged the layer computes ``x·Wᵀ + b + B(A(x))·alpha/r``. `merge_lora` folds the term
into ``weight`` so inference costs a plain Linear.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn


class LoraLinear(nn.Linear):
    """A Linear with an optional unmerged low-rank update named like peft's ``default`` adapter."""

    def __init__(self, in_features: int, out_features: int, r: int = 0, alpha: float = 1.0) -> None:
        super().__init__(in_features, out_features)
        self.r = r
        self.scale = alpha / r if r > 0 else 0.0
        self.merged = r == 0
        if r > 0:
            self.lora_A = nn.ModuleDict({"default": nn.Linear(in_features, r, bias=False)})
            self.lora_B = nn.ModuleDict({"default": nn.Linear(r, out_features, bias=False)})

    def set_rank(self, r: int, alpha: float) -> None:
        """Add (r > 0) or drop (r = 0) the adapter; new matrices live on ``weight``'s device."""
        if r == self.r and (r == 0 or self.scale == alpha / r):
            return
        for name in ("lora_A", "lora_B"):
            if name in self._modules:
                del self._modules[name]
        self.r, self.scale, self.merged = r, (alpha / r if r > 0 else 0.0), r == 0
        if r > 0:
            kw: dict[str, Any] = {
                "device": self.weight.device,
                "dtype": self.weight.dtype,
                "bias": False,
            }
            self.lora_A = nn.ModuleDict({"default": nn.Linear(self.in_features, r, **kw)})
            self.lora_B = nn.ModuleDict({"default": nn.Linear(r, self.out_features, **kw)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The base result first, then the scaled low-rank term added (the official order)."""
        y = F.linear(x, self.weight, self.bias)
        if not self.merged:
            y = y + self.lora_B["default"](self.lora_A["default"](x)) * self.scale
        return y

    @torch.no_grad()
    def merge(self) -> None:
        """Fold ``B·A·alpha/r`` into ``weight`` (computed in float64) and stop adding the term."""
        if self.merged:
            return
        a = cast(nn.Linear, self.lora_A["default"]).weight.double()
        b = cast(nn.Linear, self.lora_B["default"]).weight.double()
        merged = (self.weight.double() + (b @ a) * self.scale).to(self.weight.dtype)
        self.weight.data = merged  # a new tensor: the loaded one may be a read-only file mapping
        self.merged = True


def merge_lora(module: nn.Module) -> int:
    """Merge every `LoraLinear` under ``module``; returns how many layers carried an update."""
    count = 0
    for m in module.modules():
        if isinstance(m, LoraLinear) and not m.merged:
            m.merge()
            count += 1
    return count
