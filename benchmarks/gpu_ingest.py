"""End-to-end images/s from JPEG files on a GPU: walk, hash, decode, embed and write.

    python -m benchmarks.gpu_ingest --smoke --json
    python -m benchmarks.gpu_ingest --device cuda --out benchmarks/results/gpu-ingest-h200.json

The library: distinct crops of the real reference photos (``../shared/fixtures``, or the
``imagebind-assets`` folder of a ``benchmarks.gpu_decode --export-media`` folder given as
``--media``), saved as JPEG q=90 at each ``--sizes`` entry (``WxH:COUNT``).

The model: ImageBind huge with the official weights when ``--weights`` names the checkpoint, else
with random weights built on the device (the same computation; its embeddings mean nothing).
``--config test`` uses the seeded ``imagebind_test`` instead (the smoke preset, on the CPU).

Rows, per photo size: ``decode_only`` for each ``--decode`` path (``cpu``: ``decode_many`` on
``--workers`` processes; ``device``: ``decode_many_on_device``, JPEGs decoded and resized on the
GPU in ``--batch`` batches), ``encode_only`` per precision (the model alone on one decoded batch
already on the device, the ceiling of the row below), and ``index`` per precision x decode path:
``Engine.index`` into a fresh SQLite collection, timed from the call to its return (every vector
committed and the FAISS index saved). Each ``index`` row is measured ``--repeat`` times after a
warm-up index of a few files with the same engine (median).

``embed_only`` rows (per precision) run ``Embedder`` alone over images decoded beforehand on the
host: collating, the copy to the device and the model, no decoding. ``pipeline`` rows (per
precision x decode path) time the indexing run's own decode -> embed stages (``DecodeAhead`` and
``Embedder``: no walk, hashing, catalog or index). Both report where the time went
(``ingest.overlap.PipeStats``): collating and copying batches, waiting to hand one over, in the
model, and the model thread idle waiting for a batch. ``embed_only``, ``pipeline`` and ``index``
rows carry ``vs_model``, their images/s over the ``encode_only`` row's: the share of the model's
own rate (the overlap's target is >= 0.9 end to end), also printed on stderr.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import torch

from benchmarks.common import emit, output_options, result_doc
from benchmarks.ingest import ASSETS
from embedstore.config import Settings
from embedstore.encoders import Encoder, create_encoder, resolve_device
from embedstore.engine import Engine
from embedstore.runtime import configure_threads

SMOKE: dict[str, Any] = {
    "config": "test",
    "device": "cpu",
    "sizes": "320x240:48",
    "precisions": "fp32",
    "batch": 16,
    "repeat": 1,
}


# -- the library -------------------------------------------------------------------------------
def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """'640x480:2048,1920x1080:512' -> [(640, 480, 2048), (1920, 1080, 512)]."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            shape, count = part.split(":")
            w, h = shape.lower().split("x")
            out.append((int(w), int(h), int(count)))
        except ValueError as e:
            raise click.BadParameter(f"expected WxH:COUNT, got {part!r}") from e
    return out


def make_photos(
    folder: Path, n: int, width: int, height: int, references: list[Path]
) -> list[Path]:
    """``n`` distinct ``width`` x ``height`` JPEGs (q=90): shifted, scaled crops of ``references``."""
    from PIL import Image

    photos = [Image.open(p).convert("RGB") for p in references]
    if not photos:
        raise click.ClickException("no reference photos: give --media or install ../shared")
    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Path:
        im = photos[i % len(photos)]
        scale = min(im.width / width, im.height / height) * (0.6 + 0.4 * ((i * 7919) % 101) / 100)
        cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
        x, y = (i * 29) % (im.width - cw + 1), (i * 53) % (im.height - ch + 1)
        crop = im.crop((x, y, x + cw, y + ch)).resize((width, height), Image.Resampling.BICUBIC)
        path = folder / f"{i // 1000:03d}" / f"img{i:06d}.jpg"
        path.parent.mkdir(exist_ok=True)
        crop.save(path, quality=90)
        return path

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # Pillow lets go of the GIL
        return list(pool.map(one, range(n)))


