"""``embedstore ls``, ``show``, ``rm`` and ``stats``: look at and edit what is stored."""

from __future__ import annotations

import os

import click

from cli.common import (
    as_dict,
    collection_option,
    emit_json,
    emit_rows,
    get_engine,
    output_options,
    parse_where,
)


def _key(item: str) -> int | str:
    if item.isdigit():
        return int(item)
    return os.path.abspath(os.path.expanduser(item)) if os.path.exists(item) else item


@click.command()
@collection_option
@click.option("--where", multiple=True, metavar="FILTER", help="Metadata filter (as in search).")
@click.option("--failed", is_flag=True, help="Only files that failed to index, with the reason.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--offset", default=0, type=click.IntRange(0))
@output_options
@click.pass_context
def ls(
    ctx: click.Context,
    collection: str,
    where: tuple[str, ...],
    failed: bool,
    limit: int,
    offset: int,
    fmt: str,
) -> None:
    """List the items of a collection.

    \b
        embedstore ls -c media --where modality=audio
        embedstore ls -c media --failed
    """
    coll = get_engine(ctx).collection(collection)
    items = coll.list_items(
        where=parse_where(where), limit=limit, offset=offset, status="failed" if failed else None
    )
    rows = [as_dict(i) for i in items]
    columns = ["id", "modality", "status", "size", "uri"] + (["error"] if failed else [])
    emit_rows(rows, fmt, columns)


@click.command()
@click.argument("item")
@collection_option
@click.pass_context
def show(ctx: click.Context, item: str, collection: str) -> None:
    """Show one item (by id or path) as JSON, with its metadata and vectors."""
    coll = get_engine(ctx).collection(collection)
    info = as_dict(coll.get_item(_key(item)))
    vectors = coll.vectors_of(int(info["id"]))
    info["vectors"] = [
        {"modality": v.modality, "segment": v.segment, "start": v.start, "end": v.end}
        for v in vectors
    ]
    emit_json(info)


@click.command()
@click.argument("items", nargs=-1, required=True)
@collection_option
@click.pass_context
def rm(ctx: click.Context, items: tuple[str, ...], collection: str) -> None:
    """Remove items (by id or path) from a collection; the files are not touched."""
    coll = get_engine(ctx).collection(collection)
    keys = [_key(i) for i in items]
    ids = [k for k in keys if isinstance(k, int)]
    uris = [k for k in keys if isinstance(k, str)]
    n = coll.remove(ids=ids or None, uris=uris or None)
    click.echo(f"removed {n} item(s)", err=True)


@click.command()
@click.option("-c", "--collection", help="One collection (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, collection: str | None, as_json: bool) -> None:
    """Items and vectors per collection and modality."""
    engine = get_engine(ctx)
    infos = [engine.collection(collection).info()] if collection else engine.store.collections()
    rows = [as_dict(i) for i in infos]
    if as_json:
        emit_json(rows if collection is None else rows[0])
        return
    for row in rows:
        by = ", ".join(f"{m}: {n}" for m, n in sorted((row.get("by_modality") or {}).items()))
        click.echo(
            f"{row['name']}: {row.get('items', 0)} items, {row.get('vectors', 0)} vectors "
            f"({by or 'empty'}); encoder {row.get('encoder')}, index {row.get('index_spec')}"
        )
