"""``bind``: align a new (or existing) ImageBind tower of one modality to a frozen encoder's space."""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from embedstore.bind.bound import read_config, save_bound
from embedstore.bind.inputs import PairData, prepare
from embedstore.bind.lora import LoRAConfig, apply_lora, count_parameters, merge_lora
from embedstore.bind.pairs import Pair, read_pairs, split_pairs
from embedstore.bind.tower import (
    ModalityTower,
    build_tower,
    check_modality,
    config_of,
    infer_config,
    load_tower_weights,
    read_tower_file,
    tower_config,
)
from embedstore.bind.train import TrainConfig, ValidationSet, train_tower
from embedstore.encoders import Encoder, create_encoder
from embedstore.encoders.base import resolve_device
from embedstore.encoders.imagebind.model import ImageBindModel
from embedstore.errors import InvalidConfig
from embedstore.types import Failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TowerSpec:
    """Where the tower starts: ``scratch`` (seeded random), ``base`` (the base encoder's own tower,
    e.g. to LoRA-tune it) or a checkpoint path; ``width``/``layers``/``heads`` size a scratch tower."""

    init: str = "scratch"
    width: int | None = None
    layers: int | None = None
    heads: int | None = None


@dataclass
class BindResult:
    """The saved bound encoder: its folder, registry name, metrics and per-epoch history."""

    path: Path
    encoder: str
    modality: str
    pairs: int
    train_pairs: int
    val_pairs: int
    trainable_parameters: int
    history: list[dict[str, Any]] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    temperature: float = 0.07

    @property
    def metrics(self) -> dict[str, Any]:
        """The last epoch's record."""
        return self.history[-1] if self.history else {}


def make_tower(
    modality: str, base: Encoder, spec: TowerSpec, seed: int
) -> tuple[ImageBindModel, dict[str, Any]]:
    """Build the target tower as ``spec`` says; returns it and its size configuration."""
    base_model = getattr(base, "model", None)
    if spec.init == "base":
        if not isinstance(base_model, ImageBindModel):
            raise InvalidConfig(
                f"--init base needs an ImageBind base encoder, not {base.name!r}", field="init"
            )
        config = config_of(base_model, modality)
        model = build_tower(modality, config, seed=seed)
        load_tower_weights(model, modality, base_model)
        return model, config
    if spec.init == "scratch":
        default = config_of(base_model, modality) if isinstance(base_model, ImageBindModel) else {}
        config = tower_config(
            modality,
            dim=base.dim,
            width=spec.width or default.get(f"{modality}_embed_dim", 64),
            layers=spec.layers or default.get(f"{modality}_num_blocks", 2),
            heads=spec.heads or default.get(f"{modality}_num_heads", 2),
        )
        return build_tower(modality, config, seed=seed), config
    path = Path(spec.init).expanduser()
    saved: dict[str, Any] | None = None
    if path.is_dir():  # a bound-encoder folder with full weights: its config has the head count
        saved = read_config(path)
        if saved.get("modality") != modality or not saved.get("weights"):
            raise InvalidConfig(f"--init: {path} holds no full {modality} tower", field="init")
        path = path / saved["weights"]
    if not path.is_file():
        raise InvalidConfig(
            f"--init: {path} is neither scratch, base nor a checkpoint file", field="init"
        )
    config = (
        dict(saved["tower"])
        if saved
        else infer_config(read_tower_file(path, modality), modality, spec.heads)
    )
    model = build_tower(modality, config, seed=seed)
    load_tower_weights(model, modality, path)
    return model, config


def _validation(data: PairData, idx: torch.Tensor) -> ValidationSet:
    rows = data.anchor_index[idx]
    distinct, truth = torch.unique(rows, return_inverse=True)
    return ValidationSet(data.targets[idx], data.anchors[distinct], truth)


def bind(
    pairs: Path | str | Sequence[Pair],
    *,
    modality: str,
    out_dir: Path | str,
    base_encoder: str = "imagebind_huge",
    anchor_modality: str = "vision",
    tower: TowerSpec | None = None,
    lora: LoRAConfig | None = None,
    train: TrainConfig | None = None,
    val_fraction: float = 0.1,
    save_adapters_only: bool = False,
    resume: bool = False,
    device: str = "auto",
    weights_dir: Path | None = None,
    cache_targets: bool = True,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> BindResult:
    """Train ``modality``'s tower so its embeddings land on the frozen ``base_encoder``'s
    ``anchor_modality`` embeddings of the paired items; save a bound-encoder folder in ``out_dir``.

    The anchors are embedded once (cached in ``out_dir/cache``); checkpoints go to
    ``out_dir/checkpoints`` (``resume=True`` continues from there). With ``lora`` only adapters
    train; they are merged into the saved tower unless ``save_adapters_only``.
    """
    check_modality(modality)
    tower = tower or TowerSpec()
    train = train or TrainConfig()
    out = Path(out_dir).expanduser().resolve()
    if save_adapters_only and lora is None:
        raise InvalidConfig("save_adapters_only needs LoRA (set a rank)", field="save_adapters")
    pair_list = (
        list(pairs)
        if not isinstance(pairs, Path | str)
        else read_pairs(pairs, anchor_modality, modality)
    )
    dev = resolve_device(device)
    base = create_encoder(base_encoder, device=str(dev), weights_dir=weights_dir)
    base.check_modality(anchor_modality)
    data = prepare(
        pair_list, base, anchor_modality, modality, cache_dir=out / "cache",
        cache_targets=cache_targets, on_stage=on_stage,
    )  # fmt: skip
    train_idx, val_idx = split_pairs(len(data), val_fraction, train.seed)
    model, config = make_tower(modality, base, tower, train.seed)
    if model.out_embed_dim != base.dim:
        raise InvalidConfig(
            f"tower dimension {model.out_embed_dim} != {base.name} dimension {base.dim}"
        )
    if lora is not None:
        apply_lora(model, lora)
    module = ModalityTower(model, modality)
    trainable = count_parameters(p for p in module.parameters() if p.requires_grad)
    if on_stage:
        on_stage(
            f"training {trainable:,} parameters on {len(train_idx)} pairs ({len(val_idx)} held out)"
        )
    ti, vi = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    result = train_tower(
        module,
        data.targets[ti],
        data.anchors[data.anchor_index[ti]],
        train,
        anchor_ids=data.anchor_index[ti],
        val=_validation(data, vi) if len(vi) else None,
        checkpoint_dir=out / "checkpoints",
        resume=resume,
        device=dev,
        progress=progress,
    )
    meta = {
        "modality": modality,
        "base_encoder": base_encoder,
        "anchor_modality": anchor_modality,
        "tower": config,
        "init": tower.init
        if tower.init in ("scratch", "base")
        else str(Path(tower.init).resolve()),
        "seed": train.seed,
        "lora": asdict(lora) if lora is not None else None,
        "temperature": result.temperature,
        "train": asdict(train),
        "pairs": {"total": len(data), "train": len(train_idx), "val": len(val_idx)},
        "metrics": result.history[-1] if result.history else {},
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    model = model.cpu()
    if lora is not None and not save_adapters_only:
        merge_lora(model)
    save_bound(out, model, meta, adapters_only=save_adapters_only)
    return BindResult(
        path=out,
        encoder=f"bound:{out}",
        modality=modality,
        pairs=len(data),
        train_pairs=len(train_idx),
        val_pairs=len(val_idx),
        trainable_parameters=trainable,
        history=result.history,
        failed=data.failed,
        temperature=result.temperature,
    )
