"""The contrastive training loop: any ``nn.Module`` tower against fixed (cached) anchor embeddings.

Checkpoints hold model, optimizer, scheduler, logit scale, epoch, batch-in-epoch, global step and
history; resuming continues the same seeded batch order exactly where it stopped.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from embedstore.bind.loss import LogitScale, info_nce, retrieval_recall
from embedstore.errors import InvalidConfig

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one binding run.

    ``sample_clips``: for clip-stacked inputs ``(B, S, ...)`` (audio, videos) each step trains on one
    random clip per item (S times cheaper, and an augmentation); validation uses all clips.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.1
    temperature: float = 0.07
    learn_temperature: bool = True
    grad_clip: float = 1.0
    precision: str = "auto"
    seed: int = 0
    checkpoint_every: int = 0
    ks: tuple[int, ...] = (1, 5, 10)
    sample_clips: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise InvalidConfig("epochs must be >= 1 and batch_size >= 2", field="epochs")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InvalidConfig(
                f"precision must be auto, fp32 or bf16, got {self.precision!r}", field="precision"
            )


@dataclass
class ValidationSet:
    """Held-out target inputs, the distinct anchor embeddings, and which anchor each input belongs to."""

    inputs: torch.Tensor
    gallery: torch.Tensor
    truth: torch.Tensor


@dataclass
class TrainResult:
    """What a run did: per-epoch history, final step and the learned temperature."""

    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    temperature: float = 0.07
    resumed_from: int | None = None


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 autocast on CUDA for ``auto``/``bf16``; bf16 on CPU only when asked; else none."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def embed_all(
    tower: nn.Module,
    inputs: torch.Tensor,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Run ``tower`` over ``inputs`` in eval mode; float32 (N, E) on the CPU (not normalised)."""
    device = torch.device(device)
    was_training = tower.training
    tower.eval()
    out = []
    for s in range(0, inputs.shape[0], batch_size):
        with _autocast(device, dtype):
            out.append(tower(inputs[s : s + batch_size].to(device)).float().cpu())
    tower.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def evaluate(
    tower: nn.Module,
    val: ValidationSet,
    *,
    ks: tuple[int, ...] = (1, 5, 10),
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Recall@k both ways: target -> anchor and anchor -> target (any of its targets)."""
    z = embed_all(tower, val.inputs, batch_size=batch_size, device=device, dtype=dtype)
    pos = torch.nn.functional.one_hot(val.truth.long(), val.gallery.shape[0]).bool()
    fwd = retrieval_recall(z, val.gallery, pos, ks)
    back = retrieval_recall(val.gallery, z, pos.T.contiguous(), ks)
    return {f"recall@{k}": fwd[k] for k in ks} | {f"anchor_recall@{k}": back[k] for k in ks}


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    n_warm = int(total * warmup)

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        progress = (step - n_warm) / max(1, total - n_warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _adamw(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """AdamW, fused where torch supports it (much faster on CPU for a large token embedding)."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g)
    chunks = list(order.split(batch_size))
    return [c for c in chunks if len(c) >= 2]


def _save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train_tower(
    tower: nn.Module,
    inputs: torch.Tensor,
    anchors: torch.Tensor,
    config: TrainConfig,
    *,
    anchor_ids: torch.Tensor | None = None,
    val: ValidationSet | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    device: torch.device | str = "cpu",
    progress: bool = True,
    max_steps: int | None = None,
) -> TrainResult:
    """Train ``tower`` so ``tower(inputs[i])`` lands next to ``anchors[i]`` (symmetric InfoNCE).

    Only parameters with ``requires_grad`` train (LoRA freezes the base). ``anchor_ids`` marks rows
    sharing one anchor. A checkpoint is written each epoch (and every ``checkpoint_every`` steps).
    ``max_steps`` stops this call early (at that global step, checkpointed) without changing the
    schedule, so a later ``resume=True`` call continues the same run.
    """
    device = torch.device(device)
    dtype = autocast_dtype(device, config.precision)
    if inputs.shape[0] != anchors.shape[0]:
        raise InvalidConfig(
            f"{inputs.shape[0]} inputs but {anchors.shape[0]} anchors", field="pairs"
        )
    torch.manual_seed(config.seed)
    tower.to(device).train()
    scale = LogitScale(config.temperature, learnable=config.learn_temperature).to(device)
    params = [p for p in tower.parameters() if p.requires_grad]
    if not params:
        raise InvalidConfig("the tower has no trainable parameters", field="tower")
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        {"params": [p for p in scale.parameters() if p.requires_grad], "weight_decay": 0.0},
    ]
    optimizer = _adamw([g for g in groups if g["params"]], config.lr)
    n_batches = len(_batches(inputs.shape[0], config.batch_size, config.seed, 0))
    if n_batches == 0:
        raise InvalidConfig(f"need at least 2 training pairs, got {inputs.shape[0]}", field="pairs")
    total = n_batches * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, config.warmup))
    result = TrainResult(temperature=scale.temperature)
    start_epoch, start_batch = 0, 0
    ckpt_path = checkpoint_dir / CHECKPOINT if checkpoint_dir else None
    if resume and ckpt_path is not None and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        tower.load_state_dict(state["model"])
        scale.load_state_dict(state["logit_scale"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, start_batch = state["epoch"], state["batch"]
        result.step, result.history = state["step"], state["history"]
        result.resumed_from = result.step
        log.info("resumed from %s at epoch %d, step %d", ckpt_path, start_epoch, result.step)

    def checkpoint(epoch: int, batch: int) -> None:
        if ckpt_path is None:
            return
        _save(
            ckpt_path,
            {
                "model": tower.state_dict(),
                "logit_scale": scale.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "batch": batch,
                "step": result.step,
                "history": result.history,
                "config": asdict(config),
            },
        )

    clip_ndim = 6 if getattr(tower, "modality", None) == "vision" else 5
    anchors = anchors.to(device)
    ids = anchor_ids.to(device) if anchor_ids is not None else None
    bar = tqdm(total=total, initial=result.step, desc="bind", file=sys.stderr, disable=not progress)
    for epoch in range(start_epoch, config.epochs):
        t0, losses = time.perf_counter(), []
        batches = _batches(inputs.shape[0], config.batch_size, config.seed, epoch)
        for b, idx in enumerate(batches):
            if epoch == start_epoch and b < start_batch:
                continue
            batch = inputs[idx]
            if config.sample_clips and batch.ndim >= clip_ndim:
                g = torch.Generator().manual_seed(config.seed * 7919 + result.step)
                pick = torch.randint(batch.shape[1], (batch.shape[0],), generator=g)
                batch = batch[torch.arange(batch.shape[0]), pick].unsqueeze(1)
            with _autocast(device, dtype):
                z = tower(batch.to(device, non_blocking=True))
            loss = info_nce(z, anchors[idx.to(device)], scale(), None if ids is None else ids[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            result.step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}", T=f"{scale.temperature:.4f}")
            if config.checkpoint_every and result.step % config.checkpoint_every == 0:
                checkpoint(epoch, b + 1)
            if max_steps is not None and result.step >= max_steps:
                checkpoint(epoch, b + 1)
                bar.close()
                result.temperature = scale.temperature
                return result
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": result.step,
            "loss": sum(losses) / len(losses) if losses else float("nan"),
            "temperature": scale.temperature,
        }
        if val is not None and val.inputs.shape[0] > 0:
            record |= evaluate(
                tower, val, ks=config.ks, batch_size=config.batch_size, device=device, dtype=dtype
            )
        record["seconds"] = round(time.perf_counter() - t0, 3)
        result.history.append(record)
        log.info("epoch %s", record)
        if progress:
            bar.write(_describe(record), file=sys.stderr)
        checkpoint(epoch + 1, 0)
    bar.close()
    result.temperature = scale.temperature
    return result


def _describe(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}", f"loss {record['loss']:.4f}"]
    parts += [f"{k} {v:.3f}" for k, v in record.items() if k.startswith("recall@")]
    return "  ".join(parts)
