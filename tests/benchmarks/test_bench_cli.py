"""``embedstore bench`` lists the benchmark scripts and runs them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli.main import cli


def test_bench_lists_the_scripts() -> None:
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0
    for name in ("recall", "ann", "plot"):
        assert name in result.output


def test_bench_ann_smoke_through_the_cli() -> None:
    result = CliRunner().invoke(
        cli, ["bench", "ann", "--smoke", "--layers", "faiss", "--spec", "HNSW32", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["benchmark"] == "ann"


def test_bench_recall_reports_a_missing_manifest() -> None:
    result = CliRunner().invoke(cli, ["bench", "recall", "missing.jsonl"])
    assert result.exit_code != 0 and "missing.jsonl does not exist" in result.output
