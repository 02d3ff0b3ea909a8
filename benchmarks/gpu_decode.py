"""Device JPEG decode + resize (and audio fbank) vs the exact CPU path: deviation and files/s.

For each set of real photos the exact path (``modalities.load("vision", ...)``: Pillow decode and
bicubic resize) and the device path (``gpu_decode.load_images``: ``torchvision.io.decode_jpeg``
batched, resize/crop/normalise with torch on ``--device``) preprocess the same JPEG files. Rows
give the per-set deviation of the pixel tensors (max/mean |diff|, cosine of the flattened tensors)
and of their ``imagebind_test`` embeddings (cosine), then files/s of both paths, interleaved and
repeated (median). Audio: ``audio.load`` vs ``gpu_decode.load_audio`` (resample + fbank on the
device) on real sounds.

Photo sets: the ImageBind reference JPEGs; with Debian's ``visp-images-data``, its JPEGs and its
real camera frames (PGM/PPM, saved as JPEG q=90); with ``tuxpaint-stamps-default``, its photo
stamps (RGB(A) PNG with a short side >= 224, flattened on white, saved as JPEG q=90).

Embeddings come from ``imagebind_test`` and, with ``--model huge``, from ImageBind huge with random
weights built on ``--device`` (the 32-block vision tower, so a small input change has room to grow).
A GPU machine without ``../shared`` or the Debian packages reads the same files from a folder that
``--export-media`` wrote here (``--media``).

    python -m benchmarks.gpu_decode --smoke
    python -m benchmarks.gpu_decode --device cpu --out benchmarks/results/gpu-decode-cpu.json
    python -m benchmarks.gpu_decode --export-media .gpudata/media
    python -m benchmarks.gpu_decode --device cuda --media .gpudata/media --model test --model huge \
        --out benchmarks/results/gpu-decode-cuda.json
"""

from __future__ import annotations

import functools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import numpy as np
import torch
from PIL import Image

from benchmarks.common import ROOT, emit, output_options, result_doc
from embedstore import modalities
from embedstore.encoders import Encoder, create_encoder
from embedstore.encoders.imagebind import ImageBindEncoder
from embedstore.modalities import gpu_decode
from embedstore.modalities.sources import DEFAULT_LIMITS

ASSETS = ROOT.parent / "shared" / "fixtures" / "imagebind" / "assets"
VISP = Path("/usr/share/visp-images-data/ViSP-images")
TUXPAINT = Path("/usr/share/tuxpaint/stamps")
SMOKE: dict[str, Any] = {"visp": 4, "tuxpaint": 4, "sounds": 2, "speed_files": 4, "repeats": 1}


# -- media -------------------------------------------------------------------------------------
def _save_jpeg(img: Image.Image, path: Path) -> Path:
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba).convert("RGB")
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    img.save(path, "JPEG", quality=90)
    return path


def _spread(paths: list[Path], n: int) -> list[Path]:
    """At most ``n`` of ``paths``, evenly spaced."""
    if n <= 0 or not paths:
        return []
    if len(paths) <= n:
        return paths
    return [paths[round(i * (len(paths) - 1) / (n - 1))] for i in range(n)] if n > 1 else paths[:1]


def photo_sets(folder: Path, visp: int, tuxpaint: int) -> dict[str, list[Path]]:
    """The sets of real JPEG photos that exist on this machine (``folder`` holds re-encoded ones)."""
    sets = {"imagebind-assets": sorted(ASSETS.glob("*.jpg"))}
    if VISP.is_dir() and visp > 0:
        sets["visp-jpeg"] = sorted(p for p in VISP.rglob("*") if p.suffix in (".jpg", ".jpeg"))
        frames = sorted((VISP / "mbt-depth" / "castel" / "castel").glob("image_*.pgm"))
        frames += sorted((VISP / "mbt" / "cube").glob("image*.pgm"))[::20]
        frames += sorted(p for p in VISP.rglob("*.ppm"))
        out = folder / "visp"
        out.mkdir()
        sets["visp-frames"] = [
            _save_jpeg(Image.open(p), out / f"{i:03d}_{p.stem}.jpg")
            for i, p in enumerate(_spread(frames, visp))
        ]
    if TUXPAINT.is_dir() and tuxpaint > 0:
        stamps = []
        for p in sorted(TUXPAINT.rglob("*.png")):
            with Image.open(p) as img:
                if img.mode in ("RGB", "RGBA") and min(img.size) >= 224:
                    stamps.append(p)
        out = folder / "tuxpaint"
        out.mkdir()
        sets["tuxpaint-photos"] = [
            _save_jpeg(Image.open(p), out / f"{i:03d}_{p.stem}.jpg")
            for i, p in enumerate(_spread(stamps, tuxpaint))
        ]
    return {k: v for k, v in sets.items() if v}


