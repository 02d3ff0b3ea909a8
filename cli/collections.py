"""``embedstore init`` and ``embedstore collections list|show|create|drop``."""

from __future__ import annotations

import click

from cli.common import as_dict, emit_json, emit_rows, get_engine, output_options


def _create(
    ctx: click.Context,
    name: str,
    encoder: str | None,
    index_spec: str | None,
    index_backend: str | None = None,
) -> None:
    coll = get_engine(ctx).create_collection(
        name, encoder=encoder, index_spec=index_spec, index_backend=index_backend
    )
    info = coll.info()
    click.echo(
        f"created collection {info.name!r} (encoder {info.encoder}, dim {info.dim}, "
        f"index backend {info.index_backend})",
        err=True,
    )


_encoder_opt = click.option("--encoder", help="Encoder name (see: embedstore encoders).")
_spec_opt = click.option(
    "--index-spec",
    help="FAISS index_factory string, e.g. Flat, HNSW32, 'IVF256,Flat' (default auto).",
)
backend_opt = click.option(
    "--index-backend",
    type=click.Choice(["faiss", "pgvector"]),
    help="faiss: index files (default); pgvector: HNSW in the PostgreSQL catalog (see docs/scale.md).",
)


@click.command()
@click.argument("name")
@_encoder_opt
@_spec_opt
@backend_opt
@click.pass_context
def init(
    ctx: click.Context,
    name: str,
    encoder: str | None,
    index_spec: str | None,
    index_backend: str | None,
) -> None:
    """Create an empty collection bound to an encoder and an index spec.

    \b
        embedstore init photos --encoder imagebind_huge --index-spec HNSW32
        embedstore init photos --index-backend pgvector   # PostgreSQL + pgvector catalog
    """
    _create(ctx, name, encoder, index_spec, index_backend)


@click.group()
def collections() -> None:
    """List, show, create and drop collections."""


@collections.command("list")
@output_options
@click.pass_context
def list_(ctx: click.Context, fmt: str) -> None:
    """List collections with their encoder and size."""
    rows = [as_dict(i) for i in get_engine(ctx).store.collections()]
    emit_rows(rows, fmt, ["name", "encoder", "dim", "index_spec", "items", "vectors"])


@collections.command()
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """Show one collection as JSON."""
    emit_json(as_dict(get_engine(ctx).collection(name).info()))


@collections.command()
@click.argument("name")
@_encoder_opt
@_spec_opt
@backend_opt
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    encoder: str | None,
    index_spec: str | None,
    index_backend: str | None,
) -> None:
    """Create an empty collection (same as: embedstore init)."""
    _create(ctx, name, encoder, index_spec, index_backend)


@collections.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.pass_context
def drop(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete a collection, its items, vectors and index (files are not touched)."""
    engine = get_engine(ctx)
    engine.collection(name)
    if not yes:
        click.confirm(f"Drop collection {name!r}?", abort=True, err=True)
    engine.store.drop_collection(name)
    click.echo(f"dropped collection {name!r}", err=True)


@collections.command()
@click.argument("name")
@click.argument("fields", nargs=-1)
@click.option(
    "--clear", is_flag=True, help="Declare no fields (captions and text stay searchable)."
)
@click.pass_context
def searchable(ctx: click.Context, name: str, fields: tuple[str, ...], clear: bool) -> None:
    """Show or set the metadata fields that keyword search covers, besides captions and text.

    \b
        embedstore collections searchable photos            # prints the declared fields
        embedstore collections searchable photos title tags
    """
    coll = get_engine(ctx).collection(name)
    if fields or clear:
        n = coll.set_text_fields([] if clear else list(fields))
        click.echo(f"{name!r}: keyword bodies rebuilt for {n} items", err=True)
    emit_json(coll.text_fields())
