"""``embedstore index``: add, update, move and prune media files in a collection."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.collections import backend_opt
from cli.common import collection_option, emit_json, get_engine
from embedstore.errors import InvalidInput


class _Progress:
    """A tqdm bar on stderr with files/s and ETA, fed by the engine's progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        self.enabled = enabled

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True)
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def parse_rules(values: tuple[str, ...]) -> dict[str, str]:
    """``--rule 'scans/**=depth'`` values -> ``{"scans/**": "depth"}`` (first matching rule wins)."""
    rules: dict[str, str] = {}
    for raw in values:
        pattern, sep, modality = raw.rpartition("=")
        if not sep or not pattern or not modality:
            raise InvalidInput(f"--rule {raw!r} must look like 'GLOB=MODALITY'", field="rule")
        rules[pattern.strip()] = modality.strip()
    return rules


class PathOrObjectURI(click.Path):
    """An existing local path, or an object storage URI (``s3://bucket/prefix``) kept as text."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from embedstore.ingest.objects import is_object_uri

        if isinstance(value, str) and is_object_uri(value):
            return value
        return super().convert(value, param, ctx)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=PathOrObjectURI(exists=True, path_type=Path))
@collection_option
@click.option("--encoder", help="Encoder for a new collection; must match an existing one.")
@click.option("--modality", help="Treat every file as this modality (depth, thermal, imu, ...).")
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="GLOB=MODALITY",
    help="Modality for files matching GLOB (relative to PATH), e.g. 'scans/**=depth'.",
)
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching GLOB.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB.")
@click.option("--prune", is_flag=True, help="Remove items whose files were deleted.")
@click.option("--batch-size", type=click.IntRange(1, 4096), help="Items per model batch.")
@click.option("--workers", type=click.IntRange(0, 256), help="Decoding processes (0: inline).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--caption",
    "caption_model",
    metavar="GENERATOR",
    help="Then caption new pictures and videos with this generator (see: embedstore caption).",
)
@backend_opt
@click.option(
    "--engine",
    "run_engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: run as a Ray Data job (pip install 'embedstore[scale]'; see docs/scale.md).",
)
@click.option(
    "--ray-address",
    metavar="ADDRESS",
    help="Ray cluster to run on (e.g. auto); default: start a local one (--engine ray).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (files/s, ETA); default: when stderr is a terminal.",
)
@click.pass_context
def index(
    ctx: click.Context,
    paths: tuple[Path | str, ...],
    collection: str,
    encoder: str | None,
    modality: str | None,
    rules: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    prune: bool,
    batch_size: int | None,
    workers: int | None,
    as_json: bool,
    caption_model: str | None,
    index_backend: str | None,
    run_engine: str,
    ray_address: str | None,
    progress: bool | None,
) -> None:
    """Index images, audio, video, text and other media under PATH into a collection.

    Unchanged files are skipped without reading them, renamed files keep their vectors,
    duplicates are embedded once. Exit status 1 when some files failed.

    \b
        embedstore index ~/Pictures -c photos
        embedstore index scans/ -c scans --modality depth
        embedstore index lib/ -c lib --rule 'scans/**=depth' --exclude '*.tmp' --prune
        embedstore index /data -c big --index-backend pgvector --engine ray --ray-address auto
        embedstore index s3://bucket/photos -c photos --engine ray
    """
    engine = get_engine(ctx)
    bar = _Progress(enabled=sys.stderr.isatty() if progress is None else progress)
    try:
        report = engine.index(
            paths,
            collection,
            encoder=encoder,
            modality=modality,
            modality_rules=parse_rules(rules),
            include=include,
            exclude=exclude,
            prune=prune,
            progress=bar,
            batch_size=batch_size,
            workers=workers,
            index_backend=index_backend,
            engine=run_engine,
            ray_address=ray_address,
        )
    except KeyboardInterrupt:
        bar.close()
        click.echo(
            "interrupted: finished batches are saved; run the same command to resume", err=True
        )
        ctx.exit(130)
    finally:
        bar.close()
    for message in report.skipped:
        click.echo(message, err=True)
    for failure in report.failed:
        reason = failure.reason.removeprefix(f"{failure.uri}: ")  # errors name their file already
        click.echo(f"skipping {failure.uri}: {reason}", err=True)
    click.echo(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.moved} moved, {report.deduplicated} deduplicated, {report.removed} removed, "
        f"{len(report.failed)} failed in {report.seconds:.1f}s",
        err=True,
    )
    out = report.to_dict()
    if caption_model:
        from cli.caption import run_captions

        captions = run_captions(ctx, collection, caption_model, None)
        out["captions"] = captions.to_dict()
    if as_json:
        emit_json(out)
    if report.failed or (caption_model and captions.failed):
        ctx.exit(1)
