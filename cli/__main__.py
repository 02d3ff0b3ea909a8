"""``python -m cli``: the same as the ``embedstore`` command."""

from cli.main import cli

if __name__ == "__main__":
    cli(prog_name="embedstore")
