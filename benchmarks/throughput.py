"""Encoder throughput: items/s and peak memory per modality, precision, batch size and mode.

Modes: ``fast`` is what embedstore runs (``Encoder.encode``: fused SDPA attention, the last block
computes only the pooled token, text batches cut after their last end-of-text, images through a
2-D patch kernel); ``official`` is
the official-style computation on the same weights (``ImageBindModel.forward``: every token of
every block, full 77-token text, unfused math attention). Inputs are synthetic and already on the
device; ``fast`` includes the copy of the result to a NumPy array. ``official_code`` runs the
official ImageBind code itself (``benchmarks/official_code.py``: the ``imagebind-unofficial``
package, installed in the benchmark environment only) holding the very tensors of our model, so
the same weights, dtype and batch; each of its rows also reports ``cosine_vs_fast_min``, the
lowest cosine between its embeddings and ours on that batch.

``--precision fp8`` (CUDA capability >= 8.9) runs the bf16 model with the trunks' ``nn.Linear``
layers swapped for e4m3 ``torch._scaled_mm`` with per-row scales (``embedstore/encoders/fp8.py``);
the official code has no fp8 rows. Every row reports items/s, peak memory, the FLOPs of one item
(counted by ``torch.utils.flop_counter`` on that row's own computation, attention as its matmuls)
and MFU against the card's dense peak for the precision (``--peak-tflops`` sets it elsewhere).

LanguageBind (``--encoder languagebind_test`` or a full-size random tower, ``--config lb_video``
...): ``fast`` is ``Encoder.encode`` (LoRA merged, fused attention, text cut after the last
end-of-text); ``official`` runs the same towers the way the official code does (full 77-token
text with its padding mask, unfused math attention). Inputs take each tower's own shapes; the
``video`` rows are clips (3, 8, 224, 224).

    python -m benchmarks.throughput --smoke
    python -m benchmarks.throughput --smoke --encoder languagebind_test
    python -m benchmarks.throughput --smoke --mode fast,official_code --modality vision,text
    python -m benchmarks.throughput --config lb_video --device cuda --precision fp32,bf16 \\
        --batch 1,8 --modality video,text
    python -m benchmarks.throughput --config huge --device cuda --precision fp32,bf16,fp16 \\
        --batch 1,8,32 --out benchmarks/results/throughput-huge-h100.json
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import emit, output_options, parse_ints, peak_rss_mb, result_doc, timeit
from embedstore.config import Settings
from embedstore.encoders import Encoder, create_encoder, resolve_device
from embedstore.encoders.fp8 import swap_linears
from embedstore.encoders.imagebind import ImageBindEncoder, ImageBindModel
from embedstore.encoders.imagebind.encoder import GRAPHABLE, HUGE_CONFIG, TEST_CONFIG
from embedstore.encoders.levers import (
    COMPILE_MODES,
    CUDA_GRAPH_CHOICES,
    SDPA_BACKENDS,
    levers_from_settings,
)
from embedstore.errors import InvalidConfig

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
# dense peak TFLOP/s per precision (NVIDIA datasheets, SXM boards; fp32 without TF32)
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9},
    "H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
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


def lever_settings(
    device: str, batches: list[int], levers: dict[str, str] | None = None
) -> Settings:
    """Settings with every speed lever given (eager unless ``levers`` sets some; never the env's).

    CUDA graphs are captured at exactly the benchmarked batch sizes (no padding in a timed row),
    for every tower with a fixed item shape.
    """
    fields: dict[str, Any] = {
        "compile_mode": "off",
        "compile_towers": "",
        "cuda_graphs": "off",
        "cuda_graph_towers": ",".join(GRAPHABLE),
        "cuda_graph_batches": ",".join(map(str, sorted(set(batches)))),
        "sdpa_backend": "auto",
    } | (levers or {})
    return Settings(device=device, batch_size=min(max(batches), 4096), **fields)


def build_encoder(
    config: str,
    encoder: str | None,
    device: str,
    precision: str,
    compile: bool,
    fp8_emulate: bool = False,
    settings: Settings | None = None,
) -> Encoder:
    """The encoder under test: a registered one by name, or an ImageBind config.

    ``fp8``: the bf16 ImageBind model with its trunks' linear layers in fp8 (`swap_linears`; the
    heads' projections see one token per item and stay bf16). ``settings`` carry the speed levers
    (`lever_settings`; ImageBind only).
    """
    levers = levers_from_settings(settings)
    if levers.active and (
        (encoder or config) in LB_CONFIGS or (encoder and not encoder.startswith("imagebind"))
    ):
        raise InvalidConfig(
            f"the speed levers are ImageBind's, not {encoder or config}'s", field="levers"
        )
    if precision == "fp8":
        enc = build_encoder(config, encoder, device, "bf16", compile, settings=settings)
        if enc.family != "imagebind":
            raise InvalidConfig(
                f"precision fp8 is for ImageBind, not {enc.name}", field="precision"
            )
        model: ImageBindModel = enc.model  # type: ignore[attr-defined]
        # float32 computation on the same (bf16-rounded) weights, for the rows' cosine
        enc.fp32_reference = copy.deepcopy(model).float()  # type: ignore[attr-defined]
        swap_linears(model.modality_trunks, emulate=fp8_emulate)
        enc.precision = "fp8"
        return enc
    if encoder:
        return create_encoder(encoder, device=device, precision=precision, settings=settings)
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
        levers=levers,
    )


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated since the last reset; CPU: the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def peak_tflops(device: torch.device, precision: str, override: float | None) -> float | None:
    """The dense peak TFLOP/s of ``device`` at ``precision``: ``override``, the table, or None."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for card, rates in PEAK_TFLOPS.items():
        if card in name and "PCIe" not in name:
            return rates.get(precision)
    return None


def flops_of(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (attention through the math kernel, so counted as matmuls)."""
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return int(counter.get_total_flops())


def unit_rows(out: Any) -> torch.Tensor:
    """A result of any mode as unit-norm float32 rows on the CPU."""
    t = torch.as_tensor(out).float().cpu()
    return torch.nn.functional.normalize(t, dim=-1)


_OFFICIAL: dict[int, torch.nn.Module] = {}


def official_code_model(enc: Encoder) -> torch.nn.Module:
    """The official code's model on ``enc``'s tensors (built once per encoder)."""
    if id(enc) not in _OFFICIAL:
        from benchmarks.official_code import official_model

        config = CONFIGS.get(enc.name.removeprefix("imagebind_"))
        if enc.family != "imagebind" or config is None:
            raise InvalidConfig(
                f"--mode official_code runs ImageBind ({', '.join(CONFIGS)}), not {enc.name}",
                field="mode",
            )
        _OFFICIAL.clear()
        _OFFICIAL[id(enc)] = official_model(config, enc.model)  # type: ignore[attr-defined]
    return _OFFICIAL[id(enc)]


def encode_as(modality: str) -> str:
    """The encoder modality of a benchmark modality (``video`` rows are single vision clips)."""
    return "vision" if modality == "video" else modality


def runner(enc: Encoder, modality: str, x: torch.Tensor, mode: str) -> Callable[[], Any]:
    """The timed call for one mode."""
    if mode == "fast":
        return lambda: enc.encode(encode_as(modality), x)
    if mode == "official_code":
        code_model = official_code_model(enc)
        xcode = x if modality == "text" else x.to(enc.dtype)

        def run_official_code() -> Any:
            with torch.inference_mode():
                return code_model({modality: xcode})[modality]

        return run_official_code
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
    enc: Encoder,
    modality: str,
    batch: int,
    mode: str,
    warmup: int,
    runs: int,
    peak: float | None = None,
    flops: int | None = None,
) -> dict[str, Any]:
    """One row: median seconds per batch, items/s, peak memory, FLOPs per item and MFU.

    ``flops`` (counted on the eager path) is given for compiled or graph-captured encoders,
    whose own first call (compilation, capture) is then timed apart as ``first_call_s``.
    """
    shapes = enc.input_shapes() if hasattr(enc, "input_shapes") else None
    x = make_inputs(modality, batch, shapes=shapes).to(enc.device)
    fn = runner(enc, modality, x, mode)
    extra: dict[str, Any] = {}
    if flops is None:
        flops = flops_of(fn)  # untimed; also a first warm-up call
    else:
        start = time.perf_counter()
        fn()
        if enc.device.type == "cuda":
            torch.cuda.synchronize()
        extra["first_call_s"] = round(time.perf_counter() - start, 3)
    if mode == "official_code":  # the same batch through our path: do the two agree?
        cos = (unit_rows(fn()) * unit_rows(runner(enc, modality, x, "fast")())).sum(-1)
        extra["cosine_vs_fast_min"] = float(cos.min())
    if enc.precision == "fp8" and mode == "fast":  # fp8 against float32 on the same weights
        ref: ImageBindModel = enc.fp32_reference  # type: ignore[attr-defined]
        with torch.inference_mode():
            want = ref.embed(encode_as(modality), x if modality == "text" else x.float())
        cos = (unit_rows(fn()) * unit_rows(want)).sum(-1)
        extra["cosine_vs_fp32_min"] = float(cos.min())
        extra["cosine_vs_fp32_mean"] = float(cos.mean())
    if enc.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(enc.device)
    timing = timeit(fn, warmup, runs, cuda_sync=enc.device.type == "cuda")
    achieved = flops / timing.median_s / 1e12
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
        "gflops_per_item": float(f"{flops / batch / 1e9:.4g}"),
        "tflops": float(f"{achieved:.4g}"),
        "mfu": round(achieved / peak, 4) if peak else None,
        **extra,
    }


def run_levers(
    config: str,
    encoder: str | None,
    device: str,
    precisions: str,
    modalities: str,
    batches: str,
    warmup: int,
    runs: int,
    peak_override: float | None,
    lever_names: str | None,
    sweep: bool,
    sweep_batches: str,
    mem_budget_mb: float | None,
    save: Callable[[list[dict[str, Any]]], None],
) -> list[dict[str, Any]]:
    """The rows of ``--levers`` and ``--sweep`` (`benchmarks.levers`); ``save`` gets every row
    so far after each lever."""
    from benchmarks.levers import Run, lever_rows, parse_levers, sweep_rows

    try:
        names = parse_levers(lever_names) if lever_names is not None else []
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--levers") from exc
    if sweep and "batch_sweep" not in names:
        names.append("batch_sweep")
    if config in LB_CONFIGS or (encoder and not encoder.startswith("imagebind")):
        raise click.UsageError("--levers and --sweep measure ImageBind (--config test/huge)")
    known = set(MODALITIES) - {"video"}  # ImageBind towers (the levers are ImageBind's)
    run = Run(
        config=config,
        encoder=encoder,
        device=device,
        modalities=[m for m in modalities.split(",") if m in known],
        batches=parse_ints(batches),
        warmup=warmup,
        runs=runs,
        peak_for=lambda dev, precision: peak_tflops(dev, precision, peak_override),
        echo=lambda line: click.echo(line, err=True),
        save=save,
    )
    for precision in precisions.split(","):
        try:
            if any(n != "batch_sweep" for n in names):
                lever_rows(run, precision, names)
            if "batch_sweep" in names:
                sweep_rows(run, precision, parse_ints(sweep_batches), mem_budget_mb)
        except InvalidConfig as exc:  # e.g. levers on a LanguageBind tower, fp8 without a card
            raise click.UsageError(str(exc)) from exc
    return run.rows


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
    help="fast (embedstore path), official (full-sequence, unfused attention) and/or "
    "official_code (the official ImageBind code on the same weights; needs imagebind-unofficial).",
)
@click.option("--warmup", type=int, default=2, show_default=True)
@click.option("--runs", type=int, default=5, show_default=True)
@click.option("--threads", type=int, default=0, help="torch CPU threads (0: torch default).")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the whole fast path.")
@click.option(
    "--compile-mode",
    type=click.Choice(list(COMPILE_MODES)),
    default="off",
    show_default=True,
    help="torch.compile every transformer block in this mode (a speed lever; --mode fast).",
)
@click.option(
    "--cuda-graphs",
    type=click.Choice(list(CUDA_GRAPH_CHOICES)),
    default="off",
    show_default=True,
    help="CUDA graphs per tower and batch size (vision, audio, depth, thermal, imu).",
)
@click.option(
    "--sdpa-backend",
    type=click.Choice(list(SDPA_BACKENDS)),
    default="auto",
    show_default=True,
    help="Attention kernel tried first (the math kernel serves what it cannot run).",
)
@click.option(
    "--levers",
    "lever_names",
    default=None,
    help="Measure each speed lever alone, one row per lever: 'all' or a comma list of eager, "
    "compile_default, compile_max_autotune, compile_max_autotune_no_cudagraphs, cuda_graphs, "
    "sdpa_flash, sdpa_cudnn, sdpa_efficient, sdpa_math, batch_sweep (fast path only).",
)
@click.option(
    "--sweep", is_flag=True, help="Batch-size sweep of the fast path (the batch_sweep lever)."
)
@click.option(
    "--sweep-batches",
    default="1,2,4,8,16,32,64,128,256,512",
    show_default=True,
    help="Batch sizes of the sweep, in the order tried.",
)
@click.option(
    "--mem-budget-mb",
    type=float,
    default=None,
    help="Peak memory budget of the sweep (default: 90%% of the CUDA card; none on CPU).",
)
@click.option(
    "--fp8-emulate",
    is_flag=True,
    help="fp8 as float32 matmuls of the quantised values (a CPU check of its numerics; "
    "timings meaningless).",
)
@click.option(
    "--peak-tflops",
    "peak_tflops_override",
    type=float,
    default=None,
    help="Dense peak TFLOP/s for MFU (default: known CUDA cards per precision; else no MFU).",
)
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
    compile_mode: str,
    cuda_graphs: str,
    sdpa_backend: str,
    lever_names: str | None,
    sweep: bool,
    sweep_batches: str,
    mem_budget_mb: float | None,
    fp8_emulate: bool,
    peak_tflops_override: float | None,
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
    single = {
        "compile_mode": compile_mode,
        "cuda_graphs": cuda_graphs,
        "sdpa_backend": sdpa_backend,
    }
    single = {k: v for k, v in single.items() if v not in ("off", "auto")}
    if lever_names is not None or sweep:
        from benchmarks.levers import LEVERS

        def doc(rows: list[dict[str, Any]], partial: bool = False) -> dict[str, Any]:
            params = {
                "config": None if encoder else config,
                "encoder": encoder,
                "device": str(resolve_device(device)),
                "threads": torch.get_num_threads(),
                "precisions": precisions,
                "batches": batches,
                "levers": {n: LEVERS[n] for n in dict.fromkeys(r["lever"] for r in rows)},
                "sweep_batches": sweep_batches,
                "warmup": warmup,
                "runs": runs,
                "smoke": smoke,
                "partial": partial,
                "mfu": "FLOPs of the eager fast path / median time / dense peak of the precision",
                "peak_mem": "CUDA max_memory_allocated per row"
                if "cuda" in str(resolve_device(device))
                else "process peak RSS (monotone over the run)",
            }
            return result_doc("throughput", params, rows)

        def save(rows: list[dict[str, Any]]) -> None:  # a run cut short keeps its rows
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(doc(rows, partial=True), indent=2) + "\n")

        rows = run_levers(
            config, encoder, device, precisions, modalities, batches, warmup, runs,
            peak_tflops_override, lever_names, sweep, sweep_batches, mem_budget_mb, save,
        )  # fmt: skip
        emit(doc(rows), as_json=as_json, out=out, plot=plot)
        return
    mode_list = [m for m in modes.split(",") if m]
    if single and mode_list != ["fast"]:
        raise click.UsageError(
            "--compile-mode, --cuda-graphs and --sdpa-backend measure the fast path: add --mode fast"
        )
    official_ok = ("imagebind", "languagebind")
    if encoder and "official" in mode_list and not encoder.startswith(official_ok):
        mode_list.remove("official")
    if "official_code" in mode_list and (encoder or config) not in (
        *CONFIGS,
        *(f"imagebind_{c}" for c in CONFIGS),
    ):
        raise click.UsageError("--mode official_code runs ImageBind (--config test/huge) only")
    rows = []
    batch_list = parse_ints(batches)
    for precision in precisions.split(","):
        settings = lever_settings(device, batch_list, single) if single else None
        try:
            enc = build_encoder(
                config, encoder, device, precision, use_compile, fp8_emulate, settings
            )
        except InvalidConfig as exc:  # fp8 on a card without it, a lever the device lacks
            raise click.UsageError(str(exc)) from exc
        peak = peak_tflops(enc.device, precision, peak_tflops_override)
        flops: dict[tuple[str, int], int] = {}
        if single:  # counted on the eager path: compiled and captured code hides its operations
            from benchmarks.levers import eager_reference

            eager = build_encoder(config, encoder, device, precision, False, fp8_emulate)
            ms = [m for m in modalities.split(",") if m in enc.modalities]
            flops = {k: v[0] for k, v in eager_reference(eager, ms, batch_list).items()}
            del eager
        for modality in modalities.split(","):
            shapes = enc.input_shapes() if hasattr(enc, "input_shapes") else {}
            if modality not in enc.modalities and modality not in shapes:
                continue
            if shapes and modality not in shapes:
                continue
            for batch in batch_list:
                for mode in mode_list:
                    if mode == "official_code" and precision == "fp8":
                        continue  # the official code has no fp8 path
                    try:
                        rows.append(
                            bench_one(
                                enc,
                                modality,
                                batch,
                                mode,
                                warmup,
                                runs,
                                peak,
                                flops.get((modality, batch)),
                            )
                        )
                    except InvalidConfig as exc:  # the official code is not installed
                        raise click.UsageError(str(exc)) from exc
                    click.echo(
                        f"  {modality} b={batch} {precision} {mode}: "
                        f"{rows[-1]['items_per_s']:.1f} items/s",
                        err=True,
                    )
        del enc
        _OFFICIAL.clear()
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
        "levers": single or None,
        "peak_tflops": peak_tflops_override,
        "fp8_emulate": fp8_emulate,
        "mfu": "FLOPs of the row's own computation / median time / dense peak of the precision",
        "smoke": smoke,
        "peak_mem": "CUDA max_memory_allocated per row"
        if "cuda" in str(resolve_device(device))
        else "process peak RSS (monotone over the run)",
    }
    emit(result_doc("throughput", params, rows), as_json=as_json, out=out, plot=plot)


if __name__ == "__main__":
    main()
