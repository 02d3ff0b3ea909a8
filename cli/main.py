"""The ``embedstore`` command: global flags build the settings, subcommands do the work."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import click

from cli.collections import collections, init
from cli.encoders import encoders
from cli.index import index
from cli.items import ls, rm, show, stats
from cli.reindex import reindex
from cli.search import search, similar
from cli.serve import serve
from embedstore.config import load_settings
from embedstore.errors import EmbedstoreError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """A click group that turns embedstore errors into ``Error: ...`` and their exit code.

    Commands with heavy imports are registered lazily (``add_lazy_command``, with their one-line
    help): they are imported only when run, so ``embedstore --help`` starts without loading them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}
        self.lazy_help: dict[str, str] = {}

    def add_lazy_command(self, name: str, target: str, short_help: str) -> None:
        """Register ``module:attribute`` as command ``name``, imported on first use.

        ``short_help`` is what ``--help`` lists; a test checks it against the command's own.
        """
        self.lazy[name] = target
        self.lazy_help[name] = short_help

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        rows = []
        for name in names:
            if name in self.lazy and name not in self.commands:
                stub = click.Command(name, help=self.lazy_help[name])  # same shortening
                rows.append((name, stub.get_short_help_str(limit)))
                continue
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attr = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbedstoreError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="embedstore", prog_name="embedstore")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (also EMBEDSTORE_CONFIG).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder: database, indexes, weights (also EMBEDSTORE_DATA_DIR).",
)
@click.option(
    "--database-url",
    help="SQLAlchemy URL, default SQLite in the data folder (also EMBEDSTORE_DATABASE_URL).",
)
@click.option("--device", help="cpu, cuda, cuda:1 or auto (also EMBEDSTORE_DEVICE).")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "tf32", "bf16", "fp16"]),
    help="Model precision (also EMBEDSTORE_PRECISION).",
)
@click.option(
    "--compile",
    "compile_mode",
    type=click.Choice(
        ["off", "default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead"]
    ),
    help="torch.compile the ImageBind blocks (also EMBEDSTORE_COMPILE_MODE; towers: "
    "EMBEDSTORE_COMPILE_TOWERS).",
)
@click.option(
    "--cuda-graphs",
    type=click.Choice(["off", "auto", "on"]),
    help="CUDA graphs per ImageBind tower and batch size; auto = eager without CUDA "
    "(also EMBEDSTORE_CUDA_GRAPHS).",
)
@click.option(
    "--sdpa-backend",
    type=click.Choice(["auto", "flash", "cudnn", "efficient", "math"]),
    help="Attention kernel tried first (also EMBEDSTORE_SDPA_BACKEND).",
)
@click.option(
    "--weights-path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Weights file of the encoder, e.g. imagebind_huge.pth (also EMBEDSTORE_WEIGHTS_PATH).",
)
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder searched for weights, default DATA_DIR/weights (also EMBEDSTORE_WEIGHTS_DIR).",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv for debug).")
@click.pass_context
def cli(
    ctx: click.Context,
    config: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    device: str | None,
    precision: str | None,
    compile_mode: str | None,
    cuda_graphs: str | None,
    sdpa_backend: str | None,
    weights_path: Path | None,
    weights_dir: Path | None,
    verbose: int,
) -> None:
    """Multimodal embedding search: index media, then search it by text, image or sound.

    \b
        embedstore index ~/Pictures -c photos
        embedstore search "a dog on a beach" -c photos -k 5
        embedstore search --file bark.wav -c photos --in vision
    """
    if verbose:
        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO)
    ctx.obj = load_settings(
        config,
        data_dir=data_dir,
        database_url=database_url,
        device=device,
        precision=precision,
        compile_mode=compile_mode,
        cuda_graphs=cuda_graphs,
        sdpa_backend=sdpa_backend,
        weights_path=weights_path,
        weights_dir=weights_dir,
    )


cli.add_command(init)
cli.add_command(index)
cli.add_command(search)
cli.add_command(similar)
cli.add_command(ls)
cli.add_command(show)
cli.add_command(rm)
cli.add_command(stats)
cli.add_command(reindex)
cli.add_command(serve)
cli.add_command(encoders)
cli.add_command(collections)
cli.add_lazy_command(  # type: ignore[attr-defined]
    "bench",
    "cli.bench:bench",
    "Run benchmarks from a source checkout; JSON to --out or stdout, a table to stderr.",
)
cli.add_lazy_command(  # type: ignore[attr-defined]
    "bind",
    "cli.bind:bind",
    "Bind a modality to an encoder's space from PAIRS (CSV/JSONL with anchor,target, or a "
    "folder whose files share a stem).",
)
cli.add_lazy_command(  # type: ignore[attr-defined]
    "caption",
    "cli.caption:caption",
    "Caption the pictures and videos of a collection (only those without a caption from MODEL).",
)
cli.add_lazy_command(  # type: ignore[attr-defined]
    "ask",
    "cli.ask:ask",
    "Answer QUESTION from the collection's best matches, citing the items it was given.",
)