def export_media(dest: Path, sets: dict[str, list[Path]], sounds: list[Path]) -> None:
    """Copy every photo set to ``dest/<set>/`` and the sounds to ``dest/sounds/``."""
    for name, files in {**sets, "sounds": sounds}.items():
        out = dest / name
        out.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(files):
            target = out / f.name
            shutil.copyfile(f, target if not target.exists() else out / f"{i:03d}_{f.name}")


def read_media(media: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """The photo sets and sounds an ``--export-media`` folder holds (reference photos first)."""
    if not (media / "imagebind-assets").is_dir():
        raise click.ClickException(
            f"{media} holds no imagebind-assets/: make it with --export-media"
        )
    names = sorted(d.name for d in media.iterdir() if d.is_dir() and d.name != "sounds")
    names.sort(key=lambda n: n != "imagebind-assets")
    sets = {
        n: sorted(p for p in (media / n).iterdir() if gpu_decode.is_jpeg_name(p)) for n in names
    }
    return sets, sorted((media / "sounds").glob("*"))


def speed_sets(folder: Path, n: int, references: list[Path]) -> dict[str, list[Path]]:
    """``n`` JPEGs (q=90) at 640x480 and at 1920x1080, cut from the ``references`` photos."""
    photos = [Image.open(p).convert("RGB") for p in references]
    sets = {}
    for w, h in ((640, 480), (1920, 1080)):
        out = folder / f"{w}x{h}"
        out.mkdir()
        files = []
        for i in range(n):
            img = photos[i % len(photos)]
            scale = max(w / img.width, h / img.height)
            big = img.resize(
                (round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC
            )
            left, top = (big.width - w) // 2, (big.height - h) // 2
            files.append(_save_jpeg(big.crop((left, top, left + w, top + h)), out / f"{i:03d}.jpg"))
        sets[f"{w}x{h}"] = files
    return sets


def sound_files(n: int) -> list[Path]:
    """The reference WAVs and up to ``n`` Tux Paint animal and object sounds (OGG/WAV)."""
    files = sorted(ASSETS.glob("*_audio.wav"))
    if TUXPAINT.is_dir():
        found = sorted(
            p for p in TUXPAINT.rglob("*") if p.suffix in (".ogg", ".wav") and "_desc" not in p.stem
        )
        files += _spread(found, n)
    return files


# -- measurement -------------------------------------------------------------------------------
def exact_images(files: list[Path]) -> torch.Tensor:
    return torch.stack([modalities.load("vision", p) for p in files])


def device_images(files: list[Path], device: str, batch: int) -> torch.Tensor:
    parts = [
        gpu_decode.load_image_batch(files[s : s + batch], device)
        for s in range(0, len(files), batch)
    ]
    return torch.cat(parts)


def exact_audio(files: list[Path]) -> torch.Tensor:
    return torch.stack([modalities.load("audio", p) for p in files])


def device_audio(files: list[Path], device: str) -> torch.Tensor:
    return torch.stack([gpu_decode.load_audio(p, device) for p in files])


def _cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    x = a.reshape(len(a), -1).double().cpu()
    y = b.reshape(len(b), -1).double().cpu()
    return torch.nn.functional.cosine_similarity(x, y, dim=1).numpy()


def deviation(
    name: str,
    modality: str,
    exact: torch.Tensor,
    fast: torch.Tensor,
    encoder: Encoder,
    fallbacks: int = 0,
) -> dict[str, Any]:
    """Per-set deviation of the preprocessed tensors and of their embeddings under ``encoder``."""
    diff = (exact.double() - fast.double().cpu()).abs()
    emb_exact = torch.from_numpy(encoder.encode(modality, exact.to(encoder.device)))
    emb_fast = torch.from_numpy(encoder.encode(modality, fast.to(encoder.device)))
    pix, emb = _cosines(exact, fast), _cosines(emb_exact, emb_fast)
    return {
        "kind": "deviation",
        "set": name,
        "modality": modality,
        "model": encoder.name,
        "files": len(exact),
        "fallbacks": fallbacks,
        "max_abs": round(float(diff.max()), 7),
        "mean_abs": round(float(diff.mean()), 7),
        "differing": round(float((diff > 1e-6).double().mean()), 6),
        "tensor_cos_min": round(float(pix.min()), 9),
        "tensor_cos_mean": round(float(pix.mean()), 9),
        "embed_cos_min": round(float(emb.min()), 9),
        "embed_cos_mean": round(float(emb.mean()), 9),
    }


def build_models(names: tuple[str, ...], device: str) -> list[Encoder]:
    """``test``: the seeded ``imagebind_test``; ``huge``: ImageBind huge, random weights."""
    from benchmarks.throughput import random_huge

    models: list[Encoder] = []
    for name in names:
        if name == "test":
            models.append(create_encoder("imagebind_test", device=device))
        else:
            dev = torch.device(device)
            model = random_huge(dev)
            models.append(
                ImageBindEncoder("imagebind_huge", model, version="random", device=device)
            )
    return models


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def speed(
    name: str,
    variants: dict[str, Callable[[], Any]],
    files: int,
    repeats: int,
    device: str,
) -> list[dict[str, Any]]:
    """files/s of each variant, run in turn ``repeats`` times after one warm-up (median)."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        fn()
    for _ in range(repeats):
        for key, fn in variants.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[key].append(time.perf_counter() - t0)
    rows = []
    for key, ts in times.items():
        med = statistics.median(ts)
        rows.append(
            {
                "kind": "speed",
                "set": name,
                "path": key,
                "files": files,
                "median_s": round(med, 4),
                "files_per_s": round(files / med, 1),
            }
        )
    return rows


def _fallbacks(files: list[Path]) -> int:
    """How many files of a set the device path hands to the exact path (its own probe decides)."""
    return sum(gpu_decode._probe(p, DEFAULT_LIMITS, True) is None for p in files)


LAYOUTS = {"444": 0, "422": 1, "420": 2}  # Pillow's subsampling codes


def layout_set(folder: Path, references: list[Path]) -> list[Path]:
    """The reference photos as JPEGs of each component layout: YCbCr 4:4:4, 4:2:2 and 4:2:0, grey
    1x1, and grey declaring 2x2 sampling (the same scan; only the frame header differs)."""
    out = folder / "layouts"
    out.mkdir()
    files = []
    for ref in references:
        img = Image.open(ref).convert("RGB")
        for name, code in LAYOUTS.items():
            path = out / f"{ref.stem}-{name}.jpg"
            img.save(path, "JPEG", quality=90, subsampling=code)
            files.append(path)
        grey = out / f"{ref.stem}-grey.jpg"
        img.convert("L").save(grey, "JPEG", quality=90)
        data = bytearray(grey.read_bytes())
        sof = data.index(b"\xff\xc0")
        assert data[sof + 9] == 1 and data[sof + 11] == 0x11  # one component, 1x1
        data[sof + 11] = 0x22
        (out / f"{ref.stem}-grey2x2.jpg").write_bytes(bytes(data))
        files += [grey, out / f"{ref.stem}-grey2x2.jpg"]
    return files


def ungated_images(files: list[Path], device: str) -> torch.Tensor:
    """Every file through nvjpeg/decode_jpeg and the device resize, skipping the layout gate: what
    the gate protects against (EXIF orientation ignored; the layout files carry none)."""
    datas = [p.read_bytes() for p in files]
    decoded = gpu_decode._decode_jpegs(datas, torch.device(device))
    resized = gpu_decode._resize_all({i: img for i, img in enumerate(decoded) if img is not None})
    return torch.stack([resized[i] for i in range(len(files))])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--device", default="cpu", show_default=True, help="Device of the fast path.")
@click.option("--batch", type=int, default=64, show_default=True, help="JPEGs per decode call.")
@click.option("--visp", type=int, default=40, show_default=True, help="ViSP frames (0: none).")
@click.option("--tuxpaint", type=int, default=160, show_default=True, help="Tux Paint photos.")
@click.option("--sounds", type=int, default=24, show_default=True, help="Tux Paint sounds.")
@click.option(
    "--speed-files", type=int, default=48, show_default=True, help="JPEGs per size for files/s."
)
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed runs (median).")
@click.option(
    "--model",
    "models",
    type=click.Choice(["test", "huge"]),
    multiple=True,
    default=("test",),
    show_default=True,
    help="Embedding models for the deviation (huge: random weights; for a GPU).",
)
@click.option(
    "--media",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Read photo sets and sounds from this --export-media folder.",
)
@click.option(
    "--export-media",
    "export_to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the photo sets and sounds into this folder, then stop.",
)
@click.option(
    "--threads", type=int, default=1, show_default=True, help="torch CPU threads (exact: 1)."
)
@output_options
def main(
    device: str,
    batch: int,
    visp: int,
    tuxpaint: int,
    sounds: int,
    speed_files: int,
    repeats: int,
    models: tuple[str, ...],
    media: Path | None,
    export_to: Path | None,
    threads: int,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Measure how far the device decode path moves from the exact one, and files/s of both."""
    if smoke:
        visp, tuxpaint, sounds = SMOKE["visp"], SMOKE["tuxpaint"], SMOKE["sounds"]
        speed_files, repeats = SMOKE["speed_files"], SMOKE["repeats"]
    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="embedstore-gpu-decode-") as tmp:
        folder = Path(tmp)
        if media is not None:
            sets, sounds_ = read_media(media)
        else:
            sets, sounds_ = photo_sets(folder, visp, tuxpaint), sound_files(sounds)
        if export_to is not None:
            export_media(export_to, sets, sounds_)
            n_photos = sum(map(len, sets.values()))
            click.echo(
                f"wrote {n_photos} photos and {len(sounds_)} sounds to {export_to}", err=True
            )
            return
        encoders = build_models(models, device)
        for name, files in sets.items():
            exact = exact_images(files)
            fast = device_images(files, device, batch)
            for enc in encoders:
                rows.append(deviation(name, "vision", exact, fast, enc, _fallbacks(files)))
        for path in layout_set(folder, sets["imagebind-assets"]):  # one row per layout, ungated
            exact, fast = exact_images([path]), ungated_images([path], device)
            rows.append(deviation(f"layout:{path.stem}", "vision", exact, fast, encoders[0]))
        for name, files in speed_sets(folder, speed_files, sets["imagebind-assets"]).items():
            exact = exact_images(files)
            fast = device_images(files, device, batch)
            for enc in encoders:
                rows.append(deviation(name, "vision", exact, fast, enc))
            variants: dict[str, Callable[[], Any]] = {
                "exact": functools.partial(exact_images, files),
                "device": functools.partial(device_images, files, device, batch),
            }
            rows += speed(name, variants, len(files), repeats, device)
        exact = exact_audio(sounds_)
        fast = device_audio(sounds_, device)
        for enc in encoders:
            rows.append(deviation("sounds", "audio", exact, fast, enc))
        variants = {
            "exact": functools.partial(exact_audio, sounds_),
            "device": functools.partial(device_audio, sounds_, device),
        }
        rows += speed("sounds", variants, len(sounds_), repeats, device)
    photos = [  # the layout rows bypass the gate on purpose: they are not what "auto" runs
        r
        for r in rows
        if r["kind"] == "deviation"
        and r["modality"] == "vision"
        and not r["set"].startswith("layout:")
    ]
    low = min(min(r["tensor_cos_min"], r["embed_cos_min"]) for r in photos)
    by_model = {
        m: min(r["embed_cos_min"] for r in photos if r["model"] == m)
        for m in dict.fromkeys(r["model"] for r in photos)
    }
    params = {
        "device": device,
        "batch": batch,
        "visp": visp,
        "tuxpaint": tuxpaint,
        "sounds": sounds,
        "speed_files": speed_files,
        "repeats": repeats,
        "models": list(models),
        "media": str(media) if media else None,
        "threads": threads,
        "smoke": smoke,
    }
    doc = result_doc("gpu_decode", params, rows)
    doc["summary"] = {
        "images": sum(r["files"] for r in photos if r["model"] == photos[0]["model"]),
        "min_embed_cosine_by_model": by_model,
        "min_cosine": low,
        "bar": gpu_decode.COSINE_BAR,
        "passes": low >= gpu_decode.COSINE_BAR,
    }
    emit(doc, as_json=as_json, out=out, plot=None)


if __name__ == "__main__":
    main()
