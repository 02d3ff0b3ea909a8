"""One modality of the ImageBind architecture as a trainable tower (official state-dict keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from embedstore.encoders.imagebind.init import init_weights
from embedstore.encoders.imagebind.model import MODALITIES, ImageBindModel
from embedstore.errors import InvalidConfig, UnsupportedModality

STAGES = (
    "modality_preprocessors",
    "modality_trunks",
    "modality_heads",
    "modality_postprocessors",
)
# the smallest stand-in for the towers a bound model does not keep (built, then dropped)
_STUB = {"embed_dim": 8, "num_blocks": 0, "num_heads": 1}


def check_modality(modality: str) -> None:
    """Raise `UnsupportedModality` unless ImageBind has a tower for ``modality``."""
    if modality not in MODALITIES:
        raise UnsupportedModality(
            f"cannot bind {modality!r}: the ImageBind architecture has towers for "
            f"{', '.join(MODALITIES)}",
            field="modality",
        )


def tower_config(
    modality: str, *, dim: int, width: int = 64, layers: int = 2, heads: int = 2
) -> dict[str, Any]:
    """`ImageBindModel` keyword arguments that size one modality's tower."""
    check_modality(modality)
    if width % heads:
        raise InvalidConfig(f"width {width} is not divisible by {heads} heads", field="heads")
    return {
        "out_embed_dim": dim,
        f"{modality}_embed_dim": width,
        f"{modality}_num_blocks": layers,
        f"{modality}_num_heads": heads,
    }


def config_of(model: ImageBindModel, modality: str) -> dict[str, Any]:
    """Read a tower's size back from a built model (widths, depth, heads, output dim)."""
    blocks: nn.ModuleList = model.modality_trunks[modality].blocks  # type: ignore[assignment]
    heads: int = blocks[0].attn.heads if len(blocks) else 1  # type: ignore[union-attr,assignment]
    return tower_config(
        modality,
        dim=model.out_embed_dim,
        width=model.widths[modality],
        layers=len(blocks),
        heads=heads,
    )


def build_tower(modality: str, config: dict[str, Any], *, seed: int | None = 0) -> ImageBindModel:
    """An `ImageBindModel` with only ``modality``'s tower, randomly initialised (seeded)."""
    check_modality(modality)
    kwargs: dict[str, Any] = {}
    for m in MODALITIES:
        if m != modality:
            kwargs |= {f"{m}_{k}": v for k, v in _STUB.items()}
    kwargs |= config
    try:
        model = ImageBindModel(**kwargs)
    except (TypeError, ValueError) as e:
        raise InvalidConfig(f"invalid {modality} tower configuration {config}: {e}") from e
    for stage in STAGES[:3]:  # postprocessors stay: parameter-free but for the scales
        modules: nn.ModuleDict = getattr(model, stage)
        for m in list(modules.keys()):
            if m != modality:
                del modules[m]
    init_weights(model, seed=seed)
    for p in model.modality_postprocessors.parameters():
        p.requires_grad_(False)  # embeddings are unit vectors: the scales never take part
    return model


def tower_state_dict(model: nn.Module, modality: str) -> dict[str, torch.Tensor]:
    """The entries of ``modality``'s four stages from a (full or pruned) model's state dict."""
    prefixes = tuple(f"{stage}.{modality}." for stage in STAGES)
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}


def read_tower_file(path: Path, modality: str) -> dict[str, torch.Tensor]:
    """``modality``'s tensors from a checkpoint (official ImageBind, a bound ``tower.pt``, or
    ``{"model": state}``), memory-mapped so a multi-GB file is not read whole."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, ValueError) as e:
        raise InvalidConfig(f"{path}: not a readable checkpoint: {e}", field="init") from e
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        raw = raw["model"]
    prefixes = tuple(f"{s}.{modality}." for s in STAGES)
    return {k: v for k, v in raw.items() if k.startswith(prefixes)}


def infer_config(
    state: dict[str, torch.Tensor], modality: str, heads: int | None
) -> dict[str, Any]:
    """Tower size from its tensors; heads are not stored, so default to a head width of 64."""
    trunk = f"modality_trunks.{modality}.blocks."
    blocks = {k[len(trunk) :].split(".", 1)[0] for k in state if k.startswith(trunk)}
    proj = [
        v for k, v in state.items() if k.startswith(f"modality_heads.{modality}.") and v.ndim == 2
    ]
    if not blocks or not proj:
        raise InvalidConfig(f"no complete {modality} tower in the checkpoint", field="init")
    width = int(state[f"{trunk}0.norm_1.weight"].shape[0])
    return tower_config(
        modality,
        dim=int(proj[0].shape[0]),
        width=width,
        layers=len(blocks),
        heads=heads or max(1, width // 64),
    )


def load_tower_weights(tower: ImageBindModel, modality: str, source: nn.Module | Path) -> None:
    """Copy ``modality``'s weights from a model or a checkpoint file into ``tower`` (shapes must match)."""
    if isinstance(source, nn.Module):
        state = tower_state_dict(source, modality)
    else:
        state = read_tower_file(source, modality)
    where = source if isinstance(source, Path) else type(source).__name__
    if not state:
        raise InvalidConfig(f"{where} holds no {modality} tower weights", field="init")
    try:
        result = tower.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise InvalidConfig(
            f"{where}: its {modality} tower does not match the configured one: {e}", field="init"
        ) from e
    prefixes = tuple(f"{stage}.{modality}." for stage in STAGES)
    missing = [k for k in result.missing_keys if k.startswith(prefixes)]
    if missing or result.unexpected_keys:
        raise InvalidConfig(
            f"{where}: its {modality} tower does not match the configured one "
            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})",
            field="init",
        )


class ModalityTower(nn.Module):
    """``forward(batch) -> (B, E)`` unit embeddings of one modality (clips averaged)."""

    def __init__(self, model: ImageBindModel, modality: str) -> None:
        super().__init__()
        check_modality(modality)
        self.model = model
        self.modality = modality

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Embed a batch shaped as `embedstore.modalities.load` stacks it."""
        return self.model.embed(self.modality, batch)
