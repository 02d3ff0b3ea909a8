"""Demo: index Tux Paint's stamp library (photos, captions, sounds) and search across modalities.

Run with ``python -m embedstore.demo`` (``make demo``). Uses Debian's ``tuxpaint-stamps-default``:
each stamp ``X`` has a picture ``X.png``, a caption in ``X.txt`` and, for 135 of them, the sound
the object makes in ``X.ogg``/``X.wav``.

The encoder is ``--encoder``, else ``EMBEDSTORE_DEMO_ENCODER``, else ``imagebind_huge``: its
official weights are fetched when missing (progress bar, resumable, checksummed when a sha256 is
configured); offline, or when the download fails, the demo says so and uses ``imagebind_test``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from embedstore.config import Settings, default_data_dir, load_settings
from embedstore.engine import Engine
from embedstore.errors import EmbedstoreError

STAMPS = Path("/usr/share/tuxpaint/stamps")
# Tux Paint's palette PNGs trigger a harmless Pillow warning per file (also in decode workers).
warnings.filterwarnings("ignore", message="Palette images with Transparency", module="PIL")
TEXT_TO_IMAGE = ["a badger", "a red fire truck", "a slice of pizza", "a butterfly", "a guitar"]
TEXT_TO_AUDIO = ["a dog barking", "a cow mooing", "a bell ringing", "a car horn"]


@dataclass(frozen=True)
class Stamp:
    """One stamp: caption, picture and (maybe) its sound."""

    name: str
    caption: str
    image: Path
    sound: Path | None


def say(text: str = "") -> None:
    """Print a demo line on stdout, flushed."""
    print(text, flush=True)


def find_stamps(root: Path) -> list[Stamp]:
    """Every stamp with a PNG picture and an English caption."""
    stamps = []
    for txt in sorted(root.rglob("*.txt")):
        image = txt.with_suffix(".png")
        if not image.is_file():
            continue
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        caption = lines[0].strip() if lines else txt.stem
        sound = next(
            (p for p in (txt.with_suffix(".ogg"), txt.with_suffix(".wav")) if p.is_file()), None
        )
        stamps.append(Stamp(txt.stem, caption, image, sound))
    return stamps


def choose_encoder(engine: Engine, requested: str | None = None, probe_timeout: float = 3.0) -> str:
    """The requested encoder (``--encoder``, ``EMBEDSTORE_DEMO_ENCODER``), else ``imagebind_huge``
    with its weights fetched when missing, else (offline, failed) the tiny test model, said loudly.

    A TCP probe of the download host (``probe_timeout`` seconds) comes first, so that offline
    the fallback comes at once instead of after the download's own timeout.
    """
    from embedstore.encoders import get_encoder_info
    from embedstore.encoders.imagebind.encoder import huge_weights
    from embedstore.encoders.weights import reachable, resolve_weights

    settings = engine.settings
    requested = requested or settings.demo_encoder
    if requested:
        return requested
    info = get_encoder_info("imagebind_huge", settings)
    weights = settings.resolved_weights_dir
    if info.weights_present(weights) or settings.weights_path:
        return "imagebind_huge"
    source = huge_weights(settings)
    if source.url and reachable(source.url, probe_timeout):
        say(f"Fetching the imagebind_huge weights ({info.weights_file}, about 4.5 GB) from")
        say(f"  {source.url}")
        say(f"into {weights}. Interrupted, the next run resumes; EMBEDSTORE_DEMO_ENCODER=")
        say("imagebind_test skips the download.")
        try:
            resolve_weights(source, weights_dir=weights, progress=True)
            return "imagebind_huge"
        except EmbedstoreError as e:
            say(f"The download failed: {e}")
    fallback_notice(info.weights_file, weights)
    return "imagebind_test"


def fallback_notice(weights_file: str | None, weights: Path) -> None:
    """The loud notice that the demo runs the random test model."""
    say("!" * 78)
    say(f"! imagebind_huge weights ({weights_file}) not found in {weights}.")
    say("! Using imagebind_test, a tiny RANDOM model: the pipeline runs end to end, but")
    say("! the search results below are meaningless. Put imagebind_huge.pth there (or set")
    say("! EMBEDSTORE_WEIGHTS_DIR / EMBEDSTORE_WEIGHTS_PATH) for real results.")
    say("!" * 78)


def pick(stamps: list[Stamp], limit: int | None) -> list[Stamp]:
    """All stamps with a sound first, then others, up to ``limit`` (None: all)."""
    ordered = [s for s in stamps if s.sound] + [s for s in stamps if not s.sound]
    return ordered if limit is None else ordered[:limit]


def show_hits(engine: Engine, coll: str, captions: dict[str, str], **query: object) -> None:
    """Run one search and print the top hits with their captions."""
    hits = engine.search(coll, k=3, **query)  # type: ignore[arg-type]
    for h in hits:
        rel = Path(h.uri).relative_to(STAMPS) if h.uri.startswith(str(STAMPS)) else h.uri
        say(f"    {h.score:6.3f}  {h.modality:<6} {captions.get(h.uri, ''):<28} {rel}")


def evaluate(engine: Engine, coll: str, chosen: list[Stamp]) -> None:
    """Retrieval accuracy on the library's own pairs (caption -> picture, sound -> picture)."""
    n_img = len(chosen)
    caption_hits = 0
    for s in chosen:
        hits = engine.search(coll, text=s.caption, k=5, modalities=["vision"])
        caption_hits += any(h.uri == str(s.image) for h in hits)
    with_sound = [s for s in chosen if s.sound]
    sound_hits = 0
    for s in with_sound:
        hits = engine.search(coll, file=s.sound, k=5, modalities=["vision"])
        sound_hits += any(h.uri == str(s.image) for h in hits)
    chance = min(5 / max(n_img, 1), 1.0)
    say(f"  caption -> picture top-5: {caption_hits}/{n_img} = {caption_hits / max(n_img, 1):.1%}")
    if with_sound:
        rate = sound_hits / len(with_sound)
        say(f"  sound   -> picture top-5: {sound_hits}/{len(with_sound)} = {rate:.1%}")
    say(f"  (chance level: {chance:.1%})")


