"""Encoder throughput: items/s and peak memory per modality, precision, batch size and mode.

Modes: ``fast`` is what embedstore runs (``Encoder.encode``: fused SDPA attention, the last block
computes only the pooled token, text batches cut after their last end-of-text, images through a
2-D patch kernel); ``official`` is
the official-style computation on the same weights (``ImageBindModel.forward``: every token of
every block, full 77-token text, unfused math attention). Inputs are synthetic and already on the
device; ``fast`` includes the copy of the result to a NumPy array.

LanguageBind (``--encoder languagebind_test`` or a full-size random tower, ``--config lb_video``
...): ``fast`` is ``Encoder.encode`` (LoRA merged, fused attention, text cut after the last
end-of-text); ``official`` runs the same towers the way the official code does (full 77-token
text with its padding mask, unfused math attention). Inputs take each tower's own shapes; the
``video`` rows are clips (3, 8, 224, 224).

    python -m benchmarks.throughput --smoke
    python -m benchmarks.throughput --smoke --encoder languagebind_test
    python -m benchmarks.throughput --config lb_video --device cuda --precision fp32,bf16 \\
        --batch 1,8 --modality video,text
    python -m benchmarks.throughput --config huge --device cuda --precision fp32,bf16,fp16 \\
        --batch 1,8,32 --out benchmarks/results/throughput-huge-h100.json
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.common import emit, output_options, parse_ints, peak_rss_mb, result_doc, timeit
from embedstore.encoders import Encoder, create_encoder, resolve_device
from embedstore.encoders.imagebind import ImageBindEncoder, ImageBindModel
from embedstore.encoders.imagebind.encoder import HUGE_CONFIG, TEST_CONFIG

MODALITIES = ("vision", "video", "text", "audio", "depth", "thermal", "imu")
CONFIGS: dict[str, Any] = {"test": TEST_CONFIG, "huge": HUGE_CONFIG}
# full-size LanguageBind towers with random weights: config name -> {tower kind: hub preset}
LB_CONFIGS: dict[str, dict[str, str]] = {
    "lb_image": {"image": "image"},
    "lb_video": {"video": "video"},
    "lb_video_v15": {"video": "video_v15"},
    "lb_video_huge_v15": {"video": "video_huge_v15"},
    "lb_audio": {"audio": "audio"},
    "lb_depth": {"depth": "depth"},
    "lb_thermal": {"thermal": "thermal"},
}
SMOKE: dict[str, Any] = {
    "config": "test",
    "device": "cpu",
    "precisions": "fp32,bf16",
    "batches": "1,4",
    "warmup": 1,
    "runs": 3,
    "modes": "fast,official",
}


def make_inputs(
    modality: str, batch: int, seed: int = 0, shapes: dict[str, tuple[int, ...]] | None = None
) -> torch.Tensor:
    """A synthetic batch shaped like ``embedstore.modalities.load`` output (text: 8-24 tokens).

    ``shapes`` (LanguageBind's ``input_shapes``) gives per-tower shapes; its text pads with the
    end-of-text id as LanguageBind's tokenizer does.
    """
    g = torch.Generator().manual_seed(seed)
    if modality == "text":
        pad = 49407 if shapes is not None else 0
        ids = torch.full((batch, 77), pad, dtype=torch.long)
        lengths = torch.randint(8, 25, (batch,), generator=g)
        for i, n in enumerate(lengths.tolist()):  # setup only, not timed
            ids[i, 0] = 49406
            ids[i, 1:n] = torch.randint(1, 49406, (n - 1,), generator=g)
            ids[i, n] = 49407
        return ids
    shapes = {
        "vision": (3, 224, 224),
        "audio": (3, 1, 128, 204),
        "depth": (1, 224, 224),
        "thermal": (1, 224, 224),
        "imu": (6, 2000),
    } | (shapes or {})
    return torch.randn(batch, *shapes[modality], generator=g)


def random_huge(device: torch.device) -> ImageBindModel:
    """ImageBind huge with N(0, 0.02) random weights, built directly on ``device``."""
    with torch.device("meta"):
        model = ImageBindModel(**HUGE_CONFIG)
    model = model.to_empty(device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and name.endswith("weight"):
                p.fill_(1.0)
            elif p.ndim <= 1:
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
    model.reset_buffers()
    return model.eval()


def build_encoder(
    config: str, encoder: str | None, device: str, precision: str, compile: bool
) -> Encoder:
    """The encoder under test: a registered one by name, or an ImageBind config."""
    if encoder:
        return create_encoder(encoder, device=device, precision=precision)
    if config in LB_CONFIGS:
        from embedstore.encoders.languagebind.encoder import build_random

        return build_random(LB_CONFIGS[config], device=device, precision=precision)
    dev = resolve_device(device)
    if config == "huge":
        model = random_huge(dev)
    else:
        model = create_encoder("imagebind_test", device="cpu").model  # type: ignore[attr-defined]
    return ImageBindEncoder(
        f"imagebind_{config}",
        model,
        version="random",
        device=device,
        precision=precision,
        compile=compile,
    )


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated since the last reset; CPU: the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def runner(enc: Encoder, modality: str, x: torch.Tensor, mode: str) -> Callable[[], Any]:
    """The timed call for one mode."""
    encode_as = "vision" if modality == "video" else modality
    if mode == "fast":
        return lambda: enc.encode(encode_as, x)
    if enc.family == "languagebind":
        return languagebind_official(enc, modality, x)
    model: ImageBindModel = enc.model  # type: ignore[attr-defined]
    xin = x if modality == "text" else x.to(model.dtype)

    def official() -> Any:
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH):
            return model({modality: xin})[modality]

    return official


def languagebind_official(enc: Encoder, modality: str, x: torch.Tensor) -> Callable[[], Any]:
    """The towers run as the official code runs them: all 77 tokens with the padding mask,
    unfused math attention (the weights are the merged ones: same cost as unmerged LoRA's base)."""
    towers: Any = enc.towers  # type: ignore[attr-defined]
    kind = {"vision": "image", "video": "video"}.get(modality, modality)
    tower = towers[enc.text_tower if modality == "text" else kind]  # type: ignore[attr-defined]
    xin = x if modality == "text" else x.to(enc.dtype)
    mask = (torch.cumsum(x == 49407, dim=1) <= 1).long() if modality == "text" else None

    def official() -> Any:
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH):
            if modality == "text":
                return tower.text_projection(tower.text_model(xin, mask, collect={}))
            return tower.visual_projection(tower.vision_model(xin, collect={}))

    return official


def bench_one(
    enc: Encoder, modality: str, batch: int, mode: str, warmup: int, runs: int
) -> dict[str, Any]:
    """One row: median seconds per batch, items/s and peak memory."""
    shapes = enc.input_shapes() if hasattr(enc, "input_shapes") else None
    x = make_inputs(modality, batch, shapes=shapes).to(enc.device)
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(enc.device)
    timing = timeit(
        runner(enc, modality, x, mode), warmup, runs, cuda_sync=enc.device.type == "cuda"
    )
    return {
        "modality": modality,
        "batch": batch,
        "precision": enc.precision,
        "mode": mode,
        "median_s": timing.median_s,
        "p90_s": timing.p90_s,
        "min_s": timing.min_s,
        "items_per_s": batch / timing.median_s,
        "peak_mem_mb": round(peak_memory_mb(enc.device), 1),
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Choice(sorted([*CONFIGS, *LB_CONFIGS])),
    default="huge",
    show_default=True,
    help="ImageBind size, or a full-size LanguageBind tower (lb_*), with random weights.",
)
@click.option(
    "--encoder", default=None, help="Benchmark a registered encoder instead (real weights)."
)
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", "precisions", default="fp32,bf16", show_default=True)
@click.option("--modality", "modalities", default=",".join(MODALITIES), show_default=True)
@click.option("--batch", "batches", default="1,8,32", show_default=True)
@click.option(
    "--mode",
    "modes",
    default="fast,official",
    show_default=True,
    help="fast (embedstore path) and/or official (full-sequence, unfused attention).",
)
@click.option("--warmup", type=int, default=2, show_default=True)
@click.option("--runs", type=int, default=5, show_default=True)
@click.option("--threads", type=int, default=0, help="torch CPU threads (0: torch default).")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the fast path.")
@output_options
def main(
    config: str,
    encoder: str | None,
    device: str,
    precisions: str,
    modalities: str,
    batches: str,
    modes: str,
    warmup: int,
    runs: int,
    threads: int,
    use_compile: bool,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Measure encoder items/s per modality x batch x precision x mode."""
    if smoke:  # the preset fills every option the command line did not set
        ctx = click.get_current_context()
        given = {
            k
            for k in SMOKE
            if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT
        }
        preset = {k: v for k, v in SMOKE.items() if k not in given}
        config = preset.get("config", config)
        device = preset.get("device", device)
        precisions = preset.get("precisions", precisions)
        batches = preset.get("batches", batches)
        warmup = preset.get("warmup", warmup)
        runs = preset.get("runs", runs)
        modes = preset.get("modes", modes)
    if threads:
        torch.set_num_threads(threads)
    mode_list = [m for m in modes.split(",") if m]
    official_ok = ("imagebind", "languagebind")
    if encoder and "official" in mode_list and not encoder.startswith(official_ok):
        mode_list.remove("official")
    rows = []
    for precision in precisions.split(","):
        enc = build_encoder(config, encoder, device, precision, use_compile)
        for modality in modalities.split(","):
            shapes = enc.input_shapes() if hasattr(enc, "input_shapes") else {}
            if modality not in enc.modalities and modality not in shapes:
                continue
            if shapes and modality not in shapes:
                continue
            for batch in parse_ints(batches):
                for mode in mode_list:
                    rows.append(bench_one(enc, modality, batch, mode, warmup, runs))
                    click.echo(
                        f"  {modality} b={batch} {precision} {mode}: "
                        f"{rows[-1]['items_per_s']:.1f} items/s",
                        err=True,
                    )
        del enc
    params = {
        "config": None if encoder else config,
        "encoder": encoder,
        "device": str(resolve_device(device)),
        "threads": torch.get_num_threads(),
        "precisions": precisions,
        "batches": batches,
        "modes": mode_list,
        "warmup": warmup,
        "runs": runs,
        "compile": use_compile,
        "smoke": smoke,
        "peak_mem": "CUDA max_memory_allocated per row"
        if "cuda" in str(resolve_device(device))
        else "process peak RSS (monotone over the run)",
    }
    emit(result_doc("throughput", params, rows), as_json=as_json, out=out, plot=plot)


if __name__ == "__main__":
    main()
