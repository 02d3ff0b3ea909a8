"""Low-rank adapters (LoRA) on a transformer tower: add, merge into the base, save adapters only.

``W' = W + (alpha / rank) * B @ A`` with ``A`` (rank, in) Kaiming-initialised and ``B`` (out, rank)
zero-initialised, so a freshly adapted tower computes exactly what its base computes.

Two carriers, chosen per target:

* `LoRALinear` replaces an ``nn.Linear`` that is *called* (``out_proj``, ``fc1``, ``fc2``): the
  low-rank path runs beside the frozen base, ``base(x) + s * (x A^T) B^T``.
* `LoRAWeight` is a ``torch.nn.utils.parametrize`` parametrization for a bare weight parameter that
  the module uses functionally (the packed ``in_proj_weight`` of attention).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from embedstore.errors import InvalidConfig

LORA_TARGETS = ("in_proj", "out_proj", "fc1", "fc2")


@dataclass(frozen=True)
class LoRAConfig:
    """Rank, scaling and which projections get adapters."""

    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = LORA_TARGETS
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise InvalidConfig(f"LoRA rank must be >= 1, got {self.rank}", field="lora_rank")
        bad = [t for t in self.targets if t not in LORA_TARGETS]
        if bad or not self.targets:
            raise InvalidConfig(
                f"Unknown LoRA target(s) {bad or '(none)'}; choose from {', '.join(LORA_TARGETS)}",
                field="lora_targets",
            )

    @property
    def scale(self) -> float:
        """The factor ``alpha / rank`` applied to ``B @ A``."""
        return self.alpha / self.rank


def _init_pair(
    out_features: int, in_features: int, rank: int, like: torch.Tensor
) -> tuple[nn.Parameter, nn.Parameter]:
    a = torch.empty(rank, in_features, dtype=like.dtype, device=like.device)
    nn.init.kaiming_uniform_(a, a=math.sqrt(5))
    b = torch.zeros(out_features, rank, dtype=like.dtype, device=like.device)
    return nn.Parameter(a), nn.Parameter(b)


def is_lora_key(key: str) -> bool:
    """True for the state-dict key of an adapter tensor."""
    return key.rsplit(".", 1)[-1] in ("lora_A", "lora_B")


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update; ``merge()`` folds it back."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        a, b = _init_pair(base.out_features, base.in_features, rank, base.weight)
        self.lora_A = a
        self.lora_B = b
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)

    @property
    def weight(self) -> torch.Tensor:
        """The effective (merged) weight, for callers that use ``.weight`` directly."""
        return self.base.weight + self.scale * (self.lora_B @ self.lora_A)

    @property
    def bias(self) -> torch.Tensor | None:
        """The base bias (adapters do not change it)."""
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``base(x) + scale * dropout(x) A^T B^T``."""
        low = nn.functional.linear(nn.functional.linear(self.dropout(x), self.lora_A), self.lora_B)
        return self.base(x) + self.scale * low

    def merge(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding ``W + scale * B @ A`` (the base keeps its requires_grad off)."""
        with torch.no_grad():
            self.base.weight.add_(
                self.scale * (self.lora_B @ self.lora_A).to(self.base.weight.dtype)
            )
        return self.base


class LoRAWeight(nn.Module):
    """Parametrization ``W -> W + scale * B @ A`` for a bare 2-D weight parameter."""

    def __init__(self, weight: torch.Tensor, rank: int = 8, alpha: float = 16.0) -> None:
        super().__init__()
        self.scale = alpha / rank
        a, b = _init_pair(weight.shape[0], weight.shape[1], rank, weight)
        self.lora_A = a
        self.lora_B = b

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The adapted weight."""
        return weight + self.scale * (self.lora_B @ self.lora_A)


def _target_of(name: str) -> str | None:
    leaf = name.rsplit(".", 1)[-1]
    return leaf if leaf in ("out_proj", "fc1", "fc2") else None


def apply_lora(model: nn.Module, config: LoRAConfig) -> int:
    """Freeze ``model`` and add adapters to the chosen projections; returns how many were added."""
    for p in model.parameters():
        p.requires_grad_(False)
    count = 0
    linears: list[tuple[str, nn.Linear]] = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear) and _target_of(name) in config.targets
    ]
    for name, mod in linears:
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, leaf, LoRALinear(mod, config.rank, config.alpha, config.dropout))
        count += 1
    if "in_proj" in config.targets:
        for sub in list(model.modules()):
            w = getattr(sub, "in_proj_weight", None)
            if isinstance(w, nn.Parameter) and not parametrize.is_parametrized(
                sub, "in_proj_weight"
            ):
                parametrize.register_parametrization(
                    sub, "in_proj_weight", LoRAWeight(w, config.rank, config.alpha), unsafe=True
                )
                count += 1
    if count == 0:
        raise InvalidConfig(
            f"No LoRA target ({', '.join(config.targets)}) found in {type(model).__name__}",
            field="lora_targets",
        )
    return count


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base weight in place, leaving plain modules; returns the count."""
    count = 0
    for name, mod in list(model.named_modules()):
        if isinstance(mod, LoRALinear):
            parent_name, _, leaf = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, leaf, mod.merge())
            count += 1
    for mod in list(model.modules()):
        if parametrize.is_parametrized(mod):
            plist: nn.ModuleDict = mod.parametrizations  # type: ignore[assignment]
            for pname in list(plist.keys()):
                if any(isinstance(p, LoRAWeight) for p in plist[pname]):  # type: ignore[attr-defined]
                    parametrize.remove_parametrizations(mod, pname, leave_parametrized=True)
                    count += 1
    return count


def has_lora(model: nn.Module) -> bool:
    """True when ``model`` carries any adapter."""
    return any(isinstance(m, LoRALinear | LoRAWeight) for m in model.modules())


def lora_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """The adapter parameters (the only trainable ones after `apply_lora`)."""
    for name, p in model.named_parameters():
        if is_lora_key(name):
            yield p


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors, keyed as in ``model.state_dict()``."""
    return {k: v for k, v in model.state_dict().items() if is_lora_key(k)}


def base_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The base weights under their original names (adapters neither merged nor included)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        if is_lora_key(k):
            continue
        k = k.replace(".base.", ".")
        k = k.replace(".parametrizations.in_proj_weight.original", ".in_proj_weight")
        out[k] = v
    return out


def count_parameters(params: Iterable[nn.Parameter]) -> int:
    """Total number of elements."""
    return sum(p.numel() for p in params)