# -- the model ---------------------------------------------------------------------------------
def build_encoder(
    config: str,
    device: str,
    precision: str,
    weights: Path | None,
    cuda_graphs: str = "off",
    batch: int = 32,
) -> Encoder:
    """ImageBind huge (official weights, or random ones) or the seeded test model.

    ``cuda_graphs`` is the encoders' CUDA-graph lever (``off``, ``auto``, ``on``; graphs for batch
    sizes up to ``batch``): one graph replay per batch instead of a launch per kernel.
    """
    from embedstore.encoders.levers import levers_from_settings

    settings = Settings(device=device, cuda_graphs=cuda_graphs, batch_size=batch)
    if weights is not None:
        return create_encoder(
            "imagebind_huge",
            device=device,
            precision=precision,
            weights_path=weights,
            settings=settings,
        )
    if config == "test":
        return create_encoder(
            "imagebind_test", device=device, precision=precision, settings=settings
        )
    from benchmarks.throughput import random_huge
    from embedstore.encoders.imagebind import ImageBindEncoder

    model = random_huge(resolve_device(device))
    return ImageBindEncoder(
        "imagebind_huge",
        model,
        version="random",
        device=device,
        precision=precision,
        levers=levers_from_settings(settings),
    )


# -- measurements ------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if resolve_device(device).type == "cuda":
        torch.cuda.synchronize()


def decode_only(files: list[Path], path: str, device: str, workers: int, batch: int) -> float:
    """Seconds to decode and preprocess every file (``cpu`` workers or the ``device`` path)."""
    from embedstore.modalities import DecodeTask, decode_many
    from embedstore.modalities.gpu_parallel import decode_many_on_device

    tasks = [DecodeTask(i, "vision", p) for i, p in enumerate(files)]
    results: Iterator[tuple[DecodeTask, Any]]
    t0 = time.perf_counter()
    if path == "device":
        results = decode_many_on_device(tasks, workers, device=device, batch_size=batch)
    else:
        results = decode_many(tasks, workers)
    for task, result in results:
        if isinstance(result, BaseException):
            raise click.ClickException(f"decode of {task.source!r} failed: {result}")
    _sync(device)
    return time.perf_counter() - t0


def encode_only(enc: Encoder, files: list[Path], batch: int, runs: int = 5) -> float:
    """Median seconds for the model to embed one ``batch`` of decoded images on its device."""
    from embedstore import modalities

    x = torch.stack([modalities.load("vision", p) for p in files[:batch]]).to(enc.device)
    enc.encode("vision", x)  # warm-up
    times = []
    for _ in range(runs):
        _sync(str(enc.device))
        t0 = time.perf_counter()
        enc.encode("vision", x)  # returns a NumPy array: synchronised
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def embed_only(
    enc: Encoder, files: list[Path], device: str, workers: int, batch: int
) -> tuple[float, dict[str, Any]]:
    """(seconds, stage times) for ``Embedder`` alone to embed as many images as ``files``, decoded
    beforehand on the host (the first ``4 * batch`` files, cycled): collating, the copy to the
    device and the model, without decoding."""
    from embedstore.ingest.pipeline import Embedder
    from embedstore.ingest.plan import Group
    from embedstore.ingest.walk import FileEntry
    from embedstore.modalities import DecodeTask, decode_many

    head = files[: 4 * batch]
    decoded: dict[int, Any] = {}
    for task, result in decode_many(
        [DecodeTask(i, "vision", p) for i, p in enumerate(head)], workers
    ):
        if isinstance(result, BaseException):
            raise click.ClickException(f"decode of {task.source!r} failed: {result}")
        decoded[task.key] = result
    entries = [
        FileEntry(str(p), p.name, p.stat().st_size, p.stat().st_mtime, "vision") for p in head
    ]
    embedded: list[int] = []
    with tempfile.TemporaryDirectory(prefix="embedstore-embed-") as tmp:
        engine = Engine(Settings(data_dir=Path(tmp), device=device, encoder=enc.name))
        engine.use_encoder(enc)
        embedder = Embedder(engine, enc, batch, lambda slots: embedded.append(len(slots)))
        t0 = time.perf_counter()
        try:
            for i in range(len(files)):
                k = i % len(head)
                embedder.add(Group(str(i), entries[k]), "vision", decoded[k])
            embedder.flush()
        finally:
            embedder.close()
        _sync(device)
        secs = time.perf_counter() - t0
        engine.close()
    if sum(embedded) != len(files):
        raise click.ClickException(f"embedded {sum(embedded)} of {len(files)} images")
    return secs, embedder.stats.as_dict()


