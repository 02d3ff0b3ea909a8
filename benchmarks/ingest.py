"""Indexing throughput against the decode-only rate of the same files, and an unchanged re-run.

    python -m benchmarks.ingest --smoke --json
    python -m benchmarks.ingest --n 1000 --rerun-n 10000 --out benchmarks/results/ingest.json

The library is made of JPEG crops of the real reference photos (``../shared/fixtures``), or the
Tux Paint stamps when ``--tuxpaint`` is given. Rows: ``decode_only`` (``decode_many`` alone, same
workers and preprocessing), ``encode_only`` (the model alone on decoded batches, with the torch
threads the pipeline leaves it: CPU cores minus decode workers), ``index`` (the full pipeline into
a fresh SQLite collection: walk, hash, decode, embed, write), ``rerun_unchanged`` (a second
``index`` over an unchanged ``--rerun-n`` file library, which must do no model work).

Both throughput rows are warmed up once first (worker start-up and imports: a decode of a few
files, an index of a few files into a throw-away catalog), then measured ``--repeat`` times,
alternating decode-only and index runs so that load from other processes hits both alike; a row
reports the median (``runs``: every measurement).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from benchmarks.common import ROOT, emit, output_options, result_doc

ASSETS = ROOT.parent / "shared" / "fixtures" / "imagebind" / "assets"
TUXPAINT = Path("/usr/share/tuxpaint/stamps")


def make_images(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` distinct JPEG crops (``size`` px) of the real reference photos."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(p).convert("RGB") for p in sorted(ASSETS.glob("*_image.jpg"))]
    if not photos:
        raise click.ClickException(f"no reference photos in {ASSETS}")
    paths = []
    for i in range(n):
        im = photos[i % len(photos)]
        side = min(im.width, im.height, size + (i * 37) % 200)
        x, y = (i * 29) % (im.width - side + 1), (i * 53) % (im.height - side + 1)
        path = folder / f"{i // 1000:03d}" / f"img{i:06d}.jpg"
        path.parent.mkdir(exist_ok=True)
        im.crop((x, y, x + side, y + side)).resize((size, size)).save(path, quality=90)
        paths.append(path)
    return paths


def decode_only(paths: list[Path], workers: int) -> float:
    """Seconds to decode and preprocess every file with ``decode_many``, nothing else."""
    from embedstore.modalities import DecodeTask, decode_many, guess_modality

    tasks = [DecodeTask(i, guess_modality(p) or "vision", p) for i, p in enumerate(paths)]
    t0 = time.perf_counter()
    for _task, result in decode_many(tasks, workers):
        if isinstance(result, BaseException):
            raise click.ClickException(f"decode failed: {result}")
    return time.perf_counter() - t0


def encode_only(files: list[Path], encoder: str, batch: int, threads: int) -> tuple[int, float]:
    """(items, seconds) to embed up to 256 decoded files in batches, with ``threads`` torch threads."""
    import torch

    from embedstore.encoders import create_encoder
    from embedstore.modalities import DecodeTask, decode_many

    tasks = [DecodeTask(i, "vision", p) for i, p in enumerate(files[:256])]
    items = [r for _t, r in decode_many(tasks, 1) if not isinstance(r, BaseException)]
    enc = create_encoder(encoder, device="cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        enc.encode("vision", torch.stack(items[:batch]))  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(items), batch):
            enc.encode("vision", torch.stack(items[i : i + batch]))
        return len(items), time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def index_once(data: Path, files: list[Path], encoder: str, workers: int, batch: int) -> Any:
    """Index ``files`` (files or folders) into collection ``bench``; returns (report, seconds, items embedded)."""
    from embedstore.config import Settings
    from embedstore.engine import Engine

    settings = Settings(
        data_dir=data, device="cpu", encoder=encoder, workers=workers, batch_size=batch
    )
    engine = Engine(settings)
    try:
        t0 = time.perf_counter()
        report = engine.index(files, "bench", encoder=encoder)
        return report, time.perf_counter() - t0, engine.encoded_items
    finally:
        engine.close()


def rerun_cli(data: Path, library: Path) -> tuple[float, dict[str, Any]]:
    """Wall time of ``python -m cli index LIBRARY -c bench --json`` (process start included)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "EMBEDSTORE_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "cli", "--device", "cpu", "index", str(library), "-c", "bench"]
    t0 = time.perf_counter()
    done = subprocess.run([*cmd, "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise click.ClickException(f"embedstore index failed: {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def row(stage: str, files: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "stage": stage,
        "files": files,
        "seconds": round(seconds, 3),
        "files_per_s": round(files / seconds, 1) if seconds else None,
        **extra,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--n", default=1000, show_default=True, help="Files for the throughput rows.")
@click.option("--rerun-n", default=10_000, show_default=True, help="Files for the re-run row.")
@click.option("--size", default=256, show_default=True, help="Image side in pixels.")
@click.option("--workers", default=1, show_default=True, help="Decode processes.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--encoder", default="imagebind_test", show_default=True)
@click.option(
    "--repeat",
    default=3,
    type=click.IntRange(min=1),
    show_default=True,
    help="Alternating decode-only/index measurements.",
)
@click.option("--tuxpaint", is_flag=True, help="Use the Tux Paint stamp pictures instead.")
@output_options
def main(
    n: int,
    rerun_n: int,
    size: int,
    workers: int,
    batch_size: int,
    encoder: str,
    repeat: int,
    tuxpaint: bool,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Measure indexing files/s vs decode-only files/s, and an unchanged re-run."""
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if smoke:
        n, rerun_n, size, repeat = 64, 300, 96, 1
    with tempfile.TemporaryDirectory(prefix="embedstore-bench-") as tmp:
        root = Path(tmp)
        if tuxpaint:
            files = sorted(TUXPAINT.rglob("*.png"))[:n]
            if not files:
                raise click.ClickException(f"no stamps under {TUXPAINT}")
        else:
            files = make_images(root / "lib", n, size)
        inputs = files if tuxpaint else [root / "lib"]
        few = files[: max(workers, 1) * 2]
        decode_only(few, workers)  # warm-up: worker start, imports
        index_once(root / "warm", few, encoder, workers, batch_size)  # store, model imports
        threads = max(1, (os.cpu_count() or 1) - workers)
        n_enc, encode_s = encode_only(files, encoder, batch_size, threads)
        decode_runs, index_runs = [], []
        for i in range(repeat):
            decode_runs.append(decode_only(files, workers))
            report, index_s, embedded = index_once(
                root / f"d1-{i}", inputs, encoder, workers, batch_size
            )
            index_runs.append(index_s)
        decode_s, index_s = statistics.median(decode_runs), statistics.median(index_runs)
        rows = [
            row("decode_only", len(files), decode_s, runs=[round(t, 3) for t in decode_runs]),
            row("encode_only", n_enc, encode_s, torch_threads=threads),
            row(
                "index",
                len(files),
                index_s,
                runs=[round(t, 3) for t in index_runs],
                embedded=embedded,
                failed=len(report.failed),
                vs_decode=round(decode_s / index_s, 3),
                vs_slower_stage=round(
                    max(decode_s / len(files), encode_s / n_enc) * len(files) / index_s, 3
                ),
            ),
        ]
        big = make_images(root / "big", rerun_n, 32)
        first, first_s, _ = index_once(root / "d2", [root / "big"], encoder, workers, 256)
        again, again_s, again_embedded = index_once(
            root / "d2", [root / "big"], encoder, workers, 256
        )
        rows.append(row("first_run_small_images", len(big), first_s, added=first.added))
        cli_s, cli_report = rerun_cli(root / "d2", root / "big")
        rows.append(
            row(
                "rerun_unchanged",
                len(big),
                again_s,
                unchanged=again.unchanged,
                embedded=again_embedded,
            )
        )
        rows.append(row("rerun_unchanged_cli", len(big), cli_s, unchanged=cli_report["unchanged"]))
    params = {
        "n": n,
        "rerun_n": rerun_n,
        "size": size,
        "workers": workers,
        "batch_size": batch_size,
        "encoder": encoder,
        "repeat": repeat,
        "source": "tuxpaint" if tuxpaint else "reference-photo crops (JPEG)",
        "torch_threads": torch.get_num_threads(),
    }
    emit(result_doc("ingest", params, rows), as_json=as_json, out=out, plot=None)


if __name__ == "__main__":
    main()
