"""``embedstore reindex``: rebuild a collection's index or re-embed it with another encoder."""

from __future__ import annotations

import click

from cli.common import collection_option, emit_json, get_engine


@click.command()
@collection_option
@click.option("--index-spec", help="New FAISS index spec (e.g. HNSW32, 'IVF1024,Flat', auto).")
@click.option("--encoder", help="Re-embed every item with this encoder.")
@click.option(
    "--min-recall",
    type=click.FloatRange(0.0, 1.0),
    default=0.9,
    show_default=True,
    help="Refuse a rebuilt index whose recall@10 against exact search is below this.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the collection info as JSON.")
@click.pass_context
def reindex(
    ctx: click.Context,
    collection: str,
    index_spec: str | None,
    encoder: str | None,
    min_recall: float,
    as_json: bool,
) -> None:
    """Rebuild the index (or re-embed every item) beside the old one, check it, then swap.

    A rebuilt index replaces the old one only if its recall@10 against exact search, measured
    on a sample of queries, reaches --min-recall (lossy specs such as PQ need a lower bar).

    \b
        embedstore reindex -c photos --index-spec HNSW32
        embedstore reindex -c photos --encoder imagebind_huge
    """
    engine = get_engine(ctx)
    report = None
    if encoder and encoder != engine.collection(collection).info().encoder:
        from embedstore.ingest import reembed_collection

        report = reembed_collection(engine, collection, encoder, index_spec)
        for uri in report.missing:
            click.echo(f"kept {uri}: file missing, not re-embedded (marked failed)", err=True)
        for failure in report.failed:
            reason = failure.reason.removeprefix(f"{failure.uri}: ")
            click.echo(f"kept {failure.uri}: {reason} (marked failed)", err=True)
        info = engine.collection(collection).info()
    else:
        coll = engine.collection(collection)
        coll.reindex(index_spec, min_recall=min_recall)
        for modality, recall in sorted(getattr(coll, "verified", {}).items()):
            click.echo(f"{modality}: recall@10 {recall:.3f} against exact search", err=True)
        info = engine.collection(collection).info()
    click.echo(
        f"reindexed {info.name!r}: {info.items} items, {info.vectors} vectors, "
        f"encoder {info.encoder}, index {info.index_spec}"
        + (
            f"; {report.reembedded} re-embedded, {len(report.missing)} missing, "
            f"{len(report.failed)} failed (kept under their ids)"
            if report is not None
            else ""
        ),
        err=True,
    )
    if as_json:
        from cli.common import as_dict

        emit_json(as_dict(info) | ({"reembed": report.to_dict()} if report is not None else {}))
