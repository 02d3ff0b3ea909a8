"""Fixtures for the CLI tests: a real media library and an in-process runner."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from ingest_media import make_library  # noqa: E402


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "lib")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run the real CLI in-process on CPU, decoding inline (the subprocess tests use workers)."""
    from cli.main import cli

    monkeypatch.setenv("EMBEDSTORE_WORKERS", "0")

    def run(*args: Any, ok: bool = True) -> Result:
        result = runner.invoke(cli, ["--device", "cpu", *map(str, args)], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run
