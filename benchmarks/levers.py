"""Speed levers of the throughput benchmark: each lever alone, and the batch-size sweep.

``python -m benchmarks.throughput --levers all`` builds a fresh encoder per lever (compiled
blocks change the model in place) and records one row per lever x precision x modality x batch:
``lever``, items/s, peak memory, MFU (FLOPs counted once on the eager path), ``first_call_s``
(compilation or graph capture) and ``cosine_vs_eager_min`` (the lever's embeddings against the
eager ones on the same batch). A lever the device or tower cannot run (CUDA graphs or the cuDNN
kernel on a CPU, CUDA graphs for text) gets a row with its ``error`` instead of figures.

``batch_sweep`` (also ``--sweep``) runs the eager path at growing batch sizes and marks, per
precision and modality, the batch with the most items/s whose peak memory stays within the budget
(``--mem-budget-mb``; on CUDA 90% of the card by default). It stops at the first batch that runs
out of memory or exceeds the budget.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.throughput import (
    bench_one,
    build_encoder,
    encode_as,
    flops_of,
    lever_settings,
    make_inputs,
    runner,
    unit_rows,
)
from embedstore.encoders import Encoder
from embedstore.encoders.imagebind.encoder import GRAPHABLE
from embedstore.errors import EmbedstoreError

# lever name -> the settings it changes (everything else eager)
LEVERS: dict[str, dict[str, str]] = {
    "eager": {},
    "compile_default": {"compile_mode": "default"},
    "compile_max_autotune": {"compile_mode": "max-autotune"},
    "compile_max_autotune_no_cudagraphs": {"compile_mode": "max-autotune-no-cudagraphs"},
    "cuda_graphs": {"cuda_graphs": "on"},
    "sdpa_flash": {"sdpa_backend": "flash"},
    "sdpa_cudnn": {"sdpa_backend": "cudnn"},
    "sdpa_efficient": {"sdpa_backend": "efficient"},
    "sdpa_math": {"sdpa_backend": "math"},
    "batch_sweep": {},
}
SWEEP_BATCHES = "1,2,4,8,16,32,64,128,256,512"
CUDA_BUDGET_FRACTION = 0.9


@dataclass(frozen=True)
class Run:
    """What every lever row shares: the encoder to build, the grid and the timing."""

    config: str
    encoder: str | None
    device: str
    modalities: list[str]
    batches: list[int]
    warmup: int
    runs: int
    peak_for: Callable[[torch.device, str], float | None]
    echo: Callable[[str], None]
    save: Callable[[list[dict[str, Any]]], None] = lambda rows: None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Keep ``rows`` and save everything so far (a step cut by its time limit keeps them)."""
        self.rows.extend(rows)
        self.save(self.rows)