def pipeline_once(
    library: Path, enc: Encoder, device: str, decode: str, workers: int, batch: int
) -> tuple[float, dict[str, Any]]:
    """(seconds, stage times) to decode and embed every file under ``library`` through the
    indexing pipeline's decode -> embed stages (``DecodeAhead``, ``Embedder``), writing nothing."""
    from embedstore.ingest.pipeline import DecodeAhead, Embedder
    from embedstore.ingest.plan import Group
    from embedstore.ingest.walk import walk

    entries, _ = walk([library])
    groups = [Group(str(i), e) for i, e in enumerate(entries)]
    embedded: list[int] = []
    with tempfile.TemporaryDirectory(prefix="embedstore-pipeline-") as tmp:
        engine = Engine(Settings(data_dir=Path(tmp), device=device, encoder=enc.name))
        engine.use_encoder(enc)
        t0 = time.perf_counter()
        ahead = DecodeAhead(
            groups,
            workers,
            2 * batch,
            device=device if decode == "device" else None,
            batch_size=batch,
        )
        embedder = Embedder(engine, enc, batch, lambda slots: embedded.append(len(slots)))
        try:
            for group, result in ahead:
                if isinstance(result, BaseException):
                    raise click.ClickException(f"decode of {group.leader.uri} failed: {result}")
                embedder.add(group, group.leader.modality, result)
            embedder.flush()
        finally:
            embedder.close()
            ahead.close()
        secs = time.perf_counter() - t0
        engine.close()
    if sum(embedded) != len(groups):
        raise click.ClickException(f"embedded {sum(embedded)} of {len(groups)} files")
    return secs, embedder.stats.as_dict()


def index_once(
    data: Path, library: Path, enc: Encoder, device: str, decode: str, workers: int, batch: int
) -> tuple[float, Any]:
    """(seconds, report) of ``Engine.index(library)`` into collection ``bench`` under ``data``."""
    settings = Settings(
        data_dir=data,
        device=device,
        encoder=enc.name,
        precision=enc.precision,
        workers=workers,
        batch_size=batch,
        gpu_decode="on" if decode == "device" else "off",
    )
    engine = Engine(settings)
    engine.use_encoder(enc)
    try:
        t0 = time.perf_counter()
        report = engine.index([library], "bench", encoder=enc.name)
        return time.perf_counter() - t0, report
    finally:
        engine.close()


@contextlib.contextmanager
def recorded(rows: list[dict[str, Any]], stage: str, size: str, **keys: Any) -> Iterator[None]:
    """Echo the row the body appends; a failure becomes an ``error`` row and the run goes on."""
    try:
        yield
    except Exception as e:  # a benchmark reports every row it can
        rows.append({"stage": stage, "size": size, **keys, "error": f"{type(e).__name__}: {e}"})
        traceback.print_exc()
    last = rows[-1] if rows else {}
    click.echo(f"  {stage} {size} {keys}: {last.get('files_per_s', last.get('error'))}", err=True)


def row(stage: str, size: str, files: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "stage": stage,
        "size": size,
        "files": files,
        "seconds": round(seconds, 3),
        "files_per_s": round(files / seconds, 1) if seconds else None,
        **extra,
    }