def demo_settings(settings: Settings, data_dir: Path | None) -> Settings:
    """A throw-away catalog in ./.demo (removed by ``make clean``) unless a data folder is given
    (``--data-dir``, ``EMBEDSTORE_DATA_DIR`` or the config file); weights are still looked up
    where the user keeps them."""
    if data_dir is not None:
        return settings.model_copy(update={"data_dir": data_dir})
    if "data_dir" in settings.model_fields_set:
        return settings
    weights = settings.weights_dir or default_data_dir() / "weights"
    return settings.model_copy(update={"data_dir": Path(".demo"), "weights_dir": weights})


def main(argv: list[str] | None = None) -> int:
    """Index the stamps and print cross-modal searches."""
    ap = argparse.ArgumentParser(prog="python -m embedstore.demo", description=__doc__)
    ap.add_argument("--limit", type=int, default=None, help="stamps to index (default: see below)")
    ap.add_argument("--all", action="store_true", help="index every stamp")
    ap.add_argument(
        "--encoder",
        help="encoder (default: EMBEDSTORE_DEMO_ENCODER, else imagebind_huge, fetched if missing)",
    )
    ap.add_argument(
        "--data-dir", type=Path, help="data folder (default: EMBEDSTORE_DATA_DIR, else ./.demo)"
    )
    ap.add_argument("--collection", default=None, help="collection name")
    args = ap.parse_args(argv)

    if not STAMPS.is_dir():
        print(
            f"The demo library is missing: {STAMPS} does not exist.\n"
            "Install it with: sudo apt-get install tuxpaint-stamps-default   (or run: make demo)",
            file=sys.stderr,
        )
        return 2
    engine = Engine(demo_settings(load_settings(), args.data_dir))
    settings = engine.settings
    encoder = choose_encoder(engine, args.encoder)
    gpu = settings.resolved_device().startswith("cuda")
    default_limit = 400 if (encoder != "imagebind_huge" or gpu) else 120
    limit = None if args.all else (args.limit if args.limit is not None else default_limit)
    stamps = find_stamps(STAMPS)
    chosen = pick(stamps, limit)
    n_sounds = sum(1 for s in chosen if s.sound)
    coll = args.collection or f"tuxpaint_{encoder}"
    say(f"Tux Paint stamps: {len(stamps)} with a picture and caption in {STAMPS}")
    say(
        f"Indexing {len(chosen)} pictures + {n_sounds} sounds into collection {coll!r} "
        f"with {encoder} on {settings.resolved_device()}"
        + ("" if limit is None else f" (a subset: --limit {limit}; --all for every stamp)")
    )
    say(f"Data folder: {settings.data_dir}")
    files = [s.image for s in chosen] + [s.sound for s in chosen if s.sound]
    t0 = time.perf_counter()
    report = engine.index(files, coll, encoder=encoder)
    say(
        f"  {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.failed)} failed in {time.perf_counter() - t0:.1f}s"
    )
    for f in report.failed[:10]:
        say(f"  skipped {f.uri}: {f.reason}")
    captions = {str(s.image): s.caption for s in chosen}
    captions.update({str(s.sound): f"(sound) {s.caption}" for s in chosen if s.sound})

    say("\nText -> picture")
    for q in TEXT_TO_IMAGE:
        say(f"  {q!r}")
        show_hits(engine, coll, captions, text=q, modalities=["vision"])
    say("\nText -> sound")
    for q in TEXT_TO_AUDIO:
        say(f"  {q!r}")
        show_hits(engine, coll, captions, text=q, modalities=["audio"])
    say("\nSound -> picture")
    for s in [s for s in chosen if s.sound][:4]:
        say(f"  {s.sound.relative_to(STAMPS)}  ({s.caption})")  # type: ignore[union-attr]
        show_hits(engine, coll, captions, file=s.sound, modalities=["vision"])
    say("\nRetrieval accuracy on the library's own pairs")
    evaluate(engine, coll, chosen)
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
