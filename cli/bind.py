"""``embedstore bind``: train a modality's tower into an encoder's space (contrastive, optional LoRA)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from embedstore.bind import LORA_TARGETS, LoRAConfig, TowerSpec, TrainConfig, bound_dir
from embedstore.bind import bind as run_bind
from embedstore.config import Settings

MODALITIES = ["vision", "text", "audio", "depth", "thermal", "imu"]


def _targets(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    targets = tuple(t.strip() for t in value.split(",") if t.strip())
    bad = [t for t in targets if t not in LORA_TARGETS]
    if bad or not targets:
        raise click.BadParameter(f"choose from {', '.join(LORA_TARGETS)}; got {value!r}")
    return targets


@click.command("bind")
@click.argument("pairs", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-m", "--modality", required=True, type=click.Choice(MODALITIES), help="Modality to train."
)
@click.option(
    "-a", "--anchor-modality", default="vision", show_default=True, type=click.Choice(MODALITIES),
    help="Modality of the frozen side of each pair.",
)  # fmt: skip
@click.option("--base-encoder", help="Frozen encoder giving the anchor space (default: settings).")
@click.option(
    "-o", "--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option("--name", help="Save as <data_dir>/bound/NAME, usable as --encoder bound:NAME.")
@click.option(
    "--init", default="scratch", show_default=True,
    help="scratch (seeded random), base (the base encoder's own tower) or a checkpoint file.",
)  # fmt: skip
@click.option("--width", type=int, help="Scratch tower width (default: the base's, else 64).")
@click.option("--layers", type=int, help="Scratch tower blocks (default: the base's, else 2).")
@click.option(
    "--heads", type=int, help="Scratch tower attention heads (default: the base's, else 2)."
)
@click.option(
    "--lora-rank", type=int, help="Train LoRA adapters of this rank instead of the tower."
)
@click.option("--lora-alpha", type=float, default=16.0, show_default=True)
@click.option(
    "--lora-targets", default=",".join(LORA_TARGETS), show_default=True, callback=_targets,
    help="Projections that get adapters.",
)  # fmt: skip
@click.option("--save-adapters-only", is_flag=True, help="Save only the adapters (not merged).")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(2))
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option("--weight-decay", default=0.05, show_default=True, type=float)
@click.option(
    "--temperature", default=0.07, show_default=True, type=float, help="Initial temperature."
)
@click.option("--fixed-temperature", is_flag=True, help="Keep the temperature fixed (not learned).")
@click.option("--val-fraction", default=0.1, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--amp", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16"]),
    help="Mixed precision: auto = bf16 autocast on CUDA, fp32 on CPU.",
)  # fmt: skip
@click.option("--checkpoint-every", default=0, type=int, help="Also checkpoint every N steps.")
@click.option("--resume", is_flag=True, help="Continue from the output folder's checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def bind_command(
    settings: Settings,
    pairs: Path,
    modality: str,
    anchor_modality: str,
    base_encoder: str | None,
    out: Path | None,
    name: str | None,
    init: str,
    width: int | None,
    layers: int | None,
    heads: int | None,
    lora_rank: int | None,
    lora_alpha: float,
    lora_targets: tuple[str, ...],
    save_adapters_only: bool,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    temperature: float,
    fixed_temperature: bool,
    val_fraction: float,
    seed: int,
    amp: str,
    checkpoint_every: int,
    resume: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Bind a modality to an encoder's space from PAIRS (CSV/JSONL with anchor,target, or a folder
    whose files share a stem). Prints the new encoder's name, for --encoder.

    \b
        embedstore bind sounds/ -m audio --base-encoder imagebind_huge --name animal-sounds
        embedstore bind captions.csv -m text --init base --lora-rank 8 -o ./text-lora
        embedstore index sounds/ -c zoo --encoder bound:animal-sounds
    """
    if (out is None) == (name is None):
        raise click.UsageError("give exactly one of --out and --name")
    if save_adapters_only and lora_rank is None:
        raise click.UsageError("--save-adapters-only needs --lora-rank")
    target = out if out is not None else settings.data_dir / "bound" / str(name)
    result = run_bind(
        pairs,
        modality=modality,
        anchor_modality=anchor_modality,
        out_dir=target,
        base_encoder=base_encoder or settings.encoder,
        tower=TowerSpec(init=init, width=width, layers=layers, heads=heads),
        lora=LoRAConfig(lora_rank, lora_alpha, lora_targets) if lora_rank else None,
        train=TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            temperature=temperature,
            learn_temperature=not fixed_temperature,
            precision=amp,
            seed=seed,
            checkpoint_every=checkpoint_every,
        ),
        val_fraction=val_fraction,
        save_adapters_only=save_adapters_only,
        resume=resume,
        device=settings.resolved_device(),
        weights_dir=settings.resolved_weights_dir,
        progress=not no_progress,
        on_stage=lambda s: click.echo(s, err=True),
    )
    for f in result.failed:
        click.echo(f"skipping {f.uri}: {f.reason}", err=True)
    # a short name only where ``bound:NAME`` resolves to this folder (the settings' data dir)
    encoder = (
        f"bound:{name}" if name and bound_dir(name, settings) == result.path else result.encoder
    )
    metrics = {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)}
    if as_json:
        doc = {
            "encoder": encoder,
            "path": str(result.path),
            "modality": modality,
            "pairs": result.pairs,
            "train_pairs": result.train_pairs,
            "val_pairs": result.val_pairs,
            "trainable_parameters": result.trainable_parameters,
            "temperature": result.temperature,
            "metrics": metrics,
            "failed": [{"uri": f.uri, "reason": f.reason} for f in result.failed],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        summary = "  ".join(f"{k} {v}" for k, v in metrics.items() if "recall@" in k or k == "loss")
        click.echo(f"bound {modality} to {result.path} ({summary})", err=True)
        click.echo(encoder)


bind = bind_command
