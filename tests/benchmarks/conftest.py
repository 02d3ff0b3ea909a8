"""Helpers for the benchmark tests: run a script's click command and read its JSON."""

from __future__ import annotations

import json
from typing import Any

import click
import pytest
from click.testing import CliRunner


@pytest.fixture
def run_json():  # type: ignore[no-untyped-def]
    """Invoke a click command with ``--json``; return the parsed document (fails on exit != 0)."""

    def run(command: click.Command, *args: str) -> dict[str, Any]:
        result = CliRunner().invoke(command, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return run


@pytest.fixture
def check_doc():  # type: ignore[no-untyped-def]
    """Assert the keys and types every benchmark document has."""
    return _check_doc


def _check_doc(doc: dict[str, Any], benchmark: str) -> None:
    assert doc["benchmark"] == benchmark
    assert isinstance(doc["created"], str) and doc["created"].endswith("Z")
    assert isinstance(doc["git"], str) and doc["git"]
    machine = doc["machine"]
    for key in ("cpu", "cpu_count", "numpy", "torch", "faiss", "device"):
        assert key in machine, key
    assert isinstance(machine["cpu_count"], int) and machine["cpu_count"] >= 1
    assert isinstance(doc["params"], dict)
    assert isinstance(doc["rows"], list) and doc["rows"]
    assert doc["peak_rss_mb"] > 0
