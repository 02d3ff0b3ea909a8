"""Emergent alignment: bind text to images, then audio to images only, and measure text -> audio.

Data: Debian ``tuxpaint-stamps-default`` (photo cut-outs, caption on line 1 of ``X.txt``, and for
131 PNG stamps the object's real sound ``X.ogg``/``X.wav``). The frozen anchor is the seeded random
``imagebind_test`` vision tower (no pretrained weights exist offline); the text and audio towers are
trained from scratch against its image embeddings with ``embedstore.bind``. Text and audio are never
paired in training. Recall is measured on the items both bindings saw (``seen``) and on items held out
of both (``held_out``), against chance (k / n) and against the unbound ``imagebind_test`` towers.

    python -m benchmarks.emergent --smoke
    python -m benchmarks.emergent --out benchmarks/results/emergent.json
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from benchmarks.common import emit, output_options, result_doc
from embedstore.bind import Pair, TowerSpec, TrainConfig, bind, chance_recall, retrieval_recall
from embedstore.bind.pairs import caption_of
from embedstore.encoders import Encoder, create_encoder

STAMPS = Path("/usr/share/tuxpaint/stamps")
KS = (1, 5, 10)
DIRECTIONS = (("text", "audio"), ("vision", "audio"), ("text", "vision"))


@dataclass(frozen=True)
class Stamp:
    """One stamp: its photo, caption and (maybe) its sound."""

    image: Path
    caption: str
    sound: Path | None


def find_stamps(root: Path) -> list[Stamp]:
    """Every PNG stamp with a caption file, with its ``.ogg``/``.wav`` sound where there is one."""
    if not root.is_dir():
        raise click.ClickException(
            f"{root} not found; install it with: apt-get install tuxpaint-stamps-default"
        )
    stamps = []
    for png in sorted(root.rglob("*.png")):
        txt = png.with_suffix(".txt")
        if not txt.is_file():
            continue
        sound = next(
            (s for s in (png.with_suffix(".ogg"), png.with_suffix(".wav")) if s.is_file()), None
        )
        stamps.append(Stamp(png, caption_of(txt), sound))
    return stamps


def decode_split(stamps: list[Stamp]) -> dict[str, torch.Tensor]:
    """Preprocess the captions, photos and sounds of ``stamps`` once (stacked per modality)."""
    from embedstore.modalities import load

    values: dict[str, list[Any]] = {
        "text": [s.caption for s in stamps],
        "vision": [s.image for s in stamps],
        "audio": [s.sound for s in stamps],
    }
    return {m: torch.stack([load(m, v) for v in vs]) for m, vs in values.items()}


def recall_rows(
    encoder: Encoder, inputs: dict[str, torch.Tensor], split: str, model: str
) -> list[dict[str, Any]]:
    """Recall@k of each direction over one split (gallery = the same stamps), with chance."""
    emb = {
        m: torch.cat(
            [torch.from_numpy(encoder.encode(m, x[s : s + 32])) for s in range(0, len(x), 32)]
        )
        for m, x in inputs.items()
    }
    n = len(inputs["text"])
    truth = torch.arange(n)
    chance = chance_recall(n, KS)
    rows = []
    for q, g in DIRECTIONS:
        r = retrieval_recall(emb[q], emb[g], truth, KS)
        row: dict[str, Any] = {"model": model, "split": split, "query": q, "gallery": g, "n": n}
        row |= {f"recall@{k}": round(r[k], 4) for k in KS}
        row |= {f"chance@{k}": round(chance[k], 4) for k in KS}
        rows.append(row)
    return rows


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@output_options
@click.option(
    "--stamps", "root", type=click.Path(path_type=Path), default=STAMPS, show_default=True
)
@click.option(
    "--work-dir", type=click.Path(file_okay=False, path_type=Path), help="Keep caches/towers here."
)
@click.option(
    "--held-out", default=30, show_default=True, help="Sound stamps kept out of both bindings."
)
@click.option("--text-epochs", default=30, show_default=True)
@click.option("--audio-epochs", default=150, show_default=True)
@click.option("--width", default=64, show_default=True, help="Width of the trained towers.")
@click.option("--layers", default=2, show_default=True, help="Blocks of the trained towers.")
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    help="torch CPU threads (1 is fastest on a busy CPU).",
)
def main(
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
    root: Path,
    work_dir: Path | None,
    held_out: int,
    text_epochs: int,
    audio_epochs: int,
    width: int,
    layers: int,
    lr: float,
    seed: int,
    threads: int,
) -> None:
    """Bind text->image and audio->image on Tux Paint stamps; report emergent text->audio recall."""
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    t_start = time.perf_counter()
    stamps = find_stamps(root)
    rng = np.random.default_rng(seed)
    sounds = [s for s in stamps if s.sound is not None]
    order = rng.permutation(len(sounds))
    if smoke:
        held_out, text_epochs, audio_epochs, width, layers = 8, 3, 6, 32, 1
        order = order[:32]
    held = [sounds[i] for i in order[:held_out]]
    seen = [sounds[i] for i in order[held_out:]]
    held_images = {s.image for s in held}
    text_pairs = [Pair(s.image, s.caption) for s in stamps if s.image not in held_images]
    if smoke:  # the seen sound stamps plus a few others
        seen_images = {s.image for s in seen}
        others = [p for p in text_pairs if p.anchor not in seen_images][:40]
        text_pairs = [p for p in text_pairs if p.anchor in seen_images] + others
    audio_pairs = [Pair(s.image, s.sound) for s in seen if s.sound is not None]
    work = work_dir or Path(tempfile.mkdtemp(prefix="embedstore-emergent-"))
    tower = TowerSpec(width=width, layers=layers, heads=max(1, width // 32))
    say = lambda s: click.echo(s, err=True)  # noqa: E731

    t0 = time.perf_counter()
    text = bind(
        text_pairs, modality="text", base_encoder="imagebind_test", out_dir=work / "text",
        tower=tower, train=TrainConfig(epochs=text_epochs, batch_size=64, lr=lr, seed=seed),
        val_fraction=0.05, device="cpu", on_stage=say,
    )  # fmt: skip
    t_text = time.perf_counter() - t0
    t0 = time.perf_counter()
    audio = bind(
        audio_pairs, modality="audio", base_encoder=text.encoder, out_dir=work / "audio",
        tower=tower, val_fraction=0, device="cpu", on_stage=say,
        train=TrainConfig(epochs=audio_epochs, batch_size=32, lr=lr, seed=seed, sample_clips=True),
    )  # fmt: skip
    t_audio = time.perf_counter() - t0

    bound = create_encoder(audio.encoder, device="cpu")
    unbound = create_encoder("imagebind_test", device="cpu")
    rows = []
    for split, items in (("seen", seen), ("held_out", held)):
        say(f"evaluating {len(items)} {split} sound stamps")
        inputs = decode_split(items)
        rows += recall_rows(bound, inputs, split, "bound")
        rows += recall_rows(unbound, inputs, split, "imagebind_test (unbound)")
    params = {
        "dataset": "tuxpaint-stamps-default",
        "smoke": smoke,
        "stamps": len(stamps),
        "sound_stamps": len(sounds),
        "text_pairs": len(text_pairs),
        "audio_pairs": len(audio_pairs),
        "seen": len(seen),
        "held_out": len(held),
        "anchor": "imagebind_test vision (seeded random, frozen)",
        "tower": {"width": width, "layers": layers, "heads": tower.heads},
        "text_epochs": text_epochs,
        "audio_epochs": audio_epochs,
        "lr": lr,
        "seed": seed,
        "threads": threads,
        "text_bind": {"seconds": round(t_text, 1), "final": text.metrics},
        "audio_bind": {"seconds": round(t_audio, 1), "final": audio.metrics},
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "work_dir": str(work),
    }
    emit(result_doc("emergent", params, rows), as_json=as_json, out=out, plot=None)


if __name__ == "__main__":
    main()
