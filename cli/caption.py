"""``embedstore caption``: describe a collection's pictures and videos with a generator."""

from __future__ import annotations

import sys
from typing import Any

import click

from cli.common import collection_option, emit_json, get_engine, parse_where

model_option = click.option(
    "--model",
    metavar="GENERATOR",
    help="llava_test, or llava:FOLDER_OR_HUB_ID (default: the 'generator' setting).",
)


def run_captions(ctx: click.Context, collection: str, model: str | None, where: Any) -> Any:
    """Caption what is missing, report failures and counts on stderr; returns the report."""
    engine = get_engine(ctx)
    show = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            click.echo(f"\rcaptioned {done}/{total}", err=True, nl=done == total)

    report = engine.caption(collection, model, where=where, progress=progress)
    for failure in report.failed:
        reason = failure.reason.removeprefix(f"{failure.uri}: ")
        click.echo(f"skipping {failure.uri}: {reason}", err=True)
    click.echo(
        f"{report.captioned} captioned, {report.skipped} skipped (captioned already), "
        f"{len(report.failed)} failed in {report.seconds:.1f}s",
        err=True,
    )
    return report


@click.command()
@collection_option
@model_option
@click.option(
    "--where",
    multiple=True,
    metavar="FILTER",
    help="Only items matching: key=value, 'size>=100', or a JSON object; repeat to AND.",
)
@click.option("--json", "as_json", is_flag=True, help="Print {captioned, skipped, failed}.")
@click.pass_context
def caption(
    ctx: click.Context, collection: str, model: str | None, where: tuple[str, ...], as_json: bool
) -> None:
    """Caption the pictures and videos of a collection (only those without a caption from MODEL).

    The caption is stored in the item's metadata (caption, caption_model), embedded as a text
    vector on the item and indexed for keyword search. Exit status 1 when some files failed.

    \b
        embedstore caption -c photos --model llava:llava-hf/llava-1.5-7b-hf
        embedstore caption -c photos --model llava_test --where folder=beach --json
    """
    report = run_captions(ctx, collection, model, parse_where(where))
    if as_json:
        emit_json(report.to_dict())
    if report.failed:
        ctx.exit(1)
