"""``embedstore encoders``: registered models and whether their weights are present."""

from __future__ import annotations

from typing import Any

import click

from cli.common import emit_json, get_engine


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def encoders(ctx: click.Context, as_json: bool) -> None:
    """List the registered encoders, their dimension, modalities and weights status."""
    from embedstore.encoders import list_encoders

    weights_dir = get_engine(ctx).settings.resolved_weights_dir
    rows: list[dict[str, Any]] = []
    for info in list_encoders():
        needs = bool(getattr(info, "weights_file", None))
        present = bool(info.weights_present(weights_dir)) if needs else True
        rows.append(
            {
                "name": info.name,
                "family": info.family,
                "dim": info.dim,
                "modalities": sorted(info.modalities),
                "weights": "present" if present else "missing",
                "weights_file": str(info.weights_file) if needs else None,
                "needs_weights": needs,
                "description": info.description,
            }
        )
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        weights = r["weights"] if r["needs_weights"] else "built in"
        click.echo(
            f"{r['name']:<20} {r['family']:<10} dim {r['dim']:<5} weights {weights:<8} "
            f"{','.join(r['modalities'])}"
        )
    if any(r["weights"] == "missing" for r in rows):
        click.echo(f"(weights are looked up in {weights_dir})", err=True)