def parse_levers(text: str) -> list[str]:
    """``all`` or a comma list of `LEVERS` names, in the order given; ValueError names the bad one."""
    names = list(LEVERS) if text.strip() == "all" else [t for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        raise ValueError(f"unknown lever {', '.join(unknown)}; levers: all, {', '.join(LEVERS)}")
    return names


def eager_reference(
    enc: Encoder, modalities: list[str], batches: list[int]
) -> dict[tuple[str, int], tuple[int, torch.Tensor]]:
    """FLOPs and unit-norm embeddings of the eager fast path per (modality, batch)."""
    ref = {}
    for modality in modalities:
        for batch in batches:
            x = make_inputs(modality, batch).to(enc.device)
            fn = runner(enc, modality, x, "fast")
            ref[(modality, batch)] = (flops_of(fn), unit_rows(fn()))
    return ref


def error_row(lever: str, modality: str, batch: int, precision: str, exc: Exception) -> dict:
    """A row saying why ``lever`` has no figures here."""
    return {
        "lever": lever,
        "modality": modality,
        "batch": batch,
        "precision": precision,
        "mode": "fast",
        "items_per_s": None,
        "error": f"{type(exc).__name__}: {exc}",
    }


def lever_rows(run: Run, precision: str, levers: list[str]) -> None:
    """Rows of every lever in ``levers`` (but the sweep) at one precision, into ``run.add``."""
    eager = build_encoder(
        run.config, run.encoder, run.device, precision, False, settings=_settings(run, {})
    )
    ref = eager_reference(eager, run.modalities, run.batches)
    for lever in levers:
        if lever == "batch_sweep":
            continue
        try:
            enc = (
                eager
                if lever == "eager"
                else build_encoder(
                    run.config,
                    run.encoder,
                    run.device,
                    precision,
                    False,
                    settings=_settings(run, LEVERS[lever]),
                )
            )
        except EmbedstoreError as exc:  # a lever this device cannot run
            run.add(
                [
                    error_row(lever, m, b, precision, exc)
                    for m in run.modalities
                    for b in run.batches
                ]
            )
            run.echo(f"  {lever} {precision}: {exc}")
            continue
        run.add(
            [
                _lever_row(run, enc, lever, modality, batch, precision, ref)
                for modality in run.modalities
                for batch in run.batches
            ]
        )
        del enc
        _release(eager.device)


def _lever_row(
    run: Run,
    enc: Encoder,
    lever: str,
    modality: str,
    batch: int,
    precision: str,
    ref: dict[tuple[str, int], tuple[int, torch.Tensor]],
) -> dict[str, Any]:
    if lever == "cuda_graphs" and encode_as(modality) not in GRAPHABLE:
        why = ValueError(f"{modality} batches have no fixed shape (cut at the last end-of-text)")
        return error_row(lever, modality, batch, precision, why)
    flops, want = ref[(modality, batch)]
    peak = run.peak_for(enc.device, precision)
    try:
        row = bench_one(enc, modality, batch, "fast", run.warmup, run.runs, peak, flops=flops)
    except (EmbedstoreError, RuntimeError) as exc:  # e.g. no kernel for this shape
        run.echo(f"  {lever} {modality} b={batch} {precision}: {exc}")
        return error_row(lever, modality, batch, precision, exc)
    got = unit_rows(runner(enc, modality, make_inputs(modality, batch).to(enc.device), "fast")())
    row["cosine_vs_eager_min"] = float((got * want).sum(-1).min())
    row = {"lever": lever, **row}
    run.echo(f"  {lever} {modality} b={batch} {precision}: {row['items_per_s']:.1f} items/s")
    return row


def sweep_rows(run: Run, precision: str, sweep_batches: list[int], budget_mb: float | None) -> None:
    """Eager rows at growing batch sizes per modality (``run.add``); the best within the budget
    has ``best``."""
    enc = build_encoder(
        run.config, run.encoder, run.device, precision, False, settings=_settings(run, {})
    )
    budget = budget_mb or _default_budget(enc.device)
    for modality in run.modalities:
        mine: list[dict[str, Any]] = []
        for batch in sweep_batches:
            try:
                row = bench_one(
                    enc,
                    modality,
                    batch,
                    "fast",
                    run.warmup,
                    run.runs,
                    run.peak_for(enc.device, precision),
                )
            except torch.OutOfMemoryError as exc:
                mine.append(error_row("batch_sweep", modality, batch, precision, exc))
                if enc.device.type == "cuda":
                    torch.cuda.empty_cache()
                break
            within = budget is None or row["peak_mem_mb"] <= budget
            mine.append(
                {"lever": "batch_sweep", **row, "mem_budget_mb": budget, "within_budget": within}
            )
            run.echo(
                f"  batch_sweep {modality} b={batch} {precision}: {row['items_per_s']:.1f} "
                f"items/s, {row['peak_mem_mb']:.0f} MB"
            )
            if not within:
                break
        fits = [r for r in mine if r.get("within_budget")]
        if fits:
            max(fits, key=lambda r: r["items_per_s"])["best"] = True
        run.add(mine)


def _release(device: torch.device) -> None:
    """Free the last lever's model, graphs and compiled code before the next one is measured."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _settings(run: Run, levers: dict[str, str]) -> Any:
    return lever_settings(run.device, run.batches, levers)


def _default_budget(device: torch.device) -> float | None:
    """90% of the card's memory on CUDA; no budget elsewhere."""
    if device.type != "cuda":
        return None
    total = torch.cuda.get_device_properties(device).total_memory
    return round(CUDA_BUDGET_FRACTION * total / 2**20, 1)
