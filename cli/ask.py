"""``embedstore ask``: answer a question from the media a search retrieves."""

from __future__ import annotations

import click

from cli.caption import model_option
from cli.common import collection_option, emit_json, get_engine, parse_modalities


@click.command()
@click.argument("question")
@collection_option
@click.option(
    "-k", "k", default=4, show_default=True, type=click.IntRange(1), help="Items to retrieve."
)
@click.option(
    "--in",
    "targets",
    multiple=True,
    metavar="MODALITIES",
    help="Only retrieve items of these modalities, e.g. --in vision,video (default: all).",
)
@click.option(
    "--mode",
    type=click.Choice(["vector", "keyword", "hybrid"]),
    default="hybrid",
    show_default=True,
    help="How the question retrieves items.",
)
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print {answer, items: [{id, uri}]}.")
@click.pass_context
def ask(
    ctx: click.Context,
    question: str,
    collection: str,
    k: int,
    targets: tuple[str, ...],
    mode: str,
    model: str | None,
    as_json: bool,
) -> None:
    """Answer QUESTION from the collection's best matches, citing the items it was given.

    The answer streams to stdout as it is written; the items follow as [n] URI lines.

    \b
        embedstore ask "What colour is the car?" -c photos
        embedstore ask "Which animals are there?" -c photos -k 6 --in vision,video --json
    """
    from embedstore.ask import prepare

    engine = get_engine(ctx)
    prepared = prepare(
        engine,
        collection,
        question,
        k=k,
        modalities=parse_modalities(targets),
        mode=mode,
        model=model,
    )
    if as_json:
        answer = "".join(prepared.stream()).strip()
        emit_json({"answer": answer, "items": prepared.cited()})
        return
    for piece in prepared.stream():
        click.echo(piece, nl=False)
    click.echo()
    for n, item in enumerate(prepared.cited(), start=1):
        click.echo(f"[{n}] {item['uri']}")
