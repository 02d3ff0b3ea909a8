"""Every command and subcommand answers --help and -h."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cli.main import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, (*prefix, name)))
    return out


COMMANDS = _commands(cli)


def test_the_issue_commands_exist() -> None:
    names = {c[0] for c in COMMANDS}
    expected = {"init", "index", "search", "similar", "ls", "show", "rm", "stats", "reindex"}
    assert expected | {"serve", "encoders", "collections"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(command: tuple[str, ...], flag: str) -> None:
    result = CliRunner().invoke(cli, [*command, flag])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and result.output.count("\n") > 3


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "embedstore" in result.output
