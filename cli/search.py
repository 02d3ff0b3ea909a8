"""``embedstore search`` and ``embedstore similar``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cli.common import (
    collection_option,
    emit_hits,
    get_engine,
    output_options,
    parse_modalities,
    parse_where,
)

in_option = click.option(
    "--in",
    "targets",
    multiple=True,
    metavar="MODALITIES",
    help="Only match vectors of these modalities, e.g. --in vision,audio (default: all).",
)
where_option = click.option(
    "--where",
    multiple=True,
    metavar="FILTER",
    help="Metadata filter: key=value, 'size>=100', or a JSON object; repeat to AND.",
)
k_option = click.option("-k", "--limit", "k", default=10, show_default=True, type=click.IntRange(1))


@click.command()
@click.argument("query", required=False)
@collection_option
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Query file.",
)
@click.option("--modality", help="Modality of the query file where its type is ambiguous.")
@in_option
@where_option
@k_option
@click.option("--offset", default=0, type=click.IntRange(0), help="Skip this many hits.")
@click.option(
    "--mode",
    type=click.Choice(["vector", "keyword", "hybrid"]),
    default="vector",
    show_default=True,
    help="keyword: words of captions, text items and searchable fields; hybrid: both, fused.",
)
@output_options
@click.pass_context
def search(
    ctx: click.Context,
    query: str | None,
    collection: str,
    file: Path | None,
    modality: str | None,
    targets: tuple[str, ...],
    where: tuple[str, ...],
    k: int,
    offset: int,
    mode: str,
    fmt: str,
) -> None:
    """Search a collection by text (default) or by a file of any modality.

    \b
        embedstore search "a barking dog" -c media -k 5
        embedstore search "a barking dog" -c media --in audio --json
        embedstore search --file bark.wav -c media --in vision
        embedstore search --file scan.png --modality depth -c media
        embedstore search "cat" -c media --where ext=.png --where 'size>=1000'
        embedstore search "red bicycle" -c media --mode hybrid
    """
    if (query is None) == (file is None):
        raise click.UsageError("Give a text QUERY or --file PATH (exactly one).")
    if mode != "vector" and query is None:
        raise click.UsageError(f"--mode {mode} searches by text: give a QUERY, not --file.")
    engine = get_engine(ctx)
    hits = engine.search(
        collection,
        text=query,
        file=file,
        modality=modality,
        k=k,
        modalities=parse_modalities(targets),
        where=parse_where(where),
        offset=offset,
        mode=mode,
    )
    emit_hits(hits, fmt)


@click.command()
@click.argument("item")
@collection_option
@in_option
@where_option
@k_option
@output_options
@click.pass_context
def similar(
    ctx: click.Context,
    item: str,
    collection: str,
    targets: tuple[str, ...],
    where: tuple[str, ...],
    k: int,
    fmt: str,
) -> None:
    """Find the nearest neighbours of a stored item, given by id or path.

    \b
        embedstore similar 42 -c media
        embedstore similar ~/Pictures/dog.jpg -c media --in audio
    """
    engine = get_engine(ctx)
    key: int | str = int(item) if item.isdigit() else _as_uri(item)
    hits = engine.similar(
        collection, key, k=k, modalities=parse_modalities(targets), where=parse_where(where)
    )
    emit_hits(hits, fmt)


def _as_uri(item: str) -> str:
    """A path given on the command line names the stored (absolute) URI."""
    path = Path(item).expanduser()
    return os.path.abspath(path) if path.exists() else item