def ratio(measured: dict[str, Any], model_rate: float | None) -> float | None:
    """A row's images/s over the model's own (``encode_only``), or None without that row."""
    if not model_rate or not measured.get("files_per_s"):
        return None
    return round(measured["files"] / measured["seconds"] / model_rate, 3)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--config",
    type=click.Choice(["huge", "test"]),
    default="huge",
    show_default=True,
    help="huge: ImageBind huge (random weights unless --weights); test: imagebind_test.",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The official imagebind_huge.pth (else random weights).",
)
@click.option("--sizes", default="640x480:2048,1920x1080:512", show_default=True)
@click.option("--precision", "precisions", default="fp16,bf16", show_default=True)
@click.option("--decode", "decodes", default="device,cpu", show_default=True)
@click.option("--batch", type=int, default=256, show_default=True, help="Images per model call.")
@click.option(
    "--workers",
    type=int,
    default=max(1, (os.cpu_count() or 2) - 1),
    show_default=True,
    help="Decode processes.",
)
@click.option("--repeat", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--cuda-graphs",
    type=click.Choice(["off", "auto", "on"]),
    default="off",
    show_default=True,
    help="The encoders' CUDA-graph lever: one replay per batch (the model thread then hardly "
    "needs the GIL).",
)
@click.option(
    "--media",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A benchmarks.gpu_decode --export-media folder (its imagebind-assets photos).",
)
@output_options
def main(
    device: str,
    config: str,
    weights: Path | None,
    sizes: str,
    precisions: str,
    decodes: str,
    batch: int,
    workers: int,
    repeat: int,
    cuda_graphs: str,
    media: Path | None,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Measure end-to-end indexing images/s from JPEG files, with the decode and model ceilings."""
    if smoke:
        config, device, sizes = SMOKE["config"], SMOKE["device"], SMOKE["sizes"]
        precisions, batch, repeat = SMOKE["precisions"], SMOKE["batch"], SMOKE["repeat"]
    device = str(resolve_device(device))
    # torch's thread count as an indexing run sets it (the encoders here are built directly): on
    # the CPU one core per decode worker is left free. Left at torch's default, the model ran 3-5x
    # slower in the main thread than in another thread on the loaded 2-core VM.
    configure_threads(Settings(device=device, workers=workers))
    references = (
        sorted((media / "imagebind-assets").glob("*.jpg"))
        if media is not None
        else sorted(ASSETS.glob("*_image.jpg"))
    )
    paths = [p for p in decodes.split(",") if p]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="embedstore-gpu-ingest-") as tmp:
        root = Path(tmp)
        libraries = {}
        for w, h, n in parse_sizes(sizes):
            t0 = time.perf_counter()
            files = make_photos(root / f"lib-{w}x{h}", n, w, h, references)
            libraries[f"{w}x{h}"] = files
            click.echo(f"made {n} {w}x{h} JPEGs in {time.perf_counter() - t0:.1f} s", err=True)
        for size, files in libraries.items():
            for path in paths:
                with recorded(rows, "decode_only", size, decode=path):
                    decode_only(files[: 2 * batch], path, device, workers, batch)  # warm-up
                    secs = decode_only(files, path, device, workers, batch)
                    rows.append(row("decode_only", size, len(files), secs, decode=path))
        for precision in (p for p in precisions.split(",") if p):
            enc = build_encoder(config, device, precision, weights, cuda_graphs, batch)
            for size, files in libraries.items():
                model_rate = None
                with recorded(rows, "encode_only", size, precision=precision):
                    secs = encode_only(enc, files, batch)
                    rows.append(row("encode_only", size, batch, secs, precision=precision))
                    model_rate = batch / rows[-1]["seconds"]  # as the row reports it
                with recorded(rows, "embed_only", size, precision=precision):
                    secs, stats = embed_only(enc, files, device, workers, batch)
                    rows.append(row("embed_only", size, len(files), secs, precision=precision))
                    rows[-1].update(vs_model=ratio(rows[-1], model_rate), **stats)
                for path in paths:
                    with recorded(rows, "index", size, precision=precision, decode=path):
                        few = root / f"warm-{size}"
                        if not few.exists():
                            few.mkdir()
                            for f in files[: 2 * batch]:
                                os.link(f, few / f.name)
                        warm = root / f"warm-{size}-{precision}-{path}"
                        index_once(warm, few, enc, device, path, workers, batch)
                        runs, report = [], None
                        for i in range(repeat):
                            data = root / f"d-{size}-{precision}-{path}-{i}"
                            secs, report = index_once(
                                data, files[0].parents[1], enc, device, path, workers, batch
                            )
                            runs.append(secs)
                        assert report is not None
                        rows.append(
                            row(
                                "index",
                                size,
                                len(files),
                                statistics.median(runs),
                                precision=precision,
                                decode=path,
                                runs=[round(t, 3) for t in runs],
                                added=report.added,
                                failed=len(report.failed),
                            )
                        )
                        rows[-1]["vs_model"] = ratio(rows[-1], model_rate)
                    with recorded(rows, "pipeline", size, precision=precision, decode=path):
                        secs, stats = pipeline_once(
                            files[0].parents[1], enc, device, path, workers, batch
                        )
                        rows.append(
                            row(
                                "pipeline", size, len(files), secs, precision=precision, decode=path
                            )
                        )
                        rows[-1].update(vs_model=ratio(rows[-1], model_rate), **stats)
            del enc
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    params = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "model": "imagebind_test"
        if config == "test" and weights is None
        else "imagebind_huge" + ("" if weights else " (random weights)"),
        "sizes": sizes,
        "precisions": precisions,
        "decodes": decodes,
        "batch": batch,
        "workers": workers,
        "repeat": repeat,
        "cuda_graphs": cuda_graphs,
        "smoke": smoke,
    }
    model: dict[tuple[str, str], Any] = {}
    for r in rows:  # the overlap's target, where gpu_check.sh's log shows it
        if r["stage"] == "encode_only":
            model[(r["size"], r["precision"])] = r.get("files_per_s")
        elif r.get("vs_model") is not None:
            decode = f", {r['decode']} decode" if r.get("decode") else ""
            click.echo(
                f"end-to-end / model-only images/s ({r['stage']}, {r['size']}, {r['precision']}"
                f"{decode}): {r['files_per_s']} / {model[(r['size'], r['precision'])]}"
                f" = {r['vs_model']} (target >= 0.9)",
                err=True,
            )
    emit(result_doc("gpu_ingest", params, rows), as_json=as_json, out=out, plot=None)


if __name__ == "__main__":
    main()
