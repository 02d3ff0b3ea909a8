"""``embedstore bench``: run the scripts under ``benchmarks/`` (one subcommand per script)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
# subcommand -> (module, one-line help); a module that is not present is left out
BENCHMARKS = {
    "recall": (
        "benchmarks.recall",
        "Cross-modal Recall@k, median rank, mAP and zero-shot accuracy.",
    ),
    "ann": ("benchmarks.ann", "Recall vs QPS of FAISS indexes: raw FAISS vs our index and store."),
    "throughput": ("benchmarks.throughput", "Encoder items/s per modality and batch size."),
    "decode": ("benchmarks.decode", "Media decoding throughput."),
    "gpu_decode": (
        "benchmarks.gpu_decode",
        "Device JPEG decode/resize and audio fbank vs the exact path (cosine, files/s).",
    ),
    "store": ("benchmarks.store", "Store ingest rate and search overhead over raw FAISS."),
    "ingest": ("benchmarks.ingest", "End-to-end indexing throughput."),
    "gpu_ingest": (
        "benchmarks.gpu_ingest",
        "End-to-end images/s from JPEG files with ImageBind huge on a GPU.",
    ),
    "load": ("benchmarks.load", "HTTP API load test."),
    "cli_startup": (
        "benchmarks.cli_startup",
        "Wall and CPU seconds of embedstore --help/stats/ls/encoders, and their heavy imports.",
    ),
    "scale": (
        "benchmarks.scale",
        "Ray job vs in-process indexing; pgvector vs FAISS in the store.",
    ),
    "plot": ("benchmarks.plot", "Draw result JSON files as PNG plots."),
}


def _importable() -> None:
    """Source checkouts keep ``benchmarks/`` beside ``cli/``: make it importable."""
    if (ROOT / "benchmarks" / "__init__.py").is_file() and str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _available() -> list[str]:
    return [
        name
        for name, (module, _) in BENCHMARKS.items()
        if (ROOT / (module.replace(".", "/") + ".py")).is_file()
    ]


class BenchGroup(click.Group):
    """Imports a benchmark only when its subcommand runs (keeps ``embedstore --help`` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return _available()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _available():
            return None
        _importable()
        module, short = BENCHMARKS[cmd_name]
        command = importlib.import_module(module).main
        if not isinstance(command, click.Command):
            return None
        command.short_help = command.short_help or short
        return command


@click.group(cls=BenchGroup)
def bench() -> None:
    """Run benchmarks from a source checkout; JSON to --out or stdout, a table to stderr.

    \b
        embedstore bench recall pairs.jsonl --encoder imagebind_huge --index HNSW32
        embedstore bench ann --n 100000 --out ann.json --plot ann.png
        embedstore bench ann --smoke --json
    """
